/**
 * A backup group (layer L4): `vm|ct|host/<id>` within a namespace, with its snapshots, owner and
 * notes.
 */
import { CairnError, abortError, isCairnError, type ErrorDetails } from '../errors.js';
import { formatGroup, parseSnapshotTime, type BackupType, type GroupId } from '../types.js';
import { sleep } from '../util/clock.js';
import { lockAt, readOnlyError, type StoreContext } from './context.js';
import { MANIFEST_FILE, NOTES_FILE, OWNER_FILE, PROTECTED_FILE, groupKey, groupLockKey, manifestLockKey, namespaceKey, snapshotKey, snapshotLockKey } from './layout.js';
import { registerWriter } from '../host/writer-registry.js';
import { loadSnapshot, removeSnapshotDir, type Snapshot, type SnapshotRef } from './snapshot.js';
import { SnapshotWriter, removeNewGroupDir, snapshotTimeOf, type BackupOptions } from './snapshot-writer.js';
import { childNames, folderExists, makeFolder, removeFolder } from './keyspace.js';
import type { FileLock } from '../host/locks.js';
import { TEXT_FILE_MAX_BYTES } from '../format/limits.js';

const TIME_DIR = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/;

/**
 * One snapshot directory of a group, from {@link BackupGroup.entries}.
 * @category Datastore
 */
export interface GroupEntry {
  /** RFC 3339 UTC time (the directory name). */
  time: string;
  /** The finished snapshot, or undefined when unfinished (no manifest). */
  snapshot: Snapshot | undefined;
}

/**
 * A finished snapshot whose manifest cannot be read because it is damaged.
 * @category Datastore
 */
export interface DamagedSnapshot {
  /** Namespace path. */
  readonly namespace: string;
  /** `type/id/time`. */
  readonly name: string;
  /** RFC 3339 UTC time (the directory name). */
  readonly time: string;
  /** The `ERR_MANIFEST_CORRUPT` error that says what is wrong. */
  readonly error: CairnError;
}

/**
 * What {@link BackupGroup.scan} found: the readable snapshots and the damaged ones.
 * @category Datastore
 */
export interface GroupScan {
  /** The finished snapshots whose manifests read, oldest first. */
  readonly snapshots: Snapshot[];
  /** The snapshots whose manifests are damaged, oldest first. */
  readonly damaged: DamagedSnapshot[];
}

/**
 * What {@link BackupGroup.remove} did. Plain JSON.
 * @category Datastore
 */
export interface RemoveGroupReport {
  /** The group directory is gone. */
  readonly removed: boolean;
  /** Times of the snapshots removed. */
  readonly removedSnapshots: string[];
  /** Protected snapshots kept. */
  readonly keptProtected: string[];
  /** Snapshots kept because they were in use (read, mounted, a base). */
  readonly keptLocked: string[];
  /** Unfinished snapshot directories (of crashed backups) removed. */
  readonly removedUnfinished: string[];
}

/**
 * What {@link BackupGroup.lockForWrite} hands a writer.
 * @internal
 */
export interface GroupWriteLock {
  /** The group's lock, held exclusively. */
  readonly lock: FileLock;
  /** The group's directory was made by this write (its first): remove it when giving up. */
  readonly created: boolean;
  /** The newest finished snapshot of the group, if any. */
  readonly newest: Snapshot | undefined;
}

/**
 * A backup group. Obtain one with {@link Datastore.group} or {@link Namespace.group}; it need not
 * exist yet (the first backup creates it).
 *
 * @example
 * ```ts
 * const group = ds.group('vm/100', { namespace: 'site-a' });
 * for (const snap of await group.snapshots()) console.log(snap.time, snap.files.length);
 * ```
 * @category Datastore
 */
export class BackupGroup {
  /** @internal */
  constructor(
    private readonly ctx: StoreContext,
    /** Namespace path (`''` for the root). */
    readonly namespace: string,
    /** Namespace components. */
    readonly nsParts: readonly string[],
    /** Type and id. */
    readonly group: GroupId,
  ) {}

  /** Backup type. */
  get type(): BackupType {
    return this.group.type;
  }

  /** Backup id. */
  get id(): string {
    return this.group.id;
  }

  /** `type/id`. */
  get name(): string {
    return formatGroup(this.group);
  }

  /** The backend key of the group's directory. @internal */
  get key(): string {
    return groupKey(this.nsParts, this.group);
  }

  private details(): ErrorDetails {
    return { datastore: this.ctx.root, namespace: this.namespace, group: this.name };
  }

  /**
   * True when the group directory exists.
   * @throws `ERR_UNSAFE_PATH` when the group's directory is a symlink (or not a directory).
   */
  async exists(): Promise<boolean> {
    this.ctx.assertOpen();
    return folderExists(this.ctx.backend, this.key, this.details());
  }

  /** Times of all snapshot directories, finished or not, oldest first. @internal */
  async times(): Promise<string[]> {
    return (await childNames(this.ctx.backend, this.key)).filter((n) => TIME_DIR.test(n));
  }

  private ref(time: string): SnapshotRef {
    return { namespace: this.namespace, nsParts: this.nsParts, group: this.group, time };
  }

  /** The finished snapshots, oldest first. Unfinished ones (no manifest) are not listed. */
  async snapshots(): Promise<Snapshot[]> {
    this.ctx.assertOpen();
    const out: Snapshot[] = [];
    for (const t of await this.times()) {
      const s = await loadSnapshot(this.ctx, this.ref(t));
      if (s !== undefined) out.push(s);
    }
    return out;
  }

  /**
   * Like {@link BackupGroup.snapshots}, but a damaged manifest (`ERR_MANIFEST_CORRUPT`) does not
   * fail the listing: that snapshot is listed apart, with the error, and the others are returned.
   * For tools that report (listing, verify); what must not miss a snapshot (GC) uses `snapshots()`.
   */
  async scan(): Promise<GroupScan> {
    this.ctx.assertOpen();
    const snapshots: Snapshot[] = [];
    const damaged: DamagedSnapshot[] = [];
    for (const time of await this.times()) {
      try {
        const s = await loadSnapshot(this.ctx, this.ref(time));
        if (s !== undefined) snapshots.push(s);
      } catch (e) {
        if (!isCairnError(e, 'ERR_MANIFEST_CORRUPT')) throw e;
        damaged.push({ namespace: this.namespace, name: `${this.name}/${time}`, time, error: e });
      }
    }
    return { snapshots, damaged };
  }

  /**
   * Removes a snapshot whose manifest is damaged ({@link BackupGroup.scan} lists them), which
   * `Snapshot.remove` cannot reach because the snapshot does not load. Its chunks stay until GC.
   * Takes the snapshot's lock (without waiting) and its manifest lock, like `Snapshot.remove`.
   * @throws `ERR_CONFLICT` when the manifest reads (remove it as a {@link Snapshot} then),
   *   `ERR_PROTECTED` when it carries the protected flag, `ERR_LOCKED` while it is in use,
   *   `ERR_NOT_FOUND` when there is no such snapshot.
   */
  async removeDamaged(time: string): Promise<void> {
    this.ctx.assertOpen();
    parseSnapshotTime(time);
    const ref = this.ref(time);
    const details = { ...this.details(), snapshot: `${this.name}/${time}` };
    const dir = snapshotKey(this.nsParts, this.group, time);
    const lock = await lockAt(this.ctx, snapshotLockKey(this.nsParts, this.group, time), 'exclusive', `snapshot ${this.name}/${time}`, details, 0);
    try {
      const manifestLock = await lockAt(
        this.ctx,
        manifestLockKey(this.nsParts, this.group, time),
        'exclusive',
        `manifest of ${this.name}/${time}`,
        details,
        Math.max(this.ctx.lockTimeoutMs, 5000),
      );
      try {
        const state = await loadSnapshot(this.ctx, ref).then(
          (s) => (s === undefined ? 'missing' : 'readable'),
          (e: unknown) => {
            if (isCairnError(e, 'ERR_MANIFEST_CORRUPT')) return 'damaged';
            throw e;
          },
        );
        if (state === 'missing') throw new CairnError('ERR_NOT_FOUND', `snapshot ${this.name}/${time} does not exist (or has no manifest)`, details);
        if (state === 'readable') throw new CairnError('ERR_CONFLICT', `the manifest of ${this.name}/${time} is not damaged: remove it as a snapshot (cairn forget)`, details);
        if ((await this.ctx.backend.stat(`${dir}/${PROTECTED_FILE}`)) !== undefined) throw new CairnError('ERR_PROTECTED', `snapshot ${this.name}/${time} is protected`, details);
        await removeSnapshotDir(this.ctx, dir);
      } finally {
        await manifestLock.release();
      }
    } finally {
      await lock.release();
    }
  }

  /**
   * Every snapshot directory of the group, oldest first: finished ones with their
   * {@link Snapshot}, unfinished ones (no manifest: a running or crashed backup) with `undefined`.
   */
  async entries(): Promise<GroupEntry[]> {
    this.ctx.assertOpen();
    const out: GroupEntry[] = [];
    for (const time of await this.times()) out.push({ time, snapshot: await loadSnapshot(this.ctx, this.ref(time)) });
    return out;
  }

  /**
   * Removes an unfinished snapshot directory (one without a manifest). Takes the group lock without
   * waiting, so the directory of a running backup is never touched.
   * @returns true when removed, false when the directory does not exist or has become finished.
   * @throws `ERR_LOCKED` while a backup of the group runs.
   */
  async removeUnfinished(time: string): Promise<boolean> {
    this.ctx.assertOpen();
    parseSnapshotTime(time);
    const lock = await lockAt(this.ctx, groupLockKey(this.nsParts, this.group), 'exclusive', `backup group ${this.name}`, this.details(), 0);
    try {
      const key = snapshotKey(this.nsParts, this.group, time);
      if (!(await folderExists(this.ctx.backend, key, this.details()))) return false;
      if ((await loadSnapshot(this.ctx, this.ref(time))) !== undefined) return false;
      await removeFolder(this.ctx.backend, key);
      return true;
    } finally {
      await lock.release();
    }
  }

  /**
   * Removes the group: every snapshot except protected ones and ones in use, then (when nothing is
   * left) the group itself with its owner and notes. Chunks stay until garbage collection.
   * @throws `ERR_NOT_FOUND` when the group does not exist; `ERR_LOCKED` while a backup of the group runs.
   */
  async remove(): Promise<RemoveGroupReport> {
    this.ctx.assertOpen();
    if (!(await this.exists())) throw new CairnError('ERR_NOT_FOUND', `backup group ${this.name} does not exist`, this.details());
    const lock = await lockAt(this.ctx, groupLockKey(this.nsParts, this.group), 'exclusive', `backup group ${this.name}`, this.details(), 0);
    try {
      const report = { removed: false, removedSnapshots: [] as string[], keptProtected: [] as string[], keptLocked: [] as string[], removedUnfinished: [] as string[] };
      for (const { time, snapshot } of await this.entries()) {
        if (snapshot === undefined) {
          await removeFolder(this.ctx.backend, snapshotKey(this.nsParts, this.group, time));
          report.removedUnfinished.push(time);
        } else if (snapshot.isProtected) {
          report.keptProtected.push(time);
        } else {
          try {
            await snapshot.remove();
            report.removedSnapshots.push(time);
          } catch (e) {
            if (isCairnError(e, 'ERR_LOCKED')) report.keptLocked.push(time);
            else if (isCairnError(e, 'ERR_PROTECTED')) report.keptProtected.push(time);
            else throw e;
          }
        }
      }
      if (report.keptProtected.length === 0 && report.keptLocked.length === 0) {
        await removeFolder(this.ctx.backend, this.key);
        report.removed = !(await this.exists());
      }
      return report;
    } finally {
      await lock.release();
    }
  }

  /** The newest finished snapshot, or undefined. */
  async newest(): Promise<Snapshot | undefined> {
    this.ctx.assertOpen();
    const times = await this.times();
    for (let i = times.length - 1; i >= 0; i--) {
      const s = await loadSnapshot(this.ctx, this.ref(times[i]!));
      if (s !== undefined) return s;
    }
    return undefined;
  }

  /** One snapshot by time. @throws `ERR_NOT_FOUND` */
  async snapshot(time: string): Promise<Snapshot> {
    this.ctx.assertOpen();
    parseSnapshotTime(time);
    const s = await loadSnapshot(this.ctx, this.ref(time));
    if (s === undefined) throw new CairnError('ERR_NOT_FOUND', `snapshot ${this.name}/${time} does not exist`, { ...this.details(), snapshot: `${this.name}/${time}` });
    return s;
  }

  /** The owner recorded on the group, or undefined. */
  async owner(): Promise<string | undefined> {
    return (await this.readText(OWNER_FILE))?.trim() || undefined;
  }

  /** Records the group's owner. */
  async setOwner(owner: string): Promise<void> {
    await this.writeOwner(owner, true);
  }

  /**
   * Records the owner; `mustExist`: fail when the group does not exist. A first backup or a move
   * into a new group passes false: on a backend without directories the group exists only once a
   * key is in it. @internal
   */
  async writeOwner(owner: string, mustExist: boolean): Promise<void> {
    if (typeof owner !== 'string' || owner.length === 0 || owner.length > 256 || /[\r\n]/.test(owner)) {
      throw new CairnError('ERR_INVALID_ARGUMENT', 'owner must be a non-empty single line of at most 256 characters', this.details());
    }
    await this.writeText(OWNER_FILE, `${owner}\n`, mustExist);
  }

  /** The group notes ('' when none). */
  async notes(): Promise<string> {
    return (await this.readText(NOTES_FILE)) ?? '';
  }

  /** Sets the group notes. */
  async setNotes(notes: string): Promise<void> {
    await this.writeText(NOTES_FILE, notes);
  }

  /** Sets the notes of a group that may have no key yet (see {@link BackupGroup.writeOwner}). @internal */
  async writeNotes(notes: string, mustExist: boolean): Promise<void> {
    await this.writeText(NOTES_FILE, notes, mustExist);
  }

  private async readText(file: string): Promise<string | undefined> {
    this.ctx.assertOpen();
    try {
      return Buffer.from(await this.ctx.backend.get(`${this.key}/${file}`, undefined, { maxBytes: TEXT_FILE_MAX_BYTES })).toString('utf8');
    } catch (e) {
      if (isCairnError(e, 'ERR_NOT_FOUND')) return undefined;
      throw e;
    }
  }

  private async writeText(file: string, text: string, mustExist = true): Promise<void> {
    this.ctx.assertOpen();
    if (this.ctx.readOnly) throw readOnlyError(this.ctx, `the ${file} of backup group ${this.name}`, this.details());
    if (mustExist && !(await this.exists())) throw new CairnError('ERR_NOT_FOUND', `backup group ${this.name} does not exist`, this.details());
    await this.ctx.backend.put(`${this.key}/${file}`, Buffer.from(text, 'utf8'), { sync: this.ctx.config.syncLevel !== 'none' });
  }

  /**
   * Starts a new snapshot of this group. Takes the group's lock (one backup per group at a time),
   * picks the base snapshot (the newest finished one, unless verify marked it failed) and removes
   * the unfinished snapshot directories newer than it that crashed backups left behind (older
   * ones, left by a removal killed half-way, are removed by prune). When this is the group's first
   * backup and it is aborted (or fails to start), the group directory it created is removed again.
   * @throws `ERR_LOCKED` when another backup of the group runs; `ERR_TIME_ORDER` when `time` is
   *   not after the newest snapshot; `ERR_NOT_FOUND` when the namespace does not exist.
   */
  async backup(options: BackupOptions = {}): Promise<SnapshotWriter> {
    const { lock: groupLock, created, newest } = await this.lockForWrite(options);
    let baseLock: FileLock | undefined;
    try {
      const time = await this.pickTime(options, newest);
      let base = newest !== undefined && newest.verifyState !== 'failed' ? newest : undefined;
      if (base !== undefined) {
        try {
          baseLock = await lockAt(this.ctx, snapshotLockKey(this.nsParts, this.group, base.time), 'shared', `snapshot ${base.name}`, this.details(), 0);
          base = await loadSnapshot(this.ctx, base.ref);
          if (base === undefined) {
            await baseLock.release();
            baseLock = undefined;
          }
        } catch (e) {
          if (!isCairnError(e, 'ERR_LOCKED')) throw e;
          base = undefined; // being removed right now: back up without a base
        }
      }
      const writer = await registerWriter(this.ctx.root, this.ctx.clock.now());
      try {
        await makeFolder(this.ctx.backend, snapshotKey(this.nsParts, this.group, time));
      } catch (e) {
        await writer.release();
        throw e;
      }
      return new SnapshotWriter(this.ctx, this.ref(time), base, { group: groupLock, base: baseLock, writer }, created);
    } catch (e) {
      // A first backup that did not start leaves no group behind (still under the group lock).
      if (created) await removeNewGroupDir(this.ctx, this.key);
      await baseLock?.release();
      await groupLock.release();
      throw e;
    }
  }

  /**
   * The start of every write into the group (a backup, an import): checks the namespace, takes
   * the group's lock exclusively, makes the group's directory (recording `owner` when it is new)
   * and removes the unfinished snapshot directories newer than the newest finished snapshot.
   * The caller owns the returned lock; when it gives up, it removes a group directory it
   * created ({@link removeNewGroupDir}) before releasing the lock.
   * @throws `ERR_NOT_FOUND` (namespace), `ERR_LOCKED`, `ERR_ABORTED`, `ERR_READ_ONLY`
   * @internal
   */
  async lockForWrite(options: { readonly signal?: AbortSignal; readonly owner?: string } = {}): Promise<GroupWriteLock> {
    this.ctx.assertOpen();
    const nsKey = namespaceKey(this.nsParts);
    if (nsKey !== '' && !(await folderExists(this.ctx.backend, nsKey, this.details()))) {
      throw new CairnError('ERR_NOT_FOUND', `namespace '${this.namespace}' does not exist`, this.details());
    }
    const groupLock = await lockAt(
      this.ctx,
      groupLockKey(this.nsParts, this.group),
      'exclusive',
      `backup group ${this.name}`,
      this.details(),
      this.ctx.lockTimeoutMs,
      options.signal,
    );
    let created = false;
    try {
      const existed = await this.exists();
      await makeFolder(this.ctx.backend, this.key);
      created = !existed;
      // Not setOwner: on a backend without directories the group exists only once a key is in it.
      if (!existed && options.owner !== undefined) await this.writeOwner(options.owner, false);
      // Holding the group lock, no other writer is in this group: a directory without a manifest
      // newer than the newest finished snapshot is what a crashed backup left, and is removed.
      // The walk goes from the newest back and stops at the first finished snapshot, so a backup
      // costs the same however many snapshots its group has (issue 12: every backup read every
      // manifest of its group, and a process making 1,000 snapshots slowed to 2.7 s per
      // snapshot). An unfinished directory older than that (a removal killed half-way) is
      // prune's: its plan removes every unfinished directory but the newest.
      let newest: Snapshot | undefined;
      const times = (await this.times()).sort();
      for (let i = times.length - 1; i >= 0 && newest === undefined; i--) {
        const dir = snapshotKey(this.nsParts, this.group, times[i]!);
        if ((await this.ctx.backend.stat(`${dir}/${MANIFEST_FILE}`)) === undefined) await removeFolder(this.ctx.backend, dir);
        // A manifest removed since the stat (a prune) is skipped: the next older one is the newest.
        else newest = await loadSnapshot(this.ctx, this.ref(times[i]!));
      }
      return { lock: groupLock, created, newest };
    } catch (e) {
      // A first write that did not start leaves no group behind (still under the group lock).
      if (created) await removeNewGroupDir(this.ctx, this.key);
      await groupLock.release();
      throw e;
    }
  }

  private async pickTime(options: BackupOptions, newest: Snapshot | undefined): Promise<string> {
    const last = newest?.epoch;
    if (options.time !== undefined) {
      const time = snapshotTimeOf(options.time, 0);
      if (last !== undefined && parseSnapshotTime(time) <= last) {
        throw new CairnError('ERR_TIME_ORDER', `snapshot time ${time} is not after the newest snapshot of ${this.name} (${newest!.time})`, this.details());
      }
      return time;
    }
    let now = Math.floor(this.ctx.clock.now() / 1000);
    if (last !== undefined && now <= last) {
      if (last - now > 2) {
        throw new CairnError('ERR_TIME_ORDER', `the clock (${snapshotTimeOf(now, 0)}) is behind the newest snapshot of ${this.name} (${newest!.time})`, this.details());
      }
      // Two backups within one second: wait for the next second rather than invent a time.
      try {
        await sleep((last + 1) * 1000 - this.ctx.clock.now() + 5, options.signal);
      } catch {
        throw abortError(options.signal, this.details());
      }
      now = Math.max(last + 1, Math.floor(this.ctx.clock.now() / 1000));
    }
    return snapshotTimeOf(now, 0);
  }

  /** A plain summary for JSON output. */
  toJSON(): Record<string, unknown> {
    return { namespace: this.namespace, type: this.type, id: this.id };
  }
}

/**
 * A snapshot (layer L4): one point in time of a backup group, described by its manifest.
 */
import { CairnError, isCairnError, type ErrorDetails } from '../errors.js';
import { decodeManifest, encodeManifest, type Manifest, type ManifestFile } from '../format/manifest.js';
import { formatGroup, parseSnapshotTime, type BackupType, type GroupId } from '../types.js';
import { lockAt, type StoreContext } from './context.js';
import type { FileLock } from '../host/locks.js';
import { removeFileFolder } from './keyspace.js';
import { MANIFEST_FILE, PROTECTED_FILE, manifestLockKey, snapshotKey, snapshotLockKey } from './layout.js';
import { SnapshotReader, findArchive, type SnapshotReaderOptions } from './snapshot-reader.js';
import { MANIFEST_MAX_BYTES } from '../format/limits.js';

/**
 * Where a snapshot is: namespace, group and time.
 * @category Datastore
 */
export interface SnapshotRef {
  /** Namespace path (`''` for the root). */
  readonly namespace: string;
  /** Namespace components. */
  readonly nsParts: readonly string[];
  /** The group. */
  readonly group: GroupId;
  /** RFC 3339 UTC time, second resolution. */
  readonly time: string;
}

/**
 * The one identity of a snapshot in JSON output: the first four keys of every snapshot printed.
 * @category Datastore
 */
export interface SnapshotIdentity {
  /** Namespace path (`''` for the root). */
  readonly namespace: string;
  /** The group, `type/id`. */
  readonly group: string;
  /** RFC 3339 UTC time, second resolution. */
  readonly time: string;
  /** `type/id/time`. */
  readonly snapshot: string;
}

/**
 * The {@link SnapshotIdentity} of a snapshot given by namespace, group (`type/id` or a
 * {@link GroupId}) and time; or by namespace and a full `type/id/time` name.
 * @category Datastore
 */
export function snapshotIdentity(namespace: string, group: string | GroupId, time?: string): SnapshotIdentity {
  let g = typeof group === 'string' ? group : formatGroup(group);
  let t = time;
  if (t === undefined) {
    const cut = g.lastIndexOf('/');
    t = g.slice(cut + 1);
    g = g.slice(0, cut);
  }
  return { namespace, group: g, time: t, snapshot: `${g}/${t}` };
}

/** The ids of a snapshot for errors. */
export function snapshotDetails(ref: SnapshotRef): ErrorDetails {
  return { namespace: ref.namespace, snapshot: `${formatGroup(ref.group)}/${ref.time}` };
}

/**
 * A finished snapshot: its manifest exists. Obtain one from {@link BackupGroup.snapshots},
 * {@link Datastore.snapshot} or {@link SnapshotWriter.commit}.
 *
 * @example
 * ```ts
 * const snap = await ds.snapshot('vm/100');          // the newest of the group
 * await using reader = await snap.open();
 * await reader.restore('drive-scsi0.img', '/tmp/disk.raw');
 * ```
 * @category Datastore
 */
export class Snapshot {
  /** @internal */
  constructor(
    private readonly ctx: StoreContext,
    /** Where the snapshot is. */
    readonly ref: SnapshotRef,
    /** The manifest as read. */
    readonly manifest: Manifest,
    /** Whether the snapshot is protected from prune and removal. */
    readonly isProtected: boolean,
  ) {}

  /** Namespace path (`''` for the root). */
  get namespace(): string {
    return this.ref.namespace;
  }

  /** Backup type. */
  get type(): BackupType {
    return this.ref.group.type;
  }

  /** Backup id. */
  get id(): string {
    return this.ref.group.id;
  }

  /** RFC 3339 UTC time. */
  get time(): string {
    return this.ref.time;
  }

  /** Unix seconds. */
  get epoch(): number {
    return parseSnapshotTime(this.ref.time);
  }

  /** `type/id/time`. */
  get name(): string {
    return `${formatGroup(this.ref.group)}/${this.ref.time}`;
  }

  /** The archives. */
  get files(): readonly ManifestFile[] {
    return this.manifest.files;
  }

  /** The verify state, when verified. */
  get verifyState(): 'ok' | 'failed' | undefined {
    return this.manifest.unprotected.verify?.state;
  }

  /** Snapshot notes. */
  get notes(): string {
    return this.manifest.unprotected.notes ?? '';
  }

  /**
   * One archive's manifest entry, by its stored name (`drive-scsi0.img`) or by the name without its
   * extension when exactly one archive has that stem (the rule of {@link SnapshotReader.file}).
   * @throws `ERR_NOT_FOUND`; `ERR_INVALID_ARGUMENT` when the name fits several archives
   */
  archive(name: string): ManifestFile {
    return findArchive(this.manifest.files, name, this.name, snapshotDetails(this.ref));
  }

  /**
   * Opens a reader; it holds a shared lock on the snapshot (so prune skips it) until closed.
   * @throws `ERR_LOCKED` when the snapshot is being removed; `ERR_ABORTED` when `options.signal`
   *   fires while it waits for the lock.
   */
  async open(options: SnapshotReaderOptions = {}): Promise<SnapshotReader> {
    this.ctx.assertOpen();
    const lock = await lockAt(
      this.ctx,
      snapshotLockKey(this.ref.nsParts, this.ref.group, this.ref.time),
      'shared',
      `snapshot ${this.name}`,
      snapshotDetails(this.ref),
      this.ctx.lockTimeoutMs,
      options.signal,
    );
    try {
      // It may have been removed between listing and locking.
      const fresh = await loadSnapshot(this.ctx, this.ref);
      if (fresh === undefined) throw new CairnError('ERR_NOT_FOUND', `snapshot ${this.name} no longer exists`, snapshotDetails(this.ref));
      return new SnapshotReader(this.ctx, this.ref, fresh.manifest, lock, options);
    } catch (e) {
      await lock.release();
      throw e;
    }
  }

  /**
   * Registers a hook that the datastore's close() runs first, while it is still open (see
   * `Datastore.onClose`). Returns the unregister function.
   * @internal
   */
  onClose(hook: () => Promise<void>): () => void {
    return this.ctx.onClose(hook);
  }

  /** Sets the snapshot notes (kept in the manifest's unprotected part). Returns the updated snapshot. */
  async setNotes(notes: string): Promise<Snapshot> {
    return this.updateManifest((m) => ({ ...m, unprotected: { ...m.unprotected, notes } }));
  }

  /**
   * Protects the snapshot from prune and removal, or lifts the protection. Runs under the manifest
   * lock, which removal and moves take too, so the flag never lands in a snapshot being removed.
   * @throws `ERR_NOT_FOUND` when the snapshot was removed or moved meanwhile.
   */
  async setProtected(flag: boolean): Promise<Snapshot> {
    this.ctx.assertOpen();
    const lock = await this.manifestLock();
    try {
      await this.reload();
      const key = `${snapshotKey(this.ref.nsParts, this.ref.group, this.ref.time)}/${PROTECTED_FILE}`;
      if (flag) await this.ctx.backend.put(key, new Uint8Array(0), { sync: this.ctx.config.syncLevel !== 'none' });
      else await this.ctx.backend.delete(key);
    } finally {
      await lock.release();
    }
    return this.reload();
  }

  private manifestLock(signal?: AbortSignal): Promise<FileLock> {
    return lockAt(
      this.ctx,
      manifestLockKey(this.ref.nsParts, this.ref.group, this.ref.time),
      'exclusive',
      `manifest of ${this.name}`,
      snapshotDetails(this.ref),
      Math.max(this.ctx.lockTimeoutMs, 5000),
      signal,
    );
  }

  /**
   * Applies `change` to the manifest under the manifest lock (unprotected part only).
   * `options.signal` ends the wait for the lock with `ERR_ABORTED`.
   */
  async updateManifest(change: (m: Manifest) => Manifest, options: { readonly signal?: AbortSignal } = {}): Promise<Snapshot> {
    this.ctx.assertOpen();
    const lock = await this.manifestLock(options.signal);
    try {
      const cur = await this.reload();
      const next = change(cur.manifest);
      const signedBefore = JSON.stringify({ ...cur.manifest, unprotected: null });
      const signedAfter = JSON.stringify({ ...next, unprotected: null });
      if (signedBefore !== signedAfter) throw new TypeError('updateManifest may change the unprotected part only');
      const key = `${snapshotKey(this.ref.nsParts, this.ref.group, this.ref.time)}/${MANIFEST_FILE}`;
      await this.ctx.backend.put(key, encodeManifest(next), { sync: this.ctx.config.syncLevel !== 'none' });
    } finally {
      await lock.release();
    }
    return this.reload();
  }

  /** Reads the snapshot again. @throws `ERR_NOT_FOUND` when it was removed. */
  async reload(): Promise<Snapshot> {
    const s = await loadSnapshot(this.ctx, this.ref);
    if (s === undefined) throw new CairnError('ERR_NOT_FOUND', `snapshot ${this.name} no longer exists`, snapshotDetails(this.ref));
    return s;
  }

  /**
   * Removes the snapshot: the manifest goes first (the snapshot is then unfinished and invisible),
   * then its files. Its chunks stay until garbage collection.
   * `options.signal` ends the wait for the manifest lock with `ERR_ABORTED`.
   * @throws `ERR_PROTECTED` for a protected snapshot; `ERR_LOCKED` while it is read or is the base
   *   of a running backup.
   */
  async remove(options: { readonly signal?: AbortSignal } = {}): Promise<void> {
    this.ctx.assertOpen();
    const lock = await lockAt(this.ctx, snapshotLockKey(this.ref.nsParts, this.ref.group, this.ref.time), 'exclusive', `snapshot ${this.name}`, snapshotDetails(this.ref), 0);
    try {
      // The manifest lock keeps notes, verify state and the protected flag from being written
      // into a snapshot while it is taken apart.
      const manifestLock = await this.manifestLock(options.signal);
      try {
        const cur = await loadSnapshot(this.ctx, this.ref);
        if (cur === undefined) return;
        if (cur.isProtected) throw new CairnError('ERR_PROTECTED', `snapshot ${this.name} is protected`, snapshotDetails(this.ref));
        await removeSnapshotDir(this.ctx, snapshotKey(this.ref.nsParts, this.ref.group, this.ref.time));
      } finally {
        await manifestLock.release();
      }
    } finally {
      await lock.release();
    }
  }

  /** A plain summary for JSON output. */
  toJSON(): Record<string, unknown> {
    return {
      ...snapshotIdentity(this.namespace, this.ref.group, this.time),
      type: this.type,
      id: this.id,
      protected: this.isProtected,
      files: this.files,
      unprotected: this.manifest.unprotected,
    };
  }
}

/**
 * Takes a snapshot directory apart, manifest first (from then on the snapshot no longer exists for
 * any reader), then its other files, then the directory. The caller holds the snapshot's lock
 * exclusively and its manifest lock. @internal
 */
export async function removeSnapshotDir(ctx: StoreContext, dir: string): Promise<void> {
  // Looked at before anything goes: an entry that is not a regular file (a planted symlink, a FIFO,
  // a directory) stops the removal with ERR_UNSAFE_PATH while the snapshot is still whole. Temp
  // files a concurrent writer may have left since the listing go too. All of it works through
  // directory descriptors, so a directory swapped for a symlink meanwhile cannot lead it outside.
  await removeFileFolder(ctx.backend, dir, MANIFEST_FILE);
}

/** Loads a snapshot; undefined when its directory or manifest does not exist (unfinished). */
export async function loadSnapshot(ctx: StoreContext, ref: SnapshotRef): Promise<Snapshot | undefined> {
  const dir = snapshotKey(ref.nsParts, ref.group, ref.time);
  let bytes: Uint8Array;
  try {
    bytes = await ctx.backend.get(`${dir}/${MANIFEST_FILE}`, undefined, { maxBytes: MANIFEST_MAX_BYTES, code: 'ERR_MANIFEST_CORRUPT' });
  } catch (e) {
    if (isCairnError(e, 'ERR_NOT_FOUND')) return undefined;
    throw e;
  }
  const details = { ...snapshotDetails(ref), datastore: ctx.root, path: ctx.backend.locate(`${dir}/${MANIFEST_FILE}`) };
  const manifest = decodeManifest(bytes, details);
  // The manifest's namespace is where the snapshot was made; a move to another namespace keeps it
  // (FORMAT.md §5), so only the group and time must agree with the location.
  if (manifest.type !== ref.group.type || manifest.id !== ref.group.id || manifest.time !== ref.time) {
    throw new CairnError(
      'ERR_MANIFEST_CORRUPT',
      `manifest of ${formatGroup(ref.group)}/${ref.time} names another snapshot (${manifest.type}/${manifest.id}/${manifest.time})`,
      details,
    );
  }
  const isProtected = (await ctx.backend.stat(`${dir}/${PROTECTED_FILE}`)) !== undefined;
  return new Snapshot(ctx, ref, manifest, isProtected);
}

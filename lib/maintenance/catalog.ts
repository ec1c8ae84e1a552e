/**
 * The catalog (layer L5): which snapshots of a group, or of a namespace and the ones below it,
 * hold a path of a tree archive, with its kind, size and mtime in each. It answers the question
 * "I deleted this file last week: which backups still have it?" without opening every snapshot.
 *
 * The catalog is a **local, rebuildable index**: a LevelDB database (`level`) in
 * `<datastore>/.catalog`, derived only from the snapshots' tree archives. It is not a format that
 * must stay readable: when its layout changes, {@link CATALOG_LAYOUT_VERSION} changes and the
 * catalog is cleared and rebuilt on the next open. Deleting the directory is always safe.
 *
 * Key layout (all keys and values raw bytes, `view` encoding; no sublevels, a one-byte prefix per
 * key kind; namespace paths, group names and archive names never contain 0x00, tree paths neither):
 *
 * ```text
 * 'V'                                                → u32 LE layout version · datastore UUID (ASCII)
 * 'S' ns 00 group 00 time 00 archive                 → marker: state u8 (0 pending, 1 complete)
 *                                                      · 32-byte archive checksum (the manifest's)
 *                                                      · varint entry count
 * 'P' ns 00 group 00 path 00 archive 00 time          → kind u8 · varint size · zigzag varint mtime (ns)
 * ```
 *
 * - `ns` is the namespace path (`a/b`, empty for the root), `group` is `type/id`, `time` the
 *   snapshot's RFC 3339 time (always 20 bytes), `archive` the tree archive's name (`etc.tree`), and
 *   `path` the archive-relative path in raw bytes, `/`-separated, no leading `/` (names need not be
 *   UTF-8). The root directory of an archive is not indexed.
 * - The path comes before archive and time, so every snapshot and archive of a group that holds a
 *   path is one prefix scan (`'P' ns 00 group 00 path 00`); a namespace-wide search is one scan per
 *   group, the groups coming from the markers.
 * - Kind codes: 1 file, 2 dir, 3 symlink, 4 hardlink, 5 chardev, 6 blockdev, 7 fifo, 8 socket (as
 *   in the tree format). The mtime is a zigzag varint of nanoseconds since the epoch, because tree
 *   entries allow ±2^52 seconds, far beyond an i64 of nanoseconds.
 *
 * Consistency: an archive is indexed with one chained batch per {@link BATCH_ENTRIES} entries. The
 * first batch also writes a *pending* marker (so no path key ever exists without a marker naming
 * its snapshot), the last one turns it *complete*. An interrupted update leaves the marker pending,
 * and the next update indexes that archive again (puts of the same keys). A marker whose snapshot
 * is gone, or whose checksum no longer matches the manifest, is *stale*: its path keys are deleted
 * (one scan of the group's path keys) and the marker goes in the last batch.
 *
 * Locking: LevelDB allows one open per process, and a second open in the same process silently
 * breaks the first one's lock (LIBRARY-NOTES trap 25). So the open databases are kept in a
 * process-wide registry by the datastore's real path, and every {@link Catalog.open} in a process
 * shares one database (reference counted; operations on it run one at a time). Another process
 * holding the catalog makes open retry for `lockTimeoutMs`, then fail with `ERR_LOCKED`. Each
 * snapshot is read under its shared lock ({@link Snapshot.open}); snapshots that vanish or are being
 * removed are skipped and reported.
 *
 * File modes: LevelDB creates its files itself (0666 before the umask), also later, during
 * compaction on its own threads. So that no catalog file is ever group- or world-writable, the
 * process's umask gains the group and other write bits (`| 0o022`) while any catalog is open in
 * the process, and is put back when the last one closes (unless someone changed it meanwhile);
 * where the umask cannot be set (a worker thread) the files are chmodded. After open, after every
 * update and after close, the catalog's files are also chmodded to at most 0640, like the rest of
 * the datastore, and the directory is 0750.
 *
 * Read-only datastores ({@link Datastore.readOnly}: read-only media, or a user who cannot write
 * there): LevelDB must write even to read (its LOCK file, a new log, compactions), so the catalog
 * runs on a **temporary copy** ({@link Catalog.temporary}): a private directory made by `mkdtemp`
 * under `os.tmpdir()` (0700, files 0600) into which the datastore's `.catalog` files are copied, as
 * regular files opened without following symbolic links, when it exists and can be read. The copy
 * is kept only if no file of the source changed while it was made (tried three times); a catalog
 * that cannot be copied, or whose copy cannot be opened, is left out and the copy starts empty. Then
 * the copy is brought up to date from the snapshots as usual (which only reads the datastore, without
 * locks), so a search finds the same as on a writable datastore. Nothing is ever written to the
 * datastore. The copy follows the same rules as the catalog itself: one per datastore and process,
 * shared by every open (registry key: the real path plus a suffix), removed at the last close, and
 * at process exit (`process.on('exit')`, so not after a kill). {@link Catalog.rebuild} refuses with
 * `ERR_READ_ONLY`: a rebuilt copy could not be kept.
 */
import path from 'node:path';
import { Level } from 'level';
import { CairnError, ioError, isCairnError, throwIfAborted, type ErrorDetails } from '../errors.js';
import {
  copyCatalog,
  emptyDir,
  makeTemporaryDir,
  prepareCatalogDir,
  realDir,
  relaxUmask,
  removeTemporary,
  tightenModes,
  tightenUmask,
  CATALOG_FILE_MODE_MAX,
  TEMPORARY_FILE_MODE_MAX,
} from '../host/catalog-files.js';
import { MAX_NAMESPACE_DEPTH, parseNamespace } from '../types.js';
import { fromHex, toHex } from '../util/bytes.js';
import { sleep, systemClock } from '../util/clock.js';
import type { Datastore } from '../datastore/datastore.js';
import type { BackupGroup } from '../datastore/group.js';
import type { Snapshot } from '../datastore/snapshot.js';
import type { SnapshotReader } from '../datastore/snapshot-reader.js';
import { splitPath } from '../datastore/tree-reader.js';
import type { TreeEntryKind } from '../format/tree.js';

/**
 * Version of the catalog's key layout; a catalog written with another version is rebuilt.
 * @category Catalog
 */
export const CATALOG_LAYOUT_VERSION = 1;

/**
 * Directory of the catalog under the datastore root.
 * @category Catalog
 */
export const CATALOG_DIR = '.catalog';

/** Path entries per chained batch. */
const BATCH_ENTRIES = 10_000;

/** Default wait for a catalog held by another process, ms. */
const DEFAULT_LOCK_TIMEOUT_MS = 5000;

/**
 * Options of {@link Catalog.open}.
 * @category Catalog
 */
export interface CatalogOpenOptions {
  /** Stops waiting for a catalog that another process holds. */
  readonly signal?: AbortSignal;
  /**
   * How long to retry while another process holds the catalog before failing with `ERR_LOCKED`, ms.
   * @defaultValue 5000
   */
  readonly lockTimeoutMs?: number;
}

/**
 * Which snapshots an operation covers.
 * @category Catalog
 */
export interface CatalogScope {
  /** The namespace. @defaultValue `''` (the root) */
  readonly namespace?: string;
  /**
   * Levels of namespaces below `namespace` to include (0: only `namespace`). Ignored with `group`.
   * @defaultValue 7 (all)
   */
  readonly maxDepth?: number;
  /** Only this group (`type/id`) of `namespace`. */
  readonly group?: string;
}

/**
 * Progress of {@link Catalog.update}, reported after each batch and at the end of each archive.
 * @category Catalog
 */
export interface CatalogProgress {
  /** Namespace of the snapshot being indexed. */
  readonly namespace: string;
  /** `type/id/time`. */
  readonly snapshot: string;
  /** The tree archive. */
  readonly archive: string;
  /** Entries of this archive indexed so far. */
  readonly entries: number;
}

/**
 * Options of {@link Catalog.update}.
 * @category Catalog
 */
export interface CatalogUpdateOptions extends CatalogScope {
  /** Stops the update; archives not finished are indexed again by the next update. */
  readonly signal?: AbortSignal;
  /** Called as archives are indexed. */
  readonly onProgress?: (p: CatalogProgress) => void;
}

/**
 * A snapshot that an update could not read.
 * @category Catalog
 */
export interface CatalogSkip {
  /** Namespace path. */
  readonly namespace: string;
  /** `type/id/time`. */
  readonly snapshot: string;
  /** The archive, when one archive failed. */
  readonly archive?: string;
  /** The error code: `ERR_NOT_FOUND` (removed meanwhile), `ERR_LOCKED` (being removed), or a corruption code. */
  readonly code: string;
  /** The error message. */
  readonly message: string;
}

/**
 * What {@link Catalog.update} did.
 * @category Catalog
 */
export interface CatalogUpdateReport {
  /** Snapshots whose tree archives were indexed (newly, or again after an interruption). */
  readonly indexed: number;
  /** Tree archives indexed. */
  readonly archives: number;
  /** Snapshots dropped from the catalog because they no longer exist (or changed). */
  readonly removed: number;
  /** Path entries written. */
  readonly entries: number;
  /** Snapshots or archives that could not be read, and why (they are tried again next time). */
  readonly skipped: readonly CatalogSkip[];
}

/**
 * Options of {@link Catalog.findPath}.
 * @category Catalog
 */
export interface CatalogFindOptions extends CatalogScope {
  /** Only hits in the tree archive of this name (`etc.tree`). */
  readonly archive?: string;
  /** Stops the update that runs first. */
  readonly signal?: AbortSignal;
}

/**
 * One snapshot archive that holds the path searched for.
 * @category Catalog
 */
export interface CatalogHit {
  /** Namespace path (`''` for the root). */
  readonly namespace: string;
  /** `type/id`, e.g. `vm/100`. */
  readonly group: string;
  /** Snapshot time, RFC 3339 UTC. */
  readonly time: string;
  /** `type/id/time`, as the command line writes snapshots. */
  readonly snapshot: string;
  /** The tree archive holding the path. */
  readonly archive: string;
  /** The archive-relative path found (normalized: no leading, trailing or doubled `/`). */
  readonly path: Buffer;
  /** What the entry is in that snapshot. */
  readonly kind: TreeEntryKind;
  /** File size in bytes (0 for every other kind). */
  readonly size: number;
  /**
   * Modification time in nanoseconds since the epoch, as a `bigint` (as in {@link TreeEntry};
   * the JSON output of the command line writes it as a decimal string).
   */
  readonly mtimeNs: bigint;
}

/** One LevelDB database shared by every {@link Catalog} of a datastore in this process. */
interface SharedDb {
  readonly key: string;
  readonly db: Level<Uint8Array, Uint8Array>;
  /** The LevelDB directory: `<datastore>/.catalog`, or the temporary copy. */
  readonly dir: string;
  /** A temporary copy (read-only datastore), removed at the last close. */
  readonly temporary: boolean;
  refs: number;
  closed: boolean;
  /** Operations run one at a time: each waits for this, and replaces it. */
  queue: Promise<unknown>;
}

interface Registry {
  readonly open: Map<string, Promise<SharedDb>>;
  readonly closing: Map<string, Promise<void>>;
}

// Process-wide, even across two copies of this module (a second LevelDB open in one process breaks
// the lock: trap 25).
const REGISTRY_KEY = Symbol.for('cairn.catalog.registry');
const registry: Registry =
  ((globalThis as Record<symbol, unknown>)[REGISTRY_KEY] as Registry | undefined) ??
  ((globalThis as Record<symbol, unknown>)[REGISTRY_KEY] = { open: new Map(), closing: new Map() } satisfies Registry);

const KINDS: readonly TreeEntryKind[] = ['file', 'dir', 'symlink', 'hardlink', 'chardev', 'blockdev', 'fifo', 'socket'];
const KIND_CODE = new Map<TreeEntryKind, number>(KINDS.map((k, i) => [k, i + 1]));

const P = 0x50; // 'P'
const S = 0x53; // 'S'
const VERSION_KEY = Buffer.from('V');
const TIME_LENGTH = 20;
const PENDING = 0;
const COMPLETE = 1;

/** A present snapshot's tree archive, or a marker, identified by `ns \0 group \0 time \0 archive`. */
interface ArchiveId {
  readonly namespace: string;
  readonly group: string;
  readonly time: string;
  readonly archive: string;
}

interface Marker extends ArchiveId {
  readonly state: number;
  readonly checksum: string;
}

const idKey = (a: ArchiveId): string => `${a.namespace}\0${a.group}\0${a.time}\0${a.archive}`;

/**
 * The catalog of a datastore: finds the snapshots that hold a path.
 *
 * @example
 * ```ts
 * await using catalog = await Catalog.open(ds);
 * for (const hit of await catalog.findPath('home/ann/thesis.tex', { group: 'host/laptop' })) {
 *   console.log(hit.snapshot, hit.archive, hit.size, new Date(Number(hit.mtimeNs / 1_000_000n)));
 * }
 * ```
 * @category Catalog
 */
export class Catalog {
  private closed = false;
  private readonly detach: () => void;

  private constructor(
    private readonly ds: Datastore,
    private readonly shared: SharedDb,
  ) {
    this.detach = ds.attach(this);
  }

  /**
   * Whether this catalog is a temporary copy: the datastore is read-only ({@link Datastore.readOnly}),
   * and LevelDB must write even to read, so the catalog runs on a private copy of the datastore's
   * `.catalog` in the temporary directory (see {@link Catalog.directory}), brought up to date from the
   * snapshots like the catalog itself, and removed at the last close or at process exit. Nothing is
   * written to the datastore, and {@link Catalog.rebuild} fails with `ERR_READ_ONLY`.
   */
  get temporary(): boolean {
    return this.shared.temporary;
  }

  /**
   * The LevelDB directory in use: `<datastore>/.catalog`, or for a {@link Catalog.temporary} catalog
   * its copy, a directory of mode 0700 under `os.tmpdir()` (files 0600).
   */
  get directory(): string {
    return this.shared.dir;
  }

  /**
   * Opens the catalog of a datastore (creating it on first use). Every open in one process shares
   * one database; close each handle. Side effect: while any catalog is open in the process, the
   * process umask includes 0o022 (no group or other write bits), so that LevelDB, which creates
   * its files itself, never makes a group- or world-writable file; it is put back at the last close.
   * On a read-only datastore the catalog is a temporary copy ({@link Catalog.temporary}).
   * @throws `ERR_LOCKED` when another process holds the catalog for longer than `lockTimeoutMs`;
   *   `ERR_ABORTED`; `ERR_IO` (also when a temporary copy cannot be made)
   */
  static async open(ds: Datastore, options: CatalogOpenOptions = {}): Promise<Catalog> {
    ds.assertOpen();
    // A read-only datastore gets a temporary copy, one per datastore and process like the catalog.
    const real = await realDir(ds.root);
    const key = ds.readOnly ? `${real}\0temporary` : real;
    for (;;) {
      throwIfAborted(options.signal, { datastore: ds.root });
      const closing = registry.closing.get(key);
      if (closing !== undefined) {
        await closing;
        continue;
      }
      let p = registry.open.get(key);
      if (p === undefined) {
        const opening = ds.readOnly ? openTemporary(key, ds, options) : openShared(key, ds, options);
        p = opening;
        registry.open.set(key, opening);
        opening.catch(() => {
          if (registry.open.get(key) === opening) registry.open.delete(key);
        });
      }
      const shared = await p;
      if (shared.closed) continue; // closed while we waited: open it again
      shared.refs++;
      return new Catalog(ds, shared);
    }
  }

  private details(): ErrorDetails {
    return { datastore: this.ds.root, path: this.shared.dir };
  }

  private assertOpen(): void {
    if (this.closed) throw new CairnError('ERR_NOT_OPEN', `the catalog of ${this.ds.root} is closed`, this.details());
  }

  private get db(): Level<Uint8Array, Uint8Array> {
    return this.shared.db;
  }

  /** Runs `fn` after every operation queued before it on the shared database. */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new CairnError('ERR_NOT_OPEN', `the catalog of ${this.ds.root} is closed`, this.details()));
    const { dir, temporary } = this.shared;
    const step = async (): Promise<T> => {
      try {
        return await fn();
      } finally {
        await tightenModes(dir, temporary ? TEMPORARY_FILE_MODE_MAX : CATALOG_FILE_MODE_MAX);
      }
    };
    const run = this.shared.queue.then(step, step);
    this.shared.queue = run.catch(() => undefined);
    return run;
  }

  /**
   * Brings the catalog up to date with the snapshots in scope: indexes every finished snapshot's
   * tree archives not indexed yet, and drops the snapshots that no longer exist.
   * @throws `ERR_ABORTED`, `ERR_INVALID_NAME`, `ERR_INVALID_ARGUMENT` (maxDepth), `ERR_NOT_OPEN`
   */
  update(options: CatalogUpdateOptions = {}): Promise<CatalogUpdateReport> {
    return this.exclusive(() => this.doUpdate(options));
  }

  /**
   * The snapshots (of a group, or of a namespace and below) whose tree archives hold `path`,
   * sorted by namespace, group, time and archive. Updates the catalog for that scope first.
   * @param path - archive-relative path (`etc/ssh/sshd_config`), a string or raw bytes
   * @throws `ERR_NOT_FOUND` when the namespace or group does not exist; `ERR_INVALID_ARGUMENT`
   *   for an empty path; `ERR_ABORTED`
   */
  findPath(path: string | Uint8Array, options: CatalogFindOptions = {}): Promise<CatalogHit[]> {
    const parts = splitPath(path);
    if (parts.length === 0) return Promise.reject(new CairnError('ERR_INVALID_ARGUMENT', 'the path to find is empty', this.details()));
    const want = joinParts(parts);
    return this.exclusive(async () => {
      const scope = resolveScope(this.ds, options);
      await this.doUpdate(options);
      if (scope.group !== undefined) {
        const g = this.ds.group(scope.group, { namespace: scope.namespace });
        if (!(await g.exists()))
          throw new CairnError('ERR_NOT_FOUND', `backup group ${g.name} does not exist${scope.namespace ? ` in namespace '${scope.namespace}'` : ''}`, {
            ...this.details(),
            namespace: scope.namespace,
            group: g.name,
          });
      } else {
        await this.ds.namespace(scope.namespace).assertExists();
      }
      const groups = new Map<string, { namespace: string; group: string }>();
      for (const m of await this.markers(scope)) groups.set(`${m.namespace}\0${m.group}`, { namespace: m.namespace, group: m.group });
      const hits: CatalogHit[] = [];
      for (const { namespace, group } of groups.values()) {
        const prefix = Buffer.concat([Buffer.of(P), Buffer.from(namespace), Buffer.of(0), Buffer.from(group), Buffer.of(0), want, Buffer.of(0)]);
        for await (const [k, v] of this.db.iterator({ gte: prefix, lt: upperBound(prefix) })) {
          const rest = Buffer.from(k.buffer, k.byteOffset + prefix.length, k.byteLength - prefix.length);
          const { archive, time } = splitArchiveTime(rest);
          if (options.archive !== undefined && archive !== options.archive) continue;
          const { kind, size, mtimeNs } = decodeValue(v);
          hits.push({ namespace, group, time, snapshot: `${group}/${time}`, archive, path: want, kind, size, mtimeNs });
        }
      }
      return hits.sort((a, b) => cmp(a.namespace, b.namespace) || cmp(a.group, b.group) || cmp(a.time, b.time) || cmp(a.archive, b.archive));
    });
  }

  /**
   * Clears the catalog and indexes every snapshot of the datastore again.
   * @throws `ERR_READ_ONLY` for a {@link Catalog.temporary} catalog (a read-only datastore: the
   *   rebuilt copy could not be kept; searches bring the copy up to date themselves); `ERR_ABORTED`
   */
  rebuild(options: { signal?: AbortSignal; onProgress?: (p: CatalogProgress) => void } = {}): Promise<CatalogUpdateReport> {
    if (this.shared.temporary) {
      try {
        this.ds.assertWritable('rebuild the catalog (a rebuilt temporary copy could not be kept; searches bring the copy up to date themselves)');
      } catch (e) {
        return Promise.reject(e);
      }
    }
    return this.exclusive(async () => {
      await this.db.clear();
      await this.db.put(VERSION_KEY, versionValue(this.ds));
      return this.doUpdate({ ...options, namespace: '', maxDepth: MAX_NAMESPACE_DEPTH });
    });
  }

  /** Closes this handle; the database closes with the last handle of the process. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.detach();
    const s = this.shared;
    if (--s.refs > 0) return;
    s.closed = true;
    if (registry.open.get(s.key) !== undefined) registry.open.delete(s.key);
    const done = (async () => {
      await s.queue;
      try {
        await s.db.close();
      } finally {
        if (s.temporary) await removeTemporary(s.dir);
        else await tightenModes(s.dir);
        relaxUmask();
      }
    })();
    registry.closing.set(
      s.key,
      done.catch(() => undefined),
    );
    try {
      await done;
    } finally {
      registry.closing.delete(s.key);
    }
  }

  /** Alias of {@link Catalog.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** The markers in scope. */
  private async markers(scope: ResolvedScope): Promise<Marker[]> {
    const prefix =
      scope.group !== undefined
        ? Buffer.concat([Buffer.of(S), Buffer.from(scope.namespace), Buffer.of(0), Buffer.from(scope.group), Buffer.of(0)])
        : Buffer.concat([Buffer.of(S), Buffer.from(scope.namespace)]);
    const out: Marker[] = [];
    for await (const [k, v] of this.db.iterator({ gte: prefix, lt: upperBound(prefix) })) {
      const m = decodeMarker(k, v);
      if (m !== undefined && inScope(scope, m.namespace, m.group)) out.push(m);
    }
    return out;
  }

  private async doUpdate(options: CatalogUpdateOptions): Promise<CatalogUpdateReport> {
    this.assertOpen();
    const { signal } = options;
    const scope = resolveScope(this.ds, options);
    throwIfAborted(signal, this.details());
    const skipped: CatalogSkip[] = [];

    // What is there: the finished snapshots' tree archives.
    const present = new Map<string, { snapshot: Snapshot; id: ArchiveId; checksum: string }>();
    for (const g of await this.groupsInScope(scope)) {
      for (const snap of await g.snapshots().catch(notFoundAsEmpty)) {
        for (const f of snap.files) {
          if (f.kind !== 'tree') continue;
          const id = { namespace: snap.namespace, group: g.name, time: snap.time, archive: f.name };
          present.set(idKey(id), { snapshot: snap, id, checksum: f.checksum });
        }
      }
    }
    throwIfAborted(signal, this.details());

    // What the catalog has: drop what is gone or changed; keep what is complete and current.
    const stale: Marker[] = [];
    const done = new Set<string>();
    for (const m of await this.markers(scope)) {
      const p = present.get(idKey(m));
      if (p === undefined || p.checksum !== m.checksum) stale.push(m);
      else if (m.state === COMPLETE) done.add(idKey(m));
    }
    const presentSnapshots = new Set([...present.values()].map((p) => `${p.id.namespace}\0${p.id.group}\0${p.id.time}`));
    const removedSnapshots = new Set(stale.map((m) => `${m.namespace}\0${m.group}\0${m.time}`).filter((k) => !presentSnapshots.has(k)));
    await this.dropStale(stale, signal);

    // Index the rest, one snapshot (one shared lock) at a time.
    const todo = new Map<string, { snapshot: Snapshot; archives: { id: ArchiveId; checksum: string }[] }>();
    for (const [k, p] of present) {
      if (done.has(k)) continue;
      const sk = `${p.id.namespace}\0${p.id.group}\0${p.id.time}`;
      let t = todo.get(sk);
      if (t === undefined) todo.set(sk, (t = { snapshot: p.snapshot, archives: [] }));
      t.archives.push({ id: p.id, checksum: p.checksum });
    }
    let indexed = 0;
    let archives = 0;
    let entries = 0;
    for (const { snapshot, archives: list } of todo.values()) {
      throwIfAborted(signal, this.details());
      let reader: SnapshotReader;
      try {
        reader = await snapshot.open(signal === undefined ? {} : { signal });
      } catch (e) {
        if (isCairnError(e, 'ERR_NOT_FOUND') || isCairnError(e, 'ERR_LOCKED') || isCairnError(e, 'ERR_MANIFEST_CORRUPT')) {
          skipped.push({ namespace: snapshot.namespace, snapshot: snapshot.name, code: e.code, message: e.message });
          continue;
        }
        throw e;
      }
      let any = false;
      try {
        for (const a of list) {
          try {
            entries += await this.indexArchive(reader, snapshot, a.id, a.checksum, options);
            archives++;
            any = true;
          } catch (e) {
            if (isCairnError(e) && SKIP_CODES.has(e.code)) {
              skipped.push({ namespace: snapshot.namespace, snapshot: snapshot.name, archive: a.id.archive, code: e.code, message: e.message });
              continue;
            }
            throw e;
          }
        }
      } finally {
        await reader.close();
      }
      if (any) indexed++;
    }
    return { indexed, archives, removed: removedSnapshots.size, entries, skipped };
  }

  /** The groups of the scope that exist now (none when the namespace is gone). */
  private async groupsInScope(scope: ResolvedScope): Promise<BackupGroup[]> {
    if (scope.group !== undefined) {
      const g = this.ds.group(scope.group, { namespace: scope.namespace });
      return (await g.exists()) ? [g] : [];
    }
    const root = this.ds.namespace(scope.namespace);
    if (!(await root.exists())) return [];
    const out: BackupGroup[] = [];
    for (const n of await root.descendants(scope.maxDepth).catch(notFoundAsEmpty)) out.push(...(await n.groups().catch(notFoundAsEmpty)));
    return out;
  }

  /** Deletes the path keys and markers of stale archives, one scan per group. */
  private async dropStale(stale: readonly Marker[], signal: AbortSignal | undefined): Promise<void> {
    const byGroup = new Map<string, { namespace: string; group: string; archives: Set<string>; markers: Marker[] }>();
    for (const m of stale) {
      const k = `${m.namespace}\0${m.group}`;
      let g = byGroup.get(k);
      if (g === undefined) byGroup.set(k, (g = { namespace: m.namespace, group: m.group, archives: new Set(), markers: [] }));
      g.archives.add(`${m.archive}\0${m.time}`);
      g.markers.push(m);
    }
    for (const g of byGroup.values()) {
      throwIfAborted(signal, this.details());
      const prefix = Buffer.concat([Buffer.of(P), Buffer.from(g.namespace), Buffer.of(0), Buffer.from(g.group), Buffer.of(0)]);
      let batch = this.db.batch();
      try {
        for await (const k of this.db.keys({ gte: prefix, lt: upperBound(prefix) })) {
          const rest = Buffer.from(k.buffer, k.byteOffset + prefix.length, k.byteLength - prefix.length);
          const at = rest.indexOf(0);
          if (at < 0) continue;
          const { archive, time } = splitArchiveTime(rest.subarray(at + 1));
          if (!g.archives.has(`${archive}\0${time}`)) continue;
          batch.del(k);
          if (batch.length >= BATCH_ENTRIES) {
            throwIfAborted(signal, this.details());
            await batch.write();
            batch = this.db.batch();
          }
        }
        for (const m of g.markers) batch.del(markerKey(m));
        await batch.write();
      } catch (e) {
        await batch.close().catch(() => undefined);
        throw e;
      }
    }
  }

  /** Walks one tree archive into the catalog; returns the entries written. */
  private async indexArchive(reader: SnapshotReader, snapshot: Snapshot, id: ArchiveId, checksum: string, options: CatalogUpdateOptions): Promise<number> {
    const { signal, onProgress } = options;
    const tree = await reader.tree(id.archive);
    const head = Buffer.concat([Buffer.of(P), Buffer.from(id.namespace), Buffer.of(0), Buffer.from(id.group), Buffer.of(0)]);
    const tail = Buffer.from(`\0${id.archive}\0${id.time}`, 'latin1');
    const mk = markerKey(id);
    const progress = (n: number): void => onProgress?.({ namespace: id.namespace, snapshot: snapshot.name, archive: id.archive, entries: n });
    let n = 0;
    let batch = this.db.batch();
    batch.put(mk, markerValue(PENDING, checksum, 0));
    try {
      for await (const item of tree.walk()) {
        if (item.path.length === 0) continue;
        batch.put(Buffer.concat([head, item.path, tail]), encodeValue(item.entry.kind, item.entry.size, item.entry.mtimeNs));
        n++;
        if (batch.length >= BATCH_ENTRIES) {
          throwIfAborted(signal, this.details());
          await batch.write();
          batch = this.db.batch();
          progress(n);
        }
      }
      throwIfAborted(signal, this.details());
      batch.put(mk, markerValue(COMPLETE, checksum, n));
      await batch.write();
    } catch (e) {
      await batch.close().catch(() => undefined);
      throw e;
    }
    progress(n);
    return n;
  }
}

/** Errors of one archive that skip it instead of failing the update. */
const SKIP_CODES = new Set<string>(['ERR_NOT_FOUND', 'ERR_TREE_CORRUPT', 'ERR_CHUNK_CORRUPT', 'ERR_CHUNK_MISSING', 'ERR_INDEX_CORRUPT', 'ERR_BLOB_CORRUPT']);

interface ResolvedScope {
  readonly namespace: string;
  readonly maxDepth: number;
  readonly group?: string;
}

function resolveScope(ds: Datastore, options: CatalogScope): ResolvedScope {
  const namespace = options.namespace ?? '';
  parseNamespace(namespace);
  const maxDepth = options.maxDepth ?? MAX_NAMESPACE_DEPTH;
  if (!Number.isInteger(maxDepth) || maxDepth < 0 || maxDepth > MAX_NAMESPACE_DEPTH) {
    throw new CairnError('ERR_INVALID_ARGUMENT', `maxDepth must be an integer from 0 to ${MAX_NAMESPACE_DEPTH}`, { datastore: ds.root });
  }
  if (options.group === undefined) return { namespace, maxDepth };
  return { namespace, maxDepth, group: ds.group(options.group, { namespace }).name };
}

function inScope(scope: ResolvedScope, namespace: string, group: string): boolean {
  if (scope.group !== undefined) return namespace === scope.namespace && group === scope.group;
  if (namespace === scope.namespace) return true;
  if (scope.namespace !== '' && !namespace.startsWith(`${scope.namespace}/`)) return false;
  const below = parseNamespace(namespace).length - parseNamespace(scope.namespace).length;
  return below > 0 && below <= scope.maxDepth;
}

function notFoundAsEmpty(e: unknown): never[] {
  if (isCairnError(e, 'ERR_NOT_FOUND')) return [];
  throw e;
}

async function openShared(key: string, ds: Datastore, options: CatalogOpenOptions): Promise<SharedDb> {
  const dir = path.join(ds.root, CATALOG_DIR);
  const details: ErrorDetails = { datastore: ds.root, path: dir };
  const deadline = systemClock.now() + (options.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS);
  // The directory keeps the paths the catalog lists from other users, like the rest of the
  // datastore (catalogs made before were 0755, hence the chmod). LevelDB's own files: see the
  // module comment (umask while open, chmod passes).
  await prepareCatalogDir(dir, details);
  tightenUmask();
  try {
    const shared = await openLevel(key, ds, dir, details, deadline, options);
    await tightenModes(dir);
    return shared;
  } catch (e) {
    relaxUmask();
    throw e;
  }
}

/**
 * Opens a temporary copy of the catalog of the read-only `ds` (see the module comment): copies the
 * datastore's catalog when it can, and starts empty when that copy cannot be made or opened.
 */
async function openTemporary(key: string, ds: Datastore, options: CatalogOpenOptions): Promise<SharedDb> {
  const src = path.join(ds.root, CATALOG_DIR);
  const dir = await makeTemporaryDir(`the catalog of ${ds.root}`, { datastore: ds.root });
  const details: ErrorDetails = { datastore: ds.root, path: dir };
  tightenUmask();
  try {
    const copied = await copyCatalog(src, dir, options.signal);
    throwIfAborted(options.signal, details);
    let shared: SharedDb;
    try {
      shared = await openLevel(key, ds, dir, details, 0, {}, true);
    } catch (e) {
      if (!copied) throw e;
      // The copy is damaged (or was copied while being written): start from the snapshots.
      await emptyDir(dir);
      shared = await openLevel(key, ds, dir, details, 0, {}, true);
    }
    await tightenModes(dir, TEMPORARY_FILE_MODE_MAX);
    return shared;
  } catch (e) {
    relaxUmask();
    await removeTemporary(dir);
    throw isCairnError(e) ? e : ioError(e, `cannot make a temporary copy of the catalog of ${ds.root} in ${dir}`, details);
  }
}

async function openLevel(key: string, ds: Datastore, dir: string, details: ErrorDetails, deadline: number, options: CatalogOpenOptions, temporary = false): Promise<SharedDb> {
  for (;;) {
    // Binary keys and values everywhere (trap 24: sublevels would need the same; none are used).
    const db = new Level<Uint8Array, Uint8Array>(dir, { keyEncoding: 'view', valueEncoding: 'view' });
    try {
      await db.open();
    } catch (e) {
      if (lockedByOther(e)) {
        if (systemClock.now() < deadline) {
          try {
            await sleep(100, options.signal);
          } catch {
            throwIfAborted(options.signal, details);
          }
          continue;
        }
        throw new CairnError('ERR_LOCKED', `the catalog of ${ds.root} is in use by another process`, details, e);
      }
      throw new CairnError('ERR_IO', `cannot open the catalog ${dir}: ${(e as Error).message}`, details, e);
    }
    try {
      const want = versionValue(ds);
      const have = await db.get(VERSION_KEY);
      if (have === undefined || !Buffer.from(have).equals(want)) {
        await db.clear();
        await db.put(VERSION_KEY, want);
      }
    } catch (e) {
      await db.close().catch(() => undefined);
      throw new CairnError('ERR_IO', `cannot read the catalog ${dir}: ${(e as Error).message}`, details, e);
    }
    return { key, db, dir, temporary, refs: 0, closed: false, queue: Promise.resolve() };
  }
}

function lockedByOther(e: unknown): boolean {
  for (let c: unknown = e; c !== undefined && c !== null; c = (c as { cause?: unknown }).cause) {
    if ((c as { code?: unknown }).code === 'LEVEL_LOCKED') return true;
  }
  return false;
}

function versionValue(ds: Datastore): Buffer {
  const v = Buffer.alloc(4);
  v.writeUInt32LE(CATALOG_LAYOUT_VERSION);
  return Buffer.concat([v, Buffer.from(ds.uuid, 'latin1')]);
}

function joinParts(parts: readonly Buffer[]): Buffer {
  const out: Buffer[] = [];
  parts.forEach((p, i) => {
    if (i > 0) out.push(Buffer.from('/'));
    out.push(p);
  });
  return Buffer.concat(out);
}

/** The smallest key after every key that starts with `prefix`. */
function upperBound(prefix: Uint8Array): Buffer {
  const b = Buffer.from(prefix);
  for (let i = b.length - 1; i >= 0; i--) {
    if (b[i]! < 0xff) {
      b[i]!++;
      return b.subarray(0, i + 1);
    }
  }
  return Buffer.of(0xff, 0xff, 0xff, 0xff); // unreachable for the prefixes used ('P', 'S' first)
}

/** `archive \0 time` at the end of a path key. */
function splitArchiveTime(rest: Uint8Array): { archive: string; time: string } {
  const b = Buffer.from(rest.buffer, rest.byteOffset, rest.byteLength);
  const timeAt = b.length - TIME_LENGTH;
  const at = b.lastIndexOf(0, timeAt - 2);
  return { archive: b.toString('latin1', at + 1, timeAt - 1), time: b.toString('latin1', timeAt) };
}

function markerKey(a: ArchiveId): Buffer {
  return Buffer.concat([Buffer.of(S), Buffer.from(`${a.namespace}\0${a.group}\0${a.time}\0${a.archive}`, 'latin1')]);
}

function markerValue(state: number, checksum: string, entries: number): Buffer {
  const out = [state, ...fromHex(checksum, 32)];
  varint(out, entries);
  return Buffer.from(out);
}

function decodeMarker(k: Uint8Array, v: Uint8Array): Marker | undefined {
  const parts = Buffer.from(k.buffer, k.byteOffset + 1, k.byteLength - 1)
    .toString('latin1')
    .split('\0');
  if (parts.length !== 4 || v.byteLength < 33) return undefined;
  const [namespace, group, time, archive] = parts as [string, string, string, string];
  return { namespace, group, time, archive, state: v[0]!, checksum: toHex(v.subarray(1, 33)) };
}

function encodeValue(kind: TreeEntryKind, size: number, mtimeNs: bigint): Buffer {
  const out = [KIND_CODE.get(kind) ?? 0];
  varint(out, size);
  let z = mtimeNs >= 0n ? mtimeNs << 1n : (-mtimeNs << 1n) - 1n;
  while (z >= 0x80n) {
    out.push(Number(z & 0x7fn) | 0x80);
    z >>= 7n;
  }
  out.push(Number(z));
  return Buffer.from(out);
}

function decodeValue(v: Uint8Array): { kind: TreeEntryKind; size: number; mtimeNs: bigint } {
  const kind = KINDS[(v[0] ?? 0) - 1] ?? 'file';
  let i = 1;
  let size = 0;
  for (let mul = 1; i < v.length; i++, mul *= 128) {
    size += (v[i]! & 0x7f) * mul;
    if ((v[i]! & 0x80) === 0) break;
  }
  i++;
  let z = 0n;
  for (let shift = 0n; i < v.length; i++, shift += 7n) {
    z |= BigInt(v[i]! & 0x7f) << shift;
    if ((v[i]! & 0x80) === 0) break;
  }
  const mtimeNs = (z & 1n) === 0n ? z >> 1n : -((z + 1n) >> 1n);
  return { kind, size, mtimeNs };
}

function varint(out: number[], n: number): void {
  let v = n;
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
}

const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

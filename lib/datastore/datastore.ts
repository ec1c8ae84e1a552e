/**
 * The datastore (layer L4): a directory holding chunks, namespaces, groups and snapshots, with one
 * config file naming its format version, UUID and defaults.
 *
 * Invariants of this layer:
 * - a snapshot is visible only once its manifest exists, and the manifest is written after every
 *   file it names;
 * - every file is written atomically (temp file, fsync per the sync level, rename);
 * - groups, snapshots and the GC are coordinated by OS file locks under `.locks/` (see locks.ts);
 * - nothing below is reachable through a name that did not pass the checks of types.ts.
 */
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { CairnError, ioError, isCairnError, syscallCode } from '../errors.js';
import type { Backend } from '../backend/backend.js';
import { LocalBackend } from '../backend/local.js';
import { CONFIG_FILE_MAX_BYTES } from '../format/limits.js';
import { decodeConfig, encodeConfig, type DatastoreConfig } from '../format/config.js';
import { ChunkStore } from '../store/chunk-store.js';
import { ChunkReader } from '../store/chunk-reader.js';
import { chunkFormatOf } from '../codec/envelope.js';
import { WorkerPool } from '../pool/worker-pool.js';
import { systemClock, type Clock } from '../util/clock.js';
import { parseNamespace, parseSnapshotTime, formatSnapshotTime, MAX_NAMESPACE_DEPTH, type GroupId, type SyncLevel } from '../types.js';
import { DEFAULT_CDC_PARAMS, type CdcParams } from '../codec/chunker.js';
import { assertNativeAddon } from '../codec/native.js';
import { CONFIG_FILE } from './layout.js';
import { findEnclosingDatastore, localDirEntries, prepareLocalDir, unwritable } from '../host/host-dir.js';
import { Namespace, type RemoveNamespaceReport } from './namespace.js';
import type { BackupGroup } from './group.js';
import type { Snapshot } from './snapshot.js';
import { makeNamespaceFolder, removeFolder } from './keyspace.js';
import { moveGroup, moveNamespace, type MoveGroupOptions, type MoveGroupReport, type MoveNamespaceOptions, type MoveNamespaceReport } from './move.js';

/**
 * The default image chunk size: 1 MiB, chosen from the chunk-size sweep in bench/ (bench/results/,
 * 512 MiB image, 2-core VM). First backup: 64 KiB 74 MB/s, 256 KiB 157, 1 MiB 265, 4 MiB 537 (the
 * cost per chunk file, not per byte, dominates below 1 MiB). Incremental after rewriting 1 % of the
 * 4 KiB blocks at uniformly random places (the worst case for large chunks): 64 KiB stores 9 % of
 * the image again, 256 KiB 28 %, 1 MiB 54 %, 4 MiB 59 %. 1 MiB keeps half of 4 MiB's first-backup
 * speed, stores less on every incremental, and keeps the chunk count (files to verify and collect)
 * at one per MiB. Datastores whose images see small scattered writes and long retention should pick
 * 256 KiB or 64 KiB (`imageChunkSize`, or `chunkSize` per backup).
 * @category Datastore
 */
export const DEFAULT_IMAGE_CHUNK_SIZE = 1024 * 1024;

/**
 * Options of {@link Datastore.open}.
 * @category Datastore
 */
export interface DatastoreOpenOptions {
  /**
   * Worker threads for hashing and compression (0: inline on the main thread).
   * @defaultValue the available cores
   */
  readonly threads?: number;
  /**
   * Where the datastore's content (config, chunks, namespaces, groups, snapshots) is stored. The
   * directory given to `open`/`create` then only holds host-local state (the `.locks/` tree); the
   * backend is not closed with the datastore.
   * @defaultValue a {@link LocalBackend} over that directory: everything in one directory
   */
  readonly backend?: Backend;
  /** Use this pool instead of starting one (it is not closed with the datastore). */
  readonly pool?: WorkerPool;
  /** Source of time (tests). @defaultValue the system clock */
  readonly clock?: Clock;
  /**
   * How long to wait for a lock held by another operation before failing with `ERR_LOCKED`, in ms.
   * @defaultValue 0 (fail at once)
   */
  readonly lockTimeoutMs?: number;
  /**
   * Bytes of decoded chunks cached for random reads.
   * @defaultValue 32 MiB
   */
  readonly cacheBytes?: number;
  /**
   * Open read-only even when the datastore could be written (see {@link Datastore.readOnly}).
   * @defaultValue false (read-only only when the datastore or its lock tree cannot be written)
   */
  readonly readOnly?: boolean;
}

/**
 * Options of {@link Datastore.create}: the recorded defaults plus the open options.
 * @category Datastore
 */
export interface DatastoreCreateOptions extends DatastoreOpenOptions {
  /**
   * Default fixed chunk size of image archives (power of two, 64 KiB to 16 MiB).
   * @defaultValue {@link DEFAULT_IMAGE_CHUNK_SIZE}
   */
  readonly imageChunkSize?: number;
  /** Content-defined chunker parameters for streams and trees. @defaultValue {@link DEFAULT_CDC_PARAMS} */
  readonly cdc?: Partial<CdcParams>;
  /**
   * `none`: no fsync (fast, unsafe on power loss); `file`: fsync every file and directory;
   * `filesystem`: one syncfs of the datastore's filesystem before each manifest is written (PBS's
   * default, nearly as safe as `file` and much faster).
   * @defaultValue 'filesystem'
   */
  readonly syncLevel?: SyncLevel;
}

/**
 * Options of {@link Datastore.listNamespaces}.
 * @category Datastore
 */
export interface ListNamespacesOptions {
  /** Start here. @defaultValue the root */
  readonly parent?: string;
  /** Levels below `parent` to descend (0: only `parent`). @defaultValue 7 */
  readonly maxDepth?: number;
}

/**
 * A datastore: open it, then reach namespaces, groups and snapshots from it.
 *
 * @example
 * ```ts
 * import { Datastore } from 'cairn';
 * await using ds = await Datastore.create('./store');
 * const w = await ds.group('vm/100').backup();
 * await w.addImage('drive-scsi0', './disk.raw');
 * const snap = await w.commit();
 * await using r = await snap.open();
 * await r.restore('drive-scsi0.img', './restored.raw');
 * ```
 * @category Datastore
 */
export class Datastore {
  /**
   * Absolute path of the root directory: the whole datastore on the local backend, its host-local
   * state (locks) when {@link DatastoreOpenOptions.backend} holds the content elsewhere.
   */
  readonly root: string;
  /** @internal */
  readonly backend: Backend;
  /** The config as read at open. */
  readonly config: DatastoreConfig;
  /** @internal */
  readonly chunks: ChunkStore;
  /** @internal */
  readonly clock: Clock;
  /** @internal */
  readonly lockTimeoutMs: number;
  /**
   * True when the datastore is open read-only: it is on read-only media (EROFS), this user cannot
   * write its lock tree (EACCES), or {@link DatastoreOpenOptions.readOnly} asked for it. Readers
   * (listing, show, restore, mount, verify) then work **without locks**, so a prune or GC run by
   * someone who can write could remove what is being read; verify checks everything but records
   * no verify state and quarantines nothing. Everything that writes (backup, prune, forget, GC,
   * notes, protect, moves, namespace changes, a catalog rebuild) fails with `ERR_READ_ONLY`;
   * a catalog search runs on a temporary copy of the catalog (`Catalog.temporary`).
   */
  readonly readOnly: boolean;
  /** Why the datastore is read-only (`EROFS`, `EACCES`, `option`), when it is. */
  readonly readOnlyReason: string | undefined;
  private ownPool: WorkerPool | undefined;
  private readonly sharedPool: WorkerPool | undefined;
  private readonly threads: number | undefined;
  private reader: ChunkReader | undefined;
  private readonly cacheBytes: number | undefined;
  private status: 'open' | 'closing' | 'closed' = 'open';
  private closing: Promise<void> | undefined;
  private readonly children = new Set<{ close(): Promise<void> }>();
  private readonly closeHooks = new Set<() => Promise<void>>();

  private constructor(root: string, backend: Backend, config: DatastoreConfig, options: DatastoreOpenOptions, readOnlyReason: string | undefined) {
    this.root = root;
    this.readOnly = readOnlyReason !== undefined;
    this.readOnlyReason = readOnlyReason;
    this.backend = backend;
    this.config = config;
    this.clock = options.clock ?? systemClock;
    this.chunks = new ChunkStore(this.backend, config.syncLevel, this.clock, chunkFormatOf(config));
    this.lockTimeoutMs = options.lockTimeoutMs ?? 0;
    this.sharedPool = options.pool;
    this.threads = options.threads;
    this.cacheBytes = options.cacheBytes;
  }

  /** The datastore's UUID. */
  get uuid(): string {
    return this.config.uuid;
  }

  /**
   * Creates a datastore in `dir` (which must not exist or be empty) and opens it.
   * @throws `ERR_DATASTORE_EXISTS` when `dir` is not empty; `ERR_NESTED_DATASTORE` when `dir` is
   *   inside another datastore; `ERR_INVALID_ARGUMENT` for bad defaults; `ERR_NATIVE` as for
   *   {@link Datastore.open}.
   */
  static async create(dir: string, options: DatastoreCreateOptions = {}): Promise<Datastore> {
    // A missing or unloadable native addon is said here, with what to do, not at the first lock.
    assertNativeAddon();
    const root = path.resolve(dir);
    const outer = await findEnclosingDatastore(path.dirname(root), CONFIG_FILE, CONFIG_FILE_MAX_BYTES);
    if (outer !== undefined) {
      throw new CairnError('ERR_NESTED_DATASTORE', `cannot create a datastore inside the datastore at ${outer}`, { datastore: outer, path: root });
    }
    const entries = await localDirEntries(root);
    if (entries !== undefined && entries.length > 0) {
      throw new CairnError('ERR_DATASTORE_EXISTS', `${root} is not empty${entries.includes(CONFIG_FILE) ? ' (a datastore is already there)' : ''}`, { path: root });
    }
    const backend = backendOf(root, options);
    if ((await backend.stat(CONFIG_FILE)) !== undefined) {
      throw new CairnError('ERR_DATASTORE_EXISTS', `${backend.location} holds a datastore already`, { path: backend.locate(CONFIG_FILE) });
    }
    const clock = options.clock ?? systemClock;
    const config: DatastoreConfig = {
      format: 'cairn-datastore',
      version: 1,
      uuid: randomUUID(),
      created: formatSnapshotTime(Math.floor(clock.now() / 1000)),
      imageChunkSize: options.imageChunkSize ?? DEFAULT_IMAGE_CHUNK_SIZE,
      cdc: { ...DEFAULT_CDC_PARAMS, ...options.cdc },
      syncLevel: options.syncLevel ?? 'filesystem',
    };
    // Validate by round-tripping through the decoder: one set of rules for create and open.
    const bytes = encodeConfig(config);
    try {
      decodeConfig(bytes, { path: root });
    } catch (e) {
      throw new CairnError('ERR_INVALID_ARGUMENT', `bad datastore options: ${(e as Error).message}`, { path: root }, e);
    }
    await prepareLocalDir(root);
    await ChunkStore.prepare(backend);
    await backend.put(CONFIG_FILE, bytes, { sync: config.syncLevel !== 'none' });
    return Datastore.open(root, options);
  }

  /**
   * Opens the datastore at `dir`, or creates it there when `dir` does not exist or holds nothing
   * (as a first run of a backup agent wants). A directory that holds something else is never
   * touched: creating refuses it with `ERR_DATASTORE_EXISTS`.
   *
   * @example
   * ```ts
   * const ds = await Datastore.openOrCreate(process.env.CAIRN_STORE ?? './cairn-store');
   * ```
   * @throws as {@link Datastore.open} and {@link Datastore.create}
   */
  static async openOrCreate(dir: string, options: DatastoreCreateOptions = {}): Promise<Datastore> {
    try {
      return await Datastore.open(dir, options);
    } catch (e) {
      if (!isCairnError(e, 'ERR_NOT_A_DATASTORE') && !isCairnError(e, 'ERR_NOT_FOUND')) throw e;
    }
    try {
      return await Datastore.create(dir, options);
    } catch (e) {
      if (!isCairnError(e, 'ERR_DATASTORE_EXISTS')) throw e;
      // Another process may have created it meanwhile; otherwise the directory holds something else.
      return Datastore.open(dir, options).catch(() => {
        throw e;
      });
    }
  }

  /**
   * Opens an existing datastore.
   * @throws `ERR_NOT_A_DATASTORE` when `dir` holds no Cairn config; `ERR_CONFIG_CORRUPT` when the
   *   config is damaged; `ERR_FORMAT_VERSION` when it was written by a newer Cairn; `ERR_NATIVE`
   *   when Cairn's native addon is missing or does not load here (the message says what to do).
   */
  static async open(dir: string, options: DatastoreOpenOptions = {}): Promise<Datastore> {
    assertNativeAddon();
    const root = path.resolve(dir);
    const backend = backendOf(root, options);
    let bytes: Uint8Array;
    try {
      // Bounded, regular files only: a config that is a symlink to /dev/zero or a FIFO fails at once.
      bytes = await backend.get(CONFIG_FILE, undefined, { maxBytes: CONFIG_FILE_MAX_BYTES, code: 'ERR_CONFIG_CORRUPT' });
    } catch (e) {
      if (isCairnError(e, 'ERR_CONFIG_CORRUPT')) throw new CairnError('ERR_CONFIG_CORRUPT', e.message, { datastore: root, ...e.details }, e.cause);
      const c = isCairnError(e, 'ERR_NOT_FOUND') ? 'ENOENT' : isCairnError(e) ? e.details.syscallCode : syscallCode(e);
      if (c === 'ENOENT' || c === 'ENOTDIR') {
        throw new CairnError('ERR_NOT_A_DATASTORE', `${root} is not a Cairn datastore (no ${CONFIG_FILE}); create one with \`cairn init ${dir}\``, { path: root }, e);
      }
      throw ioError(e, `cannot read the config of ${root}`, { path: root });
    }
    const config = decodeConfig(bytes, { datastore: root, path: backend.locate(CONFIG_FILE) });
    const readOnly = options.readOnly === true ? 'option' : await unwritable(root);
    return new Datastore(root, backend, config, options, readOnly);
  }

  /**
   * Throws `ERR_READ_ONLY` when the datastore is read-only ({@link Datastore.readOnly}).
   * @param what - the operation, for the message (`create namespace a`)
   * @internal
   */
  assertWritable(what: string): void {
    if (this.readOnly) throw new CairnError('ERR_READ_ONLY', `datastore ${this.root} is read-only (${this.readOnlyReason}): cannot ${what}`, { datastore: this.root });
  }

  /** @internal */
  assertOpen(): void {
    if (this.status !== 'open') throw new CairnError('ERR_NOT_OPEN', `datastore ${this.root} is ${this.status}`, { datastore: this.root });
  }

  /** The worker pool (started on first use). */
  pool(): WorkerPool {
    this.assertOpen();
    if (this.sharedPool !== undefined) return this.sharedPool;
    this.ownPool ??= new WorkerPool(this.threads === undefined ? {} : { threads: this.threads });
    return this.ownPool;
  }

  /** @internal */
  chunkReader(): ChunkReader {
    this.reader ??= new ChunkReader(this.chunks, this.pool(), this.cacheBytes === undefined ? {} : { cacheBytes: this.cacheBytes });
    return this.reader;
  }

  /** @internal */
  attach(child: { close(): Promise<void> }): () => void {
    this.children.add(child);
    return () => this.children.delete(child);
  }

  /**
   * Registers a hook that {@link Datastore.close} runs first, while the datastore is still open
   * (the FUSE adapter unmounts there). A hook that throws makes close() fail with its error and
   * leaves the datastore open. Returns the unregister function.
   * @internal
   */
  onClose(hook: () => Promise<void>): () => void {
    this.assertOpen();
    this.closeHooks.add(hook);
    return () => this.closeHooks.delete(hook);
  }

  /** A namespace (no I/O; it need not exist). `''` is the root. @throws `ERR_INVALID_NAME` */
  namespace(ns = ''): Namespace {
    this.assertOpen();
    return new Namespace(this, ns);
  }

  /**
   * A backup group (`vm/100`) in a namespace (no I/O; the first backup creates it).
   * @throws `ERR_INVALID_NAME`
   */
  group(group: string | GroupId, options: { namespace?: string } = {}): BackupGroup {
    return this.namespace(options.namespace ?? '').group(group);
  }

  /**
   * A snapshot by reference: `type/id/time`, or `type/id` for the group's newest.
   * @throws `ERR_NOT_FOUND`, `ERR_INVALID_NAME`
   */
  async snapshot(ref: string, options: { namespace?: string } = {}): Promise<Snapshot> {
    this.assertOpen();
    const parts = ref.split('/');
    if (parts.length !== 2 && parts.length !== 3) {
      throw new CairnError('ERR_INVALID_NAME', `snapshot '${ref}' must be written type/id or type/id/time`, { snapshot: ref });
    }
    const group = this.group(`${parts[0]}/${parts[1]}`, options);
    if (parts.length === 3) {
      parseSnapshotTime(parts[2]!);
      return group.snapshot(parts[2]!);
    }
    const s = await group.newest();
    if (s === undefined) {
      throw new CairnError('ERR_NOT_FOUND', `backup group ${group.name} has no snapshots${options.namespace ? ` in namespace '${options.namespace}'` : ''}`, {
        namespace: options.namespace ?? '',
        group: group.name,
      });
    }
    return s;
  }

  /**
   * Creates a namespace; its parent must exist.
   * @throws `ERR_EXISTS`, `ERR_NOT_FOUND` (parent), `ERR_INVALID_NAME`
   */
  async createNamespace(ns: string): Promise<Namespace> {
    this.assertOpen();
    this.assertWritable(`create namespace '${ns}'`);
    const n = new Namespace(this, ns);
    if (n.depth === 0) throw new CairnError('ERR_EXISTS', 'the root namespace always exists', { namespace: '' });
    if (await n.exists()) throw new CairnError('ERR_EXISTS', `namespace '${ns}' exists`, { namespace: ns });
    await new Namespace(this, n.parentPath!).assertExists().catch((e: unknown) => {
      throw isCairnError(e, 'ERR_NOT_FOUND') ? new CairnError('ERR_NOT_FOUND', `cannot create namespace '${ns}': parent '${n.parentPath}' does not exist`, { namespace: ns }) : e;
    });
    await makeNamespaceFolder(this.backend, n.key);
    return n;
  }

  /** Namespaces from `parent` down to `maxDepth` levels below it, depth first. */
  async listNamespaces(options: ListNamespacesOptions = {}): Promise<Namespace[]> {
    this.assertOpen();
    const parent = new Namespace(this, options.parent ?? '');
    const maxDepth = options.maxDepth ?? MAX_NAMESPACE_DEPTH;
    if (!Number.isInteger(maxDepth) || maxDepth < 0 || maxDepth > MAX_NAMESPACE_DEPTH) {
      throw new CairnError('ERR_INVALID_ARGUMENT', `maxDepth must be an integer from 0 to ${MAX_NAMESPACE_DEPTH}`);
    }
    return parent.descendants(maxDepth);
  }

  /**
   * Removes a namespace. Without `recursive` it must be empty (no groups, no child namespaces).
   * With `recursive`, every snapshot below is removed except protected ones and ones in use; the
   * namespaces that still hold those are kept, and the report lists them.
   * @throws `ERR_NOT_EMPTY`, `ERR_NOT_FOUND`, `ERR_INVALID_ARGUMENT` (the root)
   */
  async removeNamespace(ns: string, options: { recursive?: boolean } = {}): Promise<RemoveNamespaceReport> {
    this.assertOpen();
    this.assertWritable(`remove namespace '${ns}'`);
    parseNamespace(ns);
    const n = new Namespace(this, ns);
    if (n.depth === 0) throw new CairnError('ERR_INVALID_ARGUMENT', 'the root namespace cannot be removed', { namespace: '' });
    await n.assertExists();
    const report: RemoveNamespaceReport = { removed: false, removedSnapshots: [], keptProtected: [], keptLocked: [] };
    if (options.recursive !== true) {
      const groups = await n.groups();
      const children = await n.children();
      if (groups.length > 0 || children.length > 0) {
        throw new CairnError(
          'ERR_NOT_EMPTY',
          `namespace '${ns}' is not empty (${groups.length} groups, ${children.length} namespaces); remove it recursively to delete its snapshots`,
          { namespace: ns },
        );
      }
    }
    const all = await n.descendants();
    for (const sub of all.reverse()) {
      let keep = false;
      for (const g of await sub.groups()) {
        for (const s of await g.snapshots()) {
          const label = `${sub.path}:${s.name}`;
          if (s.isProtected) {
            report.keptProtected.push(label);
            keep = true;
            continue;
          }
          try {
            await s.remove();
            report.removedSnapshots.push(label);
          } catch (e) {
            if (isCairnError(e, 'ERR_LOCKED')) {
              report.keptLocked.push(label);
              keep = true;
            } else if (isCairnError(e, 'ERR_PROTECTED')) {
              report.keptProtected.push(label);
              keep = true;
            } else {
              throw e;
            }
          }
        }
        if (!keep) await removeFolder(this.backend, `${sub.key}/${g.type}/${g.id}`);
      }
      if (!keep) await sub.removeDirsIfEmpty();
    }
    const gone = !(await n.exists());
    return { ...report, removed: gone };
  }

  /**
   * Moves a backup group to another namespace (which must exist). Its snapshots move oldest first,
   * each under its own locks; a snapshot in use (read, mounted, the base of a backup) stays in the
   * source and is reported in `skipped`; run the move again later to finish it. Into an existing
   * group of the same name the snapshots merge only when both groups have the same owner and every
   * moved snapshot is newer than the target's newest. Owner and notes move along (on a merge with
   * differing notes the target's are kept and `notesConflict` is set). A garbage collection running
   * meanwhile never loses the chunks of a snapshot in transit (move-journal.ts).
   *
   * @example
   * ```ts
   * const r = await ds.moveGroup('vm/100', { from: 'site-a', to: 'archive' });
   * console.log(`${r.moved.length} snapshots moved, ${r.skipped.length} in use`);
   * ```
   * @throws `ERR_NOT_FOUND` (group or target namespace), `ERR_LOCKED` (a backup of the group runs
   *   in either namespace), `ERR_CONFLICT` (owners differ), `ERR_TIME_ORDER` (a moved snapshot is not
   *   newer than the target's newest), `ERR_INVALID_ARGUMENT` (same namespace), `ERR_ABORTED`.
   */
  async moveGroup(group: string | GroupId, where: { from?: string; to: string }, options: MoveGroupOptions = {}): Promise<MoveGroupReport> {
    this.assertOpen();
    this.assertWritable('move a group');
    const g = this.group(group, { namespace: where.from ?? '' });
    return moveGroup(this, g.namespace, g.group, where.to, options);
  }

  /**
   * Moves a namespace, with its groups and (down to `maxDepth`) the namespaces below it, to another
   * path: `a/b` to `c` makes `a/b/x` `c/x`. The target is created when missing (its parent must
   * exist); an existing target is merged into, group by group, with the rules of
   * {@link Datastore.moveGroup}. Groups that cannot move (in use, owner or time-order conflicts) stay
   * and are listed in `failedGroups`; source namespaces left empty are removed (`deleteSource`).
   *
   * @example
   * ```ts
   * const r = await ds.moveNamespace('old-site', 'sites/old');
   * for (const f of r.failedGroups) console.warn(`${f.namespace}:${f.group} stayed: ${f.reason}`);
   * ```
   * @throws `ERR_NOT_FOUND` (source, or the target's parent), `ERR_INVALID_ARGUMENT` (the root,
   *   into itself, too deep), `ERR_ABORTED`.
   */
  async moveNamespace(from: string, to: string, options: MoveNamespaceOptions = {}): Promise<MoveNamespaceReport> {
    this.assertOpen();
    this.assertWritable('move a namespace');
    return moveNamespace(this, from, to, options);
  }

  /**
   * Closes the datastore: first unmounts the FUSE mounts made on it (`mountSnapshot`,
   * `mountDatastore` of `cairn/fuse`), newest first, then closes open readers and aborts
   * uncommitted writers, then stops the worker pool. Idempotent.
   *
   * A mount is unmounted plainly, not lazily: when the kernel refuses because the mount is busy (a
   * process has a file, or its working directory, on it), close() fails with `ERR_LOCKED` naming
   * the mountpoint (`details.path`; several busy mounts: all of them, comma-separated) and the
   * datastore stays open, with that mount still served; the mounts that could go are gone. Call
   * close() again once the mount is free, or unmount it first with `Mount.unmount()`, which
   * detaches it lazily whatever is open on it.
   * @throws `ERR_LOCKED` (a busy mount)
   */
  async close(): Promise<void> {
    if (this.closing !== undefined) return this.closing;
    const closing = (async () => {
      const failures: CairnError[] = [];
      for (const hook of [...this.closeHooks].reverse()) {
        try {
          await hook();
          this.closeHooks.delete(hook);
        } catch (e) {
          failures.push(isCairnError(e) ? e : ioError(e, `cannot close the datastore ${this.root}`, { datastore: this.root }));
        }
      }
      if (failures.length === 1) throw failures[0]!;
      if (failures.length > 1) {
        const paths = failures.map((f) => f.details.path).filter((p) => p !== undefined);
        throw new CairnError(
          failures[0]!.code,
          failures.map((f) => f.message).join('; '),
          { datastore: this.root, ...(paths.length > 0 ? { path: paths.join(', ') } : {}) },
          failures[0],
        );
      }
      this.status = 'closing';
      for (const c of [...this.children]) await c.close().catch(() => undefined);
      await this.ownPool?.close();
      this.status = 'closed';
    })();
    this.closing = closing;
    // A refused close can be tried again.
    closing.catch(() => {
      if (this.closing === closing) this.closing = undefined;
    });
    return closing;
  }

  /** Alias of {@link Datastore.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** The backend of a datastore opened at `root`: the one given, or the local directory itself. */
function backendOf(root: string, options: DatastoreOpenOptions): Backend {
  return options.backend ?? new LocalBackend(root);
}

/**
 * Mounting with fuse-native (layer L6, public API only): maps the kernel's requests onto the node
 * tree of vfs.ts. Conventions and traps of fuse-native are in ../shared/LIBRARY-NOTES.md §1; the
 * ones this file is built around:
 * - every callback gets 0 or a negative errno first; `read` calls back with the byte count only;
 * - a handler must never throw or let a promise reject unhandled (the process dies and leaves a
 *   stale mount): every handler goes through {@link Handlers.run}, which turns errors into errnos;
 * - mount only from the main thread; a process must not read its own mount synchronously;
 * - `use_ino` and `ro` cannot be passed as options, so they ride along in `fsname`
 *   (`-o fsname=cairn,use_ino,ro`), which libfuse splits at the comma: inode numbers are ours
 *   (hardlinks share one), and the mount is read-only for the kernel too;
 * - every mount has `default_permissions`: the kernel checks each access against the modes and
 *   owners the mount shows (a tree archive's own; the mounting user's, `imageMode` and `dirMode`,
 *   for what the mount makes up), so `allow_other` lets other users see only what those allow;
 * - paths arrive as UTF-8 strings: names that are not UTF-8 are shown escaped (names.ts);
 * - an open file handle holds its snapshot (reader and shared lock) until released.
 */
import { execFile } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import Fuse from 'fuse-native';
import { CairnError, isCairnError, systemClock, type Datastore, type Snapshot, type SnapshotReader } from '../index.js';
import { InodeTable, datastoreRoot, snapshotRoot, type NodeAttr, type ReaderSource, type ViewModes, type VNode } from './vfs.js';

/**
 * Options of {@link mountSnapshot} and {@link mountDatastore}.
 * @category Mount
 */
export interface MountOptions {
  /**
   * Let other users reach the mount (`allow_other`; root needs no fuse.conf entry). What they may
   * read is what the modes and owners shown allow (the mount always has `default_permissions`):
   * a tree archive's entries keep their own, images and blobs are the mounting user's with
   * {@link MountOptions.imageMode}, the directories the mount makes up have
   * {@link MountOptions.dirMode}.
   * @defaultValue false
   */
  readonly allowOther?: boolean;
  /**
   * Permission bits of image and blob archives, which belong to the mounting user: only read bits
   * (a subset of `0o444`). `0o444` lets every user who reaches the mount read them.
   * @defaultValue 0o400
   */
  readonly imageMode?: number;
  /**
   * Permission bits of the directories the mount makes up, which belong to the mounting user: the
   * root of a snapshot mount (which lists only archive names); a datastore mount's namespace, type,
   * group and snapshot directories (which name tenants, hosts and VMs). Only read and search bits
   * (a subset of `0o555`).
   * @defaultValue 0o555 for {@link mountSnapshot}, 0o500 for {@link mountDatastore}
   */
  readonly dirMode?: number;
  /**
   * Chunks read ahead for a sequential reader of an image.
   * @defaultValue 4
   */
  readonly readAhead?: number;
  /**
   * Called for every failed request that is not a plain "no such file": a corrupt or missing chunk,
   * an I/O error. The request gets EIO and the mount stays up.
   * @defaultValue a line on stderr naming the path and the error (with its digest)
   */
  readonly onError?: (error: unknown, op: string, path: string) => void;
  /** Passed to libfuse as `-o debug` (very verbose). */
  readonly debug?: boolean;
}

/**
 * Options of {@link mountDatastore}.
 * @category Mount
 */
export interface MountDatastoreOptions extends MountOptions {
  /**
   * Show this namespace (and those below it) instead of the whole datastore.
   * @defaultValue the root
   */
  readonly namespace?: string;
  /**
   * Snapshots kept open at once; the least recently used is closed first (an open snapshot is
   * locked against prune). A snapshot with an open file is never closed, so more than this many
   * stay open while that many have open files.
   * @defaultValue 16
   */
  readonly maxOpenSnapshots?: number;
  /**
   * A snapshot nobody has read for this long, and that has no open file, is closed (its prune
   * lock released), ms. A snapshot with an open file stays open until the last one is closed.
   * @defaultValue 10 000
   */
  readonly idleCloseMs?: number;
}

/**
 * A mounted snapshot or datastore. It ends with {@link Mount.unmount}, or with the datastore it was
 * made on: `Datastore.close()` unmounts it first (plainly; a busy mount makes that close fail with
 * `ERR_LOCKED` naming the mountpoint, and stay up).
 * @category Mount
 */
export interface Mount {
  /** Absolute path of the mountpoint. */
  readonly mountpoint: string;
  /**
   * Unmounts (lazily, so open files do not block it: processes that still have a file open on it
   * get errors from then on) and releases the snapshots. Idempotent.
   */
  unmount(): Promise<void>;
  /** Alias of {@link Mount.unmount}. */
  [Symbol.asyncDispose](): Promise<void>;
}

const O_ACCMODE = 3;
const W_OK = 2;

interface Handle {
  node: VNode;
  /** Releases what the handle holds open (its snapshot). */
  unhold?: () => void;
  /** End of the last read, for read-ahead. */
  lastEnd: number;
  /** Read-ahead has been started up to here. */
  aheadTo: number;
}

/** Caches resolved paths; nodes of a snapshot are immutable, the datastore levels above change. */
class PathCache {
  private readonly map = new Map<string, { node: Promise<VNode | undefined>; at: number }>();
  constructor(
    private readonly ttlMs: number,
    private readonly max: number,
  ) {}

  get(p: string, now: number): Promise<VNode | undefined> | undefined {
    const e = this.map.get(p);
    if (e === undefined) return undefined;
    if (now - e.at > this.ttlMs) {
      this.map.delete(p);
      return undefined;
    }
    // Keep recently used entries at the end (Map order) for the eviction below.
    this.map.delete(p);
    this.map.set(p, e);
    return e.node;
  }

  set(p: string, node: Promise<VNode | undefined>, now: number): void {
    this.map.set(p, { node, at: now });
    node.catch(() => this.map.delete(p));
    while (this.map.size > this.max) this.map.delete(this.map.keys().next().value!);
  }
}

const ERRNO: Record<string, number> = { ENOENT: Fuse.ENOENT, ENOTDIR: Fuse.ENOTDIR, EISDIR: Fuse.EISDIR, EINVAL: Fuse.EINVAL };

/** The request handlers of one mount. */
class Handlers {
  private readonly handles = new Map<number, Handle>();
  private nextFh = 1;
  private readonly cache: PathCache;

  constructor(
    private readonly root: VNode,
    private readonly options: MountOptions,
    ttlMs: number,
  ) {
    this.cache = new PathCache(ttlMs, 200_000);
  }

  /** Resolves a path from the root, component by component, through the cache. */
  resolve(p: string): Promise<VNode | undefined> {
    if (p === '/') return Promise.resolve(this.root);
    const now = systemClock.now();
    const hit = this.cache.get(p, now);
    if (hit !== undefined) return hit;
    const slash = p.lastIndexOf('/');
    const parentPath = slash === 0 ? '/' : p.slice(0, slash);
    const name = p.slice(slash + 1);
    const node = this.resolve(parentPath).then((parent) => (parent?.child === undefined ? undefined : parent.child(name)));
    this.cache.set(p, node, now);
    return node;
  }

  private fail(e: unknown, op: string, p: string): number {
    if (isCairnError(e, 'ERR_NOT_FOUND')) return Fuse.ENOENT;
    const errno = (e as { errno?: unknown }).errno;
    if (typeof errno === 'string' && ERRNO[errno] !== undefined) return ERRNO[errno]!;
    try {
      if (this.options.onError !== undefined) this.options.onError(e, op, p);
      else process.stderr.write(`cairn mount: ${op} ${p}: ${describe(e)}\n`);
    } catch {
      // a throwing onError must not take the mount down
    }
    return Fuse.EIO;
  }

  /** Runs a handler body; its result or error always reaches `cb` exactly once. */
  run<T>(op: string, p: string, cb: (code: number, value?: T) => void, body: () => Promise<T>): void {
    let done = false;
    const finish = (code: number, value?: T): void => {
      if (done) return;
      done = true;
      try {
        cb(code, value);
      } catch (e) {
        process.stderr.write(`cairn mount: ${op} ${p}: callback failed: ${describe(e)}\n`);
      }
    };
    try {
      body().then(
        (v) => finish(0, v),
        (e: unknown) => finish(typeof e === 'number' ? e : this.fail(e, op, p)),
      );
    } catch (e) {
      finish(this.fail(e, op, p));
    }
  }

  async node(p: string): Promise<VNode> {
    const n = await this.resolve(p);
    if (n === undefined) throw Fuse.ENOENT;
    return n;
  }

  ops(): Fuse.FuseOps {
    const erofs = (...args: unknown[]): void => (args.at(-1) as (c: number) => void)(Fuse.EROFS);
    return {
      init: (cb) => cb(0),
      statfs: (_p, cb) => cb(0, { bsize: 4096, frsize: 4096, blocks: 0, bfree: 0, bavail: 0, files: 0, ffree: 0, favail: 0, fsid: 0, flag: 1, namemax: 1024 }),
      getattr: (p, cb) => this.run('getattr', p, cb, async () => stat((await this.node(p)).attr)),
      fgetattr: (p, fh, cb) =>
        this.run('fgetattr', p, cb, async () => {
          const h = this.handles.get(fh);
          return stat((h?.node ?? (await this.node(p))).attr);
        }),
      access: (p, mode, cb) =>
        this.run('access', p, cb, async () => {
          await this.node(p);
          if ((mode & W_OK) !== 0) throw Fuse.EROFS;
        }),
      readdir: (p, cb) =>
        this.run('readdir', p, cb, async () => {
          const n = await this.node(p);
          if (n.names === undefined) throw Fuse.ENOTDIR;
          return n.names();
        }),
      open: (p, flags, cb) =>
        this.run('open', p, cb, async () => {
          if ((flags & O_ACCMODE) !== 0) throw Fuse.EROFS;
          const n = await this.node(p);
          if (n.read === undefined) throw n.names !== undefined ? Fuse.EISDIR : Fuse.EINVAL;
          // The snapshot stays open and locked for as long as the handle (live restore).
          const unhold = n.hold === undefined ? undefined : await n.hold();
          const fh = this.nextFh++;
          if (this.nextFh > 0xfffffff0) this.nextFh = 1;
          this.handles.set(fh, { node: n, lastEnd: -1, aheadTo: 0, ...(unhold === undefined ? {} : { unhold }) });
          return fh;
        }),
      release: (p, fh, cb) => {
        const h = this.handles.get(fh);
        this.handles.delete(fh);
        try {
          h?.unhold?.();
        } catch (e) {
          process.stderr.write(`cairn mount: release ${p}: ${describe(e)}\n`);
        }
        cb(0);
      },
      read: (p, fh, buf, len, pos, cb) =>
        this.run(
          'read',
          p,
          (code: number, n?: number) => cb(code === 0 ? n! : code),
          async () => {
            const h = this.handles.get(fh) ?? { node: await this.node(p), lastEnd: -1, aheadTo: 0 };
            if (h.node.read === undefined) throw Fuse.EISDIR;
            let n: number;
            if (h.node.readInto !== undefined) {
              // Straight into libfuse's buffer (valid until we call back): no allocation per request.
              n = await h.node.readInto(pos, buf.subarray(0, len));
            } else {
              const data = await h.node.read(pos, len);
              n = Math.min(len, data.byteLength);
              buf.set(data.subarray(0, n));
            }
            this.readAhead(h, pos, len);
            return n;
          },
        ),
      readlink: (p, cb) =>
        this.run('readlink', p, cb, async () => {
          const n = await this.node(p);
          if (n.target === undefined) throw Fuse.EINVAL;
          return n.target;
        }),
      getxattr: (p, name, _position, cb) =>
        this.run('getxattr', p, cb, async () => {
          const v = (await this.node(p)).xattrs?.get(name);
          if (v === undefined) throw Fuse.ENODATA;
          return v;
        }),
      listxattr: (p, cb) => this.run('listxattr', p, cb, async () => [...((await this.node(p)).xattrs?.keys() ?? [])]),
      write: erofs,
      create: erofs,
      unlink: erofs,
      rename: erofs,
      link: erofs,
      symlink: erofs,
      mkdir: erofs,
      rmdir: erofs,
      mknod: erofs,
      chmod: erofs,
      chown: erofs,
      truncate: erofs,
      ftruncate: erofs,
      utimens: erofs,
      setxattr: erofs,
      removexattr: erofs,
    };
  }

  /** On a sequential read of an image, fetches the next chunks into the chunk cache. */
  private readAhead(h: Handle, pos: number, len: number): void {
    const sequential = pos === h.lastEnd;
    h.lastEnd = pos + len;
    const cs = h.node.chunkSize;
    const ahead = this.options.readAhead ?? 4;
    if (!sequential || cs === undefined || ahead <= 0 || h.node.read === undefined) return;
    const from = Math.max(h.aheadTo, Math.ceil((pos + len) / cs) * cs);
    const to = Math.min(h.node.attr.size, Math.floor((pos + len) / cs) * cs + (ahead + 1) * cs);
    if (to <= from) return;
    h.aheadTo = to;
    for (let at = from; at < to; at += cs) h.node.read(at, 1).catch(() => undefined);
  }
}

function stat(a: NodeAttr): Fuse.FuseStat {
  const type = { dir: 0o040000, file: 0o100000, symlink: 0o120000, chardev: 0o020000, blockdev: 0o060000, fifo: 0o010000, socket: 0o140000 }[a.kind];
  const t = new Date(a.mtimeMs);
  return {
    mode: type | a.perm,
    size: a.size,
    uid: a.uid,
    gid: a.gid,
    nlink: a.nlink,
    ino: a.ino,
    rdev: a.rdev,
    blksize: 4096,
    blocks: Math.ceil(a.size / 512),
    dev: 0,
    atime: t,
    mtime: t,
    ctime: t,
  };
}

function describe(e: unknown): string {
  if (isCairnError(e)) return `${e.code}: ${e.message}${e.details.digest === undefined ? '' : ` (chunk ${e.details.digest})`}`;
  return e instanceof Error ? e.message : String(e);
}

/**
 * Checks that the mountpoint is an existing directory; it is never created (a typo must not make a
 * directory somewhere and mount there). A stale mount of a killed process (ENOTCONN) passes: the
 * mount clears it.
 * @throws `ERR_NOT_FOUND` (it does not exist), `ERR_INVALID_ARGUMENT` (not a directory), `ERR_IO`
 */
async function checkMountpoint(abs: string): Promise<void> {
  let isDir: boolean;
  try {
    isDir = (await fsp.stat(abs)).isDirectory();
  } catch (e) {
    const c = (e as NodeJS.ErrnoException).code;
    if (c === 'ENOTCONN') return;
    if (c === 'ENOENT') throw new CairnError('ERR_NOT_FOUND', `mountpoint ${abs} does not exist (create the directory first)`, { path: abs }, e);
    if (c === 'ENOTDIR') isDir = false;
    else throw new CairnError('ERR_IO', `cannot use ${abs} as a mountpoint: ${(e as Error).message}`, { path: abs, ...(c === undefined ? {} : { syscallCode: c }) }, e);
  }
  if (!isDir) throw new CairnError('ERR_INVALID_ARGUMENT', `mountpoint ${abs} is not a directory`, { path: abs });
}

async function startFuse(abs: string, handlers: Handlers, options: MountOptions, entryTimeout: number): Promise<Fuse> {
  const fuse = new Fuse(abs, handlers.ops(), {
    force: true,
    mkdir: false,
    autoUnmount: true,
    kernelCache: true,
    // `ro` (not in fuse-native's whitelist either): the kernel itself refuses writes, and
    // access(W_OK) says EROFS (with default_permissions it would say yes to root otherwise).
    fsname: 'cairn,use_ino,ro',
    subtype: 'cairn',
    // The kernel checks every access against the modes and owners shown (else allow_other would
    // let every user read everything).
    defaultPermissions: true,
    entryTimeout,
    attrTimeout: entryTimeout,
    ...(options.allowOther === true ? { allowOther: true } : {}),
    ...(options.debug === true ? { debug: true } : {}),
  });
  await new Promise<void>((resolve, reject) =>
    fuse.mount((err) => (err ? reject(new CairnError('ERR_IO', `cannot mount at ${abs}: ${err.message}`, { path: abs }, err)) : resolve())),
  );
  return fuse;
}

/**
 * fuse-native's `unmount` runs `fusermount -uz` and only then stops its native thread; when the
 * mount is already gone (`cairn umount`, `fusermount -u` from outside) fusermount fails, the thread
 * is never stopped and the process cannot exit. Then the thread is stopped here, through the same
 * binding fuse-native loaded (node-gyp-build caches it).
 */
function stopNativeThread(fuse: Fuse, mountpoint: string): void {
  const pkg = createRequire(import.meta.url).resolve('fuse-native/package.json');
  const fromFuse = createRequire(pkg);
  const binding = (fromFuse('node-gyp-build') as (d: string) => { fuse_native_unmount(mnt: string, thread: Buffer): void })(path.dirname(pkg));
  const thread = (fuse as unknown as { _thread?: Buffer })._thread;
  if (thread !== undefined) binding.fuse_native_unmount(mountpoint, thread);
}

/** Runs fusermount (asynchronously: it may stat the mountpoint, which this process serves). */
function fusermount(args: string[]): Promise<{ ok: boolean; stderr: string }> {
  return new Promise((resolve) => {
    execFile('fusermount', args, { encoding: 'utf8', timeout: 30_000 }, (err, _out, stderr) =>
      resolve({ ok: err === null, stderr: `${stderr}${err === null ? '' : ` ${err.message}`}` }),
    );
  });
}

/**
 * The mount object; `onClose` registers the hook by which the datastore's close() unmounts it
 * (plainly: a busy mount refuses that close with `ERR_LOCKED`).
 */
function makeMount(abs: string, fuse: Fuse, release: () => Promise<void>, onClose: (hook: () => Promise<void>) => () => void): Mount {
  let closing: Promise<void> | undefined;
  let unregister = (): void => undefined;
  const unmount = (): Promise<void> =>
    (closing ??= (async () => {
      unregister();
      const err = await new Promise<(Error & { unmountFailure?: boolean }) | null | undefined>((resolve) => fuse.unmount(resolve));
      if (err?.unmountFailure === true) {
        try {
          stopNativeThread(fuse, abs);
        } catch (e) {
          process.stderr.write(`cairn mount: cannot stop the FUSE thread of ${abs}: ${describe(e)}\n`);
        }
      }
      await release();
    })());
  const onDatastoreClose = async (): Promise<void> => {
    if (closing === undefined) {
      // Not lazily: a mount with open files is not pulled away from under them by a close.
      const r = await fusermount(['-u', abs]);
      if (!r.ok && /busy/i.test(r.stderr)) {
        throw new CairnError(
          'ERR_LOCKED',
          `the mount at ${abs} is busy (a process has a file or its working directory on it): close those, or unmount it first (Mount.unmount detaches it lazily)`,
          { path: abs },
        );
      }
      // Unmounted (or not unmountable plainly for another reason): the lazy unmount finishes it.
    }
    await unmount();
  };
  try {
    unregister = onClose(onDatastoreClose);
  } catch (e) {
    // The datastore was closed while mounting.
    void unmount().catch(() => undefined);
    throw e;
  }
  return { mountpoint: abs, unmount, [Symbol.asyncDispose]: unmount };
}

/**
 * Mounts one snapshot read-only: an entry per archive (an image or a blob as a file, a tree
 * archive as its directory tree). The snapshot stays open, and so locked against prune and removal,
 * until unmounted, by {@link Mount.unmount} or by closing the datastore (`Datastore.close()`
 * unmounts it first; see {@link Mount}). The mountpoint must be an existing directory; it is not
 * created. Call from the main thread; do not read the mount synchronously from the same process
 * (its requests are served by this process's event loop).
 *
 * @example
 * ```ts
 * import { mountSnapshot } from 'cairn/fuse';
 * const snap = await ds.snapshot('vm/100');
 * const m = await mountSnapshot(snap, '/mnt/vm100');
 * // losetup -r -f /mnt/vm100/drive-scsi0.img, or copy files out of /mnt/vm100/etc.tree/
 * await m.unmount();
 * ```
 * @throws `ERR_NOT_FOUND` (the snapshot, or the mountpoint: `details.path`), `ERR_LOCKED` (the
 *   snapshot is being removed), `ERR_IO` (mount failed), `ERR_INVALID_ARGUMENT` (the mountpoint is
 *   not a directory; an `imageMode` or `dirMode` with bits other than read/search)
 * @category Mount
 */
export async function mountSnapshot(snapshot: Snapshot, mountpoint: string, options: MountOptions = {}): Promise<Mount> {
  const modes = viewModes(options, 0o555);
  const abs = path.resolve(mountpoint);
  await checkMountpoint(abs);
  const reader = await snapshot.open();
  try {
    const held = async (): Promise<() => void> => () => undefined; // open for the whole mount anyway
    const root = snapshotRoot(snapshot, { reader: async () => reader, hold: held }, new InodeTable(), 'snap', 1, modes);
    const handlers = new Handlers(root, options, Number.POSITIVE_INFINITY);
    const fuse = await startFuse(abs, handlers, options, 3600);
    return makeMount(
      abs,
      fuse,
      () => reader.close(),
      (hook) => snapshot.onClose(hook),
    );
  } catch (e) {
    await reader.close();
    throw e;
  }
}

/**
 * The owner and modes of what a mount makes up (images, blobs, directories above the archives).
 * @throws `ERR_INVALID_ARGUMENT` for modes with bits other than read (images) or read and search (dirs)
 */
function viewModes(options: MountOptions, defaultDirMode: number): ViewModes {
  const check = (name: string, v: number | undefined, dflt: number, allowed: number): number => {
    if (v === undefined) return dflt;
    if (!Number.isInteger(v) || v < 0 || (v & ~allowed) !== 0) {
      const shown = typeof v === 'number' && Number.isInteger(v) ? `0o${v.toString(8)}` : String(v);
      throw new CairnError('ERR_INVALID_ARGUMENT', `${name} ${shown} has bits other than 0o${allowed.toString(8)} (a read-only mount)`, { [name]: shown });
    }
    return v;
  };
  return {
    uid: process.getuid?.() ?? 0,
    gid: process.getgid?.() ?? 0,
    imageMode: check('imageMode', options.imageMode, 0o400, 0o444),
    dirMode: check('dirMode', options.dirMode, defaultDirMode, 0o555),
  };
}

interface PoolEntry {
  reader: Promise<SnapshotReader>;
  /** Last access, ms. */
  used: number;
  /** Open file handles holding it; it is neither evicted nor closed while > 0. */
  holds: number;
}

/**
 * Open snapshots of a datastore mount: least recently used closed first, idle ones closed; a
 * snapshot with open files is never closed (a VM running from a mounted image must not lose it).
 */
class ReaderPool {
  private readonly open = new Map<string, PoolEntry>();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly max: number,
    private readonly idleMs: number,
  ) {
    this.timer = setInterval(() => this.closeIdle(), Math.max(100, Math.min(idleMs / 4, 2500)));
    this.timer.unref();
  }

  source(snap: Snapshot): ReaderSource {
    const key = `${snap.namespace}\0${snap.name}`;
    const entry = (): PoolEntry => {
      let e = this.open.get(key);
      if (e === undefined) {
        const made: PoolEntry = { reader: snap.open(), used: systemClock.now(), holds: 0 };
        e = made;
        this.open.set(key, made);
        made.reader.catch(() => {
          if (this.open.get(key) === made) this.open.delete(key);
        });
        this.evict(key);
      }
      e.used = systemClock.now();
      return e;
    };
    return {
      reader: () => entry().reader,
      hold: async () => {
        const e = entry();
        e.holds++;
        let released = false;
        const release = (): void => {
          if (released) return;
          released = true;
          e.holds--;
          e.used = systemClock.now(); // the idle clock starts when the last handle is closed
        };
        try {
          await e.reader;
        } catch (err) {
          release();
          throw err;
        }
        return release;
      },
    };
  }

  private evict(keep: string): void {
    while (this.open.size > this.max) {
      let oldest: string | undefined;
      for (const [k, e] of this.open) if (k !== keep && e.holds === 0 && (oldest === undefined || e.used < this.open.get(oldest)!.used)) oldest = k;
      if (oldest === undefined) return; // every other one is held by an open file
      this.closeKey(oldest);
    }
  }

  private closeKey(k: string): void {
    const e = this.open.get(k);
    this.open.delete(k);
    e?.reader.then((r) => r.close()).catch(() => undefined);
  }

  private closeIdle(): void {
    const now = systemClock.now();
    for (const [k, e] of this.open) if (e.holds === 0 && now - e.used > this.idleMs) this.closeKey(k);
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    const all = [...this.open.values()];
    this.open.clear();
    await Promise.allSettled(all.map((e) => e.reader.then((r) => r.close())));
  }
}

/**
 * Mounts a whole datastore (or one namespace of it) read-only as
 * `<namespace path>/<type>/<id>/<time>/<archive>`, with a `latest` symlink in each group.
 * Namespaces, groups and snapshots that appear later show up (within about a second), and pruned
 * ones disappear. A snapshot being read is open, and so locked against prune, until nobody has read
 * it for `idleCloseMs` and no file of it is open. The directories the mount makes up belong to the
 * mounting user, mode `dirMode` (0o500: other users see nothing, even with `allowOther`, unless
 * opened up). The mountpoint must be an existing directory; `ds.close()` unmounts the mount first
 * (see {@link Mount}).
 *
 * @example
 * ```ts
 * import { mountDatastore } from 'cairn/fuse';
 * const m = await mountDatastore(ds, '/mnt/cairn');
 * // ls /mnt/cairn/vm/100/latest/
 * await m.unmount();
 * ```
 * @throws `ERR_NOT_FOUND` (the namespace, or the mountpoint: `details.path`), `ERR_IO` (mount
 *   failed), `ERR_INVALID_ARGUMENT` (the mountpoint is not a directory; an `imageMode` or `dirMode`
 *   with bits other than read/search, a negative `idleCloseMs`)
 * @category Mount
 */
export async function mountDatastore(ds: Datastore, mountpoint: string, options: MountDatastoreOptions = {}): Promise<Mount> {
  const modes = viewModes(options, 0o500);
  const idleMs = options.idleCloseMs ?? 10_000;
  if (!Number.isFinite(idleMs) || idleMs < 0) throw new CairnError('ERR_INVALID_ARGUMENT', `idleCloseMs must be a number of ms ≥ 0, not ${idleMs}`, { idleCloseMs: idleMs });
  const ns = ds.namespace(options.namespace ?? '');
  await ns.assertExists();
  const abs = path.resolve(mountpoint);
  await checkMountpoint(abs);
  const pool = new ReaderPool(options.maxOpenSnapshots ?? 16, idleMs);
  try {
    const root = datastoreRoot(ds, ns, new InodeTable(), { open: (s) => pool.source(s), modes });
    const handlers = new Handlers(root, options, 1000);
    const fuse = await startFuse(abs, handlers, options, 1);
    return makeMount(
      abs,
      fuse,
      () => pool.close(),
      (hook) => ds.onClose(hook),
    );
  } catch (e) {
    await pool.close();
    throw e;
  }
}

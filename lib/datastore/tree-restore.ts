/**
 * Restores a tree archive into a directory (layer L4), exactly: contents (sparse where zero),
 * modes with setuid/setgid/sticky, owners (as root), nanosecond mtimes, symlinks (never followed),
 * hardlinks (re-linked), devices, fifos, sockets and extended attributes.
 *
 * Nothing is ever written outside the target, even while someone who can write in the target
 * swaps directories for symlinks during the restore. The target is opened once (`O_NOFOLLOW`: a
 * target that is itself a symlink is refused) and everything happens below that descriptor: each
 * directory is created with `mkdirat` and then opened `O_DIRECTORY|O_NOFOLLOW` relative to its
 * parent's descriptor (a directory swapped for a symlink fails with `ERR_UNSAFE_PATH`); entries are
 * made with `openat(O_CREAT|O_EXCL|O_NOFOLLOW)`, `symlinkat`, `linkat`, `mknodat` relative to their
 * directory's descriptor; metadata goes through the file's own descriptor (`fchown`, `fchmod`,
 * `fsetxattr`, `futimens`), or for symlinks and special files through `*at` calls with
 * `AT_SYMLINK_NOFOLLOW` relative to the directory descriptor. No path is ever resolved again from
 * the target. A directory's own metadata is set through its descriptor once everything in it is
 * done (walk order: when the walk leaves it). Names passed the format's name check (no `/`, `.`,
 * `..`, NUL); a hardlink may only point at a file this restore already wrote.
 *
 * Open directory descriptors are bounded whatever the depth: at most {@link MAX_OPEN_DIRS} besides
 * the target's, plus one file per entry in flight ({@link CONCURRENCY}) and one transient
 * descriptor. Before another is opened the least recently used is closed (those nearest the root
 * on a deep path); a closed directory is re-opened when needed, component by component from its
 * nearest open ancestor (`O_DIRECTORY|O_NOFOLLOW`, each checked to be the inode first made there:
 * one that is not fails with `ERR_UNSAFE_PATH`), keeping at most {@link REOPEN_KEEP} of those
 * components open. Directories the walk leaves get their metadata one at a time, deepest first,
 * each closed once done; a climb out of thousands of levels re-opens the levels above in runs of
 * {@link REOPEN_KEEP}, never all at once.
 */
import fs, { promises as fsp, constants as fsc, chmodSync, closeSync, fchmodSync, fchownSync, writeSync } from 'node:fs';
import path from 'node:path';
import picomatch from 'picomatch';
import { CairnError, ioError, syscallCode, throwIfAborted, type ErrorDetails } from '../errors.js';
import { validateArchivePath, type TreeEntry } from '../format/tree.js';
import {
  AT_FDCWD,
  AT_REMOVEDIR,
  AT_SYMLINK_NOFOLLOW,
  O_PATH,
  nativeFchownat,
  nativeFsetxattr,
  nativeFstat,
  nativeFstatat,
  nativeFutimens,
  nativeLinkat,
  nativeMkdirat,
  nativeMknodat,
  nativeOpenat,
  nativeReaddir,
  nativeSetXattr,
  nativeSymlinkat,
  nativeUnlinkat,
  nativeUtimensat,
  type NativeStat,
} from '../codec/native.js';
import { TaskGroup } from '../util/task-group.js';
import { currentUmask } from './file-restore.js';
import { show, type TreeItem, type TreeReader } from './tree-reader.js';
import type { TreeProblem, TreeProgress } from './tree-writer.js';

/**
 * Options of {@link SnapshotReader.restoreTree}.
 * @category Restore
 */
export interface RestoreTreeOptions {
  /** Restore only paths matching one of these globs (and the directories leading to them). */
  readonly include?: readonly string[];
  /** Leave out paths matching these globs. */
  readonly exclude?: readonly string[];
  /** Allow a non-empty target; existing entries in the way are replaced. @defaultValue false */
  readonly overwrite?: boolean;
  /** Cancels the restore. */
  readonly signal?: AbortSignal;
  /**
   * Called as entries are restored (after each file, symlink, device). Totals are set when the
   * whole archive is restored (no include/exclude): the archive's entries and payload bytes (an
   * upper bound when reused chunks carry padding).
   */
  readonly onProgress?: (p: TreeProgress) => void;
  /**
   * **Test only**: interleaving hooks used by the test suite to force races. Not part of the
   * supported API; do not use in production code.
   */
  readonly hooks?: {
    /** Called after a directory was created in the target (`rel` is its archive path). */
    readonly afterMkdir?: (rel: Uint8Array) => Promise<void> | void;
  };
}

/**
 * What a tree restore did.
 * @category Restore
 */
export interface RestoreTreeStats {
  /** Entries restored. */
  entries: number;
  /** File bytes written. */
  bytes: number;
  /** Things that could not be restored as they were (owners when not root, xattrs the target refuses). */
  problems: TreeProblem[];
  /** Seconds taken. */
  seconds: number;
}

const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;
const S_IFIFO = 0o010000;
const S_IFSOCK = 0o140000;
const BLOCK = 64 * 1024;
const ZERO = new Uint8Array(BLOCK);
/** Entries restored at once. */
const CONCURRENCY = 16;
/** Files up to this size are written in one go, synchronously. */
const SMALL_FILE = 256 * 1024;

/**
 * Directory descriptors kept open at most besides the target's (beyond that the least recently
 * used are closed and re-opened when needed): a tree thousands of levels deep must not run out of
 * descriptors. With the files in flight and Node's own descriptors this stays under a limit of 256.
 */
export const MAX_OPEN_DIRS = 128;
/**
 * Of the closed ancestors re-opened to reach a directory, those nearest it that stay open (the
 * others are closed as soon as the next component is open): the walk climbing back up needs them
 * next.
 */
const REOPEN_KEEP = MAX_OPEN_DIRS / 2;

const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_DIRECTORY } = fsc;
const DIR_FLAGS = O_RDONLY | O_DIRECTORY | O_NOFOLLOW;

/** The errno name of a `node:fs` error or of a native `ERR_IO`. */
function errnoOf(e: unknown): string | undefined {
  return syscallCode(e) ?? syscallCode({ code: (e as { details?: { syscallCode?: unknown } } | null)?.details?.syscallCode });
}

/** A directory of the target this restore works in. */
interface Dir {
  /** Its name in its parent (empty for the root). */
  readonly name: Buffer;
  /** Its archive path (empty for the root). */
  readonly rel: Buffer;
  readonly parent: Dir | undefined;
  /** The open descriptor, or -1 once closed (re-opened on demand). */
  fd: number;
  readonly dev: number;
  readonly ino: number;
  /** The archive's entry for it: its metadata is set when the restore is done with it. */
  entry: TreeEntry | undefined;
  /** Entries being restored in it. */
  readonly ops: Set<Promise<void>>;
  /** Subdirectories made from its entries that the walk has not entered (yet). */
  readonly pending: Map<string, { name: Buffer; entry: TreeEntry }>;
}

const asyncWrite = (fd: number, buf: Uint8Array, off: number, len: number, pos: number): Promise<number> =>
  new Promise((resolve, reject) => fs.write(fd, buf, off, len, pos, (e, n) => (e === null ? resolve(n) : reject(e))));
const asyncTruncate = (fd: number, len: number): Promise<void> => new Promise((resolve, reject) => fs.ftruncate(fd, len, (e) => (e === null ? resolve() : reject(e))));

/** `/proc/self/fd/<dirfd>/<name>`: a name below an open directory, for calls with no `*at` form. */
const procPath = (dirfd: number, name: Uint8Array): Buffer => Buffer.concat([Buffer.from(`/proc/self/fd/${dirfd}/`), name]);

/**
 * The filter of `include`/`exclude` globs over archive paths (matched as UTF-8, dot files too): a
 * path is wanted unless it matches an exclude, and, when includes are given, only if it matches one.
 */
export function treeFilter(options: { readonly include?: readonly string[] | undefined; readonly exclude?: readonly string[] | undefined }): (rel: Uint8Array) => boolean {
  const include = options.include !== undefined && options.include.length > 0 ? picomatch([...options.include], { dot: true }) : undefined;
  const exclude = options.exclude !== undefined && options.exclude.length > 0 ? picomatch([...options.exclude], { dot: true }) : undefined;
  return (rel) => {
    const s = show(rel);
    if (exclude?.(s) === true) return false;
    return include === undefined || include(s);
  };
}

/** Restores `tree` into `target`. */
export async function restoreTree(tree: TreeReader, target: string, options: RestoreTreeOptions, details: ErrorDetails): Promise<RestoreTreeStats> {
  try {
    return await restoreTreeInto(tree, target, options, details);
  } catch (e) {
    // File-system errors on the target (ENOSPC, EIO, EACCES, ...) become ERR_IO naming it.
    throw ioError(e, `restore into ${target}`, { ...details, path: target });
  }
}

/** Opens (creating it when missing) the target directory itself, never through a symlink. */
async function openRoot(target: string, details: ErrorDetails): Promise<number> {
  const abs = path.resolve(target);
  const unsafe = (): CairnError => new CairnError('ERR_UNSAFE_PATH', `restore target ${target} is a symlink (give the directory it points to)`, { ...details, path: target });
  try {
    return nativeOpenat(AT_FDCWD, abs, DIR_FLAGS);
  } catch (e) {
    const code = errnoOf(e);
    if (code === 'ELOOP' || (code === 'ENOTDIR' && isSymlink(abs))) throw unsafe();
    if (code === 'ENOTDIR') {
      // A file (or a path through one): a tree restores into a directory, never over a file.
      const kind = kindAt(abs);
      throw kind !== undefined
        ? new CairnError('ERR_EXISTS', `restore target ${target} exists and is a ${kind}, not a directory (a tree restores into a directory)`, { ...details, path: target })
        : new CairnError('ERR_INVALID_ARGUMENT', `restore target ${target}: a component of its path is not a directory`, { ...details, path: target });
    }
    if (code !== 'ENOENT')
      throw new CairnError(
        'ERR_IO',
        `cannot open restore target ${target}: ${(e as Error).message}`,
        { ...details, path: target, ...(code === undefined ? {} : { syscallCode: code }) },
        e,
      );
  }
  await fsp.mkdir(path.dirname(abs), { recursive: true });
  try {
    nativeMkdirat(AT_FDCWD, abs, 0o700);
  } catch (e) {
    if (errnoOf(e) !== 'EEXIST') throw e;
  }
  try {
    return nativeOpenat(AT_FDCWD, abs, DIR_FLAGS);
  } catch (e) {
    if (errnoOf(e) === 'ELOOP' || isSymlink(abs)) throw unsafe();
    throw e;
  }
}

/** What is at `abs` (not followed), undefined when nothing or not reachable. */
function kindAt(abs: string): string | undefined {
  try {
    return nativeFstatat(AT_FDCWD, abs, AT_SYMLINK_NOFOLLOW).kind;
  } catch {
    return undefined;
  }
}

function isSymlink(abs: string): boolean {
  try {
    return nativeFstatat(AT_FDCWD, abs, AT_SYMLINK_NOFOLLOW).kind === 'symlink';
  } catch {
    return false;
  }
}

async function restoreTreeInto(tree: TreeReader, target: string, options: RestoreTreeOptions, details: ErrorDetails): Promise<RestoreTreeStats> {
  const t0 = performance.now();
  const stats: RestoreTreeStats = { entries: 0, bytes: 0, problems: [], seconds: 0 };
  const problem = (p: Uint8Array, code: string, message: string): void => {
    if (stats.problems.length < 1000) stats.problems.push({ path: show(p) || '.', code, message });
  };
  const unsafe = (rel: Uint8Array, what: string): CairnError =>
    new CairnError('ERR_UNSAFE_PATH', `${show(rel) || '.'} ${what} during the restore; nothing is done through it`, { ...details, path: show(rel) });

  const filtered = (options.include?.length ?? 0) > 0 || (options.exclude?.length ?? 0) > 0;
  const totals = filtered ? {} : { entriesTotal: Math.max(0, tree.entryCount - 1), bytesTotal: tree.payloadSize };
  const progress = (): void => options.onProgress?.({ archive: details.archive ?? '', entries: stats.entries, bytes: stats.bytes, ...totals });

  const rootFd = await openRoot(target, details);
  const rootSt = nativeFstat(rootFd);
  const root: Dir = {
    name: Buffer.alloc(0),
    rel: Buffer.alloc(0),
    parent: undefined,
    fd: rootFd,
    dev: rootSt.dev,
    ino: rootSt.ino,
    entry: undefined,
    ops: new Set(),
    pending: new Map(),
  };
  /** Open directories other than the root, least recently used first. */
  const open = new Set<Dir>();
  const closeDir = (d: Dir): void => {
    if (d.fd < 0 || d === root) return;
    closeSync(d.fd);
    d.fd = -1;
    open.delete(d);
  };
  try {
    let existing: number;
    try {
      existing = nativeReaddir(rootFd).length;
    } catch (e) {
      throw new CairnError('ERR_IO', `cannot read restore target ${target}: ${(e as Error).message}`, { ...details, path: target }, e);
    }
    if (existing > 0 && options.overwrite !== true) {
      throw new CairnError('ERR_EXISTS', `restore target ${target} is not empty (pass overwrite / --overwrite)`, { ...details, path: target });
    }
    const fresh = existing === 0;
    const wanted = treeFilter(options);
    const isRoot = process.getuid?.() === 0;
    const myUid = process.geteuid?.() ?? -1;
    const myGid = process.getegid?.() ?? -1;
    const umask = currentUmask();
    let notOwned = 0;

    /** Opens `name` below `parentFd` as a directory, never through a symlink. */
    const openDirAt = (parentFd: number, name: Uint8Array, rel: Uint8Array): number => {
      try {
        return nativeOpenat(parentFd, name, DIR_FLAGS);
      } catch (e) {
        const code = errnoOf(e);
        if (code === 'ELOOP' || code === 'ENOTDIR') throw unsafe(rel, 'is no longer a directory (a symlink or another file took its place)');
        throw e;
      }
    };
    /** {@link openDirAt}, and the directory's identity (closed again when the fstat fails). */
    const openDirStat = (parentFd: number, name: Uint8Array, rel: Uint8Array): { fd: number; st: NativeStat } => {
      const fd = openDirAt(parentFd, name, rel);
      try {
        return { fd, st: nativeFstat(fd) };
      } catch (e) {
        closeSync(fd);
        throw e;
      }
    };
    /**
     * Makes room for one more open directory: closes the least recently used beyond the limit,
     * never one in `keep` (descriptors the caller still uses). Called right before each open, in
     * the same synchronous step as the use of every descriptor the caller holds.
     */
    const reserve = (keep: readonly Dir[]): void => {
      if (open.size < MAX_OPEN_DIRS) return;
      for (const d of open) {
        if (open.size < MAX_OPEN_DIRS) break;
        if (!keep.includes(d)) closeDir(d);
      }
    };
    /** Marks `d` (open) as just used. */
    const touch = (d: Dir): void => {
      if (d === root) return;
      open.delete(d);
      open.add(d);
    };
    /** Opens `name` below `parentFd` and checks it is still the directory `d` first made there. */
    const reopenAt = (parentFd: number, d: Dir): number => {
      const { fd, st } = openDirStat(parentFd, d.name, d.rel);
      if (st.dev !== d.dev || st.ino !== d.ino) {
        closeSync(fd);
        throw unsafe(d.rel, 'was replaced by another directory');
      }
      return fd;
    };
    /**
     * The descriptor of `d`, re-opened if closed: component by component from its nearest open
     * ancestor, keeping open only the {@link REOPEN_KEEP} components nearest `d` (the others are
     * closed as soon as the next one is open). `keep`: directories whose descriptors the caller
     * still uses in this step (not closed to make room).
     */
    const fdOf = (d: Dir, keep: readonly Dir[] = []): number => {
      if (d.fd >= 0) {
        touch(d);
        return d.fd;
      }
      const chain: Dir[] = [];
      let a: Dir = d;
      while (a.fd < 0) {
        chain.push(a);
        a = a.parent!;
      }
      touch(a);
      // chain: d first, the closed child of `a` last.
      let fd = a.fd;
      let held = false; // whether `fd` is a transient descriptor of this loop (not in `open`)
      try {
        for (let i = chain.length - 1; i >= 0; i--) {
          const c = chain[i]!;
          const kept = i < REOPEN_KEEP;
          if (kept) reserve([...keep, a, d, ...chain.slice(i + 1, REOPEN_KEEP)]);
          const next = reopenAt(fd, c);
          if (held) closeSync(fd);
          if (kept) {
            c.fd = next;
            open.add(c);
            held = false;
          } else held = true;
          fd = next;
        }
      } catch (e) {
        if (held) closeSync(fd);
        throw e;
      }
      return d.fd;
    };

    /** Makes way for a new entry `name` in `dirfd`: nothing may be there, unless overwriting. */
    const clear = (dirfd: number, name: Uint8Array, rel: Uint8Array): void => {
      // A fresh target holds only what this restore made: nothing is in the way (and O_EXCL, mkdirat
      // and symlinkat would fail rather than follow anything that appeared meanwhile).
      if (fresh) return;
      let st;
      try {
        st = nativeFstatat(dirfd, name, AT_SYMLINK_NOFOLLOW);
      } catch (e) {
        if (errnoOf(e) === 'ENOENT') return;
        throw e;
      }
      if (options.overwrite !== true) throw new CairnError('ERR_EXISTS', `${show(rel)} exists in the restore target`, { ...details, path: show(rel) });
      if (st.kind === 'dir') removeTreeAt(dirfd, name);
      else nativeUnlinkat(dirfd, name, 0);
    };
    /** Removes a directory and everything in it, below `dirfd`, never following a symlink. */
    const removeTreeAt = (dirfd: number, name: Uint8Array): void => {
      const fd = nativeOpenat(dirfd, name, DIR_FLAGS);
      try {
        for (const ent of nativeReaddir(fd)) {
          const isDir = ent.type === 4 || (ent.type === 0 && nativeFstatat(fd, ent.name, AT_SYMLINK_NOFOLLOW).kind === 'dir');
          if (isDir) removeTreeAt(fd, ent.name);
          else nativeUnlinkat(fd, ent.name, 0);
        }
      } finally {
        closeSync(fd);
      }
      nativeUnlinkat(dirfd, name, AT_REMOVEDIR);
    };
    /** Makes sure `name` in `parent` is a real directory (created here, or found as one). */
    const makeDir = async (parent: Dir, name: Buffer, rel: Buffer): Promise<void> => {
      const pfd = fdOf(parent);
      const check = (): boolean => {
        let st;
        try {
          st = nativeFstatat(pfd, name, AT_SYMLINK_NOFOLLOW);
        } catch (e) {
          if (errnoOf(e) === 'ENOENT') return false;
          throw e;
        }
        if (st.kind === 'dir') return true;
        if (options.overwrite !== true) throw new CairnError('ERR_EXISTS', `${show(rel)} exists in the restore target and is not a directory`, { ...details, path: show(rel) });
        nativeUnlinkat(pfd, name, 0);
        return false;
      };
      if (!fresh && check()) return;
      try {
        nativeMkdirat(pfd, name, 0o700);
      } catch (e) {
        if (errnoOf(e) !== 'EEXIST' || !check()) throw e;
      }
      await options.hooks?.afterMkdir?.(rel);
    };

    /** Owner and mode through an open descriptor (chown first: it clears setuid/setgid). */
    const setOwnerAndMode = (rel: Uint8Array, e: TreeEntry, fd: number, created: boolean): void => {
      if (!isRoot && (e.uid !== myUid || e.gid !== myGid)) notOwned++;
      let chowned = false;
      if (isRoot && (e.uid !== myUid || e.gid !== myGid)) {
        try {
          fchownSync(fd, e.uid, e.gid);
          chowned = true;
        } catch (err) {
          problem(rel, syscallCode(err) ?? 'EIO', `cannot set owner ${e.uid}:${e.gid}: ${(err as Error).message}`);
        }
      }
      // The umask may have cleared bits at create: set the mode unless the file already has it.
      if (!created || chowned || (e.mode & 0o777 & ~umask) !== e.mode) fchmodSync(fd, e.mode);
    };
    const setXattrs = (rel: Uint8Array, e: TreeEntry, set: (name: Uint8Array, value: Uint8Array) => void): void => {
      for (const [name, value] of e.xattrs ?? []) {
        try {
          set(name, value);
        } catch (err) {
          problem(rel, 'XATTR', `cannot set extended attribute ${show(name)}: ${(err as Error).message}`);
        }
      }
    };
    /** A directory's metadata, through its descriptor. */
    const finishDirMeta = (fd: number, rel: Uint8Array, e: TreeEntry): void => {
      setOwnerAndMode(rel, e, fd, false);
      setXattrs(rel, e, (n, v) => nativeFsetxattr(fd, n, v));
      nativeFutimens(fd, e.mtimeNs, e.mtimeNs);
    };
    /** The metadata of a symlink or special file `name` in `dirfd` (no descriptor of its own). */
    const finishNodeMeta = (dirfd: number, name: Uint8Array, rel: Uint8Array, e: TreeEntry, isLink: boolean): void => {
      if (!isRoot && (e.uid !== myUid || e.gid !== myGid)) notOwned++;
      if (isRoot) {
        try {
          nativeFchownat(dirfd, name, e.uid, e.gid, AT_SYMLINK_NOFOLLOW);
        } catch (err) {
          problem(rel, errnoOf(err) ?? 'EIO', `cannot set owner ${e.uid}:${e.gid}: ${(err as Error).message}`);
        }
      }
      if (!isLink) {
        // chmod has no NOFOLLOW form: through an O_PATH descriptor of the node just made.
        const fd = nativeOpenat(dirfd, name, O_PATH | O_NOFOLLOW);
        try {
          const st = nativeFstat(fd);
          if (st.kind === 'symlink' || st.kind === 'dir' || st.kind === 'file' || st.nlink !== 1) throw unsafe(rel, 'was replaced');
          chmodSync(`/proc/self/fd/${fd}`, e.mode);
        } finally {
          closeSync(fd);
        }
      }
      setXattrs(rel, e, (n, v) => nativeSetXattr(procPath(dirfd, name), n, v)); // lsetxattr: the last name is not followed
      nativeUtimensat(dirfd, name, e.mtimeNs, e.mtimeNs, AT_SYMLINK_NOFOLLOW);
    };

    /** Writes a file `name` in `dir` with its content and metadata, all through its descriptor. */
    const writeFile = async (dir: Dir, name: Uint8Array, item: TreeItem, rel: Uint8Array): Promise<void> => {
      const e = item.entry;
      const size = e.size;
      // A small file in one go, with synchronous calls: its bytes come from the chunk cache, and a
      // few system calls on the calling thread cost microseconds where libuv round trips cost tens.
      const small = size <= SMALL_FILE ? await tree.readPayload(item.payloadStart, size) : undefined;
      const dirfd = fdOf(dir);
      clear(dirfd, name, rel);
      const fd = nativeOpenat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, e.mode & 0o777);
      try {
        if (small !== undefined) {
          let w = 0;
          while (w < small.byteLength) w += writeSync(fd, small, w, small.byteLength - w, w);
        } else {
          let end = 0;
          for (let off = 0; off < size;) {
            throwIfAborted(options.signal, details);
            const n = Math.min(4 * 1024 * 1024, size - off);
            const data = await tree.readPayload(item.payloadStart + off, n);
            // Zero blocks become holes: sparse files restore sparse.
            for (let b = 0; b < data.byteLength; b += BLOCK) {
              const block = data.subarray(b, Math.min(b + BLOCK, data.byteLength));
              if (Buffer.compare(block, ZERO.subarray(0, block.byteLength)) === 0) continue;
              let w = 0;
              while (w < block.byteLength) w += await asyncWrite(fd, block, w, block.byteLength - w, off + b + w);
              end = off + b + block.byteLength;
            }
            off += n;
            stats.bytes += n;
            progress();
          }
          if (end < size) await asyncTruncate(fd, size); // a trailing hole
        }
        if (small !== undefined) stats.bytes += size;
        setOwnerAndMode(rel, e, fd, true);
        setXattrs(rel, e, (n, v) => nativeFsetxattr(fd, n, v));
        nativeFutimens(fd, e.mtimeNs, e.mtimeNs);
      } finally {
        closeSync(fd);
      }
    };

    // Entries are restored several at a time (restoring is latency-bound: a small file costs half a
    // dozen system calls); directories are made in walk order before their contents, and a hardlink
    // waits for the file it links to.
    const pendingFiles = new Map<string, Promise<{ dir: Dir; name: Buffer }>>();
    // CONCURRENCY entries at once, and the finisher beside them; the first failure (or the abort)
    // stops the walk.
    const tasks = new TaskGroup({ limit: CONCURRENCY, signal: options.signal, details });
    const restoreEntry = async (dir: Dir, name: Buffer, item: TreeItem): Promise<void> => {
      const rel = item.path;
      const e = item.entry;
      switch (e.kind) {
        case 'file':
          await writeFile(dir, name, item, rel);
          stats.entries++;
          progress();
          return;
        case 'symlink': {
          const dirfd = fdOf(dir);
          clear(dirfd, name, rel);
          nativeSymlinkat(Buffer.from(e.target!), dirfd, name);
          finishNodeMeta(dirfd, name, rel, e, true);
          break;
        }
        case 'hardlink': {
          const valid = e.target !== undefined && validateArchivePath(e.target);
          const to = valid ? await pendingFiles.get(Buffer.from(e.target!).toString('binary')) : undefined;
          if (to !== undefined) {
            const dirfd = fdOf(dir);
            clear(dirfd, name, rel);
            nativeLinkat(fdOf(to.dir, [dir]), to.name, dirfd, name, 0);
            stats.entries++;
            return; // the inode's metadata was set with its first name
          }
          // The first name was filtered out of this restore: this name gets the content. It must be a
          // regular file of this archive; anything else is a hostile or damaged archive.
          const first = valid ? await tree.lookup(e.target!) : undefined;
          if (first === undefined || first.entry.kind !== 'file') {
            throw new CairnError('ERR_UNSAFE_PATH', `hardlink ${show(rel)} points at '${show(e.target ?? new Uint8Array(0))}', which is not a file of this archive`, {
              ...details,
              path: show(rel),
            });
          }
          await writeFile(dir, name, first, rel);
          stats.entries++;
          return;
        }
        case 'chardev':
        case 'blockdev':
        case 'fifo':
        case 'socket': {
          const type = e.kind === 'chardev' ? S_IFCHR : e.kind === 'blockdev' ? S_IFBLK : e.kind === 'fifo' ? S_IFIFO : S_IFSOCK;
          const dirfd = fdOf(dir);
          clear(dirfd, name, rel);
          try {
            nativeMknodat(dirfd, name, type | e.mode, e.rdevMajor ?? 0, e.rdevMinor ?? 0);
          } catch (err) {
            problem(rel, errnoOf(err) ?? 'EPERM', `cannot create ${e.kind}: ${(err as Error).message}`);
            return;
          }
          finishNodeMeta(dirfd, name, rel, e, false);
          break;
        }
        case 'dir':
          return;
      }
      stats.entries++;
      progress();
    };

    /**
     * Sets the metadata of `d` and of its subdirectories never entered, once its entries are done;
     * closes it. All in one synchronous step after the wait: `d`'s descriptor cannot be closed to
     * make room meanwhile, and one subdirectory at a time is open besides it.
     */
    const finish = async (d: Dir): Promise<void> => {
      if (d.ops.size > 0) await Promise.allSettled(d.ops);
      if (tasks.failed) return;
      const fd = fdOf(d);
      for (const c of d.pending.values()) {
        const rel = d.rel.length === 0 ? c.name : Buffer.concat([d.rel, Buffer.from('/'), c.name]);
        const cfd = openDirAt(fd, c.name, rel);
        try {
          finishDirMeta(cfd, rel, c.entry);
        } finally {
          closeSync(cfd);
        }
      }
      d.pending.clear();
      if (d.entry !== undefined) finishDirMeta(fd, d.rel, d.entry);
      closeDir(d);
    };
    /**
     * Directories the walk has left, deepest first, whose metadata is still to be set: finished one
     * at a time in that order (a directory after everything below it), by one worker, so a climb out
     * of thousands of levels holds no more descriptors than a single level does.
     */
    const toFinish: (Dir | undefined)[] = [];
    let head = 0;
    let finisher: Promise<void> | undefined;
    const runFinisher = async (): Promise<void> => {
      try {
        while (head < toFinish.length && !tasks.failed) {
          const d = toFinish[head]!;
          toFinish[head++] = undefined;
          await finish(d);
        }
      } finally {
        // In the same step as the last check: a directory queued from now on starts a new worker.
        toFinish.length = 0;
        head = 0;
        finisher = undefined;
      }
    };
    const queueFinish = (d: Dir): void => {
      toFinish.push(d);
      finisher ??= tasks.spawn(runFinisher);
    };

    // The directories of the current path, root first.
    const stack: Dir[] = [root];
    /** Moves the path to `parentRel` (closing what the walk left, making what is missing). */
    const enter = async (parentRel: Buffer): Promise<Dir> => {
      // The deepest directory of the path that `parentRel` is in (its archive path a prefix of it
      // up to a `/`), looked for from the top: as many steps as levels are left, whatever the depth.
      let k = stack.length - 1;
      for (; k > 0; k--) {
        const r = stack[k]!.rel;
        if (r.length <= parentRel.length && (r.length === parentRel.length || parentRel[r.length] === 0x2f) && parentRel.compare(r, 0, r.length, 0, r.length) === 0) break;
      }
      while (stack.length > k + 1) queueFinish(stack.pop()!);
      const comps: Buffer[] = [];
      for (let i = k === 0 ? 0 : stack[k]!.rel.length + 1; i < parentRel.length;) {
        const j = parentRel.indexOf(0x2f, i);
        const end = j < 0 ? parentRel.length : j;
        comps.push(parentRel.subarray(i, end));
        i = end + 1;
      }
      for (let i = 0; i < comps.length; i++) {
        const top = stack[stack.length - 1]!;
        const name = comps[i]!;
        const rel = parentRel.subarray(0, comps[i]!.byteOffset - parentRel.byteOffset + name.length);
        const key = name.toString('binary');
        const made = top.pending.get(key);
        if (made !== undefined) top.pending.delete(key);
        else await makeDir(top, Buffer.from(name), Buffer.from(rel)); // for a path only (its own entry left out)
        const pfd = fdOf(top);
        reserve([top]);
        const { fd, st } = openDirStat(pfd, name, rel);
        const d: Dir = { name: Buffer.from(name), rel: Buffer.from(rel), parent: top, fd, dev: st.dev, ino: st.ino, entry: made?.entry, ops: new Set(), pending: new Map() };
        open.add(d);
        stack.push(d);
      }
      return stack[stack.length - 1]!;
    };

    try {
      for await (const item of tree.walk()) {
        tasks.check();
        const rel = item.path;
        const e = item.entry;
        if (rel.length === 0) {
          root.entry = e;
          continue;
        }
        if (!wanted(rel)) continue;
        const slash = rel.lastIndexOf(0x2f);
        const dir = await enter(slash > 0 ? rel.subarray(0, slash) : Buffer.alloc(0));
        const name = Buffer.from(slash >= 0 ? rel.subarray(slash + 1) : rel);
        if (e.kind === 'dir') {
          await makeDir(dir, name, Buffer.from(rel));
          dir.pending.set(name.toString('binary'), { name, entry: e });
          stats.entries++;
          continue;
        }
        await tasks.run(() => {
          const work = restoreEntry(dir, name, item);
          if (e.kind === 'file') {
            const done = work.then(() => ({ dir, name }));
            done.catch(() => undefined);
            pendingFiles.set(Buffer.from(rel).toString('binary'), done);
          }
          dir.ops.add(work);
          const gone = (): boolean => dir.ops.delete(work);
          void work.then(gone, gone);
          return work;
        });
      }
      if (!tasks.failed) await enter(Buffer.alloc(0));
      await tasks.wait();
    } catch (e) {
      await tasks.fail(e); // waits for the entries and the finisher, throws the first failure
    }
    // Last the target itself: its subdirectories never entered, then its own metadata.
    await finish(root);
    if (!isRoot && notOwned > 0) {
      problem(Buffer.alloc(0), 'EPERM', `owners not restored: not running as root (${notOwned} entries belong to other users)`);
    }
    stats.seconds = (performance.now() - t0) / 1000;
    return stats;
  } finally {
    for (const d of open) closeDir(d);
    closeSync(rootFd);
  }
}

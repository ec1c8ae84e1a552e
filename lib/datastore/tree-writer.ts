/**
 * Backs up a directory tree as a tree archive (layer L4): a walk that never follows symlinks,
 * writing file contents to the payload stream and one sorted entry table per directory to the
 * metadata stream (lib/format/tree.ts has the byte layout).
 *
 * Order: within a directory, the files' contents go to the payload stream in name order (the
 * directory's payload base is where the first one starts), then the subdirectories are walked,
 * then the directory's record is written: children before parents, the root entry and the trailer
 * last. A file that cannot be read is reported (path and code) and left out; nothing is skipped
 * silently.
 *
 * The walk goes through directory file descriptors: every directory is opened relative to its
 * parent's descriptor (`openat`, `O_DIRECTORY|O_NOFOLLOW`), listed and stat-ed through it
 * (`readdir`, `fstatat`), so the depth of a tree is not limited by `PATH_MAX`, and a directory
 * swapped for a symlink is not followed. The walk keeps at most {@link MAX_OPEN_DIRS} directory
 * descriptors open, whatever the depth: past that, those nearest the root are closed, and a closed
 * directory with subdirectories left to walk is re-opened when the walk comes back to it, component
 * by component from its nearest open ancestor (`O_DIRECTORY|O_NOFOLLOW`, never by a path, never
 * through `..`), and must be the directory first opened there (device and inode); one that is not
 * is reported `CHANGED` and left out with everything below it, never followed.
 *
 * Files are opened the same way with `O_NOFOLLOW|O_NONBLOCK|O_NOCTTY` (a FIFO or device swapped in
 * cannot block the open), then `fstat`-ed: anything that is no longer the regular file (same device
 * and inode) the walk stat-ed is skipped and reported `CHANGED`. A file is read up to its size at
 * open, never further; a file that grew, shrank or was modified while it was read is kept as read
 * and reported `CHANGED`.
 */
import { constants as fsc, closeSync, read as fsRead, readSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import ignore, { type Ignore } from 'ignore';
import { CairnError, syscallCode, throwIfAborted, type ErrorDetails } from '../errors.js';
import { encodeDirRecord, encodeRootEntry, encodeTreeStreamHeader, encodeTreeTrailer, compareNames, type TreeEntry, type TreeEntryKind } from '../format/tree.js';
import {
  AT_FDCWD,
  AT_SYMLINK_NOFOLLOW,
  nativeFgetxattr,
  nativeFlistxattr,
  nativeFstat,
  nativeFstatat,
  nativeGetXattr,
  nativeListXattrs,
  nativeOpenat,
  nativeReaddir,
  nativeReadlinkat,
  type NativeFileKind,
  type NativeStat,
} from '../codec/native.js';
import type { ChunkStream } from './chunk-stream.js';

/** What the walk writes its two streams into: a {@link ChunkStream}, or a sink of a dry run (counting, or hashing: lib/datastore/dry-run.ts). */
export type TreeSink = Pick<ChunkStream, 'offset' | 'write' | 'cut' | 'preferCut' | 'appendChunk'>;
import type { TreeItem, TreeReader } from './tree-reader.js';

/**
 * Options of {@link SnapshotWriter.addTree}.
 * @category Tree archives
 */
export interface AddTreeOptions {
  /** gitignore-style patterns to leave out, relative to the tree's root (`*.log`, `cache/`, `/tmp`). */
  readonly exclude?: readonly string[];
  /** Do not descend into other filesystems (their mount points are kept, empty). @defaultValue false */
  readonly oneFileSystem?: boolean;
  /** Honour `.cairnignore` files (gitignore syntax) in the tree. @defaultValue true */
  readonly ignoreFiles?: boolean;
  /** Cancels the backup of this archive. */
  readonly signal?: AbortSignal;
  /** Called after each file. */
  readonly onProgress?: (p: TreeProgress) => void;
  /**
   * **Test only**: interleaving hooks used by the test suite to force races. Not part of the
   * supported API; do not use in production code.
   */
  readonly hooks?: {
    /**
     * Called before a directory whose descriptor was closed (the tree is deeper than the walk's
     * limit of 128 open directories) is re-opened to walk its next subdirectory (`rel` is its
     * archive path).
     */
    readonly beforeReopen?: (rel: Uint8Array) => Promise<void> | void;
  };
}

/**
 * Progress of a tree backup.
 * @category Tree archives
 */
export interface TreeProgress {
  /** Archive being written. */
  readonly archive: string;
  /** Entries done. */
  readonly entries: number;
  /** File bytes done (read, or reused from the base). */
  readonly bytes: number;
  /**
   * Entries expected in all, when known: a restore knows them from the archive; a backup with an
   * incremental base estimates them from the base's archive; undefined otherwise.
   */
  readonly entriesTotal?: number;
  /** File bytes expected in all, when known (as {@link TreeProgress.entriesTotal}; from the payload size: an upper bound when reused chunks carry padding). */
  readonly bytesTotal?: number;
}

/**
 * A file or directory that could not be backed up as it was.
 * @category Tree archives
 */
export interface TreeProblem {
  /** Archive-relative path (invalid UTF-8 shown with replacement characters). */
  readonly path: string;
  /**
   * `ENOENT` (vanished), `EACCES`, `CHANGED` (replaced by another file or type after it was
   * listed, or modified while read), `XATTR`, `EMFILE` (too many open files in the process),
   * `BASE` (the previous archive could not be used here: files were read again; nothing is
   * missing), ...
   */
  readonly code: string;
  /** What happened. */
  readonly message: string;
}

/**
 * Counters of a tree backup.
 * @category Tree archives
 */
export interface TreeStats {
  /** Entries in the archive (the root included). */
  entries: number;
  /** Regular files. */
  files: number;
  /** Directories. */
  dirs: number;
  /** Symlinks. */
  symlinks: number;
  /** Hardlinks (entries after the first of an inode). */
  hardlinks: number;
  /** Devices, fifos and sockets. */
  specials: number;
  /** File bytes in the archive. */
  bytes: number;
  /** Files opened and read. */
  filesRead: number;
  /** Unchanged files whose previous payload chunks were reused without opening them. */
  filesReused: number;
  /** Bytes of those files. */
  bytesReused: number;
  /** Bytes of reused chunks that no file of this archive references (padding). */
  paddingBytes: number;
  /** Problems, in walk order (at most 1000 are listed; `problemCount` has them all). */
  problems: TreeProblem[];
  /** Number of problems. */
  problemCount: number;
}

const MAX_LISTED_PROBLEMS = 1000;
const READ_SIZE = 1024 * 1024;
const IGNORE_FILE = '.cairnignore';

/**
 * Directory descriptors the walk keeps open at most, besides the root's (beyond that those nearest
 * the root are closed, and re-opened when needed): a tree thousands of levels deep must not run out
 * of descriptors (the soft limit is often 1,024, or lower).
 */
export const MAX_OPEN_DIRS = 128;

/** The archive's counters of a directory's subtree: put back when it is left out after all. */
type Counts = Pick<TreeStats, 'entries' | 'files' | 'dirs' | 'symlinks' | 'hardlinks' | 'specials' | 'bytes'>;

/** A subdirectory listed and not walked yet. */
interface PendingDir {
  readonly name: Buffer;
  readonly st: NativeStat;
  /** Its entry's place in the parent's entries. */
  readonly index: number;
  /** Its entry in the base archive, if a directory there. */
  readonly prev: TreeItem | undefined;
}

/** A directory on the walk's current path. */
interface Frame {
  /** Its name in its parent (empty for the root). */
  readonly name: Buffer;
  /** Its archive path (empty for the root). */
  readonly rel: Buffer;
  readonly parent: Frame | undefined;
  /** Its entry's place in the parent's entries. */
  readonly index: number;
  /** The open descriptor, or -1 once closed (re-opened when needed). */
  fd: number;
  /** The directory first opened here: a re-open must find the same one. */
  readonly dev: number;
  readonly ino: number;
  /** The ignore rules that apply in it. */
  scopes: readonly IgnoreScope[];
  /** Its entries (undefined: left out after all); subdirectories' are completed once walked. */
  readonly entries: (TreeEntry | undefined)[];
  /** Its subdirectories in name order, `next` the first not walked (those before are released). */
  readonly dirs: (PendingDir | undefined)[];
  next: number;
  payloadBase: number;
  /** Its own extended attributes (read when it was opened). */
  xattrs: [Uint8Array, Uint8Array][] | undefined;
  /** The archive's counters when the walk entered it. */
  readonly counts: Counts;
}

interface IgnoreScope {
  /** Archive-relative directory of the rules ('' for the root). */
  readonly base: string;
  readonly rules: Ignore;
}

const KINDS: Partial<Record<NativeFileKind, TreeEntryKind>> = { file: 'file', dir: 'dir', symlink: 'symlink', char: 'chardev', block: 'blockdev', fifo: 'fifo', socket: 'socket' };

function kindOf(st: NativeStat): TreeEntryKind | undefined {
  return KINDS[st.kind];
}

/** Directories: never through a symlink, never blocking. */
const DIR_FLAGS = fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK;
/** Files: a FIFO or device swapped in opens at once (and is then refused), a tty does not become ours. */
const FILE_FLAGS = fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK | fsc.O_NOCTTY;
/** Largest `.cairnignore` file read. */
const MAX_IGNORE_FILE = 1024 * 1024;

const readAsync = promisify(fsRead);

/** Why an entry could not be opened as what the walk stat-ed. */
interface OpenFailure {
  readonly code: string;
  readonly message: string;
}

/**
 * Opens `name` in `dirfd` as the file or directory `st` describes: the descriptor and its
 * `fstat`, or why not. A different type or inode than `st` (the entry was replaced since it was
 * listed) is `CHANGED`, as is a symlink or a non-directory where a directory was (`ELOOP`, `ENOTDIR`)
 * and a socket where a file was (`ENXIO`).
 */
function openAs(dirfd: number, name: Uint8Array, st: NativeStat, want: 'file' | 'dir'): { fd: number; st: NativeStat } | OpenFailure {
  let fd: number;
  try {
    const flags = want === 'dir' ? DIR_FLAGS : FILE_FLAGS;
    try {
      fd = nativeOpenat(dirfd, name, want === 'file' ? flags | fsc.O_NOATIME : flags);
    } catch (e) {
      // O_NOATIME is refused for files we do not own (EPERM): retry without it.
      if (want !== 'file' || codeOf(e) !== 'EPERM') throw e;
      fd = nativeOpenat(dirfd, name, flags);
    }
  } catch (e) {
    const code = codeOf(e) ?? 'EIO';
    if (code === 'ELOOP' || code === 'ENOTDIR' || code === 'ENXIO') return { code: 'CHANGED', message: `replaced since it was listed (${code}); left out` };
    return { code, message: `cannot ${want === 'dir' ? 'open directory' : 'open'}: ${(e as Error).message}` };
  }
  let now: NativeStat;
  try {
    now = nativeFstat(fd);
  } catch (e) {
    closeSync(fd);
    return { code: codeOf(e) ?? 'EIO', message: `cannot stat: ${(e as Error).message}` };
  }
  if (now.kind !== st.kind || now.dev !== st.dev || now.ino !== st.ino) {
    closeSync(fd);
    return { code: 'CHANGED', message: `replaced since it was listed (now ${now.kind === st.kind ? 'another' : `a ${now.kind}`} inode); left out` };
  }
  return { fd, st: now };
}

/** The errno name of a system error or of an `ERR_IO` from the native wrappers. */
function codeOf(e: unknown): string | undefined {
  return (e as { details?: { syscallCode?: string } } | null)?.details?.syscallCode ?? syscallCode(e);
}

/** Files up to this size are read whole, synchronously (see readSmallSync). */
const SMALL_FILE = 256 * 1024;

/** A file read: its bytes' place in the payload stream, the stat at open, its xattrs. */
interface FileRead {
  readonly offset: number;
  readonly size: number;
  readonly st: NativeStat;
  readonly xattrs: [Uint8Array, Uint8Array][] | undefined;
}

/** True when a file's type, size, mtime, mode, uid and gid equal its previous entry's. */
function unchanged(prev: TreeEntry, cur: TreeEntry, st: NativeStat): boolean {
  return prev.kind === 'file' && prev.size === st.size && prev.mtimeNs === cur.mtimeNs && prev.mode === cur.mode && prev.uid === cur.uid && prev.gid === cur.gid;
}

function major(rdev: number): number {
  const r = BigInt(rdev);
  return Number(((r >> 8n) & 0xfffn) | ((r >> 32n) & ~0xfffn));
}

function minor(rdev: number): number {
  const r = BigInt(rdev);
  return Number((r & 0xffn) | ((r >> 12n) & ~0xffn));
}

function joinRel(parent: Buffer, name: Uint8Array): Buffer {
  return parent.length === 0 ? Buffer.from(name) : Buffer.concat([parent, Buffer.from('/'), name]);
}

/** Walks a directory and writes a tree archive's two streams. */
export class TreeWalker {
  /** Counters. */
  readonly stats: TreeStats = {
    entries: 0,
    files: 0,
    dirs: 0,
    symlinks: 0,
    hardlinks: 0,
    specials: 0,
    bytes: 0,
    filesRead: 0,
    filesReused: 0,
    bytesReused: 0,
    paddingBytes: 0,
    problems: [],
    problemCount: 0,
  };
  /** Chunks of the previous payload stream reused so far, and their bytes (each counted once). */
  private readonly reusedChunks = new Set<number>();
  private reusedChunkBytes = 0;
  /** A run of unchanged files that were contiguous in the previous payload stream. */
  private pendingRun: { firstChunk: number; chunkStart: number; newBase: number; prevStart: number; prevEnd: number } | undefined;
  private readonly links = new Map<string, Buffer>();
  private readonly buf = Buffer.allocUnsafeSlow(READ_SIZE);
  private rootDev = 0;
  /** Directory descriptors open besides the root's. */
  private openDirs = 0;

  /**
   * @param archive - archive name (for progress and errors)
   * @param meta - the metadata stream
   * @param payload - the payload stream
   * @param options - walk options
   * @param details - ids for errors
   * @param prev - the same archive in the base snapshot: unchanged files reuse its payload chunks
   */
  constructor(
    private readonly archive: string,
    private readonly meta: TreeSink,
    private readonly payload: TreeSink,
    private readonly options: AddTreeOptions,
    private readonly details: ErrorDetails,
    private readonly prev?: TreeReader,
  ) {}

  /** Reports progress: entries done, `bytes` done, the base's totals as the estimate. */
  private progress(bytes: number): void {
    this.options.onProgress?.({
      archive: this.archive,
      entries: this.stats.entries,
      bytes,
      ...(this.prev === undefined ? {} : { entriesTotal: this.prev.entryCount, bytesTotal: this.prev.payloadSize }),
    });
  }

  private problem(rel: Buffer, code: string, message: string): void {
    this.stats.problemCount++;
    if (this.stats.problems.length < MAX_LISTED_PROBLEMS) this.stats.problems.push({ path: rel.toString('utf8') || '.', code, message });
  }

  /** Walks `root` and writes both streams; returns the trailer's numbers. */
  async run(root: string): Promise<void> {
    const abs = path.resolve(root);
    let rootFd: number;
    try {
      rootFd = nativeOpenat(AT_FDCWD, abs, DIR_FLAGS);
    } catch (e) {
      const code = codeOf(e);
      if (code === 'ENOTDIR' || code === 'ELOOP') {
        throw new CairnError('ERR_INVALID_ARGUMENT', `tree source ${root} is not a directory`, { ...this.details, path: root }, e);
      }
      if (code === 'ENOENT') throw new CairnError('ERR_NOT_FOUND', `tree source ${root} does not exist`, { ...this.details, path: root }, e);
      throw new CairnError(
        'ERR_IO',
        `cannot open tree source ${root}: ${(e as Error).message}`,
        { ...this.details, path: root, ...(code === undefined ? {} : { syscallCode: code }) },
        e,
      );
    }
    try {
      const rootSt = nativeFstat(rootFd);
      this.rootDev = rootSt.dev;
      await this.meta.write(encodeTreeStreamHeader());
      const scopes: IgnoreScope[] = [];
      if (this.options.exclude !== undefined && this.options.exclude.length > 0) {
        scopes.push({ base: '', rules: ignore().add([...this.options.exclude]) });
      }
      const child = await this.walk(rootFd, rootSt, scopes);
      await this.flushRun();
      const rootX = this.xattrsOfFd(rootFd, Buffer.alloc(0));
      const rootEntry: TreeEntry = { ...this.entryBase(Buffer.alloc(0), 'dir', rootSt), child, ...(rootX === undefined ? {} : { xattrs: rootX }) };
      this.stats.entries++;
      this.stats.dirs++;
      const rootEntryOffset = this.meta.offset;
      await this.meta.write(encodeRootEntry(rootEntry));
      await this.payload.cut();
      await this.meta.write(encodeTreeTrailer({ rootEntryOffset, payloadSize: this.payload.offset, entryCount: this.stats.entries }));
    } finally {
      closeSync(rootFd);
    }
  }

  private entryBase(name: Uint8Array, kind: TreeEntryKind, st: NativeStat): TreeEntry {
    return {
      name,
      kind,
      mode: st.mode & 0o7777,
      uid: st.uid,
      gid: st.gid,
      mtimeNs: st.mtimeNs,
      size: 0,
      payloadOffset: 0,
    };
  }

  /** The xattrs of an open file or directory. */
  private xattrsOfFd(fd: number, rel: Buffer): [Uint8Array, Uint8Array][] | undefined {
    return this.collectXattrs(
      rel,
      () => nativeFlistxattr(fd),
      (n) => nativeFgetxattr(fd, n),
    );
  }

  /**
   * The xattrs of an entry that is not open (a symlink, a device, an unchanged file): by a short
   * path through the parent's descriptor (`/proc/self/fd/<dirfd>/<name>`), with the `l*xattr`
   * calls, which do not follow the final symlink. Never longer than a name, whatever the depth.
   */
  private xattrsAt(dirfd: number, name: Uint8Array, rel: Buffer): [Uint8Array, Uint8Array][] | undefined {
    const p = Buffer.concat([Buffer.from(`/proc/self/fd/${dirfd}/`), name]);
    return this.collectXattrs(
      rel,
      () => nativeListXattrs(p),
      (n) => nativeGetXattr(p, n),
    );
  }

  private collectXattrs(rel: Buffer, list: () => Buffer[], get: (name: Buffer) => Buffer): [Uint8Array, Uint8Array][] | undefined {
    try {
      const names = list();
      if (names.length === 0) return undefined;
      const out: [Uint8Array, Uint8Array][] = [];
      for (const n of names.sort(compareNames)) {
        try {
          out.push([n, get(n)]);
        } catch (e) {
          // Vanished between list and get: nothing to keep.
          if (codeOf(e) !== 'ENODATA') {
            this.problem(rel, 'XATTR', `extended attribute ${Buffer.from(n).toString('utf8')}: ${(e as Error).message}`);
          }
        }
      }
      return out.length > 0 ? out : undefined;
    } catch (e) {
      this.problem(rel, 'XATTR', `cannot list extended attributes: ${(e as Error).message}`);
      return undefined;
    }
  }

  private ignored(scopes: readonly IgnoreScope[], rel: string, isDir: boolean): boolean {
    for (const s of scopes) {
      const sub = s.base === '' ? rel : rel.slice(s.base.length + 1);
      if (s.rules.ignores(isDir ? `${sub}/` : sub)) return true;
    }
    return false;
  }

  /** Reads the `.cairnignore` of a directory (a regular file, at most 1 MiB), or reports why not. */
  private readIgnoreFile(dirfd: number, rel: Buffer): string | undefined {
    const rel1 = joinRel(rel, Buffer.from(IGNORE_FILE));
    let st: NativeStat;
    try {
      st = nativeFstatat(dirfd, IGNORE_FILE, AT_SYMLINK_NOFOLLOW);
    } catch (e) {
      this.problem(rel1, codeOf(e) ?? 'EIO', `cannot read ignore file: ${(e as Error).message}`);
      return undefined;
    }
    if (st.kind !== 'file' || st.size > MAX_IGNORE_FILE) {
      this.problem(rel1, 'ETYPE', `ignore file not used: ${st.kind !== 'file' ? `it is a ${st.kind}, not a regular file` : `${st.size} bytes, more than ${MAX_IGNORE_FILE}`}`);
      return undefined;
    }
    const o = openAs(dirfd, Buffer.from(IGNORE_FILE), st, 'file');
    if (!('fd' in o)) {
      this.problem(rel1, o.code, `cannot read ignore file: ${o.message}`);
      return undefined;
    }
    try {
      const buf = Buffer.alloc(o.st.size);
      let n = 0;
      while (n < buf.length) {
        const k = readSync(o.fd, buf, n, buf.length - n, n);
        if (k === 0) break;
        n += k;
      }
      return buf.subarray(0, n).toString('utf8');
    } catch (e) {
      this.problem(rel1, codeOf(e) ?? 'EIO', `cannot read ignore file: ${(e as Error).message}`);
      return undefined;
    } finally {
      closeSync(o.fd);
    }
  }

  /**
   * Walks the tree below `root` (whose descriptor is `rootFd`, kept open by the caller) without
   * recursion: a stack of the directories on the current path, each with its entries so far and
   * the subdirectories still to walk. Returns the root directory's record.
   */
  private async walk(rootFd: number, rootSt: NativeStat, scopes: readonly IgnoreScope[]): Promise<{ metaOffset: number; payloadBase: number }> {
    const root: Frame = this.frame(Buffer.alloc(0), Buffer.alloc(0), rootFd, rootSt, -1, undefined);
    const stack: Frame[] = [root];
    try {
      await this.enter(root, scopes, this.prev?.root);
      for (;;) {
        const top = stack[stack.length - 1]!;
        if (top.next < top.dirs.length) {
          const dirfd = await this.fdOf(stack);
          if (dirfd === undefined) continue; // the directory was replaced meanwhile: left out
          const d = top.dirs[top.next]!;
          top.dirs[top.next++] = undefined; // done with it
          const childRel = joinRel(top.rel, d.name);
          if (this.options.oneFileSystem === true && d.st.dev !== this.rootDev) {
            // A mount point: kept, its contents are not.
            const xattrs = this.xattrsAt(dirfd, d.name, childRel);
            this.finishChild(top, d.index, await this.emptyDir(), xattrs);
            continue;
          }
          const o = openAs(dirfd, d.name, d.st, 'dir');
          if (!('fd' in o)) {
            this.problem(childRel, o.code, o.message);
            if (o.code === 'CHANGED') {
              // Not a directory any more: it is not in the archive.
              top.entries[d.index] = undefined;
              continue;
            }
            // Kept, empty: its name and metadata are known, its contents are not.
            const xattrs = this.xattrsAt(dirfd, d.name, childRel);
            this.finishChild(top, d.index, await this.emptyDir(), xattrs);
            continue;
          }
          const child = this.frame(d.name, childRel, o.fd, o.st, d.index, top);
          stack.push(child);
          this.openDirs++;
          this.trim(stack, stack.length - 1);
          child.xattrs = this.xattrsOfFd(o.fd, childRel);
          await this.enter(child, top.scopes, d.prev);
        } else {
          // Everything below is done: the directory's record (it needs no descriptor).
          const metaOffset = this.meta.offset;
          await this.meta.write(encodeDirRecord(top.entries.filter((e): e is TreeEntry => e !== undefined)));
          const done = { metaOffset, payloadBase: top.payloadBase };
          if (top.parent === undefined) return done;
          this.closeFrame(top);
          stack.pop();
          this.finishChild(top.parent, top.index, done, top.xattrs);
        }
      }
    } finally {
      for (const f of stack) if (f !== root) this.closeFrame(f);
    }
  }

  private frame(name: Buffer, rel: Buffer, fd: number, st: NativeStat, index: number, parent: Frame | undefined): Frame {
    const s = this.stats;
    return {
      name,
      rel,
      parent,
      index,
      fd,
      dev: st.dev,
      ino: st.ino,
      scopes: [],
      entries: [],
      dirs: [],
      next: 0,
      payloadBase: 0,
      xattrs: undefined,
      counts: { entries: s.entries, files: s.files, dirs: s.dirs, symlinks: s.symlinks, hardlinks: s.hardlinks, specials: s.specials, bytes: s.bytes },
    };
  }

  /** Completes a subdirectory's entry in its parent once its record is written. */
  private finishChild(parent: Frame, index: number, child: { metaOffset: number; payloadBase: number }, xattrs: [Uint8Array, Uint8Array][] | undefined): void {
    parent.entries[index] = { ...parent.entries[index]!, child, ...(xattrs === undefined ? {} : { xattrs }) };
    this.stats.entries++;
    this.stats.dirs++;
  }

  private closeFrame(f: Frame): void {
    if (f.fd < 0) return;
    closeSync(f.fd);
    f.fd = -1;
    this.openDirs--;
  }

  /**
   * Keeps at most {@link MAX_OPEN_DIRS} directory descriptors open besides the root's: past that,
   * closes those nearest the root (they are needed again only if they have subdirectories left to
   * walk) down to half the limit. Never the root, never `keep` (the one in use), so the deepest
   * ones stay open and the walk returning up the tree finds them.
   */
  private trim(stack: readonly Frame[], keep: number): void {
    if (this.openDirs <= MAX_OPEN_DIRS) return;
    for (let i = 1; i < stack.length && this.openDirs > MAX_OPEN_DIRS / 2; i++) {
      if (i !== keep) this.closeFrame(stack[i]!);
    }
  }

  /**
   * The descriptor of the directory at the top of the stack. If it was closed, it is re-opened
   * from its nearest open ancestor, component by component (`O_DIRECTORY|O_NOFOLLOW`, never by a
   * path, never through `..`), each checked to be the directory first opened there (device and
   * inode). One that is not (moved, swapped for another directory or a symlink meanwhile), or
   * cannot be opened, is left out with everything below it and reported: undefined then.
   */
  private async fdOf(stack: Frame[]): Promise<number | undefined> {
    const top = stack[stack.length - 1]!;
    if (top.fd >= 0) return top.fd;
    await this.options.hooks?.beforeReopen?.(top.rel);
    let i = stack.length - 1;
    while (stack[i - 1]!.fd < 0) i--; // the root is always open
    for (; i < stack.length; i++) {
      const f = stack[i]!;
      let fd: number;
      try {
        fd = nativeOpenat(stack[i - 1]!.fd, f.name, DIR_FLAGS);
      } catch (e) {
        const code = codeOf(e) ?? 'EIO';
        const changed = code === 'ELOOP' || code === 'ENOTDIR';
        this.drop(
          stack,
          i,
          changed ? 'CHANGED' : code,
          changed ? `replaced while the walk was below it (${code} when re-opened)` : `cannot re-open directory: ${(e as Error).message}`,
        );
        return undefined;
      }
      let st: NativeStat;
      try {
        st = nativeFstat(fd);
      } catch (e) {
        closeSync(fd);
        this.drop(stack, i, codeOf(e) ?? 'EIO', `cannot stat re-opened directory: ${(e as Error).message}`);
        return undefined;
      }
      if (st.kind !== 'dir' || st.dev !== f.dev || st.ino !== f.ino) {
        closeSync(fd);
        this.drop(stack, i, 'CHANGED', 'replaced while the walk was below it (another inode when re-opened)');
        return undefined;
      }
      f.fd = fd;
      this.openDirs++;
      this.trim(stack, i);
    }
    return top.fd;
  }

  /**
   * Leaves the directory at `stack[i]` out of the archive, with everything below it (what was
   * walked of it is forgotten: counters, hardlink targets), and reports why.
   */
  private drop(stack: Frame[], i: number, code: string, message: string): void {
    const f = stack[i]!;
    this.problem(f.rel, code, `${message}; left out, with everything below it`);
    for (let k = stack.length - 1; k >= i; k--) this.closeFrame(stack[k]!);
    stack.length = i;
    f.parent!.entries[f.index] = undefined;
    Object.assign(this.stats, f.counts);
    const prefix = Buffer.concat([f.rel, Buffer.from('/')]);
    for (const [key, rel] of this.links) {
      if (rel.length > prefix.length && rel.subarray(0, prefix.length).equals(prefix)) this.links.delete(key);
    }
  }

  /**
   * Lists an open directory and writes its files' contents: fills the frame's entries, with its
   * subdirectories' entries to be completed once they are walked.
   */
  private async enter(frame: Frame, inherited: readonly IgnoreScope[], prevDir: TreeItem | undefined): Promise<void> {
    throwIfAborted(this.options.signal, this.details);
    const dirfd = frame.fd;
    const rel = frame.rel;
    let names: Buffer[];
    try {
      names = nativeReaddir(dirfd)
        .map((d) => d.name)
        .sort(compareNames);
    } catch (e) {
      this.problem(rel, codeOf(e) ?? 'EIO', `cannot list directory: ${(e as Error).message}`);
      names = [];
    }
    let scopes = inherited;
    if (this.options.ignoreFiles !== false && names.some((n) => n.toString('latin1') === IGNORE_FILE)) {
      const text = this.readIgnoreFile(dirfd, rel);
      if (text !== undefined) scopes = [...inherited, { base: rel.toString('utf8'), rules: ignore().add(text) }];
    }
    frame.scopes = scopes;
    // fstatat everything. Synchronously: a stat of a cached inode takes a few microseconds, far
    // less than a round trip through libuv's thread pool (measured: 100k entries 0.2 s against
    // 0.5 s); the event loop is held for one directory at a time, and yields between directories.
    const stats: (NativeStat | undefined)[] = new Array(names.length);
    for (let i = 0; i < names.length; i++) {
      const n = names[i]!;
      try {
        stats[i] = nativeFstatat(dirfd, n, AT_SYMLINK_NOFOLLOW);
      } catch (e) {
        this.problem(joinRel(rel, n), codeOf(e) ?? 'EIO', `cannot stat: ${(e as Error).message}`);
      }
    }
    const entries = frame.entries;
    const payloadBase = this.nextPayloadOffset();
    frame.payloadBase = payloadBase;
    const prevItems = new Map<string, TreeItem>();
    if (prevDir !== undefined && prevDir.entry.kind === 'dir') {
      try {
        for (const item of await this.prev!.readDir(prevDir)) prevItems.set(Buffer.from(item.entry.name).toString('binary'), item);
      } catch (e) {
        // A damaged base only costs reuse: read everything.
        this.problem(rel, 'BASE', `previous archive unreadable here, files are read again: ${(e as Error).message}`);
      }
    }
    for (let i = 0; i < names.length; i++) {
      const name = names[i]!;
      const st = stats[i];
      if (st === undefined) continue;
      const childRel = joinRel(rel, name);
      const kind = kindOf(st);
      if (kind === undefined) {
        this.problem(childRel, 'ETYPE', 'unknown file type');
        continue;
      }
      if (this.ignored(scopes, childRel.toString('utf8'), kind === 'dir')) continue;
      const prev = prevItems.get(name.toString('binary'));
      if (kind === 'dir') {
        frame.dirs.push({ name, st, index: entries.length, prev: prev?.entry.kind === 'dir' ? prev : undefined });
        entries.push(this.entryBase(name, 'dir', st)); // completed once it is walked
        continue;
      }
      const entry = await this.leaf(dirfd, childRel, name, kind, st, payloadBase, prev);
      if (entry !== undefined) entries.push(entry);
    }
  }

  private async emptyDir(): Promise<{ metaOffset: number; payloadBase: number }> {
    const metaOffset = this.meta.offset;
    await this.meta.write(encodeDirRecord([]));
    return { metaOffset, payloadBase: this.nextPayloadOffset() };
  }

  /**
   * Where the next file's content will start. While a reuse run is pending nothing is written, so
   * this is where the run's reused bytes end: a following unchanged file lands exactly there, and
   * anything else lands later. For an unchanged tree this reproduces the previous layout, so the
   * directory records encode to the same bytes and deduplicate.
   */
  private nextPayloadOffset(): number {
    const r = this.pendingRun;
    return r === undefined ? this.payload.offset : r.newBase + (r.prevEnd - r.chunkStart);
  }

  /**
   * Reuses an unchanged file's previous content: its range in the previous payload stream joins
   * the pending run when it follows it there, or starts a new run. Returns the file's offset in
   * the new payload stream.
   */
  private async reuse(prevStart: number, size: number): Promise<number> {
    const r = this.pendingRun;
    if (r !== undefined && prevStart === r.prevEnd) {
      r.prevEnd += size;
      return r.newBase + (prevStart - r.chunkStart);
    }
    await this.flushRun();
    await this.payload.cut();
    const idx = this.prev!.payload;
    const first = idx.find(prevStart);
    const chunkStart = idx.chunkRange(first).start;
    const newBase = this.payload.offset;
    this.pendingRun = { firstChunk: first, chunkStart, newBase, prevStart, prevEnd: prevStart + size };
    return newBase + (prevStart - chunkStart);
  }

  /** Appends the pending run's chunks to the new payload stream by digest. */
  private async flushRun(): Promise<void> {
    const r = this.pendingRun;
    if (r === undefined) return;
    this.pendingRun = undefined;
    const idx = this.prev!.payload;
    const last = idx.find(r.prevEnd - 1);
    for (let i = r.firstChunk; i <= last; i++) {
      const { start, end } = idx.chunkRange(i);
      await this.payload.appendChunk(idx.digestAt(i), end - start);
      // Padding is storage no file uses: a chunk referenced by two runs is stored once.
      if (!this.reusedChunks.has(i)) {
        this.reusedChunks.add(i);
        this.reusedChunkBytes += end - start;
      }
    }
    this.stats.paddingBytes = Math.max(0, this.reusedChunkBytes - this.stats.bytesReused);
  }

  private async leaf(
    dirfd: number,
    rel: Buffer,
    name: Buffer,
    kind: TreeEntryKind,
    st: NativeStat,
    payloadBase: number,
    prev: TreeItem | undefined,
  ): Promise<TreeEntry | undefined> {
    const base = this.entryBase(name, kind, st);
    let entry: TreeEntry;
    let xattrs: [Uint8Array, Uint8Array][] | undefined;
    let xattrsRead = false;
    if (kind === 'file') {
      const key = `${st.dev}:${st.ino}`;
      const first = st.nlink > 1 ? this.links.get(key) : undefined;
      if (first !== undefined) {
        entry = { ...base, kind: 'hardlink', target: first };
        this.stats.hardlinks++;
      } else if (prev !== undefined && prev.entry.size === 0 && unchanged(prev.entry, base, st)) {
        // Unchanged and empty: nothing to read or reuse (and the pending run goes on).
        if (st.nlink > 1) this.links.set(key, rel);
        entry = { ...base, size: 0, payloadOffset: this.nextPayloadOffset() - payloadBase };
        this.stats.files++;
        this.stats.filesReused++;
      } else if (prev !== undefined && unchanged(prev.entry, base, st)) {
        // Metadata mode: same type, size, mtime, mode and owner -> the file is not opened.
        const offset = await this.reuse(prev.payloadStart, prev.entry.size);
        if (st.nlink > 1) this.links.set(key, rel);
        entry = { ...base, size: prev.entry.size, payloadOffset: offset - payloadBase };
        this.stats.files++;
        this.stats.filesReused++;
        this.stats.bytes += prev.entry.size;
        this.stats.bytesReused += prev.entry.size;
      } else {
        await this.flushRun();
        const read = await this.readFile(dirfd, name, rel, st);
        if (read === undefined) return undefined;
        if (st.nlink > 1) this.links.set(key, rel);
        // The metadata of the inode as opened (the same inode the walk stat-ed).
        entry = { ...this.entryBase(name, kind, read.st), size: read.size, payloadOffset: read.offset - payloadBase };
        xattrs = read.xattrs;
        xattrsRead = true;
        this.stats.files++;
        this.stats.bytes += read.size;
      }
    } else if (kind === 'symlink') {
      try {
        entry = { ...base, target: nativeReadlinkat(dirfd, name) };
      } catch (e) {
        const code = codeOf(e) ?? 'EIO';
        // EINVAL: no longer a symlink.
        this.problem(rel, code === 'EINVAL' ? 'CHANGED' : code, `cannot read symlink: ${(e as Error).message}`);
        return undefined;
      }
      this.stats.symlinks++;
    } else if (kind === 'chardev' || kind === 'blockdev') {
      entry = { ...base, rdevMajor: major(st.rdev), rdevMinor: minor(st.rdev) };
      this.stats.specials++;
    } else {
      entry = base;
      this.stats.specials++;
    }
    if (!xattrsRead) xattrs = this.xattrsAt(dirfd, name, rel);
    this.stats.entries++;
    this.progress(this.stats.bytes);
    return xattrs === undefined ? entry : { ...entry, xattrs };
  }

  /**
   * Reads a regular file into the payload stream, relative to its directory's descriptor, up to
   * its size at open; undefined (and a problem) when it cannot be opened as the file the walk
   * stat-ed. Small files are read synchronously: for a cached file the system calls take a few
   * microseconds each, far less than round trips through libuv's thread pool (measured on a
   * 100k-file tree).
   */
  private async readFile(dirfd: number, name: Buffer, rel: Buffer, listed: NativeStat): Promise<FileRead | undefined> {
    const o = openAs(dirfd, name, listed, 'file');
    if (!('fd' in o)) {
      this.problem(rel, o.code, o.message);
      return undefined;
    }
    const { fd, st } = o;
    const offset = this.payload.offset;
    const want = st.size;
    let size = 0;
    let readError: unknown;
    let xattrs: [Uint8Array, Uint8Array][] | undefined;
    try {
      this.stats.filesRead++;
      // Only the reads' own errors are the file's problem; the payload stream's (abort, a full
      // datastore) end the backup.
      if (want <= SMALL_FILE) {
        const buf = Buffer.allocUnsafe(want);
        try {
          while (size < want) {
            const n = readSync(fd, buf, size, want - size, size);
            if (n === 0) break;
            size += n;
          }
        } catch (e) {
          readError = e;
        }
        await this.payload.write(buf.subarray(0, size));
      } else {
        while (size < want) {
          throwIfAborted(this.options.signal, this.details);
          let n: number;
          try {
            n = (await readAsync(fd, this.buf, 0, Math.min(READ_SIZE, want - size), size)).bytesRead;
          } catch (e) {
            readError = e;
            break;
          }
          if (n === 0) break;
          await this.payload.write(this.buf.subarray(0, n));
          size += n;
          this.progress(this.stats.bytes + size);
        }
      }
      if (readError !== undefined) {
        this.problem(rel, codeOf(readError) ?? 'EIO', `read failed after ${size} bytes: ${(readError as Error).message}; the bytes read are kept`);
      } else {
        let after: NativeStat | undefined;
        try {
          after = nativeFstat(fd);
        } catch {
          after = undefined;
        }
        if (after === undefined || after.mtimeNs !== st.mtimeNs || after.size !== want || size !== want) {
          this.problem(rel, 'CHANGED', `changed while being read (${want} bytes at open, ${size} read, ${after?.size ?? '?'} after); the bytes read are kept`);
        } else if (st.mtimeNs !== listed.mtimeNs || st.size !== listed.size) {
          this.problem(rel, 'CHANGED', `changed after the walk listed it (${listed.size} bytes then, ${want} at open); kept as it was at open`);
        }
      }
      xattrs = this.xattrsOfFd(fd, rel);
    } finally {
      closeSync(fd);
    }
    await this.payload.preferCut();
    return { offset, size, st, xattrs };
  }
}

/**
 * What a dry run of a tree backup found.
 * @category Tree archives
 */
export interface TreeScanStats extends TreeStats {
  /** Bytes of the metadata stream the archive would have. */
  metaBytes: number;
  /** Seconds taken. */
  seconds: number;
}

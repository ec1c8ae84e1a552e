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
 */
import { promises as fsp, constants as fsc, closeSync, fstatSync, lstatSync, openSync, readSync, type BigIntStats } from 'node:fs';
import path from 'node:path';
import ignore, { type Ignore } from 'ignore';
import { CairnError, syscallCode, throwIfAborted, type ErrorDetails } from '../errors.js';
import {
  encodeDirRecord,
  encodeRootEntry,
  encodeTreeStreamHeader,
  encodeTreeTrailer,
  compareNames,
  type TreeEntry,
  type TreeEntryKind,
} from '../format/tree.js';
import { nativeGetXattr, nativeListXattrs } from '../codec/native.js';
import type { ChunkStream } from './chunk-stream.js';
import type { TreeItem, TreeReader } from './tree-reader.js';

/** Options of {@link SnapshotWriter.addTree}. */
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
}

/** Progress of a tree backup. */
export interface TreeProgress {
  /** Archive being written. */
  readonly archive: string;
  /** Entries done. */
  readonly entries: number;
  /** File bytes read. */
  readonly bytes: number;
}

/** A file or directory that could not be backed up as it was. */
export interface TreeProblem {
  /** Archive-relative path (invalid UTF-8 shown with replacement characters). */
  readonly path: string;
  /** `ENOENT` (vanished), `EACCES`, `CHANGED` (modified while read), `XATTR`, ... */
  readonly code: string;
  /** What happened. */
  readonly message: string;
}

/** Counters of a tree backup. */
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
const SLASH = Buffer.from('/');
const IGNORE_FILE = '.cairnignore';

interface IgnoreScope {
  /** Archive-relative directory of the rules ('' for the root). */
  readonly base: string;
  readonly rules: Ignore;
}

function kindOf(st: BigIntStats): TreeEntryKind | undefined {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isCharacterDevice()) return 'chardev';
  if (st.isBlockDevice()) return 'blockdev';
  if (st.isFIFO()) return 'fifo';
  if (st.isSocket()) return 'socket';
  return undefined;
}

/** Files up to this size are read whole, synchronously (see readSmallSync). */
const SMALL_FILE = 256 * 1024;

/** A small file read whole: its bytes, or why not. */
interface SmallRead {
  readonly data: Uint8Array;
  readonly after?: BigIntStats;
  readonly openError?: unknown;
  readonly readError?: unknown;
}

/**
 * Reads a small file whole, synchronously: for a cached file the four system calls take a few
 * microseconds each, far less than four round trips through libuv's thread pool (measured on a
 * 100k-file tree). Larger files go through the asynchronous path.
 */
function readSmallSync(abs: Buffer, st: BigIntStats): SmallRead {
  let fd: number;
  try {
    try {
      fd = openSync(abs, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NOATIME);
    } catch (e) {
      // O_NOATIME is refused for files we do not own (EPERM): retry without it.
      if (syscallCode(e) !== 'EPERM') throw e;
      fd = openSync(abs, fsc.O_RDONLY | fsc.O_NOFOLLOW);
    }
  } catch (e) {
    return { data: new Uint8Array(0), openError: e };
  }
  const buf = Buffer.allocUnsafe(Number(st.size) + 1);
  let size = 0;
  try {
    for (;;) {
      const n = readSync(fd, buf, size, buf.length - size, size);
      if (n === 0) break;
      size += n;
      if (size === buf.length || size >= Number(st.size)) break;
    }
    return { data: buf.subarray(0, size), after: fstatSync(fd, { bigint: true }) };
  } catch (e) {
    return { data: buf.subarray(0, size), readError: e };
  } finally {
    closeSync(fd);
  }
}

/** True when a file's type, size, mtime, mode, uid and gid equal its previous entry's. */
function unchanged(prev: TreeEntry, cur: TreeEntry, st: BigIntStats): boolean {
  return prev.kind === 'file' && BigInt(prev.size) === st.size && prev.mtimeNs === cur.mtimeNs && prev.mode === cur.mode && prev.uid === cur.uid && prev.gid === cur.gid;
}

function major(rdev: bigint): number {
  return Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
}

function minor(rdev: bigint): number {
  return Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn));
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
  private rootDev = 0n;

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
    private readonly meta: ChunkStream,
    private readonly payload: ChunkStream,
    private readonly options: AddTreeOptions,
    private readonly details: ErrorDetails,
    private readonly prev?: TreeReader,
  ) {}

  private problem(rel: Buffer, code: string, message: string): void {
    this.stats.problemCount++;
    if (this.stats.problems.length < MAX_LISTED_PROBLEMS) this.stats.problems.push({ path: rel.toString('utf8') || '.', code, message });
  }

  /** Walks `root` and writes both streams; returns the trailer's numbers. */
  async run(root: string): Promise<void> {
    const rootSt = await fsp.lstat(root, { bigint: true });
    if (!rootSt.isDirectory()) {
      throw new CairnError('ERR_INVALID_ARGUMENT', `tree source ${root} is not a directory`, { ...this.details, path: root });
    }
    this.rootDev = rootSt.dev;
    await this.meta.write(encodeTreeStreamHeader());
    const scopes: IgnoreScope[] = [];
    if (this.options.exclude !== undefined && this.options.exclude.length > 0) {
      scopes.push({ base: '', rules: ignore().add([...this.options.exclude]) });
    }
    const child = await this.walkDir(Buffer.from(path.resolve(root)), Buffer.alloc(0), scopes, this.prev?.root);
    await this.flushRun();
    const rootX = this.xattrs(Buffer.from(path.resolve(root)), Buffer.alloc(0));
    const rootEntry: TreeEntry = { ...this.entryBase(Buffer.alloc(0), 'dir', rootSt), child, ...(rootX === undefined ? {} : { xattrs: rootX }) };
    this.stats.entries++;
    this.stats.dirs++;
    const rootEntryOffset = this.meta.offset;
    await this.meta.write(encodeRootEntry(rootEntry));
    await this.payload.cut();
    await this.meta.write(encodeTreeTrailer({ rootEntryOffset, payloadSize: this.payload.offset, entryCount: this.stats.entries }));
  }

  private entryBase(name: Uint8Array, kind: TreeEntryKind, st: BigIntStats): TreeEntry {
    return {
      name,
      kind,
      mode: Number(st.mode & 0o7777n),
      uid: Number(st.uid),
      gid: Number(st.gid),
      mtimeNs: st.mtimeNs,
      size: 0,
      payloadOffset: 0,
    };
  }

  private xattrs(abs: Buffer, rel: Buffer): [Uint8Array, Uint8Array][] | undefined {
    try {
      const names = nativeListXattrs(abs);
      if (names.length === 0) return undefined;
      const out: [Uint8Array, Uint8Array][] = [];
      for (const n of names.sort(compareNames)) {
        try {
          out.push([n, nativeGetXattr(abs, n)]);
        } catch (e) {
          // Vanished between list and get: nothing to keep.
          if (syscallCode((e as { details?: { syscallCode?: string } }).details ?? e) !== 'ENODATA') {
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

  private async walkDir(abs: Buffer, rel: Buffer, inherited: readonly IgnoreScope[], prevDir: TreeItem | undefined): Promise<{ metaOffset: number; payloadBase: number }> {
    throwIfAborted(this.options.signal, this.details);
    let names: Buffer[];
    try {
      names = (await fsp.readdir(abs, { encoding: 'buffer' })).sort(compareNames);
    } catch (e) {
      this.problem(rel, syscallCode(e) ?? 'EIO', `cannot list directory: ${(e as Error).message}`);
      names = [];
    }
    let scopes = inherited;
    if (this.options.ignoreFiles !== false && names.some((n) => n.toString('latin1') === IGNORE_FILE)) {
      try {
        const text = await fsp.readFile(Buffer.concat([abs, Buffer.from(`/${IGNORE_FILE}`)]), 'utf8');
        scopes = [...inherited, { base: rel.toString('utf8'), rules: ignore().add(text) }];
      } catch (e) {
        this.problem(joinRel(rel, Buffer.from(IGNORE_FILE)), syscallCode(e) ?? 'EIO', `cannot read ignore file: ${(e as Error).message}`);
      }
    }
    // lstat everything. Synchronously: an lstat of a cached inode takes a few microseconds, far
    // less than a round trip through libuv's thread pool (measured: 100k entries 0.2 s against
    // 0.5 s); the event loop is held for one directory at a time, and yields between directories.
    const stats: (BigIntStats | undefined)[] = new Array(names.length);
    for (let i = 0; i < names.length; i++) {
      const n = names[i]!;
      try {
        stats[i] = lstatSync(Buffer.concat([abs, SLASH, n]), { bigint: true });
      } catch (e) {
        this.problem(joinRel(rel, n), syscallCode(e) ?? 'EIO', `cannot stat: ${(e as Error).message}`);
      }
    }
    const entries: TreeEntry[] = [];
    const dirs: { name: Buffer; st: BigIntStats; index: number }[] = [];
    const payloadBase = this.nextPayloadOffset();
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
      const childAbs = Buffer.concat([abs, Buffer.from('/'), name]);
      if (kind === 'dir') {
        dirs.push({ name, st, index: entries.length });
        entries.push(this.entryBase(name, 'dir', st)); // completed below
        continue;
      }
      const entry = await this.leaf(childAbs, childRel, name, kind, st, payloadBase, prevItems.get(name.toString('binary')));
      if (entry !== undefined) entries.push(entry);
    }
    for (const d of dirs) {
      const childAbs = Buffer.concat([abs, Buffer.from('/'), d.name]);
      const childRel = joinRel(rel, d.name);
      const xattrs = this.xattrs(childAbs, childRel);
      let child: { metaOffset: number; payloadBase: number };
      if (this.options.oneFileSystem === true && d.st.dev !== this.rootDev) {
        // A mount point: kept, its contents are not.
        child = await this.emptyDir();
      } else {
        const p = prevItems.get(d.name.toString('binary'));
        child = await this.walkDir(childAbs, childRel, scopes, p?.entry.kind === 'dir' ? p : undefined);
      }
      entries[d.index] = { ...entries[d.index]!, child, ...(xattrs === undefined ? {} : { xattrs }) };
      this.stats.entries++;
      this.stats.dirs++;
    }
    const metaOffset = this.meta.offset;
    await this.meta.write(encodeDirRecord(entries));
    return { metaOffset, payloadBase };
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
    abs: Buffer,
    rel: Buffer,
    name: Buffer,
    kind: TreeEntryKind,
    st: BigIntStats,
    payloadBase: number,
    prev: TreeItem | undefined,
  ): Promise<TreeEntry | undefined> {
    const base = this.entryBase(name, kind, st);
    let entry: TreeEntry;
    if (kind === 'file') {
      const key = `${st.dev}:${st.ino}`;
      const first = st.nlink > 1n ? this.links.get(key) : undefined;
      if (first !== undefined) {
        entry = { ...base, kind: 'hardlink', target: first };
        this.stats.hardlinks++;
      } else if (prev !== undefined && prev.entry.size === 0 && unchanged(prev.entry, base, st)) {
        // Unchanged and empty: nothing to read or reuse (and the pending run goes on).
        if (st.nlink > 1n) this.links.set(key, rel);
        entry = { ...base, size: 0, payloadOffset: this.nextPayloadOffset() - payloadBase };
        this.stats.files++;
        this.stats.filesReused++;
      } else if (prev !== undefined && unchanged(prev.entry, base, st)) {
        // Metadata mode: same type, size, mtime, mode and owner -> the file is not opened.
        const offset = await this.reuse(prev.payloadStart, prev.entry.size);
        if (st.nlink > 1n) this.links.set(key, rel);
        entry = { ...base, size: prev.entry.size, payloadOffset: offset - payloadBase };
        this.stats.files++;
        this.stats.filesReused++;
        this.stats.bytes += prev.entry.size;
        this.stats.bytesReused += prev.entry.size;
      } else {
        await this.flushRun();
        const read = st.size <= BigInt(SMALL_FILE) ? await this.takeSmall(rel, st, readSmallSync(abs, st)) : await this.readFile(abs, rel, st);
        if (read === undefined) return undefined;
        if (st.nlink > 1n) this.links.set(key, rel);
        entry = { ...base, size: read.size, payloadOffset: read.offset - payloadBase };
        this.stats.files++;
        this.stats.bytes += read.size;
      }
    } else if (kind === 'symlink') {
      try {
        entry = { ...base, target: await fsp.readlink(abs, { encoding: 'buffer' }) };
      } catch (e) {
        this.problem(rel, syscallCode(e) ?? 'EIO', `cannot read symlink: ${(e as Error).message}`);
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
    const xattrs = this.xattrs(abs, rel);
    this.stats.entries++;
    this.options.onProgress?.({ archive: this.archive, entries: this.stats.entries, bytes: this.stats.bytes });
    return xattrs === undefined ? entry : { ...entry, xattrs };
  }

  /** Reads a file into the payload stream; undefined (and a problem) when it cannot be read. */
  /** Writes a small file read whole into the payload stream (or reports why it could not be read). */
  private async takeSmall(rel: Buffer, st: BigIntStats, r: SmallRead): Promise<{ offset: number; size: number } | undefined> {
    if (r.openError !== undefined) {
      this.problem(rel, syscallCode(r.openError) ?? 'EIO', `cannot open: ${(r.openError as Error).message}`);
      return undefined;
    }
    this.stats.filesRead++;
    const offset = this.payload.offset;
    await this.payload.write(r.data);
    const size = r.data.byteLength;
    if (r.readError !== undefined) {
      this.problem(rel, syscallCode(r.readError) ?? 'EIO', `read failed after ${size} bytes: ${(r.readError as Error).message}; the bytes read are kept`);
    } else if (r.after !== undefined && (r.after.mtimeNs !== st.mtimeNs || r.after.size !== BigInt(size))) {
      this.problem(rel, 'CHANGED', `changed while being read (${st.size} bytes before, ${size} read, ${r.after.size} after); the bytes read are kept`);
    }
    await this.payload.preferCut();
    return { offset, size };
  }

  private async readFile(abs: Buffer, rel: Buffer, st: BigIntStats): Promise<{ offset: number; size: number } | undefined> {
    let fh: fsp.FileHandle;
    try {
      fh = await fsp.open(abs, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NOATIME);
    } catch (e) {
      try {
        // O_NOATIME is refused for files we do not own (EPERM): retry without it.
        if (syscallCode(e) !== 'EPERM') throw e;
        fh = await fsp.open(abs, fsc.O_RDONLY | fsc.O_NOFOLLOW);
      } catch (e2) {
        this.problem(rel, syscallCode(e2) ?? 'EIO', `cannot open: ${(e2 as Error).message}`);
        return undefined;
      }
    }
    const offset = this.payload.offset;
    let size = 0;
    try {
      this.stats.filesRead++;
      for (;;) {
        const { bytesRead } = await fh.read(this.buf, 0, READ_SIZE, size);
        if (bytesRead === 0) break;
        await this.payload.write(this.buf.subarray(0, bytesRead));
        size += bytesRead;
        // A short read of a regular file is its end (saves a read per small file); growth after
        // the stat is caught by the check below.
        if (bytesRead < READ_SIZE && BigInt(size) >= st.size) break;
      }
      const after = await fh.stat({ bigint: true });
      if (after.mtimeNs !== st.mtimeNs || after.size !== BigInt(size)) {
        this.problem(rel, 'CHANGED', `changed while being read (${st.size} bytes before, ${size} read, ${after.size} after); the bytes read are kept`);
      }
    } catch (e) {
      this.problem(rel, syscallCode(e) ?? 'EIO', `read failed after ${size} bytes: ${(e as Error).message}; the bytes read are kept`);
    } finally {
      await fh.close();
    }
    await this.payload.preferCut();
    return { offset, size };
  }
}

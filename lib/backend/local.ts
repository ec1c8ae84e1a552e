/**
 * The local filesystem backend (layer L2), the default and the reference implementation of
 * {@link Backend}.
 *
 * Atomic puts write a temp file next to the target (`.<name>.tmp-<pid>-<n>`, see
 * util/temp-name.ts), fsync it when asked, rename it over the target and fsync the directory. Temp
 * files of a crashed process are left for the garbage collector, which removes the stale ones it
 * recognises with {@link isTempFileName}. Files are created 0640 and directories 0750: a datastore
 * is not world-readable.
 *
 * Nothing is followed through a symlink planted in the datastore: keys are read with `O_NOFOLLOW`
 * (and `O_NONBLOCK`, so a FIFO cannot block) and only when `fstat` says regular file, at most
 * `maxBytes`; `stat` is an `lstat`; a directory listed or removed must be a real directory; and
 * before any access the directories on the way to the key are checked (their real path must be the
 * one the key names), so a symlinked group, snapshot or namespace directory fails with
 * `ERR_UNSAFE_PATH` instead of leading outside. Those checks are path based (lstat/realpath, then the
 * call): a swap between the check and the call by someone who can write inside the datastore is not
 * excluded for reads, writes and single-file calls. The chunk shard directories are checked once per
 * backend (they are created with the datastore and never change), so chunk reads and writes cost no
 * extra call.
 *
 * Removals of directories ({@link LocalBackend.removeTree}, {@link LocalBackend.removeFileDir}) work
 * through directory descriptors instead, so no such swap can redirect them: the root is opened once,
 * then each component of the key `O_DIRECTORY|O_NOFOLLOW` relative to its parent's descriptor; inside,
 * entries are listed and `fstatat(AT_SYMLINK_NOFOLLOW)`ed relative to their directory's descriptor,
 * subdirectories are entered only by `openat(O_DIRECTORY|O_NOFOLLOW)` (and must be the inode that was
 * checked), and everything is removed with `unlinkat` relative to its parent's descriptor. A
 * directory swapped for a symlink after the check makes a call fail with `ERR_UNSAFE_PATH`; nothing
 * outside the datastore is touched.
 */
import { closeSync, promises as fsp, constants as fsc, type Stats } from 'node:fs';
import path from 'node:path';
import { CairnError, ioError, syscallCode, throwIfAborted, type ErrorCode, type ErrorDetails } from '../errors.js';
import {
  AT_FDCWD,
  AT_REMOVEDIR,
  AT_SYMLINK_NOFOLLOW,
  nativeFstat,
  nativeFstatat,
  nativeOpenat,
  nativeReaddir,
  nativeSyncfs,
  nativeUnlinkat,
  type NativeStat,
} from '../codec/native.js';
import { tempFileName, isTempFileName } from '../util/temp-name.js';
import {
  assertKey,
  type BackendCapabilities,
  type BackendStat,
  type ByteRange,
  type GetOptions,
  type ListEntry,
  type ListOptions,
  type LocalFilesBackend,
  type PutOptions,
  type RenamingBackend,
} from './backend.js';

export { tempFileName, isTempFileName };

/** Mode of files a datastore creates. */
export const FILE_MODE = 0o640;
/** Mode of directories a datastore creates. */
export const DIR_MODE = 0o750;

/**
 * Marker in the names of temp files. A name containing it is not necessarily a temp file
 * (`disk.tmp-1.img` is a legal archive): recognise temp files with {@link isTempFileName}.
 */
export const TMP_MARKER = '.tmp-';

/** Flags every datastore file is opened for reading with: no symlink, no blocking on a FIFO. */
export const READ_FLAGS = fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK;

/** Flags a datastore directory is opened with for a removal: never through a symlink. */
const DIR_FLAGS = fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW;

/**
 * **Test only**: called by {@link LocalBackend.removeTree} and {@link LocalBackend.removeFileDir}
 * once everything they will remove has been checked and before the first removal (`key` is the
 * prefix being removed), so a test can swap a directory in that window. Not part of the supported API.
 * @internal
 */
export const removalHooks: {
  afterCheck?: (key: string) => Promise<void> | void;
} = {};

/** What a file-system entry is, from an lstat. */
export function entryType(st: Stats): BackendStat['type'] {
  return st.isFile() ? 'file' : st.isDirectory() ? 'directory' : st.isSymbolicLink() ? 'symlink' : 'other';
}

/** The `ERR_UNSAFE_PATH` error for a datastore path that is not what the layout says. */
export function unsafeEntry(p: string, what: string, details: ErrorDetails = {}): CairnError {
  return new CairnError('ERR_UNSAFE_PATH', `${p} is ${what}, not what the datastore layout puts there (planted?); Cairn does not follow or remove it: remove it by hand`, {
    ...details,
    path: p,
  });
}

/** Options of {@link readRegularFile}. */
export interface ReadRegularOptions {
  /** Fail (before reading) when the file is larger. */
  readonly maxBytes?: number;
  /** Code of the error for a symlink, a non-regular file or an oversized one. @defaultValue 'ERR_IO' */
  readonly code?: ErrorCode;
  /** Ids for the errors. */
  readonly details?: ErrorDetails;
  /** Read only this range. */
  readonly range?: ByteRange;
}

/**
 * Reads a datastore file: opened `O_NOFOLLOW|O_NONBLOCK`, required to be a regular file by
 * `fstat`, and read up to its size (at most `maxBytes`), so a symlink to `/dev/zero`, a FIFO, a
 * directory or a huge sparse file fails at once with `options.code` instead of reading without end.
 * @throws `ERR_NOT_FOUND` when missing; `options.code`; `ERR_IO` for other failures.
 */
export async function readRegularFile(p: string, options: ReadRegularOptions = {}): Promise<Uint8Array> {
  const code = options.code ?? 'ERR_IO';
  const details = { ...options.details, path: p };
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(p, READ_FLAGS);
  } catch (e) {
    const c = syscallCode(e);
    if (c === 'ENOENT') throw new CairnError('ERR_NOT_FOUND', `${p} does not exist`, details, e);
    if (c === 'ELOOP') throw new CairnError(code, `${p} is a symlink, not a regular file`, details, e);
    throw ioError(e, `cannot read ${p}`, details);
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new CairnError(code, `${p} is ${st.isDirectory() ? 'a directory' : 'not a regular file (a FIFO, device or socket)'}`, details);
    const max = options.maxBytes ?? Number.MAX_SAFE_INTEGER;
    const range = options.range;
    const want = range === undefined ? st.size : Math.max(0, Math.min(range.length, st.size - range.offset));
    if (range === undefined && st.size > max) throw new CairnError(code, `${p} is ${st.size} bytes, more than the ${max} its format allows`, details);
    if (range !== undefined && range.length > max) throw new CairnError(code, `a read of ${range.length} bytes from ${p} is more than the ${max} its format allows`, details);
    const buf = Buffer.allocUnsafeSlow(want);
    const start = range?.offset ?? 0;
    let done = 0;
    while (done < want) {
      const { bytesRead } = await fh.read(buf, done, want - done, start + done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    return done === want ? buf : buf.subarray(0, done);
  } catch (e) {
    if (e instanceof CairnError) throw e;
    throw ioError(e, `cannot read ${p}`, details);
  } finally {
    await fh.close().catch(() => undefined);
  }
}

/**
 * A {@link Backend} over a directory: every key is a file below it. The reference backend, and the
 * only one with the `localFiles` and `rename` capabilities.
 * @category Backends
 */
export class LocalBackend implements LocalFilesBackend, RenamingBackend {
  /** The root directory. */
  readonly location: string;
  /** Atomic puts, touch, local files and renames. */
  readonly capabilities: BackendCapabilities = { atomicPut: true, touch: true, localFiles: true, rename: true };
  private realRoot: string | undefined;
  /** Shard directories already found to be real directories (checked once). */
  private readonly checkedShards = new Set<string>();

  /** @param root - the directory holding the keys (it need not exist yet). */
  constructor(root: string) {
    this.location = path.resolve(root);
  }

  /** The filesystem path of a key. Keys are built by Cairn; a key that climbs out is a bug. */
  pathOf(key: string): string {
    if (key.split('/').some((c) => c === '..' || c === '.')) throw new TypeError(`unsafe backend key '${key}'`);
    return key === '' ? this.location : path.join(this.location, key);
  }

  /** The file path of a key ({@link LocalBackend.pathOf}). */
  locate(key: string): string {
    return this.pathOf(key);
  }

  /** Nothing to release: every call opens and closes what it uses. */
  async close(): Promise<void> {}

  /**
   * Checks that no directory on the way from the root to `key` (the root itself excepted, which may
   * be a symlink) is a symlink: the real path of the deepest existing one must be the one the key
   * names. @throws `ERR_UNSAFE_PATH` naming the symlink.
   */
  async checkPath(key: string): Promise<void> {
    const p = this.pathOf(key);
    const parts = key.split('/').filter((c) => c !== '');
    parts.pop();
    if (parts.length === 0) return;
    const shard = parts.length === 2 && parts[0] === '.chunks' ? parts.join('/') : undefined;
    if (shard !== undefined && this.checkedShards.has(shard)) return;
    try {
      this.realRoot ??= await fsp.realpath(this.location);
    } catch (e) {
      if (syscallCode(e) === 'ENOENT') return; // nothing exists yet
      throw ioError(e, `cannot resolve ${this.location}`, { path: this.location });
    }
    for (let n = parts.length; n > 0; n--) {
      const dir = parts.slice(0, n).join('/');
      let real: string;
      try {
        real = await fsp.realpath(this.pathOf(dir));
      } catch (e) {
        const c = syscallCode(e);
        if (c === 'ENOENT') continue; // look at the parent
        if (c === 'ENOTDIR' || c === 'ELOOP') break; // a file or a loop on the way: find it below
        throw ioError(e, `cannot resolve the directories of ${p}`, { path: p });
      }
      if (real === path.join(this.realRoot, dir)) {
        if (shard !== undefined && n === parts.length) this.checkedShards.add(shard);
        return;
      }
      break;
    }
    // Something on the way is not a real directory: name it.
    for (let n = 1; n <= parts.length; n++) {
      const q = this.pathOf(parts.slice(0, n).join('/'));
      const st = await fsp.lstat(q).catch(() => undefined);
      if (st === undefined) return;
      if (!st.isDirectory()) throw unsafeEntry(q, st.isSymbolicLink() ? 'a symlink' : 'not a directory', { key });
    }
  }

  async put(key: string, data: Uint8Array | readonly Uint8Array[], options: PutOptions = {}): Promise<void> {
    assertKey(key);
    const target = this.pathOf(key);
    await this.checkPath(key);
    const dir = path.dirname(target);
    const tmp = path.join(dir, tempFileName(path.basename(target)));
    const bufs = data instanceof Uint8Array ? [data] : data;
    let fh: fsp.FileHandle | undefined;
    try {
      try {
        fh = await fsp.open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, FILE_MODE);
      } catch (e) {
        if (syscallCode(e) !== 'ENOENT') throw e;
        await this.mkdirChecked(path.dirname(key) === '.' ? '' : path.dirname(key));
        fh = await fsp.open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, FILE_MODE);
      }
      await writeAll(fh, bufs);
      if (options.sync === true) await fh.sync();
      await fh.close();
      fh = undefined;
      await fsp.rename(tmp, target);
      if (options.sync === true) await fsyncDir(dir);
    } catch (e) {
      if (fh !== undefined) await fh.close().catch(() => undefined);
      await fsp.unlink(tmp).catch(() => undefined);
      if (e instanceof CairnError) throw e;
      throw ioError(e, `cannot write ${target}`, { path: target });
    }
  }

  async get(key: string, range?: ByteRange, options: GetOptions = {}): Promise<Uint8Array> {
    assertKey(key);
    const p = this.pathOf(key);
    await this.checkPath(key);
    return readRegularFile(p, { ...options, ...(range === undefined ? {} : { range }) });
  }

  async stat(key: string): Promise<BackendStat | undefined> {
    assertKey(key);
    const p = this.pathOf(key);
    await this.checkPath(key);
    try {
      const st = await fsp.lstat(p);
      return { size: st.size, mtimeMs: st.mtimeMs, isDirectory: st.isDirectory(), type: entryType(st) };
    } catch (e) {
      if (syscallCode(e) === 'ENOENT' || syscallCode(e) === 'ENOTDIR') return undefined;
      throw callError(e, 'stat', p);
    }
  }

  async touch(key: string, timeMs: number): Promise<boolean> {
    assertKey(key);
    const p = this.pathOf(key);
    await this.checkPath(key);
    const t = timeMs / 1000;
    try {
      // lutimes: a symlink planted as a chunk is never followed (its own time changes, harmlessly).
      await fsp.lutimes(p, t, t);
      return true;
    } catch (e) {
      if (syscallCode(e) === 'ENOENT') return false;
      throw ioError(e, `cannot touch ${p}`, { path: p });
    }
  }

  /**
   * Every file below a directory prefix, recursively (temp files of atomic puts left out). Nothing
   * is followed: the prefix must be a real directory, subdirectories are entered only when `lstat`
   * says directory, and a symlink, FIFO, device or socket below fails with `ERR_UNSAFE_PATH` naming
   * it (something was planted in the datastore).
   */
  async *list(prefix: string, options: ListOptions = {}): AsyncGenerator<ListEntry> {
    assertKey(prefix, true);
    const names = await this.listNames(prefix);
    const base = prefix === '' ? '' : `${prefix}/`;
    for (const name of names) {
      throwIfAborted(options.signal);
      if (isTempFileName(name)) continue;
      const key = `${base}${name}`;
      const p = this.pathOf(key);
      let st: Stats;
      try {
        st = await fsp.lstat(p);
      } catch (e) {
        if (syscallCode(e) === 'ENOENT') continue; // removed since the listing
        throw callError(e, 'stat', p);
      }
      if (st.isDirectory()) yield* this.list(key, options);
      else if (st.isFile()) yield { key, size: st.size, mtimeMs: st.mtimeMs };
      else throw unsafeEntry(p, st.isSymbolicLink() ? 'a symlink' : 'not a regular file (a FIFO, device or socket)');
    }
  }

  /**
   * Names directly below a directory prefix, sorted; empty when it does not exist.
   * @throws `ERR_UNSAFE_PATH` when the prefix is a symlink or not a directory.
   */
  async listNames(prefix: string): Promise<string[]> {
    const p = this.pathOf(prefix);
    await this.checkPath(prefix);
    try {
      const st = await fsp.lstat(p);
      if (!st.isDirectory()) throw unsafeEntry(p, st.isSymbolicLink() ? 'a symlink' : 'not a directory');
      return (await fsp.readdir(p)).sort();
    } catch (e) {
      if (e instanceof CairnError) throw e;
      if (syscallCode(e) === 'ENOENT' || syscallCode(e) === 'ENOTDIR') return [];
      throw callError(e, 'list', p);
    }
  }

  async delete(key: string): Promise<boolean> {
    assertKey(key);
    const p = this.pathOf(key);
    await this.checkPath(key);
    try {
      await fsp.unlink(p);
      return true;
    } catch (e) {
      if (syscallCode(e) === 'ENOENT') return false;
      throw ioError(e, `cannot delete ${p}`, { path: p });
    }
  }

  /**
   * Removes a prefix and everything below it, through directory descriptors (see the module doc):
   * the whole tree is looked at first (`fstatat`, no symlink followed), and an entry that is not a
   * regular file or a real directory fails the call with `ERR_UNSAFE_PATH` naming it before anything
   * is removed; then the tree is removed bottom-up with `unlinkat` relative to each parent. A
   * directory swapped meanwhile (for a symlink, a file or another directory) fails the call with
   * `ERR_UNSAFE_PATH`; what appeared meanwhile stays (its directory is then left).
   * @returns false when the prefix did not exist
   */
  async removeTree(prefix: string): Promise<boolean> {
    const top = this.openDirChain(prefix);
    if (top === undefined) return false;
    try {
      const plan = scanTree(top.fd, top.name, top.path, nativeFstat(top.fd));
      await removalHooks.afterCheck?.(prefix);
      const fd = top.fd;
      top.fd = -1; // removePlanned closes it
      removePlanned(top.parent, plan, fd);
    } finally {
      top.close();
    }
    return true;
  }

  /**
   * Removes a directory that holds only regular files (a snapshot directory), through directory
   * descriptors (see the module doc). Every entry is looked at first: one that is not a regular file
   * (a symlink, a directory, a FIFO, ...) fails the call with `ERR_UNSAFE_PATH` naming it before
   * anything is removed. Then `first` goes (when it is there), then the other files, then regular
   * files that appeared meanwhile (a writer's temp files), then the directory itself unless
   * something else appeared in it. A directory swapped meanwhile fails the call with
   * `ERR_UNSAFE_PATH`.
   * @returns false when the directory did not exist or was left because something appeared in it
   */
  async removeFileDir(prefix: string, first?: string): Promise<boolean> {
    const top = this.openDirChain(prefix);
    if (top === undefined) return false;
    try {
      const files = listFiles(top.fd, top.path, true);
      await removalHooks.afterCheck?.(prefix);
      const head = first === undefined ? undefined : Buffer.from(first);
      const order = head === undefined ? files : [...files.filter((f) => f.equals(head)), ...files.filter((f) => !f.equals(head))];
      for (const f of order) unlinkFile(top.fd, f, top.path);
      // Regular files that appeared since the listing (a concurrent writer's temp files).
      for (const f of listFiles(top.fd, top.path, false)) unlinkFile(top.fd, f, top.path);
      const fd = top.fd;
      top.fd = -1;
      closeSync(fd);
      return removeDirAt(top.parent, top.name, top.path);
    } finally {
      top.close();
    }
  }

  /**
   * Opens the directory `prefix` and its parent through descriptors: the root once (following a
   * symlink there: the root may be one), then each component `O_DIRECTORY|O_NOFOLLOW` relative to
   * its parent's descriptor. Only the last two descriptors stay open.
   * @returns undefined when something on the way does not exist
   * @throws `ERR_UNSAFE_PATH` naming a component that is a symlink or not a directory
   */
  private openDirChain(prefix: string): { parent: number; fd: number; name: Buffer; path: string; close: () => void } | undefined {
    this.pathOf(prefix); // rejects keys that climb out
    const parts = prefix.split('/').filter((c) => c !== '');
    let parent = -1;
    let fd = -1;
    const out = {
      parent: -1,
      fd: -1,
      name: Buffer.alloc(0),
      path: this.location,
      close(): void {
        for (const d of [out.fd, out.parent]) if (d >= 0) closeSync(d);
        out.fd = -1;
        out.parent = -1;
      },
    };
    // An empty prefix is the root itself: its parent is opened by path, and the root must then be a real directory.
    const first = parts.length === 0 ? path.dirname(this.location) : this.location;
    const names = parts.length === 0 ? [path.basename(this.location)] : parts;
    try {
      try {
        fd = nativeOpenat(AT_FDCWD, first, fsc.O_RDONLY | fsc.O_DIRECTORY);
      } catch (e) {
        if (errnoOf(e) === 'ENOENT') return undefined;
        throw callError(e, 'open', first);
      }
      for (let i = 0; i < names.length; i++) {
        const name = Buffer.from(names[i]!);
        const p = parts.length === 0 ? this.location : this.pathOf(parts.slice(0, i + 1).join('/'));
        const child = openDirAt(fd, name, p);
        if (child === undefined) return undefined;
        if (parent >= 0) closeSync(parent);
        parent = fd;
        fd = child;
        out.name = name;
        out.path = p;
      }
      out.parent = parent;
      out.fd = fd;
      parent = fd = -1;
      return out;
    } finally {
      for (const d of [fd, parent]) if (d >= 0) closeSync(d);
    }
  }

  /**
   * Renames a file or directory (replacing a file, or an empty directory, at `to`). With `sync`,
   * both parent directories are fsync'd afterwards, so the rename survives a power loss.
   */
  async rename(from: string, to: string, options: { sync?: boolean } = {}): Promise<void> {
    const a = this.pathOf(from);
    const b = this.pathOf(to);
    await this.checkPath(from);
    await this.checkPath(to);
    try {
      await fsp.rename(a, b);
      if (options.sync === true) {
        await fsyncDir(path.dirname(b));
        if (path.dirname(a) !== path.dirname(b)) await fsyncDir(path.dirname(a));
      }
    } catch (e) {
      // ENOENT means a missing source, or a missing directory of the target.
      if (syscallCode(e) === 'ENOENT' && (await this.stat(from)) === undefined) {
        throw new CairnError('ERR_NOT_FOUND', `${a} does not exist`, { path: a }, e);
      }
      throw ioError(e, `cannot rename ${a} to ${b}`, { path: b });
    }
  }

  /** @throws `ERR_UNSAFE_PATH` when the prefix (or a directory on the way) is a symlink. */
  async mkdir(prefix: string): Promise<void> {
    await this.checkPath(prefix);
    await this.mkdirChecked(prefix);
  }

  private async mkdirChecked(prefix: string): Promise<void> {
    const p = this.pathOf(prefix);
    let st: Stats;
    try {
      await fsp.mkdir(p, { recursive: true, mode: DIR_MODE });
      st = await fsp.lstat(p);
    } catch (e) {
      throw ioError(e, `cannot create directory ${p}`, { path: p });
    }
    // mkdir -p succeeds on a symlink to a directory: that is not ours.
    if (!st.isDirectory()) throw unsafeEntry(p, 'a symlink');
  }

  async rmdir(prefix: string): Promise<boolean> {
    const p = this.pathOf(prefix);
    await this.checkPath(prefix);
    try {
      await fsp.rmdir(p);
      return true;
    } catch (e) {
      const c = syscallCode(e);
      if (c === 'ENOENT' || c === 'ENOTEMPTY' || c === 'EEXIST') return false;
      if (c === 'ENOTDIR') throw unsafeEntry(p, 'not a directory (a symlink or a file)');
      throw ioError(e, `cannot remove directory ${p}`, { path: p });
    }
  }

  /** One syncfs of the filesystem holding the datastore. */
  async syncAll(): Promise<void> {
    let fh: fsp.FileHandle | undefined;
    try {
      fh = await fsp.open(this.location, 'r');
      nativeSyncfs(fh.fd);
    } catch (e) {
      throw ioError(e, `cannot sync ${this.location}`, { path: this.location });
    } finally {
      await fh?.close();
    }
  }
}

/** The errno name of a `node:fs` error or of a native `ERR_IO`. */
function errnoOf(e: unknown): string | undefined {
  return syscallCode(e) ?? syscallCode({ code: (e as { details?: { syscallCode?: unknown } } | null)?.details?.syscallCode });
}

/** A failed call of a removal: `ERR_IO` naming the whole path (a native error names only the entry) and the OS code. */
function callError(e: unknown, what: string, p: string): CairnError {
  if (e instanceof CairnError && e.code !== 'ERR_IO') return e;
  const code = errnoOf(e);
  const msg = e instanceof Error ? e.message : String(e);
  return new CairnError('ERR_IO', `cannot ${what} ${p}: ${msg}`, { path: p, ...(code === undefined ? {} : { syscallCode: code }) }, e);
}

/** What a directory is that changed between the check and the removal. */
const SWAPPED = 'no longer a directory (a symlink or a file took its place after the check)';
const REPLACED = 'another directory than the one checked (swapped after the check)';

/** What an entry is, in the words of {@link unsafeEntry}. */
function kindWords(st: NativeStat): string {
  return st.kind === 'symlink' ? 'a symlink' : st.kind === 'dir' ? 'a directory' : st.kind === 'file' ? 'a regular file' : 'not a regular file (a FIFO, device or socket)';
}

/**
 * Opens `name` below `dirfd` as a directory, never through a symlink.
 * @returns the descriptor; undefined when it does not exist
 * @throws `ERR_UNSAFE_PATH` when it is a symlink or not a directory
 */
function openDirAt(dirfd: number, name: Buffer, p: string): number | undefined {
  try {
    return nativeOpenat(dirfd, name, DIR_FLAGS);
  } catch (e) {
    const code = errnoOf(e);
    if (code === 'ENOENT') return undefined;
    if (code === 'ELOOP' || code === 'ENOTDIR') {
      let st: NativeStat | undefined;
      try {
        st = nativeFstatat(dirfd, name, AT_SYMLINK_NOFOLLOW);
      } catch {
        st = undefined;
      }
      throw unsafeEntry(p, st === undefined ? SWAPPED : st.kind === 'symlink' ? 'a symlink' : 'not a directory');
    }
    throw callError(e, 'open', p);
  }
}

/** `fstatat(AT_SYMLINK_NOFOLLOW)` of an entry; undefined when it vanished. */
function statAt(dirfd: number, name: Buffer, p: string): NativeStat | undefined {
  try {
    return nativeFstatat(dirfd, name, AT_SYMLINK_NOFOLLOW);
  } catch (e) {
    if (errnoOf(e) === 'ENOENT') return undefined;
    throw callError(e, 'stat', p);
  }
}

/** The names in the open directory `dirfd` (at `p`). */
function list(dirfd: number, p: string): Buffer[] {
  try {
    return nativeReaddir(dirfd).map((d) => d.name);
  } catch (e) {
    throw callError(e, 'list', p);
  }
}

/**
 * The regular files directly in `dirfd`. With `strict`, any other entry fails with
 * `ERR_UNSAFE_PATH` naming it; without, other entries are passed over.
 */
function listFiles(dirfd: number, p: string, strict: boolean): Buffer[] {
  const files: Buffer[] = [];
  for (const name of list(dirfd, p)) {
    const child = path.join(p, name.toString());
    const st = statAt(dirfd, name, child);
    if (st === undefined) continue;
    if (st.kind === 'file') files.push(name);
    else if (strict) throw unsafeEntry(child, kindWords(st));
  }
  return files;
}

/** A directory {@link scanTree} looked at: what {@link removePlanned} removes. */
interface PlannedDir {
  readonly name: Buffer;
  readonly path: string;
  readonly dev: number;
  readonly ino: number;
  readonly files: Buffer[];
  readonly dirs: PlannedDir[];
}

/**
 * Looks at the tree below the open directory `fd` (named `name`, at `p`): every entry must be a
 * regular file or a real directory (entered by `openat(O_DIRECTORY|O_NOFOLLOW)`, one descriptor per
 * level, closed on the way back). @throws `ERR_UNSAFE_PATH` naming the first one that is not.
 */
function scanTree(fd: number, name: Buffer, p: string, st: NativeStat): PlannedDir {
  const plan: PlannedDir = { name, path: p, dev: st.dev, ino: st.ino, files: [], dirs: [] };
  for (const n of list(fd, p)) {
    const child = path.join(p, n.toString());
    const cst = statAt(fd, n, child);
    if (cst === undefined) continue;
    if (cst.kind === 'file') {
      plan.files.push(n);
    } else if (cst.kind === 'dir') {
      const cfd = openDirAt(fd, n, child);
      if (cfd === undefined) continue;
      try {
        plan.dirs.push(scanTree(cfd, n, child, nativeFstat(cfd)));
      } finally {
        closeSync(cfd);
      }
    } else {
      throw unsafeEntry(child, kindWords(cst));
    }
  }
  return plan;
}

/**
 * Removes what {@link scanTree} found, bottom-up: each subdirectory is opened again relative to its
 * parent's descriptor (`O_NOFOLLOW`, and it must be the inode that was looked at), its files are
 * unlinked relative to it, then it is removed relative to its parent. `fd` is the open descriptor
 * of `plan` itself when the caller has it (it is closed here); else it is opened below `parentFd`.
 */
function removePlanned(parentFd: number, plan: PlannedDir, fd?: number): void {
  if (fd === undefined) {
    const opened = openDirAt(parentFd, plan.name, plan.path);
    if (opened === undefined) return; // removed meanwhile
    fd = opened;
    let st: NativeStat;
    try {
      st = nativeFstat(fd);
    } catch (e) {
      closeSync(fd);
      throw callError(e, 'stat', plan.path);
    }
    if (st.dev !== plan.dev || st.ino !== plan.ino) {
      closeSync(fd);
      throw unsafeEntry(plan.path, REPLACED);
    }
  }
  try {
    for (const d of plan.dirs) removePlanned(fd, d);
    for (const f of plan.files) unlinkFile(fd, f, plan.path);
  } finally {
    closeSync(fd);
  }
  removeDirAt(parentFd, plan.name, plan.path);
}

/** Unlinks the file `name` below `dirfd` (missing: fine; a directory now: `ERR_UNSAFE_PATH`). */
function unlinkFile(dirfd: number, name: Buffer, dir: string): void {
  try {
    nativeUnlinkat(dirfd, name, 0);
  } catch (e) {
    const code = errnoOf(e);
    if (code === 'ENOENT') return;
    const p = path.join(dir, name.toString());
    if (code === 'EISDIR' || code === 'EPERM') {
      const st = statAt(dirfd, name, p);
      if (st !== undefined && st.kind === 'dir') throw unsafeEntry(p, 'a directory now (it was a regular file when checked)');
    }
    throw callError(e, 'remove', p);
  }
}

/**
 * Removes the (empty) directory `name` below `dirfd`.
 * @returns false when it is missing or something appeared in it
 * @throws `ERR_UNSAFE_PATH` when it is no longer a directory (a symlink took its place)
 */
function removeDirAt(dirfd: number, name: Buffer, p: string): boolean {
  try {
    nativeUnlinkat(dirfd, name, AT_REMOVEDIR);
    return true;
  } catch (e) {
    const code = errnoOf(e);
    if (code === 'ENOENT' || code === 'ENOTEMPTY' || code === 'EEXIST') return false;
    if (code === 'ENOTDIR') throw unsafeEntry(p, SWAPPED);
    throw callError(e, 'remove', p);
  }
}

async function writeAll(fh: fsp.FileHandle, bufs: readonly Uint8Array[]): Promise<void> {
  let pending = bufs.filter((b) => b.byteLength > 0);
  while (pending.length > 0) {
    const { bytesWritten } = await fh.writev(pending as Uint8Array[]);
    let n = bytesWritten;
    const rest: Uint8Array[] = [];
    for (const b of pending) {
      if (n >= b.byteLength) {
        n -= b.byteLength;
      } else {
        rest.push(n === 0 ? b : b.subarray(n));
        n = 0;
      }
    }
    pending = rest;
  }
}

/** fsyncs a directory, so a rename in it is durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await fsp.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

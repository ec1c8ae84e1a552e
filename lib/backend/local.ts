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
 * `ERR_UNSAFE_PATH` instead of leading outside. The checks are path based (lstat/realpath, then the
 * call): a swap between the check and the call by someone who can write inside the datastore is not
 * excluded. The chunk shard directories are checked once per backend (they are created with the
 * datastore and never change), so chunk reads and writes cost no extra call.
 */
import { promises as fsp, constants as fsc, type Stats } from 'node:fs';
import path from 'node:path';
import { CairnError, ioError, syscallCode, type ErrorCode, type ErrorDetails } from '../errors.js';
import { nativeSyncfs } from '../codec/native.js';
import { tempFileName, isTempFileName } from '../util/temp-name.js';
import type { Backend, BackendStat, ByteRange, GetOptions, PutOptions } from './backend.js';

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

/** What a file-system entry is, from an lstat. */
export function entryType(st: Stats): BackendStat['type'] {
  return st.isFile() ? 'file' : st.isDirectory() ? 'directory' : st.isSymbolicLink() ? 'symlink' : 'other';
}

/** The `ERR_UNSAFE_PATH` error for a datastore path that is not what the layout says. */
export function unsafeEntry(p: string, what: string, details: ErrorDetails = {}): CairnError {
  return new CairnError('ERR_UNSAFE_PATH', `${p} is ${what}, not what the datastore layout puts there (planted?); Cairn does not follow or remove it: remove it by hand`, { ...details, path: p });
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

/** A {@link Backend} over a directory. */
export class LocalBackend implements Backend {
  /** The root directory. */
  readonly location: string;
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

  /** Every key is a local file: {@link LocalBackend.pathOf}. */
  localPath(key: string): string {
    return this.pathOf(key);
  }

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
    const p = this.pathOf(key);
    await this.checkPath(key);
    return readRegularFile(p, { ...options, ...(range === undefined ? {} : { range }) });
  }

  async stat(key: string): Promise<BackendStat | undefined> {
    const p = this.pathOf(key);
    await this.checkPath(key);
    try {
      const st = await fsp.lstat(p);
      return { size: st.size, mtimeMs: st.mtimeMs, isDirectory: st.isDirectory(), type: entryType(st) };
    } catch (e) {
      if (syscallCode(e) === 'ENOENT' || syscallCode(e) === 'ENOTDIR') return undefined;
      throw ioError(e, `cannot stat ${p}`, { path: p });
    }
  }

  async touch(key: string, timeMs: number): Promise<boolean> {
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

  /** @throws `ERR_UNSAFE_PATH` when the prefix is a symlink or not a directory. */
  async list(prefix: string): Promise<string[]> {
    const p = this.pathOf(prefix);
    await this.checkPath(prefix);
    try {
      const st = await fsp.lstat(p);
      if (!st.isDirectory()) throw unsafeEntry(p, st.isSymbolicLink() ? 'a symlink' : 'not a directory');
      return (await fsp.readdir(p)).sort();
    } catch (e) {
      if (e instanceof CairnError) throw e;
      if (syscallCode(e) === 'ENOENT' || syscallCode(e) === 'ENOTDIR') return [];
      throw ioError(e, `cannot list ${p}`, { path: p });
    }
  }

  async delete(key: string): Promise<boolean> {
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

  async removeTree(prefix: string): Promise<boolean> {
    const root = this.pathOf(prefix);
    await this.checkPath(prefix);
    // First the whole tree is looked at (lstat, no symlink followed), then removed bottom-up: an
    // entry that is not a regular file or a real directory stops the removal before anything is lost.
    const dirs: { dir: string; files: string[] }[] = [];
    const scan = async (dir: string): Promise<boolean> => {
      let st: Stats;
      try {
        st = await fsp.lstat(dir);
      } catch (e) {
        if (syscallCode(e) === 'ENOENT') return false;
        throw ioError(e, `cannot stat ${dir}`, { path: dir });
      }
      if (!st.isDirectory()) throw unsafeEntry(dir, st.isSymbolicLink() ? 'a symlink' : 'not a directory');
      let entries;
      try {
        entries = await fsp.readdir(dir, { withFileTypes: true });
      } catch (e) {
        if (syscallCode(e) === 'ENOENT') return false;
        throw ioError(e, `cannot list ${dir}`, { path: dir });
      }
      const files: string[] = [];
      for (const ent of entries) {
        const child = path.join(dir, ent.name);
        if (ent.isDirectory()) await scan(child);
        else if (ent.isFile()) files.push(child);
        else throw unsafeEntry(child, ent.isSymbolicLink() ? 'a symlink' : 'not a regular file (a FIFO, device or socket)');
      }
      dirs.push({ dir, files });
      return true;
    };
    if (!(await scan(root))) return false;
    for (const { dir, files } of dirs) {
      try {
        // The directory must still be a real one before anything in it is unlinked by path.
        const st = await fsp.lstat(dir);
        if (!st.isDirectory()) throw unsafeEntry(dir, st.isSymbolicLink() ? 'a symlink' : 'not a directory');
        for (const f of files) await fsp.unlink(f).catch((e: unknown) => {
          if (syscallCode(e) !== 'ENOENT') throw e;
        });
        await fsp.rmdir(dir).catch((e: unknown) => {
          const c = syscallCode(e);
          if (c !== 'ENOENT' && c !== 'ENOTEMPTY' && c !== 'EEXIST') throw e;
        });
      } catch (e) {
        if (e instanceof CairnError) throw e;
        throw ioError(e, `cannot remove ${dir}`, { path: dir });
      }
    }
    return true;
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

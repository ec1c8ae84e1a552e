/**
 * The local filesystem backend (layer L2), the default and the reference implementation of
 * {@link Backend}.
 *
 * Atomic puts write a temp file next to the target (`.<name>.tmp-<pid>-<n>`), fsync it when asked,
 * rename it over the target and fsync the directory. Temp files of a crashed process are left for
 * the garbage collector, which removes stale `.tmp-` files. Files are created 0640 and directories
 * 0750: a datastore is not world-readable.
 */
import { promises as fsp, constants as fsc } from 'node:fs';
import path from 'node:path';
import { CairnError, ioError, syscallCode } from '../errors.js';
import { nativeSyncfs } from '../codec/native.js';
import type { Backend, BackendStat, ByteRange, PutOptions } from './backend.js';

/** Mode of files a datastore creates. */
export const FILE_MODE = 0o640;
/** Mode of directories a datastore creates. */
export const DIR_MODE = 0o750;

let tmpCounter = 0;

/** Marker in the names of temp files, so cleanup can find them. */
export const TMP_MARKER = '.tmp-';

/** A {@link Backend} over a directory. */
export class LocalBackend implements Backend {
  /** The root directory. */
  readonly location: string;

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

  async put(key: string, data: Uint8Array | readonly Uint8Array[], options: PutOptions = {}): Promise<void> {
    const target = this.pathOf(key);
    const dir = path.dirname(target);
    const tmp = path.join(dir, `.${path.basename(target)}${TMP_MARKER}${process.pid}-${++tmpCounter}`);
    const bufs = data instanceof Uint8Array ? [data] : data;
    let fh: fsp.FileHandle | undefined;
    try {
      try {
        fh = await fsp.open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, FILE_MODE);
      } catch (e) {
        if (syscallCode(e) !== 'ENOENT') throw e;
        await fsp.mkdir(dir, { recursive: true, mode: DIR_MODE });
        fh = await fsp.open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, FILE_MODE);
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
      throw ioError(e, `cannot write ${target}`, { path: target });
    }
  }

  async get(key: string, range?: ByteRange): Promise<Uint8Array> {
    const p = this.pathOf(key);
    try {
      if (range === undefined) return await fsp.readFile(p);
      const fh = await fsp.open(p, 'r');
      try {
        const buf = Buffer.allocUnsafeSlow(range.length);
        let done = 0;
        while (done < range.length) {
          const { bytesRead } = await fh.read(buf, done, range.length - done, range.offset + done);
          if (bytesRead === 0) break;
          done += bytesRead;
        }
        return done === range.length ? buf : buf.subarray(0, done);
      } finally {
        await fh.close();
      }
    } catch (e) {
      if (syscallCode(e) === 'ENOENT') throw new CairnError('ERR_NOT_FOUND', `${p} does not exist`, { path: p }, e);
      throw ioError(e, `cannot read ${p}`, { path: p });
    }
  }

  async stat(key: string): Promise<BackendStat | undefined> {
    const p = this.pathOf(key);
    try {
      const st = await fsp.stat(p);
      return { size: st.size, mtimeMs: st.mtimeMs, isDirectory: st.isDirectory() };
    } catch (e) {
      if (syscallCode(e) === 'ENOENT' || syscallCode(e) === 'ENOTDIR') return undefined;
      throw ioError(e, `cannot stat ${p}`, { path: p });
    }
  }

  async touch(key: string, timeMs: number): Promise<boolean> {
    const p = this.pathOf(key);
    const t = timeMs / 1000;
    try {
      await fsp.utimes(p, t, t);
      return true;
    } catch (e) {
      if (syscallCode(e) === 'ENOENT') return false;
      throw ioError(e, `cannot touch ${p}`, { path: p });
    }
  }

  async list(prefix: string): Promise<string[]> {
    const p = this.pathOf(prefix);
    try {
      return (await fsp.readdir(p)).sort();
    } catch (e) {
      if (syscallCode(e) === 'ENOENT' || syscallCode(e) === 'ENOTDIR') return [];
      throw ioError(e, `cannot list ${p}`, { path: p });
    }
  }

  async delete(key: string): Promise<boolean> {
    const p = this.pathOf(key);
    try {
      await fsp.unlink(p);
      return true;
    } catch (e) {
      if (syscallCode(e) === 'ENOENT') return false;
      throw ioError(e, `cannot delete ${p}`, { path: p });
    }
  }

  /**
   * Renames a file or directory (replacing a file, or an empty directory, at `to`). With `sync`,
   * both parent directories are fsync'd afterwards, so the rename survives a power loss.
   */
  async rename(from: string, to: string, options: { sync?: boolean } = {}): Promise<void> {
    const a = this.pathOf(from);
    const b = this.pathOf(to);
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

  async mkdir(prefix: string): Promise<void> {
    const p = this.pathOf(prefix);
    try {
      await fsp.mkdir(p, { recursive: true, mode: DIR_MODE });
    } catch (e) {
      throw ioError(e, `cannot create directory ${p}`, { path: p });
    }
  }

  async rmdir(prefix: string): Promise<boolean> {
    const p = this.pathOf(prefix);
    try {
      await fsp.rmdir(p);
      return true;
    } catch (e) {
      const c = syscallCode(e);
      if (c === 'ENOENT' || c === 'ENOTEMPTY' || c === 'EEXIST') return false;
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

/**
 * The target of a restore to a path (layer L4): images and blobs are written into a new temporary
 * file beside the target and renamed over it only once complete, so that a restore that fails,
 * is interrupted or is killed leaves the file it was to replace exactly as it was.
 *
 * - The temp file is `.cairn-restore-<random>-<name>` in the target's directory, created
 *   `O_EXCL|O_NOFOLLOW` with mode 0600; on success it gets its final mode (the replaced file's mode
 *   and, as root, its owner; for a new file 0640 less the umask), is fsynced when it replaces a file
 *   (or when asked), and is renamed into place. On failure or abort it is removed; after a SIGKILL it
 *   stays behind under that recognisable name, and the target is untouched.
 * - A new target is put in place without replacing anything that appeared meanwhile (a hard link,
 *   then the temp name is removed): a file created under the same name during the restore is not
 *   destroyed; the restore fails with `ERR_EXISTS` instead.
 * - A block or character device cannot be renamed over: it is written in place (and a failure leaves
 *   it partly written, as with `dd`). The opened descriptor is checked to still be a device.
 * - A target that is a symlink to a regular file replaces the file the link points at, in that
 *   file's directory (as `cp` writes through a link); the link stays. A dangling symlink is refused
 *   with `ERR_UNSAFE_PATH` (as GNU `cp` refuses to write through one): it would let whoever planted
 *   it choose where a new file is created.
 */
import { promises as fsp, constants as fsc, readFileSync, type Stats } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { CairnError, ioError, syscallCode, type ErrorDetails } from '../errors.js';

/**
 * The process umask, read from /proc (changing it to read it would race with other threads
 * creating files). When it cannot be read, 0o777: every file then gets an explicit chmod.
 */
export function currentUmask(): number {
  try {
    const m = /^Umask:\s*([0-7]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    return m === null ? 0o777 : parseInt(m[1]!, 8);
  } catch {
    return 0o777;
  }
}

/** The start of every temp file name a restore to a path creates. */
export const RESTORE_TEMP_PREFIX = '.cairn-restore-';

/** An open restore target: write through `fh`, then {@link RestoreTarget.commit} or {@link RestoreTarget.discard}. */
export interface RestoreTarget {
  /** The file to write (the temp file, or the device itself). */
  readonly fh: fsp.FileHandle;
  /** True when the target is a block or character device, written in place. */
  readonly device: boolean;
  /** The path written in the end (the target, or the file a symlink target points at). */
  readonly path: string;
  /** Makes the written file the target (mode, owner, fsync, rename) and closes it. */
  commit(): Promise<void>;
  /** Closes and removes the temp file; the target stays as it was. Never throws. */
  discard(): Promise<void>;
}

/** Options of {@link openRestoreTarget}. */
export interface RestoreTargetOptions {
  /** Replace an existing regular file. */
  readonly overwrite?: boolean;
  /** fsync the file (and its directory) even when it replaces nothing. */
  readonly sync?: boolean;
}

/**
 * Opens `target` for a restore: a temp file beside it (regular files) or the device itself.
 *
 * @throws `ERR_EXISTS` when `target` is an existing regular file and `overwrite` is not set;
 *   `ERR_INVALID_ARGUMENT` when it is a directory, FIFO or socket; `ERR_UNSAFE_PATH` when it is a
 *   dangling symlink; `ERR_CONFLICT` when a device
 *   changed into something else while it was opened; `ERR_IO` naming the path on system errors
 */
export async function openRestoreTarget(target: string, options: RestoreTargetOptions, details: ErrorDetails): Promise<RestoreTarget> {
  const d = { ...details, path: target };
  let st: Stats | undefined;
  try {
    st = await fsp.stat(target);
  } catch (e) {
    if (syscallCode(e) !== 'ENOENT') throw ioError(e, `cannot examine restore target ${target}`, d);
  }
  if (st !== undefined && (st.isBlockDevice() || st.isCharacterDevice())) return openDevice(target, d);
  if (st !== undefined && !st.isFile()) {
    throw new CairnError('ERR_INVALID_ARGUMENT', `restore target ${target} is not a regular file or a device`, d);
  }
  if (st !== undefined && options.overwrite !== true) {
    throw new CairnError('ERR_EXISTS', `restore target ${target} exists (pass overwrite / --overwrite to replace it)`, d);
  }
  // A link to a regular file: replace the file it points at. A dangling link is refused (as GNU cp
  // refuses to write through one): whoever planted it in a directory they own would have the
  // restore create a file of their choosing anywhere the restoring user may write.
  let real = target;
  try {
    if (st !== undefined) real = await fsp.realpath(target);
    else if ((await fsp.lstat(target)).isSymbolicLink()) {
      throw new CairnError('ERR_UNSAFE_PATH', `restore target ${target} is a dangling symlink: not writing through it`, d);
    }
  } catch (e) {
    if (e instanceof CairnError) throw e;
    if (syscallCode(e) !== 'ENOENT') throw ioError(e, `cannot examine restore target ${target}`, d);
  }
  const dir = path.dirname(real);
  const base = path.basename(real);
  let tmp = '';
  let fh: fsp.FileHandle | undefined;
  for (let attempt = 0; fh === undefined; attempt++) {
    const name = `${RESTORE_TEMP_PREFIX}${randomBytes(8).toString('hex')}`;
    // The target's name too, to tell whose leftover it is, when it fits in NAME_MAX.
    tmp = path.join(dir, Buffer.byteLength(base) <= 200 ? `${name}-${base}` : name);
    try {
      fh = await fsp.open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600);
    } catch (e) {
      if (syscallCode(e) === 'EEXIST' && attempt < 8) continue;
      throw ioError(e, `cannot create a temp file beside restore target ${target}`, { ...d, path: tmp });
    }
  }
  const file = fh;
  const temp = tmp;
  const replaced = st;
  let open = true;
  const discard = async (): Promise<void> => {
    if (open) await file.close().catch(() => undefined);
    open = false;
    await fsp.unlink(temp).catch(() => undefined);
  };
  const commit = async (): Promise<void> => {
    try {
      const myUid = process.geteuid?.() ?? -1;
      let mode = 0o640 & ~currentUmask();
      if (replaced !== undefined) {
        mode = replaced.mode & 0o7777;
        // As root, the replaced file's owner too (chown clears setuid/setgid: before the chmod).
        if (myUid === 0 && (replaced.uid !== myUid || replaced.gid !== (process.getegid?.() ?? -1))) await file.chown(replaced.uid, replaced.gid);
      }
      await file.chmod(mode);
      // The content is on disk before the name points at it: a crash cannot leave an empty file
      // where the previous one was.
      if (replaced !== undefined || options.sync === true) await file.sync();
      open = false;
      await file.close();
      if (replaced !== undefined) await fsp.rename(temp, real);
      else await putInPlace(temp, real, d);
      if (replaced !== undefined || options.sync === true) await syncDir(dir);
    } catch (e) {
      await discard();
      throw e instanceof CairnError ? e : ioError(e, `cannot put the restored file in place at ${target}`, d);
    }
  };
  return { fh: file, device: false, path: real, commit, discard };
}

/** Gives a new file its name without replacing anything there: link, then unlink the temp name. */
async function putInPlace(temp: string, real: string, d: ErrorDetails): Promise<void> {
  try {
    await fsp.link(temp, real);
  } catch (e) {
    const code = syscallCode(e);
    if (code === 'EEXIST') throw new CairnError('ERR_EXISTS', `restore target ${d.path} appeared during the restore; it was left alone`, d);
    // File systems without hard links: a rename, when the name is still free.
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'EMLINK') throw e;
    if (
      await fsp.lstat(real).then(
        () => true,
        () => false,
      )
    )
      throw new CairnError('ERR_EXISTS', `restore target ${d.path} appeared during the restore; it was left alone`, d);
    await fsp.rename(temp, real);
    return;
  }
  await fsp.unlink(temp);
}

async function syncDir(dir: string): Promise<void> {
  const h = await fsp.open(dir, fsc.O_RDONLY | fsc.O_DIRECTORY);
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}

async function openDevice(target: string, d: ErrorDetails): Promise<RestoreTarget> {
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(target, fsc.O_WRONLY);
  } catch (e) {
    throw ioError(e, `cannot open restore target ${target}`, d);
  }
  // What was opened must still be a device: never write in place into a regular file.
  const st = await fh.stat().catch(async (e: unknown) => {
    await fh.close().catch(() => undefined);
    throw ioError(e, `cannot examine restore target ${target}`, d);
  });
  if (!st.isBlockDevice() && !st.isCharacterDevice()) {
    await fh.close().catch(() => undefined);
    throw new CairnError('ERR_CONFLICT', `restore target ${target} changed while it was opened (it is no longer a device)`, d);
  }
  let open = true;
  return {
    fh,
    device: true,
    path: target,
    commit: async () => {
      try {
        await fh.sync();
      } catch (e) {
        throw ioError(e, `cannot restore to ${target}`, d);
      } finally {
        open = false;
        await fh.close().catch(() => undefined);
      }
    },
    discard: async () => {
      if (open) await fh.close().catch(() => undefined);
      open = false;
    },
  };
}

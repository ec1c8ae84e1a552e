/**
 * Host-local locks (layer L4): OS `flock` locks on files in the datastore's `.locks/` tree.
 *
 * The kernel releases a lock when its process dies, so a crashed backup never leaves a group
 * locked. Lock files live apart from the data (`.locks/`) so they never keep a snapshot directory
 * from being deleted, and they are never deleted themselves (deleting a lock file while another
 * process waits on it would let two holders in).
 *
 * | operation                       | lock                                              |
 * |---------------------------------|---------------------------------------------------|
 * | backup                          | group exclusive; base snapshot shared; writer reg. |
 * | restore, read, mount, verify    | snapshot shared                                   |
 * | prune / forget                  | snapshot exclusive (skipped when busy)            |
 * | manifest update (notes, ...)    | manifest exclusive, short                         |
 * | garbage collection              | gc exclusive                                      |
 *
 * `flock` locks belong to an open file description: two `acquire` calls in one process conflict
 * exactly like two processes do.
 *
 * Lock files are created with `O_CREAT` and then locked; that is safe only because they are never
 * deleted. Files that are removed again (the writer registrations, writer-registry.ts) must not be
 * made this way: a prober could lock and delete one in the gap.
 *
 * On a read-only datastore ({@link Datastore.readOnly}) no lock files can be made: readers run
 * without locks ({@link FileLock.none}), and exclusive locks fail with `ERR_READ_ONLY`
 * (context.ts).
 */
import { promises as fsp, constants as fsc } from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { CairnError, ioError, type ErrorDetails } from '../errors.js';
import { nativeFlock, nativeFlockWait } from '../codec/native.js';
import { DIR_MODE, FILE_MODE } from '../backend/local.js';

/** Folder of the lock files inside a datastore. */
export const LOCK_DIR = '.locks';

/** Lock mode. */
export type LockMode = 'shared' | 'exclusive';

/** Options of {@link acquireLock}. */
export interface LockOptions {
  /** How long to wait for the lock, in ms; 0 (the default) fails at once when it is held. */
  readonly timeoutMs?: number;
  /** Ids for the `ERR_LOCKED` error. */
  readonly details?: ErrorDetails;
  /** What is being locked, for the error message (e.g. `backup group vm/100`). */
  readonly what?: string;
}

/** A held lock. Release it exactly once; releasing twice is harmless. */
export class FileLock {
  private fh: fsp.FileHandle | undefined;

  /** @internal */
  constructor(
    fh: fsp.FileHandle | undefined,
    /** Path of the lock file. */
    readonly path: string,
    /** The mode held. */
    readonly mode: LockMode,
  ) {
    this.fh = fh;
  }

  /** True until released; false for {@link FileLock.none}. */
  get held(): boolean {
    return this.fh !== undefined;
  }

  /** A stand-in that holds nothing: what readers of a read-only datastore get. @internal */
  static none(file: string, mode: LockMode): FileLock {
    return new FileLock(undefined, file, mode);
  }

  /** Releases the lock (closing the descriptor releases the flock). */
  async release(): Promise<void> {
    const fh = this.fh;
    this.fh = undefined;
    if (fh !== undefined) await fh.close();
  }
}

/** A lock file name for an arbitrary id, short enough for any filesystem. */
export function lockFileName(id: string): string {
  const safe = id.replace(/[^A-Za-z0-9._:-]/g, (c) => `%${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  if (safe.length <= 200) return safe;
  return `${safe.slice(0, 80)}..${createHash('sha256').update(id).digest('hex')}`;
}

/**
 * Takes a lock on `file` (created when missing).
 * @throws `ERR_LOCKED` when it is held in a conflicting mode after the timeout.
 */
export async function acquireLock(file: string, mode: LockMode, options: LockOptions = {}): Promise<FileLock> {
  let fh: fsp.FileHandle;
  try {
    fh = await openLockFile(file);
  } catch (e) {
    if (e instanceof CairnError) throw e;
    throw ioError(e, `cannot open lock file ${file}`, { ...options.details, path: file });
  }
  let ok: boolean;
  try {
    const timeout = options.timeoutMs ?? 0;
    ok = timeout > 0 ? await nativeFlockWait(fh.fd, mode, timeout) : nativeFlock(fh.fd, mode);
  } catch (e) {
    await fh.close();
    throw ioError(e, `cannot lock ${file}`, { ...options.details, path: file });
  }
  if (!ok) {
    await fh.close();
    const what = options.what ?? file;
    throw new CairnError('ERR_LOCKED', `${what} is locked by another operation`, { ...options.details, path: file });
  }
  return new FileLock(fh, file, mode);
}

/**
 * Opens (creating when missing) a lock file. Never through a symlink (`O_NOFOLLOW`: a symlink
 * planted in the lock tree would make a lock create a file anywhere), never blocking on a FIFO
 * (`O_NONBLOCK`); what is there must be a regular file, else `ERR_UNSAFE_PATH` naming it.
 */
async function openLockFile(file: string): Promise<fsp.FileHandle> {
  const flags = fsc.O_RDWR | fsc.O_CREAT | fsc.O_NOFOLLOW | fsc.O_NONBLOCK;
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(file, flags, FILE_MODE);
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === 'ELOOP') throw new CairnError('ERR_UNSAFE_PATH', `lock file ${file} is a symlink; remove it by hand`, { path: file }, e);
    if (code === 'EISDIR') throw new CairnError('ERR_UNSAFE_PATH', `lock file ${file} is a directory; remove it by hand`, { path: file }, e);
    if (code !== 'ENOENT') throw e;
    await fsp.mkdir(path.dirname(file), { recursive: true, mode: DIR_MODE });
    fh = await fsp.open(file, flags, FILE_MODE);
  }
  const st = await fh.stat().catch(async (e: unknown) => {
    await fh.close();
    throw e;
  });
  if (!st.isFile()) {
    await fh.close();
    throw new CairnError('ERR_UNSAFE_PATH', `lock file ${file} is not a regular file; remove it by hand`, { path: file });
  }
  return fh;
}

/**
 * Host-local locks (lib/host, layer L3: host-local coordination over a local directory, never
 * through a backend): OS `flock` locks on files in the `.locks/` tree of the datastore's local
 * directory (the datastore root on the local backend; the local state directory of any other).
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
 * Who holds a lock: a process that takes a lock exclusively writes a small holder record into the
 * lock file (truncated, then written, once the flock is held; truncated again on release), and a
 * process that fails to get the lock reads it to say who holds it. A shared holder truncates a
 * record left by an exclusive holder that died (no exclusive holder can exist while it holds the
 * lock). The record is untrusted input: read bounded, checked, and sanitized into the message; a
 * process id that is no longer alive is ignored. Shared locks may have many holders and name none.
 *
 * On a read-only datastore ({@link Datastore.readOnly}) no lock files can be made: readers run
 * without locks ({@link FileLock.none}), and exclusive locks fail with `ERR_READ_ONLY`
 * (context.ts).
 */
import { promises as fsp, constants as fsc } from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { CairnError, abortError, ioError, throwIfAborted, type ErrorDetails } from '../errors.js';
import { nativeFlock, nativeFlockWait } from '../codec/native.js';
import { DIR_MODE, FILE_MODE } from '../backend/local.js';
import { systemClock } from '../util/clock.js';

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
  /** The operation recorded as the holder of an exclusive lock (default: {@link setLockHolderName}'s). */
  readonly operation?: string;
  /**
   * Ends the wait with `ERR_ABORTED`, within {@link LOCK_WAIT_SLICE_MS} of the abort (an aborted
   * signal fails at once, before any attempt).
   */
  readonly signal?: AbortSignal;
}

/**
 * The longest single native wait of {@link acquireLock}, in ms: a wait is made of slices this
 * long, with the signal checked between them.
 */
export const LOCK_WAIT_SLICE_MS = 200;

/** The longest holder record read from a lock file, in bytes. */
export const LOCK_RECORD_MAX_BYTES = 512;

/**
 * Who holds a lock exclusively, as recorded in the lock file.
 * @category Datastore
 */
export interface LockHolder {
  /** Process id. */
  readonly pid: number;
  /** The operation (e.g. `cairn backup`), printable ASCII, at most 80 characters. */
  readonly operation: string;
  /** When it took the lock, RFC 3339 UTC (second resolution). */
  readonly since: string;
}

let holderName: string = defaultHolderName();

function defaultHolderName(): string {
  const script = process.argv[1];
  return script === undefined ? 'node' : path.basename(script).replace(/\.[cm]?js$/, '');
}

/**
 * Sets the operation this process records when it holds a lock exclusively (shown to a process
 * that finds the lock taken, e.g. `cairn backup`). Default: the name of the script node runs.
 * For the command line; a library user has no need of it.
 * @internal
 */
export function setLockHolderName(name: string): void {
  holderName = sanitizeText(name) || defaultHolderName();
}

/** Printable ASCII only, at most 80 characters. */
function sanitizeText(s: string): string {
  return s
    .replace(/[^\x20-\x7e]/g, '?')
    .slice(0, 80)
    .trim();
}

/** The holder record written into an exclusively held lock file. */
function holderRecord(operation: string | undefined): Buffer {
  const since = new Date(systemClock.now()).toISOString().replace(/\.\d{3}Z$/, 'Z');
  return Buffer.from(`${JSON.stringify({ pid: process.pid, operation: sanitizeText(operation ?? holderName) || holderName, since })}\n`, 'utf8');
}

/** True when a process with this id is alive (EPERM: alive, owned by someone else). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as { code?: string }).code === 'EPERM';
  }
}

/**
 * Parses a holder record read from a lock file; undefined for anything that is not a well-formed
 * record of a live process other than this one. The record is untrusted: only its checked fields
 * are kept, the operation sanitized.
 */
export function parseLockHolder(bytes: Uint8Array): LockHolder | undefined {
  if (bytes.length === 0 || bytes.length > LOCK_RECORD_MAX_BYTES) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null) return undefined;
  const r = v as Record<string, unknown>;
  const pid = r['pid'];
  const op = r['operation'];
  const since = r['since'];
  if (typeof pid !== 'number' || !Number.isSafeInteger(pid) || pid <= 0 || pid > 4_194_304) return undefined;
  if (typeof op !== 'string' || typeof since !== 'string' || !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/.test(since)) return undefined;
  if (pid === process.pid || !alive(pid)) return undefined;
  return { pid, operation: sanitizeText(op) || 'unknown', since };
}

/** Reads the holder record of a lock file open as `fh` (bounded), or undefined. */
async function readHolder(fh: fsp.FileHandle): Promise<LockHolder | undefined> {
  try {
    const buf = Buffer.alloc(LOCK_RECORD_MAX_BYTES + 1);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    return parseLockHolder(buf.subarray(0, bytesRead));
  } catch {
    return undefined;
  }
}

/**
 * Who holds the lock on `file` exclusively, as its holder record says (undefined when there is no
 * record of a live process). Never creates the file.
 * @category Datastore
 */
export async function lockHolder(file: string): Promise<LockHolder | undefined> {
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(file, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
  } catch {
    return undefined;
  }
  try {
    if (!(await fh.stat()).isFile()) return undefined;
    return await readHolder(fh);
  } finally {
    await fh.close();
  }
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

  /** Releases the lock (closing the descriptor releases the flock); an exclusive holder first clears its holder record. */
  async release(): Promise<void> {
    const fh = this.fh;
    this.fh = undefined;
    if (fh === undefined) return;
    try {
      if (this.mode === 'exclusive') await fh.truncate(0).catch(() => undefined);
    } finally {
      await fh.close();
    }
  }
}

/** A lock file name for an arbitrary id, short enough for any filesystem. */
export function lockFileName(id: string): string {
  const safe = id.replace(/[^A-Za-z0-9._:-]/g, (c) => `%${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  if (safe.length <= 200) return safe;
  return `${safe.slice(0, 80)}..${createHash('sha256').update(id).digest('hex')}`;
}

/**
 * Takes a lock on `file` (created when missing), waiting up to `options.timeoutMs` for it; the
 * wait ends early when `options.signal` fires.
 * @throws `ERR_LOCKED` when it is held in a conflicting mode after the timeout; `ERR_ABORTED` when
 *   the signal fired first.
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
    ok = await lockWait(fh, mode, options.timeoutMs ?? 0, options.signal);
  } catch (e) {
    await fh.close();
    if (e instanceof CairnError && e.code === 'ERR_ABORTED') throw abortError(options.signal, { ...options.details, path: file });
    throw ioError(e, `cannot lock ${file}`, { ...options.details, path: file });
  }
  if (!ok) {
    const holder = await readHolder(fh);
    await fh.close();
    const what = options.what ?? file;
    if (holder === undefined) throw new CairnError('ERR_LOCKED', `${what} is locked: held by another process`, { ...options.details, path: file });
    throw new CairnError('ERR_LOCKED', `${what} is locked by pid ${holder.pid} (${holder.operation}, since ${holder.since})`, {
      ...options.details,
      path: file,
      holderPid: holder.pid,
      holderOperation: holder.operation,
      holderSince: holder.since,
    });
  }
  try {
    // The holder record: written by an exclusive holder; a shared holder clears one left by an
    // exclusive holder that died (none can hold the lock now).
    if (mode === 'exclusive') {
      const rec = holderRecord(options.operation);
      await fh.truncate(0);
      await fh.write(rec, 0, rec.length, 0);
    } else if ((await fh.stat()).size > 0) {
      await fh.truncate(0);
    }
  } catch {
    // The record is a courtesy to whoever waits: the lock is held all the same.
  }
  return new FileLock(fh, file, mode);
}

/**
 * Takes the flock on `fh`, waiting up to `timeoutMs`; false when the wait ran out. The wait goes in
 * slices of at most {@link LOCK_WAIT_SLICE_MS} with `signal` checked between them, so an abort
 * ends it within a slice. The native wait cannot be cancelled, and it must end before `fh` is
 * closed (a closed descriptor's number may be reused by another file, which the wait would then
 * lock), so racing it against the signal would not be shorter: the slice has to finish anyway.
 * A lock taken in the slice during which the signal fired is let go again (closing `fh` does).
 * @throws `ERR_ABORTED` (without details) when `signal` fires
 */
async function lockWait(fh: fsp.FileHandle, mode: LockMode, timeoutMs: number, signal: AbortSignal | undefined): Promise<boolean> {
  throwIfAborted(signal);
  if (!(timeoutMs > 0)) return nativeFlock(fh.fd, mode);
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const left = deadline - performance.now();
    const slice = signal === undefined ? Math.max(left, 0) : Math.min(Math.max(left, 0), LOCK_WAIT_SLICE_MS);
    const ok = await nativeFlockWait(fh.fd, mode, slice);
    throwIfAborted(signal);
    if (ok) return true;
    if (left <= slice) return false;
  }
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

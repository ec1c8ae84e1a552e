/**
 * Typed access to the N-API addon in `native/` (layer L1). This is the only file in `lib/` that
 * loads the addon.
 *
 * The addon is built by `npm run build:native` into `native/build/Release/cairn_native.node` and
 * loaded lazily on first use, from a path resolved relative to this file (it works from
 * `lib/codec/native.ts` under the test loader and from `dist/codec/native.js` once compiled).
 * When it is missing every function except {@link nativeAvailable} throws `ERR_NATIVE`.
 *
 * Errors: system call failures become `ERR_IO` {@link CairnError}s whose `details.syscallCode` is
 * the errno name (`EBADF`, ...); other failures inside the addon become `ERR_NATIVE`. Bad
 * arguments (a non-integer fd, an unknown lock mode, a wrong typed array) are programmer errors and
 * stay plain `TypeError`s.
 *
 * @module
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { CairnError, syscallCode, type ErrorDetails } from '../errors.js';

/** The raw addon interface (see `native/src/cairn_native.c`). */
interface NativeBinding {
  flock(fd: number, op: number): boolean;
  flockWait(fd: number, op: number, timeoutMs: number): Promise<boolean>;
  syncfs(fd: number): void;
  cdcScan(data: Uint8Array, state: Uint32Array, params: Uint32Array): number;
}

/** A file lock mode for {@link nativeFlock} and {@link nativeFlockWait}. */
export type LockMode = 'shared' | 'exclusive' | 'unlock';

const ADDON_PATH = fileURLToPath(new URL('../../native/build/Release/cairn_native.node', import.meta.url));

let binding: NativeBinding | undefined;
let loadError: CairnError | undefined;

function load(): NativeBinding {
  if (binding !== undefined) return binding;
  if (loadError !== undefined) throw loadError;
  try {
    binding = createRequire(import.meta.url)(ADDON_PATH) as NativeBinding;
    return binding;
  } catch (e) {
    loadError = new CairnError('ERR_NATIVE', 'native addon not built: run `npm run build:native`', { path: ADDON_PATH }, e);
    throw loadError;
  }
}

function lockOp(mode: LockMode): number {
  switch (mode) {
    case 'unlock':
      return 0;
    case 'shared':
      return 1;
    case 'exclusive':
      return 2;
    default:
      throw new TypeError(`lock mode must be 'shared', 'exclusive' or 'unlock', got ${String(mode)}`);
  }
}

function convert(e: unknown, what: string, details: ErrorDetails): unknown {
  if (e instanceof TypeError || e instanceof CairnError) return e;
  const code = syscallCode(e);
  const msg = e instanceof Error ? e.message : String(e);
  if (code !== undefined) return new CairnError('ERR_IO', `${what}: ${msg}`, { ...details, syscallCode: code }, e);
  return new CairnError('ERR_NATIVE', `${what}: ${msg}`, details, e);
}

/** The absolute path the addon is loaded from (`native/build/Release/cairn_native.node`). */
export function nativeAddonPath(): string {
  return ADDON_PATH;
}

/**
 * True when the addon can be loaded (it is then loaded and kept). Never throws.
 *
 * @returns whether the native functions are usable in this process
 */
export function nativeAvailable(): boolean {
  try {
    load();
    return true;
  } catch {
    return false;
  }
}

/**
 * Tries to take, or releases, a BSD `flock(2)` lock on an open file, without blocking.
 *
 * The lock belongs to the open file description: two `open()`s of the same file in one process
 * conflict with each other, while `dup()`ed descriptors and forked children share the lock. The
 * kernel releases it when the last descriptor of that description is closed (also on SIGKILL).
 *
 * @param fd - an open file descriptor
 * @param mode - `'shared'`, `'exclusive'` or `'unlock'`
 * @returns true when the lock was taken (or released); false when another holder blocks it
 * @throws TypeError on a bad fd or mode; `ERR_IO` (with `syscallCode`) on other errors such as
 *   `EBADF`; `ERR_NATIVE` when the addon is missing
 */
export function nativeFlock(fd: number, mode: LockMode): boolean {
  const b = load();
  const op = lockOp(mode);
  try {
    return b.flock(fd, op);
  } catch (e) {
    throw convert(e, `flock(${mode})`, { fd });
  }
}

/**
 * Waits for a `flock(2)` lock without blocking the event loop.
 *
 * The wait runs on the libuv threadpool: it retries a non-blocking attempt with sleeps growing
 * from 2 ms to 20 ms until the lock is taken or `timeoutMs` has passed. It occupies one threadpool
 * thread meanwhile, so keep timeouts short when the pool is busy. A timeout of 0 makes exactly one
 * attempt; `Infinity` waits for ever.
 *
 * @param fd - an open file descriptor; keep it open until the promise settles
 * @param mode - `'shared'`, `'exclusive'` or `'unlock'`
 * @param timeoutMs - how long to wait, in milliseconds (>= 0)
 * @returns true when the lock was taken, false when the timeout passed first
 * @throws TypeError on bad arguments (synchronously); rejects with `ERR_IO` on system errors
 */
export function nativeFlockWait(fd: number, mode: LockMode, timeoutMs: number): Promise<boolean> {
  const b = load();
  const op = lockOp(mode);
  return b.flockWait(fd, op, timeoutMs).catch((e: unknown) => {
    throw convert(e, `flock(${mode})`, { fd });
  });
}

/**
 * Commits the whole filesystem that holds `fd` to stable storage (Linux `syncfs(2)`).
 *
 * This blocks the calling thread until the kernel has written back the filesystem's dirty data.
 *
 * @param fd - any open file descriptor on the filesystem
 * @throws TypeError on a bad fd; `ERR_IO` (with `syscallCode`) when the call fails
 */
export function nativeSyncfs(fd: number): void {
  const b = load();
  try {
    b.syncfs(fd);
  } catch (e) {
    throw convert(e, 'syncfs', { fd });
  }
}

/**
 * The native content-defined boundary scan; same contract as `jsCdcScan` in `gear.ts`.
 *
 * @param data - the next bytes of the stream
 * @param state - `[chunkLen, hash]`, updated in place
 * @param params - `[min, avg, max, maskS, maskL]`
 * @returns the number of bytes of `data` that end the current chunk (then `state` is `[0, 0]`), or
 *   -1 when the chunk continues past `data`
 * @throws TypeError when an argument is not the right typed array or the params are inconsistent
 */
export function nativeCdcScan(data: Uint8Array, state: Uint32Array, params: Uint32Array): number {
  return (binding ?? load()).cdcScan(data, state, params);
}

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
 * arguments (a non-integer fd, an unknown lock mode, a wrong typed array, a path that is neither a
 * string nor bytes or holds a NUL, a time that is not a BigInt) are programmer errors and
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
  listXattrs(path: string | Uint8Array): Buffer[];
  getXattr(path: string | Uint8Array, name: string | Uint8Array): Buffer;
  setXattr(path: string | Uint8Array, name: string | Uint8Array, value: Uint8Array): void;
  mknod(path: string | Uint8Array, mode: number, major: number, minor: number): void;
  utimes(path: string | Uint8Array, atimeNs: bigint, mtimeNs: bigint): void;
  seekData(fd: number, offset: number): number;
  seekHole(fd: number, offset: number): number;
}

/**
 * A filesystem path or an xattr name for the `native*` metadata functions: a string (encoded as
 * UTF-8) or the raw bytes of the name (file names need not be valid UTF-8). Must not contain NUL.
 */
export type NativePath = string | Uint8Array;

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

/** A path or xattr name as text for error messages and details (raw bytes decoded as lossy UTF-8). */
function display(p: NativePath): string {
  if (typeof p === 'string') return p;
  if (p instanceof Uint8Array) return Buffer.from(p.buffer, p.byteOffset, p.byteLength).toString('utf8');
  return `<${typeof p}>`;
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

/**
 * Lists the extended attribute names of a file, without following a symlink (`llistxattr(2)`).
 *
 * On a symlink this lists the link's own attributes. A filesystem without xattr support
 * (`ENOTSUP`) gives an empty list, as does a file without attributes. The order is the kernel's.
 *
 * @param path - the file, as a string or raw bytes
 * @returns the names as raw bytes, without their terminating NULs
 * @throws TypeError on a bad path; `ERR_IO` (with `syscallCode`, e.g. `ENOENT`) when the call fails
 */
export function nativeListXattrs(path: NativePath): Buffer[] {
  const b = load();
  try {
    return b.listXattrs(path);
  } catch (e) {
    throw convert(e, `llistxattr ${display(path)}`, { path: display(path) });
  }
}

/**
 * Reads one extended attribute of a file, without following a symlink (`lgetxattr(2)`).
 *
 * The size is queried first and the value read into a buffer of that size; when the value grew
 * between the two calls the pair is retried.
 *
 * @param path - the file, as a string or raw bytes
 * @param name - the full attribute name including its namespace (`user.comment`)
 * @returns the value (possibly empty)
 * @throws TypeError on a bad path or name; `ERR_IO` with `syscallCode` `ENODATA` when the file has
 *   no such attribute, or another code (`ENOENT`, `ENOTSUP`, ...) when the call fails
 */
export function nativeGetXattr(path: NativePath, name: NativePath): Buffer {
  const b = load();
  try {
    return b.getXattr(path, name);
  } catch (e) {
    throw convert(e, `lgetxattr ${display(path)} ${display(name)}`, { path: display(path), xattr: display(name) });
  }
}

/**
 * Creates or replaces one extended attribute of a file, without following a symlink
 * (`lsetxattr(2)`, flags 0).
 *
 * Linux refuses `user.*` attributes on symlinks and device nodes (`EPERM`); `trusted.*` needs
 * `CAP_SYS_ADMIN`.
 *
 * @param path - the file, as a string or raw bytes
 * @param name - the full attribute name including its namespace (`user.comment`)
 * @param value - the value (may be empty)
 * @throws TypeError on a bad path, name or value; `ERR_IO` (with `syscallCode`: `EPERM`,
 *   `ENOTSUP`, `ENOSPC`, `E2BIG`, ...) when the call fails
 */
export function nativeSetXattr(path: NativePath, name: NativePath, value: Uint8Array): void {
  const b = load();
  try {
    b.setXattr(path, name, value);
  } catch (e) {
    throw convert(e, `lsetxattr ${display(path)} ${display(name)}`, { path: display(path), xattr: display(name) });
  }
}

/**
 * Creates a device node, FIFO or socket node (`mknod(2)` with `makedev(major, minor)`).
 *
 * The process umask applies to the permission bits, as with `mknod(2)`. Character and block
 * devices need `CAP_MKNOD`; a major above 4095 or a minor above 1048575 fails with `EINVAL`.
 *
 * @param path - the new node, as a string or raw bytes; it must not exist
 * @param mode - file type (`fs.constants.S_IFCHR`, `S_IFBLK`, `S_IFIFO`, `S_IFSOCK`) or'ed with
 *   the permission bits, in [0, 0o177777]
 * @param major - the device major number (0 for FIFOs and sockets)
 * @param minor - the device minor number (0 for FIFOs and sockets)
 * @throws TypeError on bad arguments; `ERR_IO` (with `syscallCode`: `EEXIST`, `EPERM`, ...) when
 *   the call fails
 */
export function nativeMknod(path: NativePath, mode: number, major: number, minor: number): void {
  const b = load();
  try {
    b.mknod(path, mode, major, minor);
  } catch (e) {
    throw convert(e, `mknod ${display(path)}`, { path: display(path), mode, major, minor });
  }
}

/**
 * Sets the access and modification times of a file with nanosecond precision, without following a
 * symlink (`utimensat(2)` with `AT_SYMLINK_NOFOLLOW`).
 *
 * Unlike `fs.lutimes`, which takes float seconds and loses the low digits, the times are exact:
 * `fs.lstat(p, { bigint: true }).mtimeNs` reads back the same value (when the filesystem stores
 * nanoseconds). Times before 1970 are negative.
 *
 * @param path - the file, as a string or raw bytes
 * @param atimeNs - the access time in nanoseconds since the epoch (a BigInt in the int64 range)
 * @param mtimeNs - the modification time in nanoseconds since the epoch
 * @throws TypeError on a bad path or a time that is not an int64 BigInt; `ERR_IO` (with
 *   `syscallCode`: `ENOENT`, `EPERM`, `EINVAL` for a time the filesystem cannot store, ...) when the
 *   call fails
 */
export function nativeUtimes(path: NativePath, atimeNs: bigint, mtimeNs: bigint): void {
  const b = load();
  try {
    b.utimes(path, atimeNs, mtimeNs);
  } catch (e) {
    throw convert(e, `utimensat ${display(path)}`, { path: display(path) });
  }
}

/**
 * Finds the next data region of a (sparse) file at or after `offset` (`lseek(2)` `SEEK_DATA`).
 *
 * This moves the file position of `fd` (positional reads and writes are unaffected). A filesystem
 * that does not track holes reports the whole file as data.
 *
 * @param fd - an open file descriptor
 * @param offset - where to start looking (an integer >= 0)
 * @returns the offset where data starts, or -1 when there is no data at or after `offset`
 *   (`ENXIO`: only holes up to the end, or `offset` at or past the end)
 * @throws TypeError on a bad fd or offset; `ERR_IO` (with `syscallCode`, e.g. `EBADF`) on other errors
 */
export function nativeSeekData(fd: number, offset: number): number {
  const b = load();
  try {
    return b.seekData(fd, offset);
  } catch (e) {
    throw convert(e, 'lseek(SEEK_DATA)', { fd, offset });
  }
}

/**
 * Finds the next hole of a (sparse) file at or after `offset` (`lseek(2)` `SEEK_HOLE`).
 *
 * The end of the file counts as a hole, so a file without holes (or a filesystem that does not
 * track them) gives the file size. This moves the file position of `fd`.
 *
 * @param fd - an open file descriptor
 * @param offset - where to start looking (an integer >= 0, below the file size)
 * @returns the offset where the next hole starts
 * @throws TypeError on a bad fd or offset; `ERR_IO` with `syscallCode` `ENXIO` when `offset` is at
 *   or past the end of the file, or another code (`EBADF`, ...) on other errors
 */
export function nativeSeekHole(fd: number, offset: number): number {
  const b = load();
  try {
    return b.seekHole(fd, offset);
  } catch (e) {
    throw convert(e, 'lseek(SEEK_HOLE)', { fd, offset });
  }
}

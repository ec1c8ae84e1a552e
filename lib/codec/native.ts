/**
 * Typed access to the N-API addon whose source is `native/src/` (layer L1). This is the only file
 * in `lib/` that loads the addon.
 *
 * Where the addon comes from: the published package carries prebuilt binaries
 * (`prebuilds/linux-x64/cairn_native.glibc.node`, made by prebuildify when the package is packed;
 * N-API, so one binary serves every Node version); a build from source (`npm run build:native`,
 * or the package's `install` script where no prebuild fits) goes to `build/Release/`. The loader
 * is node-gyp-build, which prefers a local build and else picks the prebuild for this platform,
 * architecture and libc. No install script is needed where a prebuild fits (npm 11 runs a
 * dependency's install scripts only when the project allows them).
 *
 * The addon is loaded lazily on first use, from the package root resolved relative to this file
 * (`lib/codec/native.ts` under the test loader and `dist/codec/native.js` once compiled are both
 * two levels down). When it cannot be loaded every function except {@link nativeAvailable} throws
 * `ERR_NATIVE` with a message that says what to do; `Datastore.open` and `Datastore.create` check
 * it first ({@link assertNativeAddon}), so a consumer learns it when a datastore is opened.
 *
 * Errors: system call failures become `ERR_IO` {@link CairnError}s whose `details.syscallCode` is
 * the errno name (`EBADF`, ...); other failures inside the addon become `ERR_NATIVE`. Bad
 * arguments (a non-integer fd, an unknown lock mode, a wrong typed array, a path that is neither a
 * string nor bytes or holds a NUL, a time that is not a BigInt) are programmer errors and
 * stay plain `TypeError`s.
 *
 * Directory-fd calls (`nativeOpenat`, `nativeFstatat`, `nativeReaddir`, `nativeMkdirat`, ...)
 * resolve a name relative to an open directory, so a tree of any depth can be walked or written
 * without ever building a path longer than one name (`PATH_MAX` does not apply), and a directory
 * swapped for a symlink between two calls is not followed. Their constants (`AT_FDCWD`,
 * `AT_SYMLINK_NOFOLLOW`, `O_PATH`, ...) are read from the addon when this module loads.
 *
 * Test hook: when `globalThis[Symbol.for('cairn.native.wrapBinding')]` is a function when the
 * addon is first loaded, it is called with the raw binding and its result is used instead. The
 * fault-injection helper preloaded into CLI children (`test/helpers/fault-fs.mjs`) uses this to
 * count and fail the addon calls that change the file system, as it does for `node:fs`.
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
  openat(dirfd: number, name: NativePath, flags: number, mode: number): number;
  fstatat(dirfd: number, name: NativePath, flags: number): RawStat;
  fstat(fd: number): RawStat;
  readdir(dirfd: number): NativeDirent[];
  mkdirat(dirfd: number, name: NativePath, mode: number): void;
  symlinkat(target: NativePath, dirfd: number, name: NativePath): void;
  linkat(oldDirfd: number, oldName: NativePath, newDirfd: number, newName: NativePath, flags: number): void;
  mknodat(dirfd: number, name: NativePath, mode: number, major: number, minor: number): void;
  unlinkat(dirfd: number, name: NativePath, flags: number): void;
  renameat(oldDirfd: number, oldName: NativePath, newDirfd: number, newName: NativePath, flags: number): void;
  readlinkat(dirfd: number, name: NativePath): Buffer;
  fchownat(dirfd: number, name: NativePath, uid: number, gid: number, flags: number): void;
  utimensat(dirfd: number, name: NativePath, atimeNs: bigint, mtimeNs: bigint, flags: number): void;
  futimens(fd: number, atimeNs: bigint, mtimeNs: bigint): void;
  fchmod(fd: number, mode: number): void;
  fchown(fd: number, uid: number, gid: number): void;
  flistxattr(fd: number): Buffer[];
  fgetxattr(fd: number, name: NativePath): Buffer;
  fsetxattr(fd: number, name: NativePath, value: Uint8Array): void;
  constants?: Record<string, number>;
}

/** A `struct stat` as the addon returns it (before {@link NativeStat.kind} is added). */
type RawStat = Omit<NativeStat, 'kind'>;

/**
 * A filesystem path or an xattr name for the `native*` metadata functions: a string (encoded as
 * UTF-8) or the raw bytes of the name (file names need not be valid UTF-8). Must not contain NUL.
 */
export type NativePath = string | Uint8Array;

/** A file lock mode for {@link nativeFlock} and {@link nativeFlockWait}. */
export type LockMode = 'shared' | 'exclusive' | 'unlock';

/** The package root: `lib/codec/` and `dist/codec/` are both two levels below it. */
const PACKAGE_ROOT = fileURLToPath(new URL('../../', import.meta.url));

let binding: NativeBinding | undefined;
let loadError: CairnError | undefined;
let addonPath: string | undefined;

/** Where a test harness may put a function that wraps the raw binding (see the module doc). */
const WRAP_HOOK = Symbol.for('cairn.native.wrapBinding');

/** What a user can do about an addon that does not load. */
const REMEDY =
  'in a project that depends on cairn, `npm rebuild cairn --foreground-scripts` builds it from source ' +
  '(needs python3, make and a C compiler); in a clone of cairn, `npm run build:native`';

type GypBuild = ((dir: string) => unknown) & { resolve(dir: string): string };

function load(): NativeBinding {
  if (binding !== undefined) return binding;
  if (loadError !== undefined) throw loadError;
  const require = createRequire(import.meta.url);
  let found: string | undefined;
  try {
    const gypBuild = require('node-gyp-build') as GypBuild;
    found = gypBuild.resolve(PACKAGE_ROOT);
    addonPath = found;
    const raw = require(found) as NativeBinding;
    const wrap = (globalThis as Record<symbol, unknown>)[WRAP_HOOK];
    binding = typeof wrap === 'function' ? (wrap(raw) as NativeBinding) : raw;
    return binding;
  } catch (e) {
    const why = e instanceof Error ? e.message.split('\n')[0] : String(e);
    const what =
      found === undefined
        ? `cairn's native addon is not built and no prebuilt binary fits ${process.platform}-${process.arch}`
        : `cairn's native addon ${found} does not load on this system`;
    loadError = new CairnError('ERR_NATIVE', `${what} (${why}): ${REMEDY}`, { path: found ?? PACKAGE_ROOT }, e);
    throw loadError;
  }
}

/**
 * Loads the addon now and throws its `ERR_NATIVE` (which says what to do) when it cannot be
 * loaded. `Datastore.open` and `Datastore.create` call it, so a missing or unloadable addon is
 * reported when a datastore is opened rather than at the first lock or chunk.
 */
export function assertNativeAddon(): void {
  load();
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

/**
 * The absolute path the addon is loaded from (`build/Release/cairn_native.node` when built from
 * source, else the prebuild under `prebuilds/`); the package root when none was found.
 */
export function nativeAddonPath(): string {
  try {
    load();
  } catch {
    // the error is reported by the functions that need the addon
  }
  return addonPath ?? PACKAGE_ROOT;
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

// ---------------------------------------------------------------------------------------------
// Directory-fd calls

/** Reads the addon's constants once; NaN for each when the addon is missing (every call then throws `ERR_NATIVE`). */
function addonConstant(name: string): number {
  try {
    return load().constants?.[name] ?? Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/** `AT_FDCWD`: as a dirfd, names are resolved against the current working directory. */
export const AT_FDCWD: number = addonConstant('AT_FDCWD');
/** `AT_SYMLINK_NOFOLLOW`: {@link nativeFstatat}, {@link nativeFchownat}, {@link nativeUtimensat} act on a symlink itself. */
export const AT_SYMLINK_NOFOLLOW: number = addonConstant('AT_SYMLINK_NOFOLLOW');
/** `AT_REMOVEDIR`: {@link nativeUnlinkat} removes an (empty) directory. */
export const AT_REMOVEDIR: number = addonConstant('AT_REMOVEDIR');
/** `AT_EMPTY_PATH`: with an empty name, {@link nativeFstatat} (and others) act on the dirfd itself. */
export const AT_EMPTY_PATH: number = addonConstant('AT_EMPTY_PATH');
/** `AT_SYMLINK_FOLLOW`: {@link nativeLinkat} dereferences `oldName` when it is a symlink. */
export const AT_SYMLINK_FOLLOW: number = addonConstant('AT_SYMLINK_FOLLOW');
/** `O_PATH`: {@link nativeOpenat} returns a descriptor usable only as a dirfd or for fstat (no read permission needed). */
export const O_PATH: number = addonConstant('O_PATH');
/** `RENAME_NOREPLACE`: {@link nativeRenameat} fails with `EEXIST` instead of replacing the target. */
export const RENAME_NOREPLACE: number = addonConstant('RENAME_NOREPLACE');
/** `RENAME_EXCHANGE`: {@link nativeRenameat} swaps the two names atomically. */
export const RENAME_EXCHANGE: number = addonConstant('RENAME_EXCHANGE');

/** The type of a file: from its mode ({@link NativeStat.kind}) or a directory entry's `d_type` ({@link nativeDirentKind}). */
export type NativeFileKind = 'file' | 'dir' | 'symlink' | 'fifo' | 'socket' | 'char' | 'block' | 'unknown';

/** A `struct stat` from {@link nativeFstatat} or {@link nativeFstat}. */
export interface NativeStat {
  /** The device of the filesystem holding the file. */
  readonly dev: number;
  /** The inode number. */
  readonly ino: number;
  /** File type and permission bits (`st_mode`). */
  readonly mode: number;
  /** The number of hard links. */
  readonly nlink: number;
  /** The owner's user id. */
  readonly uid: number;
  /** The owner's group id. */
  readonly gid: number;
  /** The device number of a character or block device node (0 otherwise). */
  readonly rdev: number;
  /** The size in bytes (a device node gives 0; use the device's own size query). */
  readonly size: number;
  /** The number of 512-byte blocks allocated. */
  readonly blocks: number;
  /** The last access time, nanoseconds since the epoch. */
  readonly atimeNs: bigint;
  /** The last modification time, nanoseconds since the epoch. */
  readonly mtimeNs: bigint;
  /** The last status change time, nanoseconds since the epoch. */
  readonly ctimeNs: bigint;
  /** The file type, from `mode`. */
  readonly kind: NativeFileKind;
}

/** One directory entry from {@link nativeReaddir}. */
export interface NativeDirent {
  /** The entry's name, raw bytes (never `.` or `..`). */
  readonly name: Buffer;
  /** The `d_type` (`DT_REG` = 8, `DT_DIR` = 4, ...; 0 = `DT_UNKNOWN`: call {@link nativeFstatat}); see {@link nativeDirentKind}. */
  readonly type: number;
}

/**
 * The file type of a `st_mode`.
 *
 * @param mode - a `st_mode` value
 * @returns its {@link NativeFileKind}
 */
export function nativeModeKind(mode: number): NativeFileKind {
  switch (mode & 0o170000) {
    case 0o100000:
      return 'file';
    case 0o040000:
      return 'dir';
    case 0o120000:
      return 'symlink';
    case 0o010000:
      return 'fifo';
    case 0o140000:
      return 'socket';
    case 0o020000:
      return 'char';
    case 0o060000:
      return 'block';
    default:
      return 'unknown';
  }
}

/**
 * The file type of a directory entry's `d_type`.
 *
 * @param type - {@link NativeDirent.type}
 * @returns its {@link NativeFileKind}; `'unknown'` for `DT_UNKNOWN` (some filesystems never fill
 *   it in: then ask {@link nativeFstatat} with {@link AT_SYMLINK_NOFOLLOW})
 */
export function nativeDirentKind(type: number): NativeFileKind {
  switch (type) {
    case 8:
      return 'file';
    case 4:
      return 'dir';
    case 10:
      return 'symlink';
    case 1:
      return 'fifo';
    case 12:
      return 'socket';
    case 2:
      return 'char';
    case 6:
      return 'block';
    default:
      return 'unknown';
  }
}

function withKind(st: RawStat): NativeStat {
  return { ...st, kind: nativeModeKind(st.mode) };
}

/**
 * Opens a file relative to a directory (`openat(2)`; `O_CLOEXEC` is always added).
 *
 * Use `fs.constants` for the flags (`O_RDONLY`, `O_NOFOLLOW`, `O_NONBLOCK`, `O_DIRECTORY`, ...)
 * and {@link O_PATH}. Close the descriptor with `fs.closeSync`.
 *
 * @param dirfd - an open directory (or `O_PATH`) descriptor, or {@link AT_FDCWD}
 * @param name - the name (one component or a relative path; an absolute path ignores `dirfd`)
 * @param flags - the open flags
 * @param mode - the permission bits of a file created with `O_CREAT` (default 0o666, before umask)
 * @returns the new file descriptor
 * @throws TypeError on bad arguments; `ERR_IO` with `syscallCode` (`ENOENT`, `ELOOP` for a
 *   symlink under `O_NOFOLLOW`, `ENOTDIR`, `ENXIO`, ...) when the call fails
 */
export function nativeOpenat(dirfd: number, name: NativePath, flags: number, mode = 0o666): number {
  const b = load();
  try {
    return b.openat(dirfd, name, flags, mode);
  } catch (e) {
    throw convert(e, `openat ${display(name)}`, { fd: dirfd, path: display(name), flags });
  }
}

/**
 * The status of a file relative to a directory (`fstatat(2)`).
 *
 * @param dirfd - an open directory descriptor, or {@link AT_FDCWD}
 * @param name - the name; empty with {@link AT_EMPTY_PATH} for `dirfd` itself
 * @param flags - 0 (follow a final symlink), {@link AT_SYMLINK_NOFOLLOW}, {@link AT_EMPTY_PATH}
 * @returns the status
 * @throws TypeError on bad arguments; `ERR_IO` with `syscallCode` when the call fails
 */
export function nativeFstatat(dirfd: number, name: NativePath, flags: number): NativeStat {
  const b = load();
  try {
    return withKind(b.fstatat(dirfd, name, flags));
  } catch (e) {
    throw convert(e, `fstatat ${display(name)}`, { fd: dirfd, path: display(name) });
  }
}

/**
 * The status of an open file (`fstat(2)`), with nanosecond times.
 *
 * @param fd - an open descriptor (also `O_PATH`)
 * @returns the status
 * @throws TypeError on a bad fd; `ERR_IO` with `syscallCode` (`EBADF`, ...) when the call fails
 */
export function nativeFstat(fd: number): NativeStat {
  const b = load();
  try {
    return withKind(b.fstat(fd));
  } catch (e) {
    throw convert(e, 'fstat', { fd });
  }
}

/**
 * Lists a directory: every entry but `.` and `..`, in the kernel's order.
 *
 * The directory is read from its start through a new open of `.` relative to `dirfd`, so the
 * caller's descriptor (also an `O_PATH` one) stays open and its position is not moved.
 *
 * @param dirfd - an open directory descriptor
 * @returns the entries; `type` may be `DT_UNKNOWN` (0)
 * @throws TypeError on a bad fd; `ERR_IO` with `syscallCode` (`ENOTDIR`, `EACCES`, `EIO`, ...)
 */
export function nativeReaddir(dirfd: number): NativeDirent[] {
  const b = load();
  try {
    return b.readdir(dirfd);
  } catch (e) {
    throw convert(e, 'readdir', { fd: dirfd });
  }
}

/**
 * Creates a directory relative to a directory (`mkdirat(2)`; the umask applies).
 *
 * @param dirfd - an open directory descriptor, or {@link AT_FDCWD}
 * @param name - the new directory's name
 * @param mode - the permission bits, in [0, 0o7777]
 * @throws TypeError on bad arguments; `ERR_IO` with `syscallCode` (`EEXIST`, `ENOSPC`, ...)
 */
export function nativeMkdirat(dirfd: number, name: NativePath, mode: number): void {
  const b = load();
  try {
    b.mkdirat(dirfd, name, mode);
  } catch (e) {
    throw convert(e, `mkdirat ${display(name)}`, { fd: dirfd, path: display(name) });
  }
}

/**
 * Creates a symlink relative to a directory (`symlinkat(2)`).
 *
 * @param target - what the link points to (stored as given, raw bytes allowed)
 * @param dirfd - an open directory descriptor, or {@link AT_FDCWD}
 * @param name - the new link's name
 * @throws TypeError on bad arguments; `ERR_IO` with `syscallCode` (`EEXIST`, ...)
 */
export function nativeSymlinkat(target: NativePath, dirfd: number, name: NativePath): void {
  const b = load();
  try {
    b.symlinkat(target, dirfd, name);
  } catch (e) {
    throw convert(e, `symlinkat ${display(name)}`, { fd: dirfd, path: display(name), target: display(target) });
  }
}

/**
 * Creates a hard link (`linkat(2)`).
 *
 * @param oldDirfd - the directory of the existing name, or {@link AT_FDCWD}
 * @param oldName - the existing name (empty with {@link AT_EMPTY_PATH}: `oldDirfd` itself)
 * @param newDirfd - the directory of the new name, or {@link AT_FDCWD}
 * @param newName - the new name
 * @param flags - 0, {@link AT_SYMLINK_FOLLOW} or {@link AT_EMPTY_PATH}
 * @throws TypeError on bad arguments; `ERR_IO` with `syscallCode` (`EEXIST`, `EXDEV`, `EMLINK`, ...)
 */
export function nativeLinkat(oldDirfd: number, oldName: NativePath, newDirfd: number, newName: NativePath, flags = 0): void {
  const b = load();
  try {
    b.linkat(oldDirfd, oldName, newDirfd, newName, flags);
  } catch (e) {
    throw convert(e, `linkat ${display(oldName)} ${display(newName)}`, { fd: newDirfd, path: display(newName), from: display(oldName) });
  }
}

/**
 * Creates a device node, FIFO or socket node relative to a directory (`mknodat(2)`); see
 * {@link nativeMknod} for the mode and the limits.
 *
 * @param dirfd - an open directory descriptor, or {@link AT_FDCWD}
 * @param name - the new node's name
 * @param mode - file type or'ed with the permission bits, in [0, 0o177777]
 * @param major - the device major number (0 for FIFOs and sockets)
 * @param minor - the device minor number (0 for FIFOs and sockets)
 * @throws TypeError on bad arguments; `ERR_IO` with `syscallCode` (`EEXIST`, `EPERM`, ...)
 */
export function nativeMknodat(dirfd: number, name: NativePath, mode: number, major: number, minor: number): void {
  const b = load();
  try {
    b.mknodat(dirfd, name, mode, major, minor);
  } catch (e) {
    throw convert(e, `mknodat ${display(name)}`, { fd: dirfd, path: display(name), mode, major, minor });
  }
}

/**
 * Removes a name relative to a directory (`unlinkat(2)`).
 *
 * @param dirfd - an open directory descriptor, or {@link AT_FDCWD}
 * @param name - the name to remove
 * @param flags - 0 for a non-directory, {@link AT_REMOVEDIR} for an empty directory
 * @throws TypeError on bad arguments; `ERR_IO` with `syscallCode` (`ENOENT`, `EISDIR`, `ENOTEMPTY`, ...)
 */
export function nativeUnlinkat(dirfd: number, name: NativePath, flags = 0): void {
  const b = load();
  try {
    b.unlinkat(dirfd, name, flags);
  } catch (e) {
    throw convert(e, `unlinkat ${display(name)}`, { fd: dirfd, path: display(name) });
  }
}

/**
 * Renames relative to directories (`renameat(2)`, or `renameat2(2)` when `flags` is not 0).
 *
 * @param oldDirfd - the directory of the old name, or {@link AT_FDCWD}
 * @param oldName - the old name
 * @param newDirfd - the directory of the new name, or {@link AT_FDCWD}
 * @param newName - the new name
 * @param flags - 0 (replace), {@link RENAME_NOREPLACE} or {@link RENAME_EXCHANGE}
 * @throws TypeError on bad arguments; `ERR_IO` with `syscallCode` (`EEXIST` under
 *   `RENAME_NOREPLACE`, `EXDEV`, `EINVAL` when the filesystem lacks the flag, ...)
 */
export function nativeRenameat(oldDirfd: number, oldName: NativePath, newDirfd: number, newName: NativePath, flags = 0): void {
  const b = load();
  try {
    b.renameat(oldDirfd, oldName, newDirfd, newName, flags);
  } catch (e) {
    throw convert(e, `renameat ${display(oldName)} ${display(newName)}`, { fd: newDirfd, path: display(newName), from: display(oldName) });
  }
}

/**
 * Reads a symlink relative to a directory (`readlinkat(2)`), whatever its length.
 *
 * @param dirfd - an open directory descriptor, or {@link AT_FDCWD}
 * @param name - the link's name (empty: `dirfd` itself, an `O_PATH|O_NOFOLLOW` descriptor of the link)
 * @returns the target as raw bytes
 * @throws TypeError on bad arguments; `ERR_IO` with `syscallCode` (`EINVAL` when not a symlink, ...)
 */
export function nativeReadlinkat(dirfd: number, name: NativePath): Buffer {
  const b = load();
  try {
    return b.readlinkat(dirfd, name);
  } catch (e) {
    throw convert(e, `readlinkat ${display(name)}`, { fd: dirfd, path: display(name) });
  }
}

/**
 * Changes the owner of a file relative to a directory (`fchownat(2)`).
 *
 * @param dirfd - an open directory descriptor, or {@link AT_FDCWD}
 * @param name - the file's name
 * @param uid - the new owner (0xffffffff: unchanged)
 * @param gid - the new group (0xffffffff: unchanged)
 * @param flags - 0 or {@link AT_SYMLINK_NOFOLLOW} (and {@link AT_EMPTY_PATH})
 * @throws TypeError on bad arguments; `ERR_IO` with `syscallCode` (`EPERM`, ...)
 */
export function nativeFchownat(dirfd: number, name: NativePath, uid: number, gid: number, flags: number): void {
  const b = load();
  try {
    b.fchownat(dirfd, name, uid, gid, flags);
  } catch (e) {
    throw convert(e, `fchownat ${display(name)}`, { fd: dirfd, path: display(name), uid, gid });
  }
}

/**
 * Sets a file's access and modification times, nanosecond exact, relative to a directory
 * (`utimensat(2)`).
 *
 * @param dirfd - an open directory descriptor, or {@link AT_FDCWD}
 * @param name - the file's name
 * @param atimeNs - the access time, nanoseconds since the epoch (an int64 BigInt)
 * @param mtimeNs - the modification time, nanoseconds since the epoch
 * @param flags - 0 or {@link AT_SYMLINK_NOFOLLOW} (and {@link AT_EMPTY_PATH})
 * @throws TypeError on bad arguments; `ERR_IO` with `syscallCode` (`EPERM`, `EINVAL`, ...)
 */
export function nativeUtimensat(dirfd: number, name: NativePath, atimeNs: bigint, mtimeNs: bigint, flags: number): void {
  const b = load();
  try {
    b.utimensat(dirfd, name, atimeNs, mtimeNs, flags);
  } catch (e) {
    throw convert(e, `utimensat ${display(name)}`, { fd: dirfd, path: display(name) });
  }
}

/**
 * Sets an open file's access and modification times, nanosecond exact (`futimens(2)`).
 *
 * @param fd - an open descriptor
 * @param atimeNs - the access time, nanoseconds since the epoch (an int64 BigInt)
 * @param mtimeNs - the modification time, nanoseconds since the epoch
 * @throws TypeError on bad arguments; `ERR_IO` with `syscallCode` (`EBADF`, `EPERM`, ...)
 */
export function nativeFutimens(fd: number, atimeNs: bigint, mtimeNs: bigint): void {
  const b = load();
  try {
    b.futimens(fd, atimeNs, mtimeNs);
  } catch (e) {
    throw convert(e, 'futimens', { fd });
  }
}

/**
 * Changes an open file's permission bits (`fchmod(2)`).
 *
 * @param fd - an open descriptor (not `O_PATH`)
 * @param mode - the permission bits, in [0, 0o7777]
 * @throws TypeError on bad arguments; `ERR_IO` with `syscallCode` (`EBADF`, `EPERM`, ...)
 */
export function nativeFchmod(fd: number, mode: number): void {
  const b = load();
  try {
    b.fchmod(fd, mode);
  } catch (e) {
    throw convert(e, 'fchmod', { fd, mode });
  }
}

/**
 * Changes an open file's owner (`fchown(2)`).
 *
 * @param fd - an open descriptor (not `O_PATH`)
 * @param uid - the new owner (0xffffffff: unchanged)
 * @param gid - the new group (0xffffffff: unchanged)
 * @throws TypeError on bad arguments; `ERR_IO` with `syscallCode` (`EBADF`, `EPERM`, ...)
 */
export function nativeFchown(fd: number, uid: number, gid: number): void {
  const b = load();
  try {
    b.fchown(fd, uid, gid);
  } catch (e) {
    throw convert(e, 'fchown', { fd, uid, gid });
  }
}

/**
 * Lists the extended attribute names of an open file (`flistxattr(2)`); like
 * {@link nativeListXattrs}, `ENOTSUP` gives an empty list.
 *
 * @param fd - an open descriptor (not `O_PATH`: that fails with `EBADF`)
 * @returns the names as raw bytes
 * @throws TypeError on a bad fd; `ERR_IO` with `syscallCode` when the call fails
 */
export function nativeFlistxattr(fd: number): Buffer[] {
  const b = load();
  try {
    return b.flistxattr(fd);
  } catch (e) {
    throw convert(e, 'flistxattr', { fd });
  }
}

/**
 * Reads one extended attribute of an open file (`fgetxattr(2)`).
 *
 * @param fd - an open descriptor (not `O_PATH`)
 * @param name - the full attribute name (`user.comment`)
 * @returns the value
 * @throws TypeError on bad arguments; `ERR_IO` with `syscallCode` `ENODATA` when there is no such
 *   attribute, or another code
 */
export function nativeFgetxattr(fd: number, name: NativePath): Buffer {
  const b = load();
  try {
    return b.fgetxattr(fd, name);
  } catch (e) {
    throw convert(e, `fgetxattr ${display(name)}`, { fd, xattr: display(name) });
  }
}

/**
 * Creates or replaces one extended attribute of an open file (`fsetxattr(2)`, flags 0).
 *
 * @param fd - an open descriptor (not `O_PATH`)
 * @param name - the full attribute name (`user.comment`)
 * @param value - the value (may be empty)
 * @throws TypeError on bad arguments; `ERR_IO` with `syscallCode` (`EPERM`, `ENOTSUP`, `ENOSPC`, ...)
 */
export function nativeFsetxattr(fd: number, name: NativePath, value: Uint8Array): void {
  const b = load();
  try {
    b.fsetxattr(fd, name, value);
  } catch (e) {
    throw convert(e, `fsetxattr ${display(name)}`, { fd, xattr: display(name) });
  }
}

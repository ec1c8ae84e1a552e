/**
 * The storage contract (layer L2): bytes at keys, shaped like an object store.
 *
 * A backend knows nothing of chunks or snapshots. Keys are relative paths with `/` separators and
 * safe components (no `..`, no `.`, no empty components); the layers above build them (see
 * FORMAT.md, "Datastore layout"). Read BACKENDS.md beside this file before adding a backend.
 *
 * The contract every implementation keeps (test/backend/conformance.ts checks it for each one):
 * - `put` stores a whole value. With the `atomicPut` capability a reader sees the old value or the
 *   whole new value, never a part; with `sync`, the value is on stable storage when `put` resolves.
 * - `get` reads a value or a byte range of it (a range past the end is cut at the end).
 * - `stat` reports a key's size and modification time; undefined when the key does not exist.
 * - `touch` sets the modification time of an existing key and reports a missing one with `false`,
 *   never by creating it: the chunk store's dedup protocol and the GC depend on that.
 * - `delete` removes a key; false when it did not exist.
 * - `list(prefix)` yields every key below the prefix (`prefix/…`, recursively, flat) once, with
 *   its size and modification time, in no promised order; a missing prefix yields nothing.
 * - `close` releases what the backend holds; no call is made after it.
 * - Errors are {@link CairnError}s: `ERR_NOT_FOUND` for a missing key where one is required, and
 *   `ERR_IO` for everything else, with `details.retryable` true when the same call may succeed if
 *   repeated (a timeout, a throttled request) and the OS code (`syscallCode`) where there is one.
 *
 * What a backend can do beyond that it declares in {@link BackendCapabilities}; the two optional
 * interfaces ({@link LocalFilesBackend}, {@link RenamingBackend}) are reached through
 * {@link localFilesOf} and {@link renamingOf}, and the code above has a path for backends without
 * them (lib/datastore/keyspace.ts).
 */

import type { ErrorCode } from '../errors.js';

/**
 * What {@link Backend.stat} reports.
 * @category Backends
 */
export interface BackendStat {
  /** Size in bytes. */
  readonly size: number;
  /** Modification time, milliseconds since the epoch. */
  readonly mtimeMs: number;
  /** True for a real directory (a key prefix of a backend with local files); false otherwise. */
  readonly isDirectory: boolean;
  /**
   * What the key is: `file` for a stored value. A backend with local files also reports a real
   * directory, a symlink (never followed) or anything else (FIFO, device, socket).
   */
  readonly type: 'file' | 'directory' | 'symlink' | 'other';
}

/**
 * One key yielded by {@link Backend.list}.
 * @category Backends
 */
export interface ListEntry {
  /** The whole key. */
  readonly key: string;
  /** Size in bytes. */
  readonly size: number;
  /** Modification time, milliseconds since the epoch. */
  readonly mtimeMs: number;
}

/**
 * Options of {@link Backend.list}.
 * @category Backends
 */
export interface ListOptions {
  /** Stops the listing with `ERR_ABORTED`. */
  readonly signal?: AbortSignal;
}

/**
 * Options of {@link Backend.get}.
 * @category Backends
 */
export interface GetOptions {
  /** Fail when the stored value (or the range asked for) is larger than this, before reading it. */
  readonly maxBytes?: number;
  /**
   * The code of the error for a key that is not a stored value (a symlink, FIFO, device or
   * directory of a local backend) or is larger than `maxBytes`: the corrupt code of the file kind
   * the caller reads.
   * @defaultValue 'ERR_IO'
   */
  readonly code?: ErrorCode;
}

/**
 * Options of {@link Backend.put}.
 * @category Backends
 */
export interface PutOptions {
  /** Push the data (and a local directory entry) to stable storage before resolving. */
  readonly sync?: boolean;
}

/**
 * A byte range.
 * @category Backends
 */
export interface ByteRange {
  /** First byte. */
  readonly offset: number;
  /** Number of bytes. */
  readonly length: number;
}

/**
 * What a backend can do beyond the contract's minimum.
 * @category Backends
 */
export interface BackendCapabilities {
  /** `put` replaces a value atomically (readers see the old or the whole new value). */
  readonly atomicPut: boolean;
  /** `touch` sets the modification time that `stat` and `list` report (the GC's protocol needs it). */
  readonly touch: boolean;
  /** Keys are files in a local directory: the backend is a {@link LocalFilesBackend}. */
  readonly localFiles: boolean;
  /** A key or a whole prefix can be renamed in one step: the backend is a {@link RenamingBackend}. */
  readonly rename: boolean;
}

/**
 * Bytes at keys. See the module comment for the contract.
 * @category Backends
 */
export interface Backend {
  /** A human-readable location (a directory path for the local backend). */
  readonly location: string;
  /** What this backend can do beyond the contract's minimum. */
  readonly capabilities: BackendCapabilities;
  /** A human-readable location of one key, for messages (a file path for the local backend). */
  locate(key: string): string;
  /** Stores `data` (one buffer or several, in order) at `key`, replacing what was there. */
  put(key: string, data: Uint8Array | readonly Uint8Array[], options?: PutOptions): Promise<void>;
  /**
   * Reads a key, or a range of it.
   * @throws `ERR_NOT_FOUND` when missing; `options.code` when the key is not a stored value or is
   *   larger than `options.maxBytes`.
   */
  get(key: string, range?: ByteRange, options?: GetOptions): Promise<Uint8Array>;
  /** Stats a key; undefined when missing. */
  stat(key: string): Promise<BackendStat | undefined>;
  /** Sets the modification time of an existing key; false when the key does not exist (never creates it). */
  touch(key: string, timeMs: number): Promise<boolean>;
  /** Deletes a key; false when it did not exist. */
  delete(key: string): Promise<boolean>;
  /** Every key below `prefix` (`''`: every key), recursively, with size and modification time. */
  list(prefix: string, options?: ListOptions): AsyncIterable<ListEntry>;
  /** Releases what the backend holds. */
  close(): Promise<void>;
}

/**
 * The directory operations of a backend whose keys are files in a local directory (capability
 * `localFiles`). Code above the backend uses them only through {@link localFilesOf}, with a path
 * for backends without them.
 * @category Backends
 */
export interface LocalFilesBackend extends Backend {
  /** The file path of a key. */
  pathOf(key: string): string;
  /** Creates a directory prefix and its parents. */
  mkdir(prefix: string): Promise<void>;
  /** Removes an empty directory prefix; false when it was missing or not empty. */
  rmdir(prefix: string): Promise<boolean>;
  /** Names directly below a directory prefix (not recursive), sorted; empty when it does not exist. */
  listNames(prefix: string): Promise<string[]>;
  /** Removes a directory prefix and everything below it, following nothing; false when missing. */
  removeTree(prefix: string): Promise<boolean>;
  /**
   * Removes a directory that holds only files, `first` first; false when missing or when something
   * appeared in it meanwhile.
   */
  removeFileDir(prefix: string, first?: string): Promise<boolean>;
  /** Pushes everything written so far to stable storage (one syncfs). */
  syncAll(): Promise<void>;
}

/**
 * A backend that renames a key or a whole prefix in one step (capability `rename`).
 * @category Backends
 */
export interface RenamingBackend extends Backend {
  /** Renames a key or a directory prefix, replacing a value (or an empty directory) at `to`. */
  rename(from: string, to: string, options?: { sync?: boolean }): Promise<void>;
}

/**
 * The backend as a {@link LocalFilesBackend} when it declares local files, else undefined.
 * @category Backends
 */
export function localFilesOf(backend: Backend): LocalFilesBackend | undefined {
  return backend.capabilities.localFiles ? (backend as LocalFilesBackend) : undefined;
}

/**
 * The backend as a {@link RenamingBackend} when it declares renames, else undefined.
 * @category Backends
 */
export function renamingOf(backend: Backend): RenamingBackend | undefined {
  return backend.capabilities.rename ? (backend as RenamingBackend) : undefined;
}

/**
 * Checks a backend key: relative, `/`-separated, no empty, `.` or `..` component.
 * @throws TypeError for a key that is not (keys are built by Cairn: a bad one is a bug)
 * @category Backends
 */
export function assertKey(key: string, allowEmpty = false): void {
  if (key === '' && allowEmpty) return;
  if (key === '' || key.startsWith('/') || key.endsWith('/') || key.split('/').some((c) => c === '' || c === '.' || c === '..')) {
    throw new TypeError(`unsafe backend key '${key}'`);
  }
}

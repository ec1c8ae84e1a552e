/**
 * The storage contract (layer L2): bytes at keys.
 *
 * A backend knows nothing of chunks or snapshots. Keys are relative paths with `/` separators and
 * safe components (no `..`, no empty components); the layers above build them.
 *
 * Contract every implementation keeps:
 * - `put` is atomic: a reader sees the old value, or the whole new value, never a part. With
 *   `sync`, the value is on stable storage when `put` resolves (file and directory entry).
 * - `touch` sets the modification time of an existing key and reports a missing one with `false`
 *   (never by creating it): the chunk store's dedup protocol depends on that.
 * - `rename` replaces the target atomically; `link` never replaces (fails with `ERR_EXISTS`).
 * - Errors are {@link CairnError}s: `ERR_NOT_FOUND` for a missing key where one is required, and
 *   `ERR_IO` with the OS code (`syscallCode`) for everything else.
 */

/** What {@link Backend.stat} reports. */
export interface BackendStat {
  /** Size in bytes. */
  readonly size: number;
  /** Modification time, milliseconds since the epoch. */
  readonly mtimeMs: number;
  /** True for a directory (a key prefix). */
  readonly isDirectory: boolean;
}

/** Options of {@link Backend.put}. */
export interface PutOptions {
  /** Push the data and the directory entry to stable storage before resolving. */
  readonly sync?: boolean;
}

/** A byte range. */
export interface ByteRange {
  /** First byte. */
  readonly offset: number;
  /** Number of bytes. */
  readonly length: number;
}

/** Bytes at keys. See the module comment for the contract. */
export interface Backend {
  /** A human-readable location (a directory path for the local backend). */
  readonly location: string;
  /** Atomically stores `data` (one buffer or several, written in order) at `key`. */
  put(key: string, data: Uint8Array | readonly Uint8Array[], options?: PutOptions): Promise<void>;
  /** Reads a key, or a range of it. @throws `ERR_NOT_FOUND` when missing. */
  get(key: string, range?: ByteRange): Promise<Uint8Array>;
  /** Stats a key; undefined when missing. */
  stat(key: string): Promise<BackendStat | undefined>;
  /** Sets the modification time of an existing key; false when the key does not exist. */
  touch(key: string, timeMs: number): Promise<boolean>;
  /** Names directly below a prefix (not recursive); empty when the prefix does not exist. */
  list(prefix: string): Promise<string[]>;
  /** Deletes a key; false when it did not exist. */
  delete(key: string): Promise<boolean>;
  /**
   * The local file path of a key when this backend keeps keys as local files, else undefined
   * (readers then fall back to {@link Backend.get}).
   */
  localPath(key: string): string | undefined;
  /** Renames a key, replacing the target atomically. */
  rename(from: string, to: string, options?: { sync?: boolean }): Promise<void>;
  /** Creates a directory prefix and its parents. */
  mkdir(prefix: string): Promise<void>;
  /** Removes an empty directory prefix; false when it was missing or not empty. */
  rmdir(prefix: string): Promise<boolean>;
  /** Pushes everything written so far to stable storage. */
  syncAll(): Promise<void>;
}

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
 * - Nothing is followed through a symlink: `stat` reports the key itself, `get` reads regular files
 *   only, `list` and `removeTree` refuse a prefix that is a symlink, and a key whose directories on
 *   the way include a symlink fails with `ERR_UNSAFE_PATH` (something was planted in the datastore).
 */

import type { ErrorCode } from '../errors.js';

/** What {@link Backend.stat} reports (of the key itself: a symlink is reported, never followed). */
export interface BackendStat {
  /** Size in bytes. */
  readonly size: number;
  /** Modification time, milliseconds since the epoch. */
  readonly mtimeMs: number;
  /** True for a real directory (a key prefix); false for a symlink to one. */
  readonly isDirectory: boolean;
  /** What the key is: a regular file, a real directory, a symlink, or anything else (FIFO, device, socket). */
  readonly type: 'file' | 'directory' | 'symlink' | 'other';
}

/** Options of {@link Backend.get}. */
export interface GetOptions {
  /** Fail when the stored value is larger than this (the format's maximum size), before reading it. */
  readonly maxBytes?: number;
  /**
   * The code of the error for a key that is not a regular file (a symlink, FIFO, device or
   * directory) or is larger than `maxBytes`: the corrupt code of the file kind the caller reads.
   * @defaultValue 'ERR_IO'
   */
  readonly code?: ErrorCode;
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
  /**
   * Reads a key, or a range of it. Only a regular file is read, never through a symlink.
   * @throws `ERR_NOT_FOUND` when missing; `options.code` when the key is not a regular file or is
   *   larger than `options.maxBytes`; `ERR_UNSAFE_PATH` when a directory on the way is a symlink.
   */
  get(key: string, range?: ByteRange, options?: GetOptions): Promise<Uint8Array>;
  /** Stats a key; undefined when missing. */
  stat(key: string): Promise<BackendStat | undefined>;
  /** Sets the modification time of an existing key; false when the key does not exist. */
  touch(key: string, timeMs: number): Promise<boolean>;
  /** Names directly below a prefix (not recursive); empty when the prefix does not exist. */
  list(prefix: string): Promise<string[]>;
  /** Deletes a key; false when it did not exist. */
  delete(key: string): Promise<boolean>;
  /**
   * Removes a prefix and everything below it. Nothing below is followed: the whole tree is checked
   * first, and a symlink, FIFO, device or socket anywhere in it fails the call with
   * `ERR_UNSAFE_PATH` naming it, before anything in that directory is removed. False when the
   * prefix did not exist.
   */
  removeTree(prefix: string): Promise<boolean>;
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

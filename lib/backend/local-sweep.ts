/**
 * The file-system side of the garbage collector's sweep on the local backend (layer L2): the calls
 * the chunk store's local sweep (../store/chunk-sweep.ts, which decides what goes) makes on a shard
 * directory, and the removal of stale temp files in the datastore's other directories.
 *
 * The calls are synchronous, one shard directory at a time: on a VM an awaited `fs.promises` call
 * costs a thread-pool round trip (≈ 50 µs measured) against ≈ 3 µs for `statSync`, and a sweep makes
 * one to four calls per chunk file; the caller yields to the event loop every few hundred files.
 * Deletes alone go to the thread pool ({@link Unlinker}). Nothing is followed through a symlink: a
 * shard that is a symlink fails with `ERR_UNSAFE_PATH`, and entries are `lstat`ed.
 */
import fs from 'node:fs';
import path from 'node:path';
import { isCairnError, syscallCode } from '../errors.js';
import { isTempFileName } from '../util/temp-name.js';
import { unsafeEntry } from './local.js';
import type { LocalFilesBackend } from './backend.js';

/** What {@link LocalSweepDir.stat} reports of an entry. */
export interface SweepStat {
  /** Size in bytes. */
  readonly size: number;
  /** Modification time, ms since the epoch. */
  readonly mtimeMs: number;
  /** True for a regular file. */
  readonly isFile: boolean;
}

/**
 * The names in a directory the sweep walks, or undefined when it does not exist (or is not a
 * directory on the way). A directory that is a symlink is never listed: it is not the datastore's
 * (the chunk shards are created with it), and following it would delete files elsewhere.
 * @throws `ERR_UNSAFE_PATH` for a symlink (or other non-directory) where a directory belongs.
 */
function listRealDir(dir: string): string[] | undefined {
  const st = fs.lstatSync(dir, { throwIfNoEntry: false });
  if (st === undefined) return undefined;
  if (!st.isDirectory()) throw unsafeEntry(dir, st.isSymbolicLink() ? 'a symlink' : 'not a directory');
  try {
    return fs.readdirSync(dir);
  } catch (e) {
    if (syscallCode(e) === 'ENOENT' || syscallCode(e) === 'ENOTDIR') return undefined;
    throw e;
  }
}

/** lstat (a planted symlink is never followed); undefined when missing. */
function statOrUndefined(p: string): SweepStat | undefined {
  const st = fs.lstatSync(p, { throwIfNoEntry: false });
  return st === undefined ? undefined : { size: st.size, mtimeMs: st.mtimeMs, isFile: st.isFile() };
}

function unlinkQuiet(p: string): void {
  try {
    fs.unlinkSync(p);
  } catch (e) {
    if (syscallCode(e) !== 'ENOENT') throw e;
  }
}

/**
 * One directory of a local datastore as the sweep sees it: entries by name, synchronous calls (see
 * the module comment). Errors are the `node:fs` ones (the caller gives them the datastore's code),
 * except `ERR_UNSAFE_PATH` for a directory that is not a real one.
 */
export class LocalSweepDir {
  /** The directory's path. */
  readonly path: string;

  /** @param backend - the local backend; @param key - the directory's key (a chunk shard) */
  constructor(backend: LocalFilesBackend, key: string) {
    this.path = backend.pathOf(key);
  }

  /** The names in the directory; undefined when it does not exist. @throws `ERR_UNSAFE_PATH` when it is not a real directory */
  list(): string[] | undefined {
    return listRealDir(this.path);
  }

  /** lstat of an entry (nothing followed); undefined when missing. */
  stat(name: string): SweepStat | undefined {
    return statOrUndefined(path.join(this.path, name));
  }

  /** Unlinks an entry now; a missing one is fine. */
  unlink(name: string): void {
    unlinkQuiet(path.join(this.path, name));
  }

  /**
   * Renames an entry to another name in the directory.
   * @returns false when the entry no longer exists (quarantined or removed meanwhile)
   */
  renameAside(name: string, aside: string): boolean {
    try {
      fs.renameSync(path.join(this.path, name), path.join(this.path, aside));
      return true;
    } catch (e) {
      if (syscallCode(e) === 'ENOENT') return false;
      throw e;
    }
  }

  /**
   * Puts an aside file back under its original name without overwriting (`link()`; a writer that
   * re-created the name meanwhile wins), then removes the aside name.
   */
  putBack(aside: string, original: string): void {
    try {
      fs.linkSync(path.join(this.path, aside), path.join(this.path, original));
    } catch (e) {
      // EEXIST: a writer re-created the chunk meanwhile; its copy wins.
      if (syscallCode(e) !== 'EEXIST') throw e;
    }
    unlinkQuiet(path.join(this.path, aside));
  }

  /** Queues an entry for deletion on `unlinker`. */
  unlinkLater(name: string, unlinker: Unlinker): void {
    unlinker.add(path.join(this.path, name));
  }
}

/**
 * Removes the temp files older than the cutoff directly in the directory `key`: regular files whose
 * names {@link isTempFileName} recognises (`.<name>.tmp-<pid>-<n>`), never a committed file whose
 * legal name merely contains `.tmp-` (`disk.tmp-1.img.fidx`). A directory that is a symlink is
 * skipped: the mark phase has already failed on it, or it is not the datastore's.
 * @returns how many were removed (or, with `dryRun`, would be)
 */
export function removeStaleTempFiles(backend: LocalFilesBackend, key: string, cutoffMs: number, dryRun: boolean): number {
  const dir = backend.pathOf(key);
  let names: string[] | undefined;
  try {
    names = listRealDir(dir);
  } catch (e) {
    if (isCairnError(e, 'ERR_UNSAFE_PATH')) return 0;
    throw e;
  }
  let removed = 0;
  for (const name of names ?? []) {
    if (!isTempFileName(name)) continue;
    const p = path.join(dir, name);
    const st = statOrUndefined(p);
    if (st !== undefined && st.isFile && st.mtimeMs < cutoffMs) {
      if (!dryRun) unlinkQuiet(p);
      removed++;
    }
  }
  return removed;
}

/**
 * Deletes files on the thread pool, a bounded number at a time, while the sweep goes on. Measured on
 * ext4 (2-core VM): an `unlinkSync` of a chunk file costs ≈ 110 µs, most of it waiting, against
 * ≈ 45 µs each with 16 in flight; the sweep's other calls (stat, rename) stay synchronous and overlap
 * with the deletes. A delete that fails leaves an aside file the next GC removes; the first such
 * error is reported when the sweep ends.
 */
export class Unlinker {
  private queue: string[] = [];
  private head = 0;
  private inFlight = 0;
  private error: unknown;
  private waiters: (() => void)[] = [];

  /** @param limit - deletes in flight at most */
  constructor(private readonly limit: number) {}

  /** Deletes queued or in flight. */
  get pending(): number {
    return this.queue.length - this.head + this.inFlight;
  }

  /** Queues a file path for deletion. */
  add(p: string): void {
    this.queue.push(p);
    this.pump();
  }

  private pump(): void {
    while (this.inFlight < this.limit && this.head < this.queue.length) {
      const p = this.queue[this.head++]!;
      if (this.head > 4096 && this.head * 2 > this.queue.length) {
        this.queue = this.queue.slice(this.head);
        this.head = 0;
      }
      this.inFlight++;
      fs.promises
        .unlink(p)
        .catch((e: unknown) => {
          if (syscallCode(e) !== 'ENOENT' && this.error === undefined) this.error = e;
        })
        .finally(() => {
          this.inFlight--;
          this.pump();
          for (const w of this.waiters.splice(0)) w();
        });
    }
  }

  /** Waits until at most `n` deletes are pending. */
  async below(n: number): Promise<void> {
    while (this.pending > n) await new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  /** Waits for every delete; throws the first failure. */
  async drain(): Promise<void> {
    await this.below(0);
    if (this.error !== undefined) throw this.error;
  }
}

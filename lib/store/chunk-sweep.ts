/**
 * The sweep of the garbage collector (layer L3): which chunks go, given the mark and the cutoff
 * that the collector (../maintenance/gc.ts, which keeps the lock, the cutoff, the mark and the
 * argument that they are safe) hands over. Two ways, chosen by the backend's capabilities:
 *
 * **Local files** (the local backend, through its adapter ../backend/local-sweep.ts): DESIGN.md §5
 * as written. Shard by shard, an unmarked chunk whose mtime is older than the cutoff is renamed
 * aside (`<digest>.gc-<pid>`), its mtime is checked again (a writer may have touched it just before
 * the rename), and it is then deleted, or put back with `link()` (which never overwrites a copy a
 * writer re-created meanwhile). A writer's touch after the rename finds no chunk (ENOENT) and writes
 * it again; a touch before the rename shows in the re-check. There is no window. Aside files left
 * by a killed GC, quarantined `.bad` copies and stale temp files of killed writers are handled here
 * too (see {@link sweepLocal}).
 *
 * **Any other backend** (no renames, no links: an object store, the memory backend): list the
 * chunk keys, and for each unmarked one with an mtime older than the cutoff, stat it again right
 * before deleting it and delete it only if it is still older. See {@link sweepGeneric} for the
 * window this leaves and why it is acceptable for now.
 */
import { throwIfAborted } from '../errors.js';
import { localFilesOf, type Backend, type LocalFilesBackend } from '../backend/backend.js';
import { LocalSweepDir, Unlinker } from '../backend/local-sweep.js';
import { isTempFileName } from '../util/temp-name.js';
import { CHUNK_DIR, chunkKey, shardKeys } from './chunk-keys.js';

/** Progress of a sweep: shard directories done of 256 (local files), or chunk keys looked at (no total, any other backend). */
export interface SweepProgress {
  /** Shard directories swept, or chunk keys looked at. */
  readonly done: number;
  /** 256 on local files; absent elsewhere (a listing has no known length). */
  readonly total?: number;
}

/** Options of {@link ChunkStore.sweep}. */
export interface SweepOptions {
  /** True for a digest (64 lowercase hex) that a finished snapshot references: it stays. */
  readonly isMarked: (digestHex: string) => boolean;
  /** An unmarked chunk goes when its mtime is before this, ms since the epoch. */
  readonly cutoffMs: number;
  /** A stale temp file in a shard goes when its mtime is before this, ms since the epoch. */
  readonly tempCutoffMs: number;
  /** Count what would go; change nothing. */
  readonly dryRun?: boolean;
  /** Stops the sweep with `ERR_ABORTED` (chunks already removed stay removed). */
  readonly signal?: AbortSignal;
  /** Called with progress. */
  readonly onProgress?: (p: SweepProgress) => void;
}

/** What a sweep found and did (the sweep's part of the GC report). */
export interface SweepReport {
  /** Marked chunks present. */
  diskChunks: number;
  /** Their stored bytes. */
  diskBytes: number;
  /** Unmarked chunks removed (or, in a dry run, removable). */
  removedChunks: number;
  /** Their bytes. */
  removedBytes: number;
  /** Unmarked chunks kept because their mtime is not older than the cutoff. */
  pendingChunks: number;
  /** Their bytes. */
  pendingBytes: number;
  /** `.bad` copies kept (the digest is marked and no good copy exists). */
  badChunks: number;
  /** `.bad` copies removed. */
  removedBad: number;
  /** Stale temp files removed from the shards. */
  removedTemp: number;
}

/** An empty {@link SweepReport}. */
export function emptySweepReport(): SweepReport {
  return { diskChunks: 0, diskBytes: 0, removedChunks: 0, removedBytes: 0, pendingChunks: 0, pendingBytes: 0, badChunks: 0, removedBad: 0, removedTemp: 0 };
}

const CHUNK_NAME = /^[0-9a-f]{64}$/;
const BAD_NAME = /^([0-9a-f]{64})\.\d+\.bad$/;
const ASIDE_NAME = /^([0-9a-f]{64})\.gc-\d+$/;

/**
 * Entries handled between two yields to the event loop. The local sweep's calls are synchronous
 * (../backend/local-sweep.ts says why); a batch holds the event loop for a few milliseconds at most.
 */
const SWEEP_BATCH = 512;
/** Deletes in flight during the local sweep. */
const UNLINK_CONCURRENCY = 16;
/** Deletes queued before the local sweep waits for them (bounds the queue's memory). */
const UNLINK_BACKLOG = 8192;

/** Sweeps the chunks of `backend` the way its capabilities allow (see the module comment). */
export async function sweepChunks(backend: Backend, options: SweepOptions): Promise<SweepReport> {
  const local = localFilesOf(backend);
  return local === undefined ? sweepGeneric(backend, options) : sweepLocal(local, options);
}

/**
 * The sweep of a backend with local files: the 256 shard directories one by one, synchronous
 * calls with a yield every {@link SWEEP_BATCH} entries, deletes on the thread pool. Per digest:
 * - an aside file of a killed GC (`<digest>.gc-<pid>`) is put back when no chunk file exists and
 *   the digest is marked or the aside is not older than the cutoff, else deleted (and counted
 *   removed when no chunk file exists);
 * - the chunk file: marked → kept; not older than the cutoff → pending; else renamed aside,
 *   re-checked, deleted or put back (see the module comment);
 * - `.bad` copies (renamed aside by verify) are kept while the digest is marked and no good chunk
 *   file exists, else deleted;
 * - a temp file of a killed writer older than `tempCutoffMs` is deleted.
 * @throws `ERR_UNSAFE_PATH` for a shard that is not a real directory; `node:fs` errors otherwise
 *   (the GC gives them the datastore's code)
 */
export async function sweepLocal(backend: LocalFilesBackend, options: SweepOptions): Promise<SweepReport> {
  const c = emptySweepReport();
  const shards = shardKeys();
  let done = 0;
  const unlinker = new Unlinker(UNLINK_CONCURRENCY);
  try {
    for (const shard of shards) {
      throwIfAborted(options.signal);
      await sweepShard(new LocalSweepDir(backend, shard), options, c, unlinker);
      options.onProgress?.({ done: ++done, total: shards.length });
    }
  } finally {
    await unlinker.below(0);
  }
  await unlinker.drain();
  return c;
}

interface ShardEntry {
  chunk: boolean;
  bads: string[];
  asides: string[];
}

async function sweepShard(dir: LocalSweepDir, o: SweepOptions, c: SweepReport, unlinker: Unlinker): Promise<void> {
  const names = dir.list();
  if (names === undefined) return;
  const dryRun = o.dryRun === true;
  const byHex = new Map<string, ShardEntry>();
  const entry = (hex: string): ShardEntry => {
    let x = byHex.get(hex);
    if (x === undefined) byHex.set(hex, (x = { chunk: false, bads: [], asides: [] }));
    return x;
  };
  for (const name of names) {
    let m: RegExpExecArray | null;
    if (CHUNK_NAME.test(name)) entry(name).chunk = true;
    else if ((m = BAD_NAME.exec(name)) !== null) entry(m[1]!).bads.push(name);
    else if ((m = ASIDE_NAME.exec(name)) !== null) entry(m[1]!).asides.push(name);
    else if (isTempFileName(name)) {
      // A temp file of a crashed writer (a live writer's temp file is newer than the cutoff).
      const st = dir.stat(name);
      if (st !== undefined && st.isFile && st.mtimeMs < o.tempCutoffMs) {
        if (!dryRun) dir.unlink(name);
        c.removedTemp++;
      }
    }
  }
  let n = 0;
  for (const [hex, e] of byHex) {
    if (++n % SWEEP_BATCH === 0) {
      await yieldToLoop();
      if (unlinker.pending > UNLINK_BACKLOG) await unlinker.below(UNLINK_BACKLOG / 2);
      throwIfAborted(o.signal);
    }
    sweepEntry(dir, hex, e, o.isMarked(hex), o.cutoffMs, dryRun, c, unlinker);
  }
}

function sweepEntry(dir: LocalSweepDir, hex: string, e: ShardEntry, marked: boolean, cutoffMs: number, dryRun: boolean, c: SweepReport, unlinker: Unlinker): void {
  let chunk = e.chunk;

  // Leftovers of a GC killed between rename and delete/put-back.
  for (const name of e.asides) {
    const st = dir.stat(name);
    if (st === undefined) continue;
    if (!chunk && (marked || st.mtimeMs >= cutoffMs)) {
      if (!dryRun) dir.putBack(name, hex);
      chunk = true;
    } else {
      if (!dryRun) dir.unlink(name);
      if (!chunk) {
        c.removedChunks++;
        c.removedBytes += st.size;
      }
    }
  }

  let good = false;
  if (chunk) {
    const st = dir.stat(hex);
    if (st !== undefined) {
      if (marked) {
        c.diskChunks++;
        c.diskBytes += st.size;
        good = true;
      } else if (st.mtimeMs >= cutoffMs) {
        c.pendingChunks++;
        c.pendingBytes += st.size;
      } else if (dryRun) {
        c.removedChunks++;
        c.removedBytes += st.size;
      } else {
        removeChunk(dir, hex, cutoffMs, c, unlinker);
      }
    }
  }

  for (const name of e.bads) {
    const st = dir.stat(name);
    if (st === undefined) continue;
    if (marked && !good) {
      c.badChunks++;
    } else {
      if (!dryRun) dir.unlink(name);
      c.removedBad++;
    }
  }
}

/** Renames an unmarked old chunk aside, re-checks its mtime, and deletes it or puts it back. */
function removeChunk(dir: LocalSweepDir, hex: string, cutoffMs: number, c: SweepReport, unlinker: Unlinker): void {
  const aside = `${hex}.gc-${process.pid}`;
  if (!dir.renameAside(hex, aside)) return; // quarantined or removed meanwhile
  const st = dir.stat(aside);
  if (st === undefined) return;
  if (st.mtimeMs >= cutoffMs) {
    // A writer touched it (a dedup hit) just before the rename.
    dir.putBack(aside, hex);
    c.pendingChunks++;
    c.pendingBytes += st.size;
    return;
  }
  dir.unlinkLater(aside, unlinker);
  c.removedChunks++;
  c.removedBytes += st.size;
}

function yieldToLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * The sweep of a backend without local files: one listing of `.chunks`, and per key:
 * - a chunk (`.chunks/<2 hex>/<64 hex>`, in its own shard): marked → kept; listed mtime not older
 *   than the cutoff → pending; else (not in a dry run) stat again right before the delete, and
 *   delete it only if it is still older than the cutoff (pending otherwise; gone meanwhile: nothing
 *   counted);
 * - a `.bad` copy (quarantine's copy aside on a backend without renames): after the listing, kept
 *   while the digest is marked and no good chunk exists, else deleted;
 * - anything else is left alone (such a backend has no temp files and no aside files).
 *
 * **The window.** Between the re-stat and the delete, a writer's dedup hit on the chunk (a
 * successful touch: "the chunk exists, I will not write it") can still land, and the delete then
 * removes a chunk the writer's index is about to reference: the rename-aside of the local sweep,
 * which turns such a late touch into ENOENT (the writer writes the chunk again), has no equivalent
 * with puts and deletes only. The window is one backend round trip per removed chunk, and it is hit
 * only when a running backup dedups against a chunk that no finished snapshot references and that
 * has not been written or touched since before the cutoff (data that was pruned and comes back);
 * the re-stat closes the far larger window between the listing and the delete. That is acceptable
 * for now because no backend without local files holds a datastore in production yet: the memory
 * backend serves tests and short-lived datastores. What closes it before an object-store backend
 * ships (DESIGN.md §8): such a datastore is used by one host, whose writers and GC all go through
 * its local cache; the chunk store there records the digests the GC is about to delete in that
 * cache before the re-stat and treats a touch of such a digest as a miss (the writer uploads the
 * chunk again, create-only, after the delete), so no touch can fall between the re-stat and the
 * delete unseen.
 */
export async function sweepGeneric(backend: Backend, o: SweepOptions): Promise<SweepReport> {
  const c = emptySweepReport();
  const dryRun = o.dryRun === true;
  const bads: string[] = [];
  let seen = 0;
  throwIfAborted(o.signal);
  for await (const e of backend.list(CHUNK_DIR, o.signal === undefined ? {} : { signal: o.signal })) {
    if (++seen % SWEEP_BATCH === 0) {
      throwIfAborted(o.signal);
      o.onProgress?.({ done: seen });
    }
    const name = e.key.slice(e.key.lastIndexOf('/') + 1);
    const bad = BAD_NAME.exec(name);
    if (bad !== null) {
      if (e.key === `${chunkKey(bad[1]!)}${name.slice(64)}`) bads.push(e.key);
      continue;
    }
    if (!CHUNK_NAME.test(name) || e.key !== chunkKey(name)) continue;
    if (o.isMarked(name)) {
      c.diskChunks++;
      c.diskBytes += e.size;
    } else if (e.mtimeMs >= o.cutoffMs) {
      c.pendingChunks++;
      c.pendingBytes += e.size;
    } else if (dryRun) {
      c.removedChunks++;
      c.removedBytes += e.size;
    } else {
      // The window described above lies between this stat and the delete.
      const st = await backend.stat(e.key);
      if (st === undefined) continue; // quarantined or removed meanwhile
      if (st.mtimeMs >= o.cutoffMs) {
        c.pendingChunks++;
        c.pendingBytes += st.size;
      } else if (await backend.delete(e.key)) {
        c.removedChunks++;
        c.removedBytes += st.size;
      }
    }
  }
  for (const key of bads) {
    throwIfAborted(o.signal);
    const hex = key.slice(key.lastIndexOf('/') + 1, key.lastIndexOf('/') + 65);
    if (o.isMarked(hex) && (await backend.stat(chunkKey(hex))) === undefined) {
      c.badChunks++;
    } else {
      if (!dryRun) await backend.delete(key);
      c.removedBad++;
    }
  }
  o.onProgress?.({ done: seen });
  return c;
}

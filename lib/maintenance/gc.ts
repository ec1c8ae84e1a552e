/**
 * Garbage collection (layer L5): removes chunk files no finished snapshot references, following the
 * safety protocol of DESIGN.md §5 (PBS-NOTES.md §5.1–5.5), without PBS's 24-hour wait.
 *
 * - One GC at a time: an exclusive lock on `.locks/gc`.
 * - Cutoff = min(GC start, start of the oldest live writer) − skew. Writers touch (or write) every
 *   chunk they use except the chunks of their own shared-locked base snapshot, so a chunk a live or
 *   later writer uses has an mtime ≥ cutoff. The skew covers the filesystem's timestamp granularity
 *   and the lag of its clock behind the datastore clock; it is measured at each run (gc-skew.ts has
 *   the argument): about 0.1 s on a local filesystem, at least a minute on a network one.
 * - Mark: the digests of every index of every finished snapshot go into a compact in-memory set.
 * - Sweep, by the chunk store (`ChunkStore.sweep`, store/chunk-sweep.ts), given the mark and
 *   the cutoff: on local files an unmarked chunk whose mtime is older than the cutoff is renamed
 *   aside, its mtime is checked again (a writer may have touched it just before the rename), and it
 *   is then deleted, or put back with link() (never overwriting a chunk a writer re-created
 *   meanwhile); on a backend without local files it is stat'ed again and deleted if still older
 *   (chunk-sweep.ts documents the window that leaves). Stale temp files in the other directories
 *   of a local datastore go too (backend/local-sweep.ts).
 */
import { CairnError, isCairnError, throwIfAborted } from '../errors.js';
import { ioError } from '../errors.js';
import { localFilesOf } from '../backend/backend.js';
import { removeStaleTempFiles } from '../backend/local-sweep.js';
import { lockAt } from '../datastore/context.js';
import { oldestLiveWriter } from '../host/writer-registry.js';
import { drainMoveJournal } from '../datastore/move-journal.js';
import type { SweepReport } from '../store/chunk-store.js';
import { snapshotChunks } from '../datastore/snapshot-chunks.js';
import { sleep } from '../util/clock.js';
import { gcSkewOf, type GcSkew } from './gc-skew.js';
import type { Datastore } from '../datastore/datastore.js';
import type { BackupGroup } from '../datastore/group.js';
import type { Snapshot } from '../datastore/snapshot.js';

/**
 * Backend key of the GC lock file.
 * @category Garbage collection
 */
export const GC_LOCK_KEY = '.locks/gc';
/**
 * Backend key of the last GC report.
 * @category Garbage collection
 */
export const GC_STATUS_KEY = '.gc-status.json';
export { DEFAULT_GC_SKEW_MS } from './gc-skew.js';

/**
 * Minimum age of a stale temp file the GC removes when the skew is measured, ms. Temp files of
 * writers that do not register (manifest updates by verify, notes, protect, move markers) are not
 * covered by the writer cutoff; a minute leaves them the time a slow fsync can take. Nothing waits
 * for their removal. With an explicit skew the cutoff applies to them as well (as before).
 * @category Garbage collection
 */
export const STALE_TEMP_MIN_AGE_MS = 60_000;

/**
 * Progress of a GC run: snapshots marked (no total), then shard directories swept (of 256), or on a
 * backend without local files chunk keys looked at (no total).
 * @category Garbage collection
 */
export interface GcProgress {
  /** `mark` or `sweep`. */
  readonly phase: 'mark' | 'sweep';
  /** Snapshots marked, or shard directories swept (chunk keys looked at without local files). */
  readonly done: number;
  /** 256 in the sweep on local files; absent in the mark and elsewhere. */
  readonly total?: number;
}

/**
 * Options of {@link GarbageCollector.run}.
 * @category Garbage collection
 */
export interface GcOptions {
  /**
   * Allowance for timestamps recorded earlier than the datastore clock read, ms (≥ 0): the cutoff
   * is this far below the GC start (or the oldest live writer's start).
   * @defaultValue measured at each run ({@link gcSkewOf}): granularity + lag + 0.1 s on a local
   *   filesystem; at least {@link GcOptions.networkSkewMs} on a network or unknown one
   */
  readonly skewMs?: number;
  /**
   * Skew on a network filesystem (NFS, SMB, FUSE, 9p, …) and where the filesystem type cannot be
   * told, ms (≥ 0); the measured lag is added when it is larger. Ignored with `skewMs`.
   * @defaultValue 60 000
   */
  readonly networkSkewMs?: number;
  /**
   * Count what would be removed; change nothing (no status file either; the skew measurement's
   * probe temp file is created and removed at once).
   */
  readonly dryRun?: boolean;
  /** Stops the run with `ERR_ABORTED` (in the sweep, chunks already removed stay removed). */
  readonly signal?: AbortSignal;
  /** Called with progress. */
  readonly onProgress?: (p: GcProgress) => void;
  /**
   * **Test only**: interleaving hooks used by the test suite to force races. Not part of the
   * supported API; do not use in production code.
   * @internal
   */
  readonly hooks?: {
    /** Called after a group's snapshots were listed, before any of them is read. */
    readonly afterListGroup?: (ns: string, group: string) => Promise<void>;
    /** Called after the namespace walk, before the move journal is read. */
    readonly beforeDrain?: () => Promise<void>;
    /** Taken as the chunk directory's filesystem type instead of the detected one (`''`: unknown). */
    readonly fsType?: string;
  };
}

/**
 * What a GC run found and did; plain JSON (also written to `.gc-status.json`).
 * @category Garbage collection
 */
export interface GcReport {
  /** True for a dry run (counts are what would have been removed). */
  readonly dryRun: boolean;
  /** Start, RFC 3339 UTC. */
  readonly started: string;
  /** Start, ms since the epoch (datastore clock). */
  readonly startMs: number;
  /** End, RFC 3339 UTC. */
  readonly ended: string;
  /** End, ms since the epoch (datastore clock). */
  readonly endMs: number;
  /** Start of the oldest live writer at GC start, ms, when one ran. */
  readonly oldestWriterMs?: number;
  /** Chunks with an mtime before this (ms since the epoch) were removable. */
  readonly cutoffMs: number;
  /** The skew under the start (or the oldest writer's start) that gave the cutoff, ms. */
  readonly skewMs: number;
  /** Which skew and why: given, or measured on a local, network or unknown filesystem. */
  readonly skew: GcSkew;
  /** Stale temp files with an mtime before this (ms since the epoch) were removed. */
  readonly tempCutoffMs: number;
  /** Snapshots marked. */
  readonly snapshots: number;
  /** Index files read (an image has one, a tree two). */
  readonly indexFiles: number;
  /** Sum of the archive sizes of the marked snapshots (logical bytes). */
  readonly indexDataBytes: number;
  /** Chunk files in use (marked) after the run. */
  readonly diskChunks: number;
  /** Their stored bytes. */
  readonly diskBytes: number;
  /** Unmarked chunks removed (or, in a dry run, removable). */
  readonly removedChunks: number;
  /** Their bytes. */
  readonly removedBytes: number;
  /** Unmarked chunks kept because their mtime is not older than the cutoff. */
  readonly pendingChunks: number;
  /** Their bytes. */
  readonly pendingBytes: number;
  /** `.bad` copies kept (a snapshot needs the digest and no good copy exists). */
  readonly badChunks: number;
  /** `.bad` copies removed. */
  readonly removedBad: number;
  /** Stale temp files removed (of killed writers: in the chunk directories, the datastore root, namespace, group and snapshot directories). */
  readonly removedTemp: number;
  /** indexDataBytes / diskBytes (0 when nothing is on disk). */
  readonly dedupFactor: number;
  /** diskBytes / diskChunks (0 when nothing is on disk). */
  readonly averageChunkSize: number;
  /** Duration in seconds (wall time). */
  readonly seconds: number;
  /** Of which the mark phase (listing and reading indexes), seconds. */
  readonly markSeconds: number;
  /** Of which the sweep of the chunk directories, seconds. */
  readonly sweepSeconds: number;
}

/** Passes over one group before the GC gives up on a snapshot that stays locked for removal. */
const MAX_GROUP_PASSES = 1000;

/**
 * The mark set: the first 8 bytes of every referenced digest, as big-endian u64 values in a
 * growable BigUint64Array; sorted and deduplicated before the sweep, looked up by binary search.
 * 8 bytes per reference instead of a 64-char string per digest. Two digests that share their
 * first 64 bits are indistinguishable here: an unreferenced chunk may then be kept (garbage stays
 * one more run at worst), but a referenced chunk is never taken for unmarked, so a prefix collision
 * is safe.
 */
class MarkSet {
  private buf = new BigUint64Array(1 << 16);
  private n = 0;
  private sealed = false;

  add(digest: Uint8Array): void {
    if (this.n === this.buf.length) {
      const next = new BigUint64Array(this.buf.length * 2);
      next.set(this.buf);
      this.buf = next;
    }
    this.buf[this.n++] = prefixOf(digest);
    this.sealed = false;
  }

  /** Sorts and deduplicates. */
  seal(): void {
    const view = this.buf.subarray(0, this.n).sort();
    let w = 0;
    for (let r = 0; r < view.length; r++) {
      const v = view[r]!;
      if (w === 0 || view[w - 1] !== v) view[w++] = v;
    }
    this.n = w;
    this.sealed = true;
  }

  has(digestHex: string): boolean {
    if (!this.sealed) throw new Error('MarkSet.has before seal');
    const key = BigInt(`0x${digestHex.slice(0, 16)}`);
    let lo = 0;
    let hi = this.n - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const v = this.buf[mid]!;
      if (v === key) return true;
      if (v < key) lo = mid + 1;
      else hi = mid - 1;
    }
    return false;
  }
}

function prefixOf(digest: Uint8Array): bigint {
  return new DataView(digest.buffer, digest.byteOffset, 8).getBigUint64(0, false);
}

/** Index readers that expose their digests. */
interface DigestList {
  readonly count: number;
  digestAt(i: number): Uint8Array;
}

/**
 * Removes chunks that no finished snapshot references.
 *
 * @example
 * ```ts
 * const report = await new GarbageCollector(ds).run();
 * console.log(`removed ${report.removedChunks} chunks, ${report.pendingChunks} pending`);
 * ```
 * @category Garbage collection
 */
export class GarbageCollector {
  /** @param ds - an open datastore */
  constructor(private readonly ds: Datastore) {}

  /**
   * Runs a garbage collection. If any snapshot index cannot be read (other than a snapshot removed
   * meanwhile), the run stops with that error before the sweep: nothing is removed, because the
   * chunks of that index would be taken for garbage.
   * @throws `ERR_LOCKED` while another GC runs; `ERR_INVALID_ARGUMENT` for a bad skew;
   *   `ERR_ABORTED`; index, manifest and I/O errors.
   */
  async run(options: GcOptions = {}): Promise<GcReport> {
    const ds = this.ds;
    ds.assertOpen();
    for (const [name, v] of [
      ['skewMs', options.skewMs],
      ['networkSkewMs', options.networkSkewMs],
    ] as const) {
      if (v !== undefined && !(Number.isFinite(v) && v >= 0))
        throw new CairnError('ERR_INVALID_ARGUMENT', `${name} must be a number ≥ 0`, { datastore: ds.root, [name]: String(v) });
    }
    const dryRun = options.dryRun === true;
    const lock = await lockAt(ds, GC_LOCK_KEY, 'exclusive', 'garbage collection', {}, 0);
    try {
      const t0 = performance.now();
      const skew: GcSkew =
        options.skewMs === undefined
          ? await gcSkewOf(ds, { networkSkewMs: options.networkSkewMs, fsType: options.hooks?.fsType })
          : { ms: options.skewMs, reason: 'option', summary: `skew ${options.skewMs / 1000} s: given by the caller (--skew, skewMs)` };
      const skewMs = skew.ms;
      const startMs = ds.clock.now();
      const oldest = await oldestLiveWriter(ds.root, startMs);
      const cutoffMs = Math.min(startMs, oldest ?? startMs) - skewMs;
      const tempCutoffMs = skew.reason === 'option' ? cutoffMs : Math.min(cutoffMs, startMs - STALE_TEMP_MIN_AGE_MS);

      const marks = new MarkSet();
      const mark = { snapshots: 0, indexFiles: 0, indexDataBytes: 0 };
      const tidy = await this.markAll(marks, mark, options);
      marks.seal();
      const tMark = performance.now();

      const sweep = await this.sweepAll(marks, tidy, cutoffMs, tempCutoffMs, dryRun, options);

      const endMs = ds.clock.now();
      const report: GcReport = {
        dryRun,
        started: new Date(startMs).toISOString(),
        startMs,
        ended: new Date(endMs).toISOString(),
        endMs,
        ...(oldest === undefined ? {} : { oldestWriterMs: oldest }),
        cutoffMs,
        skewMs,
        skew,
        tempCutoffMs,
        ...mark,
        ...sweep,
        dedupFactor: sweep.diskBytes > 0 ? mark.indexDataBytes / sweep.diskBytes : 0,
        averageChunkSize: sweep.diskChunks > 0 ? sweep.diskBytes / sweep.diskChunks : 0,
        seconds: Math.round(performance.now() - t0) / 1000,
        markSeconds: Math.round(tMark - t0) / 1000,
        sweepSeconds: Math.round(performance.now() - tMark) / 1000,
      };
      if (!dryRun) {
        await ds.backend.put(GC_STATUS_KEY, new TextEncoder().encode(`${JSON.stringify(report, null, 2)}\n`), { sync: ds.config.syncLevel !== 'none' });
      }
      return report;
    } finally {
      await lock.release();
    }
  }

  /**
   * The mark phase: every index of every finished snapshot of every namespace into `marks`, then
   * the snapshots the move journal names (moved during the walk: move-journal.ts says why this is
   * enough; a snapshot that is gone or locked now is being removed).
   * @returns the folders whose stale temp files the sweep removes too (the chunk shards are swept for theirs anyway)
   */
  private async markAll(marks: MarkSet, mark: { snapshots: number; indexFiles: number; indexDataBytes: number }, options: GcOptions): Promise<Set<string>> {
    const ds = this.ds;
    const signal = options.signal;
    // Directories of writers that do not register (manifest, notes, protect and move writers).
    const tidy = new Set<string>(['']);
    for (const ns of await ds.listNamespaces()) {
      tidy.add(ns.key);
      let groups: BackupGroup[];
      try {
        groups = await ns.groups();
      } catch (e) {
        // Removed or moved away since the listing: moved snapshots are in the move journal.
        if (isCairnError(e, 'ERR_NOT_FOUND')) continue;
        throw e;
      }
      for (const group of groups) {
        throwIfAborted(signal);
        await this.markGroup(group, marks, mark, options);
        tidy.add(group.key);
        for (const time of await group.times().catch(() => [])) tidy.add(`${group.key}/${time}`);
      }
    }
    await options.hooks?.beforeDrain?.();
    await drainMoveJournal(
      ds,
      async (moved) => {
        throwIfAborted(signal);
        const snap = await ds
          .namespace(moved.namespace)
          .group(moved.group)
          .snapshot(moved.time)
          .catch((e: unknown) => {
            if (isCairnError(e, 'ERR_NOT_FOUND')) return undefined;
            throw e;
          });
        if (snap !== undefined) await this.markSnapshot(snap, marks, mark, signal);
      },
      signal,
    );
    return tidy;
  }

  /**
   * The sweep phase: the chunk store removes the unmarked chunks older than the cutoff (ChunkStore.sweep,
   * by capability); on local files, stale temp files of writers that do not register go from the
   * `tidy` folders too.
   */
  private async sweepAll(marks: MarkSet, tidy: ReadonlySet<string>, cutoffMs: number, tempCutoffMs: number, dryRun: boolean, options: GcOptions): Promise<SweepReport> {
    const ds = this.ds;
    const signal = options.signal;
    try {
      const sweep = await ds.chunks.sweep({
        isMarked: (hex) => marks.has(hex),
        cutoffMs,
        tempCutoffMs,
        dryRun,
        ...(signal === undefined ? {} : { signal }),
        onProgress: (p) => options.onProgress?.({ phase: 'sweep', ...p }),
      });
      const local = localFilesOf(ds.backend);
      if (local !== undefined) {
        for (const key of tidy) {
          throwIfAborted(signal);
          sweep.removedTemp += removeStaleTempFiles(local, key, tempCutoffMs, dryRun);
        }
      }
      return sweep;
    } catch (e) {
      // The local sweep makes its file-system calls directly: give their errors the datastore's code.
      throw ioError(e, 'garbage collection sweep', { datastore: ds.root });
    }
  }

  /**
   * Marks every finished snapshot of a group.
   *
   * Why the group is listed again when a listed snapshot vanished (DESIGN.md §5): a backup W of this
   * group may reuse chunks of its base B without touching them. W holds B's lock shared until it
   * has written its own manifest, so B can be removed only after W's snapshot N is committed. If
   * we listed the group before N was committed and B was removed before we read it, neither index
   * would be marked. So: whenever a snapshot we listed has vanished (or is locked for removal) by
   * the time we open it, its successor N was committed before the vanish, hence before our next
   * listing; we list again and mark what we have not marked yet, until a pass sees no vanished
   * snapshot. In that final pass every listed snapshot was read under its shared lock. A chunk N
   * inherited untouched through a chain of bases is in the newest snapshot of the chain that
   * existed at our last listing (each removal in the chain implies its successor was committed),
   * and that one was read. Chunks any writer touched or wrote carry an mtime ≥ that writer's start,
   * which is ≥ the cutoff (writers alive at GC start hold the cutoff back; later ones start after
   * it). A group created after our namespace walk has no base to reuse, so all its chunks are
   * touched or written. Snapshots moved to another namespace meanwhile are marked from the move journal
   * after the walk (move-journal.ts).
   */
  private async markGroup(group: BackupGroup, marks: MarkSet, mark: { snapshots: number; indexFiles: number; indexDataBytes: number }, options: GcOptions): Promise<void> {
    const seen = new Set<string>();
    for (let pass = 0; ; pass++) {
      const listed = await group.snapshots();
      await options.hooks?.afterListGroup?.(group.namespace, group.name);
      let vanished = false;
      for (const snap of listed) {
        if (seen.has(snap.time)) continue;
        throwIfAborted(options.signal);
        if (await this.markSnapshot(snap, marks, mark, options.signal)) {
          seen.add(snap.time);
          options.onProgress?.({ phase: 'mark', done: mark.snapshots });
        } else {
          vanished = true;
        }
      }
      if (!vanished) return;
      if (pass >= MAX_GROUP_PASSES) {
        throw new CairnError('ERR_LOCKED', `garbage collection: snapshots of ${group.name} keep vanishing or stay locked for removal; nothing was removed`, {
          datastore: this.ds.root,
          namespace: group.namespace,
          group: group.name,
        });
      }
      if (pass > 0) await sleep(Math.min(100, 5 * pass), options.signal);
    }
  }

  /**
   * Marks one snapshot's chunks. False when it vanished (or is locked by a removal) before it could
   * be opened; every other failure (a corrupt or missing index under the shared lock) throws.
   */
  private async markSnapshot(
    snap: Snapshot,
    marks: MarkSet,
    mark: { snapshots: number; indexFiles: number; indexDataBytes: number },
    signal: AbortSignal | undefined,
  ): Promise<boolean> {
    let reader;
    try {
      reader = await snap.open(signal === undefined ? {} : { signal });
    } catch (e) {
      // Only `remove()` takes a snapshot's lock exclusively: ERR_LOCKED means it is being removed.
      if (isCairnError(e, 'ERR_NOT_FOUND') || isCairnError(e, 'ERR_LOCKED')) return false;
      throw e;
    }
    try {
      // The shared walk (lib/datastore/snapshot-chunks.ts): every index of every archive, checked
      // against the manifest; any index that cannot be read throws, so nothing is swept.
      for await (const a of snapshotChunks(reader, signal === undefined ? {} : { signal })) {
        if (a.file.kind === 'blob') continue;
        for (const x of a.indexes) {
          const idx: DigestList = x.index;
          for (let i = 0; i < idx.count; i++) marks.add(idx.digestAt(i));
          mark.indexFiles++;
        }
        mark.indexDataBytes += a.file.size;
      }
      mark.snapshots++;
      return true;
    } finally {
      await reader.close();
    }
  }
}

/**
 * Space statistics of a datastore (layer L5): logical bytes, stored bytes and the deduplication
 * factor, per group, per namespace and for the whole scope.
 *
 * Logical bytes are the sizes of the chunked archives (images and trees) of every snapshot, summed
 * over snapshots: what restoring all of them would write. Stored bytes are the on-disk sizes of the
 * distinct chunk files those snapshots reference. Chunks are shared: a group's stored bytes count
 * every chunk it references once, also when other groups reference it too, so the groups' stored
 * bytes may add up to more than the total; the total (and each namespace) counts each chunk once.
 * Blobs are kept whole in their snapshot directories and are counted in neither.
 *
 * Read-only: every snapshot is read under its shared lock (as a restore would), chunk files are
 * only looked at (`stat`), nothing is written.
 */
import { isCairnError, throwIfAborted } from '../errors.js';
// eslint-disable-next-line @typescript-eslint/no-unused-vars -- for the {@link} in a TSDoc comment below
import type { MAX_NAMESPACE_DEPTH } from '../types.js';
import { toHex } from '../util/bytes.js';
import { chunkKey } from '../store/chunk-store.js';
import type { Datastore } from '../datastore/datastore.js';
import type { BackupGroup } from '../datastore/group.js';
import type { Snapshot } from '../datastore/snapshot.js';
import { groupsInScope } from './scope.js';

/**
 * Which part of the datastore {@link datastoreStats} counts.
 * @category Inspect
 */
export interface StatsScope {
  /**
   * Namespace path to start from.
   * @defaultValue `''` (the root)
   */
  readonly namespace?: string;
  /**
   * Namespace levels below `namespace` to include (ignored with `group`).
   * @defaultValue {@link MAX_NAMESPACE_DEPTH}
   */
  readonly maxDepth?: number;
  /** Only this group (`type/id`) of `namespace`. */
  readonly group?: string;
}

/**
 * Progress of {@link datastoreStats}: snapshots read so far, of how many listed.
 * @category Inspect
 */
export interface StatsProgress {
  /** Snapshots whose indexes were read. */
  readonly snapshotsDone: number;
  /** Snapshots listed in scope. */
  readonly snapshotsTotal: number;
}

/**
 * Options of {@link datastoreStats}.
 * @category Inspect
 */
export interface StatsOptions {
  /** Stops the count with `ERR_ABORTED`. */
  readonly signal?: AbortSignal;
  /** Called after each snapshot. */
  readonly onProgress?: (p: StatsProgress) => void;
}

/**
 * The counts of one part of the datastore (a group, a namespace, or all of the scope).
 * @category Inspect
 */
export interface SpaceStats {
  /** Snapshots counted. */
  readonly snapshots: number;
  /** Sum of the sizes of their image and tree archives. */
  readonly logicalBytes: number;
  /** On-disk bytes of the distinct chunk files they reference (each chunk once). */
  readonly storedBytes: number;
  /** Distinct chunks they reference. */
  readonly chunks: number;
  /** Of those, chunks whose file does not exist (counted with 0 stored bytes; run verify). */
  readonly missingChunks: number;
  /** logicalBytes / storedBytes (0 when nothing is stored). */
  readonly dedupFactor: number;
}

/**
 * The counts of one group.
 * @category Inspect
 */
export interface GroupSpaceStats extends SpaceStats {
  /** Namespace path (`''` for the root). */
  readonly namespace: string;
  /** `type/id`. */
  readonly group: string;
}

/**
 * The counts of the groups directly in one namespace (not those of namespaces below it).
 * @category Inspect
 */
export interface NamespaceSpaceStats extends SpaceStats {
  /** Namespace path (`''` for the root). */
  readonly namespace: string;
  /** Groups counted. */
  readonly groups: number;
}

/**
 * A snapshot not counted because it vanished or was being removed while the count ran.
 * @category Inspect
 */
export interface StatsSkipped {
  /** Namespace path. */
  readonly namespace: string;
  /** `type/id/time`. */
  readonly snapshot: string;
  /** Why (`ERR_NOT_FOUND: …`, `ERR_LOCKED: …`). */
  readonly reason: string;
}

/**
 * What {@link datastoreStats} found. Plain JSON.
 * @category Inspect
 */
export interface DatastoreStats {
  /** One entry per group with at least one snapshot directory, in listing order. */
  readonly groups: GroupSpaceStats[];
  /** One entry per namespace that has groups. */
  readonly namespaces: NamespaceSpaceStats[];
  /** The whole scope, each chunk counted once. */
  readonly total: SpaceStats;
  /** Snapshots not counted. */
  readonly skipped: StatsSkipped[];
  /** Duration in seconds. */
  readonly seconds: number;
}

/** Chunk files looked at in parallel. */
const STAT_CONCURRENCY = 32;

/** Running counts of one part: the digests it references and its logical bytes. */
class Tally {
  readonly digests = new Set<string>();
  snapshots = 0;
  logicalBytes = 0;
  groups = 0;

  result(sizes: Map<string, number>): SpaceStats {
    let storedBytes = 0;
    let missingChunks = 0;
    for (const d of this.digests) {
      const size = sizes.get(d) ?? -1;
      if (size < 0) missingChunks++;
      else storedBytes += size;
    }
    return {
      snapshots: this.snapshots,
      logicalBytes: this.logicalBytes,
      storedBytes,
      chunks: this.digests.size,
      missingChunks,
      dedupFactor: storedBytes > 0 ? this.logicalBytes / storedBytes : 0,
    };
  }
}

/**
 * Counts logical and stored bytes of the snapshots in `scope` (see the module comment for what is
 * counted). Snapshots that vanish or are being removed while it runs are skipped and listed.
 *
 * @example
 * ```ts
 * const s = await datastoreStats(ds, { namespace: 'site-a' });
 * console.log(`${s.total.logicalBytes} logical, ${s.total.storedBytes} stored, ${s.total.dedupFactor.toFixed(2)}x`);
 * ```
 * @throws `ERR_NOT_FOUND` for a namespace or group that does not exist; `ERR_INVALID_ARGUMENT` for
 *   a bad `maxDepth`; `ERR_ABORTED`; index and I/O errors.
 * @category Inspect
 */
export async function datastoreStats(ds: Datastore, scope: StatsScope = {}, options: StatsOptions = {}): Promise<DatastoreStats> {
  ds.assertOpen();
  const t0 = performance.now();
  const { signal, onProgress } = options;
  const groups = await groupsInScope(ds, scope);
  const listed: { group: BackupGroup; snaps: Snapshot[] }[] = [];
  for (const group of groups) {
    throwIfAborted(signal, { datastore: ds.root });
    try {
      listed.push({ group, snaps: await group.snapshots() });
    } catch (e) {
      if (!isCairnError(e, 'ERR_NOT_FOUND')) throw e; // removed while listing
    }
  }
  const snapshotsTotal = listed.reduce((n, x) => n + x.snaps.length, 0);
  const total = new Tally();
  const perNs = new Map<string, Tally>();
  const perGroup: { namespace: string; group: string; tally: Tally }[] = [];
  const skipped: StatsSkipped[] = [];
  let snapshotsDone = 0;
  for (const { group, snaps } of listed) {
    const gt = new Tally();
    const nt = perNs.get(group.namespace) ?? new Tally();
    perNs.set(group.namespace, nt);
    nt.groups++;
    for (const snap of snaps) {
      throwIfAborted(signal, { datastore: ds.root });
      const digests = await snapshotDigests(snap, signal).catch((e: unknown) => {
        // Only a removal takes a snapshot's lock exclusively; NOT_FOUND: removed meanwhile.
        if (isCairnError(e, 'ERR_NOT_FOUND') || isCairnError(e, 'ERR_LOCKED')) {
          skipped.push({ namespace: snap.namespace, snapshot: snap.name, reason: `${e.code}: ${e.message}` });
          return undefined;
        }
        throw e;
      });
      snapshotsDone++;
      if (digests !== undefined) {
        const logical = snap.files.reduce((n, f) => (f.kind === 'image' || f.kind === 'tree' ? n + f.size : n), 0);
        for (const t of [gt, nt, total]) {
          t.snapshots++;
          t.logicalBytes += logical;
          for (const d of digests) t.digests.add(d);
        }
      }
      onProgress?.({ snapshotsDone, snapshotsTotal });
    }
    perGroup.push({ namespace: group.namespace, group: group.name, tally: gt });
  }
  const sizes = await chunkSizes(ds, total.digests, signal);
  return {
    groups: perGroup.map((g) => ({ namespace: g.namespace, group: g.group, ...g.tally.result(sizes) })),
    namespaces: [...perNs].map(([namespace, t]) => ({ namespace, groups: t.groups, ...t.result(sizes) })),
    total: total.result(sizes),
    skipped,
    seconds: (performance.now() - t0) / 1000,
  };
}

/** The distinct chunk digests (hex) of a snapshot's image and tree indexes, read under its shared lock (`signal` ends the wait for it). */
async function snapshotDigests(snap: Snapshot, signal: AbortSignal | undefined): Promise<Set<string>> {
  const out = new Set<string>();
  const reader = await snap.open(signal === undefined ? {} : { signal });
  try {
    const add = (idx: { readonly count: number; digestAt(i: number): Uint8Array }): void => {
      for (let i = 0; i < idx.count; i++) out.add(toHex(idx.digestAt(i)));
    };
    for (const f of reader.files) {
      if (f.kind === 'image') add(await reader.imageIndex(f.name));
      else if (f.kind === 'tree') {
        const { meta, payload } = await reader.treeIndexes(f.name);
        add(meta);
        add(payload);
      }
    }
  } finally {
    await reader.close();
  }
  return out;
}

/** The on-disk size of each chunk file (-1 when it does not exist), a few at a time. */
async function chunkSizes(ds: Datastore, digests: Set<string>, signal: AbortSignal | undefined): Promise<Map<string, number>> {
  const sizes = new Map<string, number>();
  const all = [...digests];
  for (let i = 0; i < all.length; i += STAT_CONCURRENCY) {
    throwIfAborted(signal, { datastore: ds.root });
    const batch = all.slice(i, i + STAT_CONCURRENCY);
    const stats = await Promise.all(batch.map((d) => ds.chunks.backend.stat(chunkKey(d))));
    batch.forEach((d, j) => {
      const st = stats[j];
      sizes.set(d, st !== undefined && st.type === 'file' ? st.size : -1);
    });
  }
  return sizes;
}

/**
 * Verification (layer L5): re-reads the snapshots in a scope and checks everything they reference
 * (PBS-NOTES.md §3).
 *
 * Per snapshot, under its shared lock (a snapshot being removed is skipped):
 * - every archive's own file: an image's fixed index and a tree's two dynamic indexes (size and
 *   checksum against the manifest), a blob's CRC, decoding and BLAKE3;
 * - every chunk the indexes reference: it loads, its CRC matches, it decodes, its BLAKE3 equals
 *   its digest, and its decoded length equals the length the index gives it. Each digest is
 *   checked once per run however many snapshots share it; a chunk found bad counts against every
 *   snapshot that references it.
 *
 * A corrupt chunk is renamed aside to `<digest>.N.bad` ({@link ChunkStore.quarantine}) so that the
 * next backup of the group, which no longer uses the failed snapshot as its base, writes a good
 * copy again. The outcome is written to each manifest's unprotected part as
 * `verify: { state, time, run }`.
 */
import { randomUUID } from 'node:crypto';
import { CairnError, isCairnError, throwIfAborted, type ErrorCode } from '../errors.js';
import { MAX_NAMESPACE_DEPTH, formatSnapshotTime, parseNamespace, parseSnapshotTime } from '../types.js';
import { toHex } from '../util/bytes.js';
import type { Datastore } from '../datastore/datastore.js';
import type { Snapshot } from '../datastore/snapshot.js';
import type { DamagedSnapshot } from '../datastore/group.js';
import type { SnapshotReader } from '../datastore/snapshot-reader.js';
import { snapshotChunks } from '../datastore/snapshot-chunks.js';
import type { ChunkStore } from '../store/chunk-store.js';

/**
 * Which snapshots {@link Verifier.verify} checks.
 * @category Verify
 */
export interface VerifyScope {
  /**
   * Namespace path to start from.
   * @defaultValue `''` (the root)
   */
  readonly namespace?: string;
  /**
   * Namespace levels below `namespace` to include (ignored with `group` or `snapshot`).
   * @defaultValue {@link MAX_NAMESPACE_DEPTH}
   */
  readonly maxDepth?: number;
  /** Only this group (`type/id`) of `namespace`. */
  readonly group?: string;
  /**
   * Only this snapshot of `namespace`: `type/id/time`, or just the time together with `group`.
   */
  readonly snapshot?: string;
}

/**
 * Progress of a verify run, reported after each snapshot and every 256 chunks.
 * @category Verify
 */
export interface VerifyProgress {
  /** The snapshot being checked (`type/id/time`). */
  readonly snapshot: string;
  /** Its namespace. */
  readonly namespace: string;
  /** Snapshots finished so far (checked or skipped). */
  readonly snapshotsDone: number;
  /** Snapshots in scope. */
  readonly snapshotsTotal: number;
  /** Distinct chunks checked so far. */
  readonly chunksChecked: number;
  /** Decoded bytes of the chunks checked so far. */
  readonly bytesChecked: number;
}

/**
 * Options of {@link Verifier.verify}.
 * @category Verify
 */
export interface VerifyOptions {
  /**
   * Skip snapshots whose verify state is `ok` (and, with `outdatedAfter`, not older than that).
   * Snapshots never verified and snapshots that failed are always checked.
   * @defaultValue false
   */
  readonly ignoreVerified?: boolean;
  /** With `ignoreVerified`: re-check `ok` snapshots verified more than this many days ago (≥ 0). */
  readonly outdatedAfter?: number;
  /**
   * Check only this fraction (0 < f ≤ 1) of the distinct chunks, chosen by digest, so the same
   * chunks are chosen in every snapshot and every run. Indexes and blobs are always checked. A
   * sampled run writes only `failed` states: a snapshot is not marked `ok` from a sample.
   * @defaultValue 1
   */
  readonly sample?: number;
  /**
   * Chunks checked at the same time.
   * @defaultValue 8
   */
  readonly concurrency?: number;
  /**
   * Id of the run, written to the manifests.
   * @defaultValue a random UUID
   */
  readonly runId?: string;
  /** Stops the run with `ERR_ABORTED`; states already written stay. */
  readonly signal?: AbortSignal;
  /** Called with progress. */
  readonly onProgress?: (p: VerifyProgress) => void;
}

/**
 * A problem found in a snapshot.
 * @category Verify
 */
export interface VerifyProblem {
  /** The archive, when the problem is in one. */
  readonly archive?: string;
  /** The chunk's hex digest, for a chunk problem. */
  readonly digest?: string;
  /** Error code (`ERR_INDEX_CORRUPT`, `ERR_BLOB_CORRUPT`, `ERR_CHUNK_CORRUPT`, `ERR_CHUNK_MISSING`, …). */
  readonly code: string;
  /** What is wrong. */
  readonly message: string;
}

/**
 * The result for one snapshot.
 * @category Verify
 */
export interface VerifySnapshotResult {
  /** Namespace path. */
  readonly namespace: string;
  /** `type/id/time`. */
  readonly snapshot: string;
  /**
   * `ok` or `failed` as written to the manifest; `skipped` when not checked (already verified,
   * or locked or removed meanwhile); `sampled` when a sampled run found nothing wrong (no state
   * written).
   */
  readonly result: 'ok' | 'failed' | 'skipped' | 'sampled';
  /** Why it was skipped. */
  readonly reason?: string;
  /** What is wrong (failed snapshots). At most 100 are listed. */
  readonly problems: VerifyProblem[];
}

/**
 * A chunk that failed verification.
 * @category Verify
 */
export interface VerifyFailedChunk {
  /** Hex digest. */
  readonly digest: string;
  /** `ERR_CHUNK_MISSING`, `ERR_CHUNK_CORRUPT`, or `ERR_IO` for a read error. */
  readonly code: string;
  /** What is wrong. */
  readonly message: string;
  /** Backend key the damaged file was renamed to, when it was. */
  readonly quarantined?: string;
  /** The snapshots in scope that reference it (qualified names, see {@link VerifyReport.ok}). */
  readonly snapshots: string[];
}

/**
 * What {@link Verifier.verify} did; plain JSON.
 * @category Verify
 */
export interface VerifyReport {
  /** Id of the run (also written to the manifests). */
  readonly run: string;
  /** Start, RFC 3339 UTC. */
  readonly started: string;
  /**
   * Snapshots now marked `ok`: `type/id/time`, prefixed by `<namespace>:` outside the root
   * namespace.
   */
  readonly ok: string[];
  /** Snapshots now marked `failed` (names as in {@link VerifyReport.ok}). */
  readonly failed: string[];
  /** Snapshots not checked (names as in {@link VerifyReport.ok}). */
  readonly skipped: string[];
  /** One entry per snapshot in scope. */
  readonly snapshots: VerifySnapshotResult[];
  /** Distinct chunks checked. */
  readonly chunksChecked: number;
  /** Distinct chunks left out by `sample`. */
  readonly chunksSampledOut: number;
  /** Decoded bytes of the chunks checked. */
  readonly bytesChecked: number;
  /** Stored (compressed) bytes read for them. */
  readonly bytesRead: number;
  /** Duration in seconds. */
  readonly seconds: number;
  /** Decoded MB (10^6 bytes) checked per second. */
  readonly mbPerSecond: number;
  /** Chunks that are missing or damaged. */
  readonly failedChunks: VerifyFailedChunk[];
  /**
   * True when the datastore is read-only ({@link Datastore.readOnly}): everything was checked, but
   * no verify state was recorded and no damaged chunk was renamed aside.
   */
  readonly readOnly: boolean;
}

/** Outcome of checking one digest. */
type ChunkResult = { ok: true; size: number } | { ok: false; code: ErrorCode; message: string; quarantined?: string };

/** A chunk reference of an index: digest and the length the index gives it. */
interface ChunkRef {
  readonly digest: Uint8Array;
  readonly hex: string;
  readonly length: number;
  readonly archive: string;
}

const MAX_PROBLEMS = 100;

/**
 * Checks snapshots and the chunks they reference, and records the result in their manifests.
 *
 * @example
 * ```ts
 * const report = await new Verifier(ds).verify({ namespace: 'prod' }, { ignoreVerified: true, outdatedAfter: 30 });
 * if (report.failed.length > 0) console.error(report.failedChunks);
 * ```
 * @category Verify
 */
export class Verifier {
  /** @param ds - an open datastore */
  constructor(private readonly ds: Datastore) {}

  /**
   * Verifies the finished snapshots in `scope`. Failed snapshots and chunks are reported, not
   * thrown.
   * @throws `ERR_NOT_FOUND` for a scope that does not exist, `ERR_INVALID_ARGUMENT` for bad
   *   options, `ERR_ABORTED`, and I/O errors that stop the whole run.
   */
  async verify(scope: VerifyScope = {}, options: VerifyOptions = {}): Promise<VerifyReport> {
    const ds = this.ds;
    ds.assertOpen();
    const sample = options.sample ?? 1;
    if (!(typeof sample === 'number' && sample > 0 && sample <= 1))
      throw new CairnError('ERR_INVALID_ARGUMENT', 'sample must be a number with 0 < sample ≤ 1', { datastore: ds.root });
    const concurrency = options.concurrency ?? 8;
    if (!Number.isInteger(concurrency) || concurrency < 1) throw new CairnError('ERR_INVALID_ARGUMENT', 'concurrency must be a positive integer', { datastore: ds.root });
    const outdatedAfter = options.outdatedAfter;
    if (outdatedAfter !== undefined && !(Number.isFinite(outdatedAfter) && outdatedAfter >= 0)) {
      throw new CairnError('ERR_INVALID_ARGUMENT', 'outdatedAfter must be a number of days ≥ 0', { datastore: ds.root });
    }
    const signal = options.signal;
    const run = options.runId ?? randomUUID();
    const startMs = ds.clock.now();
    const t0 = performance.now();
    const { snapshots, damaged } = await this.select(scope);

    const results = new Map<string, Promise<ChunkResult>>();
    const users = new Map<string, Set<string>>(); // failed digest -> snapshot names
    const stats = { chunksChecked: 0, chunksSampledOut: 0, bytesChecked: 0, bytesRead: 0 };
    const sampledOut = new Set<string>();
    // A snapshot whose manifest is damaged fails without being read (there is no manifest to mark).
    const out: VerifySnapshotResult[] = damaged.map((d) => ({
      namespace: d.namespace,
      snapshot: d.name,
      result: 'failed',
      problems: [{ code: d.error.code, message: d.error.message }],
    }));
    const threshold = sample >= 1 ? Infinity : sample * 2 ** 32;
    let done = 0;
    const progress = (snap: Snapshot): void => {
      options.onProgress?.({
        snapshot: snap.name,
        namespace: snap.namespace,
        snapshotsDone: done,
        snapshotsTotal: snapshots.length,
        chunksChecked: stats.chunksChecked,
        bytesChecked: stats.bytesChecked,
      });
    };

    const check = (ref: ChunkRef): Promise<ChunkResult> => {
      let p = results.get(ref.hex);
      if (p === undefined) {
        p = checkChunk(ds.chunks, ds, ref, stats, signal);
        results.set(ref.hex, p);
      }
      return p;
    };

    const state: RunState = { options, signal, run, startMs, outdatedAfter, concurrency, threshold, users, stats, sampledOut, check, progress };
    for (const snap of snapshots) {
      throwIfAborted(signal);
      const { result, report } = await this.verifyOne(snap, state);
      out.push(result);
      done++;
      if (report) progress(snap);
    }

    const failedChunks: VerifyFailedChunk[] = [];
    for (const [hex, set] of users) {
      const r = await results.get(hex)!;
      if (r.ok) continue;
      failedChunks.push({ digest: hex, code: r.code, message: r.message, ...(r.quarantined === undefined ? {} : { quarantined: r.quarantined }), snapshots: [...set].sort() });
    }
    failedChunks.sort((a, b) => (a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0));
    const seconds = (performance.now() - t0) / 1000;
    const named = (r: VerifySnapshotResult): string => (r.namespace === '' ? r.snapshot : `${r.namespace}:${r.snapshot}`);
    return {
      run,
      started: formatSnapshotTime(Math.floor(startMs / 1000)),
      ok: out.filter((r) => r.result === 'ok').map(named),
      failed: out.filter((r) => r.result === 'failed').map(named),
      skipped: out.filter((r) => r.result === 'skipped').map(named),
      snapshots: out,
      ...stats,
      seconds: Math.round(seconds * 1000) / 1000,
      mbPerSecond: seconds > 0 ? Math.round((stats.bytesChecked / 1e6 / seconds) * 100) / 100 : 0,
      failedChunks,
      readOnly: ds.readOnly,
    };
  }

  /**
   * Verifies one snapshot: skipped when verified recently enough (`ignoreVerified`) or when it
   * cannot be opened (in use, gone, damaged manifest); else its archives' chunk references are
   * collected through the shared walk, sampled, checked (each digest once per run) and its verify
   * state recorded. @returns its result, and whether a progress report follows it
   */
  private async verifyOne(snap: Snapshot, st: RunState): Promise<{ result: VerifySnapshotResult; report: boolean }> {
    const ds = this.ds;
    const { options, signal } = st;
    const name = qualified(snap);
    const skipped = (reason: string): VerifySnapshotResult => ({ namespace: snap.namespace, snapshot: snap.name, result: 'skipped', reason, problems: [] });
    const vs = snap.manifest.unprotected.verify;
    if (options.ignoreVerified === true && vs?.state === 'ok') {
      const ageDays = (st.startMs / 1000 - parseSnapshotTime(vs.time)) / 86400;
      if (st.outdatedAfter === undefined || ageDays <= st.outdatedAfter) return { result: skipped(`verified ok at ${vs.time}`), report: true };
    }
    let reader: SnapshotReader;
    try {
      reader = await snap.open(signal === undefined ? {} : { signal });
    } catch (e) {
      if (isCairnError(e, 'ERR_LOCKED') || isCairnError(e, 'ERR_NOT_FOUND') || isCairnError(e, 'ERR_MANIFEST_CORRUPT'))
        return { result: skipped(`${e.code}: ${e.message}`), report: false };
      throw e;
    }
    const problems: VerifyProblem[] = [];
    const note = (p: VerifyProblem): void => {
      if (problems.length < MAX_PROBLEMS) problems.push(p);
    };
    try {
      const collected = await collectRefs(reader, note, signal);
      let failed = collected.failed;
      const todo = sampleRefs(collected.refs, st.threshold, st.sampledOut, st.stats);
      let sinceProgress = 0;
      const onResult = (ref: ChunkRef, r: ChunkResult): void => {
        if (++sinceProgress >= 256) {
          sinceProgress = 0;
          st.progress(snap);
        }
        if (!r.ok) {
          failed = true;
          let set = st.users.get(ref.hex);
          if (set === undefined) st.users.set(ref.hex, (set = new Set()));
          set.add(name);
          note({ archive: ref.archive, digest: ref.hex, code: r.code, message: r.message });
        } else if (r.size !== ref.length) {
          failed = true;
          note({
            archive: ref.archive,
            digest: ref.hex,
            code: 'ERR_INDEX_CORRUPT',
            message: `chunk ${ref.hex} decodes to ${r.size} bytes, but archive '${ref.archive}' gives it ${ref.length}`,
          });
        }
      };
      await checkRefs(todo, st.concurrency, st.check, onResult, signal);

      let result: VerifySnapshotResult['result'];
      if (failed) result = 'failed';
      else if (st.threshold !== Infinity) result = 'sampled';
      else result = 'ok';
      // A read-only datastore is checked all the same; only the verify state cannot be recorded.
      if (result !== 'sampled' && !ds.readOnly) {
        const state = result === 'failed' ? 'failed' : 'ok';
        const time = formatSnapshotTime(Math.floor(ds.clock.now() / 1000));
        const run = st.run;
        await snap.updateManifest((m) => ({ ...m, unprotected: { ...m.unprotected, verify: { state, time, run } } }), signal === undefined ? {} : { signal });
      }
      return { result: { namespace: snap.namespace, snapshot: snap.name, result, problems }, report: true };
    } finally {
      await reader.close();
    }
  }

  /**
   * The finished snapshots in scope, in namespace, group and time order, and the ones whose
   * manifests are damaged (a group or namespace scope lists them instead of failing).
   */
  private async select(scope: VerifyScope): Promise<{ snapshots: Snapshot[]; damaged: DamagedSnapshot[] }> {
    const ds = this.ds;
    const namespace = scope.namespace ?? '';
    parseNamespace(namespace);
    if (scope.snapshot !== undefined) {
      const ref = scope.group !== undefined && !scope.snapshot.includes('/') ? `${scope.group}/${scope.snapshot}` : scope.snapshot;
      if (ref.split('/').length !== 3) throw new CairnError('ERR_INVALID_ARGUMENT', `snapshot '${scope.snapshot}' must be written type/id/time`, { snapshot: scope.snapshot });
      return { snapshots: [await ds.snapshot(ref, { namespace })], damaged: [] };
    }
    if (scope.group !== undefined) {
      const g = ds.group(scope.group, { namespace });
      if (!(await g.exists()))
        throw new CairnError('ERR_NOT_FOUND', `backup group ${g.name} does not exist${namespace ? ` in namespace '${namespace}'` : ''}`, { namespace, group: g.name });
      return g.scan();
    }
    const maxDepth = scope.maxDepth ?? MAX_NAMESPACE_DEPTH;
    if (!Number.isInteger(maxDepth) || maxDepth < 0 || maxDepth > MAX_NAMESPACE_DEPTH) {
      throw new CairnError('ERR_INVALID_ARGUMENT', `maxDepth must be an integer from 0 to ${MAX_NAMESPACE_DEPTH}`, { datastore: ds.root });
    }
    const snapshots: Snapshot[] = [];
    const damaged: DamagedSnapshot[] = [];
    for (const ns of await ds.namespace(namespace).descendants(maxDepth)) {
      for (const g of await ns.groups()) {
        const found = await g.scan();
        snapshots.push(...found.snapshots);
        damaged.push(...found.damaged);
      }
    }
    return { snapshots, damaged };
  }
}

/** `type/id/time`, prefixed by `<namespace>:` outside the root namespace. */
function qualified(s: Snapshot): string {
  return s.namespace === '' ? s.name : `${s.namespace}:${s.name}`;
}

/** What the snapshots of one verify run share. */
interface RunState {
  readonly options: VerifyOptions;
  readonly signal: AbortSignal | undefined;
  readonly run: string;
  readonly startMs: number;
  readonly outdatedAfter: number | undefined;
  readonly concurrency: number;
  /** Sampling threshold over the first four digest bytes (Infinity: no sampling). */
  readonly threshold: number;
  /** Failed digest → the snapshots that use it. */
  readonly users: Map<string, Set<string>>;
  readonly stats: { chunksChecked: number; chunksSampledOut: number; bytesChecked: number; bytesRead: number };
  readonly sampledOut: Set<string>;
  /** Checks a chunk once per run. */
  readonly check: (ref: ChunkRef) => Promise<ChunkResult>;
  readonly progress: (snap: Snapshot) => void;
}

/**
 * The chunk references of a snapshot's archives, deduplicated within the snapshot (one per digest
 * and length), through the shared walk (lib/datastore/snapshot-chunks.ts): an archive whose indexes
 * do not load comes with its error, which is noted, so every damaged archive is reported. Blobs are
 * read and checked whole.
 */
async function collectRefs(reader: SnapshotReader, note: (p: VerifyProblem) => void, signal: AbortSignal | undefined): Promise<{ refs: Map<string, ChunkRef[]>; failed: boolean }> {
  const refs = new Map<string, ChunkRef[]>();
  let failed = false;
  const add = (archive: string, digest: Uint8Array, length: number): void => {
    const hex = toHex(digest);
    const list = refs.get(hex);
    const ref = { digest, hex, length, archive };
    if (list === undefined) refs.set(hex, [ref]);
    else if (!list.some((r) => r.length === length)) list.push(ref);
  };
  for await (const a of snapshotChunks(reader, { continueOnError: true, ...(signal === undefined ? {} : { signal }) })) {
    const f = a.file;
    try {
      if (a.error !== undefined) throw a.error;
      for (const { index: idx } of a.indexes) {
        for (let i = 0; i < idx.count; i++) {
          const { start, end } = idx.chunkRange(i);
          add(f.name, idx.digestAt(i), end - start);
        }
      }
      if (f.kind === 'blob') await reader.readBlob(f.name);
    } catch (e) {
      if (isCairnError(e, 'ERR_ABORTED')) throw e;
      failed = true;
      note({ archive: f.name, code: isCairnError(e) ? e.code : 'ERR_IO', message: e instanceof Error ? e.message : String(e) });
    }
  }
  return { refs, failed };
}

/** The references to check: all of them, or (sampling) those whose digest falls under the threshold; the others are counted once. */
function sampleRefs(refs: Map<string, ChunkRef[]>, threshold: number, sampledOut: Set<string>, stats: { chunksSampledOut: number }): ChunkRef[] {
  const todo: ChunkRef[] = [];
  for (const [hex, list] of refs) {
    if (threshold !== Infinity && sampleKey(list[0]!.digest) >= threshold) {
      if (!sampledOut.has(hex)) {
        sampledOut.add(hex);
        stats.chunksSampledOut++;
      }
      continue;
    }
    todo.push(...list);
  }
  return todo;
}

/** Checks the references, `concurrency` at a time, handing each result to `onResult`. */
async function checkRefs(
  todo: readonly ChunkRef[],
  concurrency: number,
  check: (ref: ChunkRef) => Promise<ChunkResult>,
  onResult: (ref: ChunkRef, r: ChunkResult) => void,
  signal: AbortSignal | undefined,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < todo.length) {
      throwIfAborted(signal);
      const ref = todo[next++]!;
      onResult(ref, await check(ref));
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, Math.max(1, todo.length)) }, worker));
}

/** The first four digest bytes as an unsigned number: uniform, since digests are BLAKE3. */
function sampleKey(digest: Uint8Array): number {
  return ((digest[0]! << 24) | (digest[1]! << 16) | (digest[2]! << 8) | digest[3]!) >>> 0;
}

/** Reads and decodes one chunk; a damaged one is renamed aside. */
async function checkChunk(
  store: ChunkStore,
  ds: Datastore,
  ref: ChunkRef,
  stats: { chunksChecked: number; bytesChecked: number; bytesRead: number },
  signal: AbortSignal | undefined,
): Promise<ChunkResult> {
  const details = { digest: ref.hex };
  let stored: Uint8Array;
  try {
    stored = await store.read(ref.digest);
  } catch (e) {
    stats.chunksChecked++;
    if (isCairnError(e, 'ERR_CHUNK_MISSING')) return { ok: false, code: 'ERR_CHUNK_MISSING', message: e.message };
    if (isCairnError(e)) return { ok: false, code: e.code, message: e.message };
    throw e;
  }
  stats.bytesRead += stored.byteLength;
  const own = stored.byteOffset === 0 && stored.byteLength === stored.buffer.byteLength ? stored : new Uint8Array(stored);
  let data: Uint8Array;
  try {
    data = await ds.pool().decode(own, { digest: ref.digest, code: 'ERR_CHUNK_CORRUPT', details, format: store.format, ...(signal === undefined ? {} : { signal }) });
  } catch (e) {
    if (isCairnError(e, 'ERR_ABORTED')) throw e;
    stats.chunksChecked++;
    const message = e instanceof Error ? e.message : String(e);
    if (!isCairnError(e, 'ERR_CHUNK_CORRUPT')) return { ok: false, code: isCairnError(e) ? e.code : 'ERR_IO', message };
    const quarantined = ds.readOnly ? undefined : await store.quarantine(ref.digest);
    return quarantined === undefined ? { ok: false, code: 'ERR_CHUNK_CORRUPT', message } : { ok: false, code: 'ERR_CHUNK_CORRUPT', message, quarantined };
  }
  stats.chunksChecked++;
  stats.bytesChecked += data.byteLength;
  return { ok: true, size: data.byteLength };
}

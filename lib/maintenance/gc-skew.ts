/**
 * The GC's skew (layer L5): how far below the GC start (or the oldest live writer's start) the
 * cutoff lies, measured for the datastore's filesystem instead of a fixed minute.
 *
 * ## What the skew must cover (the safety argument)
 *
 * A chunk a concurrent backup relies on is one it wrote or touched (dedup hit), or one of its own
 * shared-locked base snapshot (marked from the base's index, whatever its mtime). The writers are on
 * this host (locks and the writer registry are host-local), so they and the GC read one clock, the
 * datastore's ({@link Datastore.clock}). Every such write or touch happens after its writer
 * registered, and either the writer was live at GC start (then cutoff ≤ its start − skew, and the
 * write or touch came later than that start) or it registered after the GC's registry probe (then
 * the write or touch came after the GC start). Either way the write or touch happened when the
 * datastore clock read at least `cutoff + skew`. The recorded mtime can be *earlier* than the clock
 * at that moment for three reasons, and for no other:
 *
 * 1. truncation to the filesystem's timestamp granularity (ns on ext4, xfs, btrfs, tmpfs; 1 s on
 *    ext4 with 128-byte inodes or ext3; 2 s on FAT) — a touch sets an explicit time, which is
 *    truncated; this is measured exactly by setting a time just below a 2-second boundary;
 * 2. a write stamped by another clock: the kernel's coarse clock (behind by at most one tick,
 *    ≤ 10 ms at HZ=100), or the server's clock on NFS, SMB, FUSE daemons, 9p — measured as
 *    "datastore clock before a write − the mtime the write got", which also catches a datastore
 *    clock that is not the system clock;
 * 3. the float conversion of a touch (the backend passes seconds as a double: < 1 µs).
 *
 * So skew ≥ granularity + the largest lag of (2) and (3) suffices, and the local default is exactly
 * that, measured, plus {@link LOCAL_SKEW_MARGIN_MS} for what a few samples may not show (the lag
 * of the coarse clock varies within a tick; the datastore clock's millisecond rounding). On a
 * network filesystem the lag is another machine's clock, which can drift between the measurement
 * and the writes, so the skew is at least {@link DEFAULT_GC_SKEW_MS} there (configurable), and so
 * it is where the filesystem cannot be told or the measurement failed.
 *
 * Not covered, as with any fixed skew: the system clock stepped *backwards* by more than the skew
 * while a backup runs (NTP slews small offsets at ≤ 0.5 ms/s; a step happens at boot or by hand).
 * Give `--skew` a larger value where that can happen.
 *
 * The probe is one temp file named as every temp file (`.gc-clock-probe.tmp-<pid>-<n>`) in the
 * first chunk shard, where the chunks live; it is removed at once, and a GC killed meanwhile leaves
 * it to the next GC's stale temp sweep. Its file-system calls are the local backend's adapter
 * (../backend/local-clock-probe.ts).
 *
 * A backend without local files (an object store, the memory backend) stamps its times with its
 * own clock (an object store's server): as on a network filesystem, that clock may drift from this
 * host's after the measurement, so the skew is at least the network skew there. The same three
 * quantities are measured through the backend ({@link measureBackendTimestamps}): a probe key under
 * {@link GC_PROBE_PREFIX} is touched with a time just below a 2-second boundary and stat'ed back,
 * written (its mtime against the clock read before the put), touched with the clock's time and
 * stat'ed back, then deleted; probe keys a killed GC left are deleted by the next measurement.
 */
import { CairnError } from '../errors.js';
import { localFilesOf } from '../backend/backend.js';
import { isRealDirectory, mountOf, probeLocalTimestamps } from '../backend/local-clock-probe.js';
import { shardKeys } from '../store/chunk-store.js';
import type { Datastore } from '../datastore/datastore.js';

export { mountOf, parseMountInfo, type MountEntry } from '../backend/local-clock-probe.js';

/**
 * Skew of the GC on a network filesystem, and where the filesystem type cannot be told or the
 * measurement fails, ms (at least this; more when the measured lag is larger).
 * @category Garbage collection
 */
export const DEFAULT_GC_SKEW_MS = 60_000;

/**
 * Margin added to the measured granularity and lag on a local filesystem, ms.
 * @category Garbage collection
 */
export const LOCAL_SKEW_MARGIN_MS = 100;

/** Rounds of {@link measureTimestampSkew} by default. */
const PROBE_ROUNDS = 3;

/**
 * Filesystem types (as `/proc/self/mountinfo` names them) whose timestamps come from another
 * machine's or process's clock, or that a daemon serves: NFS, SMB/CIFS, 9p, virtiofs, FUSE, and
 * cluster and distributed filesystems.
 */
const NETWORK_TYPES = new Set([
  'nfs',
  'nfs4',
  'cifs',
  'smb3',
  'smbfs',
  'smb2',
  'ncpfs',
  'ncp',
  '9p',
  'virtiofs',
  'afs',
  'coda',
  'ceph',
  'glusterfs',
  'lustre',
  'gpfs',
  'beegfs',
  'orangefs',
  'pvfs2',
  'ocfs2',
  'gfs2',
  'vboxsf',
  'vmhgfs',
  'davfs',
  'fuse',
  'fuseblk',
]);

/**
 * True when timestamps on a filesystem of this type (as `/proc/self/mountinfo` names it) may come
 * from another machine's or process's clock: NFS, SMB/CIFS, 9p, virtiofs, every FUSE type, and
 * cluster and distributed filesystems (Ceph, GlusterFS, Lustre, GPFS, BeeGFS, OCFS2, GFS2, …).
 * @category Garbage collection
 */
export function isNetworkFilesystem(fsType: string): boolean {
  return NETWORK_TYPES.has(fsType) || fsType.startsWith('fuse.') || fsType.startsWith('nfs');
}

/**
 * What {@link measureTimestampSkew} found. Times in ms unless named otherwise.
 * @category Garbage collection
 */
export interface TimestampMeasurement {
  /**
   * The directory probed (the first chunk shard, or the datastore root); on a backend without
   * local files, the location of the probe key's prefix.
   */
  readonly directory: string;
  /**
   * Coarsest timestamp step seen, ns: the largest truncation of an explicit time (set just below a
   * 2-second boundary) plus 1 ns. 1 on ext4/xfs/tmpfs; 1e9 with 1-second timestamps; 2e9 on FAT.
   */
  readonly granularityNs: number;
  /**
   * Largest difference "datastore clock just before a write − the mtime the write got", ms.
   * Negative when the filesystem's clock is ahead; about a kernel tick at most on a local
   * filesystem; the server's offset on a network filesystem.
   */
  readonly writeLagMs: number;
  /** Largest difference "time set by a touch (as the backend sets it) − the mtime read back", ms. */
  readonly touchLagMs: number;
  /** Rounds measured (each: a set time, a write, a touch). */
  readonly rounds: number;
  /** Wall time of the measurement, ms. */
  readonly elapsedMs: number;
}

/**
 * Options of {@link measureTimestampSkew}.
 * @category Garbage collection
 */
export interface MeasureOptions {
  /** Directory for the probe file. @defaultValue the datastore's first chunk shard */
  readonly directory?: string;
  /** Rounds (1 to 100). @defaultValue 3 */
  readonly rounds?: number;
}

/**
 * Measures the timestamp granularity of the datastore's filesystem and how far the times it records
 * lag behind the datastore clock: a probe temp file in the first chunk shard gets, a few times, an
 * exact time just below a 2-second boundary (read back: the truncation), a one-byte write (its mtime
 * against the clock read before it) and a touch as the backend does it. The file is removed
 * before this returns. Costs about a dozen system calls (well under a millisecond on a local disk).
 * @throws `ERR_IO` when the probe cannot be written or read (a full or read-only filesystem);
 *   `ERR_INVALID_ARGUMENT` for bad rounds.
 * @category Garbage collection
 */
export function measureTimestampSkew(ds: Datastore, options: MeasureOptions = {}): TimestampMeasurement {
  const rounds = options.rounds ?? PROBE_ROUNDS;
  if (!(Number.isInteger(rounds) && rounds >= 1 && rounds <= 100)) throw new CairnError('ERR_INVALID_ARGUMENT', 'rounds must be an integer from 1 to 100', { rounds });
  const dir = options.directory ?? probeDirectory(ds);
  const t0 = performance.now();
  const p = probeLocalTimestamps(dir, rounds, () => ds.clock.now());
  return {
    directory: dir,
    granularityNs: Number(p.truncNs) + 1,
    writeLagMs: round3(p.writeLagMs),
    touchLagMs: round3(p.touchLagMs),
    rounds,
    elapsedMs: round3(performance.now() - t0),
  };
}

/**
 * The first chunk shard when it is a real directory, else the datastore root.
 * @throws `ERR_INVALID_ARGUMENT` for a datastore whose backend keeps no local files
 */
function probeDirectory(ds: Datastore): string {
  const local = localFilesOf(ds.backend);
  if (local === undefined) {
    throw new CairnError('ERR_INVALID_ARGUMENT', `${ds.backend.location} keeps no local files: measure its timestamps with measureBackendTimestamps`, { datastore: ds.root });
  }
  const shard = local.pathOf(shardKeys()[0]!);
  return isRealDirectory(shard) ? shard : ds.root;
}

function round3(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

/**
 * Why the GC used the skew it used.
 * @category Garbage collection
 */
export type GcSkewReason = 'option' | 'local' | 'network' | 'unknown';

/**
 * The skew a GC run used and why; plain JSON (part of the GC report).
 * @category Garbage collection
 */
export interface GcSkew {
  /** The skew, ms. */
  readonly ms: number;
  /**
   * `option`: given by the caller; `local`: measured on a local filesystem; `network`: a network
   * filesystem or a backend without local files (at least the network skew); `unknown`: the filesystem type could not be told or the
   * measurement failed (at least the network skew).
   */
  readonly reason: GcSkewReason;
  /** The location of a backend without local files (its clock stamps the times), when it is one. */
  readonly backend?: string;
  /** Filesystem type of the chunk directory, when known. */
  readonly fsType?: string;
  /** Its mount point, when known. */
  readonly mountPoint?: string;
  /** The measurement, when one was made and succeeded. */
  readonly measurement?: TimestampMeasurement;
  /** Why the measurement failed, when it did. */
  readonly failure?: string;
  /** One line for people: the skew and why. */
  readonly summary: string;
}

/**
 * Inputs of {@link chooseGcSkew}.
 * @category Garbage collection
 */
export interface GcSkewInput {
  /** Filesystem type, undefined when it could not be told. */
  readonly fsType?: string | undefined;
  /**
   * The location of a backend without local files, when the datastore is on one: its clock stamps
   * the times, so it counts as a network filesystem (`fsType` is then not looked at).
   */
  readonly backend?: string | undefined;
  /** Its mount point. */
  readonly mountPoint?: string | undefined;
  /** The measurement, undefined when it failed. */
  readonly measurement?: TimestampMeasurement | undefined;
  /** Why the measurement failed. */
  readonly failure?: string | undefined;
  /** Skew on network and unknown filesystems, ms. @defaultValue {@link DEFAULT_GC_SKEW_MS} */
  readonly networkSkewMs?: number | undefined;
}

/**
 * Chooses the skew from a measurement and a filesystem type (a pure function): on a local
 * filesystem granularity + largest lag (never below 0) + {@link LOCAL_SKEW_MARGIN_MS}, rounded up
 * to a millisecond; on a network filesystem, an unknown one or without a measurement, at least
 * `networkSkewMs`.
 * @category Garbage collection
 */
export function chooseGcSkew(input: GcSkewInput): GcSkew {
  const networkMs = input.networkSkewMs ?? DEFAULT_GC_SKEW_MS;
  const m = input.measurement;
  const backend = input.backend;
  const fs =
    backend !== undefined ? { backend } : input.fsType === undefined ? {} : { fsType: input.fsType, ...(input.mountPoint === undefined ? {} : { mountPoint: input.mountPoint }) };
  const measured = m === undefined ? undefined : measuredNeedMs(m);
  const why = m === undefined ? `timestamps not measured (${input.failure ?? 'no measurement'})` : describe(m);
  const on = input.fsType === undefined ? 'filesystem type unknown' : `${input.fsType} at ${input.mountPoint ?? '?'}`;
  if (backend === undefined && input.fsType !== undefined && m !== undefined && !isNetworkFilesystem(input.fsType)) {
    return { ms: measured!, reason: 'local', ...fs, measurement: m, summary: `skew ${secs(measured!)}: local ${on}; ${why} + ${secs(LOCAL_SKEW_MARGIN_MS)} margin` };
  }
  const ms = Math.max(networkMs, measured ?? 0);
  const reason: GcSkewReason = backend !== undefined || (input.fsType !== undefined && isNetworkFilesystem(input.fsType)) ? 'network' : 'unknown';
  const kind = backend !== undefined ? `backend ${backend} without local files` : reason === 'network' ? `network filesystem ${on}` : on;
  return {
    ms,
    reason,
    ...fs,
    ...(m === undefined ? {} : { measurement: m }),
    ...(input.failure === undefined ? {} : { failure: input.failure }),
    summary: `skew ${secs(ms)}: ${kind}, whose clock may differ from this host's (at least ${secs(networkMs)}); ${why}`,
  };
}

/** The skew the safety argument needs for a measurement, plus the local margin, ms. */
function measuredNeedMs(m: TimestampMeasurement): number {
  return Math.ceil(m.granularityNs / 1e6 + Math.max(0, m.writeLagMs, m.touchLagMs) + LOCAL_SKEW_MARGIN_MS);
}

function describe(m: TimestampMeasurement): string {
  const g = m.granularityNs;
  const step = g >= 1e9 ? `${g / 1e9} s` : g >= 1e6 ? `${g / 1e6} ms` : g >= 1e3 ? `${Math.round(g / 1e3)} µs` : `${g} ns`;
  const lag = Math.max(m.writeLagMs, m.touchLagMs);
  const lagText = lag <= 0.01 ? 'not behind the clock' : `up to ${lag < 10 ? lag.toFixed(3) : lag.toFixed(0)} ms behind the clock`;
  return `timestamps in steps of ${step}, ${lagText} (measured in ${m.elapsedMs.toFixed(1)} ms)`;
}

function secs(ms: number): string {
  return ms >= 10_000 ? `${Math.round(ms / 1000)} s` : `${(ms / 1000).toFixed(3).replace(/\.?0+$/, '')} s`;
}

/**
 * Options of {@link gcSkewFor}.
 * @category Garbage collection
 */
export interface GcSkewOptions {
  /** Skew on network and unknown filesystems, ms. @defaultValue {@link DEFAULT_GC_SKEW_MS} */
  readonly networkSkewMs?: number | undefined;
  /** Use this filesystem type instead of the one detected (tests; `''` = unknown). */
  readonly fsType?: string | undefined;
}

/**
 * Measures and chooses the skew for a datastore's chunk directory ({@link measureTimestampSkew},
 * the mount table in /proc/self/mountinfo, {@link chooseGcSkew}). A failed measurement does not throw: the skew is then the
 * network skew, with the failure named.
 * @category Garbage collection
 */
export function gcSkewFor(ds: Datastore, options: GcSkewOptions = {}): GcSkew {
  if (localFilesOf(ds.backend) === undefined) {
    // Measuring through a backend takes awaited calls: gcSkewOf does it.
    return chooseGcSkew({ backend: ds.backend.location, failure: 'a backend without local files is measured by gcSkewOf only', networkSkewMs: options.networkSkewMs });
  }
  const dir = probeDirectory(ds);
  let measurement: TimestampMeasurement | undefined;
  let failure: string | undefined;
  try {
    measurement = measureTimestampSkew(ds, { directory: dir });
  } catch (e) {
    failure = e instanceof Error ? e.message : String(e);
  }
  const mount = options.fsType === undefined ? mountOf(dir) : undefined;
  const fsType = options.fsType === undefined ? mount?.fsType : options.fsType === '' ? undefined : options.fsType;
  return chooseGcSkew({ fsType, mountPoint: options.fsType === undefined ? mount?.mountPoint : undefined, measurement, failure, networkSkewMs: options.networkSkewMs });
}

/**
 * {@link gcSkewFor} for any backend: on local files the same (synchronous) measurement; on a
 * backend without local files the measurement through the backend ({@link measureBackendTimestamps})
 * and at least the network skew. A failed measurement does not throw: the skew is then the network
 * skew, with the failure named.
 * @category Garbage collection
 */
export async function gcSkewOf(ds: Datastore, options: GcSkewOptions = {}): Promise<GcSkew> {
  if (localFilesOf(ds.backend) !== undefined) return gcSkewFor(ds, options);
  let measurement: TimestampMeasurement | undefined;
  let failure: string | undefined;
  try {
    measurement = await measureBackendTimestamps(ds);
  } catch (e) {
    failure = e instanceof Error ? e.message : String(e);
  }
  return chooseGcSkew({ backend: ds.backend.location, measurement, failure, networkSkewMs: options.networkSkewMs });
}

/**
 * Prefix of the probe keys of {@link measureBackendTimestamps} (reserved: no datastore content is
 * stored below it).
 * @category Garbage collection
 */
export const GC_PROBE_PREFIX = '.gc-probe';

/** Probe keys older than this are leftovers of a killed measurement, ms. */
const STALE_PROBE_MS = 10 * 60_000;

let probes = 0;

/**
 * {@link measureTimestampSkew} through the datastore's backend, for any backend (the one way for a
 * backend without local files): a probe key under {@link GC_PROBE_PREFIX} is, a few times, touched
 * with a time just below a 2-second boundary and stat'ed back (the truncation: the granularity),
 * written (its mtime against the datastore clock read before the put) and touched with the clock's
 * time (read back). The key is deleted before this returns, and probe keys older than ten minutes
 * (left by a killed process) are deleted first. Costs about four backend calls a round.
 * @throws `ERR_IO` and other backend errors when the probe cannot be written or read;
 *   `ERR_INVALID_ARGUMENT` for bad rounds.
 * @category Garbage collection
 */
export async function measureBackendTimestamps(ds: Datastore, options: Pick<MeasureOptions, 'rounds'> = {}): Promise<TimestampMeasurement> {
  const rounds = options.rounds ?? PROBE_ROUNDS;
  if (!(Number.isInteger(rounds) && rounds >= 1 && rounds <= 100)) throw new CairnError('ERR_INVALID_ARGUMENT', 'rounds must be an integer from 1 to 100', { rounds });
  const backend = ds.backend;
  const t0 = performance.now();
  for await (const e of backend.list(GC_PROBE_PREFIX)) {
    if (e.mtimeMs < ds.clock.now() - STALE_PROBE_MS) await backend.delete(e.key);
  }
  const key = `${GC_PROBE_PREFIX}/${process.pid}-${++probes}-${Math.random().toString(36).slice(2, 10)}`;
  const mtimeOf = async (): Promise<number> => {
    const st = await backend.stat(key);
    if (st === undefined) throw new CairnError('ERR_IO', `the timestamp probe ${backend.locate(key)} vanished while it was measured`, { path: backend.locate(key) });
    return st.mtimeMs;
  };
  let truncMs = 0;
  let writeLag = -Infinity;
  let touchLag = -Infinity;
  const one = new Uint8Array([0x63]);
  try {
    await backend.put(key, one);
    for (let i = 0; i < rounds; i++) {
      // 1. Granularity: an odd second + 999 ms lies just below a boundary of every step of 1 ms … 2 s.
      const sec = Math.floor(ds.clock.now() / 1000) - 10 - 2 * i;
      const set = (sec % 2 === 0 ? sec + 1 : sec) * 1000 + 999;
      if (!(await backend.touch(key, set))) await mtimeOf(); // throws: vanished
      truncMs = Math.max(truncMs, set - (await mtimeOf()));
      // 2. A write, stamped by the backend's clock.
      const before = ds.clock.now();
      await backend.put(key, one);
      writeLag = Math.max(writeLag, before - (await mtimeOf()));
      // 3. A touch as the chunk store makes it: the clock's time.
      const t = ds.clock.now();
      await backend.touch(key, t);
      touchLag = Math.max(touchLag, t - (await mtimeOf()));
    }
  } finally {
    await backend.delete(key).catch(() => undefined); // else left to the next measurement
  }
  return {
    directory: backend.locate(GC_PROBE_PREFIX),
    granularityNs: Math.round(truncMs * 1e6) + 1,
    writeLagMs: round3(writeLag),
    touchLagMs: round3(touchLag),
    rounds,
    elapsedMs: round3(performance.now() - t0),
  };
}

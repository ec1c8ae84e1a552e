/**
 * `cairn benchmark` (layer L3): the speed of the building blocks on this machine — BLAKE3, LZ4,
 * the content-defined chunker, chunk verification and the worker pool — next to the numbers of a
 * recorded reference machine, like `proxmox-backup-client benchmark`. All in memory: no disk.
 */
import { cpus } from 'node:os';
import { randomFillSync } from 'node:crypto';
import { initHash } from '../codec/hash.js';
import { lz4Compress, lz4Decompress } from '../codec/compress.js';
import { chunkDigest, decodeChunk, encodeChunk, PLAIN_CHUNK_FORMAT } from '../codec/envelope.js';
import { Chunker } from '../codec/chunker.js';
import { throwIfAborted } from '../errors.js';
import { WorkerPool } from './worker-pool.js';

/**
 * What is measured.
 * @category Benchmark
 */
export type BenchmarkId = 'blake3' | 'lz4-compress' | 'lz4-decompress' | 'chunker' | 'verify' | 'pool-encode';

/**
 * One measurement.
 * @category Benchmark
 */
export interface BenchmarkResult {
  /** Which. */
  readonly id: BenchmarkId;
  /** What it is, for people. */
  readonly label: string;
  /** Throughput, MB/s (10⁶ bytes per second) of input data. */
  readonly mbPerSecond: number;
  /** The reference machine's throughput. */
  readonly referenceMbPerSecond: number;
  /** 100 × mbPerSecond / referenceMbPerSecond. */
  readonly percentOfReference: number;
}

/**
 * A machine whose numbers are the 100 % of {@link runBenchmark}.
 * @category Benchmark
 */
export interface BenchmarkMachine {
  /** CPU model. */
  readonly cpu: string;
  /** Cores (logical CPUs). */
  readonly cores: number;
  /** When it was measured (YYYY-MM-DD). */
  readonly date: string;
  /** Node version. */
  readonly node: string;
}

/**
 * The reference machine with its numbers.
 * @category Benchmark
 */
export interface BenchmarkReference extends BenchmarkMachine {
  /** MB/s of each measurement. */
  readonly mbPerSecond: Readonly<Record<BenchmarkId, number>>;
}

/**
 * This machine's CPU.
 * @category Benchmark
 */
export interface BenchmarkCpu {
  /** Model of the first CPU. */
  readonly model: string;
  /** Logical CPUs. */
  readonly count: number;
}

/**
 * What {@link runBenchmark} found. Plain JSON.
 * @category Benchmark
 */
export interface BenchmarkReport {
  /** This machine's CPU. */
  readonly cpu: BenchmarkCpu;
  /** The reference machine. */
  readonly reference: BenchmarkMachine;
  /** Worker threads used by the pool test. */
  readonly threads: number;
  /** The measurements, in a fixed order. */
  readonly results: BenchmarkResult[];
}

/**
 * Options of {@link runBenchmark}.
 * @category Benchmark
 */
export interface BenchmarkOptions {
  /**
   * Seconds spent on each measurement (after a short warm-up).
   * @defaultValue 1
   */
  readonly seconds?: number;
  /**
   * Worker threads for the pool test.
   * @defaultValue the available cores
   */
  readonly threads?: number;
  /** Stops between measurements with `ERR_ABORTED`. */
  readonly signal?: AbortSignal;
  /** Called as each measurement ends. */
  readonly onResult?: (r: BenchmarkResult) => void;
}

/**
 * The reference machine: the 2-core VM Cairn is developed on (AMD EPYC, Node 20), measured with
 * `cairn benchmark --seconds 3` on 2026-11-26. Percentages compare against these.
 * @category Benchmark
 */
export const BENCHMARK_REFERENCE: BenchmarkReference = {
  cpu: 'AMD EPYC (2 vCPUs, Firecracker VM)',
  cores: 2,
  date: '2026-11-26',
  node: 'v20.20.2',
  mbPerSecond: {
    blake3: 1840,
    'lz4-compress': 564,
    'lz4-decompress': 2483,
    chunker: 2685,
    verify: 1132,
    'pool-encode': 809,
  },
};

const LABELS: Record<BenchmarkId, string> = {
  blake3: 'BLAKE3 digest (1 MiB pieces, one thread)',
  'lz4-compress': 'LZ4 compress, log-like text (one thread)',
  'lz4-decompress': 'LZ4 decompress, log-like text (one thread)',
  chunker: 'content-defined chunker, default parameters (one thread)',
  verify: 'chunk verify: CRC + LZ4 decode + BLAKE3 (one thread)',
  'pool-encode': 'worker pool: digest + compress of 1 MiB chunks, all threads',
};

const MiB = 1024 * 1024;
const SIZE = 16 * MiB;

/** Deterministic log-like text (compresses like real logs, ratio ≈ 0.3). */
function textData(size: number): Uint8Array {
  const words = ['GET', 'POST', '/api/v1/items', 'status=200', 'status=404', 'user=alice', 'user=bob', 'latency_ms=', 'cache=hit', 'cache=miss', 'INFO', 'WARN', 'request', 'done'];
  const out = Buffer.allocUnsafe(size);
  let x = 12345;
  let o = 0;
  let t = 1_780_000_000;
  while (o < size) {
    x = (x * 1103515245 + 12345) >>> 0;
    t += x % 3;
    let line = `2026-11-26T${String(t % 86400).padStart(5, '0')} `;
    for (let k = 0; k < 6; k++) {
      x = (x * 1103515245 + 12345) >>> 0;
      line += `${words[x % words.length]}${k === 5 ? x % 997 : ''} `;
    }
    o += out.write(`${line}\n`, o);
  }
  return out;
}

/** Runs `step` (which processes `bytes` each call) for `seconds`; returns MB/s. */
async function measure(seconds: number, bytes: number, step: () => void | Promise<void>): Promise<number> {
  // Warm-up: JIT and WebAssembly tier-up (BLAKE3 measured 40 % slow with a single warm-up step).
  const w0 = performance.now();
  do await step();
  while (performance.now() - w0 < Math.min(250, (seconds * 1000) / 4));
  const t0 = performance.now();
  let done = 0;
  do {
    await step();
    done += bytes;
  } while (performance.now() - t0 < seconds * 1000);
  return done / 1e6 / ((performance.now() - t0) / 1000);
}

/**
 * Measures the building blocks on this machine.
 *
 * @example
 * ```ts
 * const report = await runBenchmark({ seconds: 1 });
 * for (const r of report.results) console.log(r.label, r.mbPerSecond.toFixed(0), `${r.percentOfReference.toFixed(0)} %`);
 * ```
 * @category Benchmark
 */
export async function runBenchmark(options: BenchmarkOptions = {}): Promise<BenchmarkReport> {
  const seconds = options.seconds ?? 1;
  await initHash();
  const random = randomFillSync(new Uint8Array(SIZE));
  const text = textData(SIZE);
  const results: BenchmarkResult[] = [];
  const record = (id: BenchmarkId, mbPerSecond: number): void => {
    throwIfAborted(options.signal);
    const ref = BENCHMARK_REFERENCE.mbPerSecond[id];
    const r: BenchmarkResult = { id, label: LABELS[id], mbPerSecond, referenceMbPerSecond: ref, percentOfReference: (100 * mbPerSecond) / ref };
    results.push(r);
    options.onResult?.(r);
  };
  const pieces = (data: Uint8Array): Uint8Array[] => Array.from({ length: data.byteLength / MiB }, (_, i) => data.subarray(i * MiB, (i + 1) * MiB));

  // The chunk format of every datastore today: what a backup digests and encodes with.
  const format = PLAIN_CHUNK_FORMAT;
  throwIfAborted(options.signal);
  record(
    'blake3',
    await measure(seconds, SIZE, () => {
      for (const p of pieces(random)) chunkDigest(format, p);
    }),
  );
  record(
    'lz4-compress',
    await measure(seconds, SIZE, () => {
      for (const p of pieces(text)) lz4Compress(p);
    }),
  );
  const compressed = pieces(text).map((p) => lz4Compress(p));
  record(
    'lz4-decompress',
    await measure(seconds, SIZE, () => {
      for (const c of compressed) lz4Decompress(c, MiB);
    }),
  );
  const chunker = Chunker.contentDefined({});
  record(
    'chunker',
    await measure(seconds, SIZE, () => {
      chunker.splitSync(random);
    }),
  );
  // Half text (compressed), half random (stored raw): what a restore decodes.
  const stored = [...pieces(text).slice(0, 8), ...pieces(random).slice(0, 8)].map((p) => {
    const e = encodeChunk(format, p, { compress: true });
    const bytes = new Uint8Array(e.header.byteLength + e.payload.byteLength);
    bytes.set(e.header, 0);
    bytes.set(e.payload, e.header.byteLength);
    return { bytes, digest: e.digest };
  });
  record(
    'verify',
    await measure(seconds, 16 * MiB, () => {
      for (const s of stored) decodeChunk(format, s.bytes, { code: 'ERR_CHUNK_CORRUPT', details: {}, expectDigest: s.digest });
    }),
  );
  const pool = new WorkerPool(options.threads === undefined ? {} : { threads: options.threads });
  try {
    const mix = [...pieces(text).slice(0, 8), ...pieces(random).slice(0, 8)];
    record(
      'pool-encode',
      await measure(seconds, 16 * MiB, async () => {
        // Each task gets its own copy (tasks take ownership of their buffer), as a backup's reader does.
        await Promise.all(mix.map((p) => pool.encode(new Uint8Array(p), { compress: true, known: null, format })));
      }),
    );
  } finally {
    await pool.close();
  }
  const all = cpus();
  return {
    cpu: { model: all[0]?.model ?? 'unknown', count: all.length },
    reference: { cpu: BENCHMARK_REFERENCE.cpu, cores: BENCHMARK_REFERENCE.cores, date: BENCHMARK_REFERENCE.date, node: BENCHMARK_REFERENCE.node },
    threads: pool.threads,
    results,
  };
}

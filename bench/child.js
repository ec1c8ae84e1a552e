/**
 * One benchmark scenario in a process of its own, so that its peak RSS is its own.
 *
 *   node bench/child.js '<json>'
 *
 * The JSON names the scenario and its inputs (see run.js). The child prints exactly one JSON line
 * on stdout: the scenario's numbers plus `maxRssKiB` (process.resourceUsage().maxRSS, the peak
 * resident set of the whole process, worker threads included), the RSS before the work started,
 * and the process's user and system CPU seconds. Errors go to stderr with exit code 1.
 */
import { readFileSync, mkdirSync, rmSync } from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { Datastore, WorkerPool, Chunker, DEFAULT_CDC_PARAMS } from '../dist/index.js';
import { initHash, blake3, crc32 } from '../dist/codec/hash.js';
import { lz4Compress, lz4Decompress } from '../dist/codec/compress.js';
import { Keystream, Rng, fillText } from './gen.js';

const MiB = 1024 * 1024;
const args = JSON.parse(process.argv[2] ?? '{}');
const rssStart = process.memoryUsage().rss;
const cpu0 = process.cpuUsage();
const now = () => performance.now() / 1000;

function storeOptions() {
  return args.threads === undefined ? {} : { threads: args.threads };
}

async function backup() {
  const t0 = now();
  const ds = args.create
    ? await Datastore.create(args.store, { ...storeOptions(), imageChunkSize: args.create.imageChunkSize, syncLevel: args.create.syncLevel })
    : await Datastore.open(args.store, storeOptions());
  const t1 = now();
  try {
    const w = await ds.group(args.group).backup({ time: args.time });
    const opts = {};
    if (args.chunkSize !== undefined) opts.chunkSize = args.chunkSize;
    if (args.changedFile !== undefined) opts.changed = { ranges: JSON.parse(readFileSync(args.changedFile, 'utf8')) };
    const stats = await w.addImage('disk', args.image, opts);
    const t2 = now();
    await w.commit();
    const t3 = now();
    return { ...stats, openSeconds: t1 - t0, addImageSeconds: t2 - t1, commitSeconds: t3 - t2, totalSeconds: t3 - t1 };
  } finally {
    await ds.close();
  }
}

/**
 * What the file system gives without Cairn: the ceilings the image scenarios run against.
 * - read: the image in 1 MiB pieces, sequentially (page cache);
 * - write-one: `bytes` to one new file in 1 MiB pieces, sequentially, then fsync (as a restore does);
 * - write-files: `bytes` as 1 MiB files in 256 directories, 8 at a time, write to a temporary name
 *   and rename (as the chunk store does), then one syncfs (`sync -f`).
 */
async function io() {
  const piece = MiB;
  const out = {};
  const buf = Buffer.allocUnsafe(piece);
  let t0 = now();
  const fh = await fsp.open(args.image, 'r');
  let total = 0;
  for (;;) {
    const { bytesRead } = await fh.read(buf, 0, piece, total);
    if (bytesRead === 0) break;
    total += bytesRead;
  }
  await fh.close();
  out.read = { mbs: total / (now() - t0) / 1e6, bytes: total };

  const bytes = args.ioBytes;
  const data = new Keystream('io', 'io').fill(Buffer.allocUnsafe(piece));
  const target = path.join(args.dir, 'io-one.bin');
  t0 = now();
  const w = await fsp.open(target, 'w');
  for (let pos = 0; pos < bytes; pos += piece) await w.write(data, 0, piece, pos);
  const t1 = now();
  await w.sync();
  await w.close();
  const t2 = now();
  out.writeOne = { mbs: bytes / (t2 - t0) / 1e6, writeSeconds: t1 - t0, fsyncSeconds: t2 - t1, bytes };
  rmSync(target, { force: true });

  const root = path.join(args.dir, 'io-files');
  for (let i = 0; i < 256; i++) mkdirSync(path.join(root, i.toString(16).padStart(2, '0')), { recursive: true });
  const n = Math.floor(bytes / piece);
  t0 = now();
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      const final = path.join(root, (i & 255).toString(16).padStart(2, '0'), `f${i}`);
      const tmp = `${final}.tmp`;
      const f = await fsp.open(tmp, 'wx');
      await f.write(data, 0, piece, 0);
      await f.close();
      await fsp.rename(tmp, final);
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  const t3 = now();
  const { spawnSync } = await import('node:child_process');
  spawnSync('sync', ['-f', root]);
  const t4 = now();
  out.writeFiles = { mbs: (n * piece) / (t4 - t0) / 1e6, writeSeconds: t3 - t0, syncSeconds: t4 - t3, files: n, bytes: n * piece };
  rmSync(root, { recursive: true, force: true });
  return out;
}

async function restore() {
  const t0 = now();
  const ds = await Datastore.open(args.store, storeOptions());
  const t1 = now();
  try {
    const snap = await ds.group(args.group).newest();
    if (snap === undefined) throw new Error('no snapshot to restore');
    const r = await snap.open(args.readAhead === undefined ? {} : { readAhead: args.readAhead });
    try {
      const stats = await r.restore('disk.img', args.target, { overwrite: true });
      const t2 = now();
      return { ...stats, openSeconds: t1 - t0, totalSeconds: t2 - t1 };
    } finally {
      await r.close();
    }
  } finally {
    await ds.close();
  }
}

/** Runs `fn` over `bytes` bytes repeatedly for at least `minSeconds`; returns MB/s (1e6). */
function rate(bytes, fn, minSeconds = 0.5) {
  fn(); // warm-up (JIT, lazy init)
  let n = 0;
  const t0 = now();
  let t = t0;
  while (t - t0 < minSeconds) {
    fn();
    n++;
    t = now();
  }
  return (bytes * n) / (t - t0) / 1e6;
}

async function micro() {
  const size = args.microBytes ?? 64 * MiB;
  const seed = args.seed;
  await initHash();
  const random = new Keystream(seed, 'micro').fill(Buffer.allocUnsafe(size));
  const text = fillText(Buffer.allocUnsafe(size), new Rng(`micro:${seed}`), { ms: Date.UTC(2026, 0, 1) });
  const out = {};

  // Content-defined chunker (default params), both scanners, on random data (cut points depend on
  // content: text and random data cost the same per byte).
  for (const scanner of ['native', 'js']) {
    let c;
    try {
      c = Chunker.contentDefined({}, { scanner });
    } catch (e) {
      out[`cdc_${scanner}`] = { error: e.message };
      continue;
    }
    let chunks = 0;
    const mbs = rate(size, () => (chunks = c.splitSync(random).length));
    out[`cdc_${scanner}`] = { mbs, chunks, avgChunk: size / chunks, params: DEFAULT_CDC_PARAMS };
  }

  // BLAKE3, one thread, 1 MiB pieces.
  const piece = MiB;
  out.blake3_1MiB = {
    mbs: rate(size, () => {
      for (let o = 0; o < size; o += piece) blake3(random.subarray(o, o + piece));
    }),
  };

  // LZ4 (lz4-napi), one thread, 1 MiB pieces: text compress/decompress, random compress.
  const textPieces = [];
  let textOut = 0;
  for (let o = 0; o < size; o += piece) {
    const c = lz4Compress(text.subarray(o, o + piece));
    textOut += c.byteLength;
    textPieces.push(c);
  }
  out.lz4_compress_text = {
    mbs: rate(size, () => {
      for (let o = 0; o < size; o += piece) lz4Compress(text.subarray(o, o + piece));
    }),
    ratio: textOut / size,
  };
  out.lz4_decompress_text = {
    mbs: rate(size, () => {
      for (const c of textPieces) lz4Decompress(c, piece);
    }),
  };
  let randOut = 0;
  for (let o = 0; o < size; o += piece) randOut += lz4Compress(random.subarray(o, o + piece)).byteLength;
  out.lz4_compress_random = {
    mbs: rate(size, () => {
      for (let o = 0; o < size; o += piece) lz4Compress(random.subarray(o, o + piece));
    }),
    ratio: randOut / size,
  };

  const zeros = Buffer.alloc(size);
  out.lz4_compress_zero = {
    mbs: rate(size, () => {
      for (let o = 0; o < size; o += piece) lz4Compress(zeros.subarray(o, o + piece));
    }),
  };
  out.blake3_zero = {
    mbs: rate(size, () => {
      for (let o = 0; o < size; o += piece) blake3(zeros.subarray(o, o + piece));
    }),
  };
  out.crc32 = {
    mbs: rate(size, () => {
      for (let o = 0; o < size; o += piece) crc32(random.subarray(o, o + piece));
    }),
  };

  // Worker pool: encode (zero check + BLAKE3 + sampled LZ4 + envelope) and hash, 1 MiB chunks of
  // the image mix (2 random : 1 text : 1 zero), all submitted at once. Each chunk is a fresh
  // buffer (transferred to the worker); making the copies is outside the timing.
  const pool = new WorkerPool(args.threads === undefined ? {} : { threads: args.threads });
  try {
    const zero = Buffer.alloc(piece);
    const make = () => {
      const list = [];
      for (let o = 0, i = 0; o < size; o += piece, i++) {
        const kind = i % 4;
        const src = kind < 2 ? random.subarray(o, o + piece) : kind === 2 ? text.subarray(o, o + piece) : zero;
        list.push(new Uint8Array(src));
      }
      return list;
    };
    // warm-up: start the workers and load BLAKE3 in each
    await Promise.all(
      make()
        .slice(0, 8)
        .map((u8) => pool.hash(u8)),
    );
    const runPool = async (op) => {
      let best = 0;
      for (let rep = 0; rep < 3; rep++) {
        const list = make();
        const t0 = now();
        await Promise.all(list.map((u8) => (op === 'encode' ? pool.encode(u8, { compress: true, known: null }) : pool.hash(u8))));
        best = Math.max(best, size / (now() - t0) / 1e6);
      }
      return best;
    };
    out.pool_encode_mix = { mbs: await runPool('encode'), threads: pool.threads };
    out.pool_hash = { mbs: await runPool('hash'), threads: pool.threads };
  } finally {
    await pool.close();
  }
  out.microBytes = size;
  return out;
}

const scenarios = { backup, restore, micro, io };

try {
  const fn = scenarios[args.scenario];
  if (fn === undefined) throw new Error(`unknown scenario ${args.scenario}`);
  const result = await fn();
  const cpu = process.cpuUsage(cpu0);
  const ru = process.resourceUsage();
  process.stdout.write(
    `${JSON.stringify({
      scenario: args.scenario,
      ...result,
      maxRssKiB: ru.maxRSS,
      rssStartKiB: Math.round(rssStart / 1024),
      cpuUserSeconds: cpu.user / 1e6,
      cpuSystemSeconds: cpu.system / 1e6,
    })}\n`,
  );
} catch (e) {
  process.stderr.write(`${e?.stack ?? e}\n`);
  process.exitCode = 1;
}

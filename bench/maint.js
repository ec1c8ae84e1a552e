#!/usr/bin/env node
/**
 * Cairn maintenance benchmark: garbage collection of a datastore with many chunks, verify
 * throughput, and prune planning on 10,000 snapshots.
 *
 *   node bench/maint.js [--chunks 1000000] [--out bench/results] [--verify-size 1G] [--no-write]
 *
 * GC and verify run in a child process (this script with --child) so each peak RSS is its own.
 * See the "Maintenance benchmark" section of bench/README.md.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes, randomFillSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { Datastore } from '../dist/index.js';
import { GarbageCollector } from '../dist/maintenance/gc.js';
import { Verifier } from '../dist/maintenance/verifier.js';
import { planPrune } from '../dist/maintenance/prune-plan.js';
import { encodeChunk } from '../dist/codec/chunk-codec.js';
import { initHash } from '../dist/codec/hash.js';
import { encodeFixedIndex, fixedIndexChecksum } from '../dist/format/fixed-index.js';
import { decodeManifest, encodeManifest } from '../dist/format/manifest.js';
import { MANIFEST_FILE, snapshotKey, archiveFileKey } from '../dist/datastore/layout.js';
import { generateImage } from './gen.js';
import { libraryCommit, machine, parseSize } from './common.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const MiB = 1024 * 1024;
const TARGETS = { gcSeconds: 60, gcRssMiB: 200, verifyMBs: 500 };
const now = () => performance.now() / 1000;
const verdict = (ok) => (ok ? 'PASS' : '**MISS**');

const { values: opt } = parseArgs({
  options: {
    chunks: { type: 'string', default: '1000000' },
    snapshots: { type: 'string', default: '20' },
    'chunk-bytes': { type: 'string', default: '512' },
    'verify-size': { type: 'string', default: '1G' },
    'prune-count': { type: 'string', default: '10000' },
    concurrency: { type: 'string', default: '128' },
    dir: { type: 'string' },
    out: { type: 'string', default: path.join(here, 'results') },
    'no-write': { type: 'boolean', default: false },
    child: { type: 'string' },
    report: { type: 'string' },
    store: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

if (opt.help) {
  process.stdout.write(`usage: node bench/maint.js [options]
  --chunks <n>        chunks in the GC datastore (default 1000000); half are referenced
  --snapshots <n>     snapshots referencing them (default 20)
  --chunk-bytes <n>   payload bytes per generated chunk (default 512)
  --verify-size <n>   image size of the verify backup (default 1G)
  --prune-count <n>   synthetic hourly snapshots for planPrune (default 10000)
  --concurrency <n>   chunk inserts in flight during setup (default 128)
  --dir <path>        scratch directory parent (default os.tmpdir())
  --out <dir>         results directory (default bench/results)
  --no-write          print only
  --report <json>     only re-render the .md of an existing results .json
`);
  process.exit(0);
}

// ---------------------------------------------------------------------------------------------
// Child: one measured operation, one JSON line on stdout

if (opt.child !== undefined) {
  const ds = await Datastore.open(opt.store, { threads: 2 });
  let result;
  const t0 = now();
  try {
    if (opt.child === 'gc') {
      const report = await new GarbageCollector(ds).run({ skewMs: 0 });
      result = { seconds: now() - t0, report };
    } else if (opt.child === 'verify') {
      const report = await new Verifier(ds).verify();
      const { snapshots, ...rest } = report;
      result = { seconds: now() - t0, report: { ...rest, snapshotCount: Array.isArray(snapshots) ? snapshots.length : snapshots } };
    } else {
      throw new Error(`unknown child ${opt.child}`);
    }
  } finally {
    await ds.close();
  }
  result.maxRSSMiB = process.resourceUsage().maxRSS / 1024;
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
}

function runChild(kind, store) {
  const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--child', kind, '--store', store], { encoding: 'utf8', maxBuffer: 64 * MiB });
  if (r.status !== 0) throw new Error(`${kind} child failed (${r.status}): ${r.stderr}`);
  const line = r.stdout.trim().split('\n').pop();
  return JSON.parse(line);
}

// ---------------------------------------------------------------------------------------------
// Scenarios

if (opt.report !== undefined) {
  const { readFileSync } = await import('node:fs');
  const res = JSON.parse(readFileSync(opt.report, 'utf8'));
  writeFileSync(opt.report.replace(/\.json$/, '.md'), render(res));
  process.stdout.write(render(res));
  process.exit(0);
}

const scratch = mkdtempSync(path.join(opt.dir ?? os.tmpdir(), 'cairn-maint-'));
const cleanup = () => rmSync(scratch, { recursive: true, force: true });
for (const sig of ['SIGINT', 'SIGTERM'])
  process.on(sig, () => {
    cleanup();
    process.exit(130);
  });

async function gcScenario() {
  const n = Number(opt.chunks);
  const nSnaps = Number(opt.snapshots);
  const chunkBytes = Number(opt['chunk-bytes']);
  const concurrency = Number(opt.concurrency);
  const store = path.join(scratch, 'gc-store');
  await initHash();
  const t0 = now();
  const ds = await Datastore.create(store, { syncLevel: 'none', threads: 2 });
  const digests = new Uint8Array(n * 32);
  const buf = Buffer.allocUnsafe(chunkBytes * 4096);
  let next = 0;
  async function worker() {
    for (;;) {
      const i = next++;
      if (i >= n) return;
      if (i % 4096 === 0) randomFillSync(buf);
      // Each chunk: 4 fresh random bytes over a random block (unique with overwhelming probability).
      const raw = Buffer.from(buf.subarray((i % 4096) * chunkBytes, ((i % 4096) + 1) * chunkBytes));
      raw.writeUInt32LE(i, 0);
      const c = encodeChunk(raw, { compress: false });
      digests.set(c.digest, i * 32);
      await ds.chunks.insert(c.digest, c.header, c.payload);
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker));
  const tChunks = now();
  // Snapshots reference the even-numbered chunks.
  const referenced = Math.floor((n + 1) / 2);
  const per = Math.ceil(referenced / nSnaps);
  let r = 0;
  for (let s = 0; s < nSnaps && r < referenced; s++) {
    const count = Math.min(per, referenced - r);
    const d = new Uint8Array(count * 32);
    for (let k = 0; k < count; k++, r++) d.set(digests.subarray(2 * r * 32, 2 * r * 32 + 32), k * 32);
    const size = count * 65536;
    const w = await ds.group('vm/100').backup({ time: 1_780_000_000 + s * 3600 });
    await w.addBlob('placeholder', ''); // a snapshot needs an archive; the manifest is rewritten below
    const snap = await w.commit();
    await ds.backend.delete(`${snapshotKey(snap.ref.nsParts, snap.ref.group, snap.ref.time)}/placeholder.blob`);
    const key = snapshotKey(snap.ref.nsParts, snap.ref.group, snap.ref.time);
    await ds.backend.put(archiveFileKey(key, 'disk.img'), encodeFixedIndex({ uuid: randomBytes(16), ctime: 1_780_000_000, size, chunkSize: 65536 }, d));
    const m = decodeManifest(await ds.backend.get(`${key}/${MANIFEST_FILE}`));
    m.files = [{ name: 'disk.img', kind: 'image', size, checksum: Buffer.from(fixedIndexChecksum(d)).toString('hex'), crypt: 'none', chunkSize: 65536 }];
    await ds.backend.put(`${key}/${MANIFEST_FILE}`, encodeManifest(m));
  }
  await ds.close();
  // A datastore at rest: the setup's dirty pages are written back before the GC starts, so the GC
  // is not billed for the setup's write-back (it was, before: 75 s at 1M chunks with 540 MB dirty).
  const tSync = now();
  spawnSync('sync', ['-f', store]);
  const syncSeconds = now() - tSync;
  const tSetup = now();
  // Make sure the cutoff (GC start − 0) is after every chunk's mtime.
  await new Promise((res) => setTimeout(res, 1100));
  const child = runChild('gc', store);
  rmSync(store, { recursive: true, force: true });
  const rep = child.report;
  return {
    chunks: n,
    chunkBytes,
    snapshots: nSnaps,
    referencedChunks: referenced,
    setup: { chunkSeconds: tChunks - t0, chunksPerSecond: n / (tChunks - t0), snapshotSeconds: tSync - tChunks, syncSeconds, totalSeconds: tSetup - t0 },
    seconds: child.seconds,
    gcSeconds: (rep.endMs - rep.startMs) / 1000,
    maxRSSMiB: child.maxRSSMiB,
    removedChunks: rep.removedChunks,
    keptChunks: rep.diskChunks,
    pendingChunks: rep.pendingChunks,
    report: rep,
    correct: rep.removedChunks === n - referenced && rep.diskChunks === referenced,
  };
}

async function verifyScenario() {
  const size = parseSize(opt['verify-size']);
  const image = path.join(scratch, 'disk.img');
  const store = path.join(scratch, 'verify-store');
  const tg = now();
  generateImage(image, size, '1');
  const t0 = now();
  const ds = await Datastore.create(store, { syncLevel: 'none', threads: 2 });
  const w = await ds.group('vm/200').backup({ time: 1_780_000_000 });
  const stats = await w.addImage('disk', image, {});
  await w.commit();
  await ds.close();
  const t1 = now();
  rmSync(image, { force: true });
  const child = runChild('verify', store);
  rmSync(store, { recursive: true, force: true });
  return {
    imageBytes: size,
    generateSeconds: t0 - tg,
    backupSeconds: t1 - t0,
    backupStats: stats,
    seconds: child.seconds,
    mbPerSecond: child.report.mbPerSecond,
    maxRSSMiB: child.maxRSSMiB,
    report: child.report,
  };
}

function pruneScenario() {
  const count = Number(opt['prune-count']);
  const start = Date.UTC(2025, 8, 1);
  const cands = [];
  for (let i = 0; i < count; i++) {
    cands.push({ time: new Date(start + i * 3600_000).toISOString().replace(/\.\d{3}Z$/, 'Z'), finished: true, protected: false });
  }
  const options = { keepLast: 3, keepHourly: 24, keepDaily: 30, keepWeekly: 8, keepMonthly: 12, keepYearly: 5, timeZone: 'UTC' };
  planPrune(cands, options); // warm-up
  const runs = [];
  let plan;
  for (let k = 0; k < 5; k++) {
    const t = performance.now();
    plan = planPrune(cands, options);
    runs.push(performance.now() - t);
  }
  const kept = plan.filter((e) => e.mark === 'keep').length;
  return { candidates: count, first: cands[0].time, last: cands[count - 1].time, options, ms: Math.min(...runs), runsMs: runs, kept, removed: plan.length - kept };
}

// ---------------------------------------------------------------------------------------------
// Main

let results;
try {
  const m = machine();
  process.stderr.write(`gc: ${opt.chunks} chunks...\n`);
  const gc = await gcScenario();
  process.stderr.write(`gc: ${gc.seconds.toFixed(1)} s, ${gc.maxRSSMiB.toFixed(0)} MiB\nverify...\n`);
  const verify = await verifyScenario();
  process.stderr.write(`verify: ${verify.mbPerSecond.toFixed(0)} MB/s\nprune...\n`);
  const prune = pruneScenario();
  results = { date: new Date().toISOString(), machine: m, commit: libraryCommit(), targets: TARGETS, gc, verify, prune };
} finally {
  cleanup();
}

function render(results) {
  const { machine: mm, gc, verify, prune } = results;
  const atTarget = gc.chunks >= 1_000_000;
  const gcVerdict = (ok) =>
    atTarget
      ? verdict(ok)
      : `not judged: ${gc.chunks.toLocaleString('en-US')} chunks, the target is for 1,000,000 (linear projection to 1M: ${((gc.seconds * 1e6) / gc.chunks).toFixed(0)} s)`;
  return `# Cairn maintenance benchmark, ${results.date.slice(0, 10)}

Machine: ${mm.cpu}, ${mm.cores} cores, ${mm.ramGiB} GiB RAM, ${mm.kernel}, Node ${mm.node} (host ${mm.host}). Library commit ${results.commit}.

## Garbage collection

${gc.chunks.toLocaleString('en-US')} chunks of ${gc.chunkBytes} random bytes (stored uncompressed), ${gc.snapshots} image snapshots (chunk size 64 KiB) referencing ${gc.referencedChunks.toLocaleString('en-US')} of them; GC with skew 0 in a child process.

| | value | target | |
|---|---|---|---|
| GC seconds (child, open to report) | ${gc.seconds.toFixed(1)} | < ${TARGETS.gcSeconds} | ${gcVerdict(gc.seconds < TARGETS.gcSeconds)} |
| GC peak RSS (MiB) | ${gc.maxRSSMiB.toFixed(0)} | < ${TARGETS.gcRssMiB} | ${atTarget ? verdict(gc.maxRSSMiB < TARGETS.gcRssMiB) : 'not judged (below 1M chunks)'} |
| GC seconds (report start → end) | ${gc.gcSeconds.toFixed(1)} | | |
| removed / kept / pending chunks | ${gc.removedChunks} / ${gc.keptChunks} / ${gc.pendingChunks} | ${gc.chunks - gc.referencedChunks} / ${gc.referencedChunks} / 0 | ${gc.correct ? 'correct' : '**WRONG**'} |
| setup: chunk inserts (s, chunks/s) | ${gc.setup.chunkSeconds.toFixed(1)} (${gc.setup.chunksPerSecond.toFixed(0)}/s) | | |
| setup: snapshots (s) | ${gc.setup.snapshotSeconds.toFixed(1)} | | |
| setup: write-back before GC (\`sync -f\`, s) | ${gc.setup.syncSeconds === undefined ? 'not done' : gc.setup.syncSeconds.toFixed(1)} | | |
| GC mark / sweep (s) | ${gc.report.markSeconds ?? '?'} / ${gc.report.sweepSeconds ?? '?'} | | |

## Verify

${(verify.imageBytes / 2 ** 30).toFixed(2)} GiB generated image (bench/gen.js, seed 1), one backup (default chunk size, sync level none), \`Verifier.verify()\` of the whole datastore in a child process.

| | value | target | |
|---|---|---|---|
| verify MB/s (decoded, 10⁶ B) | ${verify.mbPerSecond.toFixed(0)} | ≥ ${TARGETS.verifyMBs} | ${verdict(verify.mbPerSecond >= TARGETS.verifyMBs)} |
| verify seconds (child, open to report) | ${verify.seconds.toFixed(1)} | | |
| chunks checked / bytes checked / bytes read | ${verify.report.chunksChecked} / ${verify.report.bytesChecked} / ${verify.report.bytesRead} | | |
| verify peak RSS (MiB) | ${verify.maxRSSMiB.toFixed(0)} | | |
| setup: generate / backup (s) | ${verify.generateSeconds.toFixed(1)} / ${verify.backupSeconds.toFixed(1)} | | |

## Prune planning

\`planPrune\` on ${prune.candidates.toLocaleString('en-US')} hourly candidates (${prune.first} … ${prune.last}), keep-last 3, hourly 24, daily 30, weekly 8, monthly 12, yearly 5, time zone UTC; best of 5 after a warm-up.

| | value |
|---|---|
| ms | ${prune.ms.toFixed(1)} |
| kept / removed | ${prune.kept} / ${prune.removed} |
`;
}

const md = render(results);
const mm = results.machine;
process.stdout.write(md);
if (!opt['no-write']) {
  mkdirSync(opt.out, { recursive: true });
  const base = path.join(opt.out, `${results.date.slice(0, 10)}-${mm.host}-maint`);
  writeFileSync(`${base}.json`, `${JSON.stringify(results, null, 2)}\n`);
  writeFileSync(`${base}.md`, md);
  process.stderr.write(`wrote ${base}.json and .md\n`);
}

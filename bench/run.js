#!/usr/bin/env node
/**
 * Cairn benchmark: image backup / incremental / restore throughput and peak RSS, the chunk-size
 * trade-off, and the rates of the building blocks (CDC chunker, BLAKE3, LZ4, worker pool).
 *
 *   npm run build:ts && node bench/run.js [options]       (or: npm run bench -- [options])
 *
 * See bench/README.md for the options and what each number means. Every heavy scenario runs in a
 * child process (bench/child.js) so its peak RSS is measured alone.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync, openSync, readSync, closeSync, readFileSync, readdirSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { generateImage, rewriteBlocks, undoRewrite, BLOCK } from './gen.js';
import { libraryCommit, machine, parseSize } from './common.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

const TARGETS = { firstMBs: 600, restoreMBs: 700, rssMiB: 200 };
const ALL = ['micro', 'io', 'first', 'incr', 'restore', 'sweep'];
const DEFAULT_ONLY = ALL;

// ---------------------------------------------------------------------------------------------
// Options

const { values: opt } = parseArgs({
  options: {
    size: { type: 'string', default: '1G' },
    seed: { type: 'string', default: '1' },
    'chunk-sizes': { type: 'string', default: '64K,256K,1M,4M' },
    'sweep-size': { type: 'string' },
    only: { type: 'string' },
    out: { type: 'string', default: path.join(here, 'results') },
    threads: { type: 'string' },
    'sync-level': { type: 'string', default: 'filesystem' },
    'read-ahead': { type: 'string' },
    dir: { type: 'string' },
    'cpu-prof': { type: 'string' },
    'no-verify': { type: 'boolean', default: false },
    'no-write': { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
    report: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

if (opt.help) {
  process.stdout.write(`usage: node bench/run.js [options]
  --size <n>          image size: bytes or 512M / 1G / 4G (default 1G)
  --seed <s>          data seed (default 1)
  --only <list>       comma list of ${ALL.join(', ')} (default: all)
  --chunk-sizes <l>   sweep chunk sizes (default 64K,256K,1M,4M)
  --sweep-size <n>    image size of the sweep (default: --size)
  --threads <n>       worker threads (default: the library's, os.availableParallelism())
  --sync-level <l>    none | file | filesystem (default filesystem)
  --read-ahead <n>    restore read-ahead in chunks (default: the library's, 2 x threads + 2)
  --dir <path>        scratch directory (default: a new one under os.tmpdir())
  --out <dir>         results directory (default bench/results)
  --cpu-prof <dir>    run the children with --cpu-prof, profiles into <dir>
  --no-verify         do not compare the restored image with the source
  --no-write          print only, write no results files
  --keep              keep the scratch directory
  --report <json>     only re-render the .md of an existing results .json
`);
  process.exit(0);
}

function sizeLabel(n) {
  if (n % GiB === 0) return `${n / GiB}G`;
  if (n % MiB === 0) return `${n / MiB}M`;
  if (n % KiB === 0) return `${n / KiB}K`;
  return `${n}`;
}

const size = parseSize(opt.size);
const seed = opt.seed;
const chunkSizes = opt['chunk-sizes'].split(',').map(parseSize);
const sweepSize = opt['sweep-size'] === undefined ? size : parseSize(opt['sweep-size']);
const only = opt.only === undefined ? DEFAULT_ONLY : opt.only.split(',').map((s) => s.trim());
for (const o of only) if (!ALL.includes(o)) throw new Error(`--only: unknown scenario '${o}' (known: ${ALL.join(', ')})`);
const threads = opt.threads === undefined ? undefined : Number(opt.threads);
const syncLevel = opt['sync-level'];
const effectiveThreads = threads ?? os.availableParallelism();
const readAhead = opt['read-ahead'] === undefined ? undefined : Number(opt['read-ahead']);

// ---------------------------------------------------------------------------------------------
// Machine

// ---------------------------------------------------------------------------------------------
// Scratch space, cleaned up on every exit path

const scratch = opt.dir === undefined ? mkdtempSync(path.join(os.tmpdir(), 'cairn-bench-')) : mkdtempSync(path.join(path.resolve(opt.dir), 'cairn-bench-'));
let cleaned = false;
function cleanup() {
  if (cleaned || opt.keep) return;
  cleaned = true;
  rmSync(scratch, { recursive: true, force: true });
}
process.on('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    cleanup();
    process.exit(130);
  });
}

/** Flushes dirty pages of the scratch filesystem, so one step's writeback is not billed to the next. */
function flush() {
  spawnSync('sync', ['-f', scratch], { stdio: 'ignore' });
}

const log = (s) => process.stderr.write(`${s}\n`);

// ---------------------------------------------------------------------------------------------
// Children

let profN = 0;
async function child(args) {
  flush();
  const nodeArgs = [];
  if (opt['cpu-prof'] !== undefined) {
    // One directory per child: the main thread's and each worker thread's profile land in it.
    const dir = path.resolve(opt['cpu-prof'], `${String(++profN).padStart(2, '0')}-${args.label ?? args.scenario}`);
    mkdirSync(dir, { recursive: true });
    nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${dir}`);
  }
  const full = { threads, ...args };
  const t0 = performance.now();
  const p = spawn(process.execPath, [...nodeArgs, path.join(here, 'child.js'), JSON.stringify(full)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  p.stdout.on('data', (d) => (out += d));
  p.stderr.on('data', (d) => (err += d));
  const code = await new Promise((resolve, reject) => {
    p.on('error', reject);
    p.on('close', resolve);
  });
  const wall = (performance.now() - t0) / 1000;
  if (code !== 0) throw new Error(`child ${args.label ?? args.scenario} failed (exit ${code}):\n${err}`);
  const line = out.trim().split('\n').pop();
  const r = JSON.parse(line);
  r.processWallSeconds = wall;
  r.maxRssMiB = r.maxRssKiB / 1024;
  return r;
}

let snapTime = 1767225600; // 2026-01-01T00:00:00Z; each backup one minute later
const nextTime = () => (snapTime += 60);

async function backup(label, store, image, extra = {}) {
  log(`  ${label} ...`);
  const r = await child({ scenario: 'backup', label, store, image, group: 'vm/100', time: nextTime(), ...extra });
  r.label = label;
  r.mbs = r.bytes / r.totalSeconds / 1e6;
  log(`  ${label}: ${r.mbs.toFixed(0)} MB/s, ${r.totalSeconds.toFixed(2)} s, peak RSS ${r.maxRssMiB.toFixed(0)} MiB, stored ${(r.bytesStored / 1e6).toFixed(1)} MB`);
  return r;
}

async function restore(label, store, target) {
  log(`  ${label} ...`);
  const r = await child({ scenario: 'restore', label, store, group: 'vm/100', target, readAhead });
  r.label = label;
  r.mbs = r.bytes / r.totalSeconds / 1e6;
  log(`  ${label}: ${r.mbs.toFixed(0)} MB/s, ${r.totalSeconds.toFixed(2)} s, peak RSS ${r.maxRssMiB.toFixed(0)} MiB`);
  return r;
}

/** Compares two files byte for byte (outside any timing). */
function sameFile(a, b) {
  if (statSync(a).size !== statSync(b).size) return false;
  const fa = openSync(a, 'r');
  const fb = openSync(b, 'r');
  const ba = Buffer.allocUnsafe(8 * MiB);
  const bb = Buffer.allocUnsafe(8 * MiB);
  try {
    for (let pos = 0; ;) {
      const na = readSync(fa, ba, 0, ba.length, pos);
      const nb = readSync(fb, bb, 0, bb.length, pos);
      if (na !== nb) return false;
      if (na === 0) return true;
      if (!ba.subarray(0, na).equals(bb.subarray(0, nb))) return false;
      pos += na;
    }
  } finally {
    closeSync(fa);
    closeSync(fb);
  }
}

function makeImage(file, bytes) {
  log(`generating ${sizeLabel(bytes)} image (seed ${seed}) ...`);
  const t0 = performance.now();
  const counts = generateImage(file, bytes, seed);
  const seconds = (performance.now() - t0) / 1000;
  log(`  ${seconds.toFixed(1)} s: ${(counts.random / MiB).toFixed(0)} MiB random, ${(counts.text / MiB).toFixed(0)} MiB text, ${(counts.zero / MiB).toFixed(0)} MiB zeros`);
  return { ...counts, seconds };
}

function rewrite(file, bytes, label) {
  const rw = rewriteBlocks(file, bytes, seed, label, 0.01);
  const rangesFile = path.join(scratch, `changed-${label}.json`);
  writeFileSync(rangesFile, JSON.stringify(rw.ranges));
  return { ...rw, rangesFile, blocks: rw.ranges.length, bytes: rw.ranges.length * BLOCK };
}

// ---------------------------------------------------------------------------------------------
// The run

const results = {
  date: new Date().toISOString(),
  commit: libraryCommit(),
  machine: machine(),
  // 1-minute load average at the start and the end: above the core count, other processes shared the CPU.
  loadAverage: { start: os.loadavg()[0], end: undefined },
  parameters: {
    size,
    sizeLabel: sizeLabel(size),
    seed,
    only,
    threads: effectiveThreads,
    threadsExplicit: threads !== undefined,
    syncLevel,
    readAhead: readAhead ?? `library default (${2 * effectiveThreads + 2})`,
    chunkSizes: only.includes('sweep') ? chunkSizes : undefined,
    sweepSize: only.includes('sweep') ? sweepSize : undefined,
    defaultImageChunkSize: undefined,
    layout: 'per 64 MiB region: ~50% random (AES-CTR), ~25% pseudo log text, ~25% zeros (holes); 4 KiB-aligned jitter ±1 MiB',
    rewrite: '1% of the 4 KiB blocks at seeded random positions, new random content',
    cache: 'source image in the page cache (just written; caches are not dropped); sync -f before each scenario',
    units: 'MB/s = 1e6 bytes per second of the image size; RSS in MiB (2^20)',
  },
  targets: TARGETS,
  image: undefined,
  micro: undefined,
  io: undefined,
  scenarios: [],
  sweep: undefined,
};

async function main() {
  const { DEFAULT_IMAGE_CHUNK_SIZE } = await import('../dist/index.js');
  results.parameters.defaultImageChunkSize = DEFAULT_IMAGE_CHUNK_SIZE;
  log(`scratch ${scratch}; size ${sizeLabel(size)}; threads ${effectiveThreads}; sync ${syncLevel}`);

  if (only.includes('micro')) {
    log('micro: chunker, BLAKE3, LZ4, pool ...');
    results.micro = await child({ scenario: 'micro', seed, microBytes: 64 * MiB });
  }

  const needImage = only.some((o) => o === 'io' || o === 'first' || o === 'incr' || o === 'restore');
  const image = path.join(scratch, 'disk.img');
  const undo = [];
  if (needImage) {
    results.image = makeImage(image, size);
    if (only.includes('io')) {
      log('io: file-system ceilings ...');
      results.io = await child({ scenario: 'io', image, dir: scratch, ioBytes: Math.min(size, GiB) });
      log(`  read ${f0(results.io.read.mbs)} MB/s, write one file ${f0(results.io.writeOne.mbs)} MB/s, write 1 MiB files ${f0(results.io.writeFiles.mbs)} MB/s`);
    }
  }
  if (only.some((o) => o === 'first' || o === 'incr' || o === 'restore')) {
    const store = path.join(scratch, 'store');
    const create = { imageChunkSize: DEFAULT_IMAGE_CHUNK_SIZE, syncLevel };
    // incr and restore need a first backup: it is always run (and reported).
    results.scenarios.push(await backup('first', store, image, { create }));
    if (only.includes('incr')) {
      results.scenarios.push(await backup('incr-nochange', store, image));
      const a = rewrite(image, size, 'a');
      undo.push(a);
      results.scenarios.push(await backup('incr-1pct-map', store, image, { changedFile: a.rangesFile }));
      const b = rewrite(image, size, 'b');
      undo.push(b);
      results.scenarios.push(await backup('incr-1pct-nomap', store, image));
      for (const s of results.scenarios.slice(-2)) s.rewrittenBytes = a.bytes;
    }
    if (only.includes('restore')) {
      const target = path.join(scratch, 'restored.img');
      const r = await restore('restore', store, target);
      if (!opt['no-verify']) {
        r.verified = sameFile(image, target);
        log(`  restore verified: ${r.verified}`);
        if (!r.verified) throw new Error('restored image differs from the source');
      }
      results.scenarios.push(r);
      rmSync(target, { force: true });
    }
    rmSync(store, { recursive: true, force: true });
  }

  if (only.includes('sweep')) {
    let sweepImage = image;
    if (!needImage || sweepSize !== size) {
      rmSync(image, { force: true });
      sweepImage = path.join(scratch, 'sweep.img');
      results.sweepImage = makeImage(sweepImage, sweepSize);
    } else {
      for (const u of undo.reverse()) undoRewrite(image, u);
    }
    results.sweep = [];
    for (const cs of chunkSizes) {
      log(`sweep: chunk size ${sizeLabel(cs)}`);
      const store = path.join(scratch, `store-${sizeLabel(cs)}`);
      const first = await backup(`sweep-${sizeLabel(cs)}-first`, store, sweepImage, { create: { imageChunkSize: cs, syncLevel } });
      const rw = rewrite(sweepImage, sweepSize, 'sweep'); // the same blocks for every chunk size
      const incr = await backup(`sweep-${sizeLabel(cs)}-incr`, store, sweepImage, { changedFile: rw.rangesFile });
      const target = path.join(scratch, 'restored.img');
      const rest = await restore(`sweep-${sizeLabel(cs)}-restore`, store, target);
      if (!opt['no-verify']) {
        rest.verified = sameFile(sweepImage, target);
        if (!rest.verified) throw new Error(`sweep ${sizeLabel(cs)}: restored image differs from the source`);
      }
      rmSync(target, { force: true });
      undoRewrite(sweepImage, rw);
      rmSync(store, { recursive: true, force: true });
      const chunksTotal = Math.ceil(sweepSize / cs);
      results.sweep.push({
        chunkSize: cs,
        first,
        incr,
        restore: rest,
        rewrittenBytes: rw.bytes,
        rewrittenBlocks: rw.blocks,
        chunksTotal,
        // Chunks expected to contain at least one rewritten block (blocks drawn uniformly).
        chunksTouchedExpected: chunksTotal * (1 - Math.pow(1 - 0.01, cs / BLOCK)),
      });
    }
  }

  results.loadAverage.end = os.loadavg()[0];
  const md = markdown(results);
  process.stdout.write(`\n${md}\n`);
  if (!opt['no-write']) {
    mkdirSync(opt.out, { recursive: true });
    const day = results.date.slice(0, 10);
    const suffix = opt.only === undefined ? '' : `-${only.join('+')}`;
    const base = path.join(opt.out, `${day}-${results.machine.host}-${sizeLabel(size)}${suffix}`);
    writeFileSync(`${base}.json`, `${JSON.stringify(results, null, 2)}\n`);
    writeFileSync(`${base}.md`, md);
    log(`wrote ${base}.json and .md`);
  }
}

// ---------------------------------------------------------------------------------------------
// Report

const f0 = (x) => (x === undefined || x === null || Number.isNaN(x) ? '–' : x.toFixed(0));
const f1 = (x) => (x === undefined || x === null || Number.isNaN(x) ? '–' : x.toFixed(1));
const f2 = (x) => (x === undefined || x === null || Number.isNaN(x) ? '–' : x.toFixed(2));
const mb = (x) => (x / 1e6).toFixed(1);
const pass = (ok) => (ok ? 'PASS' : '**MISS**');

/** The peak RSS of the newest 1 GiB result (other than this run) in the results directory, for the flatness check. */
function baselineRss() {
  try {
    const files = readdirSync(opt.out)
      .filter((f) => /-1G(-[a-z+]+)?\.json$/.test(f))
      .sort();
    for (const f of files.reverse()) {
      const j = JSON.parse(readFileSync(path.join(opt.out, f), 'utf8'));
      const byLabel = Object.fromEntries(j.scenarios.map((s) => [s.label, s.maxRssMiB]));
      if (byLabel.first !== undefined) return { file: f, first: byLabel.first, restore: byLabel.restore };
    }
  } catch {
    /* no baseline */
  }
  return undefined;
}

function markdown(r) {
  const m = r.machine;
  const p = r.parameters;
  const L = [];
  L.push(`# Cairn benchmark — ${p.sizeLabel} image, ${r.date.slice(0, 10)}`);
  L.push('');
  L.push(`**Library:** commit ${r.commit} (dist/ built from it)`);
  L.push('');
  L.push(`**Machine:** ${m.cpu}, ${m.cores} cores, ${m.ramGiB} GiB RAM, ${m.kernel}, Node ${m.node} (host ${m.host})`);
  L.push('');
  const la = r.loadAverage ?? { start: null, end: null };
  const busy = Math.max(la.start, la.end ?? 0) > m.cores;
  L.push(
    `**Load average (1 min):** ${f1(la.start)} at the start, ${f1(la.end)} at the end${busy ? ` — **above the ${m.cores} cores: other processes shared the CPU, so the numbers are pessimistic**` : ''}`,
  );
  L.push('');
  L.push(
    `**Parameters:** size ${p.sizeLabel} (${p.size} bytes), seed ${p.seed}, threads ${p.threads}${p.threadsExplicit ? '' : ' (library default)'}, ` +
      `sync level \`${p.syncLevel}\`, restore read-ahead ${p.readAhead}, image chunk size ${sizeLabel(p.defaultImageChunkSize)} (DEFAULT_IMAGE_CHUNK_SIZE), scenarios ${p.only.join(', ')}` +
      (p.chunkSizes ? `; sweep chunk sizes ${p.chunkSizes.map(sizeLabel).join(', ')} on a ${sizeLabel(p.sweepSize)} image` : ''),
  );
  L.push('');
  L.push(`Data: ${p.layout}. Rewrite: ${p.rewrite}. ${p.cache}. Units: ${p.units}.`);
  L.push('');
  if (r.image) {
    const i = r.image;
    L.push(`Image: ${(i.random / MiB).toFixed(0)} MiB random, ${(i.text / MiB).toFixed(0)} MiB text, ${(i.zero / MiB).toFixed(0)} MiB zeros (generated in ${f1(i.seconds)} s).`);
    L.push('');
  }
  if (r.io) {
    const o = r.io;
    L.push('## File-system ceilings (no Cairn)');
    L.push('');
    L.push('| what | MB/s | note |');
    L.push('|---|---:|---|');
    L.push(`| read the image, 1 MiB sequential | ${f0(o.read.mbs)} | page cache |`);
    L.push(
      `| write one file, 1 MiB sequential + fsync | ${f0(o.writeOne.mbs)} | ${mb(o.writeOne.bytes)} MB; write ${f2(o.writeOne.writeSeconds)} s + fsync ${f2(o.writeOne.fsyncSeconds)} s (a restore's pattern) |`,
    );
    L.push(
      `| write 1 MiB files (tmp + rename, 8 at a time) + syncfs | ${f0(o.writeFiles.mbs)} | ${o.writeFiles.files} files; write ${f2(o.writeFiles.writeSeconds)} s + sync ${f2(o.writeFiles.syncSeconds)} s (the chunk store's pattern) |`,
    );
    L.push('');
  }
  if (r.scenarios.length > 0) {
    L.push('## Image backup and restore');
    L.push('');
    L.push(
      'Throughput = image size / seconds; backup seconds run from `group.backup()` to the end of `commit()` (syncfs included), restore seconds from `snapshot.open()` to the end of `restore()` (fsync of the target included). Datastore open and process start are not included (see JSON).',
    );
    L.push('');
    L.push(
      '| scenario | MB/s | seconds | peak RSS MiB | CPU user+sys s | chunks | written | duplicate | known | reused | zero | bytes read MB | bytes stored MB | target | pass |',
    );
    L.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|');
    for (const s of r.scenarios) {
      const isRestore = s.scenario === 'restore';
      const checks = [];
      const targets = [];
      if (s.label === 'first') {
        targets.push(`≥ ${TARGETS.firstMBs} MB/s`);
        checks.push(s.mbs >= TARGETS.firstMBs);
      }
      if (isRestore) {
        targets.push(`≥ ${TARGETS.restoreMBs} MB/s`);
        checks.push(s.mbs >= TARGETS.restoreMBs);
      }
      targets.push(`RSS ≤ ${TARGETS.rssMiB}`);
      checks.push(s.maxRssMiB <= TARGETS.rssMiB);
      const verdict = checks.every(Boolean) ? 'PASS' : `**MISS** (${checks.map((c) => (c ? 'ok' : 'miss')).join('/')})`;
      const cpu = `${f1(s.cpuUserSeconds)}+${f1(s.cpuSystemSeconds)}`;
      if (isRestore) {
        L.push(
          `| ${s.label}${s.verified ? ' (verified)' : ''} | ${f0(s.mbs)} | ${f2(s.totalSeconds)} | ${f0(s.maxRssMiB)} | ${cpu} | ${s.chunksRead + s.zeroChunks} | – | – | – | – | ${s.zeroChunks} | – | – | ${targets.join(', ')} | ${verdict} |`,
        );
      } else {
        L.push(
          `| ${s.label} | ${f0(s.mbs)} | ${f2(s.totalSeconds)} | ${f0(s.maxRssMiB)} | ${cpu} | ${s.chunks} | ${s.chunksWritten} | ${s.chunksDuplicate} | ${s.chunksKnown} | ${s.chunksReused} | ${s.chunksZero} | ${mb(s.bytesRead)} | ${mb(s.bytesStored)} | ${targets.join(', ')} | ${verdict} |`,
        );
      }
    }
    L.push('');
    const first = r.scenarios.find((s) => s.label === 'first');
    if (first) {
      L.push(
        `First backup breakdown: addImage ${f2(first.addImageSeconds)} s, commit (syncfs + manifest) ${f2(first.commitSeconds)} s; datastore create ${f2(first.openSeconds)} s (not in the throughput). ` +
          `Stored ${mb(first.bytesStored)} MB for a ${mb(first.bytes)} MB image (${f1((100 * first.bytesStored) / first.bytes)} %).`,
      );
      L.push('');
    }
    const incr = r.scenarios.filter((s) => s.rewrittenBytes !== undefined);
    for (const s of incr) {
      L.push(
        `${s.label}: ${mb(s.rewrittenBytes)} MB rewritten → ${mb(s.bytesStored)} MB newly stored (×${f1(s.bytesStored / s.rewrittenBytes)}), ${s.chunksWritten} of ${s.chunks} chunks written.`,
      );
    }
    if (incr.length > 0) L.push('');
    if (p.size > GiB) {
      const base = baselineRss();
      const f = r.scenarios.find((s) => s.label === 'first');
      const rs = r.scenarios.find((s) => s.label === 'restore');
      if (base && f) {
        const flat = (a, b) => b !== undefined && a !== undefined && a <= b * 1.1 + 16;
        L.push(
          `RSS flatness vs 1 GiB (${base.file}): first backup ${f0(f.maxRssMiB)} vs ${f0(base.first)} MiB — ${pass(flat(f.maxRssMiB, base.first))}` +
            (rs ? `; restore ${f0(rs.maxRssMiB)} vs ${f0(base.restore)} MiB — ${pass(flat(rs.maxRssMiB, base.restore))}` : '') +
            ' (flat: at most +10 % +16 MiB).',
        );
        L.push('');
      }
    }
  }
  if (r.sweep) {
    L.push(`## Image chunk size trade-off (${sizeLabel(p.sweepSize)} image)`);
    L.push('');
    L.push(
      'For each chunk size: a fresh datastore, first backup, then 1 % of the 4 KiB blocks rewritten at random positions (the same blocks for every size) and an incremental backup with the changed-block map, then a restore of that snapshot.',
    );
    L.push(
      '"new MB" is what the incremental stored (compressed); "×rewritten" divides it by the bytes actually rewritten; "dedup" is image size / new bytes. Chunks touched "exp." is the expectation for uniformly placed blocks.',
    );
    L.push('');
    L.push(
      '| chunk | first MB/s | first RSS MiB | first stored MB | incr s | chunks written / total (exp.) | new MB | ×rewritten | % of image | dedup | restore MB/s | restore RSS MiB |',
    );
    L.push('|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|');
    for (const s of r.sweep) {
      L.push(
        `| ${sizeLabel(s.chunkSize)} | ${f0(s.first.mbs)} | ${f0(s.first.maxRssMiB)} | ${mb(s.first.bytesStored)} | ${f2(s.incr.totalSeconds)} | ${s.incr.chunksWritten} / ${s.chunksTotal} (${f0(s.chunksTouchedExpected)}) | ${mb(s.incr.bytesStored)} | ${f1(s.incr.bytesStored / s.rewrittenBytes)} | ${f1((100 * s.incr.bytesStored) / p.sweepSize)} | ${f1(p.sweepSize / s.incr.bytesStored)} | ${f0(s.restore.mbs)} | ${f0(s.restore.maxRssMiB)} |`,
      );
    }
    L.push('');
  }
  if (r.micro) {
    const u = r.micro;
    L.push(`## Building blocks (${sizeLabel(u.microBytes)} in memory, 1 MiB pieces; one thread unless noted)`);
    L.push('');
    L.push('| what | MB/s | note |');
    L.push('|---|---:|---|');
    for (const k of ['cdc_native', 'cdc_js']) {
      const c = u[k];
      if (c?.error) L.push(`| CDC chunker (${k.slice(4)}) | – | ${c.error} |`);
      else if (c)
        L.push(
          `| CDC chunker (${k.slice(4)}), splitSync | ${f0(c.mbs)} | avg chunk ${f0(c.avgChunk / KiB)} KiB (params ${c.params.min / KiB}K/${c.params.avg / KiB}K/${c.params.max / KiB}K) |`,
        );
    }
    L.push(`| BLAKE3 | ${f0(u.blake3_1MiB.mbs)} | |`);
    L.push(`| LZ4 compress, text | ${f0(u.lz4_compress_text.mbs)} | ratio ${f2(u.lz4_compress_text.ratio)} |`);
    L.push(`| LZ4 decompress, text | ${f0(u.lz4_decompress_text.mbs)} | |`);
    L.push(`| LZ4 compress, random | ${f0(u.lz4_compress_random.mbs)} | ratio ${f2(u.lz4_compress_random.ratio)} |`);
    if (u.lz4_compress_zero) L.push(`| LZ4 compress, zeros | ${f0(u.lz4_compress_zero.mbs)} | |`);
    if (u.crc32) L.push(`| CRC-32 (node:zlib) | ${f0(u.crc32.mbs)} | envelope checksum |`);
    L.push(
      `| pool encode, image mix (2 random : 1 text : 1 zero) | ${f0(u.pool_encode_mix.mbs)} | ${u.pool_encode_mix.threads} threads; zero check + BLAKE3 + sampled LZ4 + envelope |`,
    );
    L.push(`| pool hash | ${f0(u.pool_hash.mbs)} | ${u.pool_hash.threads} threads |`);
    L.push('');
  }
  return `${L.join('\n')}\n`;
}

try {
  if (opt.report !== undefined) {
    const j = JSON.parse(readFileSync(opt.report, 'utf8'));
    writeFileSync(opt.report.replace(/\.json$/, '.md'), markdown(j));
  } else {
    await main();
  }
} catch (e) {
  log(e?.stack ?? String(e));
  process.exitCode = 1;
} finally {
  cleanup();
}

#!/usr/bin/env node
/**
 * The bench suite (`npm run bench`): every scenario on three seeded data sets, with restic and borg
 * in the same run when they are installed (bench/setup), one table per data set.
 *
 *   bench/setup && npm run bench                  # 1 GiB images, a 128 MiB source tree; < 15 min on 2 cores
 *   node bench/suite.js --size 256M --no-write    # a quick look
 *
 * Per data set (bench/datasets.js) and tool (bench/tools.js): first backup of version 1,
 * incremental backups of versions 2 and 3, restore of version 3 (compared with the source outside
 * the timing), FUSE (fresh mount, cold caches: sequential read of the image or `find -ls` of the
 * tree), verify (every chunk decoded and hashed), prune to the newest snapshot + garbage collection;
 * the repository's size after each step, hence the deduplication ratio across the versions; the
 * peak RSS of every step. Caches are dropped before each timed step when running as root.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { dropCaches, duBytes, libraryCommit, machine, onPath, parseSize, peakRssMiB, timed } from './common.js';
import { DATASETS } from './datasets.js';
import { CLI, makeTools, peerMountUnavailable, peerVersion } from './tools.js';
import { compare, walk } from './walk.js';
import { markdown } from './suite-report.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const { values: opt } = parseArgs({
  options: {
    size: { type: 'string', default: '1G' },
    seed: { type: 'string', default: '1' },
    only: { type: 'string', default: Object.keys(DATASETS).join(',') },
    peers: { type: 'string', default: 'restic,borg' },
    dir: { type: 'string' },
    out: { type: 'string', default: path.join(here, 'results') },
    'no-write': { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
    report: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (opt.help) {
  process.stdout.write(`usage: node bench/suite.js [--size 1G] [--seed 1] [--only ${Object.keys(DATASETS).join(',')}]
                           [--peers restic,borg] [--dir <parent>] [--out bench/results] [--no-write] [--keep]
       node bench/suite.js --report <results.json>     (re-render the Markdown)
`);
  process.exit(0);
}

function write(result, md) {
  process.stdout.write(md);
  if (opt['no-write']) return;
  mkdirSync(opt.out, { recursive: true });
  const base = path.join(opt.out, `${result.date.slice(0, 10)}-${result.machine.host}-suite-${result.params.sizeLabel}`);
  writeFileSync(`${base}.json`, `${JSON.stringify(result, null, 2)}\n`);
  writeFileSync(`${base}.md`, md);
  process.stdout.write(`wrote ${base}.json and .md\n`);
}

if (opt.report !== undefined) {
  const result = JSON.parse(readFileSync(opt.report, 'utf8'));
  write(result, markdown(result));
  process.exit(0);
}

try {
  readFileSync(CLI);
} catch {
  process.stderr.write('bench/suite.js: dist/ is missing; run `npm run build` first (npm run bench does)\n');
  process.exit(2);
}
for (const name of opt.only.split(',')) {
  if (!(name in DATASETS)) {
    process.stderr.write(`bench/suite.js: unknown data set ${name} (known: ${Object.keys(DATASETS).join(', ')})\n`);
    process.exit(2);
  }
}

const size = parseSize(opt.size);
const seed = opt.seed;
const peersWanted = opt.peers === '' ? [] : opt.peers.split(',');
const peers = peersWanted.filter(onPath);
const root = process.getuid?.() === 0;
const scratch = mkdtempSync(path.join(opt.dir ?? os.tmpdir(), 'cairn-suite-'));

// Cleanup: FUSE mounts and loop mounts first, then the scratch directory (also on SIGINT/SIGTERM).
const live = { mounts: new Set(), datasets: [] };
let cleaned = false;
function cleanup() {
  if (cleaned) return;
  cleaned = true;
  for (const mnt of live.mounts) spawnSync('fusermount', ['-u', mnt]);
  for (const ds of live.datasets) ds.cleanup();
  if (!opt.keep) rmSync(scratch, { recursive: true, force: true });
  else process.stderr.write(`kept ${scratch}\n`);
}
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    cleanup();
    process.exit(130);
  });
}

const log = (s) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${s}\n`);

function sha256File(file) {
  const h = createHash('sha256');
  const fd = openSync(file, 'r');
  const buf = Buffer.allocUnsafe(8 << 20);
  try {
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
    }
  } finally {
    closeSync(fd);
  }
  return h.digest('hex');
}

/** Runs one step of a tool after dropping caches; a failure is recorded, not fatal. */
async function step(rec, key, fn) {
  dropCaches();
  try {
    rec.steps[key] = await fn();
    delete rec.steps[key].stdout;
  } catch (e) {
    rec.steps[key] = { error: String(e.message ?? e).slice(0, 2000) };
    log(`  ${rec.name} ${key}: FAILED ${rec.steps[key].error.split('\n')[0]}`);
  }
  return rec.steps[key];
}

/** The FUSE step: fresh mount, then `dd` of the image or `find -ls` of the tree, cold caches. */
async function fuseStep(tool, ds) {
  const mnt = path.join(scratch, `mnt-${tool.name}`);
  const t0 = performance.now();
  const m = await tool.mount(mnt);
  live.mounts.add(mnt);
  const mountSeconds = (performance.now() - t0) / 1000;
  try {
    dropCaches();
    if (ds.kind === 'image') {
      const r = timed('dd', [`if=${path.join(m.path, 'disk.img')}`, 'of=/dev/null', 'bs=1M']);
      return { seconds: r.seconds, mountSeconds, what: 'dd bs=1M', mountRssMiB: peakRssMiB(m.pid) };
    }
    const r = timed('find', [m.path, '-ls']);
    return { seconds: r.seconds, entries: r.stdout.split('\n').length - 1, mountSeconds, what: 'find -ls', mountRssMiB: peakRssMiB(m.pid) };
  } finally {
    await tool.unmount(mnt);
    live.mounts.delete(mnt);
  }
}

const started = performance.now();
const result = {
  date: new Date().toISOString(),
  machine: machine(),
  commit: libraryCommit(),
  params: { size, sizeLabel: opt.size, seed, datasets: opt.only.split(','), root },
  loadAverage: { start: os.loadavg()[0] },
  peers: Object.fromEntries(peers.map((p) => [p, peerVersion(p)])),
  peersMissing: peersWanted.filter((p) => !peers.includes(p)),
  peerMountUnavailable: Object.fromEntries(peers.map((p) => [p, peerMountUnavailable(p)]).filter(([, v]) => v !== null)),
  datasets: {},
};
if (!root) log('not root: caches are not dropped between steps and the vm-ext4 data set is skipped');

try {
  for (const name of result.params.datasets) {
    const Ds = DATASETS[name];
    const why = Ds.unavailable();
    if (why !== null) {
      result.datasets[name] = { skipped: why };
      log(`${name}: skipped (${why})`);
      continue;
    }
    const dsDir = path.join(scratch, name);
    mkdirSync(dsDir);
    const ds = new Ds(dsDir, size, seed);
    live.datasets.push(ds);
    const out = (result.datasets[name] = { description: ds.description, kind: ds.kind, versions: [], tools: {} });
    const tools = makeTools(ds.kind, { scratch: dsDir, dataDir: ds.dir, peers });
    let lastInfo;
    for (let v = 1; v <= 3; v++) {
      const g0 = performance.now();
      const info = await ds.advance(v);
      lastInfo = info;
      out.versions.push({ ...info, records: undefined, changed: info.changed ? info.changed.length : null, generateSeconds: (performance.now() - g0) / 1000 });
      log(`${name} v${v}: ${(info.logicalBytes / 1e6).toFixed(0)} MB (${info.note})`);
      for (const tool of tools) {
        const rec = (out.tools[tool.name] ??= { name: tool.name, steps: {}, stored: {} });
        if (v === 1) await step(rec, 'init', () => tool.init());
        const s = await step(rec, v === 1 ? 'first' : `incr${v}`, () => tool.backup(v, info));
        rec.stored[`v${v}`] = duBytes(tool.repo);
        log(`  ${tool.name} backup v${v}: ${s.seconds ?? '–'} s, ${s.rssMiB?.toFixed(0) ?? '–'} MiB`);
      }
    }
    for (const tool of tools) {
      const rec = out.tools[tool.name];
      const target = path.join(dsDir, `restore-${tool.name}`);
      const r = await step(rec, 'restore', () => tool.restore(target));
      if (r.error === undefined) {
        if (ds.kind === 'image') rec.restoreIdentical = sha256File(path.join(r.root, 'disk.img')) === lastInfo.sha256;
        else {
          const c = compare(lastInfo.records, walk(r.root, { records: true, hash: true }));
          rec.restoreIdentical = c.ok;
          if (!c.ok) rec.restoreDifferences = c;
        }
        delete r.root;
      }
      rmSync(target, { recursive: true, force: true });
      const mountBlocked = result.peerMountUnavailable[tool.name];
      if (mountBlocked) rec.steps.fuse = { skipped: mountBlocked };
      else if (!root) rec.steps.fuse = { skipped: 'FUSE step needs root here (drop_caches)' };
      else await step(rec, 'fuse', () => fuseStep(tool, ds));
      await step(rec, 'verify', () => tool.verify());
      await step(rec, 'prune', () => tool.prune());
      rec.stored.afterPrune = duBytes(tool.repo);
      log(
        `  ${tool.name}: restore ${r.seconds ?? '–'} s (identical: ${rec.restoreIdentical}), fuse ${rec.steps.fuse.seconds ?? '–'} s, verify ${rec.steps.verify.seconds ?? '–'} s, prune+gc ${rec.steps.prune.seconds ?? '–'} s`,
      );
    }
    ds.cleanup();
    rmSync(dsDir, { recursive: true, force: true });
  }
} finally {
  cleanup();
}
result.totalSeconds = (performance.now() - started) / 1000;
result.loadAverage.end = os.loadavg()[0];
log(`done in ${(result.totalSeconds / 60).toFixed(1)} min`);
write(result, markdown(result));

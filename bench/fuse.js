#!/usr/bin/env node
/**
 * FUSE benchmark: reads through `cairn mount` (the CLI, detached with --daemon, so the mount is
 * served by its own process as users run it).
 *
 *   node bench/fuse.js [--size 2G] [--files 100000] [--random-seconds 10] [--out bench/results] [--no-write]
 *
 * Steps: sequential read of the image (`dd bs=1M`) on a fresh mount (cold chunk cache) after
 * dropping the kernel caches; random 4 KiB reads per second for a while; `find -ls` (a stat of every
 * entry) of a tree archive of N small files on a fresh mount after dropping the caches; peak RSS
 * (VmHWM) of each mount process. Needs root (drop_caches) and /dev/fuse. See bench/README.md.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync, closeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { Datastore } from '../dist/index.js';
import { generateImage, Rng } from './gen.js';
import { dropCaches, libraryCommit, machine, parseSize } from './common.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const CLI = path.join(here, '..', 'dist', 'cli', 'main.js');
const TARGETS = { seqMBs: 900, findSeconds: 5, rssMiB: 256 };
const now = () => performance.now() / 1000;

const { values: opt } = parseArgs({
  options: {
    size: { type: 'string', default: '2G' },
    files: { type: 'string', default: '100000' },
    'random-seconds': { type: 'string', default: '10' },
    dir: { type: 'string' },
    out: { type: 'string', default: path.join(here, 'results') },
    'no-write': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (opt.help) {
  process.stdout.write('usage: node bench/fuse.js [--size 2G] [--files 100000] [--random-seconds 10] [--dir <parent>] [--out <dir>] [--no-write]\n');
  process.exit(0);
}

function timed(cmd, args) {
  return new Promise((resolve, reject) => {
    const t0 = now();
    const c = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    c.stderr.on('data', (d) => (err += d));
    c.on('close', (code) => (code === 0 ? resolve(now() - t0) : reject(new Error(`${cmd} failed (${code}): ${err}`))));
  });
}

function mount(store, what, mnt) {
  const args = ['--store', store, '--json', 'mount', ...(what === undefined ? [mnt] : [what, mnt]), '--daemon'];
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`mount failed: ${r.stderr}`);
  return JSON.parse(r.stdout).pid;
}

function peakRssMiB(pid) {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

function umount(mnt) {
  spawnSync(process.execPath, [CLI, 'umount', mnt]);
}

/** A child node process doing random 4 KiB preads for `seconds`; prints the count. */
function randomReads(file, size, seconds) {
  const script = `
    const fs = require('fs'); const fd = fs.openSync(${JSON.stringify(file)}, 'r'); const buf = Buffer.alloc(4096);
    let x = 987654321, n = 0; const end = Date.now() + ${seconds * 1000};
    while (Date.now() < end) { for (let k = 0; k < 16; k++) { x = (x * 1103515245 + 12345) % 2147483648; const off = Math.floor((x / 2147483648) * (${size} / 4096)) * 4096; fs.readSync(fd, buf, 0, 4096, off); n++; } }
    console.log(n);`;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`random reads failed: ${r.stderr}`);
  return Number(r.stdout.trim());
}

function generateSmallTree(root, files) {
  const rng = new Rng('fuse-tree');
  const buf = Buffer.allocUnsafe(4096);
  const perDir = 100;
  for (let i = 0; i < files; i++) {
    const d = path.join(root, `d${Math.floor(i / perDir / 100)}`, `d${Math.floor(i / perDir) % 100}`);
    if (i % perDir === 0) mkdirSync(d, { recursive: true });
    const n = 64 + (rng.u32() % 2048);
    for (let k = 0; k < n; k += 4) buf.writeUInt32LE(rng.u32(), k);
    const fd = openSync(path.join(d, `f${i}.dat`), 'w');
    writeSync(fd, buf, 0, n);
    closeSync(fd);
  }
}

if (process.getuid() !== 0) {
  process.stderr.write('bench/fuse.js needs root (drop_caches, FUSE)\n');
  process.exit(2);
}
const size = parseSize(opt.size);
const nFiles = Number(opt.files);
const scratch = mkdtempSync(path.join(opt.dir ?? os.tmpdir(), 'cairn-fuse-bench-'));
const mounts = [];
const cleanup = () => {
  for (const m of mounts) umount(m);
  rmSync(scratch, { recursive: true, force: true });
};
process.on('SIGINT', () => {
  cleanup();
  process.exit(130);
});

const result = { date: new Date().toISOString(), machine: machine(), commit: libraryCommit(), params: { size, files: nFiles, randomSeconds: Number(opt['random-seconds']) } };
try {
  const store = path.join(scratch, 'store');
  const img = path.join(scratch, 'disk.raw');
  let t = now();
  generateImage(img, size, 1);
  const tree = path.join(scratch, 'tree');
  generateSmallTree(tree, nFiles);
  result.setup = { generateSeconds: now() - t };
  t = now();
  const ds = await Datastore.create(store, { syncLevel: 'none' });
  let w = await ds.group('vm/1').backup();
  await w.addImage('disk', img);
  await w.commit();
  w = await ds.group('host/1').backup();
  await w.addTree('root', tree);
  await w.commit();
  await ds.close();
  result.setup.backupSeconds = now() - t;
  rmSync(img);
  rmSync(tree, { recursive: true, force: true });
  process.stderr.write(`setup done (${(result.setup.generateSeconds + result.setup.backupSeconds).toFixed(0)} s)\n`);

  // Sequential read, fresh mount, cold caches.
  const mImg = path.join(scratch, 'mnt-img');
  dropCaches();
  const pidImg = mount(store, 'vm/1', mImg);
  mounts.push(mImg);
  const seqSeconds = await timed('dd', [`if=${path.join(mImg, 'disk.img')}`, 'of=/dev/null', 'bs=1M']);
  result.sequential = { seconds: seqSeconds, MBs: size / 1e6 / seqSeconds };
  process.stderr.write(`sequential: ${result.sequential.MBs.toFixed(0)} MB/s\n`);
  dropCaches();
  const n = randomReads(path.join(mImg, 'disk.img'), size, Number(opt['random-seconds']));
  result.random = { reads: n, readsPerSecond: n / Number(opt['random-seconds']) };
  process.stderr.write(`random 4 KiB: ${result.random.readsPerSecond.toFixed(0)} reads/s\n`);
  result.imageMountPeakRssMiB = peakRssMiB(pidImg);
  umount(mImg);
  mounts.pop();

  // find + stat of the tree, fresh mount, cold caches.
  const mTree = path.join(scratch, 'mnt-tree');
  dropCaches();
  const pidTree = mount(store, 'host/1', mTree);
  mounts.push(mTree);
  const findSeconds = await timed('find', [path.join(mTree, 'root.tree'), '-ls']);
  const warmFindSeconds = await timed('find', [path.join(mTree, 'root.tree'), '-ls']);
  result.find = { entries: nFiles, seconds: findSeconds, warmSeconds: warmFindSeconds };
  process.stderr.write(`find -ls of ${nFiles} files: ${findSeconds.toFixed(2)} s (again: ${warmFindSeconds.toFixed(2)} s)\n`);
  result.treeMountPeakRssMiB = peakRssMiB(pidTree);
  umount(mTree);
  mounts.pop();
} finally {
  cleanup();
}

const pass = (ok) => (ok ? 'PASS' : '**MISS**');
const rss = Math.max(result.imageMountPeakRssMiB, result.treeMountPeakRssMiB);
const atSize = size >= 2 * 1024 ** 3 && nFiles >= 100_000;
const judge = (ok) => (atSize ? pass(ok) : 'not judged (smaller than the targets assume)');
const md = `# Cairn FUSE benchmark, ${result.date.slice(0, 10)}

Machine: ${result.machine.cpu}, ${result.machine.cores} cores, ${result.machine.ramGiB} GiB RAM, ${result.machine.kernel}, Node ${result.machine.node} (host ${result.machine.host}). Library commit ${result.commit}.

A ${(size / 1024 ** 3).toFixed(2)} GiB generated image (bench/gen.js, seed 1; default 1 MiB chunks) and a tree archive of ${nFiles} small files (64–2111 bytes, 100 per directory), each mounted with \`cairn mount --daemon\` (a fresh process: cold chunk cache) after \`sync; echo 3 > /proc/sys/vm/drop_caches\`.

| step | value | target | |
|---|---|---|---|
| sequential read, \`dd bs=1M\` (MB/s, 10⁶ B) | ${result.sequential.MBs.toFixed(0)} | ≥ ${TARGETS.seqMBs} | ${judge(result.sequential.MBs >= TARGETS.seqMBs)} |
| random 4 KiB reads (reads/s, ${result.params.randomSeconds} s, after dropping caches) | ${result.random.readsPerSecond.toFixed(0)} | | |
| \`find -ls\` of ${nFiles} files (s) | ${result.find.seconds.toFixed(2)} | ≤ ${TARGETS.findSeconds} | ${judge(result.find.seconds <= TARGETS.findSeconds)} |
| the same again, kernel caches warm (s) | ${result.find.warmSeconds.toFixed(2)} | | |
| mount process peak RSS, image / tree (MiB) | ${result.imageMountPeakRssMiB.toFixed(0)} / ${result.treeMountPeakRssMiB.toFixed(0)} | ≤ ${TARGETS.rssMiB} | ${judge(rss <= TARGETS.rssMiB)} |
| setup: generate / backup (s) | ${result.setup.generateSeconds.toFixed(1)} / ${result.setup.backupSeconds.toFixed(1)} | | |
`;
process.stdout.write(md);
if (!opt['no-write']) {
  mkdirSync(opt.out, { recursive: true });
  const base = path.join(opt.out, `${result.date.slice(0, 10)}-${result.machine.host}-fuse`);
  writeFileSync(`${base}.json`, `${JSON.stringify(result, null, 2)}\n`);
  writeFileSync(`${base}.md`, md);
  process.stdout.write(`wrote ${base}.json and .md\n`);
}

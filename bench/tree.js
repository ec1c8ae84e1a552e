#!/usr/bin/env node
/**
 * Cairn tree-archive benchmark (issue 3): first backup, unchanged re-backup, incremental after
 * edits and restore of (a) a generated tree of many small files plus a few large ones and (b) a
 * copy of a real tree on this machine, with borg (when installed) on the same data in the same run.
 *
 *   npm run build:ts && bench/setup && node bench/tree.js [options]
 *
 * See bench/README.md ("Tree archives") for the options and what each number means. Every Cairn
 * step runs in its own child (bench/tree-child.js) so that its peak RSS is its own; every borg step
 * runs under a small python3 wrapper that reports the wall time and getrusage(RUSAGE_CHILDREN).
 */
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, lstatSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { Content, Rng, lognormal, writeFile } from './gen.js';
import { compare, walk } from './walk.js';
import { libraryCommit, machine, onPath, parseSize } from './common.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

const TARGETS = { unchangedSeconds: 3, unchangedFiles: 100_000 };
const TREES = ['gen', 'real'];

// ---------------------------------------------------------------------------------------------
// Options

const { values: opt } = parseArgs({
  options: {
    files: { type: 'string', default: '100000' },
    dirs: { type: 'string', default: '10' },
    'median-size': { type: 'string', default: '2K' },
    sigma: { type: 'string', default: '1.0' },
    large: { type: 'string', default: '10' },
    'large-size': { type: 'string', default: '20M' },
    real: { type: 'string', default: 'auto' },
    seed: { type: 'string', default: '1' },
    only: { type: 'string' },
    threads: { type: 'string' },
    'no-borg': { type: 'boolean', default: false },
    'no-verify': { type: 'boolean', default: false },
    'cpu-prof': { type: 'string' },
    dir: { type: 'string' },
    out: { type: 'string', default: path.join(here, 'results') },
    'no-write': { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
    report: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

if (opt.help) {
  process.stdout.write(`usage: node bench/tree.js [options]
  --files <n>         small files of the generated tree (default 100000)
  --dirs <n>          fan-out per level of the 3-level directory tree: n^3 leaf directories (default 10)
  --median-size <n>   median small-file size (default 2K); sizes are log-normal
  --sigma <x>         sigma of the log-normal (default 1.0); sizes clamped to [0, 1 MiB]
  --large <n>         large files (default 10): half random, half text
  --large-size <n>    size of each large file (default 20M)
  --real <path>       the real tree, copied into the scratch directory (default auto: the larger
                      of /usr/share and the project's node_modules)
  --seed <s>          data seed (default 1)
  --only <list>       comma list of ${TREES.join(', ')} (default: both)
  --threads <n>       Cairn worker threads (default: the library's)
  --no-borg           do not run borg
  --no-verify         do not compare the restored trees with the source
  --cpu-prof <dir>    run the Cairn children with --cpu-prof, profiles into <dir>
  --dir <path>        where the scratch directory is made (default os.tmpdir())
  --out <dir>         results directory (default bench/results)
  --no-write          print only, write no results files
  --keep              keep the scratch directory
  --report <json>     only re-render the .md of an existing results .json
`);
  process.exit(0);
}

const seed = opt.seed;
const only = opt.only === undefined ? TREES : opt.only.split(',').map((s) => s.trim());
for (const o of only) if (!TREES.includes(o)) throw new Error(`--only: unknown tree '${o}' (known: ${TREES.join(', ')})`);
const threads = opt.threads === undefined ? undefined : Number(opt.threads);
const genParams = {
  files: Number(opt.files),
  fanout: Number(opt.dirs),
  medianSize: parseSize(opt['median-size']),
  sigma: Number(opt.sigma),
  maxSize: MiB,
  large: Number(opt.large),
  largeSize: parseSize(opt['large-size']),
  textShare: 2 / 3,
};

// ---------------------------------------------------------------------------------------------
// Small helpers

const log = (s) => process.stderr.write(`${s}\n`);
const f0 = (x) => (x === undefined || x === null || Number.isNaN(x) ? '–' : x.toFixed(0));
const f1 = (x) => (x === undefined || x === null || Number.isNaN(x) ? '–' : x.toFixed(1));
const f2 = (x) => (x === undefined || x === null || Number.isNaN(x) ? '–' : x.toFixed(2));
const mb = (x) => (x === undefined || x === null ? '–' : (x / 1e6).toFixed(1));
const pass = (ok) => (ok === undefined ? '–' : ok ? 'PASS' : '**MISS**');
const now = () => performance.now() / 1000;

/** The mtime of the newest .js file under dist/: when the library measured was compiled. */
function distBuilt() {
  let newest = 0;
  const stack = [path.join(here, '..', 'dist')];
  try {
    while (stack.length > 0) {
      const d = stack.pop();
      for (const e of readdirSync(d, { withFileTypes: true })) {
        const p = path.join(d, e.name);
        if (e.isDirectory()) stack.push(p);
        else if (e.name.endsWith('.js')) newest = Math.max(newest, lstatSync(p).mtimeMs);
      }
    }
  } catch {
    return undefined;
  }
  return newest === 0 ? undefined : new Date(newest).toISOString();
}

// ---------------------------------------------------------------------------------------------
// Scratch space and children, cleaned up on every exit path

let scratch;
let cleaned = false;
/** The running child (a Cairn step, or the python wrapper of a borg step, in its own process group). */
let current;

function stopCurrent() {
  const c = current;
  if (c === undefined || c.exitCode !== null || c.signalCode !== null) return;
  try {
    if (c.group) process.kill(-c.pid, 'SIGTERM');
    else c.kill('SIGTERM');
  } catch {
    return;
  }
  // Give it up to 3 s to go, so nothing writes into the scratch directory while it is removed.
  const sleeper = new Int32Array(new SharedArrayBuffer(4));
  for (let i = 0; i < 30; i++) {
    try {
      process.kill(c.group ? -c.pid : c.pid, 0);
    } catch {
      return;
    }
    Atomics.wait(sleeper, 0, 0, 100);
  }
  try {
    process.kill(c.group ? -c.pid : c.pid, 'SIGKILL');
  } catch {
    /* gone */
  }
}

function cleanup() {
  if (cleaned) return;
  cleaned = true;
  stopCurrent();
  if (scratch === undefined) return;
  if (opt.keep) {
    log(`kept ${scratch}`);
    return;
  }
  rmSync(scratch, { recursive: true, force: true });
}
process.on('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    log(`${sig}: stopping, removing ${scratch ?? 'nothing'}`);
    cleanup();
    process.exit(130);
  });
}

/** Flushes dirty pages of the scratch filesystem, so one step's writeback is not billed to the next. */
function flush() {
  spawnSync('sync', ['-f', scratch], { stdio: 'ignore' });
}

function run(cmd, argv, { cwd, env, group = false } = {}) {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, argv, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: group });
    p.group = group;
    current = p;
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('error', reject);
    p.on('close', (code, signal) => {
      current = undefined;
      resolve({ code, signal, out, err });
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Data: the generated tree

/** Seeded content: text (pseudo log lines) and random bytes, never repeating. */
function generateTree(root, p) {
  const t0 = now();
  const rng = new Rng(`tree-gen:${seed}`);
  const content = new Content(seed, 'gen');
  const leaves = [];
  for (let a = 0; a < p.fanout; a++)
    for (let b = 0; b < p.fanout; b++)
      for (let c = 0; c < p.fanout; c++) {
        const d = path.join(root, `d${a}`, `d${b}`, `d${c}`);
        mkdirSync(d, { recursive: true });
        leaves.push(d);
      }
  let bytes = 0;
  let textFiles = 0;
  const sizes = [];
  for (let i = 0; i < p.files; i++) {
    const dir = leaves[rng.below(leaves.length)];
    const size = lognormal(rng, p.medianSize, p.sigma, p.maxSize);
    const text = rng.u32() / 0x1_0000_0000 < p.textShare;
    writeFile(path.join(dir, `f${i}.${text ? 'txt' : 'bin'}`), text ? content.textBytes(size) : content.random(size));
    bytes += size;
    if (text) textFiles++;
    sizes.push(size);
  }
  const largeDir = path.join(root, 'large');
  mkdirSync(largeDir);
  for (let i = 0; i < p.large; i++) {
    const text = i >= p.large / 2;
    const fd = openSync(path.join(largeDir, `big-${i}.${text ? 'log' : 'bin'}`), 'w');
    for (let o = 0; o < p.largeSize; o += MiB) {
      const n = Math.min(MiB, p.largeSize - o);
      writeSync(fd, text ? content.textBytes(n) : content.random(n));
    }
    closeSync(fd);
    bytes += p.largeSize;
  }
  sizes.sort((x, y) => x - y);
  const q = (f) => sizes[Math.min(sizes.length - 1, Math.floor(f * sizes.length))];
  return {
    seconds: now() - t0,
    smallFiles: p.files,
    textFiles,
    randomFiles: p.files - textFiles,
    smallBytes: bytes - p.large * p.largeSize,
    largeFiles: p.large,
    largeBytes: p.large * p.largeSize,
    leafDirs: leaves.length,
    sizeQuantiles: { p10: q(0.1), p50: q(0.5), p90: q(0.9), p99: q(0.99), max: sizes[sizes.length - 1] },
  };
}

// ---------------------------------------------------------------------------------------------
// Walks: counts, manifests for verification

// ---------------------------------------------------------------------------------------------
// Edits: 1 % of the files touched (0.5 % modified, 0.25 % added, 0.25 % deleted)

function editTree(root, regular, label) {
  const rng = new Rng(`tree-edit:${seed}:${label}`);
  const content = new Content(seed, `edit:${label}`);
  const n = regular.length;
  // At least one of each, so that a small tree still sees every kind of edit.
  const nMod = Math.min(n, Math.max(1, Math.round(n * 0.005)));
  const nDel = Math.min(n - nMod, Math.max(1, Math.round(n * 0.0025)));
  const nAdd = Math.max(1, Math.round(n * 0.0025));
  // A seeded partial shuffle picks nMod + nDel distinct files.
  const idx = Array.from({ length: n }, (_, i) => i);
  for (let i = 0; i < nMod + nDel; i++) {
    const j = i + rng.below(n - i);
    [idx[i], idx[j]] = [idx[j], idx[i]];
  }
  let modifiedBytes = 0;
  let addedBytes = 0;
  let deletedBytes = 0;
  // Modify: overwrite up to 4 KiB at a seeded offset with new random bytes, size kept (so only the
  // mtime tells); empty files get 100 bytes.
  for (let i = 0; i < nMod; i++) {
    const p = path.join(root, regular[idx[i]]);
    const size = Number(lstatSync(p).size);
    const len = size === 0 ? 100 : Math.min(4 * KiB, size);
    const off = size <= len ? 0 : rng.below(size - len + 1);
    const fd = openSync(p, 'r+');
    writeSync(fd, content.random(len), 0, len, off);
    closeSync(fd);
    modifiedBytes += len;
  }
  for (let i = nMod; i < nMod + nDel; i++) {
    const p = path.join(root, regular[idx[i]]);
    deletedBytes += Number(lstatSync(p).size);
    unlinkSync(p);
  }
  // Add: new files next to existing ones, sizes and kinds as in the generated tree.
  for (let i = 0; i < nAdd; i++) {
    const dir = path.dirname(path.join(root, regular[rng.below(n)]));
    const size = lognormal(rng, genParams.medianSize, genParams.sigma, genParams.maxSize);
    const text = rng.u32() / 0x1_0000_0000 < genParams.textShare;
    writeFile(path.join(dir, `cairn-bench-new-${i}.${text ? 'txt' : 'bin'}`), text ? content.textBytes(size) : content.random(size));
    addedBytes += size;
  }
  return { modified: nMod, deleted: nDel, added: nAdd, modifiedBytes, addedBytes, deletedBytes };
}

// ---------------------------------------------------------------------------------------------
// Cairn steps (children)

let profN = 0;
let snapTime = 1767225600; // 2026-01-01T00:00:00Z; each backup one minute later

async function cairn(args) {
  flush();
  const nodeArgs = [];
  if (opt['cpu-prof'] !== undefined) {
    const dir = path.resolve(opt['cpu-prof'], `${String(++profN).padStart(2, '0')}-${args.label}`);
    mkdirSync(dir, { recursive: true });
    nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${dir}`);
  }
  const t0 = now();
  const r = await run(process.execPath, [...nodeArgs, path.join(here, 'tree-child.js'), JSON.stringify({ threads, ...args })]);
  const wall = now() - t0;
  if (r.code !== 0) throw new Error(`cairn ${args.label} failed (exit ${r.code ?? r.signal}):\n${r.err}`);
  const out = JSON.parse(r.out.trim().split('\n').pop());
  out.processWallSeconds = wall;
  out.maxRssMiB = out.maxRssKiB / 1024;
  if (r.err.trim() !== '') out.stderr = r.err.trim().slice(0, 2000);
  return out;
}

async function cairnBackup(label, store, dir, create) {
  log(`  cairn ${label} ...`);
  const r = await cairn({ scenario: 'backup', label, store, create, group: 'host/bench', archive: 'tree', dir, time: (snapTime += 60) });
  const s = {
    tool: 'cairn',
    step: label,
    seconds: r.totalSeconds,
    maxRssMiB: r.maxRssMiB,
    cpuSeconds: r.cpuUserSeconds + r.cpuSystemSeconds,
    filesRead: r.filesRead,
    filesReused: r.filesReused,
    chunksWritten: r.meta.chunksWritten + r.payload.chunksWritten,
    bytesStored: r.meta.bytesStored + r.payload.bytesStored,
    raw: r,
  };
  log(
    `  cairn ${label}: ${f2(s.seconds)} s, ${r.files} files (${r.filesRead} read, ${r.filesReused} reused), stored ${mb(s.bytesStored)} MB in ${s.chunksWritten} chunks, peak RSS ${f0(s.maxRssMiB)} MiB${r.problemCount ? `, ${r.problemCount} PROBLEMS` : ''}`,
  );
  return s;
}

async function cairnRestore(store, target) {
  log('  cairn restore ...');
  const r = await cairn({ scenario: 'restore', label: 'restore', store, group: 'host/bench', archive: 'tree', target });
  const s = { tool: 'cairn', step: 'restore', seconds: r.totalSeconds, maxRssMiB: r.maxRssMiB, cpuSeconds: r.cpuUserSeconds + r.cpuSystemSeconds, raw: r };
  log(`  cairn restore: ${f2(s.seconds)} s, ${r.entries} entries, peak RSS ${f0(s.maxRssMiB)} MiB${r.problems?.length ? `, ${r.problems.length} PROBLEMS` : ''}`);
  return s;
}

// ---------------------------------------------------------------------------------------------
// borg steps

// Runs argv[2:] and writes its wall seconds, exit code and getrusage(RUSAGE_CHILDREN) (peak RSS in
// KiB, CPU seconds) to argv[1]. borg's own interpreter start is inside the time: it is borg's cost.
const PYWRAP = `
import json, resource, subprocess, sys, time
t0 = time.monotonic()
rc = subprocess.call(sys.argv[2:])
t1 = time.monotonic()
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(sys.argv[1], 'w') as f:
    json.dump({'rc': rc, 'seconds': t1 - t0, 'maxRssKiB': ru.ru_maxrss, 'user': ru.ru_utime, 'sys': ru.ru_stime}, f)
sys.exit(rc)
`;

function borgEnv() {
  return {
    ...process.env,
    BORG_BASE_DIR: path.join(scratch, 'borg-home'),
    BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes',
    BORG_RELOCATED_REPO_ACCESS_IS_OK: 'yes',
    BORG_PASSPHRASE: '',
    BORG_DISPLAY_PASSPHRASE: 'no',
    LANG: 'C.UTF-8',
    LC_ALL: 'C.UTF-8',
  };
}

async function borg(label, argv, cwd) {
  flush();
  const statFile = path.join(scratch, `borg-rusage-${label}.json`);
  const r = await run('python3', ['-c', PYWRAP, statFile, 'borg', ...argv], { cwd, env: borgEnv(), group: true });
  // borg: 0 success, 1 warning (kept, reported), 2+ error
  if (r.code !== 0 && r.code !== 1) throw new Error(`borg ${label} failed (exit ${r.code ?? r.signal}):\n${r.err.slice(-4000)}`);
  const ru = JSON.parse(readFileSync(statFile, 'utf8'));
  rmSync(statFile);
  return { ...r, ru, warning: r.code === 1 ? r.err.slice(-2000) : undefined };
}

let borgUnique = 0;

async function borgCreate(label, repo, dir, { list }) {
  log(`  borg ${label} ...`);
  const argv = ['create', '--compression', 'lz4', '--json'];
  if (list) argv.push('--list', '--filter=AME');
  argv.push(`${repo}::${label}`, '.');
  const r = await borg(label, argv, dir);
  const j = JSON.parse(r.out);
  const unique = j.cache.stats.total_unique_chunks;
  // The first backup reads every file; re-backups list the files they read (A added, M modified, E error).
  const read = list ? r.err.split('\n').filter((l) => /^[AME] /.test(l)).length : j.archive.stats.nfiles;
  const s = {
    tool: 'borg',
    step: label,
    seconds: r.ru.seconds,
    maxRssMiB: r.ru.maxRssKiB / 1024,
    cpuSeconds: r.ru.user + r.ru.sys,
    filesRead: read,
    filesReused: j.archive.stats.nfiles - read,
    chunksWritten: unique - borgUnique,
    bytesStored: j.archive.stats.deduplicated_size,
    raw: { archive: j.archive, cache: j.cache, warning: r.warning },
  };
  borgUnique = unique;
  log(
    `  borg ${label}: ${f2(s.seconds)} s, ${j.archive.stats.nfiles} files (${read} read), stored ${mb(s.bytesStored)} MB in ${s.chunksWritten} chunks, peak RSS ${f0(s.maxRssMiB)} MiB${r.warning ? ', WARNING (exit 1)' : ''}`,
  );
  return s;
}

async function borgExtract(repo, archive, target) {
  log('  borg restore (extract) ...');
  mkdirSync(target, { recursive: true });
  const r = await borg('extract', ['extract', `${repo}::${archive}`], target);
  const s = { tool: 'borg', step: 'restore', seconds: r.ru.seconds, maxRssMiB: r.ru.maxRssKiB / 1024, cpuSeconds: r.ru.user + r.ru.sys, raw: { warning: r.warning } };
  log(`  borg restore: ${f2(s.seconds)} s, peak RSS ${f0(s.maxRssMiB)} MiB${r.warning ? ', WARNING (exit 1)' : ''}`);
  return s;
}

function duBytes(p) {
  const r = spawnSync('du', ['-sb', p], { encoding: 'utf8' });
  return r.status === 0 ? Number(r.stdout.split(/\s/)[0]) : undefined;
}

// ---------------------------------------------------------------------------------------------
// One tree: every step, Cairn then borg

async function benchTree(name, dir, useBorg) {
  const out = { name, dir, steps: [] };
  const c0 = walk(dir);
  out.before = { files: c0.files, dirs: c0.dirs, symlinks: c0.symlinks, other: c0.other, bytes: c0.bytes };
  log(`${name}: ${c0.files} files, ${c0.dirs} dirs, ${c0.symlinks} symlinks, ${c0.other} other, ${mb(c0.bytes)} MB`);
  const store = path.join(scratch, `cairn-${name}`);
  const repo = path.join(scratch, `borg-${name}`);
  const add = (s, counts) => {
    s.files = counts.files;
    s.bytes = counts.bytes;
    s.filesPerSecond = counts.files / s.seconds;
    s.mbs = counts.bytes / s.seconds / 1e6;
    out.steps.push(s);
  };

  if (useBorg) {
    const t0 = now();
    await borg('init', ['init', '--encryption=none', repo], scratch);
    out.borgInitSeconds = now() - t0;
    borgUnique = 0;
  }

  add(await cairnBackup('first', store, dir, true), c0);
  if (useBorg) add(await borgCreate('first', repo, dir, { list: false }), c0);
  add(await cairnBackup('unchanged', store, dir, false), c0);
  if (useBorg) add(await borgCreate('unchanged', repo, dir, { list: true }), c0);

  out.edits = editTree(dir, c0.regular, name);
  log(`  edits: ${out.edits.modified} modified, ${out.edits.added} added, ${out.edits.deleted} deleted`);
  const verify = !opt['no-verify'];
  const c1 = walk(dir, { records: verify, hash: verify });
  out.after = { files: c1.files, dirs: c1.dirs, symlinks: c1.symlinks, other: c1.other, bytes: c1.bytes };

  add(await cairnBackup('edits', store, dir, false), c1);
  if (useBorg) add(await borgCreate('edits', repo, dir, { list: true }), c1);
  out.cairnStoreBytes = duBytes(store);
  if (useBorg) out.borgRepoBytes = duBytes(repo);

  const ct = path.join(scratch, `restore-cairn-${name}`);
  const cr = await cairnRestore(store, ct);
  add(cr, c1);
  if (verify) {
    cr.verify = compare(c1, walk(ct, { records: true, hash: true }));
    log(`  cairn restore verified: ${cr.verify.ok ? 'identical' : `DIFFERENT ${JSON.stringify(cr.verify)}`}`);
  }
  rmSync(ct, { recursive: true, force: true });
  rmSync(store, { recursive: true, force: true });
  if (useBorg) {
    const bt = path.join(scratch, `restore-borg-${name}`);
    const br = await borgExtract(repo, 'edits', bt);
    add(br, c1);
    if (verify) {
      br.verify = compare(c1, walk(bt, { records: true, hash: true }));
      log(`  borg restore verified: ${br.verify.ok ? 'identical' : `DIFFERENT ${JSON.stringify(br.verify)}`}`);
    }
    rmSync(bt, { recursive: true, force: true });
    rmSync(repo, { recursive: true, force: true });
  }
  return out;
}

/** The real tree: --real, or the larger (in bytes) of /usr/share and the project's node_modules. */
function chooseReal() {
  if (opt.real !== 'auto') return { path: path.resolve(opt.real), candidates: undefined };
  const candidates = [];
  for (const p of ['/usr/share', path.join(here, '..', 'node_modules')]) {
    if (!existsSync(p)) continue;
    const c = walk(p);
    candidates.push({ path: path.resolve(p), files: c.files, bytes: c.bytes });
  }
  if (candidates.length === 0) throw new Error('no real tree: neither /usr/share nor node_modules exists (use --real)');
  candidates.sort((a, b) => b.bytes - a.bytes);
  return { path: candidates[0].path, candidates };
}

// ---------------------------------------------------------------------------------------------
// The run

async function main() {
  scratch = mkdtempSync(path.join(opt.dir === undefined ? os.tmpdir() : path.resolve(opt.dir), 'cairn-tree-bench-'));
  const useBorg = !opt['no-borg'] && onPath('borg') && onPath('python3');
  let borgNote;
  if (opt['no-borg']) borgNote = 'borg not run (--no-borg)';
  else if (!onPath('borg')) borgNote = 'borg not installed, run bench/setup';
  else if (!onPath('python3')) borgNote = 'borg not run: python3 (for the timing wrapper) not on PATH';
  if (borgNote) log(borgNote);
  const borgVersion = useBorg ? spawnSync('borg', ['--version'], { encoding: 'utf8', env: borgEnv() }).stdout.trim() : undefined;

  const results = {
    date: new Date().toISOString(),
    commit: libraryCommit(),
    distBuilt: distBuilt(),
    machine: machine(),
    loadAverage: { start: os.loadavg()[0], end: undefined },
    parameters: {
      seed,
      only,
      threads: threads ?? `library default (${os.availableParallelism()})`,
      syncLevel: 'filesystem (the datastore default; one syncfs before each manifest)',
      cairn: 'Datastore.create defaults; addTree(name, dir, {}) (metadata mode on re-backups); restoreTree of the newest snapshot into a new directory',
      borg: useBorg
        ? `${borgVersion}; init --encryption=none; create --compression lz4 --json (re-backups also --list --filter=AME, to count the files read); extract in a new directory. borg fsyncs its segments itself`
        : borgNote,
      generated: only.includes('gen')
        ? {
            ...genParams,
            layout: `${genParams.fanout}^3 leaf directories, 3 levels; files placed uniformly at random; ${f0(genParams.textShare * 100)} % pseudo log text, the rest random (AES-CTR)`,
          }
        : undefined,
      edits: '1 % of the regular files: 0.5 % modified (up to 4 KiB overwritten at a seeded offset, size kept), 0.25 % added (sizes as generated), 0.25 % deleted; seeded',
      units: 'MB/s = 1e6 bytes of regular-file content per second of the step (effective for re-backups); files/s = regular files in the tree per second; RSS in MiB (2^20)',
    },
    targets: TARGETS,
    borg: useBorg,
    borgNote,
    trees: [],
  };
  log(`scratch ${scratch}; sync level filesystem (datastore default); borg: ${useBorg ? borgVersion : borgNote}`);

  if (only.includes('gen')) {
    const root = path.join(scratch, 'gen');
    log(`generating ${genParams.files} small files + ${genParams.large} × ${genParams.largeSize / MiB} MiB (seed ${seed}) ...`);
    const g = generateTree(root, genParams);
    log(`  ${f1(g.seconds)} s: ${mb(g.smallBytes)} MB small (median ${g.sizeQuantiles.p50} B, p90 ${g.sizeQuantiles.p90} B), ${mb(g.largeBytes)} MB large`);
    const t = await benchTree('gen', root, useBorg);
    t.source = 'generated';
    t.generation = g;
    results.trees.push(t);
    rmSync(root, { recursive: true, force: true });
  }
  if (only.includes('real')) {
    const real = chooseReal();
    const root = path.join(scratch, 'real', path.basename(real.path));
    mkdirSync(path.dirname(root), { recursive: true });
    log(`copying ${real.path} (cp -a) ...`);
    const t0 = now();
    const cp = spawnSync('cp', ['-a', real.path, root], { encoding: 'utf8' });
    if (cp.status !== 0) throw new Error(`cp -a ${real.path} failed: ${cp.stderr}`);
    log(`  ${f1(now() - t0)} s`);
    const t = await benchTree('real', root, useBorg);
    t.source = `a copy (cp -a) of ${real.path}`;
    t.realPath = real.path;
    t.candidates = real.candidates;
    t.copySeconds = now() - t0;
    results.trees.push(t);
    rmSync(path.dirname(root), { recursive: true, force: true });
  }

  results.loadAverage.end = os.loadavg()[0];
  const md = markdown(results);
  process.stdout.write(`\n${md}\n`);
  if (!opt['no-write']) {
    mkdirSync(opt.out, { recursive: true });
    const suffix = opt.only === undefined ? '' : `-${only.join('+')}`;
    const base = path.join(opt.out, `${results.date.slice(0, 10)}-${results.machine.host}-tree${suffix}`);
    writeFileSync(`${base}.json`, `${JSON.stringify(results, null, 2)}\n`);
    writeFileSync(`${base}.md`, md);
    log(`wrote ${base}.json and .md`);
  }
}

// ---------------------------------------------------------------------------------------------
// Report

const STEP_TEXT = {
  first: 'first backup',
  unchanged: 'unchanged re-backup',
  edits: 'incremental after edits',
  restore: 'restore',
};

function markdown(r) {
  const m = r.machine;
  const p = r.parameters;
  const L = [];
  L.push(`# Cairn tree benchmark — ${r.date.slice(0, 10)}`);
  L.push('');
  L.push(`**Library:** commit ${r.commit} (dist/ built from it${r.distBuilt ? `; newest dist/ file ${r.distBuilt}` : ''})${r.commitNote ? `. ${r.commitNote}` : ''}`);
  L.push('');
  L.push(`**Machine:** ${m.cpu}, ${m.cores} cores, ${m.ramGiB} GiB RAM, ${m.kernel}, Node ${m.node} (host ${m.host})`);
  L.push('');
  const la = r.loadAverage;
  const busy = la.start > m.cores || la.end > m.cores;
  L.push(
    `**Load:** 1-min load average ${f2(la.start)} at start, ${f2(la.end)} at end${busy ? ' — **above the core count: other work shared the CPU, the numbers are pessimistic**' : ''}`,
  );
  L.push('');
  L.push(`**Cairn:** sync level ${p.syncLevel}; threads ${p.threads}. ${p.cairn}.`);
  L.push('');
  L.push(`**borg:** ${p.borg}.`);
  L.push('');
  L.push(`**Edits:** ${p.edits}.`);
  L.push('');
  L.push(
    `**Units:** ${p.units}. Seconds: Cairn from \`group.backup()\` to the end of \`commit()\` (restore: \`snapshot.open()\` to the end of \`restoreTree\`), datastore open and process start excluded; borg: the whole \`borg\` process (its ~0.3 s interpreter start included). Peak RSS: \`maxRSS\` of the step's process (Cairn: node with its worker threads; borg: getrusage of the borg child). Files and page cache: every tree was just written or copied, so it is in the page cache; \`sync -f\` runs before each step.`,
  );
  L.push('');

  const targets = [];
  for (const t of r.trees) {
    const by = (tool, step) => t.steps.find((s) => s.tool === tool && s.step === step);
    L.push(`## ${t.name === 'gen' ? '(a) Generated tree' : '(b) Real tree'}: ${t.source}`);
    L.push('');
    const b = t.before;
    const a = t.after;
    L.push(
      `Before the edits: **${b.files} files**, ${b.dirs} directories, ${b.symlinks} symlinks, ${b.other} other, **${mb(b.bytes)} MB** of file content; after: ${a.files} files, ${mb(a.bytes)} MB.`,
    );
    if (t.generation) {
      const g = t.generation;
      L.push(
        `Generated in ${f1(g.seconds)} s: ${g.smallFiles} small files (${g.textFiles} text, ${g.randomFiles} random) in ${g.leafDirs} leaf directories, ${mb(g.smallBytes)} MB, sizes p10/p50/p90/p99/max ${g.sizeQuantiles.p10}/${g.sizeQuantiles.p50}/${g.sizeQuantiles.p90}/${g.sizeQuantiles.p99}/${g.sizeQuantiles.max} B; ${g.largeFiles} large files of ${g.largeFiles ? mb(g.largeBytes / g.largeFiles) : 0} MB (half random, half text).`,
      );
    }
    if (t.candidates) L.push(`Chosen as the larger of: ${t.candidates.map((c) => `${c.path} (${c.files} files, ${mb(c.bytes)} MB)`).join(', ')}.`);
    const e = t.edits;
    const kb = (x) => `${f0(x / 1e3)} kB`;
    L.push(`Edits: ${e.modified} files modified (${kb(e.modifiedBytes)} overwritten), ${e.added} added (${kb(e.addedBytes)}), ${e.deleted} deleted (${kb(e.deletedBytes)}).`);
    L.push('');
    L.push('| step | tool | seconds | files/s | MB/s | peak RSS MiB | CPU s | files read / reused | chunks written | stored MB |');
    L.push('|---|---|---:|---:|---:|---:|---:|---|---:|---:|');
    for (const st of ['first', 'unchanged', 'edits', 'restore']) {
      for (const s of t.steps.filter((x) => x.step === st)) {
        const rr = s.step === 'restore' ? '–' : `${s.filesRead ?? '?'} / ${s.filesReused ?? '?'}`;
        L.push(
          `| ${STEP_TEXT[st]} | ${s.tool} | ${f2(s.seconds)} | ${f0(s.filesPerSecond)} | ${f0(s.mbs)} | ${f0(s.maxRssMiB)} | ${f1(s.cpuSeconds)} | ${rr} | ${s.chunksWritten ?? '–'} | ${s.bytesStored === undefined ? '–' : mb(s.bytesStored)} |`,
        );
      }
    }
    L.push('');
    L.push(
      `On disk after the three backups: Cairn datastore ${mb(t.cairnStoreBytes)} MB${t.borgRepoBytes !== undefined ? `, borg repository ${mb(t.borgRepoBytes)} MB` : ''} (\`du -sb\`). borg's "files read" are the A/M lines of \`--list --filter=AME\`; for its first backup every file is read.`,
    );
    L.push('');
    if (r.borg) {
      L.push('| step | Cairn s | borg s | Cairn ÷ borg | |');
      L.push('|---|---:|---:|---:|---|');
      for (const st of ['first', 'unchanged', 'edits', 'restore']) {
        const c = by('cairn', st);
        const g = by('borg', st);
        if (!c || !g) continue;
        const ratio = c.seconds / g.seconds;
        L.push(`| ${STEP_TEXT[st]} | ${f2(c.seconds)} | ${f2(g.seconds)} | ${f2(ratio)} | ${ratio > 1 ? `**Cairn slower** (×${f1(ratio)})` : `Cairn ×${f1(1 / ratio)} faster`} |`);
      }
      L.push('');
    } else {
      L.push(`No borg comparison: ${r.borgNote}.`);
      L.push('');
    }
    // Problems, warnings and verification: everything is listed.
    const notes = [];
    for (const s of t.steps) {
      const raw = s.raw ?? {};
      const probs = raw.problems ?? [];
      if ((raw.problemCount ?? probs.length) > 0)
        notes.push(
          `${s.tool} ${s.step}: ${raw.problemCount ?? probs.length} problems: ${probs
            .slice(0, 5)
            .map((x) => `${x.code} ${x.path}`)
            .join('; ')}`,
        );
      if (raw.warning) notes.push(`${s.tool} ${s.step}: borg exit 1 (warning): ${raw.warning.trim().split('\n').slice(-3).join(' / ')}`);
      if (s.verify)
        notes.push(
          `${s.tool} restore compared with the source (type, mode, owner, size, mtime ns, MD5 / link target of ${s.verify.entries} entries): ${s.verify.ok ? 'identical' : `**DIFFERENT**: ${s.verify.missing} missing, ${s.verify.extra} extra, ${s.verify.differ} differ; ${s.verify.examples.join('; ')}`}`,
        );
    }
    const cFirst = by('cairn', 'first')?.raw;
    if (cFirst && cFirst.files !== b.files) notes.push(`Cairn counted ${cFirst.files} files in the first backup, the walk ${b.files}`);
    if (cFirst && cFirst.bytes !== b.bytes) notes.push(`Cairn counted ${cFirst.bytes} bytes in the first backup, the walk ${b.bytes}`);
    for (const n of notes) L.push(`- ${n}`);
    if (notes.length > 0) L.push('');

    // Targets
    const un = by('cairn', 'unchanged');
    if (t.name === 'gen' && un) {
      const applies = b.files >= TARGETS.unchangedFiles;
      targets.push(
        `| re-backup of an unchanged ${b.files}-file tree < ${TARGETS.unchangedSeconds} s${applies ? '' : ` (the target is for ${TARGETS.unchangedFiles} files)`} | ${f2(un.seconds)} s | ${pass(un.seconds < TARGETS.unchangedSeconds)} |`,
      );
    }
    for (const st of ['first', 'restore']) {
      const c = by('cairn', st);
      const g = by('borg', st);
      if (c && g)
        targets.push(
          `| ${STEP_TEXT[st]} faster than borg, ${t.name === 'gen' ? 'generated' : 'real'} tree | ${f2(c.seconds)} s vs ${f2(g.seconds)} s | ${pass(c.seconds < g.seconds)} |`,
        );
      else if (c) targets.push(`| ${STEP_TEXT[st]} faster than borg, ${t.name === 'gen' ? 'generated' : 'real'} tree | ${f2(c.seconds)} s vs – (${r.borgNote}) | – |`);
    }
  }
  L.push('## Targets (issue 3)');
  L.push('');
  L.push('| target | measured | |');
  L.push('|---|---|---|');
  L.push(...targets);
  L.push('');
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

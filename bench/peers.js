#!/usr/bin/env node
/**
 * Cairn next to restic and borg on the same data, in the same run (issue 6's comparison, first
 * data set): a generated image (bench/gen.js: half random, a quarter text, a quarter zeros), then a
 * second version with 0.1 % of its 4 KiB blocks rewritten at random places and 64 KiB inserted a third
 * of the way in (which shifts everything after it).
 *
 *   bench/setup && node bench/peers.js [--size 1G] [--out bench/results] [--no-write]
 *
 * Steps for each tool: first backup, second backup (the changed version), restore of the second
 * (compared with the source). Cairn runs twice: the image as an image archive (fixed-size chunks,
 * what a VM backup uses; the insertion defeats it) and the image file in a tree archive
 * (content-defined chunks, like restic and borg). Settings as comparable as the tools allow: borg
 * without encryption, LZ4; restic cannot turn encryption off, compression auto. Wall seconds and
 * peak RSS come from /usr/bin/time; stored bytes from `du` of each repository. A step where Cairn
 * is slower than a peer is flagged in the table.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { generateImage, rewriteBlocks } from './gen.js';
import { dropCaches, libraryCommit, machine, onPath, parseSize } from './common.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const CLI = path.join(here, '..', 'dist', 'cli', 'main.js');

const { values: opt } = parseArgs({
  options: {
    size: { type: 'string', default: '1G' },
    dir: { type: 'string' },
    out: { type: 'string', default: path.join(here, 'results') },
    'no-write': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (opt.help) {
  process.stdout.write('usage: node bench/peers.js [--size 1G] [--dir <parent>] [--out <dir>] [--no-write]\n');
  process.exit(0);
}

const peers = ['restic', 'borg'].filter(onPath);
const size = parseSize(opt.size);
const scratch = mkdtempSync(path.join(opt.dir ?? os.tmpdir(), 'cairn-peers-'));
process.on('SIGINT', () => {
  rmSync(scratch, { recursive: true, force: true });
  process.exit(130);
});

/** Runs a command under /usr/bin/time; returns seconds and peak RSS (MiB). Throws on failure. */
function timed(cmd, args, { env = {}, cwd } = {}) {
  const r = spawnSync('/usr/bin/time', ['-f', 'TIME %e %M', cmd, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, cwd, maxBuffer: 1 << 28 });
  const m = /TIME ([\d.]+) (\d+)\s*$/.exec(r.stderr);
  if (r.status !== 0 || m === null) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr.slice(-2000)}`);
  return { seconds: Number(m[1]), rssMiB: Number(m[2]) / 1024 };
}

function duBytes(dir) {
  return Number(spawnSync('du', ['-sb', dir], { encoding: 'utf8' }).stdout.split('\t')[0]);
}

function sha(file) {
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

/** Inserts `n` random bytes at `at`, shifting the rest (the file grows). */
function insertBytes(file, at, n) {
  const data = readFileSync(file);
  const ins = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) ins[i] = (i * 2654435761 + 17) >>> 24;
  const tmp = `${file}.tmp`;
  const fd = openSync(tmp, 'w');
  writeSync(fd, data, 0, at);
  writeSync(fd, ins);
  writeSync(fd, data, at, data.length - at);
  closeSync(fd);
  renameSync(tmp, file);
}

// The tools. Each: init(repo), backup(repo, dir, n) of dir/disk.img, restore(repo, n, target) -> restored file path.
const RESTIC_ENV = { RESTIC_PASSWORD: 'bench', RESTIC_CACHE_DIR: path.join(scratch, 'restic-cache') };
const BORG_ENV = { BORG_PASSPHRASE: '', BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes', BORG_RELOCATED_REPO_ACCESS_IS_OK: 'yes', BORG_BASE_DIR: path.join(scratch, 'borg-base') };
const tools = {
  'cairn-img': {
    init: (repo) => timed(process.execPath, [CLI, 'init', repo, '--sync-level', 'filesystem']),
    backup: (repo, dir) => timed(process.execPath, [CLI, '--store', repo, 'backup', 'vm/1', `disk.img:${path.join(dir, 'disk.img')}`]),
    restore: (repo, _n, target) => {
      const out = path.join(target, 'disk.img');
      mkdirSync(target, { recursive: true });
      return { ...timed(process.execPath, [CLI, '--store', repo, 'restore', 'vm/1', 'disk.img', out]), file: out };
    },
  },
  'cairn-tree': {
    init: (repo) => timed(process.execPath, [CLI, 'init', repo, '--sync-level', 'filesystem']),
    backup: (repo, dir) => timed(process.execPath, [CLI, '--store', repo, 'backup', 'host/1', `data.tree:${dir}`]),
    restore: (repo, _n, target) => ({ ...timed(process.execPath, [CLI, '--store', repo, 'restore', 'host/1', 'data.tree', target]), file: path.join(target, 'disk.img') }),
  },
  restic: {
    init: (repo) => timed('restic', ['init', '--repo', repo], { env: RESTIC_ENV }),
    backup: (repo, dir) => timed('restic', ['backup', '--repo', repo, '--compression', 'auto', '.'], { env: RESTIC_ENV, cwd: dir }),
    restore: (repo, _n, target) => ({ ...timed('restic', ['restore', 'latest', '--repo', repo, '--target', target], { env: RESTIC_ENV }), file: path.join(target, 'disk.img') }),
  },
  borg: {
    init: (repo) => timed('borg', ['init', '--encryption', 'none', repo], { env: BORG_ENV }),
    backup: (repo, dir, n) => timed('borg', ['create', '--compression', 'lz4', `${repo}::v${n}`, '.'], { env: BORG_ENV, cwd: dir }),
    restore: (repo, n, target) => {
      mkdirSync(target, { recursive: true });
      return { ...timed('borg', ['extract', `${repo}::v${n}`], { env: BORG_ENV, cwd: target }), file: path.join(target, 'disk.img') };
    },
  },
};

const names = ['cairn-img', 'cairn-tree', ...peers];
const result = { date: new Date().toISOString(), machine: machine(), commit: libraryCommit(), size, versions: {}, tools: {} };
for (const p of peers) result.versions[p] = spawnSync(p, [p === 'restic' ? 'version' : '--version'], { encoding: 'utf8' }).stdout.trim().split('\n')[0];
try {
  const data = path.join(scratch, 'data');
  mkdirSync(data);
  const img = path.join(data, 'disk.img');
  generateImage(img, size, 1);
  const v1 = sha(img);
  const versions = [];
  for (const name of names) {
    const repo = path.join(scratch, `repo-${name}`);
    const r = (result.tools[name] = { init: tools[name].init(repo) });
    dropCaches();
    r.first = tools[name].backup(repo, data, 1);
    r.storedFirst = duBytes(repo);
    process.stderr.write(`${name}: first ${r.first.seconds} s\n`);
  }
  // The second version: 0.1 % of the blocks rewritten, 64 KiB inserted a third of the way in.
  rewriteBlocks(img, size, 2, 'peers', 0.001);
  insertBytes(img, Math.floor(size / 3 / 4096) * 4096 + 123, 64 * 1024);
  const v2 = sha(img);
  versions.push(v1, v2);
  for (const name of names) {
    const repo = path.join(scratch, `repo-${name}`);
    const r = result.tools[name];
    dropCaches();
    r.second = tools[name].backup(repo, data, 2);
    r.storedSecond = duBytes(repo);
    const target = path.join(scratch, `restore-${name}`);
    dropCaches();
    const rs = tools[name].restore(repo, 2, target);
    r.restore = { seconds: rs.seconds, rssMiB: rs.rssMiB };
    r.restoreIdentical = sha(rs.file) === v2;
    rmSync(target, { recursive: true, force: true });
    process.stderr.write(`${name}: second ${r.second.seconds} s, restore ${r.restore.seconds} s, identical ${r.restoreIdentical}\n`);
  }
} finally {
  rmSync(scratch, { recursive: true, force: true });
}

const MB = 1e6;
const cols = names;
const row = (label, f) => `| ${label} | ${cols.map((n) => f(result.tools[n])).join(' | ')} |`;
const ratio = (a, b) => (b > 0 ? (a / b).toFixed(2) : '–');
const best = (step) => Math.min(result.tools['cairn-img'][step].seconds, result.tools['cairn-tree'][step].seconds);
const flagRows = [];
for (const p of peers) {
  for (const step of ['first', 'second', 'restore']) {
    const c = best(step);
    const pr = result.tools[p][step].seconds;
    flagRows.push(`| ${step} | ${p} | ${c.toFixed(2)} | ${pr.toFixed(2)} | ${ratio(c, pr)} | ${c > pr ? '**Cairn slower**' : 'Cairn faster'} |`);
  }
}
const md = `# Cairn, restic and borg on one image, ${result.date.slice(0, 10)}

Machine: ${result.machine.cpu}, ${result.machine.cores} cores, ${result.machine.ramGiB} GiB RAM, ${result.machine.kernel}, Node ${result.machine.node}. Library commit ${result.commit}. Peers: ${peers.map((p) => result.versions[p]).join('; ') || 'none installed (run bench/setup)'}.

Data: a ${(size / 2 ** 30).toFixed(2)} GiB generated image (bench/gen.js seed 1: half random, a quarter log-like text, a quarter zeros); version 2 has 0.1 % of its 4 KiB blocks rewritten and 64 KiB inserted a third of the way in. Caches dropped before each step (when root). Cairn: sync level \`filesystem\`, default chunking; \`cairn-img\` stores the file as an image archive (fixed 1 MiB chunks), \`cairn-tree\` as a file in a tree archive (content-defined chunks). restic 0.14: encryption cannot be turned off, \`--compression auto\`. borg: \`--encryption none\`, \`--compression lz4\`.

| step | ${cols.join(' | ')} |
|---|${cols.map(() => '---:').join('|')}|
${row('first backup (s)', (t) => t.first.seconds.toFixed(2))}
${row('first backup (MB/s)', (t) => (size / MB / t.first.seconds).toFixed(0))}
${row('second backup (s)', (t) => t.second.seconds.toFixed(2))}
${row('restore of version 2 (s)', (t) => t.restore.seconds.toFixed(2))}
${row('restore identical', (t) => (t.restoreIdentical ? 'yes' : '**NO**'))}
${row('stored after first (MB)', (t) => (t.storedFirst / MB).toFixed(1))}
${row('stored after second (MB)', (t) => (t.storedSecond / MB).toFixed(1))}
${row('added by the second (MB)', (t) => ((t.storedSecond - t.storedFirst) / MB).toFixed(1))}
${row('peak RSS first / second / restore (MiB)', (t) => `${t.first.rssMiB.toFixed(0)} / ${t.second.rssMiB.toFixed(0)} / ${t.restore.rssMiB.toFixed(0)}`)}

Cairn (the faster of its two modes) against each peer, seconds:

| step | peer | Cairn | peer | Cairn / peer | |
|---|---|---:|---:|---:|---|
${flagRows.join('\n')}
`;
process.stdout.write(md);
if (!opt['no-write']) {
  mkdirSync(opt.out, { recursive: true });
  const base = path.join(opt.out, `${result.date.slice(0, 10)}-${result.machine.host}-peers-${opt.size}`);
  writeFileSync(`${base}.json`, `${JSON.stringify(result, null, 2)}\n`);
  writeFileSync(`${base}.md`, md);
  process.stdout.write(`wrote ${base}.json and .md\n`);
}

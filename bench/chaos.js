#!/usr/bin/env node
/**
 * Concurrency run: several processes back up, restore, prune, forget, protect, move, verify and
 * collect garbage on one datastore at the same time, on a seeded random schedule; optionally
 * processes are killed with SIGKILL at random moments and replaced. Afterwards every snapshot that
 * still exists must restore byte-identical and verify must pass, before and after one more GC, and
 * the datastore must agree with a model built from what the workers acknowledged (checkModel).
 *
 *   node bench/chaos.js [--seconds 60] [--workers 4] [--seed 1] [--kill] [--json] [--dir <parent>]
 *
 * Snapshots describe themselves: each holds a `seed.blob` from which the image and the tree it
 * was made from are generated again for the check. The test suite runs a short version
 * (test/maintenance/concurrency.test.ts); run a long one from here, e.g. `--seconds 600 --kill`.
 * Exit 0 when every check passed, 1 otherwise (the JSON report says what failed).
 */
import { spawn } from 'node:child_process';
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { Datastore, GarbageCollector, Pruner, Verifier } from '../dist/index.js';

const self = fileURLToPath(import.meta.url);
const CS = 64 * 1024;
const IMAGE = 16 * CS + 4096 + 100; // a partial last chunk
const GROUPS = ['vm/1', 'vm/2', 'ct/3', 'host/4'];
const NAMESPACES = ['', 'a'];
/** Error codes an operation may meet because of the others (anything else is a failure). */
const EXPECTED = new Set(['ERR_LOCKED', 'ERR_NOT_FOUND', 'ERR_TIME_ORDER', 'ERR_PROTECTED', 'ERR_CONFLICT', 'ERR_ABORTED']);

const { values: opt } = parseArgs({
  options: {
    seconds: { type: 'string', default: '60' },
    workers: { type: 'string', default: '4' },
    seed: { type: 'string', default: '1' },
    kill: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    dir: { type: 'string' },
    keep: { type: 'boolean', default: false },
    sabotage: { type: 'boolean', default: false },
    worker: { type: 'string' },
    store: { type: 'string' },
    scratch: { type: 'string' },
    until: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

if (opt.help) {
  process.stdout.write(`usage: node bench/chaos.js [options]
  --seconds <n>   how long the workers run (default 60)
  --workers <n>   concurrent processes (default 4)
  --seed <n>      schedule seed (default 1)
  --kill          kill random workers with SIGKILL at random moments and start new ones
  --json          print the report as JSON
  --dir <path>    scratch directory parent (default os.tmpdir())
  --keep          keep the datastore afterwards
  --sabotage      delete one snapshot behind everyone's back before the checks (the model must notice)
`);
  process.exit(0);
}

/** mulberry32: a small seeded PRNG. */
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function bytes(n, seed) {
  const r = rng(seed);
  const out = Buffer.allocUnsafe(n + 3);
  for (let i = 0; i < n; i += 4) out.writeUInt32LE((r() * 4294967296) >>> 0, i);
  return out.subarray(0, n);
}

function groupSeed(group) {
  let h = 7;
  for (const c of group) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return h;
}

/** The image of a snapshot made with `seed` in `group`: the group's base with a few blocks rewritten. */
function imageOf(group, seed) {
  const img = Buffer.alloc(IMAGE);
  bytes(IMAGE - (IMAGE % 4), groupSeed(group)).copy(img);
  const r = rng(seed);
  for (let k = 0; k < 6; k++) {
    const off = Math.floor(r() * (IMAGE - 4096));
    bytes(4096, seed * 16 + k).copy(img, off);
  }
  if (seed % 3 === 0) img.fill(0, 2 * CS, 4 * CS); // zero chunks too
  return img;
}

/** The files of the tree of a snapshot made with `seed` in `group`. */
function treeOf(group, seed) {
  return {
    'shared.bin': bytes(150_000, groupSeed(group) + 1),
    'own.bin': bytes(20_000 + (seed % 5000), seed),
    'sub/note.txt': Buffer.from(`${group} ${seed}\n`),
  };
}

function writeTree(dir, files) {
  rmSync(dir, { recursive: true, force: true });
  for (const [name, data] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    writeFileSync(path.join(dir, name), data);
  }
}

/** Restores one snapshot and compares it with what its seed says; returns a problem or undefined. */
async function checkSnapshot(snap, scratch) {
  const r = await snap.open();
  try {
    const seed = Number(Buffer.from(await r.readBlob('seed.blob')).toString());
    const group = `${snap.type}/${snap.id}`;
    const img = await r.readAt('disk.img', 0, IMAGE);
    if (Buffer.compare(Buffer.from(img), imageOf(group, seed)) !== 0) return 'image differs';
    const out = path.join(scratch, `check-${process.pid}-${Math.random().toString(36).slice(2)}`);
    try {
      await r.restoreTree('root.tree', out);
      for (const [name, data] of Object.entries(treeOf(group, seed))) {
        if (Buffer.compare(readFileSync(path.join(out, name)), data) !== 0) return `tree file ${name} differs`;
      }
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
    return undefined;
  } finally {
    await r.close();
  }
}

/** The seed a snapshot was made from (its `seed.blob`). */
async function seedOf(snap) {
  const r = await snap.open();
  try {
    return Number(Buffer.from(await r.readBlob('seed.blob')).toString());
  } finally {
    await r.close();
  }
}

async function allSnapshots(ds) {
  const out = [];
  for (const ns of await ds.listNamespaces()) {
    for (const g of await ns.groups().catch(() => [])) out.push(...(await g.snapshots().catch(() => [])));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Worker: runs random operations until the deadline; prints one JSON line with its counts.

async function worker() {
  const id = Number(opt.worker);
  const r = rng(id * 7919 + 1);
  const pick = (a) => a[Math.floor(r() * a.length)];
  const scratch = path.join(opt.scratch, `w${id}`);
  mkdirSync(scratch, { recursive: true });
  const ds = await Datastore.open(opt.store, { threads: 1 });
  // One line per operation, appended as it ends, so the counts of a killed worker are not lost.
  const log = path.join(opt.scratch, `w${id}.log`);
  const record = (line) => appendFileSync(log, `${line}\n`);
  const failures = { push: (msg) => record(`F ${JSON.stringify(msg)}`) };
  // The model's events: B(egin)/C(ommitted) of a backup, X?/X/K (removal begun, done, refused).
  const model = (event) => record(`M ${event}`);
  const until = Number(opt.until);
  while (Date.now() < until) {
    const x = r();
    const group = pick(GROUPS);
    // Mostly work on the group where it is (moves take it back and forth); sometimes anywhere.
    const where = [];
    for (const n of NAMESPACES)
      if (
        await ds
          .group(group, { namespace: n })
          .exists()
          .catch(() => false)
      )
        where.push(n);
    const op = x < 0.4 ? 'backup' : x < 0.55 ? 'restore' : x < 0.65 ? 'prune' : x < 0.72 ? 'verify' : x < 0.82 ? 'gc' : x < 0.88 ? 'forget' : x < 0.94 ? 'move' : 'protect';
    // Backups go where the group is (so moves can succeed); other operations sometimes miss.
    const ns = where.length > 0 && (op === 'backup' || r() < 0.9) ? pick(where) : pick(NAMESPACES);
    try {
      switch (op) {
        case 'backup': {
          const seed = Math.floor(r() * 1e9);
          const img = path.join(scratch, 'disk.raw');
          writeFileSync(img, imageOf(group, seed));
          const tree = path.join(scratch, 'tree');
          writeTree(tree, treeOf(group, seed));
          const w = await ds.group(group, { namespace: ns }).backup();
          const key = `${group}|${w.name.split('/')[2]}`;
          model(`B ${seed} ${key}`);
          try {
            await w.addBlob('seed', String(seed));
            await w.addImage('disk', img);
            await w.addTree('root', tree);
            await w.commit();
            model(`C ${seed}`);
          } catch (e) {
            await w.abort().catch(() => undefined);
            throw e;
          }
          break;
        }
        case 'restore': {
          const snaps = await ds.group(group, { namespace: ns }).snapshots();
          if (snaps.length === 0) break;
          const problem = await checkSnapshot(pick(snaps), scratch);
          if (problem !== undefined) failures.push(`restore during the run: ${problem}`);
          break;
        }
        case 'prune': {
          const pruner = new Pruner(ds);
          const plan = await pruner.plan({ namespace: ns, group }, { keepLast: 1 + Math.floor(r() * 3) });
          const seeds = new Map();
          for (const e of plan.entries) {
            if (e.mark !== 'remove' || !e.finished) continue;
            const seed = await ds
              .namespace(e.namespace)
              .group(e.group)
              .snapshot(e.time)
              .then(seedOf, () => undefined);
            if (seed === undefined) continue;
            seeds.set(`${e.namespace}|${e.group}|${e.time}`, seed);
            model(`X? ${seed}`);
          }
          const rep = await pruner.apply(plan);
          for (const e of rep.entries) {
            const seed = seeds.get(`${e.namespace}|${e.group}|${e.time}`);
            if (seed !== undefined) model(`${e.removed ? 'X' : 'K'} ${seed}`);
          }
          break;
        }
        case 'verify': {
          const rep = await new Verifier(ds).verify({ namespace: ns, group });
          if (rep.failed.length > 0) failures.push(`verify during the run failed: ${rep.failed.join(', ')} (${rep.failedChunks.map((c) => `${c.digest}: ${c.code}`).join('; ')})`);
          break;
        }
        case 'gc':
          await new GarbageCollector(ds).run({ skewMs: 0 });
          break;
        case 'forget': {
          const snaps = await ds.group(group, { namespace: ns }).snapshots();
          if (snaps.length > 1) {
            const s = pick(snaps.slice(0, -1));
            const seed = await seedOf(s);
            model(`X? ${seed}`);
            try {
              await s.remove();
              model(`X ${seed}`);
            } catch (e) {
              model(`K ${seed}`);
              throw e;
            }
          }
          break;
        }
        case 'move': {
          const to = ns === '' ? 'a' : '';
          await ds.moveGroup(group, { from: ns, to });
          break;
        }
        case 'protect': {
          const snaps = await ds.group(group, { namespace: ns }).snapshots();
          if (snaps.length === 0) break;
          const s = pick(snaps);
          await s.setProtected(!s.isProtected);
          break;
        }
      }
      record(`O ${op}`);
    } catch (e) {
      if (e && typeof e.code === 'string' && EXPECTED.has(e.code)) record(`E ${op}:${e.code}`);
      else failures.push(`${op} ${ns}:${group}: ${e?.code ?? ''} ${e?.stack ?? e}`);
    }
  }
  await ds.close();
  record('D');
}

// ---------------------------------------------------------------------------------------------
// The model: which snapshots must exist, from what the workers acknowledged

/**
 * Checks the datastore against the workers' model events. A snapshot (group and time) whose
 * backup committed and that no removal began on must exist exactly once and hold its seed; one
 * whose removal finished must not exist; a snapshot that exists must come from a backup that began
 * (no phantoms), under the group and time that backup got. Snapshots are told apart by their seed
 * (unique per backup; group and time repeat across namespaces and after removals). What a killed
 * worker left half done (a backup begun but not acknowledged, a removal begun but not finished) may
 * be either way.
 */
async function checkModel(ds, events, failures) {
  const made = new Map(); // seed -> { key: 'type/id|time', committed }
  const removed = new Set();
  const begun = new Map(); // seed -> removals begun (X?) minus those that ended (X or K)
  const count = (seed, d) => begun.set(seed, (begun.get(seed) ?? 0) + d);
  for (const e of events) {
    const [kind, seedText, key] = e.split(' ');
    const seed = Number(seedText);
    if (kind === 'B') made.set(seed, { key, committed: false });
    else if (kind === 'C') made.get(seed).committed = true;
    else if (kind === 'X?') count(seed, 1);
    else if (kind === 'X') {
      removed.add(seed);
      count(seed, -1);
    } else if (kind === 'K') count(seed, -1);
  }
  const found = new Map(); // seed -> times found
  let exist = 0;
  for (const s of await allSnapshots(ds)) {
    exist++;
    const seed = await seedOf(s);
    found.set(seed, (found.get(seed) ?? 0) + 1);
    const m = made.get(seed);
    if (m === undefined) failures.push(`model: ${s.namespace}:${s.name} holds seed ${seed}, which no backup began`);
    else if (m.key !== `${s.type}/${s.id}|${s.time}`) failures.push(`model: ${s.namespace}:${s.name} holds the seed of the backup ${m.key.replace('|', '/')}`);
    else if (removed.has(seed)) failures.push(`model: ${s.namespace}:${s.name} (seed ${seed}) was removed, but exists`);
  }
  for (const [seed, n] of found) if (n > 1) failures.push(`model: the snapshot of seed ${seed} exists ${n} times`);
  let must = 0;
  let uncertain = 0;
  for (const [seed, m] of made) {
    if (removed.has(seed)) continue;
    if (m.committed && (begun.get(seed) ?? 0) <= 0) {
      must++;
      if (found.get(seed) !== 1) failures.push(`model: ${m.key.replace('|', '/')} (seed ${seed}) was committed and never removed, but is found ${found.get(seed) ?? 0} times`);
    } else uncertain++;
  }
  return { backupsBegun: made.size, mustExist: must, removed: removed.size, uncertain, exist };
}

// ---------------------------------------------------------------------------------------------
// Driver

function startWorker(id, store, scratch, until) {
  const child = spawn(process.execPath, [self, '--worker', String(id), '--store', store, '--scratch', scratch, '--until', String(until)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const done = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ id, code, signal, out, err })));
  return { id, child, done };
}

async function driver() {
  const seconds = Number(opt.seconds);
  const nWorkers = Number(opt.workers);
  const seed = Number(opt.seed);
  const r = rng(seed);
  const parent = opt.dir ?? os.tmpdir();
  const scratch = mkdtempSync(path.join(parent, 'cairn-chaos-'));
  const store = path.join(scratch, 'store');
  const ds0 = await Datastore.create(store, { imageChunkSize: CS, syncLevel: 'none', threads: 1 });
  await ds0.createNamespace('a');
  await ds0.close();

  const t0 = Date.now();
  const until = t0 + seconds * 1000;
  let nextId = seed * 1000;
  const live = new Map();
  const finished = [];
  let kills = 0;
  for (let i = 0; i < nWorkers; i++) {
    const w = startWorker(nextId++, store, scratch, until);
    live.set(w.id, w);
  }
  while (Date.now() < until) {
    await new Promise((res) => setTimeout(res, opt.kill ? 300 + r() * 1500 : 500));
    for (const [id, w] of live) {
      if (w.child.exitCode !== null || w.child.signalCode !== null) {
        finished.push(await w.done);
        live.delete(id);
      }
    }
    if (opt.kill && Date.now() < until - 1000 && live.size > 0) {
      const victim = [...live.values()][Math.floor(r() * live.size)];
      victim.child.kill('SIGKILL');
      finished.push(await victim.done);
      live.delete(victim.id);
      kills++;
      const w = startWorker(nextId++, store, scratch, until);
      live.set(w.id, w);
    }
  }
  for (const w of live.values()) finished.push(await w.done);

  const report = { seconds, workers: nWorkers, seed, kill: opt.kill, kills, ops: {}, expected: {}, failures: [], snapshots: 0, checked: 0, final: {} };
  const bump = (o, k) => (o[k] = (o[k] ?? 0) + 1);
  const events = [];
  for (const f of finished) {
    let text = '';
    try {
      text = readFileSync(path.join(scratch, `w${f.id}.log`), 'utf8');
    } catch {
      // a worker killed before its first operation
    }
    const lines = text.split('\n');
    for (const line of lines) {
      if (line.startsWith('M ')) events.push(line.slice(2));
      else if (line.startsWith('O ')) bump(report.ops, line.slice(2));
      else if (line.startsWith('E ')) bump(report.expected, line.slice(2));
      else if (line.startsWith('F ')) {
        try {
          report.failures.push(JSON.parse(line.slice(2)));
        } catch {
          report.failures.push(line.slice(2, 2000)); // cut short by a kill, still a failure
        }
      }
    }
    if (f.signal !== 'SIGKILL' && !lines.includes('D')) report.failures.push(`worker ${f.id} exited ${f.code ?? f.signal} before the end: ${f.err.slice(0, 2000)}`);
  }

  // The checks: every snapshot restores byte-identical, verify passes; again after one more GC.
  const ds = await Datastore.open(store, { threads: 2 });
  try {
    if (opt.sabotage) {
      // A check that the checks can fail: a snapshot lost without any acknowledged removal.
      const victim = (await allSnapshots(ds))[0];
      if (victim !== undefined) {
        rmSync(path.join(store, ...(victim.namespace === '' ? [] : victim.namespace.split('/').flatMap((p) => ['ns', p])), victim.type, victim.id, victim.time), {
          recursive: true,
        });
        report.sabotaged = `${victim.namespace}:${victim.name}`;
      }
    }
    report.model = await checkModel(ds, events, report.failures);
    for (const phase of ['after the run', 'after a final GC']) {
      if (phase === 'after a final GC') report.final.gc = await new GarbageCollector(ds).run({ skewMs: 0 });
      const snaps = await allSnapshots(ds);
      report.snapshots = snaps.length;
      for (const s of snaps) {
        const problem = await checkSnapshot(s, scratch);
        report.checked++;
        if (problem !== undefined) report.failures.push(`${phase}: ${s.namespace}:${s.name}: ${problem}`);
      }
      const v = await new Verifier(ds).verify();
      report.final[phase] = { snapshots: snaps.length, verifyOk: v.ok.length, verifyFailed: v.failed.length };
      for (const f of v.failed) report.failures.push(`${phase}: verify failed ${f}`);
      for (const c of v.failedChunks) report.failures.push(`${phase}: chunk ${c.digest}: ${c.code} (${c.snapshots.join(', ')})`);
    }
    // Leftovers of killed processes are gone after that GC: no temp or aside files in the chunk store.
    const leftovers = [];
    for (const shard of readdirSync(path.join(store, '.chunks'))) {
      for (const name of readdirSync(path.join(store, '.chunks', shard))) if (!/^[0-9a-f]{64}$/.test(name)) leftovers.push(`${shard}/${name}`);
    }
    report.final.leftovers = leftovers.length;
    if (leftovers.length > 0) report.failures.push(`files other than chunks left in the chunk store after GC: ${leftovers.slice(0, 5).join(', ')}`);
  } finally {
    await ds.close();
  }
  report.elapsed = (Date.now() - t0) / 1000;
  if (!opt.keep) rmSync(scratch, { recursive: true, force: true });
  else report.store = store;

  if (opt.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  else {
    process.stdout.write(`chaos: ${seconds} s, ${nWorkers} workers, seed ${seed}${opt.kill ? `, ${kills} SIGKILLs` : ''}\n`);
    process.stdout.write(`operations: ${JSON.stringify(report.ops)}\nexpected refusals: ${JSON.stringify(report.expected)}\n`);
    process.stdout.write(`snapshots at the end: ${report.snapshots}; checks run: ${report.checked}; failures: ${report.failures.length}\n`);
    process.stdout.write(`model: ${JSON.stringify(report.model)}\n`);
    for (const f of report.failures.slice(0, 20)) process.stdout.write(`  ${f}\n`);
  }
  process.exitCode = report.failures.length === 0 ? 0 : 1;
}

if (opt.worker !== undefined) await worker();
else await driver();

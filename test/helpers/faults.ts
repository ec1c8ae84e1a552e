/**
 * The fault-injection harness of the hardening tests (issue 7): a template datastore with known
 * contents, a way to run one `cairn` command in a child process with a fault (test/helpers/fault-fs.mjs)
 * at a chosen file-system call, and the invariants checked afterwards:
 *
 * - the command either succeeds or fails with one coded line (`cairn: ERR_<CODE>: ...`, exit 2–6),
 *   never a crash or a stack trace (a `kill` run ends by SIGKILL);
 * - the datastore opens; every snapshot in it restores exactly what was backed up under its time
 *   (image, blob and tree), and the snapshots the command must not remove are all there, once;
 * - after a GC (skew 0) no temp file is left anywhere in the datastore, and verify finds nothing wrong.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, mkdirSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Test } from 'tap';
import { Datastore, GarbageCollector, Verifier } from '../../lib/index.js';
import { CLI, REPO } from '../cli/run-cli.js';
import { seededBytes } from './fixtures.js';

export const PRELOAD = path.join(REPO, 'test', 'helpers', 'fault-fs.mjs');
const CS = 64 * 1024;

/** What one snapshot holds: SHA-256 of the image and blob, and of every file of the tree by path. */
export interface Content {
  img: string;
  blob: string;
  tree: Record<string, string>;
}

/** The inputs of one version and what they hold. */
interface Version {
  img: string;
  blob: string;
  tree: string;
  content: Content;
}

const sha = (b: Uint8Array | string): string => createHash('sha256').update(b).digest('hex');

/** Writes version `v` of the inputs under `dir` (each version changes the image, the blob and a file). */
function makeVersion(dir: string, v: number): Version {
  const d = path.join(dir, `v${v}`);
  mkdirSync(path.join(d, 'tree', 'sub'), { recursive: true });
  const img = Buffer.from(seededBytes(5 * CS + 777, 7));
  seededBytes(4096, 100 + v).forEach((b, i) => (img[CS + v * 4096 + i] = b));
  img.fill(0, 3 * CS, 4 * CS); // a zero chunk
  writeFileSync(path.join(d, 'img'), img);
  const blob = `config of version ${v}\n`;
  writeFileSync(path.join(d, 'blob'), blob);
  const files: Record<string, Uint8Array> = {
    'a.txt': Buffer.from('alpha\n'),
    'sub/b.bin': seededBytes(100_000, 3),
    'sub/c.txt': Buffer.from(`version ${v}\n`),
    [`only-v${v}.dat`]: seededBytes(20_000 + v, 50 + v),
  };
  const tree: Record<string, string> = {};
  for (const [rel, data] of Object.entries(files)) {
    writeFileSync(path.join(d, 'tree', rel), data);
    tree[rel] = sha(data);
  }
  symlinkSync('a.txt', path.join(d, 'tree', 'link'));
  tree['link'] = 'symlink:a.txt';
  return { img: path.join(d, 'img'), blob: path.join(d, 'blob'), tree: path.join(d, 'tree'), content: { img: sha(img), blob: sha(blob), tree } };
}

/** Epoch seconds of the template's snapshots and of the one a test backup makes. */
export const T1 = 1_767_225_600; // 2026-01-01T00:00:00Z
export const T2 = T1 + 3600;
export const T3 = T1 + 7200;
export const rfc = (t: number): string => new Date(t * 1000).toISOString().replace('.000Z', 'Z');

/** The template: a datastore (sync level `file`, 64 KiB image chunks) with host/1 at T1 and T2, namespace `b`. */
export interface Template {
  store: string;
  expected: Map<number, Content>;
  /** The inputs of version 3 (for a backup at T3). */
  v3: Version;
}

export async function makeTemplate(dir: string): Promise<Template> {
  const store = path.join(dir, 'template');
  const ds = await Datastore.create(store, { syncLevel: 'file', imageChunkSize: CS, threads: 1 });
  const expected = new Map<number, Content>();
  try {
    await ds.createNamespace('b');
    for (const [v, t] of [
      [1, T1],
      [2, T2],
    ] as const) {
      const x = makeVersion(dir, v);
      const w = await ds.group('host/1').backup({ time: t });
      await w.addImage('disk', x.img);
      await w.addTree('root', x.tree);
      await w.addBlob('conf', readFileSync(x.blob));
      await w.commit();
      expected.set(t, x.content);
    }
  } finally {
    await ds.close();
  }
  const v3 = makeVersion(dir, 3);
  expected.set(T3, v3.content);
  return { store, expected, v3 };
}

/** A fresh copy of the template's datastore at `dir/<name>`. */
export function copyStore(tpl: Template, dir: string, name: string): string {
  const store = path.join(dir, name);
  rmSync(store, { recursive: true, force: true });
  cpSync(tpl.store, store, { recursive: true, preserveTimestamps: true });
  return store;
}

/** What a fault run is told to do (see test/helpers/fault-fs.mjs). */
export interface Plan {
  mode: 'count' | 'fail' | 'short' | 'delay' | 'kill';
  at?: number;
  errno?: string;
  log?: string;
  delayMs?: number;
}

/** The outcome of a child run. */
export interface ChildRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  out: string;
  err: string;
}

/** Runs `cairn <args>` with the fault layer and `plan`. */
export function cairnWithFault(args: string[], plan: Plan): Promise<ChildRun> {
  const env: NodeJS.ProcessEnv = { ...process.env, CAIRN_FAULT_PLAN: JSON.stringify(plan) };
  delete env['NODE_OPTIONS'];
  delete env['CAIRN_STORE'];
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, ['--import', PRELOAD, CLI, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    c.stdout.on('data', (d: Buffer) => (out += d));
    c.stderr.on('data', (d: Buffer) => (err += d));
    c.on('error', reject);
    c.on('close', (code, signal) => resolve({ code, signal, out, err }));
  });
}

/** The file-system calls a command makes (a `count` run): `<n> <call> <path>` lines. */
export async function countCalls(args: string[], logFile: string): Promise<string[]> {
  const r = await cairnWithFault(args, { mode: 'count', log: logFile });
  if (r.code !== 0) throw new Error(`count run of ${args.join(' ')} failed (${r.code}): ${r.err}`);
  return readFileSync(logFile, 'utf8')
    .split('\n')
    .filter((l) => l !== '');
}

/**
 * The call numbers to inject at: every one when there are at most `max`, else the first call of
 * each kind (call name and file kind: chunk, lock, index, manifest, other), then an even spread,
 * `max` in all.
 */
export function pickSites(calls: string[], max: number): number[] {
  if (calls.length <= max) return calls.map((_, i) => i + 1);
  const kind = (l: string): string => {
    const [, call, p = ''] = l.split(' ');
    const file = p.includes('.chunks/') ? 'chunk' : p.includes('.locks') ? 'lock' : /\.(fidx|didx)/.test(p) ? 'index' : p.includes('manifest') ? 'manifest' : 'other';
    return `${call} ${file}`;
  };
  // The first call of every kind, then an even spread, up to `max`.
  const sites = new Set<number>();
  const kinds = new Set<string>();
  calls.forEach((l, i) => {
    const k = kind(l);
    if (!kinds.has(k) && sites.size < max) sites.add(i + 1);
    kinds.add(k);
  });
  for (let i = 0; sites.size < max && i < max; i++) sites.add(1 + Math.floor(((i + 0.5) * calls.length) / max));
  return [...sites].sort((a, b) => a - b);
}

/** The rotation of faults: errno failures, short writes, a delay now and then. */
export function faultFor(i: number): Plan {
  const rot: Plan[] = [{ mode: 'fail', errno: 'ENOSPC' }, { mode: 'fail', errno: 'EIO' }, { mode: 'short' }, { mode: 'fail', errno: 'EACCES' }, { mode: 'delay', delayMs: 150 }];
  return rot[i % rot.length]!;
}

/** Files under `dir` whose names mark them as temp files (`.tmp-`), relative. */
export function tempFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string, rel: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const r = rel === '' ? e.name : `${rel}/${e.name}`;
      if (e.name.includes('.tmp-')) out.push(r);
      if (e.isDirectory() && e.name !== '.catalog') walk(path.join(d, e.name), r);
    }
  };
  walk(dir, '');
  return out;
}

/** Checks the outcome of a run: success, or one coded error line (or SIGKILL for `kill`). */
export function checkOutcome(t: Test, r: ChildRun, plan: Plan, what: string): boolean {
  if (plan.mode === 'kill') {
    // The site may come after the last call on some paths (e.g. an error path): then it exits.
    return t.ok(r.signal === 'SIGKILL' || r.code === 0 || /^cairn: ERR_[A-Z_]+: /m.test(r.err), `${what}: killed or finished`);
  }
  if (r.code === 0) return t.pass(`${what}: succeeded`);
  const coded = /^cairn: ERR_[A-Z_]+: /m.test(r.err) && r.code !== null && r.code >= 2 && r.code <= 6 && !/\n\s+at /.test(r.err);
  return t.ok(coded, `${what}: a coded error (exit ${r.code})`, { stderr: r.err.slice(0, 1500) });
}

/** Which snapshots must be there after the command, and which may be. */
export interface Expect {
  /** Snapshot times (epoch seconds) that must exist exactly once, in any namespace. */
  must: number[];
  /** Times that may exist (e.g. the backup's new snapshot, the ones prune removes). */
  may: number[];
}

/**
 * The invariants after a run: the datastore opens; listed snapshots hold what they should; `must`
 * all there once; after GC (skew 0) no temp file; verify clean.
 */
export async function checkStore(t: Test, store: string, tpl: Template, expect: Expect, what: string): Promise<void> {
  const ds = await Datastore.open(store, { threads: 1 });
  try {
    const seen = new Map<number, number>();
    const bad: string[] = [];
    const namespaces = new Map((await ds.listNamespaces()).map((n) => [n.path, n]));
    namespaces.set('', ds.namespace(''));
    for (const ns of namespaces.values()) {
      for (const g of await ns.groups()) {
        for (const s of await g.snapshots()) {
          seen.set(s.epoch, (seen.get(s.epoch) ?? 0) + 1);
          const exp = tpl.expected.get(s.epoch);
          if (exp === undefined || ![...expect.must, ...expect.may].includes(s.epoch)) {
            bad.push(`unexpected snapshot ${ns.path}:${s.name}`);
            continue;
          }
          const r = await s.open();
          try {
            const chunks: Buffer[] = [];
            for await (const c of r.createReadStream('disk.img')) chunks.push(c as Buffer);
            if (sha(Buffer.concat(chunks)) !== exp.img) bad.push(`${s.name}: image differs`);
            if (sha(await r.readBlob('conf.blob')) !== exp.blob) bad.push(`${s.name}: blob differs`);
            const tree = await r.tree('root.tree');
            const got: Record<string, string> = {};
            for await (const item of tree.walk()) {
              const p = item.path.toString('utf8');
              if (item.entry.kind === 'file') got[p] = sha(await tree.readFile(item));
              else if (item.entry.kind === 'symlink') got[p] = `symlink:${Buffer.from(item.entry.target!).toString('utf8')}`;
            }
            if (JSON.stringify(got, Object.keys(got).sort()) !== JSON.stringify(exp.tree, Object.keys(exp.tree).sort())) bad.push(`${s.name}: tree differs ${JSON.stringify(got)}`);
          } finally {
            await r.close();
          }
        }
      }
    }
    for (const m of expect.must) if (seen.get(m) !== 1) bad.push(`snapshot ${rfc(m)} found ${seen.get(m) ?? 0} times`);
    for (const [m, k] of seen) if (k > 1) bad.push(`snapshot ${rfc(m)} found ${k} times`);
    await new GarbageCollector(ds).run({ skewMs: 0 });
    const temps = tempFiles(store);
    if (temps.length > 0) bad.push(`temp files after GC: ${temps.join(', ')}`);
    const v = await new Verifier(ds).verify();
    if (v.failed.length > 0) bad.push(`verify failed: ${v.failed.join(', ')}`);
    t.same(bad, [], `${what}: datastore consistent`);
  } finally {
    await ds.close();
  }
}

/** One command to run with faults at its file-system calls. */
export interface FaultCase {
  /** The command's arguments for a datastore. */
  args(store: string, run: string): string[];
  /** The snapshots afterwards; `onSuccess` is added to `must` when the command succeeded. */
  expect: Expect & { onSuccess?: number[] };
  /** Prepares the fresh copy of the template before the run (in-process). */
  prepare?(store: string): Promise<void>;
  /** Checks a successful run's own result (e.g. what a restore wrote). */
  checkSuccess?(t: Test, run: string): Promise<void> | void;
}

/** How many sites a sweep injects at: `CAIRN_FAULT_SITES` (a number, or `all`), default 12. */
export function maxSites(): number {
  const v = process.env['CAIRN_FAULT_SITES'];
  return v === 'all' ? Number.MAX_SAFE_INTEGER : Number(v ?? 12);
}

/**
 * Runs the case once counting its calls, then with a fault at each picked site (errno failures,
 * short writes, delays in rotation) and with SIGKILL at half as many; checks the outcome and the
 * datastore after each.
 */
export async function sweep(t: Test, tpl: Template, dir: string, c: FaultCase): Promise<void> {
  const count = copyStore(tpl, dir, 'count');
  await c.prepare?.(count);
  const countRun = path.join(dir, 'count-run');
  const calls = await countCalls(c.args(count, countRun), path.join(dir, 'calls.log'));
  rmSync(countRun, { recursive: true, force: true });
  t.ok(calls.length > 0, `${calls.length} file-system calls`);
  const max = maxSites();
  const plans: Plan[] = [
    ...pickSites(calls, max).map((at, i) => ({ ...faultFor(i), at })),
    ...pickSites(calls, Math.max(1, Math.floor(max / 2))).map((at) => ({ mode: 'kill' as const, at })),
  ];
  for (const plan of plans) {
    const store = copyStore(tpl, dir, 'run-store');
    await c.prepare?.(store);
    const run = path.join(dir, 'run');
    rmSync(run, { recursive: true, force: true });
    const what = `${plan.mode}${plan.errno ? ` ${plan.errno}` : ''} at call ${plan.at} (${calls[plan.at! - 1]?.split(' ').slice(1).join(' ').replace(dir, '')})`;
    const r = await cairnWithFault(c.args(store, run), plan);
    checkOutcome(t, r, plan, what);
    const ok = r.code === 0 && plan.mode !== 'kill';
    if (ok) await c.checkSuccess?.(t, run);
    const must = [...c.expect.must, ...(r.code === 0 ? (c.expect.onSuccess ?? []) : [])];
    await checkStore(t, store, tpl, { must, may: c.expect.may }, what);
  }
}

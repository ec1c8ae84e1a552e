/**
 * `--lock-wait` honours Ctrl-C: a command waiting for a lock that another process holds stops
 * within a fraction of a second of SIGINT (exit 130) or SIGTERM (exit 143), not when the wait runs
 * out, and leaves nothing behind. The holder is a real child process; the waiter is the built CLI.
 */
import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readdir, readlink } from 'node:fs/promises';
import path from 'node:path';
import { groupLockKey, snapshotLockKey } from '../../lib/datastore/layout.js';
import { seededBytes, tempDir, writeTemp } from '../helpers/fixtures.js';
import { CLI, cairn, requireBuilt } from './run-cli.js';

const LOCKS = new URL('../../dist/host/locks.js', import.meta.url).href;
const T1 = '2026-01-01T00:00:00Z';

function childEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env['NODE_OPTIONS'];
  delete env['CAIRN_STORE'];
  return env;
}

/** A child process that holds `file` exclusively until its stdin closes. */
async function holder(file: string): Promise<ChildProcess> {
  const script = `import { acquireLock } from ${JSON.stringify(LOCKS)};
const l = await acquireLock(${JSON.stringify(file)}, 'exclusive', { operation: 'test holder' });
process.stdout.write('locked\\n');
process.stdin.resume();
process.stdin.on('end', async () => { await l.release(); process.exit(0); });`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['pipe', 'pipe', 'inherit'], env: childEnv() });
  const [line] = (await once(child.stdout!, 'data')) as [Buffer];
  if (line.toString().trim() !== 'locked') throw new Error(`holder said ${line.toString()}`);
  return child;
}

async function end(child: ChildProcess): Promise<void> {
  child.stdin!.end();
  if (child.exitCode === null) await once(child, 'exit');
}

interface Interrupted {
  code: number | null;
  err: string;
  /** ms from the signal to the exit. */
  lateMs: number;
}

/** True once process `pid` has `file` open (Linux: /proc/<pid>/fd); undefined where /proc cannot tell. */
async function hasOpen(pid: number, file: string): Promise<boolean | undefined> {
  let fds: string[];
  try {
    fds = await readdir(`/proc/${pid}/fd`);
  } catch {
    return undefined;
  }
  for (const fd of fds) {
    if ((await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '')) === file) return true;
  }
  return false;
}

/**
 * Runs the CLI, waits until it has `lockFile` open (it is waiting for the lock: a slow start under
 * load must not be mistaken for the wait), then `afterMs` more, sends `sig` and measures how fast
 * it exits.
 */
async function interruptAfter(args: string[], lockFile: string, sig: 'SIGINT' | 'SIGTERM', afterMs: number): Promise<Interrupted> {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: childEnv() });
  let err = '';
  child.stderr.on('data', (b: Buffer) => (err += b.toString()));
  child.stdout.resume();
  const exited = once(child, 'exit') as Promise<[number | null, string | null]>;
  for (let i = 0; i < 200 && child.exitCode === null; i++) {
    const open = await hasOpen(child.pid!, lockFile);
    if (open !== false) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  await new Promise((r) => setTimeout(r, afterMs));
  if (child.exitCode !== null) throw new Error(`the command ended before the signal (${child.exitCode}): ${err}`);
  const sentAt = performance.now();
  child.kill(sig);
  const [code] = await exited;
  return { code, err, lateMs: performance.now() - sentAt };
}

if (requireBuilt(t)) {
  t.test('a backup waiting for its group lock stops on SIGINT (130) and SIGTERM (143)', async (t) => {
    const dir = tempDir(t, 'cairn-lock-wait-');
    const store = path.join(dir, 'store');
    t.equal((await cairn(['init', store, '--sync-level', 'none', '--image-chunk-size', '65536'])).code, 0);
    const img = await writeTemp(dir, 'disk.raw', seededBytes(3 * 65536, 5));
    const lockFile = path.join(store, groupLockKey([], { type: 'vm', id: '1' }));
    const h = await holder(lockFile);
    t.teardown(() => (h.exitCode === null ? end(h) : undefined));

    for (const [sig, want] of [
      ['SIGINT', 130],
      ['SIGTERM', 143],
    ] as const) {
      for (const json of [false, true]) {
        const args = ['--store', store, '--lock-wait', '30', ...(json ? ['--json'] : []), 'backup', 'vm/1', `disk.img:${img}`];
        const r = await interruptAfter(args, lockFile, sig, 1000);
        t.equal(r.code, want, `${sig}${json ? ' --json' : ''}: exit ${want}; ${r.err}`);
        t.ok(r.lateMs < 1000, `${sig}${json ? ' --json' : ''}: exited ${r.lateMs.toFixed(0)} ms after the signal, not after the 30 s wait`);
        if (json) {
          t.match(JSON.parse(r.err.trim().split('\n').at(-1)!), { error: { code: 'ERR_ABORTED', details: { signal: sig } } }, 'the JSON error line');
        } else {
          t.match(r.err, new RegExp(`^cairn: interrupted \\(${sig}\\)\\n$`), 'one line on stderr');
        }
      }
    }
    t.notOk((await readdir(store)).includes('vm'), 'no group directory was made');
    t.same(await readdir(path.join(store, '.locks', 'writers')).catch(() => []), [], 'no writer registration left');

    // The holder was never disturbed: without a wait the group is still locked, by it.
    const busy = await cairn(['--store', store, 'backup', 'vm/1', `disk.img:${img}`]);
    t.equal(busy.code, 4, busy.err);
    t.match(busy.err, new RegExp(`ERR_LOCKED.*pid ${h.pid} \\(test holder`), 'still held by the holder');
    await end(h);
    const ok = await cairn(['--store', store, 'backup', 'vm/1', `disk.img:${img}`, '--time', T1]);
    t.equal(ok.code, 0, `the datastore works as before: ${ok.err}`);
  });

  t.test('a restore waiting for a snapshot lock stops on SIGINT and writes no target', async (t) => {
    const dir = tempDir(t, 'cairn-lock-wait-');
    const store = path.join(dir, 'store');
    t.equal((await cairn(['init', store, '--sync-level', 'none', '--image-chunk-size', '65536'])).code, 0);
    const img = await writeTemp(dir, 'disk.raw', seededBytes(2 * 65536, 6));
    t.equal((await cairn(['--store', store, 'backup', 'vm/1', `disk.img:${img}`, '--time', T1])).code, 0);
    // An exclusive snapshot lock is what a removal (prune, forget) holds.
    const lockFile = path.join(store, snapshotLockKey([], { type: 'vm', id: '1' }, T1));
    const h = await holder(lockFile);
    t.teardown(() => (h.exitCode === null ? end(h) : undefined));
    const out = path.join(dir, 'out.raw');
    const r = await interruptAfter(['--store', store, '--lock-wait', '30', 'restore', `vm/1/${T1}`, 'disk.img', out], lockFile, 'SIGINT', 1000);
    t.equal(r.code, 130, r.err);
    t.ok(r.lateMs < 1000, `exited ${r.lateMs.toFixed(0)} ms after SIGINT`);
    t.same((await readdir(dir)).sort(), ['disk.raw', 'store'], 'no target and no temp file');
  });
}

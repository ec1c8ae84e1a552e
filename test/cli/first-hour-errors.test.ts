/**
 * A new user's first mistakes get a coded one-line error and the documented exit code: a group
 * that does not exist, usage errors (also as JSON), a lock held by another process (who holds it,
 * --lock-wait), and Ctrl-C (130, SIGTERM 143), never a stack trace. (The signalled commands wait
 * for a lock, so that the signal arrives once the CLI has installed its handlers.)
 */
import t, { type Test } from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { tempDir, writeTemp } from '../helpers/fixtures.js';
import { CLI, cairn, requireBuilt, type Run } from './run-cli.js';

const INDEX = new URL('../../dist/index.js', import.meta.url).href;
const noStack = (t: Test, r: Run): void => {
  t.notMatch(r.err, /\n\s+at /, 'no stack trace');
};

/** A child that holds group `group` of `store` as a running backup does, until its stdin closes. */
async function backupHolder(store: string, group: string): Promise<ChildProcess> {
  const script = `import { Datastore, setLockHolderName } from ${JSON.stringify(INDEX)};
setLockHolderName('cairn backup');
const ds = await Datastore.open(${JSON.stringify(store)}, { threads: 0 });
const w = await ds.group(${JSON.stringify(group)}).backup();
process.stdout.write('locked\\n');
process.stdin.resume();
process.stdin.on('end', async () => { await w.abort(); await ds.close(); process.exit(0); });`;
  const env = { ...process.env };
  delete env['NODE_OPTIONS'];
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['pipe', 'pipe', 'inherit'], env });
  const [line] = (await once(child.stdout!, 'data')) as [Buffer];
  if (line.toString().trim() !== 'locked') throw new Error(`holder said ${line.toString()}`);
  return child;
}

async function endChild(c: ChildProcess): Promise<void> {
  c.stdin!.end();
  if (c.exitCode === null) await once(c, 'exit');
}

/** Runs the CLI and sends `sig` after `afterMs`. */
function cairnSignalled(args: string[], sig: NodeJS.Signals, afterMs: number): Promise<Run> {
  const env = { ...process.env };
  delete env['NODE_OPTIONS'];
  delete env['CAIRN_STORE'];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    const timer = setTimeout(() => child.kill(sig), afterMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      const stdout = Buffer.concat(out);
      resolve({ code, stdout, out: stdout.toString('utf8'), err: Buffer.concat(err).toString('utf8') });
    });
  });
}

if (requireBuilt(t)) {
  const dir = tempDir(t, 'cairn-first-hour-');
  const store = path.join(dir, 'store');
  const S = ['--store', store];

  t.before(async () => {
    const init = await cairn(['init', store, '--sync-level', 'none']);
    if (init.code !== 0) throw new Error(init.err);
    const f = await writeTemp(dir, 'a.txt', Buffer.from('hello\n'));
    const b = await cairn([...S, 'backup', 'vm/1', `a.blob:${f}`]);
    if (b.code !== 0) throw new Error(b.err);
    const ns = await cairn([...S, 'ns', 'create', 'empty']);
    if (ns.code !== 0) throw new Error(ns.err);
  });

  t.test('snapshots of a group that does not exist is ERR_NOT_FOUND (exit 3); an empty namespace lists nothing (exit 0)', async (t) => {
    const r = await cairn([...S, 'snapshots', 'vm/2']);
    t.equal(r.code, 3);
    t.equal(r.err, 'cairn: ERR_NOT_FOUND: backup group vm/2 does not exist\n');
    t.equal(r.out, '');
    const j = await cairn([...S, '--json', 'snapshots', 'vm/2']);
    t.equal(j.code, 3);
    t.match(JSON.parse(j.err), { error: { code: 'ERR_NOT_FOUND', details: { group: 'vm/2' } } });
    const e = await cairn([...S, '--ns', 'empty', 'snapshots']);
    t.equal(e.code, 0, e.err);
    t.equal(e.out, 'no snapshots\n');
    const ej = await cairn([...S, '--ns', 'empty', '--json', 'snapshots']);
    t.same(JSON.parse(ej.out), []);
    const ok = await cairn([...S, 'snapshots', 'vm/1']);
    t.equal(ok.code, 0, ok.err);
  });

  t.test('usage errors with --json are JSON on stderr (ERR_USAGE, exit 2); --help stays', async (t) => {
    for (const args of [['snapshots', '--bogus'], ['bogus'], ['show']]) {
      const r = await cairn([...S, '--json', ...args]);
      t.equal(r.code, 2, `${args.join(' ')}: exit 2`);
      const lines = r.err.trim().split('\n');
      t.equal(lines.length, 1, 'one line');
      const j = JSON.parse(lines[0]!) as { error: { code: string; message: string } };
      t.equal(j.error.code, 'ERR_USAGE');
      t.notMatch(j.error.message, /^error:/);
      t.notMatch(r.err, /Usage:/, "commander's help text is not printed");
    }
    const text = await cairn([...S, 'show']);
    t.equal(text.code, 2);
    t.match(text.err, /missing required argument 'snapshot'/, 'without --json the text stays');
    const help = await cairn(['--json', 'snapshots', '--help']);
    t.equal(help.code, 0);
    t.match(help.out, /Usage: cairn snapshots/);
    const bad = await cairn([...S, '--json', '--lock-wait', 'soon', 'snapshots']);
    t.equal(bad.code, 2);
    t.match(JSON.parse(bad.err), { error: { code: 'ERR_INVALID_ARGUMENT' } });
  });

  t.test('ERR_LOCKED names the holder; --lock-wait waits for it; SIGINT/SIGTERM exit 130/143 with one line', async (t) => {
    const f = await writeTemp(dir, 'b.txt', Buffer.from('more\n'));
    const holder = await backupHolder(store, 'vm/1');
    let held = true;
    t.teardown(async () => {
      if (held) await endChild(holder);
    });
    const r = await cairn([...S, 'backup', 'vm/1', `b.blob:${f}`]);
    t.equal(r.code, 4);
    t.match(r.err, new RegExp(`^cairn: ERR_LOCKED: backup group vm/1 is locked by pid ${holder.pid} \\(cairn backup, since \\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ\\)\\n$`));
    noStack(t, r);

    const t0 = Date.now();
    const w = await cairn([...S, '--lock-wait', '1', 'backup', 'vm/1', `b.blob:${f}`]);
    t.equal(w.code, 4, 'still locked after the wait');
    t.ok(Date.now() - t0 >= 900, 'it waited about a second');

    for (const [sig, code] of [
      ['SIGINT', 130],
      ['SIGTERM', 143],
    ] as const) {
      const s = await cairnSignalled([...S, '--lock-wait', '3', 'backup', 'vm/1', `b.blob:${f}`], sig, 1200);
      t.equal(s.code, code, `${sig}: exit ${code}`);
      t.equal(s.err, `cairn: interrupted (${sig})\n`, 'one line');
    }
    const sj = await cairnSignalled([...S, '--json', '--lock-wait', '3', 'backup', 'vm/1', `b.blob:${f}`], 'SIGINT', 1200);
    t.equal(sj.code, 130);
    t.same(JSON.parse(sj.err), { error: { code: 'ERR_ABORTED', message: 'interrupted (SIGINT)', details: { signal: 'SIGINT' } } });

    // The holder lets go within the wait: the backup goes through.
    const waiting = cairn([...S, '--lock-wait', '20', 'backup', 'vm/1', `b.blob:${f}`]);
    await new Promise((res) => setTimeout(res, 800));
    await endChild(holder);
    held = false;
    const done = await waiting;
    t.equal(done.code, 0, done.err);
    t.match(done.out, /created snapshot vm\/1\//);
  });
}

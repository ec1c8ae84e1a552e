/**
 * ERR_LOCKED says who holds a lock: the exclusive holder's record (pid, operation, since) written
 * into the lock file, read by the process that fails to get the lock. Across two real processes.
 */
import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFile, readFile } from 'node:fs/promises';
import path from 'node:path';
import { once } from 'node:events';
import { tempDir } from '../helpers/fixtures.js';
import { acquireLock, lockHolder, parseLockHolder } from '../../lib/host/locks.js';
import { requireBuilt } from '../cli/run-cli.js';

const LOCKS = new URL('../../dist/host/locks.js', import.meta.url).href;

/** A child process that takes `mode` on `file` and holds it until its stdin closes. */
async function holder(file: string, mode: 'shared' | 'exclusive'): Promise<ChildProcess> {
  const script = `import { acquireLock } from ${JSON.stringify(LOCKS)};
const l = await acquireLock(${JSON.stringify(file)}, ${JSON.stringify(mode)}, { operation: 'cairn backup' });
process.stdout.write('locked\\n');
process.stdin.resume();
process.stdin.on('end', async () => { await l.release(); process.exit(0); });`;
  const env = { ...process.env };
  delete env['NODE_OPTIONS'];
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['pipe', 'pipe', 'inherit'], env });
  const [line] = (await once(child.stdout!, 'data')) as [Buffer];
  if (line.toString().trim() !== 'locked') throw new Error(`child said ${line.toString()}`);
  return child;
}

async function end(child: ChildProcess): Promise<void> {
  child.stdin!.end();
  if (child.exitCode === null) await once(child, 'exit');
}

if (requireBuilt(t)) {
  t.test('an exclusive holder in another process is named: pid, operation, since', async (t) => {
    const dir = tempDir(t, 'cairn-lock-holder-');
    const file = path.join(dir, 'group.lock');
    const child = await holder(file, 'exclusive');
    t.teardown(() => end(child));
    const err = await acquireLock(file, 'exclusive', { what: 'backup group vm/100' }).then(
      () => undefined,
      (e: unknown) => e as { code: string; message: string; details: Record<string, unknown> },
    );
    t.equal(err?.code, 'ERR_LOCKED');
    t.match(err?.message, new RegExp(`^backup group vm/100 is locked by pid ${child.pid} \\(cairn backup, since \\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ\\)$`));
    t.equal(err?.details['holderPid'], child.pid);
    const shared = await acquireLock(file, 'shared', { what: 'snapshot vm/100/x' }).catch((e: { message: string }) => e);
    t.match((shared as { message: string }).message, `locked by pid ${child.pid}`, 'a shared taker is told too');
    t.same(await lockHolder(file), { pid: child.pid, operation: 'cairn backup', since: (await lockHolder(file))!.since });
    await end(child);
    t.equal((await readFile(file)).length, 0, 'released: the record is gone');
    const l = await acquireLock(file, 'exclusive');
    await l.release();
  });

  t.test('shared holders are not named; a stale or hostile record is not believed', async (t) => {
    const dir = tempDir(t, 'cairn-lock-holder-');
    const file = path.join(dir, 'snap.lock');
    // A record of a dead process (as a crashed exclusive holder leaves it), then a shared holder.
    await writeFile(file, JSON.stringify({ pid: 4_000_000, operation: 'cairn gc', since: '2026-01-01T00:00:00Z' }));
    const child = await holder(file, 'shared');
    t.teardown(() => end(child));
    t.equal((await readFile(file)).length, 0, 'the shared holder cleared the stale record');
    const err = (await acquireLock(file, 'exclusive', { what: 'snapshot vm/1/x' }).catch((e: unknown) => e)) as { code: string; message: string };
    t.equal(err.code, 'ERR_LOCKED');
    t.equal(err.message, 'snapshot vm/1/x is locked: held by another process');
    await end(child);

    // Parsing is strict and sanitizes: control characters never reach the message.
    const pid = process.ppid; // alive, not this process
    t.same(parseLockHolder(Buffer.from(JSON.stringify({ pid, operation: 'evil\u001b[2J\nline', since: '2026-01-01T00:00:00Z' }))), {
      pid,
      operation: 'evil?[2J?line',
      since: '2026-01-01T00:00:00Z',
    });
    t.equal(parseLockHolder(Buffer.from(JSON.stringify({ pid, operation: 'x', since: 'yesterday' }))), undefined, 'bad time');
    t.equal(parseLockHolder(Buffer.from(JSON.stringify({ pid: -1, operation: 'x', since: '2026-01-01T00:00:00Z' }))), undefined, 'bad pid');
    t.equal(parseLockHolder(Buffer.from(JSON.stringify({ pid: 4_000_000, operation: 'x', since: '2026-01-01T00:00:00Z' }))), undefined, 'dead pid');
    t.equal(parseLockHolder(Buffer.alloc(100_000, 0x20)), undefined, 'too long');
    t.equal(parseLockHolder(Buffer.from('{"pid":')), undefined, 'torn');
  });
}

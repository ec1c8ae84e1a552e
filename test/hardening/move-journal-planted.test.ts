// The move journal under .locks/ is a datastore file like any other: a symlink planted in its place
// must never be appended to, read or truncated through, and a FIFO or /dev/zero must not hang or
// fill the memory of a GC.
import t, { type Test } from 'tap';
import { promises as fsp } from 'node:fs';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { GarbageCollector } from '../../lib/index.js';
import { MOVE_JOURNAL_KEY } from '../../lib/datastore/move-journal.js';
import { seededBytes, writeTemp } from '../helpers/fixtures.js';
import { CS, clockedStore, type ClockedStore } from '../helpers/clocked-store.js';

async function setup(t: Test): Promise<ClockedStore & { journal: string; outside: string }> {
  const env = await clockedStore(t, 0);
  await env.ds.createNamespace('a');
  await env.ds.createNamespace('b');
  const src = await writeTemp(env.dir, 'disk.raw', seededBytes(2 * CS + 5, 7));
  const w = await env.ds.group('vm/1', { namespace: 'a' }).backup({ time: 1_000_000 });
  await w.addImage('disk', src);
  await w.commit();
  const outside = path.join(env.dir, 'outside.txt');
  await fsp.writeFile(outside, 'root-only secret\n', { mode: 0o600 });
  return { ...env, journal: path.join(env.dir, 'store', MOVE_JOURNAL_KEY), outside };
}

t.test('a move does not append through a journal planted as a symlink', async (t) => {
  const env = await setup(t);
  await fsp.mkdir(path.dirname(env.journal), { recursive: true });
  await fsp.rm(env.journal, { force: true });
  await fsp.symlink(env.outside, env.journal);
  await t.rejects(env.ds.moveGroup('vm/1', { from: 'a', to: 'b' }), { code: 'ERR_UNSAFE_PATH' });
  t.equal(await fsp.readFile(env.outside, 'utf8'), 'root-only secret\n', 'the file outside is unchanged');
  t.equal((await env.ds.group('vm/1', { namespace: 'a' }).snapshots()).length, 1, 'the snapshot stayed where it was');
});

t.test('a GC neither truncates through a planted journal symlink nor reads /dev/zero or a FIFO', async (t) => {
  const env = await setup(t);
  await fsp.mkdir(path.dirname(env.journal), { recursive: true });
  for (const plant of ['symlink-outside', 'dev-zero', 'fifo'] as const) {
    await fsp.rm(env.journal, { force: true });
    if (plant === 'symlink-outside') await fsp.symlink(env.outside, env.journal);
    else if (plant === 'dev-zero') await fsp.symlink('/dev/zero', env.journal);
    else execFileSync('mkfifo', [env.journal]);
    const t0 = Date.now();
    await t.rejects(new GarbageCollector(env.ds).run({ skewMs: 0 }), { code: 'ERR_UNSAFE_PATH' }, plant);
    t.ok(Date.now() - t0 < 10_000, `${plant}: the GC ended at once`);
    t.equal(await fsp.readFile(env.outside, 'utf8'), 'root-only secret\n', `${plant}: the file outside is unchanged`);
  }
  // Once the planted entry is gone, GC and moves work again.
  await fsp.rm(env.journal, { force: true });
  await new GarbageCollector(env.ds).run({ skewMs: 0 });
  await env.ds.moveGroup('vm/1', { from: 'a', to: 'b' });
  t.equal((await env.ds.group('vm/1', { namespace: 'b' }).snapshots()).length, 1);
});

import t from 'tap';
import { spawn } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Datastore } from '../../lib/index.js';
import { acquireLock } from '../../lib/host/locks.js';
import { manifestLockKey } from '../../lib/datastore/layout.js';
import { seededBytes, tempDir, writeTemp } from '../helpers/fixtures.js';

const CS = 64 * 1024;
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

t.test('a second writer on the same group gets ERR_LOCKED; other groups are free', async (t) => {
  const dir = tempDir(t);
  const ds = await Datastore.create(path.join(dir, 'store'), { imageChunkSize: CS, syncLevel: 'none', threads: 1 });
  t.teardown(() => ds.close());
  const w1 = await ds.group('vm/100').backup();
  await t.rejects(ds.group('vm/100').backup(), { code: 'ERR_LOCKED', message: /backup group vm\/100 is locked/ });
  const other = await ds.group('vm/101').backup();
  await other.abort();
  await ds.createNamespace('b');
  const sameIdOtherNs = await ds.group('vm/100', { namespace: 'b' }).backup();
  await sameIdOtherNs.abort();
  await w1.addBlob('x', 'x');
  await w1.commit();
  const w2 = await ds.group('vm/100').backup();
  t.ok(w2, 'the lock is free after commit');
  await w2.abort();
  t.same(await ds.group('vm/101').snapshots(), [], 'an aborted writer leaves no snapshot');
});

t.test('a snapshot in use cannot be removed; a protected one never', async (t) => {
  const dir = tempDir(t);
  const ds = await Datastore.create(path.join(dir, 'store'), { syncLevel: 'none', threads: 0 });
  t.teardown(() => ds.close());
  const w = await ds.group('host/h').backup({ time: 100 });
  await w.addBlob('a', 'a');
  const snap = await w.commit();
  const r = await snap.open();
  await t.rejects(snap.remove(), { code: 'ERR_LOCKED' });
  await r.close();
  const p = await snap.setProtected(true);
  t.equal(p.isProtected, true);
  await t.rejects(p.remove(), { code: 'ERR_PROTECTED' });
  await (await p.setProtected(false)).remove();
  t.same(await ds.group('host/h').snapshots(), []);
  await t.rejects(snap.open(), { code: 'ERR_NOT_FOUND' });
});

t.test('the base snapshot is locked for the whole backup', async (t) => {
  const dir = tempDir(t);
  const ds = await Datastore.create(path.join(dir, 'store'), { syncLevel: 'none', threads: 0 });
  t.teardown(() => ds.close());
  const w = await ds.group('vm/1').backup({ time: 100 });
  await w.addBlob('a', 'a');
  const base = await w.commit();
  const w2 = await ds.group('vm/1').backup({ time: 200 });
  await t.rejects(base.remove(), { code: 'ERR_LOCKED' }, 'prune of the base is refused during a backup');
  await w2.addBlob('a', 'b');
  await w2.commit();
  await base.remove();
  t.equal((await ds.group('vm/1').snapshots()).length, 1);
});

t.test('times strictly increase within a group', async (t) => {
  const dir = tempDir(t);
  const ds = await Datastore.create(path.join(dir, 'store'), { syncLevel: 'none', threads: 0 });
  t.teardown(() => ds.close());
  const w = await ds.group('vm/1').backup({ time: '2026-11-26T09:35:01Z' });
  await w.addBlob('a', 'a');
  await w.commit();
  await t.rejects(ds.group('vm/1').backup({ time: '2026-11-26T09:35:01Z' }), { code: 'ERR_TIME_ORDER' });
  await t.rejects(ds.group('vm/1').backup({ time: '2026-11-26T09:35:00Z' }), { code: 'ERR_TIME_ORDER' });
  await t.rejects(ds.group('vm/1').backup({ time: '2026-11-26 09:35:02' }), { code: 'ERR_INVALID_ARGUMENT' });
  const a = await ds.group('vm/2').backup();
  await a.addBlob('a', 'a');
  await a.commit();
  const b = await ds.group('vm/2').backup();
  await b.addBlob('a', 'b');
  const s = await b.commit();
  const all = await ds.group('vm/2').snapshots();
  t.equal(all.length, 2, 'two quick backups get two distinct times');
  t.ok(all[0]!.epoch < s.epoch);
});

t.test('a backup killed with SIGKILL leaves no visible snapshot; the next one succeeds', async (t) => {
  const dir = tempDir(t);
  const store = path.join(dir, 'store');
  const ds0 = await Datastore.create(store, { imageChunkSize: CS, syncLevel: 'none', threads: 1 });
  const data = seededBytes(40 * CS, 11);
  const src = await writeTemp(dir, 'disk.raw', data);
  const w0 = await ds0.group('vm/100').backup({ time: 1000 });
  await w0.addImage('disk', src);
  await w0.commit();
  await ds0.close();

  // The child backs up an endless stream, says when chunks are landing, and is killed.
  const script = `
    import { Datastore } from ${JSON.stringify(path.join(root, 'dist/index.js'))};
    const ds = await Datastore.open(${JSON.stringify(store)}, { threads: 1 });
    const w = await ds.group('vm/100').backup({ time: 2000 });
    let n = 0;
    async function* endless() { for (;;) { const b = new Uint8Array(${CS}); b.fill(n & 255, 0, 100); b[200] = n >> 8; n++; yield b; } }
    await w.addImage('disk', endless(), { onProgress: (p) => { if (p.bytesDone >= ${20 * CS}) process.stdout.write('busy\\n'); } });
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', () => resolve());
    child.on('exit', (code) => reject(new Error(`child exited early (${code}): ${stderr}`)));
  });
  child.kill('SIGKILL');
  await new Promise((r) => child.on('exit', r));

  const ds = await Datastore.open(store, { threads: 1 });
  t.teardown(() => ds.close());
  const snaps = await ds.group('vm/100').snapshots();
  t.same(
    snaps.map((s) => s.epoch),
    [1000],
    'only the committed snapshot is visible',
  );
  const groupDir = path.join(store, 'vm/100');
  t.ok((await readdir(groupDir)).includes('1970-01-01T00:33:20Z'), 'the unfinished directory is there');
  const w = await ds.group('vm/100').backup({ time: 3000 });
  t.notOk((await readdir(groupDir)).includes('1970-01-01T00:33:20Z'), 'the next backup removed it');
  await w.addImage('disk', src);
  const snap = await w.commit();
  const r = await snap.open();
  await r.restore('disk.img', path.join(dir, 'out'));
  await r.close();
  t.equal(Buffer.compare(await readFile(path.join(dir, 'out')), Buffer.from(data)), 0, 'the next backup restores byte-identical');
});

t.test('protect, notes and remove of one snapshot are serialised by the manifest lock', async (t) => {
  const dir = tempDir(t);
  const ds = await Datastore.create(path.join(dir, 'store'), { syncLevel: 'none', threads: 0 });
  t.teardown(() => ds.close());
  const outcomes = new Set<string>();
  for (let i = 0; i < 6; i++) {
    const w = await ds.group('vm/7').backup();
    await w.addBlob('a', 'a');
    const snap = await w.commit();
    // All three wait on the manifest lock, then run in whatever order the kernel wakes them.
    const held = await acquireLock(path.join(ds.root, manifestLockKey([], snap.ref.group, snap.time)), 'exclusive');
    const pending = [snap.remove(), snap.setProtected(true), snap.setNotes('x')] as const;
    await new Promise((r) => setTimeout(r, 30));
    await held.release();
    const [removed, protectedFlag, notes] = await Promise.allSettled(pending);
    const left = await readdir(ds.backend.locate(`vm/7/${snap.time}`)).catch(() => undefined);
    if (removed.status === 'fulfilled') {
      outcomes.add('removed');
      t.equal(left, undefined, 'removed: no directory (with a stray .protected or manifest) is left behind');
      t.match(protectedFlag, { status: 'rejected', reason: { code: 'ERR_NOT_FOUND' } }, 'protect after the removal: not found');
      if (notes.status === 'rejected') t.match(notes.reason, { code: 'ERR_NOT_FOUND' });
    } else {
      outcomes.add('protected');
      t.match(removed.reason, { code: 'ERR_PROTECTED' }, 'not removed: because it was protected first');
      t.equal(protectedFlag.status, 'fulfilled');
      const now = await snap.reload();
      t.equal(now.isProtected, true);
      await (await now.setProtected(false)).remove();
    }
  }
  t.ok(outcomes.size > 0);
});

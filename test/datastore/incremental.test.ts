import t from 'tap';
import type { Test } from 'tap';
import { readFile, writeFile, unlink } from 'node:fs/promises';
import path from 'node:path';
import { Datastore, isCairnError } from '../../lib/index.js';
import { chunkKey } from '../../lib/store/chunk-store.js';
import { toHex } from '../../lib/util/bytes.js';
import { seededBytes, tempDir, writeTemp } from '../helpers/fixtures.js';

const CS = 64 * 1024;

async function setup(t: Test, chunks = 64) {
  const dir = tempDir(t);
  const ds = await Datastore.create(path.join(dir, 'store'), { imageChunkSize: CS, syncLevel: 'none', threads: 2 });
  t.teardown(() => ds.close());
  const data = seededBytes(chunks * CS + 100, 42);
  const src = await writeTemp(dir, 'disk.raw', data);
  return { dir, ds, data, src };
}

t.test('an unchanged second backup reuses every chunk of the base without writing', async (t) => {
  const { ds, src } = await setup(t);
  const w1 = await ds.group('vm/100').backup({ time: 1000 });
  const s1 = await w1.addImage('disk', src);
  await w1.commit();
  t.equal(s1.chunksWritten, 65);
  const w2 = await ds.group('vm/100').backup({ time: 2000 });
  t.equal(w2.base?.time, '1970-01-01T00:16:40Z', 'base is the previous snapshot');
  const s2 = await w2.addImage('disk', src);
  await w2.commit();
  t.equal(s2.chunksWritten, 0);
  t.equal(s2.chunksKnown, 65);
  t.equal(s2.bytesStored, 0);
});

t.test('a changed-block map reads only the changed chunks and restores byte-identical', async (t) => {
  const { dir, ds, data, src } = await setup(t);
  const w1 = await ds.group('vm/100').backup({ time: 1000 });
  await w1.addImage('disk', src);
  await w1.commit();
  // Rewrite two 4 KiB blocks in chunk 3 and one spanning chunks 10/11.
  const changed = new Uint8Array(data);
  changed.set(seededBytes(4096, 1), 3 * CS + 8192);
  changed.set(seededBytes(4096, 2), 3 * CS + 20000);
  changed.set(seededBytes(8192, 3), 11 * CS - 4096);
  await writeFile(src, changed);
  const w2 = await ds.group('vm/100').backup({ time: 2000 });
  const stats = await w2.addImage('disk', src, {
    changed: {
      ranges: [
        [3 * CS + 8192, 4096],
        [3 * CS + 20000, 4096],
        [11 * CS - 4096, 8192],
      ],
    },
  });
  const snap = await w2.commit();
  t.equal(stats.reads, 3, 'three chunks read from the source (counted read calls)');
  t.equal(stats.bytesRead, 3 * CS);
  t.equal(stats.chunksReused, 62);
  t.equal(stats.chunksWritten, 3);
  const r = await snap.open();
  t.teardown(() => r.close());
  const out = path.join(dir, 'out');
  await r.restore('disk.img', out);
  t.equal(Buffer.compare(await readFile(out), Buffer.from(changed)), 0, 'restored image equals the changed source');

  // The same with a dirty bitmap at 64 KiB granularity.
  const again = new Uint8Array(changed);
  again.set(seededBytes(100, 4), 20 * CS + 5);
  await writeFile(src, again);
  const bitmap = new Uint8Array(Math.ceil(65 / 8));
  bitmap[20 >> 3]! |= 1 << (20 & 7);
  const w3 = await ds.group('vm/100').backup({ time: 3000 });
  const s3 = await w3.addImage('disk', src, { changed: { bitmap, granularity: CS } });
  const snap3 = await w3.commit();
  t.equal(s3.reads, 1);
  const r3 = await snap3.open();
  t.teardown(() => r3.close());
  await r3.restore('disk.img', out, { overwrite: true });
  t.equal(Buffer.compare(await readFile(out), Buffer.from(again)), 0, 'bitmap incremental restores byte-identical');
});

t.test('a changed-block map is refused without a matching previous image', async (t) => {
  const { dir, ds, src } = await setup(t, 8);
  const map = { ranges: [[0, 10]] as [number, number][] };
  const w0 = await ds.group('vm/7').backup({ time: 1000 });
  await t.rejects(w0.addImage('disk', src, { changed: map }), { code: 'ERR_CHANGED_MAP', message: /no previous backup/ });
  await w0.addImage('disk', src);
  await w0.commit();
  const w1 = await ds.group('vm/7').backup({ time: 2000 });
  const bigger = await writeTemp(dir, 'bigger', seededBytes(9 * CS, 5));
  await t.rejects(w1.addImage('disk', bigger, { changed: map }), { code: 'ERR_CHANGED_MAP', message: /size/ });
  await t.rejects(w1.addImage('disk', src, { changed: map, chunkSize: 2 * CS }), { code: 'ERR_CHANGED_MAP', message: /chunk size/ });
  await t.rejects(w1.addImage('disk', src, { changed: { ranges: [[8 * CS, 1000]] } }), { code: 'ERR_CHANGED_MAP', message: /outside/ });
  await t.rejects(w1.addImage('disk', src, { changed: { bitmap: new Uint8Array(1), granularity: 3000 } }), { code: 'ERR_CHANGED_MAP' });
  await w1.abort();
});

t.test('a base whose verify state is failed is not used, so lost chunks are written again', async (t) => {
  const { dir, ds, src } = await setup(t, 8);
  const w1 = await ds.group('vm/9').backup({ time: 1000 });
  await w1.addImage('disk', src);
  let s1 = await w1.commit();
  // Lose one chunk, and mark the snapshot failed as verify would.
  const r = await s1.open();
  const idx = await r.imageIndex('disk.img');
  const lost = toHex(idx.digestAt(2));
  await r.close();
  await unlink(path.join(ds.root, chunkKey(lost)));
  s1 = await s1.updateManifest((m) => ({ ...m, unprotected: { ...m.unprotected, verify: { state: 'failed', time: '2026-01-01T00:00:00Z', run: 'test' } } }));
  t.equal(s1.verifyState, 'failed');
  const w2 = await ds.group('vm/9').backup({ time: 2000 });
  t.equal(w2.base, undefined, 'no base');
  const s2 = await w2.addImage('disk', src);
  const snap2 = await w2.commit();
  t.equal(s2.chunksKnown, 0);
  t.equal(s2.chunksWritten, 1, 'the lost chunk is written again');
  t.equal(s2.chunksDuplicate, 8, 'the others are touched');
  const r2 = await snap2.open();
  await r2.restore('disk.img', path.join(dir, 'out'));
  await r2.close();
  t.equal(Buffer.compare(await readFile(path.join(dir, 'out')), await readFile(src)), 0);
  // And the old, failed snapshot now restores too: the chunk is back.
  const r1 = await (await ds.snapshot('vm/9/1970-01-01T00:16:40Z')).open();
  await r1.restore('disk.img', path.join(dir, 'out1'));
  await r1.close();
  t.pass('the failed snapshot restores again');
});

t.test('blobs round trip and are checked', async (t) => {
  const { ds } = await setup(t, 1);
  const w = await ds.group('ct/5').backup();
  const conf = 'memory: 2048\ncores: 2\n'.repeat(50);
  await w.addBlob('ct.conf', conf);
  await w.addBlob('empty', new Uint8Array(0));
  await t.rejects(w.addBlob('ct.conf', 'x'), { code: 'ERR_EXISTS' });
  const snap = await w.commit();
  t.same(
    snap.files.map((f) => f.name),
    ['ct.conf.blob', 'empty.blob'],
  );
  const r = await snap.open();
  t.equal(Buffer.from(await r.readBlob('ct.conf.blob')).toString(), conf);
  t.equal((await r.readBlob('empty.blob')).byteLength, 0);
  await t.rejects(r.readBlob('nope.blob'), { code: 'ERR_NOT_FOUND' });
  await t.rejects(r.readAt('ct.conf.blob', 0, 1), { code: 'ERR_INVALID_ARGUMENT' });
  await r.close();
  await t.rejects(r.readBlob('ct.conf.blob'), { code: 'ERR_NOT_OPEN' });
  t.ok(isCairnError(await w.addBlob('late', 'x').catch((e: unknown) => e), 'ERR_WRITER_STATE'), 'no archives after commit');
});

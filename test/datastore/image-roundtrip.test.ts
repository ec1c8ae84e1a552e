import t from 'tap';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { Datastore } from '../../lib/index.js';
import { seededBytes, tempDir, writeTemp } from '../helpers/fixtures.js';

const CS = 64 * 1024;

t.test('image round trips at awkward sizes', async (t) => {
  const dir = tempDir(t);
  const ds = await Datastore.create(path.join(dir, 'store'), { imageChunkSize: CS, syncLevel: 'none', threads: 2 });
  t.teardown(() => ds.close());
  let time = 1_700_000_000;
  for (const size of [0, 1, CS - 1, CS, CS + 1, 7 * CS + 123]) {
    const data = seededBytes(size, size + 7);
    const src = await writeTemp(dir, `src-${size}`, data);
    const w = await ds.group('vm/100').backup({ time: time++ });
    const stats = await w.addImage('disk', src);
    t.equal(stats.bytes, size, `size ${size}: bytes`);
    const snap = await w.commit();
    t.equal(snap.archive('disk.img').size, size);
    const r = await snap.open();
    const out = path.join(dir, `out-${size}`);
    await r.restore('disk.img', out);
    t.same(Buffer.compare(await readFile(out), Buffer.from(data)), 0, `size ${size}: restored bytes`);
    if (size > 10) {
      const part = await r.readAt('disk.img', 5, size - 10);
      t.equal(Buffer.compare(part, Buffer.from(data.subarray(5, size - 5))), 0, `size ${size}: readAt`);
    }
    await r.close();
  }
});

t.test('zero regions are stored once and restore sparse', async (t) => {
  const dir = tempDir(t);
  const ds = await Datastore.create(path.join(dir, 'store'), { imageChunkSize: CS, syncLevel: 'none', threads: 1 });
  t.teardown(() => ds.close());
  const data = new Uint8Array(64 * CS);
  data.set(seededBytes(CS, 3), 10 * CS);
  const src = await writeTemp(dir, 'src', data);
  const w = await ds.group('vm/1').backup();
  const stats = await w.addImage('disk', src);
  t.equal(stats.chunksZero, 63);
  t.equal(stats.chunksWritten, 2, 'one data chunk and one zero chunk are written');
  const snap = await w.commit();
  const r = await snap.open();
  const out = path.join(dir, 'out');
  const rs = await r.restore('disk.img', out);
  t.equal(rs.zeroChunks, 63);
  const st = await stat(out);
  t.equal(st.size, data.byteLength);
  t.ok(st.blocks * 512 < 4 * CS, `restored file is sparse (${st.blocks * 512} bytes allocated)`);
  t.equal(Buffer.compare(await readFile(out), Buffer.from(data)), 0);
  await r.close();
});

t.test('unknown-length streams', async (t) => {
  const dir = tempDir(t);
  const ds = await Datastore.create(path.join(dir, 'store'), { imageChunkSize: CS, syncLevel: 'none', threads: 2 });
  t.teardown(() => ds.close());
  const data = seededBytes(200 * CS + 5, 9);
  async function* pieces(): AsyncGenerator<Uint8Array> {
    let off = 0;
    let n = 1;
    while (off < data.byteLength) {
      const len = Math.min(data.byteLength - off, ((n * 7919) % (3 * CS)) + 1);
      yield data.subarray(off, off + len);
      off += len;
      n++;
    }
  }
  const w = await ds.group('host/a').backup();
  const stats = await w.addImage('stream', pieces());
  t.equal(stats.bytes, data.byteLength);
  const snap = await w.commit();
  const r = await snap.open();
  const chunks: Uint8Array[] = [];
  for await (const c of r.stream('stream.img')) chunks.push(Buffer.from(c));
  t.equal(Buffer.compare(Buffer.concat(chunks), Buffer.from(data)), 0);
  await r.close();
});

/**
 * The backup counters add up: every chunk of an archive is counted in exactly one of
 * chunksWritten, chunksDuplicate, chunksKnown and chunksReused (ArchiveStats), over full,
 * incremental (base), changed-map and sparse backups, for trees' streams too; chunksZero counts
 * zero chunks within those. The manifest's stats totals: `bytes` is logical (images, tree files,
 * blobs), `bytesStored` what was newly stored. And the CLI's image line adds up.
 */
import t from 'tap';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { Datastore, type ArchiveStats } from '../../lib/index.js';
import type { ChunkStreamStats } from '../../lib/datastore/chunk-stream.js';
import { cairn, requireBuilt } from '../cli/run-cli.js';
import { seededBytes, tempDir, writeTemp } from '../helpers/fixtures.js';

const CS = 64 * 1024;

/** The four parts of `chunks`. */
const parts = (s: Pick<ArchiveStats, 'chunksWritten' | 'chunksDuplicate' | 'chunksKnown' | 'chunksReused'>): number =>
  s.chunksWritten + s.chunksDuplicate + s.chunksKnown + s.chunksReused;

function counters(s: ArchiveStats): Record<string, number> {
  return { chunks: s.chunks, written: s.chunksWritten, duplicate: s.chunksDuplicate, known: s.chunksKnown, reused: s.chunksReused, zero: s.chunksZero };
}

/** 16 chunks: 10 distinct, 3 zero, 2 copies of the first, a short random tail. */
function imageA(): Uint8Array {
  const img = new Uint8Array(15 * CS + CS / 2 + 5);
  img.set(seededBytes(10 * CS, 1), 0);
  img.set(img.subarray(0, CS), 13 * CS);
  img.set(img.subarray(0, CS), 14 * CS);
  img.set(seededBytes(CS / 2 + 5, 2), 15 * CS);
  return img;
}

/** Bytes of every chunk file of the datastore at `root`. */
async function sizeOfChunks(root: string): Promise<number> {
  let total = 0;
  for (const shard of await fsp.readdir(path.join(root, '.chunks'))) {
    for (const f of await fsp.readdir(path.join(root, '.chunks', shard))) total += (await fsp.stat(path.join(root, '.chunks', shard, f))).size;
  }
  return total;
}

t.test('image counters partition chunks: full, duplicate, incremental, changed map, sparse', async (t) => {
  const dir = tempDir(t, 'cairn-stats-');
  const ds = await Datastore.create(path.join(dir, 'store'), { imageChunkSize: CS, syncLevel: 'none', threads: 1 });
  t.teardown(() => ds.close());
  const a = imageA();
  const fileA = await writeTemp(dir, 'a.raw', a);

  const w1 = await ds.group('vm/1').backup({ time: 1000 });
  const full = await w1.addImage('disk', fileA);
  await w1.commit();
  t.same(counters(full), { chunks: 16, written: 12, duplicate: 4, known: 0, reused: 0, zero: 3 }, 'full: 10 distinct + 1 zero + the tail new; 2 zeros and 2 copies already stored');
  t.equal(parts(full), full.chunks, 'full: the four parts add up');
  t.equal(full.bytesStored, await sizeOfChunks(ds.root), 'full, fresh datastore: bytesStored is what the chunk files hold');

  const w2 = await ds.group('vm/2').backup({ time: 1000 });
  const other = await w2.addImage('disk', fileA);
  await w2.commit();
  t.same(counters(other), { chunks: 16, written: 0, duplicate: 16, known: 0, reused: 0, zero: 3 }, 'the same image in another group: all already stored');
  t.equal(other.bytesStored, 0);

  const b = Uint8Array.from(a);
  b.set(seededBytes(CS, 3), 3 * CS);
  b.set(seededBytes(CS, 4), 5 * CS);
  const fileB = await writeTemp(dir, 'b.raw', b);
  const w3 = await ds.group('vm/1').backup({ time: 2000 });
  t.ok(w3.base !== undefined, 'an incremental backup');
  const inc = await w3.addImage('disk', fileB);
  await w3.commit();
  t.same(
    counters(inc),
    { chunks: 16, written: 2, duplicate: 0, known: 14, reused: 0, zero: 3 },
    'incremental: 2 changed chunks new, the rest known from the base (zeros among them)',
  );
  t.equal(parts(inc), inc.chunks, 'incremental: the parts add up; zero chunks are inside known');

  const c = Uint8Array.from(b);
  c.set(seededBytes(CS, 5), 3 * CS);
  const fileC = await writeTemp(dir, 'c.raw', c);
  const w4 = await ds.group('vm/1').backup({ time: 3000 });
  const map = await w4.addImage('disk', fileC, { changed: { ranges: [[3 * CS + 10, 100]] } });
  const snap4 = await w4.commit();
  t.same(
    counters(map),
    { chunks: 16, written: 1, duplicate: 0, known: 0, reused: 15, zero: 0 },
    'changed map: one chunk read and new, 15 reused unread (their zeros not counted as zero)',
  );
  t.equal(parts(map), map.chunks, 'changed map: the parts add up');
  await using r4 = await snap4.open();
  t.same(Buffer.from(await r4.readAt('disk', 0, c.byteLength)), Buffer.from(c), 'and the image reads back');

  const sparse = await writeTemp(dir, 'zero.raw', new Uint8Array(8 * CS));
  const w5 = await ds.group('vm/3').backup({ time: 1000 });
  const z = await w5.addImage('disk', sparse);
  await w5.commit();
  t.same(counters(z), { chunks: 8, written: 0, duplicate: 8, known: 0, reused: 0, zero: 8 }, 'sparse: every chunk zero, the zero chunk already stored');
  t.equal(parts(z), z.chunks);

  const fresh = await Datastore.create(path.join(dir, 'fresh'), { imageChunkSize: CS, syncLevel: 'none', threads: 0 });
  t.teardown(() => fresh.close());
  const w6 = await fresh.group('vm/9').backup();
  const z2 = await w6.addImage('disk', sparse);
  await w6.commit();
  t.same(counters(z2), { chunks: 8, written: 1, duplicate: 7, known: 0, reused: 0, zero: 8 }, 'sparse in a fresh datastore: the zero chunk is written once');
});

t.test('tree streams partition their chunks; the manifest totals count every archive', async (t) => {
  const dir = tempDir(t, 'cairn-stats-');
  const ds = await Datastore.create(path.join(dir, 'store'), { imageChunkSize: CS, syncLevel: 'none', threads: 1, cdc: { min: 16 * 1024, avg: 64 * 1024, max: 256 * 1024 } });
  t.teardown(() => ds.close());
  const src = path.join(dir, 'src');
  await fsp.mkdir(path.join(src, 'sub'), { recursive: true });
  await fsp.writeFile(path.join(src, 'big.bin'), seededBytes(600 * 1024, 7));
  await fsp.writeFile(path.join(src, 'sub', 'other.bin'), seededBytes(300 * 1024, 8));
  await fsp.writeFile(path.join(src, 'small.txt'), 'small\n');
  const image = imageA();
  const img = await writeTemp(dir, 'a.raw', image);
  const conf = 'memory: 2048\n'.repeat(50);

  const w1 = await ds.group('ct/1').backup({ time: 1000 });
  const is = await w1.addImage('disk', img);
  const ts = await w1.addTree('root', src);
  await w1.addBlob('conf', conf);
  const s1 = await w1.commit();
  for (const [what, s] of [
    ['meta', ts.meta],
    ['payload', ts.payload],
  ] as [string, ChunkStreamStats][])
    t.equal(parts(s), s.chunks, `first tree backup, ${what} stream: the parts add up`);
  const blobFile = (await fsp.stat(path.join(ds.root, 'ct', '1', s1.time, 'conf.blob'))).size;
  const totals = s1.manifest.unprotected.stats!;
  t.equal(totals['bytes'], image.byteLength + ts.bytes + Buffer.byteLength(conf), 'bytes: image size + tree file bytes + blob size');
  t.equal(ts.bytes, 600 * 1024 + 300 * 1024 + 6, 'the tree file bytes');
  t.equal(
    totals['bytesStored'],
    is.bytesStored + ts.meta.bytesStored + ts.payload.bytesStored + blobFile,
    'bytesStored: new chunks of image and both tree streams, plus the blob as stored',
  );
  t.equal(totals['bytesStored']! - blobFile, await sizeOfChunks(ds.root), 'fresh datastore: the chunk part is what the chunk files hold');
  t.equal(totals['chunks'], is.chunks + ts.meta.chunks + ts.payload.chunks);
  t.equal(totals['chunks'], totals['chunksWritten']! + totals['chunksDuplicate']! + totals['chunksKnown']! + totals['chunksReused']!, 'totals: the parts add up');
  t.equal(totals['tree.bytes'], ts.bytes, 'the tree counters as tree.*');

  await fsp.writeFile(path.join(src, 'small.txt'), 'changed, and longer\n');
  await fsp.utimes(path.join(src, 'small.txt'), 2_000_000, 2_000_000);
  const w2 = await ds.group('ct/1').backup({ time: 2000 });
  const ts2 = await w2.addTree('root', src);
  const s2 = await w2.commit();
  t.ok(ts2.filesReused >= 2, 'the unchanged files are reused');
  t.ok(ts2.payload.chunksReused > 0, 'their chunks are appended by digest');
  for (const [what, s] of [
    ['meta', ts2.meta],
    ['payload', ts2.payload],
  ] as [string, ChunkStreamStats][])
    t.equal(parts(s), s.chunks, `incremental tree backup, ${what} stream: the parts add up`);
  const t2 = s2.manifest.unprotected.stats!;
  t.equal(t2['bytes'], ts2.bytes, 'a tree-only snapshot has its file bytes as bytes');
  t.equal(t2['bytesStored'], ts2.meta.bytesStored + ts2.payload.bytesStored);
  t.equal(t2['chunks'], t2['chunksWritten']! + t2['chunksDuplicate']! + t2['chunksKnown']! + t2['chunksReused']!);
});

t.test("the CLI's image line adds up", async (t) => {
  if (!requireBuilt(t)) return;
  const dir = tempDir(t, 'cairn-stats-cli-');
  const store = path.join(dir, 'store');
  const ds = await Datastore.create(store, { imageChunkSize: CS, syncLevel: 'none', threads: 0 });
  await ds.close();
  const a = imageA();
  const file = await writeTemp(dir, 'a.raw', a);
  const line = /disk\.img: .*; (\d+) chunks, (\d+) new \([^)]*\), (\d+) already stored, (\d+) from the previous snapshot(?: \((\d+) of them all-zero\))?/;
  const b1 = await cairn(['--store', store, 'backup', 'vm/1', `disk.img:${file}`, '--time', '2026-01-01T00:00:00Z']);
  t.equal(b1.code, 0, b1.err);
  const m1 = line.exec(b1.out);
  t.ok(m1, `the image line: ${b1.out}`);
  const [n, w, d, p, z] = m1!.slice(1).map((x) => Number(x ?? 0));
  t.same([n, w, d, p, z], [16, 12, 4, 0, 3], '16 chunks: 12 new, 4 already stored, 3 of them zero');
  t.equal(w! + d! + p!, n, 'the parts add up');

  a.set(seededBytes(CS, 9), 2 * CS);
  await fsp.writeFile(file, a);
  const b2 = await cairn(['--store', store, 'backup', 'vm/1', `disk.img:${file}`, '--time', '2026-01-02T00:00:00Z']);
  t.equal(b2.code, 0, b2.err);
  const m2 = line.exec(b2.out);
  t.ok(m2, `the image line: ${b2.out}`);
  const [n2, w2, d2, p2] = m2!.slice(1).map((x) => Number(x ?? 0));
  t.same([n2, w2, d2, p2], [16, 1, 0, 15], 'incremental: 1 new, 15 from the previous snapshot');
});

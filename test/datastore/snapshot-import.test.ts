import t, { type Test } from 'tap';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { Datastore, GarbageCollector, SnapshotImportSource, SnapshotImporter, Verifier, type ImportSource, type Snapshot } from '../../lib/index.js';
import { MemoryBackend } from '../../lib/backend/memory.js';
import { CHUNK_DIR } from '../../lib/store/chunk-store.js';
import { toHex } from '../../lib/util/bytes.js';
import { seededBytes, tempDir, writeTemp } from '../helpers/fixtures.js';
import { CS, FAR } from '../helpers/clocked-store.js';

interface Env {
  dir: string;
  src: Datastore;
  dst: Datastore;
  clock: { t: number };
}

/** A source datastore and a target datastore (whose clock the test moves), both local unless `backend` is given. */
async function setup(t: Test, options: { memoryTarget?: boolean } = {}): Promise<Env> {
  const dir = tempDir(t);
  const clock = { t: Date.now() };
  const src = await Datastore.create(path.join(dir, 'src'), { imageChunkSize: CS, syncLevel: 'none', threads: 1 });
  t.teardown(() => src.close());
  const dst = await Datastore.create(path.join(dir, 'dst'), {
    imageChunkSize: CS,
    syncLevel: 'none',
    threads: 1,
    clock: { now: () => clock.t },
    ...(options.memoryTarget === true ? { backend: new MemoryBackend() } : {}),
  });
  t.teardown(() => dst.close());
  return { dir, src, dst, clock };
}

async function makeTree(dir: string, name: string, seed: number): Promise<string> {
  const root = path.join(dir, name);
  await fsp.mkdir(path.join(root, 'sub'), { recursive: true });
  await fsp.writeFile(path.join(root, 'a.bin'), seededBytes(300_000, seed));
  await fsp.writeFile(path.join(root, 'sub', 'b.txt'), `hello tree ${seed}\n`);
  return root;
}

interface Content {
  image: Uint8Array;
  tree?: string;
  blob?: string;
}

async function backup(ds: Datastore, dir: string, group: string, time: number, c: Content): Promise<Snapshot> {
  const src = await writeTemp(dir, `img-${group.replace('/', '_')}-${time}-${Math.random().toString(36).slice(2)}.raw`, c.image);
  const w = await ds.group(group).backup({ time });
  await w.addImage('disk', src);
  if (c.tree !== undefined) await w.addTree('root', c.tree);
  if (c.blob !== undefined) await w.addBlob('vm.conf', c.blob);
  return w.commit();
}

/** Restores every archive of `snap` and compares it with what was backed up. */
async function checkRestore(t: Test, dir: string, snap: Snapshot, c: Content): Promise<void> {
  const r = await snap.open();
  try {
    const out = path.join(dir, `out-${Math.random().toString(36).slice(2)}`);
    await r.restore('disk.img', out);
    t.equal(Buffer.compare(await fsp.readFile(out), Buffer.from(c.image)), 0, `${snap.name}: image byte-identical`);
    if (c.tree !== undefined) {
      const tout = `${out}-tree`;
      await r.restoreTree('root.tree', tout);
      t.equal(Buffer.compare(await fsp.readFile(path.join(tout, 'a.bin')), await fsp.readFile(path.join(c.tree, 'a.bin'))), 0, `${snap.name}: tree file byte-identical`);
      t.equal(await fsp.readFile(path.join(tout, 'sub', 'b.txt'), 'utf8'), await fsp.readFile(path.join(c.tree, 'sub', 'b.txt'), 'utf8'));
    }
    if (c.blob !== undefined) t.equal(Buffer.from(await r.readBlob('vm.conf.blob')).toString('utf8'), c.blob, `${snap.name}: blob equal`);
  } finally {
    await r.close();
  }
}

/** The distinct hex digests every index of a snapshot references. */
async function digestsOf(snap: Snapshot): Promise<Set<string>> {
  const r = await snap.open();
  try {
    const out = new Set<string>();
    for (const f of r.files) {
      const idxs = f.kind === 'image' ? [await r.imageIndex(f.name)] : f.kind === 'tree' ? Object.values(await r.treeIndexes(f.name)) : [];
      for (const idx of idxs) for (let i = 0; i < idx.count; i++) out.add(toHex(idx.digestAt(i)));
    }
    return out;
  } finally {
    await r.close();
  }
}

/** Chunk file names (hex) of a local datastore. */
async function chunkFiles(ds: Datastore): Promise<string[]> {
  const out: string[] = [];
  for (const shard of await fsp.readdir(path.join(ds.root, CHUNK_DIR))) out.push(...(await fsp.readdir(path.join(ds.root, CHUNK_DIR, shard))));
  return out.sort();
}

async function importFrom(target: Datastore, snap: Snapshot, options: Parameters<SnapshotImporter['import']>[1] = {}): ReturnType<SnapshotImporter['import']> {
  const from = await SnapshotImportSource.open(snap);
  try {
    return await new SnapshotImporter(target).import(from, options);
  } finally {
    await from.close();
  }
}

t.test('a snapshot with image, tree and blob archives imports into another datastore and restores equal', async (t) => {
  const env = await setup(t);
  const c: Content = { image: seededBytes(8 * CS + 123, 1), tree: await makeTree(env.dir, 'tree1', 3), blob: 'memory: 4096\ncores: 2\n' };
  const s1 = await backup(env.src, env.dir, 'vm/100', 1000, c);
  const digests = await digestsOf(s1);
  const progress: number[] = [];
  const report = await importFrom(env.dst, s1, { onProgress: (p) => progress.push(p.chunksDone) });
  t.equal(report.result, 'imported');
  t.equal(report.snapshot, s1.name);
  t.equal(report.chunks, digests.size, 'every distinct chunk of image and both tree streams');
  t.equal(report.chunksCopied, digests.size, 'all copied into an empty datastore');
  t.equal(report.chunksPresent, 0);
  t.equal(report.files, 5, 'fixed index, two dynamic indexes, blob, manifest');
  t.ok(report.bytesCopied > 0);
  t.same(
    progress,
    Array.from({ length: digests.size }, (_, i) => i + 1),
    'progress after each chunk',
  );
  t.same((await chunkFiles(env.dst)).sort(), [...digests].sort(), 'exactly the referenced chunks are in the target');

  const imported = await env.dst.snapshot(s1.name);
  t.same(imported.files, s1.files, 'same archives');
  t.same(imported.manifest.unprotected.stats, s1.manifest.unprotected.stats, 'manifest as received');
  await checkRestore(t, env.dir, imported, c);
  const verify = await new Verifier(env.dst).verify();
  t.same(verify.ok, [s1.name], 'the imported snapshot verifies');

  const again = await importFrom(env.dst, s1);
  t.equal(again.result, 'exists', 'the same snapshot again: nothing to do');
  t.equal(again.chunksCopied, 0);
  t.equal((await env.dst.group('vm/100').snapshots()).length, 1);
});

t.test('a second snapshot copies only its new chunks', async (t) => {
  const env = await setup(t);
  const tree = await makeTree(env.dir, 'tree', 5);
  const a = seededBytes(10 * CS, 2);
  const b = new Uint8Array(a);
  b.set(seededBytes(CS, 77), 2 * CS);
  b.set(seededBytes(100, 78), 7 * CS + 5);
  const s1 = await backup(env.src, env.dir, 'vm/100', 1000, { image: a, tree, blob: 'one' });
  const s2 = await backup(env.src, env.dir, 'vm/100', 2000, { image: b, tree, blob: 'two' });
  const first = await importFrom(env.dst, s1);
  t.equal(first.chunksCopied, (await digestsOf(s1)).size);
  const d1 = await digestsOf(s1);
  const d2 = await digestsOf(s2);
  const fresh = [...d2].filter((d) => !d1.has(d));
  t.equal(fresh.length, 2, 'two image chunks changed, the tree is the same');
  const second = await importFrom(env.dst, s2);
  t.equal(second.result, 'imported');
  t.equal(second.chunks, d2.size);
  t.equal(second.chunksCopied, fresh.length, 'only the new chunks are copied');
  t.equal(second.chunksPresent, d2.size - fresh.length, 'the others were there (touched)');
  await checkRestore(t, env.dir, await env.dst.snapshot(s1.name), { image: a, tree, blob: 'one' });
  await checkRestore(t, env.dir, await env.dst.snapshot(s2.name), { image: b, tree, blob: 'two' });
});

t.test('an import into a datastore over a MemoryBackend, into a namespace, restores equal', async (t) => {
  const env = await setup(t, { memoryTarget: true });
  const c: Content = { image: seededBytes(6 * CS + 7, 9), tree: await makeTree(env.dir, 'tree', 11), blob: 'conf' };
  const s1 = await backup(env.src, env.dir, 'ct/7', 1000, c);
  await t.rejects(importFrom(env.dst, s1, { namespace: 'offsite' }), { code: 'ERR_NOT_FOUND' }, 'the namespace must exist');
  await env.dst.createNamespace('offsite');
  const report = await importFrom(env.dst, s1, { namespace: 'offsite' });
  t.equal(report.chunksCopied, (await digestsOf(s1)).size);
  t.equal(report.namespace, 'offsite');
  t.same(await env.dst.group('ct/7').snapshots(), [], 'not in the root namespace');
  const imported = await env.dst.snapshot(s1.name, { namespace: 'offsite' });
  await checkRestore(t, env.dir, imported, c);
  t.same(await fsp.readdir(path.join(env.dst.root, CHUNK_DIR)).catch(() => []), [], 'no chunk on the local disk');
});

t.test('an aborted import leaves nothing visible; a re-run copies only the missing chunks', async (t) => {
  const env = await setup(t);
  const c: Content = { image: seededBytes(16 * CS, 21), blob: 'x' };
  const s1 = await backup(env.src, env.dir, 'vm/100', 1000, c);
  const total = (await digestsOf(s1)).size;
  const ac = new AbortController();
  await t.rejects(importFrom(env.dst, s1, { signal: ac.signal, concurrency: 1, onProgress: (p) => p.chunksCopied >= 5 && ac.abort() }), { code: 'ERR_ABORTED' });
  t.notOk(await env.dst.group('vm/100').exists(), 'the group the import made is gone');
  t.same(await env.dst.group('vm/100').snapshots(), []);
  const copied = await chunkFiles(env.dst);
  t.ok(copied.length >= 5 && copied.length < total, `${copied.length} of ${total} chunks copied before the abort`);

  // A killed import leaves an unfinished directory (no manifest); the next import removes it.
  const leftover = path.join(env.dst.root, 'vm', '100', s1.time);
  await fsp.mkdir(leftover, { recursive: true });
  await fsp.writeFile(path.join(leftover, 'disk.img.fidx'), 'half-written');
  await fsp.writeFile(path.join(leftover, 'junk'), 'x');
  t.same(await env.dst.group('vm/100').snapshots(), [], 'invisible');

  const report = await importFrom(env.dst, s1);
  t.equal(report.result, 'imported');
  t.equal(report.chunksPresent, copied.length, 'the chunks copied before are found');
  t.equal(report.chunksCopied, total - copied.length, 'only the missing ones are copied');
  t.notOk(
    await fsp.stat(path.join(leftover, 'junk')).then(
      () => true,
      () => false,
    ),
    'the leftover directory was replaced',
  );
  await checkRestore(t, env.dir, await env.dst.snapshot(s1.name), c);
});

t.test('a corrupt source chunk fails the import, naming digest and snapshot; nothing becomes visible', async (t) => {
  const env = await setup(t);
  const c: Content = { image: seededBytes(6 * CS, 31) };
  const s1 = await backup(env.src, env.dir, 'vm/100', 1000, c);
  const r = await s1.open();
  const idx = await r.imageIndex('disk.img');
  const [d0, d1] = [toHex(idx.digestAt(0)), toHex(idx.digestAt(1))];
  await r.close();
  const file0 = path.join(env.src.root, CHUNK_DIR, d0.slice(0, 2), d0);
  const good = await fsp.readFile(file0);
  // Another chunk's whole envelope under d0's name: its CRC is fine, only its digest is wrong.
  await fsp.copyFile(path.join(env.src.root, CHUNK_DIR, d1.slice(0, 2), d1), file0);
  await t.rejects(importFrom(env.dst, s1), { code: 'ERR_CHUNK_CORRUPT', details: { digest: d0, snapshot: s1.name } });
  t.notOk(await env.dst.group('vm/100').exists(), 'nothing visible');
  t.notOk((await chunkFiles(env.dst)).includes(d0), 'the bad chunk is not stored');

  // Without verifyChunks the CRC is still checked: a flipped payload byte is refused too.
  const flipped = Buffer.from(good);
  flipped[flipped.length - 1]! ^= 0xff;
  await fsp.writeFile(file0, flipped);
  await t.rejects(importFrom(env.dst, s1, { verifyChunks: false }), { code: 'ERR_CHUNK_CORRUPT', details: { digest: d0 } });
  t.same(await env.dst.group('vm/100').snapshots(), []);

  await fsp.writeFile(file0, good);
  const report = await importFrom(env.dst, s1);
  t.equal(report.result, 'imported', 'repaired at the source, the import goes through');
  await checkRestore(t, env.dir, await env.dst.snapshot(s1.name), c);
});

t.test('time order: an older or different snapshot of the same time is refused', async (t) => {
  const env = await setup(t);
  const s1 = await backup(env.src, env.dir, 'vm/100', 1000, { image: seededBytes(2 * CS, 41) });
  await backup(env.dst, env.dir, 'vm/100', 5000, { image: seededBytes(2 * CS, 42) });
  const before = await chunkFiles(env.dst);
  await t.rejects(importFrom(env.dst, s1), { code: 'ERR_TIME_ORDER' }, 'older than the newest of the target group');
  t.same(await chunkFiles(env.dst), before, 'nothing copied');
  t.equal((await env.dst.group('vm/100').snapshots()).length, 1);

  const s2 = await backup(env.src, env.dir, 'vm/200', 1000, { image: seededBytes(2 * CS, 43) });
  await backup(env.dst, env.dir, 'vm/200', 1000, { image: seededBytes(2 * CS, 44) });
  await t.rejects(importFrom(env.dst, s2), { code: 'ERR_TIME_ORDER' }, 'another snapshot of the same time');
});

t.test('a manifest naming another group or time is refused before anything is written', async (t) => {
  const env = await setup(t);
  const s1 = await backup(env.src, env.dir, 'vm/100', 1000, { image: seededBytes(2 * CS, 51) });
  const from = await SnapshotImportSource.open(s1);
  t.teardown(() => from.close());
  const forged = (group: string, time: string): ImportSource => ({
    group,
    time,
    description: 'a forged source',
    manifest: () => from.manifest(),
    file: (name, max) => from.file(name, max),
    chunk: (d) => from.chunk(d),
  });
  const importer = new SnapshotImporter(env.dst);
  await t.rejects(importer.import(forged('vm/200', s1.time)), { code: 'ERR_MANIFEST_CORRUPT', message: /names another snapshot/ });
  t.notOk(await env.dst.group('vm/200').exists(), 'no group made');
  await t.rejects(importer.import(forged('vm/100', '2001-01-01T00:00:00Z')), { code: 'ERR_MANIFEST_CORRUPT' });
  t.notOk(await env.dst.group('vm/100').exists());
  t.same(await chunkFiles(env.dst), [], 'no chunk copied');
});

t.test('a GC on the target while an import runs keeps the imported chunks', async (t) => {
  const env = await setup(t);
  const c: Content = { image: seededBytes(8 * CS, 61), tree: await makeTree(env.dir, 'tree', 62) };
  const s1 = await backup(env.src, env.dir, 'vm/100', 1000, c);
  const total = (await digestsOf(s1)).size;
  let during: Awaited<ReturnType<GarbageCollector['run']>> | undefined;
  const report = await importFrom(env.dst, s1, {
    hooks: {
      // Every chunk is in the store, unreferenced until the manifest is written; the clock has
      // moved far past them. Only the import's writer registration holds the cutoff back.
      afterChunks: async () => {
        env.clock.t += FAR;
        during = await new GarbageCollector(env.dst).run({ skewMs: 60_000 });
      },
    },
  });
  t.equal(report.chunksCopied, total);
  t.equal(during?.removedChunks, 0, 'nothing removed during the import');
  t.equal(during?.pendingChunks, total, 'the imported chunks are kept as pending');
  const after = await new GarbageCollector(env.dst).run({ skewMs: 60_000 });
  t.equal(after.removedChunks, 0);
  t.equal(after.diskChunks, total, 'now marked by the snapshot');
  await checkRestore(t, env.dir, await env.dst.snapshot(s1.name), c);
});

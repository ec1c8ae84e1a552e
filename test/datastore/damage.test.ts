import t from 'tap';
import { readFile, writeFile, unlink, truncate, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { Datastore, Verifier, isCairnError } from '../../lib/index.js';
import { chunkKey } from '../../lib/store/chunk-store.js';
import { toHex } from '../../lib/util/bytes.js';
import { seededBytes, tempDir, writeTemp } from '../helpers/fixtures.js';

const CS = 64 * 1024;

async function fixture(t: import('tap').Test) {
  const dir = tempDir(t);
  const store = path.join(dir, 'store');
  const ds = await Datastore.create(store, { imageChunkSize: CS, syncLevel: 'none', threads: 1 });
  t.teardown(() => ds.close());
  const src = await writeTemp(dir, 'disk.raw', seededBytes(8 * CS, 3));
  const w = await ds.group('vm/100').backup({ time: 1000 });
  await w.addImage('disk', src);
  await w.addBlob('conf', 'cores: 4\n');
  const snap = await w.commit();
  const r = await snap.open();
  const idx = await r.imageIndex('disk.img');
  const digest = toHex(idx.digestAt(5));
  await r.close();
  const snapDir = path.join(store, 'vm/100/1970-01-01T00:16:40Z');
  return { dir, store, ds, snap, digest, snapDir };
}

async function flip(file: string, at: number): Promise<void> {
  const b = await readFile(file);
  b[at]! ^= 0x40;
  await writeFile(file, b);
}

t.test('a flipped byte in a chunk file is detected on restore, naming the chunk', async (t) => {
  const { dir, store, snap, digest } = await fixture(t);
  await flip(path.join(store, chunkKey(digest)), 100);
  const r = await snap.open();
  t.teardown(() => r.close());
  const err = await r.restore('disk.img', path.join(dir, 'out')).catch((e: unknown) => e);
  t.ok(isCairnError(err, 'ERR_CHUNK_CORRUPT'), 'ERR_CHUNK_CORRUPT');
  t.match((err as Error).message, digest, 'the message names the digest');
  t.equal((err as { details: { digest: string } }).details.digest, digest);
  await t.rejects(readFile(path.join(dir, 'out')), { code: 'ENOENT' }, 'a failed restore leaves no partial target');
  await t.rejects(r.readAt('disk.img', 5 * CS + 10, 10), { code: 'ERR_CHUNK_CORRUPT' });
  t.equal(Buffer.from(await r.readAt('disk.img', 0, 16)).length, 16, 'other chunks still read');
});

t.test('a chunk file holding another chunk is caught by the digest check', async (t) => {
  const { store, snap, digest } = await fixture(t);
  const r0 = await snap.open();
  const other = toHex((await r0.imageIndex('disk.img')).digestAt(1));
  await r0.close();
  await writeFile(path.join(store, chunkKey(digest)), await readFile(path.join(store, chunkKey(other))));
  const r = await snap.open();
  t.teardown(() => r.close());
  await t.rejects(r.readAt('disk.img', 5 * CS, 1), { code: 'ERR_CHUNK_CORRUPT', message: /digest/ });
});

t.test('a missing chunk is reported with its digest', async (t) => {
  const { dir, store, snap, digest } = await fixture(t);
  await unlink(path.join(store, chunkKey(digest)));
  const r = await snap.open();
  t.teardown(() => r.close());
  await t.rejects(r.restore('disk.img', path.join(dir, 'out')), { code: 'ERR_CHUNK_MISSING', details: { digest } });
});

t.test('damaged indexes, manifests and blobs give clear errors', async (t) => {
  const { ds, snapDir } = await fixture(t);
  const index = path.join(snapDir, 'disk.img.fidx');
  const good = await readFile(index);
  for (const [what, damage] of [
    ['truncated', () => truncate(index, good.length - 7)],
    ['header byte', () => flip(index, 20)],
    ['digest byte', () => flip(index, good.length - 3)],
    ['empty', () => truncate(index, 0)],
  ] as const) {
    await writeFile(index, good);
    await damage();
    const r = await (await ds.snapshot('vm/100')).open();
    await t.rejects(r.readAt('disk.img', 0, 1), { code: 'ERR_INDEX_CORRUPT', details: { archive: 'disk.img' } }, `index ${what}`);
    await r.close();
  }
  await writeFile(index, good);

  const blob = path.join(snapDir, 'conf.blob');
  await flip(blob, 18);
  const r = await (await ds.snapshot('vm/100')).open();
  await t.rejects(r.readBlob('conf.blob'), { code: 'ERR_BLOB_CORRUPT' });
  await r.close();

  const manifest = path.join(snapDir, 'manifest.blob');
  const m = await readFile(manifest);
  await truncate(manifest, m.length - 10);
  await t.rejects(ds.group('vm/100').snapshots(), { code: 'ERR_MANIFEST_CORRUPT', details: { snapshot: 'vm/100/1970-01-01T00:16:40Z' } });
  await writeFile(manifest, m);
  await flip(manifest, m.length - 20);
  await t.rejects(ds.snapshot('vm/100'), { code: 'ERR_MANIFEST_CORRUPT' });
});

t.test('config problems: missing, damaged, newer, nested, not empty', async (t) => {
  const { dir, store, ds } = await fixture(t);
  await ds.close();
  const cfg = path.join(store, 'cairn.json');
  const good = await readFile(cfg, 'utf8');
  await t.rejects(Datastore.open(path.join(dir, 'nowhere')), { code: 'ERR_NOT_A_DATASTORE' });
  await t.rejects(Datastore.open(dir), { code: 'ERR_NOT_A_DATASTORE' });
  await writeFile(cfg, good.slice(0, good.length / 2));
  await t.rejects(Datastore.open(store), { code: 'ERR_CONFIG_CORRUPT' });
  await writeFile(cfg, good.replace('"version": 1', '"version": 2'));
  await t.rejects(Datastore.open(store), { code: 'ERR_FORMAT_VERSION' });
  await writeFile(cfg, good.replace(/"imageChunkSize": \d+/, '"imageChunkSize": 12345'));
  await t.rejects(Datastore.open(store), { code: 'ERR_CONFIG_CORRUPT' });
  await writeFile(cfg, good);
  await t.rejects(Datastore.create(path.join(store, 'vm', 'inner')), { code: 'ERR_NESTED_DATASTORE' });
  await t.rejects(Datastore.create(store), { code: 'ERR_DATASTORE_EXISTS' });
  await mkdir(path.join(dir, 'full'));
  await writeFile(path.join(dir, 'full', 'x'), 'x');
  await t.rejects(Datastore.create(path.join(dir, 'full')), { code: 'ERR_DATASTORE_EXISTS' });
  await t.rejects(Datastore.create(path.join(dir, 'bad'), { imageChunkSize: 1000 }), { code: 'ERR_INVALID_ARGUMENT' });
  const again = await Datastore.open(store, { threads: 0 });
  t.equal((await again.group('vm/100').snapshots()).length, 1, 'the datastore still opens');
  await again.close();
  t.throws(() => again.group('vm/100'), { code: 'ERR_NOT_OPEN' });
});

t.test('a damaged manifest: scan lists it apart, verify fails it, removeDamaged removes it', async (t) => {
  const { ds, snapDir } = await fixture(t);
  const w = await ds.group('vm/100').backup({ time: 2000 });
  await w.addBlob('conf', 'cores: 8\n');
  const healthy = await w.commit();
  await flip(path.join(snapDir, 'manifest.blob'), 40);
  const g = ds.group('vm/100');
  const found = await g.scan();
  t.same(
    found.snapshots.map((s) => s.time),
    [healthy.time],
    'the readable snapshot is listed',
  );
  t.equal(found.damaged.length, 1);
  t.equal(found.damaged[0]!.name, 'vm/100/1970-01-01T00:16:40Z');
  t.equal(found.damaged[0]!.error.code, 'ERR_MANIFEST_CORRUPT');
  await t.rejects(g.snapshots(), { code: 'ERR_MANIFEST_CORRUPT' }, 'snapshots() stays strict (GC must not miss one)');

  const report = await new Verifier(ds).verify();
  t.same(report.failed, ['vm/100/1970-01-01T00:16:40Z'], 'verify fails the damaged snapshot');
  t.same(report.ok, [`vm/100/${healthy.time}`], 'and checks the others');
  t.equal(report.snapshots.find((r) => r.result === 'failed')!.problems[0]!.code, 'ERR_MANIFEST_CORRUPT');
  const byGroup = await new Verifier(ds).verify({ group: 'vm/100' });
  t.same(byGroup.failed, ['vm/100/1970-01-01T00:16:40Z'], 'also with a group scope');

  await t.rejects(g.removeDamaged(healthy.time), { code: 'ERR_CONFLICT' }, 'a readable snapshot is removed with Snapshot.remove');
  await t.rejects(g.removeDamaged('1970-01-01T00:00:05Z'), { code: 'ERR_NOT_FOUND' });
  await writeFile(path.join(snapDir, '.protected'), '');
  await t.rejects(g.removeDamaged('1970-01-01T00:16:40Z'), { code: 'ERR_PROTECTED' }, 'the protected flag holds without a manifest');
  await unlink(path.join(snapDir, '.protected'));
  await g.removeDamaged('1970-01-01T00:16:40Z');
  t.same(await g.scan().then((s) => [s.snapshots.length, s.damaged.length]), [1, 0], 'gone; the other stays');
  await t.rejects(readFile(path.join(snapDir, 'manifest.blob')), { code: 'ENOENT' });
});

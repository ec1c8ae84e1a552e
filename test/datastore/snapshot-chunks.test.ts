import t from 'tap';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { Datastore } from '../../lib/index.js';
import { snapshotChunks, storedSnapshotFiles, walkSnapshotFiles, type ArchiveChunks } from '../../lib/datastore/snapshot-chunks.js';
import { toHex } from '../../lib/util/bytes.js';
import { seededBytes, tempDir, writeTemp } from '../helpers/fixtures.js';

const CS = 64 * 1024;

t.test('the shared walk: per archive its index files and digests; damage throws or is yielded; abort stops it', async (t) => {
  const dir = tempDir(t);
  const ds = await Datastore.create(path.join(dir, 'store'), { imageChunkSize: CS, syncLevel: 'none', threads: 1 });
  t.teardown(() => ds.close());
  const tree = path.join(dir, 'tree');
  await fsp.mkdir(tree);
  await fsp.writeFile(path.join(tree, 'f.bin'), seededBytes(200_000, 3));
  const w = await ds.group('vm/1').backup({ time: 1000 });
  await w.addImage('disk', await writeTemp(dir, 'disk.raw', seededBytes(3 * CS + 5, 1)));
  await w.addTree('root', tree);
  await w.addBlob('conf', 'x = 1\n');
  const snap = await w.commit();

  const reader = await snap.open();
  const seen: ArchiveChunks[] = [];
  for await (const a of snapshotChunks(reader)) seen.push(a);
  t.same(
    seen.map((a) => a.file.name),
    ['conf.blob', 'disk.img', 'root.tree'],
    'manifest order',
  );
  t.same(
    seen.map((a) => a.indexes.map((x) => `${x.kind}:${x.stream}:${x.name}`)),
    [[], ['fixed:image:disk.img.fidx'], ['dynamic:meta:root.tree.meta.didx', 'dynamic:payload:root.tree.payload.didx']],
  );
  const image = seen[1]!.indexes[0]!.index;
  t.equal(image.count, 4, 'four image chunks');
  t.equal(toHex(image.digestAt(0)), toHex((await reader.imageIndex('disk.img')).digestAt(0)), 'the reader and the walk read the same index');
  await reader.close();

  // The same walk over the files as stored, through the backend (what an import source gives).
  const viaFiles: string[] = [];
  for await (const a of walkSnapshotFiles(snap.files, storedSnapshotFiles(ds, snap.ref))) viaFiles.push(...a.indexes.map((x) => toHex(x.index.checksum)));
  t.equal(viaFiles.length, 3);

  // A damaged tree index: the walk throws for GC, and yields the error for verify.
  const meta = path.join(ds.root, 'vm', '1', snap.time, 'root.tree.meta.didx');
  const bytes = await fsp.readFile(meta);
  bytes[bytes.length - 1]! ^= 0xff;
  await fsp.writeFile(meta, bytes);
  const r2 = await snap.open();
  t.teardown(() => r2.close());
  await t.rejects(
    (async () => {
      for await (const _ of snapshotChunks(r2));
    })(),
    { code: 'ERR_INDEX_CORRUPT', details: { archive: 'root.tree' } },
  );
  const r3 = await snap.open();
  t.teardown(() => r3.close());
  const lenient: ArchiveChunks[] = [];
  for await (const a of snapshotChunks(r3, { continueOnError: true })) lenient.push(a);
  t.same(
    lenient.map((a) => [a.file.name, a.indexes.length, a.error === undefined ? '' : (a.error as { code: string }).code]),
    [
      ['conf.blob', 0, ''],
      ['disk.img', 1, ''],
      ['root.tree', 0, 'ERR_INDEX_CORRUPT'],
    ],
  );

  const ac = new AbortController();
  ac.abort();
  await t.rejects(
    (async () => {
      for await (const _ of snapshotChunks(r3, { continueOnError: true, signal: ac.signal }));
    })(),
    { code: 'ERR_ABORTED' },
  );
});

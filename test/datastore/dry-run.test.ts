/**
 * BackupDryRun: on a datastore opened read-only it chunks and hashes images and trees as the
 * writer does, and its counts of new chunks and their raw bytes equal what a real backup of the
 * same sources then writes (chunksWritten; the raw sizes in the new chunk files' envelopes):
 * first backup, unchanged, one file or block changed, a changed-block map, copies within one dry
 * run counted once. It touches no chunk (mtimes kept), writes nothing, and stops on abort.
 */
import t from 'tap';
import { promises as fsp, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { BackupDryRun, Datastore, type ArchiveStats, type DryRunTotals, type ImageDryRunStats, type TreeArchiveStats, type TreeDryRunStats } from '../../lib/index.js';
import { parseEnvelope } from '../../lib/codec/envelope.js';
import { seededBytes, tempDir } from '../helpers/fixtures.js';

const CHUNK = 64 * 1024;

/** The chunk files of a datastore: digest -> raw (uncompressed) size from the envelope. */
async function chunkFiles(store: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const root = path.join(store, '.chunks');
  for (const shard of await fsp.readdir(root)) {
    for (const name of await fsp.readdir(path.join(root, shard))) {
      const bytes = await fsp.readFile(path.join(root, shard, name));
      out.set(name, parseEnvelope(bytes, { code: 'ERR_CHUNK_CORRUPT', details: {} }).rawSize);
    }
  }
  return out;
}

/** Chunk files in `after` and not in `before`: their number and raw bytes. */
function added(before: Map<string, number>, after: Map<string, number>): { count: number; raw: number } {
  let count = 0;
  let raw = 0;
  for (const [d, n] of after) {
    if (before.has(d)) continue;
    count++;
    raw += n;
  }
  return { count, raw };
}

/** Every path below `root` with its size and mtime (ns). */
async function listing(root: string): Promise<string[]> {
  const out: string[] = [];
  const visit = async (abs: string, rel: string): Promise<void> => {
    const st = await fsp.lstat(abs, { bigint: true });
    out.push(`${rel} ${st.size} ${st.mtimeNs}`);
    if (st.isDirectory()) for (const n of (await fsp.readdir(abs)).sort()) await visit(path.join(abs, n), `${rel}/${n}`);
  };
  await visit(root, '');
  return out;
}

interface Round {
  tree: TreeDryRunStats;
  image: ImageDryRunStats;
  totals: DryRunTotals;
}

t.test('dry runs predict the new chunks of first, unchanged and changed backups exactly', async (t) => {
  const dir = tempDir(t, 'cairn-dryrun-');
  const store = path.join(dir, 'store');
  await (await Datastore.create(store, { syncLevel: 'none', imageChunkSize: CHUNK })).close();
  const src = path.join(dir, 'src');
  await fsp.mkdir(path.join(src, 'sub'), { recursive: true });
  writeFileSync(path.join(src, 'big.bin'), seededBytes(3 * 1024 * 1024 + 11, 1));
  writeFileSync(path.join(src, 'text.txt'), 'some text\n'.repeat(5000)); // compressible
  writeFileSync(path.join(src, 'sub', 'small'), seededBytes(5000, 2));
  const disk = path.join(dir, 'disk.raw');
  const diskBytes = new Uint8Array(20 * CHUNK + 1234);
  diskBytes.set(seededBytes(12 * CHUNK, 3), 4 * CHUNK); // zero chunks before and after
  writeFileSync(disk, diskBytes);

  const dryRun = async (changed?: { ranges: [number, number][] }): Promise<Round> => {
    const before = await listing(store);
    // Hashing on a worker thread, as the CLI does (the real backups below run inline: faster here).
    const ds = await Datastore.open(store, { readOnly: true, threads: 1 });
    try {
      const dry = await BackupDryRun.start(ds, 'host/a');
      try {
        const tree = await dry.addTree('t.tree', src);
        const image = await dry.addImage('d.img', disk, changed === undefined ? {} : { changed });
        t.equal(tree.chunks, tree.meta.chunks + tree.payload.chunks, 'a tree sums its streams');
        t.equal(tree.newBytes, tree.meta.newBytes + tree.payload.newBytes);
        t.equal(image.chunkSize, CHUNK, "the datastore's chunk size");
        t.equal(image.bytes, diskBytes.byteLength);
        return { tree, image, totals: dry.totals };
      } finally {
        await dry.close();
      }
    } finally {
      await ds.close();
      t.same(await listing(store), before, 'the dry run changed nothing in the datastore, mtimes included');
    }
  };
  const backup = async (changed?: { ranges: [number, number][] }): Promise<{ tree: TreeArchiveStats; image: ArchiveStats; added: { count: number; raw: number } }> => {
    const before = await chunkFiles(store);
    const ds = await Datastore.open(store, { threads: 0 });
    try {
      const w = await ds.group('host/a').backup();
      const tree = await w.addTree('t.tree', src);
      const image = await w.addImage('d.img', disk, changed === undefined ? {} : { changed });
      await w.commit();
      return { tree, image, added: added(before, await chunkFiles(store)) };
    } finally {
      await ds.close();
    }
  };
  const agree = (label: string, d: Round, r: Awaited<ReturnType<typeof backup>>): void => {
    t.equal(d.tree.chunks, r.tree.meta.chunks + r.tree.payload.chunks, `${label}: tree chunks`);
    t.equal(d.tree.newChunks, r.tree.meta.chunksWritten + r.tree.payload.chunksWritten, `${label}: tree new chunks = chunks written`);
    t.equal(d.image.chunks, r.image.chunks, `${label}: image chunks`);
    t.equal(d.image.newChunks, r.image.chunksWritten, `${label}: image new chunks = chunks written`);
    t.equal(d.image.chunksKnown, r.image.chunksKnown, `${label}: image chunks from the base`);
    t.equal(d.image.chunksReused, r.image.chunksReused, `${label}: image chunks reused by the map`);
    t.equal(d.totals.newChunks, r.added.count, `${label}: new chunks = new chunk files`);
    t.equal(d.totals.newBytes, r.added.raw, `${label}: new bytes = raw bytes of the new chunk files`);
  };

  // First backup: everything is new; the image's 8 whole zero chunks are one chunk (and the short last one another).
  const d1 = await dryRun();
  t.ok(d1.tree.newChunks > 3 && d1.image.newChunks === 14, `first: ${d1.tree.newChunks} tree, ${d1.image.newChunks} image chunks new`);
  const r1 = await backup();
  agree('first', d1, r1);
  t.ok(r1.tree.payload.bytesStored < d1.tree.payload.newBytes, 'stored bytes (LZ4) are fewer than the raw new bytes of compressible data');

  // Unchanged: nothing new.
  const d2 = await dryRun();
  t.equal(d2.totals.newChunks, 0, 'unchanged: no new chunk');
  t.equal(d2.totals.newBytes, 0);
  t.equal(d2.tree.chunks, d1.tree.chunks);
  agree('unchanged', d2, await backup());

  // One file and one block changed.
  const fh = await fsp.open(path.join(src, 'big.bin'), 'r+');
  await fh.write(Buffer.from('changed!'), 0, 8, 1024 * 1024);
  await fh.close();
  const dh = await fsp.open(disk, 'r+');
  await dh.write(Buffer.from('changed!'), 0, 8, 6 * CHUNK + 100);
  await dh.close();
  const d3 = await dryRun();
  t.ok(d3.tree.newChunks >= 2, `changed file: ${d3.tree.newChunks} new tree chunks (payload and metadata)`);
  t.equal(d3.image.newChunks, 1, 'one changed block: one new image chunk');
  t.equal(d3.image.newBytes, CHUNK);
  agree('changed', d3, await backup());

  // A changed-block map: only the mapped chunk is read; the others come from the base.
  const dh2 = await fsp.open(disk, 'r+');
  await dh2.write(Buffer.from('again'), 0, 5, 9 * CHUNK + 7);
  await dh2.close();
  const map = { ranges: [[9 * CHUNK, 4096]] as [number, number][] };
  const d4 = await dryRun(map);
  t.equal(d4.image.chunksReused, 20, 'unmapped chunks are reused unread');
  t.equal(d4.image.newChunks, 1);
  agree('changed map', d4, await backup(map));
});

t.test('copies within one dry run are new once; blobs; no chunk is touched', async (t) => {
  const dir = tempDir(t, 'cairn-dryrun-');
  const store = path.join(dir, 'store');
  await (await Datastore.create(store, { syncLevel: 'none', imageChunkSize: CHUNK })).close();
  const a = path.join(dir, 'a.raw');
  const b = path.join(dir, 'b.raw');
  writeFileSync(a, seededBytes(5 * CHUNK, 7));
  writeFileSync(b, Buffer.concat([seededBytes(5 * CHUNK, 7), seededBytes(2 * CHUNK, 8)]));
  // One chunk stored already (by a backup of its bytes alone).
  const one = path.join(dir, 'one.raw');
  writeFileSync(one, seededBytes(2 * CHUNK, 8).subarray(0, CHUNK));
  let ds = await Datastore.open(store, { threads: 0 });
  const w = await ds.group('host/other').backup();
  await w.addImage('one.img', one);
  await w.commit();
  await ds.close();
  // Old mtimes on the chunk files: a touch would show.
  const shard = (await chunkFiles(store)).keys().next().value as string;
  const file = path.join(store, '.chunks', shard.slice(0, 2), shard);
  utimesSync(file, 1_000_000, 1_000_000);

  ds = await Datastore.open(store, { readOnly: true, threads: 0 });
  await t.rejects(BackupDryRun.start(ds, 'host/a', { namespace: 'nope' }), { code: 'ERR_NOT_FOUND' }, 'a missing namespace, as for a backup');
  await t.rejects(BackupDryRun.start(ds, 'host'), { code: 'ERR_INVALID_NAME' });
  const dry = await BackupDryRun.start(ds, 'host/a');
  t.equal(dry.base, undefined, 'no base in a new group');
  const sa = await dry.addImage('a.img', a);
  const sb = await dry.addImage('b.img', b);
  const blob = dry.addBlob('c.blob', 'x = 1\n');
  t.same([sa.chunks, sa.newChunks, sa.newBytes], [5, 5, 5 * CHUNK], 'a: all new');
  t.same([sb.chunks, sb.newChunks, sb.newBytes], [7, 1, CHUNK], 'b: its copy of a is not new again, nor the stored chunk');
  t.same(blob, { bytes: 6, chunks: 1, newChunks: 1, newBytes: 6 }, 'a blob is one new chunk of its size');
  t.same(dry.totals, { bytes: 12 * CHUNK + 6, chunks: 13, newChunks: 7, newBytes: 6 * CHUNK + 6 });
  await t.rejects(dry.addImage('a.img', a), { code: 'ERR_EXISTS' }, 'one archive name once');
  await t.rejects(dry.addImage('e.img', a, { chunkSize: 1000 }), { code: 'ERR_INVALID_ARGUMENT' });
  const ac = new AbortController();
  ac.abort();
  await t.rejects(dry.addTree('t.tree', dir, { signal: ac.signal }), { code: 'ERR_ABORTED' }, 'an aborted signal stops it');
  await dry.close();
  await ds.close();
  t.equal((await fsp.stat(file)).mtimeMs, 1_000_000_000, 'the stored chunk was looked up, not touched');
  await fsp.stat(path.join(store, 'host', 'other'));
  await t.rejects(fsp.stat(path.join(store, 'host', 'a')), { code: 'ENOENT' }, 'no group was made');
});

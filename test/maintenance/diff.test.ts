import t from 'tap';
import type { Test } from 'tap';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { Datastore, diffSnapshots, type ArchiveDiff, type ImageArchiveDiff, type Snapshot, type TreeArchiveDiff, type TreeChange } from '../../lib/index.js';
import { nativeSetXattr } from '../../lib/codec/native.js';
import { seededBytes, tempDir } from '../helpers/fixtures.js';

const T1 = '2026-01-01T00:00:00Z';
const T2 = '2026-01-02T00:00:00Z';
const FIXED = 1_700_000_000;

async function store(t: Test): Promise<{ dir: string; ds: Datastore }> {
  const dir = tempDir(t);
  const ds = await Datastore.create(path.join(dir, 'store'), { syncLevel: 'none', threads: 0 });
  t.teardown(() => ds.close());
  return { dir, ds };
}

/** Sets the mtime of every directory under (and including) `root` to one fixed value. */
async function pinDirTimes(root: string): Promise<void> {
  const dirs: string[] = [root];
  for (let i = 0; i < dirs.length; i++) {
    for (const e of await fsp.readdir(dirs[i]!, { withFileTypes: true })) if (e.isDirectory()) dirs.push(path.join(dirs[i]!, e.name));
  }
  for (const d of dirs.reverse()) await fsp.utimes(d, FIXED, FIXED);
}

async function put(p: string, data: string | Uint8Array, mtime = FIXED): Promise<void> {
  await fsp.mkdir(path.dirname(p), { recursive: true });
  await fsp.writeFile(p, data);
  await fsp.utimes(p, mtime, mtime);
}

const brief = (c: TreeChange): string =>
  `${c.change} ${c.path.toString('utf8')}${c.kind === 'dir' ? '/' : ''}${c.previousKind ? ` ${c.previousKind}->${c.kind}` : ''}${c.fields.length ? ` [${c.fields.join(',')}]` : ''}`;

/** Entries of the snapshot's root.tree, the root included. */
async function entryCount(s: Snapshot): Promise<number> {
  const r = await s.open();
  try {
    return (await r.tree('root.tree')).entryCount;
  } finally {
    await r.close();
  }
}

const tree = (d: ArchiveDiff | undefined): TreeArchiveDiff => {
  if (d === undefined || d.kind !== 'tree' || !('changes' in d)) throw new Error(`not a tree diff: ${JSON.stringify(d)}`);
  return d;
};
const image = (d: ArchiveDiff | undefined): ImageArchiveDiff => {
  if (d === undefined || d.kind !== 'image' || !('ranges' in d)) throw new Error(`not an image diff: ${JSON.stringify(d)}`);
  return d;
};

t.test('tree archives: added, removed, modified, metadata-only, symlinks, type changes, hardlinks, nested', async (t) => {
  const { dir, ds } = await store(t);
  const src = path.join(dir, 'src');
  const big = seededBytes(300_000, 11);
  await put(path.join(src, 'keep.txt'), 'keep');
  await put(path.join(src, 'big.bin'), big);
  await put(path.join(src, 'gone.txt'), 'gone!');
  await put(path.join(src, 'mod.txt'), 'version-1');
  await put(path.join(src, 'grow.txt'), 'short');
  await put(path.join(src, 'chmod.txt'), 'chmod me');
  await put(path.join(src, 'touch.txt'), 'touch me');
  await put(path.join(src, 'chown.txt'), 'chown me');
  await put(path.join(src, 'xattr.txt'), 'xattr me');
  await fsp.symlink('target-a', path.join(src, 'link'));
  await fsp.lutimes(path.join(src, 'link'), FIXED, FIXED);
  await put(path.join(src, 'f2d'), 'a file, later a directory');
  await put(path.join(src, 'd2f', 'x'), 'inside');
  await put(path.join(src, 'h1'), 'shared by h1 and h2');
  await fsp.link(path.join(src, 'h1'), path.join(src, 'h2'));
  await put(path.join(src, 'p1'), 'pair-old');
  await fsp.link(path.join(src, 'p1'), path.join(src, 'p2'));
  await put(path.join(src, 'dir', 'sub', 'deep.txt'), 'deep v1');
  await put(path.join(src, 'dir', 'old', 'o'), 'old');
  await pinDirTimes(src);
  const w1 = await ds.group('host/web').backup({ time: T1 });
  await w1.addTree('root.tree', src);
  const a = await w1.commit();

  await fsp.unlink(path.join(src, 'gone.txt'));
  await put(path.join(src, 'new.txt'), 'brand new', FIXED + 5);
  await put(path.join(src, 'mod.txt'), 'version-2', FIXED + 10); // same size, new bytes
  await put(path.join(src, 'grow.txt'), 'much longer now', FIXED + 10);
  await fsp.chmod(path.join(src, 'chmod.txt'), 0o600);
  await fsp.utimes(path.join(src, 'touch.txt'), FIXED + 99, FIXED + 99);
  await fsp.chown(path.join(src, 'chown.txt'), 1234, 5678);
  nativeSetXattr(path.join(src, 'xattr.txt'), 'user.note', Buffer.from('hello'));
  await fsp.unlink(path.join(src, 'link'));
  await fsp.symlink('target-b', path.join(src, 'link'));
  await fsp.lutimes(path.join(src, 'link'), FIXED, FIXED);
  await fsp.unlink(path.join(src, 'f2d'));
  await put(path.join(src, 'f2d', 'inner'), 'now inside a directory');
  await fsp.rm(path.join(src, 'd2f'), { recursive: true });
  await put(path.join(src, 'd2f'), 'a directory, now a file');
  // h0 becomes the first name of h1's inode: h1 and h2 are then hardlinks to it, same content.
  await fsp.link(path.join(src, 'h1'), path.join(src, 'h0'));
  // The pair's content changes through p1: p2 (a hardlink to p1) changes with it.
  await put(path.join(src, 'p1'), 'pair-new', FIXED + 20);
  await put(path.join(src, 'dir', 'sub', 'deep.txt'), 'deep v2 longer', FIXED + 30);
  await put(path.join(src, 'dir', 'sub', 'new', 'n'), 'nested new');
  await fsp.rm(path.join(src, 'dir', 'old'), { recursive: true });
  await pinDirTimes(src);
  await fsp.chmod(path.join(src, 'dir', 'sub'), 0o700);
  const w2 = await ds.group('host/web').backup({ time: T2 });
  await w2.addTree('root.tree', src);
  const b = await w2.commit();

  const progress: number[] = [];
  const d = await diffSnapshots(a, b, { onProgress: (p) => progress.push(p.entries) });
  t.same(d.from, { namespace: '', group: 'host/web', time: T1, snapshot: `host/web/${T1}` });
  t.same(d.to, { namespace: '', group: 'host/web', time: T2, snapshot: `host/web/${T2}` });
  t.equal(d.archives.length, 1);
  const r = tree(d.archives[0]);
  t.equal(r.status, 'changed');
  t.same(r.changes.map(brief), [
    'metadata chmod.txt [mode]',
    'metadata chown.txt [uid,gid]',
    'type d2f dir->file',
    'removed d2f/x',
    'removed dir/old/',
    'removed dir/old/o',
    'metadata dir/sub/ [mode]',
    'modified dir/sub/deep.txt [content,mtime]',
    'added dir/sub/new/',
    'added dir/sub/new/n',
    'type f2d/ file->dir',
    'added f2d/inner',
    'removed gone.txt',
    'modified grow.txt [content,mtime]',
    'added h0',
    'metadata h1 [link]',
    'metadata h2 [link]',
    'modified link [target]',
    'modified mod.txt [content,mtime]',
    'added new.txt',
    'modified p1 [content,mtime]',
    'modified p2 [content,mtime]',
    'metadata touch.txt [mtime]',
    'metadata xattr.txt [xattrs]',
  ]);
  const len = (s: string): number => Buffer.byteLength(s);
  t.same(r.counts, {
    added: 5,
    removed: 4,
    modified: 6,
    metadata: 7,
    typeChanged: 2,
    // new files' bytes and modified files' new bytes (hardlinks count 0)
    bytesAdded:
      len('a directory, now a file') +
      len('deep v2 longer') +
      len('nested new') +
      len('now inside a directory') +
      len('much longer now') +
      len('shared by h1 and h2') +
      len('version-2') +
      len('brand new') +
      len('pair-new'),
    bytesRemoved: len('inside') + len('deep v1') + len('old') + len('a file, later a directory') + len('gone!') + len('short') + len('version-1') + len('pair-old'),
    entriesCompared: r.counts.entriesCompared,
    bytesRead: r.counts.bytesRead,
  });
  t.equal(r.counts.entriesCompared, (await entryCount(a)) + (await entryCount(b)), 'every entry of both sides once');
  t.ok(r.counts.bytesRead < big.length, `the unchanged big file is decided by its chunk digests (read ${r.counts.bytesRead} bytes)`);
  t.equal(progress.at(-1), r.counts.entriesCompared, 'progress ends at the entry count');

  // The other way round: everything mirrors.
  const back = tree((await diffSnapshots(b, a)).archives[0]);
  t.same(back.counts.added, 4);
  t.same(back.counts.removed, 5);
  t.same(back.counts.bytesAdded, r.counts.bytesRemoved);
  t.ok(back.changes.map(brief).includes('type d2f/ file->dir'));

  // A snapshot against itself: nothing, by checksum, without walking.
  const same = tree((await diffSnapshots(b, b)).archives[0]);
  t.equal(same.status, 'unchanged');
  t.same(same.changes, []);
  t.equal(same.counts.entriesCompared, 0);

  // Streaming: the same changes, in the same order, through onChange; none kept.
  const streamed: string[] = [];
  const done: string[] = [];
  const s = await diffSnapshots(a, b, { onChange: (name, c) => streamed.push(`${name} ${brief(c)}`), onArchive: (x) => done.push(`${x.name} ${x.status}`) });
  t.same(
    streamed,
    r.changes.map((c) => `root.tree ${brief(c)}`),
  );
  t.same(tree(s.archives[0]).changes, []);
  t.same(done, ['root.tree changed']);
});

t.test('file contents: equal chunks decide without reading; a re-chunked equal file is read and found equal', async (t) => {
  const { dir, ds } = await store(t);
  const src = path.join(dir, 'src');
  const big = seededBytes(2_000_000, 5);
  await put(path.join(src, 'a.txt'), 'first');
  await put(path.join(src, 'big.bin'), big);
  await put(path.join(src, 'z.bin'), seededBytes(100_000, 9));
  await pinDirTimes(src);
  const w1 = await ds.group('host/a').backup({ time: T1 });
  await w1.addTree('t.tree', src);
  const a = await w1.commit();
  // Only a.txt changes, in size: big.bin and z.bin reuse their chunks, so nothing is read.
  await put(path.join(src, 'a.txt'), 'second, longer', FIXED + 1);
  await pinDirTimes(src);
  const w2 = await ds.group('host/a').backup({ time: T2 });
  await w2.addTree('t.tree', src);
  const b = await w2.commit();
  const r = tree((await diffSnapshots(a, b)).archives[0]);
  t.same(r.changes.map(brief), ['modified a.txt [content,mtime]']);
  t.equal(r.counts.bytesRead, 0, 'decided from the payload indexes alone');

  // A separate backup in another group, with z.bin touched: read again, re-chunked after a.txt's
  // new length; its bytes are compared and found equal; only the mtime differs.
  await fsp.utimes(path.join(src, 'z.bin'), FIXED + 7, FIXED + 7);
  await put(path.join(src, 'a.txt'), 'first');
  await pinDirTimes(src);
  const w3 = await ds.group('host/other').backup({ time: T2 });
  await w3.addTree('t.tree', src);
  const c = await w3.commit();
  const r2 = tree((await diffSnapshots(a, c)).archives[0]);
  t.same(r2.changes.map(brief), ['metadata z.bin [mtime]'], 'across groups; equal content is not modified');
  t.ok(r2.counts.bytesRead <= 100_000 + 2_000_000, 'read at most the files themselves');
});

t.test('image archives: changed ranges from the digests, size changes, different chunk sizes; blobs; added and removed archives', async (t) => {
  const { dir, ds } = await store(t);
  const CS = 65_536;
  const K = CS / 4096; // offsets below are written for 4 KiB chunks, scaled to 64 KiB
  const base = seededBytes(40_000 * K, 3);
  const img = async (name: string, data: Uint8Array): Promise<string> => {
    const p = path.join(dir, name);
    await fsp.writeFile(p, data);
    return p;
  };
  const w1 = await ds.group('vm/100').backup({ time: T1 });
  await w1.addImage('disk.img', await img('a.raw', base), { chunkSize: CS });
  await w1.addImage('shrink.img', await img('a2.raw', base), { chunkSize: CS });
  await w1.addImage('resized.img', await img('a3.raw', base), { chunkSize: CS });
  await w1.addImage('same.img', await img('a4.raw', base), { chunkSize: CS });
  await w1.addBlob('conf.blob', 'cores: 2\n');
  await w1.addBlob('same.blob', 'same');
  await w1.addBlob('old.blob', 'old');
  const a = await w1.commit();

  const grown = new Uint8Array(45_000 * K);
  grown.set(base);
  grown[5000 * K] = grown[5000 * K]! ^ 0xff; // chunk 1
  grown[9000 * K] = grown[9000 * K]! ^ 0xff; // chunk 2: one run with chunk 1
  grown[20_000 * K] = grown[20_000 * K]! ^ 0xff; // chunk 4
  grown.fill(7, 40_000 * K); // grown: the old partial chunk 9 and a new chunk 10
  const shrunk = base.slice(0, 30_000 * K); // chunk 7 becomes partial; 8 and 9 go
  const rechunked = base.slice();
  rechunked[5000 * K] = rechunked[5000 * K]! ^ 1;
  const w2 = await ds.group('vm/100').backup({ time: T2 });
  await w2.addImage('disk.img', await img('b.raw', grown), { chunkSize: CS });
  await w2.addImage('shrink.img', await img('b2.raw', shrunk), { chunkSize: CS });
  await w2.addImage('resized.img', await img('b3.raw', rechunked), { chunkSize: 2 * CS });
  await w2.addImage('same.img', await img('b4.raw', base), { chunkSize: CS });
  await w2.addBlob('conf.blob', 'cores: 4\n');
  await w2.addBlob('same.blob', 'same');
  await w2.addBlob('new.blob', 'new');
  const b = await w2.commit();

  const d = await diffSnapshots(a, b);
  t.same(
    d.archives.map((x) => `${x.name} ${x.kind} ${x.status}`),
    [
      'conf.blob blob changed',
      'disk.img image changed',
      'new.blob blob added',
      'old.blob blob removed',
      'resized.img image changed',
      'same.blob blob unchanged',
      'same.img image unchanged',
      'shrink.img image changed',
    ],
  );
  const disk = image(d.archives[1]);
  t.same(disk.ranges, [
    { offset: CS, length: 2 * CS },
    { offset: 4 * CS, length: CS },
    { offset: 9 * CS, length: 45_000 * K - 9 * CS },
  ]);
  t.equal(disk.changedBytes, 3 * CS + 45_000 * K - 9 * CS);
  t.match(disk, { compared: 'digests', sizeBefore: 40_000 * K, sizeAfter: 45_000 * K, chunkSizeBefore: CS, chunkSizeAfter: CS });
  const shrink = image(d.archives[7]);
  t.same(shrink.ranges, [{ offset: 7 * CS, length: 40_000 * K - 7 * CS }], 'the tail from the now partial chunk to the old end');
  const resized = image(d.archives[4]);
  t.match(resized, { compared: 'bytes', chunkSizeBefore: CS, chunkSizeAfter: 2 * CS, changedBytes: CS });
  t.same(resized.ranges, [{ offset: CS, length: CS }], 'in pieces of the smaller chunk size');
  t.match(image(d.archives[6]), { compared: 'checksum', ranges: [], changedBytes: 0 });
  t.match(d.archives[2], { status: 'added', sizeAfter: 3 });
  t.match(d.archives[3], { status: 'removed', sizeBefore: 3 });
  t.match(d.archives[0], { sizeBefore: 9, sizeAfter: 9 });

  // Only some archives; one in neither snapshot is ERR_NOT_FOUND.
  const only = await diffSnapshots(a, b, { archives: ['disk.img', 'new.blob'] });
  t.same(
    only.archives.map((x) => x.name),
    ['disk.img', 'new.blob'],
  );
  await t.rejects(diffSnapshots(a, b, { archives: ['nope.img'] }), { code: 'ERR_NOT_FOUND', details: { archive: 'nope.img' } });
  // Aborted before it starts.
  const ac = new AbortController();
  ac.abort();
  await t.rejects(diffSnapshots(a, b, { signal: ac.signal }), { code: 'ERR_ABORTED' });
});

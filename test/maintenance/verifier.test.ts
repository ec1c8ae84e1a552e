import t from 'tap';
import type { Test } from 'tap';
import { readFile, writeFile, unlink, mkdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { Datastore, Verifier, type Snapshot } from '../../lib/index.js';
import { chunkKey } from '../../lib/store/chunk-store.js';
import { toHex } from '../../lib/util/bytes.js';
import { seededBytes, tempDir, writeTemp } from '../helpers/fixtures.js';

const CS = 64 * 1024;

async function setup(t: Test) {
  const dir = tempDir(t);
  let now = 1_800_000_000_000;
  const clock = { now: () => now };
  const ds = await Datastore.create(path.join(dir, 'store'), { imageChunkSize: CS, syncLevel: 'none', threads: 2, clock });
  t.teardown(() => ds.close());
  const data = seededBytes(8 * CS + 100, 7);
  data.fill(0, 3 * CS, 4 * CS); // an all-zero chunk
  const src = await writeTemp(dir, 'disk.raw', data);
  const tree = path.join(dir, 'tree');
  await mkdir(path.join(tree, 'sub'), { recursive: true });
  await writeFile(path.join(tree, 'a.txt'), 'hello\n');
  await writeFile(path.join(tree, 'sub', 'b.bin'), seededBytes(100_000, 9));
  const backup = async (group: string, time: number): Promise<Snapshot> => {
    const w = await ds.group(group).backup({ time });
    await w.addImage('disk', src);
    await w.addBlob('conf', 'cores: 4\n');
    await w.addTree('files', tree);
    return w.commit();
  };
  return { dir, ds, src, backup, clock, advance: (ms: number) => (now += ms) };
}

async function imageDigest(s: Snapshot, i: number): Promise<string> {
  const r = await s.open();
  try {
    return toHex((await r.imageIndex('disk.img')).digestAt(i));
  } finally {
    await r.close();
  }
}

/** Flips a bit of byte `at` (negative: from the end). */
async function flip(file: string, at: number): Promise<void> {
  const b = await readFile(file);
  const i = at < 0 ? b.length + at : at;
  if (i < 0 || i >= b.length) throw new RangeError(`${file} has ${b.length} bytes`);
  b[i]! ^= 0x40;
  await writeFile(file, b);
}

async function exists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    () => false,
  );
}

t.test('a clean verify marks every snapshot ok and checks each chunk once', async (t) => {
  const { ds, backup } = await setup(t);
  const s1 = await backup('vm/100', 1000);
  await backup('vm/100', 2000);
  await backup('ct/200', 1000);
  const progress: number[] = [];
  const report = await new Verifier(ds).verify({}, { runId: 'run-1', onProgress: (p) => progress.push(p.snapshotsDone) });
  t.same(report.failed, []);
  t.equal(report.ok.length, 3);
  t.same(report.failedChunks, []);
  t.equal(report.run, 'run-1');
  t.ok(progress.includes(3), 'progress reaches the total');
  const r = await s1.open();
  const idx = await r.imageIndex('disk.img');
  const tree = await r.treeIndexes(r.files.find((f) => f.kind === 'tree')!.name);
  await r.close();
  const distinct = new Set<string>();
  for (let i = 0; i < idx.count; i++) distinct.add(toHex(idx.digestAt(i)));
  for (const x of [tree.meta, tree.payload]) for (let i = 0; i < x.count; i++) distinct.add(toHex(x.digestAt(i)));
  t.equal(report.chunksChecked, distinct.size, 'shared chunks are checked once across snapshots');
  t.ok(report.bytesChecked >= 8 * CS, 'bytes counted');
  t.ok(report.mbPerSecond >= 0);
  t.same(JSON.parse(JSON.stringify(report)), report, 'plain JSON');
  for (const g of await ds.namespace().groups()) {
    for (const s of await g.snapshots()) {
      t.equal(s.verifyState, 'ok', `${s.name} ok`);
      t.same(s.manifest.unprotected.verify, { state: 'ok', time: '2027-01-15T08:00:00Z', run: 'run-1' });
    }
  }
});

t.test('a flipped byte fails every snapshot sharing the chunk and renames the chunk aside', async (t) => {
  const { ds, backup, advance } = await setup(t);
  const s1 = await backup('vm/100', 1000);
  const s2 = await backup('vm/100', 2000);
  const other = await backup('ct/200', 1000);
  // ct/200 shares the chunks too (same source); give it a private snapshot set by checking group scope.
  const digest = await imageDigest(s1, 5);
  const file = path.join(ds.root, chunkKey(digest));
  await flip(file, 100);
  const report = await new Verifier(ds).verify({}, { runId: 'r2' });
  t.same(report.failed.sort(), [other.name, s1.name, s2.name].sort());
  t.equal(report.failedChunks.length, 1);
  const fc = report.failedChunks[0]!;
  t.equal(fc.digest, digest);
  t.equal(fc.code, 'ERR_CHUNK_CORRUPT');
  t.equal(fc.snapshots.length, 3);
  t.equal(fc.quarantined, `${chunkKey(digest)}.0.bad`);
  t.notOk(await exists(file), 'the damaged file is gone from its name');
  t.ok(await exists(`${file}.0.bad`), 'renamed to .0.bad');
  t.equal((await s1.reload()).verifyState, 'failed');
  const problems = report.snapshots.find((x) => x.snapshot === s1.name)!.problems;
  t.match(problems, [{ archive: 'disk.img', digest, code: 'ERR_CHUNK_CORRUPT' }]);

  // Restore the chunk (a good copy from elsewhere), damage it again: the next copy is .1.bad.
  const good = await readFile(`${file}.0.bad`);
  good[100]! ^= 0x40;
  await writeFile(file, good);
  advance(1000);
  const again = await new Verifier(ds).verify({ group: 'vm/100' });
  t.same(again.failed, [], 'a good copy passes');
  await flip(file, 200);
  const third = await new Verifier(ds).verify({ group: 'vm/100' });
  t.same(third.failed, [s1.name, s2.name]);
  t.ok(await exists(`${file}.1.bad`), 'second corruption of the same digest gets .1.bad');
  t.ok(await exists(`${file}.0.bad`), 'the first is kept');
});

t.test('quarantine numbering reuses .9.bad when all ten exist', async (t) => {
  const { ds, backup } = await setup(t);
  const s1 = await backup('vm/100', 1000);
  const digest = await imageDigest(s1, 1);
  const file = path.join(ds.root, chunkKey(digest));
  for (let n = 0; n < 10; n++) await writeFile(`${file}.${n}.bad`, `old ${n}`);
  const bytes = await readFile(file);
  const d = Uint8Array.from(Buffer.from(digest, 'hex'));
  t.equal(await ds.chunks.quarantine(d), `${chunkKey(digest)}.9.bad`);
  t.same(await readFile(`${file}.9.bad`), bytes);
  t.equal(await readFile(`${file}.8.bad`, 'utf8'), 'old 8');
  t.equal(await ds.chunks.quarantine(d), undefined, 'nothing to rename');
});

t.test('the loop: a failed snapshot is not a base, the next backup heals, verify passes again', async (t) => {
  const { ds, backup } = await setup(t);
  const s1 = await backup('vm/9', 1000);
  const zero = await imageDigest(s1, 3);
  const lost = await imageDigest(s1, 2);
  t.not(zero, lost);
  await unlink(path.join(ds.root, chunkKey(lost)));
  await unlink(path.join(ds.root, chunkKey(zero)));
  const r1 = await new Verifier(ds).verify({ group: 'vm/9' });
  t.same(r1.failed, [s1.name]);
  t.same(
    r1.failedChunks.map((c) => c.code),
    ['ERR_CHUNK_MISSING', 'ERR_CHUNK_MISSING'],
    'the all-zero chunk is checked too',
  );
  t.same(r1.failedChunks.map((c) => c.digest).sort(), [lost, zero].sort());
  t.equal(r1.failedChunks[0]!.quarantined, undefined, 'nothing to rename');
  t.equal((await s1.reload()).verifyState, 'failed');

  const w2 = await ds.group('vm/9').backup({ time: 2000 });
  t.equal(w2.base, undefined, 'the failed snapshot is not used as base');
  await w2.addImage('disk', path.join(ds.root, '..', 'disk.raw'));
  await w2.addBlob('conf', 'cores: 4\n');
  await w2.addTree('files', path.join(ds.root, '..', 'tree'));
  const s2 = await w2.commit();
  t.ok(await exists(path.join(ds.root, chunkKey(lost))), 'the lost chunk is written again');
  t.ok(await exists(path.join(ds.root, chunkKey(zero))), 'and the zero chunk');

  const r2 = await new Verifier(ds).verify({ group: 'vm/9', snapshot: s2.time });
  t.same(r2.ok, [s2.name], 'the new snapshot passes');
  const r3 = await new Verifier(ds).verify({ group: 'vm/9' }, { ignoreVerified: true });
  t.same(r3.ok, [s1.name], 'the old one passes too, the chunks are back');
  t.same(r3.skipped, [s2.name]);
  t.equal((await s1.reload()).verifyState, 'ok');
});

t.test('ignoreVerified skips ok snapshots unless outdated; failed ones are re-checked', async (t) => {
  const { ds, backup, advance } = await setup(t);
  const s1 = await backup('vm/100', 1000);
  const v = new Verifier(ds);
  await v.verify({});
  const skip = await v.verify({}, { ignoreVerified: true });
  t.same(skip.skipped, [s1.name]);
  t.equal(skip.chunksChecked, 0);
  advance(2 * 86400_000);
  t.same((await v.verify({}, { ignoreVerified: true, outdatedAfter: 3 })).skipped, [s1.name], 'not outdated yet');
  const outdated = await v.verify({}, { ignoreVerified: true, outdatedAfter: 1 });
  t.same(outdated.ok, [s1.name], 'outdated: checked again');
  await unlink(path.join(ds.root, chunkKey(await imageDigest(s1, 0))));
  await v.verify({}); // failed now
  const again = await v.verify({}, { ignoreVerified: true });
  t.same(again.failed, [s1.name], 'a failed snapshot is always checked again');
});

t.test('sample checks about that fraction of the chunks, deterministically, and writes no ok state', async (t) => {
  const { ds, src } = await setup(t);
  const big = seededBytes(400 * 65536, 11);
  await writeFile(src, big);
  const ds2 = await Datastore.create(path.join(ds.root, '..', 'store2'), { imageChunkSize: 65536, syncLevel: 'none', threads: 2 });
  t.teardown(() => ds2.close());
  const w = await ds2.group('vm/1').backup({ time: 1000 });
  await w.addImage('disk', src);
  const s = await w.commit();
  const a = await new Verifier(ds2).verify({}, { sample: 0.5 });
  const b = await new Verifier(ds2).verify({}, { sample: 0.5 });
  t.equal(a.chunksChecked + a.chunksSampledOut, 400);
  t.ok(a.chunksChecked > 140 && a.chunksChecked < 260, `about half (${a.chunksChecked})`);
  t.equal(a.chunksChecked, b.chunksChecked, 'the same chunks each time');
  t.same(a.snapshots[0]!.result, 'sampled');
  t.equal((await s.reload()).verifyState, undefined, 'no ok state from a sample');
  await t.rejects(new Verifier(ds2).verify({}, { sample: 0 }), { code: 'ERR_INVALID_ARGUMENT' });
  await t.rejects(new Verifier(ds2).verify({}, { sample: 1.5 }), { code: 'ERR_INVALID_ARGUMENT' });
});

t.test('a damaged index fails the snapshot with ERR_INDEX_CORRUPT; a damaged blob with ERR_BLOB_CORRUPT', async (t) => {
  const { ds, backup } = await setup(t);
  const s1 = await backup('vm/100', 1000);
  const s2 = await backup('vm/100', 2000);
  const snapDir = (s: Snapshot): string => path.join(ds.root, 'vm/100', s.time);
  await flip(path.join(snapDir(s1), 'disk.img.fidx'), -5);
  const blob = s2.files.find((f) => f.kind === 'blob')!.name;
  await flip(path.join(snapDir(s2), blob), -1);
  const report = await new Verifier(ds).verify({ group: 'vm/100' });
  t.same(report.failed, [s1.name, s2.name]);
  t.match(report.snapshots[0]!.problems, [{ archive: 'disk.img', code: 'ERR_INDEX_CORRUPT' }]);
  t.match(report.snapshots[1]!.problems, [{ archive: blob, code: 'ERR_BLOB_CORRUPT' }]);
  t.same(report.failedChunks, [], 'the chunks themselves are fine');
  t.equal((await s1.reload()).verifyState, 'failed');
});

t.test('scope: namespaces, a single snapshot, errors', async (t) => {
  const { ds, backup } = await setup(t);
  await backup('vm/100', 1000);
  await ds.createNamespace('a');
  const w = await ds.group('vm/5', { namespace: 'a' }).backup({ time: 1000 });
  await w.addBlob('conf', 'x');
  const sa = await w.commit();
  const all = await new Verifier(ds).verify({});
  t.same(all.ok.sort(), ['a:' + sa.name, 'vm/100/1970-01-01T00:16:40Z'].sort());
  const root = await new Verifier(ds).verify({ maxDepth: 0 });
  t.same(root.ok, ['vm/100/1970-01-01T00:16:40Z']);
  const one = await new Verifier(ds).verify({ namespace: 'a', snapshot: sa.name });
  t.same(one.ok, ['a:' + sa.name]);
  await t.rejects(new Verifier(ds).verify({ group: 'vm/404' }), { code: 'ERR_NOT_FOUND' });
  await t.rejects(new Verifier(ds).verify({ namespace: 'nope' }), { code: 'ERR_NOT_FOUND' });
  const ac = new AbortController();
  ac.abort();
  await t.rejects(new Verifier(ds).verify({}, { signal: ac.signal }), { code: 'ERR_ABORTED' });
});

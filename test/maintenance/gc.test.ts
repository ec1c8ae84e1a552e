import t, { type Test } from 'tap';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { Datastore, GarbageCollector, type Snapshot } from '../../lib/index.js';
import { registerWriter } from '../../lib/host/writer-registry.js';
import { CHUNK_DIR, chunkKey } from '../../lib/store/chunk-store.js';
import { fromHex } from '../../lib/util/bytes.js';
import { seededBytes, writeTemp } from '../helpers/fixtures.js';
import { imageDigests as digestsOf } from '../helpers/snapshots.js';
import { CS, FAR, clockedStore, type ClockedStore } from '../helpers/clocked-store.js';

type Env = ClockedStore;
const setup = (t: Test): Promise<Env> => clockedStore(t, 1);
/**
 * These tests make chunks old by moving the datastore clock (FAR), not the files' times. A measured
 * skew sees that clock ahead of the filesystem's and compensates (test/maintenance/gc-skew.test.ts),
 * so they give the skew explicitly: the cutoff mechanics are what they test.
 */
const SKEW = { skewMs: 60_000 } as const;

/** Backs up an image (and optionally a tree) into `group` at `time`. */
async function backup(env: Env, group: string, time: number, data: Uint8Array, tree?: string): Promise<Snapshot> {
  const src = await writeTemp(env.dir, `src-${group.replace('/', '_')}-${time}.raw`, data);
  const w = await env.ds.group(group).backup({ time });
  await w.addImage('disk', src);
  if (tree !== undefined) await w.addTree('root', tree);
  return w.commit();
}

async function makeTree(dir: string): Promise<string> {
  const root = path.join(dir, 'tree-src');
  await fsp.mkdir(path.join(root, 'sub'), { recursive: true });
  await fsp.writeFile(path.join(root, 'a.bin'), seededBytes(300_000, 7));
  await fsp.writeFile(path.join(root, 'sub', 'b.txt'), 'hello tree\n');
  return root;
}

/** Restores the image (and tree) of a snapshot and compares them with the sources. */
async function checkRestore(t: Test, env: Env, snap: Snapshot, data: Uint8Array, tree?: string): Promise<void> {
  const r = await snap.open();
  try {
    const out = path.join(env.dir, `out-${Math.random().toString(36).slice(2)}`);
    await r.restore('disk.img', out);
    t.equal(Buffer.compare(await fsp.readFile(out), Buffer.from(data)), 0, `${snap.name}: image byte-identical`);
    if (tree !== undefined) {
      const tout = `${out}-tree`;
      await r.restoreTree('root.tree', tout);
      t.equal(Buffer.compare(await fsp.readFile(path.join(tout, 'a.bin')), await fsp.readFile(path.join(tree, 'a.bin'))), 0, `${snap.name}: tree file byte-identical`);
      t.equal(await fsp.readFile(path.join(tout, 'sub', 'b.txt'), 'utf8'), 'hello tree\n');
    }
  } finally {
    await r.close();
  }
}

/** Every file name under `.chunks/` (shard/name). */
async function chunkFiles(ds: Datastore): Promise<string[]> {
  const out: string[] = [];
  for (const shard of await fsp.readdir(path.join(ds.root, CHUNK_DIR))) {
    for (const name of await fsp.readdir(path.join(ds.root, CHUNK_DIR, shard))) out.push(`${shard}/${name}`);
  }
  return out.sort();
}

const exists = async (p: string): Promise<boolean> =>
  fsp.stat(p).then(
    () => true,
    () => false,
  );

t.test('nothing to free: nothing removed, every snapshot restores, report written', async (t) => {
  const env = await setup(t);
  const tree = await makeTree(env.dir);
  const a = seededBytes(8 * CS + 123, 1);
  const b = seededBytes(6 * CS, 2);
  const s1 = await backup(env, 'vm/100', 1000, a, tree);
  const s2 = await backup(env, 'vm/100', 2000, a);
  const s3 = await backup(env, 'vm/200', 1000, b);
  const before = await chunkFiles(env.ds);
  env.clock.t += FAR;
  const phases = new Set<string>();
  const report = await new GarbageCollector(env.ds).run({ ...SKEW, onProgress: (p) => phases.add(p.phase) });
  t.same([...phases].sort(), ['mark', 'sweep']);
  t.equal(report.removedChunks, 0);
  t.equal(report.pendingChunks, 0);
  t.equal(report.snapshots, 3);
  t.equal(report.indexFiles, 5, 'three images, one tree (two indexes)');
  t.equal(report.diskChunks, before.length);
  t.ok(report.diskBytes > 0);
  t.ok(report.indexDataBytes >= 2 * a.length + b.length);
  t.ok(report.dedupFactor > 1, 'the second backup of `a` is deduplicated');
  t.equal(report.averageChunkSize, report.diskBytes / report.diskChunks);
  t.equal(report.cutoffMs, report.startMs - 60_000);
  t.same(await chunkFiles(env.ds), before, 'no chunk file touched');
  const status = JSON.parse(await fsp.readFile(path.join(env.ds.root, '.gc-status.json'), 'utf8')) as unknown;
  t.same(status, JSON.parse(JSON.stringify(report)), 'status file is the report');
  await checkRestore(t, env, s1, a, tree);
  await checkRestore(t, env, s2, a);
  await checkRestore(t, env, s3, b);
});

t.test('a removed snapshot: its chunks pending within the skew, then removed exactly; dry run changes nothing', async (t) => {
  const env = await setup(t);
  const a = seededBytes(8 * CS, 11);
  const b = seededBytes(5 * CS, 12);
  const sa = await backup(env, 'vm/1', 1000, a);
  const sb = await backup(env, 'vm/2', 1000, b);
  const only = await digestsOf(sa);
  for (const d of await digestsOf(sb)) only.delete(d);
  t.equal(only.size, 8);
  await sa.remove();
  const gc = new GarbageCollector(env.ds);

  // Clock not moved: the chunks are newer than the cutoff.
  const r1 = await gc.run(SKEW);
  t.equal(r1.removedChunks, 0);
  t.equal(r1.pendingChunks, 8);

  env.clock.t += FAR;
  const before = await chunkFiles(env.ds);
  await fsp.rm(path.join(env.ds.root, '.gc-status.json'));
  const dry = await gc.run({ ...SKEW, dryRun: true });
  t.equal(dry.dryRun, true);
  t.equal(dry.removedChunks, 8, 'dry run counts what would go');
  t.same(await chunkFiles(env.ds), before, 'dry run removes nothing');
  t.notOk(await exists(path.join(env.ds.root, '.gc-status.json')), 'dry run writes no status');

  const r2 = await gc.run(SKEW);
  t.equal(r2.removedChunks, 8);
  t.ok(r2.removedBytes > 0);
  t.equal(r2.pendingChunks, 0);
  const after = new Set((await chunkFiles(env.ds)).map((n) => n.slice(3)));
  for (const d of only) t.notOk(after.has(d), `chunk ${d.slice(0, 8)} removed`);
  for (const d of await digestsOf(sb)) t.ok(after.has(d), `chunk ${d.slice(0, 8)} kept`);
  t.equal(after.size, before.length - 8, 'exactly those chunks');
  await checkRestore(t, env, sb, b);
  t.equal((await gc.run(SKEW)).removedChunks, 0, 'a second run has nothing left');
});

t.test('a chunk touched after the cutoff is kept as pending', async (t) => {
  const env = await setup(t);
  const a = seededBytes(4 * CS, 21);
  const sa = await backup(env, 'vm/1', 1000, a);
  const ds = [...(await digestsOf(sa))];
  await sa.remove();
  env.clock.t += FAR;
  // A writer's dedup hit: touch one chunk at "now".
  t.equal(await env.ds.chunks.touch(fromHex(ds[0]!)), true);
  const r = await new GarbageCollector(env.ds).run(SKEW);
  t.equal(r.pendingChunks, 1);
  t.equal(r.removedChunks, 3);
  t.ok(await exists(env.ds.backend.locate(chunkKey(ds[0]!))), 'touched chunk kept');
  t.notOk(await exists(env.ds.backend.locate(chunkKey(ds[1]!))));
});

t.test('a live writer holds the cutoff back', async (t) => {
  const env = await setup(t);
  const a = seededBytes(4 * CS, 31);
  const start = Date.now() - 10_000; // started before its chunks were written
  const reg = await registerWriter(env.ds.root, start);
  const sa = await backup(env, 'vm/1', 1000, a);
  await sa.remove();
  env.clock.t += FAR;
  const gc = new GarbageCollector(env.ds);
  const r1 = await gc.run(SKEW);
  t.equal(r1.oldestWriterMs, start);
  t.equal(r1.cutoffMs, start - 60_000);
  t.equal(r1.removedChunks, 0, 'chunks written after the writer started are not removed');
  t.equal(r1.pendingChunks, 4);
  await reg.release();
  const r2 = await gc.run(SKEW);
  t.equal(r2.removedChunks, 4, 'removed once the writer is gone');
});

t.test('one GC at a time', async (t) => {
  const env = await setup(t);
  await backup(env, 'vm/1', 1000, seededBytes(2 * CS, 41));
  const gc = new GarbageCollector(env.ds);
  let inner: unknown;
  await gc.run({
    ...SKEW,
    hooks: {
      afterListGroup: async () => {
        inner = await new GarbageCollector(env.ds).run(SKEW).then(
          () => 'ran',
          (e: unknown) => e,
        );
      },
    },
  });
  t.match(inner, { code: 'ERR_LOCKED' });
  t.equal((await gc.run(SKEW)).removedChunks, 0, 'the lock is released after a run');
});

t.test('a corrupt index stops the GC before the sweep', async (t) => {
  const env = await setup(t);
  const sa = await backup(env, 'vm/1', 1000, seededBytes(3 * CS, 51));
  const sb = await backup(env, 'vm/2', 1000, seededBytes(3 * CS, 52));
  await sa.remove();
  const idxFile = path.join(env.ds.root, 'vm', '2', sb.time, 'disk.img.fidx');
  const bytes = await fsp.readFile(idxFile);
  bytes[bytes.length - 1]! ^= 0xff;
  await fsp.writeFile(idxFile, bytes);
  env.clock.t += FAR;
  const before = await chunkFiles(env.ds);
  await t.rejects(new GarbageCollector(env.ds).run(SKEW), { code: 'ERR_INDEX_CORRUPT' });
  t.same(await chunkFiles(env.ds), before, 'nothing removed');
});

t.test('.bad copies: kept while needed, removed when a good copy exists or nothing needs them', async (t) => {
  const env = await setup(t);
  const sa = await backup(env, 'vm/1', 1000, seededBytes(3 * CS, 61));
  const [d0, d1] = [...(await digestsOf(sa))] as [string, string];
  const key0 = env.ds.backend.locate(chunkKey(d0));
  t.equal(await env.ds.chunks.quarantine(fromHex(d0)), `${chunkKey(d0)}.0.bad`);
  env.clock.t += FAR;
  const gc = new GarbageCollector(env.ds);
  const r1 = await gc.run(SKEW);
  t.equal(r1.badChunks, 1, 'needed and no good copy: kept');
  t.equal(r1.removedBad, 0);
  t.ok(await exists(`${key0}.0.bad`));

  await fsp.copyFile(`${key0}.0.bad`, key0); // a good copy is written again
  const r2 = await gc.run(SKEW);
  t.equal(r2.removedBad, 1, 'good copy exists: the bad one goes');
  t.notOk(await exists(`${key0}.0.bad`));
  t.ok(await exists(key0));

  t.ok(await env.ds.chunks.quarantine(fromHex(d1)));
  await sa.remove();
  const r3 = await gc.run(SKEW);
  t.equal(r3.removedBad, 1, 'nothing needs it: removed');
  t.equal(r3.badChunks, 0);
  t.same(await chunkFiles(env.ds), [], 'everything of the removed snapshot is gone');
});

t.test('stale temp files and leftovers of a killed GC', async (t) => {
  const env = await setup(t);
  const sa = await backup(env, 'vm/1', 1000, seededBytes(3 * CS, 71));
  const sb = await backup(env, 'vm/2', 1000, seededBytes(2 * CS, 72));
  const [m0] = [...(await digestsOf(sb))] as [string];
  const [u0] = [...(await digestsOf(sa))] as [string];
  const shard = path.join(env.ds.root, CHUNK_DIR, 'ab');
  const stale = path.join(shard, `.${'ab'.padEnd(64, '0')}.tmp-999999-1`);
  const fresh = path.join(shard, `.${'ab'.padEnd(64, '1')}.tmp-999999-2`);
  await fsp.writeFile(stale, 'x');
  await fsp.writeFile(fresh, 'y');
  const hour = (Date.now() - 3_600_000) / 1000;
  await fsp.utimes(stale, hour, hour);
  // A killed GC left a marked chunk and an unmarked old chunk renamed aside.
  const mk = env.ds.backend.locate(chunkKey(m0));
  await fsp.rename(mk, `${mk}.gc-4242`);
  await sa.remove();
  const uk = env.ds.backend.locate(chunkKey(u0));
  await fsp.utimes(uk, hour, hour);
  await fsp.rename(uk, `${uk}.gc-4242`);

  // Killed manifest, protect and move writers leave temp files in snapshot, group and root directories.
  const snapDir = env.ds.backend.locate(`vm/2/${sb.time}`);
  const elsewhere = [
    path.join(snapDir, `.manifest.blob.tmp-999999-3`),
    path.join(snapDir, `..protected.tmp-999999-4`),
    path.join(env.ds.root, 'vm', '2', `..move-target.tmp-999999-5`),
    path.join(env.ds.root, `..gc-status.json.tmp-999999-6`),
  ];
  for (const p of elsewhere) {
    await fsp.writeFile(p, 'z');
    await fsp.utimes(p, hour, hour);
  }
  const freshManifest = path.join(snapDir, `.manifest.blob.tmp-999999-7`);
  await fsp.writeFile(freshManifest, 'w');

  const dry = await new GarbageCollector(env.ds).run({ ...SKEW, dryRun: true });
  t.equal(dry.removedTemp, 5, 'a dry run counts them');
  t.ok(await exists(stale), 'and removes nothing');
  const r = await new GarbageCollector(env.ds).run(SKEW); // clock not moved
  t.equal(r.removedTemp, 5);
  for (const p of elsewhere) t.notOk(await exists(p), `stale ${path.basename(p)} removed`);
  t.ok(await exists(freshManifest), 'a fresh temp file in a snapshot directory is kept');
  t.notOk(await exists(stale), 'stale temp file removed');
  t.ok(await exists(fresh), 'fresh temp file kept');
  t.ok(await exists(mk), 'marked chunk put back');
  t.notOk(await exists(`${mk}.gc-4242`));
  t.notOk(await exists(uk), 'old unmarked leftover not put back');
  t.notOk(await exists(`${uk}.gc-4242`), 'and removed');
  await checkRestore(t, env, sb, seededBytes(2 * CS, 72));
});

t.test('race: a backup reuses the base untouched, commits, and the base is removed while GC marks', async (t) => {
  const env = await setup(t);
  const a = seededBytes(8 * CS + 5, 81);
  const src = await writeTemp(env.dir, 'race.raw', a);
  const w1 = await env.ds.group('vm/100').backup({ time: 1000 });
  await w1.addImage('disk', src);
  const base = await w1.commit();
  env.clock.t += FAR; // every chunk is older than the cutoff
  let listings = 0;
  let s2: Snapshot | undefined;
  const report = await new GarbageCollector(env.ds).run({
    ...SKEW,
    hooks: {
      afterListGroup: async (_ns, group) => {
        if (group !== 'vm/100') return;
        listings++;
        if (s2 !== undefined) return;
        // After the group was listed: a second backup of the same image (its chunks are the
        // base's, known and not touched), committed; then the base is removed.
        const w2 = await env.ds.group('vm/100').backup({ time: 2000 });
        t.equal(w2.base?.time, base.time);
        const st = await w2.addImage('disk', src);
        t.equal(st.chunksWritten, 0);
        t.equal(st.chunksKnown, 9, 'all chunks reused from the base');
        s2 = await w2.commit();
        await base.remove();
      },
    },
  });
  t.equal(listings, 2, 'the group was listed again after the base vanished');
  t.equal(report.removedChunks, 0, 'no chunk of the new snapshot removed');
  t.equal(report.snapshots, 1);
  t.ok(s2);
  await checkRestore(t, env, s2!, a);
});

t.test('an aborted GC: in the mark nothing is removed; in the sweep what is removed was garbage', async (t) => {
  const env = await setup(t);
  const data = seededBytes(6 * CS, 91);
  const keep = await backup(env, 'vm/1', 1000, data);
  const gone = await backup(env, 'vm/2', 1000, seededBytes(40 * CS, 92));
  await gone.remove();
  env.clock.t += FAR;
  const before = await chunkFiles(env.ds);
  const gc = new GarbageCollector(env.ds);

  const inMark = new AbortController();
  await t.rejects(gc.run({ ...SKEW, signal: inMark.signal, hooks: { afterListGroup: async () => inMark.abort() } }), { code: 'ERR_ABORTED' });
  t.same(await chunkFiles(env.ds), before, 'aborted in the mark: nothing removed');

  const inSweep = new AbortController();
  await t.rejects(gc.run({ ...SKEW, signal: inSweep.signal, onProgress: (p) => p.phase === 'sweep' && p.done === 128 && inSweep.abort() }), { code: 'ERR_ABORTED' });
  const mid = await chunkFiles(env.ds);
  t.ok(mid.length < before.length && mid.length > (await digestsOf(keep)).size, 'aborted half way through the sweep: part of the garbage removed');
  t.notOk(
    mid.some((f) => f.includes('.gc-')),
    'no aside file left behind',
  );
  await checkRestore(t, env, keep, data);

  const r = await gc.run(SKEW);
  t.equal((await chunkFiles(env.ds)).length, (await digestsOf(keep)).size, 'the next run finishes the job');
  t.ok(r.removedChunks > 0);
  await checkRestore(t, env, keep, data);
});

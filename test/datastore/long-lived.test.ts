// Issue 12: one library process making ~1,000 snapshots of a group slowed from 0.77 s to 2.7 s per
// snapshot. Every backup read and decoded the manifest of every snapshot of its group (to find
// unfinished directories and the newest), so the work per backup grew with the group. The work
// is counted here, not timed: manifest reads and stats, and the process's listeners and handles
// per backup must not grow with the number of snapshots.
import t from 'tap';
import path from 'node:path';
import { Datastore, Pruner } from '../../lib/index.js';
import { MANIFEST_FILE } from '../../lib/datastore/layout.js';
import type { LocalBackend } from '../../lib/backend/local.js';
import { tempDir } from '../helpers/fixtures.js';

t.test('the work of one backup does not grow with the snapshots of its group', async (t) => {
  const dir = tempDir(t);
  const ds = await Datastore.create(path.join(dir, 'store'), { imageChunkSize: 64 * 1024, syncLevel: 'none', threads: 0 });
  t.teardown(() => ds.close());
  // Count what each backup reads: manifests are the files a backup must not read per snapshot.
  let manifestReads = 0;
  let manifestStats = 0;
  const get = ds.backend.get.bind(ds.backend);
  ds.backend.get = (key, ...rest) => {
    if (key.endsWith(`/${MANIFEST_FILE}`)) manifestReads++;
    return get(key, ...rest);
  };
  const stat = ds.backend.stat.bind(ds.backend);
  ds.backend.stat = (key) => {
    if (key.endsWith(`/${MANIFEST_FILE}`)) manifestStats++;
    return stat(key);
  };
  const image = new Uint8Array(3 * 64 * 1024);
  const cost: { manifests: number; stats: number; listeners: number; handles: number }[] = [];
  for (let i = 1; i <= 60; i++) {
    image[i] = i;
    const before = manifestReads;
    const statsBefore = manifestStats;
    const w = await ds.group('vm/1').backup({ time: 1_000_000 + i });
    await w.addImage(
      'disk',
      (async function* () {
        yield image.slice();
      })(),
    );
    await w.addBlob('conf', `n=${i}`);
    await w.commit();
    const p = process as unknown as { _getActiveHandles(): unknown[] };
    cost.push({
      manifests: manifestReads - before,
      stats: manifestStats - statsBefore,
      listeners: process.eventNames().reduce((n, e) => n + process.listenerCount(e), 0),
      handles: p._getActiveHandles().length,
    });
  }
  const early = cost[9]!;
  const late = cost[59]!;
  t.ok(late.manifests <= 4, `backup 60 reads ${late.manifests} manifests (constant, not one per snapshot)`);
  t.equal(late.manifests, early.manifests, 'backup 60 reads as many manifests as backup 10');
  t.ok(late.stats <= 2, `backup 60 stats ${late.stats} manifests (constant, not one per snapshot)`);
  t.equal(late.stats, early.stats, 'backup 60 stats as many manifests as backup 10');
  t.equal(late.listeners, early.listeners, 'no process listener accumulates');
  t.ok(late.handles <= early.handles, 'no handle accumulates');
  t.equal((await ds.group('vm/1').snapshots()).length, 60);
});

t.test('a backup removes the unfinished directories newer than its base; prune removes older ones', async (t) => {
  const dir = tempDir(t);
  const ds = await Datastore.create(path.join(dir, 'store'), { syncLevel: 'none', threads: 0 });
  t.teardown(() => ds.close());
  for (let i = 1; i <= 4; i++) {
    const w = await ds.group('vm/1').backup({ time: 1000 * i });
    await w.addBlob('conf', `n=${i}`);
    await w.commit();
  }
  const snaps = await ds.group('vm/1').snapshots();
  // The second snapshot loses its manifest (a removal killed half-way), and so does the newest
  // (as a crashed backup leaves it): both are unfinished now.
  for (const s of [snaps[1]!, snaps[3]!]) await ds.backend.delete(`vm/1/${s.time}/${MANIFEST_FILE}`);
  const w = await ds.group('vm/1').backup({ time: 9000 });
  t.same(
    (await (ds.backend as LocalBackend).listNames('vm/1')).sort(),
    [snaps[0]!.time, snaps[1]!.time, snaps[2]!.time, w.ref.time].sort(),
    'the unfinished directory newer than the base is gone, the older one stays',
  );
  t.equal(w.base?.time, snaps[2]!.time, 'the newest finished snapshot is the base');
  await w.addBlob('conf', 'n=9');
  await w.commit();
  const pruner = new Pruner(ds);
  await pruner.apply(await pruner.plan({}, { keepLast: 10 }));
  t.same((await (ds.backend as LocalBackend).listNames('vm/1')).sort(), [snaps[0]!.time, snaps[2]!.time, w.ref.time].sort(), 'prune removed the older unfinished directory');
});

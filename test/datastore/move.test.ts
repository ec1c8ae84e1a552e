import t, { type Test } from 'tap';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { GarbageCollector, Verifier, type Snapshot } from '../../lib/index.js';
import { MOVE_JOURNAL_KEY, parseLine } from '../../lib/datastore/move-journal.js';
import { seededBytes, writeTemp } from '../helpers/fixtures.js';
import { CS, FAR, clockedStore, type ClockedStore } from '../helpers/clocked-store.js';

type Env = ClockedStore;
const setup = (t: Test): Promise<Env> => clockedStore(t, 0);

/** An image snapshot whose content is a function of (group, time, ns). */
async function backup(env: Env, group: string, time: number, ns = '', owner?: string): Promise<Snapshot> {
  const src = await writeTemp(env.dir, `src-${ns.replace(/\//g, '_')}-${group.replace('/', '_')}-${time}.raw`, content(group, time, ns));
  const w = await env.ds.group(group, { namespace: ns }).backup({ time, ...(owner === undefined ? {} : { owner }) });
  await w.addImage('disk', src);
  return w.commit();
}

function content(group: string, time: number, ns: string): Uint8Array {
  let seed = time;
  for (const c of `${ns}:${group}`) seed = (seed * 31 + c.charCodeAt(0)) >>> 0;
  return seededBytes(3 * CS + 1000, seed);
}

async function restores(env: Env, snap: Snapshot, expected: Uint8Array): Promise<boolean> {
  const r = await snap.open();
  try {
    const out = path.join(env.dir, `out-${Math.random().toString(36).slice(2)}`);
    await r.restore('disk.img', out);
    return Buffer.compare(await fsp.readFile(out), Buffer.from(expected)) === 0;
  } finally {
    await r.close();
  }
}

const times = (snaps: Snapshot[]): number[] => snaps.map((s) => s.epoch);

t.test('move a group into a namespace where it does not exist', async (t) => {
  const env = await setup(t);
  const { ds } = env;
  await ds.createNamespace('a');
  await ds.createNamespace('b');
  await backup(env, 'vm/1', 1000, 'a', 'alice@pam');
  const s2 = await backup(env, 'vm/1', 2000, 'a');
  await ds.group('vm/1', { namespace: 'a' }).setNotes('db server');
  await s2.setProtected(true);
  await s2.setNotes('before upgrade');
  const events: number[] = [];
  const r = await ds.moveGroup('vm/1', { from: 'a', to: 'b' }, { onProgress: (p) => events.push(p.done) });
  t.same(r.moved, ['1970-01-01T00:16:40Z', '1970-01-01T00:33:20Z']);
  t.same(r.skipped, []);
  t.equal(r.merged, false);
  t.equal(r.sourceRemoved, true);
  t.same(events, [1, 2]);
  t.notOk(await ds.group('vm/1', { namespace: 'a' }).exists(), 'the source group is gone');
  const g = ds.group('vm/1', { namespace: 'b' });
  const moved = await g.snapshots();
  t.same(times(moved), [1000, 2000]);
  t.equal(await g.owner(), 'alice@pam', 'owner moved');
  t.equal(await g.notes(), 'db server', 'group notes moved');
  t.equal(moved[1]!.isProtected, true, 'protection moved');
  t.equal(moved[1]!.notes, 'before upgrade', 'snapshot notes moved');
  t.equal(moved[0]!.namespace, 'b');
  t.equal(moved[0]!.manifest.namespace, 'a', 'the manifest keeps the namespace the snapshot was made in');
  t.ok(await restores(env, moved[0]!, content('vm/1', 1000, 'a')), 'restores byte-identical');
  t.ok(await restores(env, moved[1]!, content('vm/1', 2000, 'a')));
  const v = await new Verifier(ds).verify({ namespace: 'b' });
  t.equal(v.ok.length, 2);
  t.equal(v.failed.length, 0);

  // The next backup in the new place uses the moved snapshot as its base: nothing is rewritten.
  const src = await writeTemp(env.dir, 'same.raw', content('vm/1', 2000, 'a'));
  const w = await g.backup({ time: 3000 });
  const st = await w.addImage('disk', src);
  await w.commit();
  t.equal(st.chunksWritten, 0, 'incremental from the moved base');
});

t.test('moving refuses what it must', async (t) => {
  const env = await setup(t);
  const { ds } = env;
  await ds.createNamespace('a');
  await backup(env, 'vm/1', 1000);
  await t.rejects(ds.moveGroup('vm/1', { to: 'nope' }), { code: 'ERR_NOT_FOUND', message: /target namespace 'nope'/ });
  await t.rejects(ds.moveGroup('vm/2', { to: 'a' }), { code: 'ERR_NOT_FOUND', message: /vm\/2 does not exist/ });
  await t.rejects(ds.moveGroup('vm/1', { to: '' }), { code: 'ERR_INVALID_ARGUMENT' });
  await t.rejects(ds.moveGroup('vm/1', { to: 'a/../b' }), { code: 'ERR_INVALID_NAME' });

  // A backup of the group runs: the group lock is held.
  const w = await ds.group('vm/1').backup({ time: 2000 });
  await t.rejects(ds.moveGroup('vm/1', { to: 'a' }), { code: 'ERR_LOCKED' });
  await w.abort();
  // ... in the target too.
  const w2 = await ds.group('vm/1', { namespace: 'a' }).backup({ time: 5000 });
  await t.rejects(ds.moveGroup('vm/1', { to: 'a' }), { code: 'ERR_LOCKED' });
  await w2.abort();
  t.same(times(await ds.group('vm/1').snapshots()), [1000], 'nothing moved');
});

t.test('merging: same owner, every moved snapshot newer than the target', async (t) => {
  const env = await setup(t);
  const { ds } = env;
  await ds.createNamespace('a');
  await backup(env, 'vm/1', 1000, '', 'alice');
  await backup(env, 'vm/1', 3000, '', 'alice');
  await backup(env, 'vm/1', 2000, 'a', 'alice');
  await t.rejects(ds.moveGroup('vm/1', { to: 'a' }), { code: 'ERR_TIME_ORDER', message: /00:16:40Z is not newer/ });
  t.same(times(await ds.group('vm/1').snapshots()), [1000, 3000], 'refused before anything moved');

  await backup(env, 'host/x', 5000, '', 'bob');
  await backup(env, 'host/x', 1000, 'a', 'alice');
  await t.rejects(ds.moveGroup('host/x', { to: 'a' }), { code: 'ERR_CONFLICT', message: /owners differ/ });

  await backup(env, 'ct/7', 5000, '', 'carol');
  await backup(env, 'ct/7', 6000, '', 'carol');
  await backup(env, 'ct/7', 1000, 'a', 'carol');
  await ds.group('ct/7').setNotes('source notes');
  const r = await ds.moveGroup('ct/7', { to: 'a' });
  t.equal(r.merged, true);
  t.same(r.moved.length, 2);
  t.equal(r.notesConflict, false);
  t.same(times(await ds.group('ct/7', { namespace: 'a' }).snapshots()), [1000, 5000, 6000]);
  t.equal(await ds.group('ct/7', { namespace: 'a' }).notes(), 'source notes', 'the target had none: the source notes move');

  await backup(env, 'ct/8', 5000, '', 'carol');
  await backup(env, 'ct/8', 1000, 'a', 'carol');
  await ds.group('ct/8').setNotes('mine');
  await ds.group('ct/8', { namespace: 'a' }).setNotes('theirs');
  const r2 = await ds.moveGroup('ct/8', { to: 'a' });
  t.equal(r2.notesConflict, true);
  t.equal(await ds.group('ct/8', { namespace: 'a' }).notes(), 'theirs', "differing notes: the target's win");
});

t.test('a snapshot in use stays; running the move again finishes it', async (t) => {
  const env = await setup(t);
  const { ds } = env;
  await ds.createNamespace('a');
  await backup(env, 'vm/1', 500, 'a');
  await backup(env, 'vm/1', 1000);
  await backup(env, 'vm/1', 2000);
  const [s1] = await ds.group('vm/1').snapshots();
  const reader = await s1!.open(); // a restore or a mount holds it
  const r = await ds.moveGroup('vm/1', { to: 'a' });
  t.same(r.moved, ['1970-01-01T00:33:20Z']);
  t.equal(r.skipped.length, 1);
  t.match(r.skipped[0], { time: '1970-01-01T00:16:40Z', reason: /locked/ });
  t.equal(r.sourceRemoved, false);
  t.equal(Buffer.from(await reader.readAt('disk.img', 0, 16)).length, 16, 'the reader still reads');
  await reader.close();
  // The remaining snapshot is older than the target's newest now, but it belongs to this move.
  const r2 = await ds.moveGroup('vm/1', { to: 'a' });
  t.same(r2.moved, ['1970-01-01T00:16:40Z']);
  t.equal(r2.sourceRemoved, true);
  t.same(times(await ds.group('vm/1', { namespace: 'a' }).snapshots()), [500, 1000, 2000]);
  // A crashed backup's leftover in the source is cleaned up by a move.
  await backup(env, 'vm/3', 1000);
  await fsp.mkdir(path.join(ds.root, 'vm', '3', '1970-01-01T00:33:20Z'));
  const r3 = await ds.moveGroup('vm/3', { to: 'a' });
  t.same(r3.removedUnfinished, ['1970-01-01T00:33:20Z']);
  t.equal(r3.sourceRemoved, true);
});

t.test('a move is abortable between snapshots and can be resumed', async (t) => {
  const env = await setup(t);
  const { ds } = env;
  await ds.createNamespace('a');
  for (const time of [1000, 2000, 3000]) await backup(env, 'vm/1', time);
  const ac = new AbortController();
  await t.rejects(ds.moveGroup('vm/1', { to: 'a' }, { signal: ac.signal, onProgress: (p) => p.done === 1 && ac.abort() }), { code: 'ERR_ABORTED' });
  t.same(times(await ds.group('vm/1').snapshots()), [2000, 3000]);
  t.same(times(await ds.group('vm/1', { namespace: 'a' }).snapshots()), [1000]);
  const r = await ds.moveGroup('vm/1', { to: 'a' });
  t.same(r.moved.length, 2);
  t.same(times(await ds.group('vm/1', { namespace: 'a' }).snapshots()), [1000, 2000, 3000]);
});

t.test('move a namespace with the namespaces below it', async (t) => {
  const env = await setup(t);
  const { ds } = env;
  for (const ns of ['a', 'a/x', 'a/x/y', 'c']) await ds.createNamespace(ns);
  await backup(env, 'vm/1', 1000, 'a');
  await backup(env, 'vm/2', 1000, 'a/x');
  await backup(env, 'ct/3', 1000, 'a/x/y');
  await t.rejects(ds.moveNamespace('a', 'a/x/z'), { code: 'ERR_INVALID_ARGUMENT', message: /into itself/ });
  await t.rejects(ds.moveNamespace('a', 'a'), { code: 'ERR_INVALID_ARGUMENT' });
  await t.rejects(ds.moveNamespace('', 'c'), { code: 'ERR_INVALID_ARGUMENT' });
  await t.rejects(ds.moveNamespace('a', ''), { code: 'ERR_INVALID_ARGUMENT' });
  await t.rejects(ds.moveNamespace('nope', 'd'), { code: 'ERR_NOT_FOUND' });
  await t.rejects(ds.moveNamespace('a', 'q/r'), { code: 'ERR_NOT_FOUND', message: /parent namespace 'q'/ });
  for (const ns of ['c/1', 'c/1/2', 'c/1/2/3', 'c/1/2/3/4']) await ds.createNamespace(ns);
  await t.rejects(ds.moveNamespace('a', 'c/1/2/3/4/5'), { code: 'ERR_INVALID_ARGUMENT', message: /deeper than 7/ });
  await t.rejects(ds.moveNamespace('a', 'b', { maxDepth: 9 }), { code: 'ERR_INVALID_ARGUMENT' });

  const r = await ds.moveNamespace('a', 'c/moved');
  t.same(r.createdNamespaces, ['c/moved', 'c/moved/x', 'c/moved/x/y']);
  t.same(r.removedNamespaces, ['a/x/y', 'a/x', 'a']);
  t.same(r.failedGroups, []);
  t.same(
    r.groups.map((g) => `${g.from}:${g.group}->${g.to}`),
    ['a:vm/1->c/moved', 'a/x:vm/2->c/moved/x', 'a/x/y:ct/3->c/moved/x/y'],
  );
  t.same(
    (await ds.listNamespaces()).map((n) => n.path),
    ['', 'c', 'c/1', 'c/1/2', 'c/1/2/3', 'c/1/2/3/4', 'c/moved', 'c/moved/x', 'c/moved/x/y'],
  );
  const s = await ds.snapshot('ct/3', { namespace: 'c/moved/x/y' });
  t.ok(await restores(env, s, content('ct/3', 1000, 'a/x/y')));
});

t.test('namespace move: merging, max depth, groups that cannot move', async (t) => {
  const env = await setup(t);
  const { ds } = env;
  for (const ns of ['a', 'a/x', 'b']) await ds.createNamespace(ns);
  await backup(env, 'vm/1', 2000, 'a');
  await backup(env, 'vm/2', 1000, 'a');
  await backup(env, 'vm/3', 1000, 'a/x');
  await backup(env, 'vm/1', 1000, 'b');
  await backup(env, 'vm/2', 5000, 'b');

  const noMerge = await ds.moveNamespace('a', 'b', { mergeGroups: false, maxDepth: 0 });
  t.same(noMerge.groups, []);
  t.same(
    noMerge.failedGroups.map((f) => `${f.group}:${f.code}`),
    ['vm/1:ERR_EXISTS', 'vm/2:ERR_EXISTS'],
  );
  t.same(noMerge.removedNamespaces, [], 'nothing emptied');

  const r = await ds.moveNamespace('a', 'b', { maxDepth: 0 });
  t.same(
    r.groups.map((g) => g.group),
    ['vm/1'],
    'vm/1 merges (newer than the target)',
  );
  t.same(
    r.failedGroups.map((f) => `${f.group}:${f.code}`),
    ['vm/2:ERR_TIME_ORDER'],
  );
  t.same(times(await ds.group('vm/1', { namespace: 'b' }).snapshots()), [1000, 2000]);
  t.ok(await ds.group('vm/3', { namespace: 'a/x' }).exists(), 'max depth 0: the child namespace stays');
  t.same(r.removedNamespaces, [], 'the source still holds vm/2 and a/x');

  await ds.group('vm/2', { namespace: 'a' }).remove();
  const r2 = await ds.moveNamespace('a', 'b', { deleteSource: false });
  t.same(
    r2.groups.map((g) => `${g.from}:${g.group}`),
    ['a/x:vm/3'],
  );
  t.same(r2.removedNamespaces, []);
  t.ok(await ds.namespace('a').exists(), 'deleteSource false keeps the emptied source');
});

t.test('removing a group keeps protected snapshots and ones in use', async (t) => {
  const env = await setup(t);
  const { ds } = env;
  await backup(env, 'vm/1', 1000);
  const s2 = await backup(env, 'vm/1', 2000);
  await backup(env, 'vm/1', 3000);
  await s2.setProtected(true);
  await t.rejects(ds.group('vm/9').remove(), { code: 'ERR_NOT_FOUND' });
  const r = await ds.group('vm/1').remove();
  t.equal(r.removed, false);
  t.same(r.removedSnapshots, ['1970-01-01T00:16:40Z', '1970-01-01T00:50:00Z']);
  t.same(r.keptProtected, ['1970-01-01T00:33:20Z']);
  await (await s2.reload()).setProtected(false);
  const reader = await (await s2.reload()).open();
  const r2 = await ds.group('vm/1').remove();
  t.same(r2.keptLocked, ['1970-01-01T00:33:20Z']);
  await reader.close();
  const w = await ds.group('vm/1').backup({ time: 4000 });
  await t.rejects(ds.group('vm/1').remove(), { code: 'ERR_LOCKED' }, 'not while a backup runs');
  await w.abort();
  const r3 = await ds.group('vm/1').remove();
  t.equal(r3.removed, true);
  t.notOk(await ds.group('vm/1').exists());
});

t.test('GC during a move: the journal keeps the chunks of a snapshot in transit', async (t) => {
  // The walk visits '' then 'a' then 'b'. While it is in 'a' (a hook after listing a group there),
  // vm/1 moves from 'b' (not yet walked) to 'a' (already walked): the walk sees it nowhere.
  for (const sabotage of [false, true]) {
    await t.test(sabotage ? 'without the journal the chunks would be lost (the race is real)' : 'with the journal', async (t) => {
      const env = await setup(t);
      const { ds } = env;
      await ds.createNamespace('a');
      await ds.createNamespace('b');
      await backup(env, 'vm/9', 1000, 'a');
      const moving = await backup(env, 'vm/1', 1000, 'b');
      env.clock.t += FAR;
      let moved = false;
      // An explicit skew: the clock moved FAR ahead of the files' times, which a measured skew would compensate.
      const report = await new GarbageCollector(ds).run({
        skewMs: 60_000,
        hooks: {
          afterListGroup: async (ns) => {
            if (ns === 'a' && !moved) {
              moved = true;
              const r = await ds.moveGroup('vm/1', { from: 'b', to: 'a' });
              t.equal(r.moved.length, 1);
            }
          },
          beforeDrain: async () => {
            const lines = (await fsp.readFile(path.join(ds.root, MOVE_JOURNAL_KEY), 'utf8')).split('\n').filter(Boolean);
            t.same(lines.map(parseLine), [{ namespace: 'a', group: { type: 'vm', id: '1' }, time: moving.time }], 'the move is journaled');
            if (sabotage) await fsp.truncate(path.join(ds.root, MOVE_JOURNAL_KEY), 0);
          },
        },
      });
      t.ok(moved);
      const snap = await ds.snapshot('vm/1', { namespace: 'a' });
      const v = await new Verifier(ds).verify({ namespace: 'a' });
      if (sabotage) {
        t.ok(report.removedChunks > 0, 'chunks of the moved snapshot were swept');
        t.equal(v.failed.length, 1, 'and verify says so');
      } else {
        t.equal(report.snapshots, 2, 'both snapshots marked (one from the journal)');
        t.equal(report.removedChunks, 0);
        t.same(v.failed, []);
        t.ok(await restores(env, snap, content('vm/1', 1000, 'b')));
        t.equal((await fsp.readFile(path.join(ds.root, MOVE_JOURNAL_KEY), 'utf8')).length, 0, 'the drain empties the journal');
      }
    });
  }
});

t.test('journal lines: cut short or foreign lines are skipped', async (t) => {
  t.same(parseLine('{"ns":"a","group":"vm/1","time":"2026-01-01T00:00:00Z"}'), { namespace: 'a', group: { type: 'vm', id: '1' }, time: '2026-01-01T00:00:00Z' });
  for (const bad of [
    '',
    '   ',
    '{"ns":"a","group":"vm/1","ti',
    '{"ns":"..","group":"vm/1","time":"2026-01-01T00:00:00Z"}',
    '{"ns":"a","group":"vm","time":"2026-01-01T00:00:00Z"}',
    '{"ns":"a","group":"vm/1","time":"yesterday"}',
    '[1]',
    'null',
  ]) {
    t.equal(parseLine(bad), undefined, JSON.stringify(bad));
  }
});

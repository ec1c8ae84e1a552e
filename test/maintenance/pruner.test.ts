import t, { type Test } from 'tap';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { Datastore, Pruner, type PruneEntry } from '../../lib/index.js';
import { tempDir } from '../helpers/fixtures.js';

const D = (day: number): string => `2024-01-${String(day).padStart(2, '0')}T12:00:00Z`;

async function store(t: Test): Promise<Datastore> {
  const ds = await Datastore.create(path.join(tempDir(t), 'store'), { syncLevel: 'none', threads: 0 });
  t.teardown(() => ds.close());
  return ds;
}

async function backup(ds: Datastore, group: string, time: string, namespace = ''): Promise<void> {
  const w = await ds.group(group, { namespace }).backup({ time });
  await w.addBlob('note.blob', `${group} ${time}`);
  await w.commit();
}

const brief = (es: PruneEntry[]): string[] =>
  es.map(
    (e) =>
      `${e.namespace}:${e.group}/${e.time} ${e.mark}${e.removed === undefined ? '' : e.removed ? ' removed' : ' kept'}${e.skipped === undefined ? '' : ` skipped(${e.skipped.split(':')[0]})`}`,
  );
const times = async (ds: Datastore, group: string, namespace = ''): Promise<string[]> =>
  (await ds.group(group, { namespace }).entries()).map((e) => `${e.time}${e.snapshot === undefined ? ' unfinished' : ''}`);

t.test('dry run and apply act on the same marks, oldest first; protected kept', async (t) => {
  const ds = await store(t);
  for (let d = 1; d <= 6; d++) await backup(ds, 'vm/100', D(d));
  await (await ds.group('vm/100').snapshot(D(2))).setProtected(true);
  const pruner = new Pruner(ds);
  const plan = await pruner.plan({ group: 'vm/100' }, { keepLast: 2, timeZone: 'UTC' });
  t.same(brief(plan.entries), [
    `:vm/100/${D(6)} keep`,
    `:vm/100/${D(5)} keep`,
    `:vm/100/${D(4)} remove`,
    `:vm/100/${D(3)} remove`,
    `:vm/100/${D(2)} protected`,
    `:vm/100/${D(1)} remove`,
  ]);
  t.same(plan.options, { keepLast: 2, timeZone: 'UTC' });
  const dry = await pruner.apply(plan, { dryRun: true });
  t.equal(dry.dryRun, true);
  t.same(dry.entries, plan.entries, 'dry run: exactly the plan');
  t.same(dry.totals, { snapshots: 6, keep: 2, keepPartial: 0, protected: 1, remove: 3, removed: 0, skipped: 0 });
  t.equal((await times(ds, 'vm/100')).length, 6, 'dry run removes nothing');
  t.same(JSON.parse(JSON.stringify(dry)), dry, 'plain JSON');

  const order: string[] = [];
  const report = await pruner.apply(plan, { onProgress: (p) => order.push(`${p.done}/${p.total} ${p.entry.time}`) });
  t.same(order, [`1/3 ${D(1)}`, `2/3 ${D(3)}`, `3/3 ${D(4)}`], 'oldest first');
  t.same(
    report.entries.map((e) => [e.time, e.mark]),
    dry.entries.map((e) => [e.time, e.mark]),
  );
  t.same(report.totals, { snapshots: 6, keep: 2, keepPartial: 0, protected: 1, remove: 3, removed: 3, skipped: 0 });
  t.same(await times(ds, 'vm/100'), [D(2), D(5), D(6)]);
  // Pruning again with the same policy removes nothing more.
  t.same((await pruner.prune({ group: 'vm/100' }, { keepLast: 2, timeZone: 'UTC' })).totals.remove, 0);
  // No keep option: everything kept.
  t.same((await pruner.prune({}, {})).totals, { snapshots: 3, keep: 2, keepPartial: 0, protected: 1, remove: 0, removed: 0, skipped: 0 });
});

t.test('a locked snapshot (open reader) is skipped and reported', async (t) => {
  const ds = await store(t);
  for (let d = 1; d <= 4; d++) await backup(ds, 'ct/7', D(d));
  const reader = await (await ds.group('ct/7').snapshot(D(2))).open();
  const pruner = new Pruner(ds);
  const report = await pruner.prune({ group: 'ct/7' }, { keepLast: 1, timeZone: 'UTC' });
  t.same(brief(report.entries), [`:ct/7/${D(4)} keep`, `:ct/7/${D(3)} remove removed`, `:ct/7/${D(2)} remove kept skipped(ERR_LOCKED)`, `:ct/7/${D(1)} remove removed`]);
  t.equal(report.totals.skipped, 1);
  t.equal(report.totals.removed, 2);
  await reader.close();
  t.same(await times(ds, 'ct/7'), [D(2), D(4)]);
  t.same((await pruner.prune({ group: 'ct/7' }, { keepLast: 1, timeZone: 'UTC' })).totals.removed, 1, 'removed once unlocked');
});

t.test('unfinished directories: newest kept partial, older removed unless a backup runs', async (t) => {
  const ds = await store(t);
  await backup(ds, 'host/a', D(2));
  await backup(ds, 'host/a', D(4));
  const running = await ds.group('host/a').backup({ time: D(5) });
  await fsp.mkdir(path.join(ds.root, 'host', 'a', D(3))); // what a crashed backup leaves
  const pruner = new Pruner(ds);
  const plan = await pruner.plan({ group: 'host/a' }, { keepLast: 1, timeZone: 'UTC' });
  t.same(brief(plan.entries), [`:host/a/${D(5)} keep-partial`, `:host/a/${D(4)} keep`, `:host/a/${D(3)} remove`, `:host/a/${D(2)} remove`]);
  t.same(
    plan.entries.map((e) => e.finished),
    [false, true, false, true],
  );
  // The running backup holds the group lock (and a shared lock on its base, D(4)).
  const r1 = await pruner.apply(plan);
  t.same(brief(r1.entries), [`:host/a/${D(5)} keep-partial`, `:host/a/${D(4)} keep`, `:host/a/${D(3)} remove kept skipped(ERR_LOCKED)`, `:host/a/${D(2)} remove removed`]);
  await running.abort();
  const r2 = await pruner.prune({ group: 'host/a' }, { keepLast: 1, timeZone: 'UTC' });
  t.same(brief(r2.entries), [`:host/a/${D(4)} keep`, `:host/a/${D(3)} remove removed`]);
  t.same(await times(ds, 'host/a'), [D(4)]);
});

t.test('the base of a running backup is skipped', async (t) => {
  const ds = await store(t);
  await backup(ds, 'vm/1', D(1));
  await backup(ds, 'vm/1', D(2));
  const running = await ds.group('vm/1').backup({ time: D(3) });
  t.teardown(() => running.abort());
  const report = await new Pruner(ds).prune({ group: 'vm/1' }, { keepLast: 1, timeZone: 'UTC' });
  t.same(brief(report.entries), [`:vm/1/${D(3)} keep-partial`, `:vm/1/${D(2)} keep`, `:vm/1/${D(1)} remove removed`]);
  // A hand-edited (plain JSON) plan that removes the base.
  const plan = await new Pruner(ds).plan({ group: 'vm/1' }, { keepLast: 1, timeZone: 'UTC' });
  const stale = { ...plan, entries: plan.entries.map((e) => ({ ...e, mark: 'remove' as const })) };
  const r2 = await new Pruner(ds).apply(stale);
  t.match(r2.entries[1], { time: D(2), mark: 'remove', removed: false, skipped: /^ERR_LOCKED/ });
  t.match(r2.entries[0], { time: D(3), finished: false, removed: false, skipped: /^ERR_LOCKED/ });
});

t.test('namespace scope with maxDepth', async (t) => {
  const ds = await store(t);
  await ds.createNamespace('a');
  await ds.createNamespace('a/b');
  await ds.createNamespace('a/b/c');
  for (const [ns, g] of [
    ['', 'vm/1'],
    ['a', 'vm/2'],
    ['a/b', 'ct/3'],
    ['a/b/c', 'host/4'],
  ] as const) {
    await backup(ds, g, D(1), ns);
    await backup(ds, g, D(2), ns);
  }
  const pruner = new Pruner(ds);
  const plan = await pruner.plan({ namespace: 'a', maxDepth: 1 }, { keepLast: 1, timeZone: 'UTC' });
  t.same(brief(plan.entries), [`a:vm/2/${D(2)} keep`, `a:vm/2/${D(1)} remove`, `a/b:ct/3/${D(2)} keep`, `a/b:ct/3/${D(1)} remove`]);
  const report = await pruner.apply(plan);
  t.equal(report.totals.removed, 2);
  t.same(await times(ds, 'vm/1'), [D(1), D(2)], 'root untouched');
  t.same(await times(ds, 'vm/2', 'a'), [D(2)]);
  t.same(await times(ds, 'ct/3', 'a/b'), [D(2)]);
  t.same(await times(ds, 'host/4', 'a/b/c'), [D(1), D(2)], 'below maxDepth untouched');
  t.equal((await pruner.plan({}, { keepLast: 1, timeZone: 'UTC' })).entries.length, 6, 'default: everything below the root');
  t.equal((await pruner.plan({ maxDepth: 0 }, { keepLast: 1, timeZone: 'UTC' })).entries.length, 2);
  await t.rejects(pruner.plan({ namespace: 'nope' }, { keepLast: 1 }), { code: 'ERR_NOT_FOUND' });
  await t.rejects(pruner.plan({ group: 'vm/9' }, { keepLast: 1 }), { code: 'ERR_NOT_FOUND' });
  await t.rejects(pruner.plan({ maxDepth: 8 }, { keepLast: 1 }), { code: 'ERR_INVALID_ARGUMENT' });
  await t.rejects(pruner.plan({}, { keepLast: -1 }), { code: 'ERR_INVALID_ARGUMENT' });
  const ac = new AbortController();
  ac.abort();
  await t.rejects(pruner.prune({}, { keepLast: 1 }, { signal: ac.signal }), { code: 'ERR_ABORTED' });
});

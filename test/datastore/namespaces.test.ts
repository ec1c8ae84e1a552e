import t from 'tap';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Datastore } from '../../lib/index.js';
import { tempDir } from '../helpers/fixtures.js';

async function open(t: import('tap').Test) {
  const ds = await Datastore.create(path.join(tempDir(t), 'store'), { syncLevel: 'none', threads: 0 });
  t.teardown(() => ds.close());
  return ds;
}

async function snap(ds: Datastore, group: string, ns = '', time?: number) {
  const w = await ds.group(group, { namespace: ns }).backup(time === undefined ? {} : { time });
  await w.addBlob('b', `${ns}:${group}`);
  return w.commit();
}

t.test('bad names are refused', async (t) => {
  const ds = await open(t);
  for (const ns of ['..', '.hidden', 'a/../b', 'a b', 'a//b', '/a', 'a/', 'x'.repeat(129), 'a/b/c/d/e/f/g/h', `${'abcdefgh/'.repeat(28)}x`]) {
    t.throws(() => ds.namespace(ns), { code: 'ERR_INVALID_NAME' }, `namespace ${JSON.stringify(ns).slice(0, 40)}`);
  }
  t.doesNotThrow(() => ds.namespace('a/b/c/d/e/f/g'), 'seven levels are fine');
  for (const g of ['vm', 'vm/', 'lxc/100', 'vm/../x', 'vm/.x', 'vm/a/b', 'VM/1', 'vm/a b']) {
    t.throws(() => ds.group(g), { code: 'ERR_INVALID_NAME' }, `group ${g}`);
  }
  const w = await ds.group('vm/ok_1.2-3').backup();
  for (const a of ['../x', 'a/b', '.blob', '', 'x y']) {
    await t.rejects(w.addBlob(a, 'x'), { code: 'ERR_INVALID_NAME' }, `archive ${a}`);
  }
  await w.abort();
  await t.rejects(ds.snapshot('vm'), { code: 'ERR_INVALID_NAME' });
  await t.rejects(ds.snapshot('vm/1/yesterday'), { code: 'ERR_INVALID_ARGUMENT' });
});

t.test('namespaces: create, list, the same id apart, remove', async (t) => {
  const ds = await open(t);
  await t.rejects(ds.createNamespace('a/b'), { code: 'ERR_NOT_FOUND', message: /parent/ });
  await ds.createNamespace('a');
  await ds.createNamespace('a/b');
  await ds.createNamespace('c');
  await t.rejects(ds.createNamespace('a'), { code: 'ERR_EXISTS' });
  await t.rejects(ds.group('vm/1', { namespace: 'zzz' }).backup(), { code: 'ERR_NOT_FOUND' });
  t.same(
    (await ds.listNamespaces()).map((n) => n.path),
    ['', 'a', 'a/b', 'c'],
  );
  t.same(
    (await ds.listNamespaces({ maxDepth: 1 })).map((n) => n.path),
    ['', 'a', 'c'],
  );
  t.same(
    (await ds.listNamespaces({ parent: 'a' })).map((n) => n.path),
    ['a', 'a/b'],
  );
  await t.rejects(ds.listNamespaces({ maxDepth: 9 }), { code: 'ERR_INVALID_ARGUMENT' });

  await snap(ds, 'vm/100', '', 100);
  await snap(ds, 'vm/100', 'a', 200);
  await snap(ds, 'vm/100', 'a/b', 300);
  const inA = await ds.group('vm/100', { namespace: 'a' }).snapshots();
  t.same(
    inA.map((s) => s.epoch),
    [200],
    'the same id in another namespace is another group',
  );
  const r = await inA[0]!.open();
  t.equal(Buffer.from(await r.readBlob('b.blob')).toString(), 'a:vm/100');
  await r.close();
  t.same(
    (await ds.namespace('a').groups()).map((g) => g.name),
    ['vm/100'],
  );

  await t.rejects(ds.removeNamespace('a'), { code: 'ERR_NOT_EMPTY' });
  await t.rejects(ds.removeNamespace(''), { code: 'ERR_INVALID_ARGUMENT' });
  await t.rejects(ds.removeNamespace('nope'), { code: 'ERR_NOT_FOUND' });
  const empty = await ds.removeNamespace('c');
  t.equal(empty.removed, true);

  const deep = await ds.group('vm/100', { namespace: 'a/b' }).newest();
  await deep!.setProtected(true);
  const rep = await ds.removeNamespace('a', { recursive: true });
  t.equal(rep.removed, false, 'a namespace holding a protected snapshot stays');
  t.same(rep.keptProtected, ['a/b:vm/100/1970-01-01T00:05:00Z']);
  t.same(rep.removedSnapshots, ['a:vm/100/1970-01-01T00:03:20Z']);
  t.same(
    (await ds.listNamespaces()).map((n) => n.path),
    ['', 'a', 'a/b'],
  );
  t.equal((await ds.group('vm/100').snapshots()).length, 1, 'the root namespace is untouched');
  await (await deep!.reload()).setProtected(false);
  const rep2 = await ds.removeNamespace('a', { recursive: true });
  t.equal(rep2.removed, true);
  t.same(
    (await ds.listNamespaces()).map((n) => n.path),
    [''],
  );
});

t.test('owner and notes', async (t) => {
  const ds = await open(t);
  const g = ds.group('ct/200');
  await t.rejects(g.setNotes('x'), { code: 'ERR_NOT_FOUND' });
  const w = await g.backup({ owner: 'backup@pbs' });
  await w.addBlob('conf', 'x');
  const s = await w.commit();
  t.equal(await g.owner(), 'backup@pbs');
  await g.setOwner('alice@pam');
  t.equal(await g.owner(), 'alice@pam');
  await t.rejects(g.setOwner('a\nb'), { code: 'ERR_INVALID_ARGUMENT' });
  t.equal(await g.notes(), '');
  await g.setNotes('weekly\nbackups');
  t.equal(await g.notes(), 'weekly\nbackups');
  const s2 = await s.setNotes('before the upgrade');
  t.equal(s2.notes, 'before the upgrade');
  t.equal((await ds.snapshot('ct/200')).notes, 'before the upgrade');
  await t.rejects(
    s.updateManifest((m) => ({ ...m, id: '201' })),
    TypeError,
  );
  t.equal(s2.toJSON()['id'], '200');
});

t.test('openOrCreate: creates where nothing is, opens what is there, touches nothing else', async (t) => {
  const dir = tempDir(t);
  const where = path.join(dir, 'new-store');
  const a = await Datastore.openOrCreate(where, { syncLevel: 'none', threads: 0 });
  const uuid = a.config.uuid;
  await a.close();
  const b = await Datastore.openOrCreate(where, { threads: 0 });
  t.equal(b.config.uuid, uuid, 'the second call opens the same datastore');
  await b.close();
  const other = path.join(dir, 'photos');
  await mkdir(other);
  await writeFile(path.join(other, 'cat.jpg'), 'x');
  await t.rejects(Datastore.openOrCreate(other, { threads: 0 }), { code: 'ERR_DATASTORE_EXISTS' });
});

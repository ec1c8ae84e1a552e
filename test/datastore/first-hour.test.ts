/**
 * Issue 13, "a new user's first hour with the API holds no surprises": an aborted first backup
 * leaves no group behind, an empty snapshot is refused, and archive names mean the same on write
 * and read (with or without the extension the writer adds).
 */
import t, { type Test } from 'tap';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { Datastore, isCairnError } from '../../lib/index.js';
import { cairn, requireBuilt } from '../cli/run-cli.js';
import { seededBytes, tempDir, writeTemp } from '../helpers/fixtures.js';

const CS = 64 * 1024;

async function open(t: Test): Promise<{ dir: string; ds: Datastore }> {
  const dir = tempDir(t, 'cairn-first-hour-');
  const ds = await Datastore.create(path.join(dir, 'store'), { imageChunkSize: CS, syncLevel: 'none', threads: 0 });
  t.teardown(() => ds.close());
  return { dir, ds };
}

/** What the datastore root holds below the type directory `vm/` (group directories). */
async function vmDirs(ds: Datastore): Promise<string[]> {
  return (await fsp.readdir(path.join(ds.root, 'vm')).catch(() => [] as string[])).sort();
}

t.test('an aborted first backup leaves no group directory', async (t) => {
  const { dir, ds } = await open(t);
  const g = ds.group('vm/100');

  const w1 = await g.backup();
  t.ok(await g.exists(), 'the group directory exists while the first backup runs');
  await w1.abort();
  t.notOk(await g.exists(), 'gone after abort');
  t.same(await vmDirs(ds), [], 'nothing left under vm/');
  t.same(await ds.namespace().groups(), [], 'the group is not listed');

  // With an owner: the owner file the backup wrote goes too.
  const w2 = await g.backup({ owner: 'alice@pam' });
  t.equal(await g.owner(), 'alice@pam');
  await w2.abort();
  t.notOk(await g.exists(), 'an aborted first backup with an owner leaves nothing');

  // A failed addImage (missing source), then abort.
  const w3 = await g.backup();
  await t.rejects(w3.addImage('disk', path.join(dir, 'no-such-disk.raw')));
  await w3.abort();
  t.notOk(await g.exists(), 'after a failed addImage and abort');

  // A failed addTree (missing directory), then abort.
  const w4 = await g.backup();
  await t.rejects(w4.addTree('root', path.join(dir, 'no-such-dir')));
  await w4.abort();
  t.notOk(await g.exists(), 'after a failed addTree and abort');

  // Disposal of an uncommitted writer aborts it the same way.
  {
    await using w5 = await g.backup();
    await w5.addBlob('conf', 'x');
  }
  t.notOk(await g.exists(), 'after disposing an uncommitted writer');

  // The next backup works, and an aborted later backup keeps the group and its snapshot.
  const w6 = await g.backup();
  await w6.addBlob('conf', 'one');
  const first = await w6.commit();
  const w7 = await g.backup();
  await w7.addBlob('conf', 'two');
  await w7.abort();
  t.ok(await g.exists(), 'a group with a snapshot stays');
  t.same(
    (await g.snapshots()).map((s) => s.time),
    [first.time],
    'with its snapshot',
  );
  t.same(await vmDirs(ds), ['100']);
});

t.test('an aborted first backup leaves a group alone that holds something else', async (t) => {
  const { ds } = await open(t);
  const g = ds.group('vm/101');
  const w = await g.backup();
  // Something appears in the group directory that this backup did not write.
  await fsp.writeFile(path.join(ds.root, 'vm', '101', 'notes'), 'written meanwhile');
  await w.abort();
  t.ok(await g.exists(), 'the group directory stays');
  t.equal(await g.notes(), 'written meanwhile', 'with what it holds');
  t.same(await fsp.readdir(path.join(ds.root, 'vm', '101')), ['notes'], 'only the snapshot directory went');
});

t.test('a first backup in a namespace: an abort leaves the namespace and no group', async (t) => {
  const { ds } = await open(t);
  await ds.createNamespace('site');
  const g = ds.group('ct/7', { namespace: 'site' });
  const w = await g.backup();
  await w.abort();
  t.notOk(await g.exists());
  t.same(await ds.namespace('site').groups(), []);
  t.ok(await ds.namespace('site').exists(), 'the namespace stays');
});

t.test('committing a snapshot with no archive is refused; the writer stays usable', async (t) => {
  const { ds } = await open(t);
  const g = ds.group('vm/200');
  const w = await g.backup();
  const err = await w.commit().then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(isCairnError(err, 'ERR_INVALID_ARGUMENT'), 'ERR_INVALID_ARGUMENT');
  t.match((err as Error).message, /no archive/);
  t.match((err as { details: object }).details, { snapshot: w.name });
  t.same(await g.snapshots(), [], 'no snapshot');
  t.same(await fsp.readdir(path.join(ds.root, w.ref.group.type, w.ref.group.id, w.ref.time)), [], 'no manifest written');

  await w.addBlob('conf', 'now with an archive');
  const snap = await w.commit();
  t.same(
    snap.files.map((f) => f.name),
    ['conf.blob'],
    'an archive added after the refusal commits',
  );

  const w2 = await g.backup();
  await t.rejects(w2.commit(), { code: 'ERR_INVALID_ARGUMENT' });
  await w2.abort();
  t.same(
    (await g.snapshots()).map((s) => s.time),
    [snap.time],
    'a refused empty commit can be aborted',
  );
});

t.test('archive names: the same with and without the extension, on write and on read', async (t) => {
  const { dir, ds } = await open(t);
  const image = seededBytes(5 * CS + 100, 3);
  const img = await writeTemp(dir, 'disk.raw', image);
  const src = path.join(dir, 'tree');
  await fsp.mkdir(src);
  await fsp.writeFile(path.join(src, 'hello.txt'), 'hello\n');

  const w = await ds.group('vm/300').backup();
  await w.addImage('drive-scsi0', img);
  await w.addImage('second.img', img);
  await w.addTree('etc', src);
  await w.addBlob('qemu.conf', 'memory: 1024\n');
  await t.rejects(w.addImage('drive-scsi0.img', img), { code: 'ERR_EXISTS' }, 'the same archive by its full name');
  const snap = await w.commit();
  t.same(
    snap.files.map((f) => f.name),
    ['drive-scsi0.img', 'etc.tree', 'qemu.conf.blob', 'second.img'],
    'stored with the extension of their kind',
  );

  await using r = await snap.open();
  for (const name of ['drive-scsi0', 'drive-scsi0.img']) {
    t.equal(r.file(name).name, 'drive-scsi0.img', `file('${name}')`);
    t.equal(snap.archive(name).name, 'drive-scsi0.img', `snapshot.archive('${name}')`);
    t.same(Buffer.from(await r.readAt(name, CS - 10, 20)), Buffer.from(image.subarray(CS - 10, CS + 10)), `readAt('${name}')`);
    t.equal((await r.imageIndex(name)).size, image.byteLength, `imageIndex('${name}')`);
    const out = path.join(dir, `restored-${name}`);
    const st = await r.restore(name, out);
    t.equal(st.bytes, image.byteLength);
    t.same(await fsp.readFile(out), Buffer.from(image), `restore('${name}')`);
    const parts: Buffer[] = [];
    for await (const p of r.stream(name)) parts.push(Buffer.from(p));
    t.same(Buffer.concat(parts), Buffer.from(image), `stream('${name}')`);
  }
  t.equal(r.file('second').name, 'second.img', 'a name given with the extension is found without it');
  for (const name of ['etc', 'etc.tree']) {
    const tree = await r.tree(name);
    t.equal(Buffer.from(await tree.readFile('hello.txt')).toString(), 'hello\n', `tree('${name}')`);
    const out = path.join(dir, `tree-${name}`);
    await r.restoreTree(name, out);
    t.equal(await fsp.readFile(path.join(out, 'hello.txt'), 'utf8'), 'hello\n', `restoreTree('${name}')`);
  }
  for (const name of ['qemu.conf', 'qemu.conf.blob']) {
    t.equal(Buffer.from(await r.readBlob(name)).toString(), 'memory: 1024\n', `readBlob('${name}')`);
    const out = path.join(dir, `blob-${name}`);
    await r.restore(name, out);
    t.equal(await fsp.readFile(out, 'utf8'), 'memory: 1024\n', `restore('${name}')`);
  }
  await t.rejects(r.readBlob('drive-scsi0'), { code: 'ERR_INVALID_ARGUMENT', message: /archive 'drive-scsi0\.img' of .* not a blob/ }, 'a kind mismatch names the stored archive');
  t.throws(() => r.file('nope'), { code: 'ERR_NOT_FOUND', message: /drive-scsi0\.img, etc\.tree, qemu\.conf\.blob, second\.img/ }, 'a missing name lists the archives');
  t.throws(() => r.file('drive'), { code: 'ERR_NOT_FOUND' }, 'a prefix is not a stem');
});

t.test('archive names: a stem shared by two archives is ambiguous, and the error lists both', async (t) => {
  const { dir, ds } = await open(t);
  const img = await writeTemp(dir, 'x.raw', seededBytes(CS, 4));
  const w = await ds.group('vm/301').backup();
  await w.addImage('x', img);
  await w.addBlob('x', 'a blob of the same stem');
  const snap = await w.commit();
  t.same(
    snap.files.map((f) => f.name),
    ['x.blob', 'x.img'],
  );
  await using r = await snap.open();
  for (const lookup of [() => r.file('x'), () => snap.archive('x')]) {
    let err: unknown;
    try {
      lookup();
    } catch (e) {
      err = e;
    }
    t.ok(isCairnError(err, 'ERR_INVALID_ARGUMENT'), 'ERR_INVALID_ARGUMENT');
    t.match((err as Error).message, /ambiguous.*x\.blob, x\.img/);
    t.match((err as { details: object }).details, { archive: 'x', candidates: 'x.blob, x.img', snapshot: snap.name });
  }
  await t.rejects(r.readAt('x', 0, 1), { code: 'ERR_INVALID_ARGUMENT' }, 'readAt refuses it too');
  t.equal(r.file('x.img').kind, 'image', 'the full names work');
  t.equal(Buffer.from(await r.readBlob('x.blob')).toString(), 'a blob of the same stem');
});

t.test('cairn restore finds an archive by the name given to the writer', async (t) => {
  if (!requireBuilt(t)) return;
  const { dir, ds } = await open(t);
  const image = seededBytes(2 * CS + 7, 5);
  const img = await writeTemp(dir, 'disk.raw', image);
  const w = await ds.group('vm/302').backup();
  await w.addImage('drive-scsi0', img);
  await w.commit();
  await ds.close();
  const out = path.join(dir, 'out.raw');
  const r = await cairn(['--store', ds.root, 'restore', 'vm/302', 'drive-scsi0', out]);
  t.equal(r.code, 0, r.err);
  t.same(await fsp.readFile(out), Buffer.from(image), 'restored by its stem');
});

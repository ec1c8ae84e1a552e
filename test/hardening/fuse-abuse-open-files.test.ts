// The FUSE view attacked (issue 12): a file held open on a whole-datastore mount (`cairn mount` of
// the datastore, a short --idle-close) keeps its snapshot open and locked past the idle timeout, as
// a VM running from a mounted image needs: forget fails with ERR_LOCKED (exit 4), gc takes none of
// its chunks (aged past the cutoff), the child's next reads return the right bytes; once the file
// is closed and the timeout passed, forget works. The same for a file of a tree archive.
import t from 'tap';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { Datastore } from '../../lib/index.js';
import { seededBytes } from '../helpers/fixtures.js';
import { Holder, canMount, mountCli as mount, openDir, sha } from '../helpers/fuse-cli.js';
import { cairn, requireBuilt } from '../cli/run-cli.js';

const J = path.join;
const CS = 64 * 1024;

t.test('a file held open on a datastore mount keeps its snapshot locked past the idle timeout', { skip: canMount ? false : 'needs root and /dev/fuse' }, async (t) => {
  if (!requireBuilt(t)) return;
  const dir = openDir(t, 'cairn-fuse-hold-');
  const image = seededBytes(64 * CS + 77, 11);
  await fsp.writeFile(J(dir, 'disk.raw'), image);
  const store = J(dir, 'store');
  const ds = await Datastore.create(store, { imageChunkSize: CS, syncLevel: 'none', threads: 1 });
  let time: string;
  try {
    const w = await ds.group('vm/300').backup();
    await w.addImage('disk', J(dir, 'disk.raw'));
    await fsp.mkdir(J(dir, 'files'));
    await fsp.writeFile(J(dir, 'files', 'big'), image.subarray(0, 2 * 1024 * 1024));
    await w.addTree('root', J(dir, 'files'));
    time = (await w.commit()).time;
  } finally {
    await ds.close();
  }
  const mnt = J(dir, 'mnt');
  await mount(t, ['--store', store, 'mount', mnt, '--idle-close', '0.3'], mnt);
  const file = J(mnt, 'vm', '300', time, 'disk.img');
  const holder = new Holder(file);
  t.teardown(() => holder.end());
  t.equal(await holder.send('read 0 4096'), sha(image.subarray(0, 4096)), 'the child opened the image and read its start');
  await new Promise((r) => setTimeout(r, 1500));
  const f = await cairn(['--store', store, '--json', 'forget', `vm/300/${time}`]);
  t.equal(f.code, 4, 'forget of the snapshot with an open file fails (exit 4)', { stdout: f.out, stderr: f.err });
  t.match(f.err, /ERR_LOCKED/);
  // Age every chunk past GC's cutoff, so that a GC would take them if the snapshot were gone.
  const old = new Date(Date.now() - 3600_000);
  let chunks = 0;
  for (const shard of await fsp.readdir(J(store, '.chunks'))) {
    for (const c of await fsp.readdir(J(store, '.chunks', shard))) {
      await fsp.utimes(J(store, '.chunks', shard, c), old, old);
      chunks++;
    }
  }
  t.ok(chunks > 60, `${chunks} chunks aged`);
  const g = await cairn(['--store', store, '--json', 'gc']);
  t.equal(g.code, 0, 'gc runs', { stderr: g.err });
  t.equal((JSON.parse(g.out || '{}') as { removedChunks?: number }).removedChunks, 0, 'gc removes nothing of it');
  for (const [off, len] of [
    [40 * CS + 3, 3 * CS],
    [image.byteLength - 1000, 1000],
    [17 * CS, 5],
  ] as const) {
    t.equal(await holder.send(`read ${off} ${len}`), sha(image.subarray(off, off + len)), `the next read at ${off} returns the right bytes`);
  }

  // A file of a tree archive holds its snapshot the same way.
  const treeHolder = new Holder(J(mnt, 'vm', '300', time, 'root.tree', 'big'));
  t.teardown(() => treeHolder.end());
  t.equal(await treeHolder.send('read 0 100'), sha(image.subarray(0, 100)), 'a child opened a file of the tree');
  t.equal(await holder.send('close'), 'closed', 'the image is closed');
  await new Promise((r) => setTimeout(r, 1500));
  const f1 = await cairn(['--store', store, '--json', 'forget', `vm/300/${time}`]);
  t.equal(f1.code, 4, 'the open tree file still holds the snapshot', { stderr: f1.err });
  t.equal(await treeHolder.send(`read ${1024 * 1024 + 5} 70000`), sha(image.subarray(1024 * 1024 + 5, 1024 * 1024 + 5 + 70000)), 'and reads the right bytes');
  t.equal(await treeHolder.send('close'), 'closed');
  await new Promise((r) => setTimeout(r, 1500));
  const f2 = await cairn(['--store', store, '--json', 'forget', `vm/300/${time}`]);
  t.equal(f2.code, 0, 'once closed and idle, forget works', { stderr: f2.err });
});

// Datastore files and directories are not readable by other users (issue 7), whatever the umask:
// every directory is 0750 or stricter, and no file outside a closed directory grants others access;
// and nothing anywhere in the datastore, lock tree and catalog included, is group- or world-writable (issue 12).
import t from 'tap';
import { lstatSync, readdirSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Catalog, Datastore, GarbageCollector } from '../../lib/index.js';
import { seededBytes, tempDir, writeTemp } from '../helpers/fixtures.js';

/** Files and directories anywhere under `root` that the group or others may write to (issue 12: the catalog's LevelDB files were 0666). */
function writableByOthers(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string, rel: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      const r = rel === '' ? e.name : `${rel}/${e.name}`;
      if (e.isSymbolicLink()) continue;
      const st = lstatSync(p);
      if ((st.mode & 0o022) !== 0) out.push(`${r} ${(st.mode & 0o777).toString(8)}`);
      if (e.isDirectory()) walk(p, r);
    }
  };
  walk(root, '');
  return out;
}

/** Entries under `root` that other users can reach and read: `o` bits on a path whose directories all grant `o+x`. */
function openToOthers(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string, rel: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      const r = rel === '' ? e.name : `${rel}/${e.name}`;
      const st = lstatSync(p);
      if (e.isSymbolicLink()) continue;
      if ((st.mode & 0o007) !== 0) out.push(`${r} ${(st.mode & 0o777).toString(8)}`);
      if (e.isDirectory() && (st.mode & 0o001) !== 0) walk(p, r);
    }
  };
  const st = lstatSync(root);
  if ((st.mode & 0o007) !== 0) out.push(`. ${(st.mode & 0o777).toString(8)}`);
  if ((st.mode & 0o001) !== 0) walk(root, '');
  return out;
}

t.test('after create, backups, notes, a catalog and a GC, under umask 022 and 000', async (t) => {
  for (const mask of [0o022, 0o000]) {
    const old = process.umask(mask);
    try {
      const dir = tempDir(t);
      const ds = await Datastore.create(path.join(dir, 'store'), { syncLevel: 'none', threads: 1 });
      try {
        const img = await writeTemp(dir, 'img', seededBytes(300_000, 5));
        const tree = path.join(dir, 'tree');
        await mkdir(tree);
        await writeFile(path.join(tree, 'secret.txt'), 'the paths and names are private too\n');
        const w = await ds.group('host/1').backup();
        await w.addImage('disk', img);
        await w.addTree('root', tree);
        await w.addBlob('conf', 'x');
        const snap = await w.commit();
        await snap.setNotes('notes');
        await ds.group('host/1').setNotes('group notes');
        await ds.createNamespace('n');
        const cat = await Catalog.open(ds);
        await cat.update();
        t.ok((await cat.findPath('secret.txt')).length === 1, 'the catalog is in use');
        const w2 = await ds.group('host/1').backup();
        await w2.addTree('root', tree);
        await w2.commit();
        await cat.update();
        t.same(writableByOthers(path.join(dir, 'store')), [], `umask ${mask.toString(8)}: nothing writable by group or others while the catalog is open`);
        await cat.close();
        t.equal(process.umask(mask), mask, 'the umask is put back when the catalog closes');
        await new GarbageCollector(ds).run({ skewMs: 0 });
        // A registered writer and a moved group: the lock tree's files too.
        await ds.createNamespace('m');
        await ds.moveGroup('host/1', { to: 'm' });
        const w3 = await ds.group('host/2').backup();
        t.same(writableByOthers(path.join(dir, 'store')), [], `umask ${mask.toString(8)}: nothing writable during a backup`);
        await w3.abort();
      } finally {
        await ds.close();
      }
      t.same(openToOthers(path.join(dir, 'store')), [], `umask ${mask.toString(8)}: nothing readable by others`);
      t.same(writableByOthers(path.join(dir, 'store')), [], `umask ${mask.toString(8)}: nothing writable by group or others`);
    } finally {
      process.umask(old);
    }
  }
});

// The FUSE view attacked (issue 12): permissions. A snapshot and a datastore are mounted by `cairn
// mount --allow-other` (as root) and read by a second user (nobody, uid 65534) from child
// processes: the archive's modes and owners apply (default_permissions); images and blobs are the
// mounting user's, 0400 unless --image-mode opens them; a datastore mount's own directories
// (namespaces, types, groups, snapshots) are the mounting user's, 0500 unless --dir-mode opens them.
import t from 'tap';
import { mkdirSync, promises as fsp } from 'node:fs';
import path from 'node:path';
import { Datastore } from '../../lib/index.js';
import { seededBytes } from '../helpers/fixtures.js';
import { ACCESS, NOBODY, canMount, mountCli as mount, openDir, probe, sha } from '../helpers/fuse-cli.js';
import { cairn, requireBuilt } from '../cli/run-cli.js';

const J = path.join;
const CS = 64 * 1024;

t.test('--allow-other: a second user sees only what the archive lets it see', { skip: canMount ? false : 'needs root and /dev/fuse' }, async (t) => {
  if (!requireBuilt(t)) return;
  const dir = openDir(t, 'cairn-fuse-perm-');
  const src = J(dir, 'src');
  mkdirSync(J(src, 'private'), { recursive: true });
  mkdirSync(J(src, 'pubdir'));
  await fsp.writeFile(J(src, 'secret'), 'root only\n');
  await fsp.chmod(J(src, 'secret'), 0o600);
  await fsp.writeFile(J(src, 'public'), 'for everyone\n');
  await fsp.chmod(J(src, 'public'), 0o644);
  await fsp.writeFile(J(src, 'private', 'inner'), 'inside a 0700 directory\n');
  await fsp.chmod(J(src, 'private', 'inner'), 0o644);
  await fsp.chmod(J(src, 'private'), 0o700);
  await fsp.writeFile(J(src, 'pubdir', 'x'), 'x');
  await fsp.chmod(J(src, 'pubdir'), 0o755);
  await fsp.writeFile(J(src, 'nobodys'), 'owned by nobody, 0600\n');
  await fsp.chmod(J(src, 'nobodys'), 0o600);
  await fsp.chown(J(src, 'nobodys'), NOBODY, NOBODY);
  const image = seededBytes(8 * CS + 5, 3);
  await fsp.writeFile(J(dir, 'disk.raw'), image);
  const store = J(dir, 'store');
  const ds = await Datastore.create(store, { imageChunkSize: CS, syncLevel: 'none', threads: 1 });
  let time: string;
  try {
    const w = await ds.group('vm/100').backup();
    await w.addTree('root', src);
    await w.addImage('disk', J(dir, 'disk.raw'));
    await w.addBlob('conf', 'password: hunter2\n');
    time = (await w.commit()).time;
  } finally {
    await ds.close();
  }

  const mnt = J(dir, 'mnt');
  await mount(t, ['--store', store, 'mount', `vm/100/${time}`, mnt, '--allow-other'], mnt);
  const r = J(mnt, 'root.tree');
  const probes = [
    `read:${J(r, 'secret')}`,
    `read:${J(r, 'public')}`,
    `list:${J(r, 'private')}`,
    `read:${J(r, 'private', 'inner')}`,
    `list:${J(r, 'pubdir')}`,
    `read:${J(r, 'nobodys')}`,
    `read:${J(mnt, 'disk.img')}`,
    `read:${J(mnt, 'conf.blob')}`,
    `stat:${J(mnt, 'disk.img')}`,
    `stat:${J(mnt, 'conf.blob')}`,
    `list:${mnt}`,
  ];
  const asNobody = probe<Record<string, unknown>>(ACCESS, probes, NOBODY);
  t.equal(asNobody[probes[0]!], 'EACCES', 'a 0600 root file of the tree is EACCES for nobody');
  t.equal(asNobody[probes[1]!], sha(Buffer.from('for everyone\n')), 'a 0644 file is readable');
  t.equal(asNobody[probes[2]!], 'EACCES', 'a 0700 root directory is not listable');
  t.equal(asNobody[probes[3]!], 'EACCES', 'nor can a file below it be read');
  t.same(asNobody[probes[4]!], ['x'], 'a 0755 directory is listable');
  t.equal(asNobody[probes[5]!], sha(Buffer.from('owned by nobody, 0600\n')), "a 0600 file owned by nobody is nobody's to read");
  t.equal(asNobody[probes[6]!], 'EACCES', 'an image is not readable by others by default');
  t.equal(asNobody[probes[7]!], 'EACCES', 'nor is a blob');
  t.same(asNobody[probes[8]!], { mode: 0o400, uid: 0, gid: 0 }, 'an image belongs to the mounting user, mode 0400');
  t.same(asNobody[probes[9]!], { mode: 0o400, uid: 0, gid: 0 }, 'a blob too');
  t.same(asNobody[probes[10]!], ['conf.blob', 'disk.img', 'root.tree'], 'the archive names are listed');
  const writable = [`writable:${J(r, 'public')}`, `writable:${r}`, `writable:${mnt}`, `writable:${J(mnt, 'disk.img')}`];
  const asRoot = probe<Record<string, unknown>>(ACCESS, [...probes.slice(0, 8), ...writable], 0);
  t.equal(asRoot[probes[0]!], sha(Buffer.from('root only\n')), 'root still reads everything');
  t.equal(asRoot[probes[6]!], sha(image));
  for (const w of writable) t.equal(asRoot[w], 'EROFS', `access(W_OK) is EROFS for root too (${w.slice(9 + dir.length)})`);

  const mnt2 = J(dir, 'mnt-open');
  await mount(t, ['--store', store, 'mount', `vm/100/${time}`, mnt2, '--allow-other', '--image-mode', '0444'], mnt2);
  const open = probe<Record<string, unknown>>(ACCESS, [`read:${J(mnt2, 'disk.img')}`, `stat:${J(mnt2, 'disk.img')}`, `read:${J(mnt2, 'root.tree', 'secret')}`], NOBODY);
  t.equal(open[`read:${J(mnt2, 'disk.img')}`], sha(image), 'with --image-mode 0444 nobody reads the image');
  t.same(open[`stat:${J(mnt2, 'disk.img')}`], { mode: 0o444, uid: 0, gid: 0 });
  t.equal(open[`read:${J(mnt2, 'root.tree', 'secret')}`], 'EACCES', 'the tree keeps its own modes');

  const badMnt = J(dir, 'mnt-bad');
  mkdirSync(badMnt);
  const bad = await cairn(['--store', store, 'mount', `vm/100/${time}`, badMnt, '--image-mode', '0666', '--daemon']);
  if (bad.code === 0) await cairn(['umount', badMnt]);
  t.equal(bad.code, 2, '--image-mode with write bits is refused');
  t.match(bad.err, /ERR_INVALID_ARGUMENT/);

  // A whole-datastore mount: its own directories (namespaces, types, groups, snapshots) are the
  // mounting user's, 0500 unless --dir-mode opens them.
  const mnt3 = J(dir, 'mnt-ds');
  await mount(t, ['--store', store, 'mount', mnt3, '--allow-other'], mnt3);
  const snapDir = J(mnt3, 'vm', '100', time);
  const ds1 = probe<Record<string, unknown>>(ACCESS, [`list:${mnt3}`, `stat:${mnt3}`, `read:${J(snapDir, 'root.tree', 'public')}`], NOBODY);
  t.equal(ds1[`list:${mnt3}`], 'EACCES', 'nobody cannot list the datastore mount');
  t.same(ds1[`stat:${mnt3}`], { mode: 0o500, uid: 0, gid: 0 });
  t.equal(ds1[`read:${J(snapDir, 'root.tree', 'public')}`], 'EACCES', 'nor reach into it');
  const dsRoot = probe<Record<string, unknown>>(ACCESS, [`list:${J(mnt3, 'vm', '100')}`], 0);
  t.same(dsRoot[`list:${J(mnt3, 'vm', '100')}`], [time, 'latest'].sort(), 'the mounting user lists it');
  const mnt4 = J(dir, 'mnt-ds-open');
  await mount(t, ['--store', store, 'mount', mnt4, '--allow-other', '--dir-mode', '0555'], mnt4);
  const snapDir4 = J(mnt4, 'vm', '100', time);
  const ds2 = probe<Record<string, unknown>>(
    ACCESS,
    [
      `list:${J(mnt4, 'vm', '100')}`,
      `read:${J(snapDir4, 'root.tree', 'public')}`,
      `read:${J(snapDir4, 'root.tree', 'secret')}`,
      `read:${J(snapDir4, 'disk.img')}`,
      `read:${J(mnt4, 'vm', '100', 'latest', 'root.tree', 'public')}`,
    ],
    NOBODY,
  );
  t.same(ds2[`list:${J(mnt4, 'vm', '100')}`], [time, 'latest'].sort(), 'with --dir-mode 0555 nobody lists the groups and snapshots');
  t.equal(ds2[`read:${J(snapDir4, 'root.tree', 'public')}`], sha(Buffer.from('for everyone\n')));
  t.equal(ds2[`read:${J(snapDir4, 'root.tree', 'secret')}`], 'EACCES', 'the tree keeps its own modes');
  t.equal(ds2[`read:${J(snapDir4, 'disk.img')}`], 'EACCES', 'and images their own (0400 without --image-mode)');
  t.equal(ds2[`read:${J(mnt4, 'vm', '100', 'latest', 'root.tree', 'public')}`], sha(Buffer.from('for everyone\n')), 'latest leads there too');
});

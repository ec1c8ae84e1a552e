// A restore to a path whose last component is a dangling symlink (planted by whoever owns the
// directory) must not create the link's target: that would let them choose where a new file of
// the snapshot's content appears (a root restore into a user's directory writing /etc/cron.d/x).
// A link to an existing regular file is written through, as cp does; the link stays.
import t from 'tap';
import { promises as fsp, existsSync } from 'node:fs';
import path from 'node:path';
import { Datastore } from '../../lib/index.js';
import { seededBytes, tempDir, writeTemp } from '../helpers/fixtures.js';

t.test('restore to a dangling symlink is refused; to a link to a file writes the file', async (t) => {
  const dir = tempDir(t);
  const ds = await Datastore.create(path.join(dir, 'store'), { syncLevel: 'none', threads: 0 });
  t.teardown(() => ds.close());
  const content = seededBytes(300_000, 3);
  const w = await ds.group('vm/1').backup();
  await w.addImage('disk', await writeTemp(dir, 'disk.raw', content));
  await w.addBlob('conf', 'cores: 2\n');
  const snap = await w.commit();
  const r = await snap.open();
  t.teardown(() => r.close());
  const outside = path.join(dir, 'outside');
  const target = path.join(dir, 'user-dir');
  await fsp.mkdir(outside);
  await fsp.mkdir(target);
  for (const archive of ['disk.img', 'conf.blob']) {
    const link = path.join(target, `${archive}-link`);
    await fsp.symlink(path.join(outside, `${archive}-planted`), link);
    await t.rejects(r.restore(archive, link), { code: 'ERR_UNSAFE_PATH' }, `${archive}: a dangling symlink is refused`);
    await t.rejects(r.restore(archive, link, { overwrite: true }), { code: 'ERR_UNSAFE_PATH' }, `${archive}: also with overwrite`);
    t.notOk(existsSync(path.join(outside, `${archive}-planted`)), `${archive}: nothing created where the link points`);
    t.same((await fsp.readdir(target)).sort(), [`${archive}-link`].concat(archive === 'conf.blob' ? ['disk.img-link'] : []).sort(), `${archive}: no temp file left`);
  }
  // A link to an existing file: --overwrite replaces that file's content, the link stays a link.
  const real = path.join(outside, 'real.raw');
  await fsp.writeFile(real, 'old');
  const link = path.join(target, 'to-real');
  await fsp.symlink(real, link);
  await r.restore('disk.img', link, { overwrite: true });
  t.ok((await fsp.lstat(link)).isSymbolicLink(), 'the link stays');
  t.same(new Uint8Array(await fsp.readFile(real)), content, 'the file it points at holds the image');
});

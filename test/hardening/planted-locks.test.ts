// Lock files live in the datastore's lock tree and are created on first use. A symlink planted
// there must not make a lock create or open a file outside the datastore, and a FIFO must not
// hang it: both are reported (ERR_UNSAFE_PATH), and nothing outside is created or touched.
import t from 'tap';
import { promises as fsp, existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { Datastore } from '../../lib/index.js';
import { groupLockKey } from '../../lib/datastore/layout.js';
import { tempDir } from '../helpers/fixtures.js';

t.test('a planted lock file is refused, never followed', async (t) => {
  const dir = tempDir(t);
  const ds = await Datastore.create(path.join(dir, 'store'), { syncLevel: 'none', threads: 0 });
  t.teardown(() => ds.close());
  const lock = path.join(ds.root, groupLockKey([], { type: 'vm', id: '1' }));
  await fsp.mkdir(path.dirname(lock), { recursive: true });
  const outside = path.join(dir, 'outside');
  await fsp.mkdir(outside);
  const plants: [string, () => Promise<void>][] = [
    ['a dangling symlink to a file outside', () => fsp.symlink(path.join(outside, 'created-by-a-lock'), lock)],
    [
      'a symlink to a file outside',
      async () => {
        await fsp.writeFile(path.join(outside, 'existing'), 'x', { mode: 0o600 });
        await fsp.symlink(path.join(outside, 'existing'), lock);
      },
    ],
    [
      'a FIFO',
      async () => {
        execFileSync('mkfifo', [lock]);
      },
    ],
    ['a directory', () => fsp.mkdir(lock)],
  ];
  for (const [what, plant] of plants) {
    await fsp.rm(lock, { recursive: true, force: true });
    await plant();
    const t0 = Date.now();
    await t.rejects(ds.group('vm/1').backup(), { code: 'ERR_UNSAFE_PATH', message: /lock file/ }, what);
    t.ok(Date.now() - t0 < 5000, `${what}: refused at once`);
  }
  t.notOk(existsSync(path.join(outside, 'created-by-a-lock')), 'no file was created outside');
  t.equal((await fsp.stat(path.join(outside, 'existing'))).mode & 0o777, 0o600);
  t.equal(await fsp.readFile(path.join(outside, 'existing'), 'utf8'), 'x');
  // Once the planted entry is gone, backups work again.
  await fsp.rm(lock, { recursive: true, force: true });
  const w = await ds.group('vm/1').backup();
  await w.addBlob('conf', 'ok');
  await w.commit();
  t.equal((await ds.group('vm/1').snapshots()).length, 1);
});

// Faults at the file-system calls of a backup (issue 7): every run ends with success or a coded
// error, and the datastore stays whole (test/helpers/faults.ts). CAIRN_FAULT_SITES=all for every site.
import t from 'tap';
import { tempDir } from '../helpers/fixtures.js';
import { T1, T2, T3, makeTemplate, rfc, sweep } from '../helpers/faults.js';
import { requireBuilt } from '../cli/run-cli.js';

t.setTimeout(600_000);
if (requireBuilt(t)) {
  const dir = tempDir(t, 'cairn-faults-');
  const tpl = await makeTemplate(dir);
  const archives = [`disk.img:${tpl.v3.img}`, `root.tree:${tpl.v3.tree}`, `conf.blob:${tpl.v3.blob}`];

  t.test('an incremental backup (image, tree, blob)', (t) =>
    sweep(t, tpl, dir, {
      args: (store) => ['--store', store, 'backup', 'host/1', ...archives, '--time', rfc(T3)],
      expect: { must: [T1, T2], may: [T3], onSuccess: [T3] },
    }),
  );

  t.test('a first backup of a new group in another namespace', (t) =>
    sweep(t, tpl, dir, {
      args: (store) => ['--store', store, '--ns', 'b', 'backup', 'vm/2', ...archives, '--time', rfc(T3)],
      expect: { must: [T1, T2], may: [T3], onSuccess: [T3] },
    }),
  );
}

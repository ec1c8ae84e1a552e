// Faults at the file-system calls of verify, prune, forget and garbage collection (issue 7).
import t from 'tap';
import { Datastore } from '../../lib/index.js';
import { tempDir } from '../helpers/fixtures.js';
import { T1, T2, makeTemplate, rfc, sweep } from '../helpers/faults.js';
import { requireBuilt } from '../cli/run-cli.js';

t.setTimeout(600_000);
if (requireBuilt(t)) {
  const dir = tempDir(t, 'cairn-faults-');
  const tpl = await makeTemplate(dir);

  t.test('verify (writes the verify state into every manifest)', (t) => sweep(t, tpl, dir, { args: (store) => ['--store', store, 'verify'], expect: { must: [T1, T2], may: [] } }));

  t.test('prune --keep-last 1', (t) => sweep(t, tpl, dir, { args: (store) => ['--store', store, 'prune', 'host/1', '--keep-last', '1'], expect: { must: [T2], may: [T1] } }));

  t.test('forget one snapshot', (t) => sweep(t, tpl, dir, { args: (store) => ['--store', store, 'forget', `host/1/${rfc(T1)}`], expect: { must: [T2], may: [T1] } }));

  t.test('garbage collection with chunks to remove', (t) =>
    sweep(t, tpl, dir, {
      prepare: async (store) => {
        const ds = await Datastore.open(store, { threads: 0 });
        try {
          await (await ds.snapshot(`host/1/${rfc(T1)}`)).remove();
        } finally {
          await ds.close();
        }
      },
      args: (store) => ['--store', store, 'gc', '--skew', '0'],
      expect: { must: [T2], may: [] },
    }),
  );
}

// Faults at the file-system calls of moves and manifest updates (issue 7).
import t from 'tap';
import { tempDir } from '../helpers/fixtures.js';
import { T1, T2, makeTemplate, rfc, sweep } from '../helpers/faults.js';
import { requireBuilt } from '../cli/run-cli.js';

t.setTimeout(600_000);
if (requireBuilt(t)) {
  const dir = tempDir(t, 'cairn-faults-');
  const tpl = await makeTemplate(dir);

  t.test('moving a group to another namespace', (t) =>
    sweep(t, tpl, dir, { args: (store) => ['--store', store, 'group', 'move', 'host/1', '--target-ns', 'b'], expect: { must: [T1, T2], may: [] } }),
  );

  t.test('protecting a snapshot (a manifest update)', (t) =>
    sweep(t, tpl, dir, { args: (store) => ['--store', store, 'protect', `host/1/${rfc(T1)}`], expect: { must: [T1, T2], may: [] } }),
  );

  t.test('setting notes of a snapshot and of a group', (t) =>
    sweep(t, tpl, dir, { args: (store) => ['--store', store, 'notes', `host/1/${rfc(T2)}`, 'checked by the fault test'], expect: { must: [T1, T2], may: [] } }),
  );
}

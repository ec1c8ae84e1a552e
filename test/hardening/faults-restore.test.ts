// Faults at the file-system calls of restores (issue 7): a restore that meets ENOSPC, EIO, EACCES
// or a short write on its target ends with a coded error, and the datastore is untouched.
import t from 'tap';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import { tempDir } from '../helpers/fixtures.js';
import { T1, T2, makeTemplate, sweep } from '../helpers/faults.js';
import { requireBuilt } from '../cli/run-cli.js';

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

t.setTimeout(600_000);
if (requireBuilt(t)) {
  const dir = tempDir(t, 'cairn-faults-');
  const tpl = await makeTemplate(dir);
  const want = tpl.expected.get(T2)!;

  t.test('restore of an image to a file', (t) =>
    sweep(t, tpl, dir, {
      args: (store, run) => {
        mkdirSync(run, { recursive: true });
        return ['--store', store, 'restore', 'host/1', 'disk.img', path.join(run, 'disk.img')];
      },
      expect: { must: [T1, T2], may: [] },
      checkSuccess: (t, run) => {
        t.equal(sha(readFileSync(path.join(run, 'disk.img'))), want.img, 'restored image identical');
      },
    }),
  );

  t.test('restore of a tree archive', (t) =>
    sweep(t, tpl, dir, {
      args: (store, run) => ['--store', store, 'restore', 'host/1', 'root.tree', run],
      expect: { must: [T1, T2], may: [] },
      checkSuccess: (t, run) => {
        const got: Record<string, string> = {};
        for (const rel of Object.keys(want.tree)) {
          const p = path.join(run, rel);
          got[rel] = want.tree[rel]!.startsWith('symlink:') ? `symlink:${readlinkSync(p)}` : sha(readFileSync(p));
        }
        t.same(got, want.tree, 'restored tree identical');
      },
    }),
  );
}

// Names that look like temp files (issue 12): committed archives, groups and namespaces whose legal
// names contain `.tmp-` survive a GC with skew 0 (the stale-temp cleanup used to match the
// substring and deleted them); temp files as a killed writer leaves them are still removed.
import t from 'tap';
import { existsSync, mkdirSync, readFileSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { tempDir } from '../helpers/fixtures.js';
import { cairn, requireBuilt } from '../cli/run-cli.js';
import { tempFileName, isTempFileName } from '../../lib/util/temp-name.js';
import { cliStore } from '../helpers/cli-store.js';

t.setTimeout(120_000);

const T1 = '2026-01-01T00:00:00Z';

t.test('the recogniser', async (t) => {
  for (const n of [tempFileName('manifest.blob'), tempFileName('a'.repeat(64)), '.x.tmp-1-2', '..gc-status.json.tmp-77-3']) t.ok(isTempFileName(n), `temp: ${n}`);
  for (const n of [
    'disk.tmp-1.img.fidx',
    'vm.tmp-config.blob',
    'x.tmp-9.tree.meta.didx',
    'a.tmp-1-2',
    '.protected',
    '.move-target',
    '.gc-status.json',
    `${'a'.repeat(64)}.0.bad`,
    `${'a'.repeat(64)}.gc-12`,
    '.x.tmp-',
    '.x.tmp-1',
    '.x.tmp-1-2x',
  ]) {
    t.notOk(isTempFileName(n), `committed: ${n}`);
  }
});

if (requireBuilt(t)) {
  const dir = tempDir(t, 'cairn-tmpnames-');

  t.test('names with .tmp- survive GC; temp files of a killed writer do not', async (t) => {
    const { s, src } = await cliStore(t, dir, 'tmpnames');
    t.equal((await cairn(['--store', s, 'ns', 'create', 'n.tmp-2'])).code, 0, 'namespace n.tmp-2');
    const archives = [`disk.tmp-1.img:${path.join(src, 'disk.raw')}`, `vm.tmp-config.blob:${path.join(src, 'vm.conf')}`, `x.tmp-9.tree:${path.join(src, 'tree')}`];
    for (const ns of ['', 'n.tmp-2']) {
      const r = await cairn(['--store', s, ...(ns ? ['--ns', ns] : []), 'backup', 'host/g.tmp-3', ...archives, '--time', T1]);
      t.equal(r.code, 0, `backup in '${ns}': ${r.err}`);
    }
    // Temp files as a killed writer leaves them: a manifest, a chunk, the GC status, a group's notes.
    const snapDir = path.join(s, 'host', 'g.tmp-3', T1);
    const shard = path.join(s, '.chunks', 'ab');
    const planted = [
      path.join(snapDir, tempFileName('manifest.blob')),
      path.join(shard, tempFileName('ab'.repeat(32))),
      path.join(s, tempFileName('.gc-status.json')),
      path.join(s, 'host', 'g.tmp-3', tempFileName('notes')),
    ];
    const old = Date.now() / 1000 - 86_400;
    for (const p of planted) {
      writeFileSync(p, 'partial');
      utimesSync(p, old, old);
    }
    // Old files with .tmp- in their names, everywhere the GC looks: legal names, kept.
    const before = readdirSync(snapDir).sort();
    for (const f of before) utimesSync(path.join(snapDir, f), old, old);
    const gc = await cairn(['--store', s, 'gc', '--skew', '0']);
    t.equal(gc.code, 0, `gc: ${gc.err}`);
    t.same(
      readdirSync(snapDir).sort(),
      before.filter((f) => !planted.includes(path.join(snapDir, f))),
      'only the temp file left the snapshot directory',
    );
    for (const p of planted) t.notOk(existsSync(p), `removed: ${path.relative(s, p)}`);
    for (const ns of ['', 'n.tmp-2']) {
      const nsArgs = ns ? ['--ns', ns] : [];
      const out = path.join(dir, `tmpnames-out-${ns || 'root'}`);
      mkdirSync(out);
      let r = await cairn(['--store', s, ...nsArgs, 'restore', 'host/g.tmp-3', 'disk.tmp-1.img', path.join(out, 'disk')]);
      t.equal(r.code, 0, `restore image (${ns}): ${r.err}`);
      t.same(readFileSync(path.join(out, 'disk')), readFileSync(path.join(src, 'disk.raw')), 'image content');
      r = await cairn(['--store', s, ...nsArgs, 'restore', 'host/g.tmp-3', 'vm.tmp-config.blob', path.join(out, 'conf')]);
      t.equal(r.code, 0, `restore blob (${ns}): ${r.err}`);
      t.equal(readFileSync(path.join(out, 'conf'), 'utf8'), 'cores: 2\n', 'blob content');
      r = await cairn(['--store', s, ...nsArgs, 'restore', 'host/g.tmp-3', 'x.tmp-9.tree', path.join(out, 'tree')]);
      t.equal(r.code, 0, `restore tree (${ns}): ${r.err}`);
      t.same(readFileSync(path.join(out, 'tree', 'sub', 'f')), readFileSync(path.join(src, 'tree', 'sub', 'f')), 'tree content');
    }
    const v = await cairn(['--store', s, 'verify']);
    t.equal(v.code, 0, `verify: ${v.err}`);
    const gc2 = await cairn(['--store', s, 'gc', '--skew', '0']);
    t.equal(gc2.code, 0, `a second gc runs: ${gc2.err}`);
  });
}

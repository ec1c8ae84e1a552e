import t from 'tap';
import path from 'node:path';
import { tempDir, writeTemp } from '../helpers/fixtures.js';
import { cairn, requireBuilt } from './run-cli.js';

if (requireBuilt(t)) {
  t.test('namespaces', async (t) => {
    const dir = tempDir(t, 'cairn-cli-');
    const store = path.join(dir, 'store');
    const S = ['--store', store];
    t.equal((await cairn(['init', store, '--sync-level', 'none'])).code, 0);
    const blob = await writeTemp(dir, 'c.conf', new TextEncoder().encode('hello'));

    const c1 = await cairn([...S, 'ns', 'create', 'site-a']);
    t.equal(c1.code, 0, c1.err);
    t.match(c1.out, /created namespace site-a/);
    t.equal((await cairn([...S, 'ns', 'create', 'site-a/rack1'])).code, 0);
    t.equal((await cairn([...S, 'ns', 'create', 'site-b'])).code, 0);
    const dup = await cairn([...S, 'ns', 'create', 'site-a']);
    t.equal(dup.code, 2, 'existing namespace: exit 2');
    t.match(dup.err, /ERR_EXISTS/);
    const orphan = await cairn([...S, 'ns', 'create', 'nope/child']);
    t.equal(orphan.code, 3, 'missing parent: exit 3');
    const badName = await cairn([...S, 'ns', 'create', '../evil']);
    t.equal(badName.code, 2, 'invalid name: exit 2');
    t.match(badName.err, /ERR_INVALID_NAME/);

    const list = await cairn([...S, '--json', 'ns', 'list']);
    t.equal(list.code, 0);
    const paths = (JSON.parse(list.out) as { path: string; depth: number }[]).map((n) => n.path);
    t.same(paths.sort(), ['', 'site-a', 'site-a/rack1', 'site-b']);
    const text = await cairn([...S, 'ns', 'list']);
    t.match(text.out, /\(root\)/);
    const shallow = await cairn([...S, '--json', 'ns', 'list', '--max-depth', '1']);
    t.notOk(
      (JSON.parse(shallow.out) as { path: string }[]).some((n) => n.path === 'site-a/rack1'),
      '--max-depth 1',
    );
    const below = await cairn([...S, '--json', 'ns', 'list', 'site-a']);
    t.ok(
      (JSON.parse(below.out) as { path: string }[]).some((n) => n.path === 'site-a/rack1'),
      'list below a parent',
    );

    const b = await cairn([...S, '--ns', 'site-a', 'backup', 'host/web', `conf.blob:${blob}`, '--time', '2026-03-01T00:00:00Z']);
    t.equal(b.code, 0, b.err);
    t.match(b.out, /in namespace site-a/);
    const inNs = await cairn([...S, '--ns', 'site-a', '--json', 'snapshots']);
    const nsSnaps = JSON.parse(inNs.out) as { namespace: string; type: string; id: string }[];
    t.equal(nsSnaps.length, 1);
    t.equal(nsSnaps[0]!.namespace, 'site-a');
    const inRoot = await cairn([...S, 'snapshots']);
    t.equal(inRoot.out.trim(), 'no snapshots', 'the root namespace does not see it');
    const restored = await cairn([...S, '--ns', 'site-a', 'restore', 'host/web', 'conf.blob', '-']);
    t.equal(restored.out, 'hello');
    const missingNs = await cairn([...S, '--ns', 'site-z', 'backup', 'host/web', `conf.blob:${blob}`]);
    t.equal(missingNs.code, 3, 'backup into a missing namespace: exit 3');

    const notEmpty = await cairn([...S, 'ns', 'remove', 'site-a']);
    t.equal(notEmpty.code, 2, 'non-empty namespace without --recursive: exit 2');
    t.match(notEmpty.err, /ERR_NOT_EMPTY/);
    const rec = await cairn([...S, '--json', 'ns', 'remove', 'site-a', '--recursive']);
    t.equal(rec.code, 0, rec.err);
    const report = JSON.parse(rec.out) as { removed: boolean; removedSnapshots: string[] };
    t.equal(report.removed, true);
    t.equal(report.removedSnapshots.length, 1);
    const emptyRemove = await cairn([...S, 'ns', 'remove', 'site-b']);
    t.equal(emptyRemove.code, 0, 'an empty namespace is removed without --recursive');
    t.match(emptyRemove.out, /removed namespace site-b/);
    const after = await cairn([...S, '--json', 'ns', 'list']);
    t.same(
      (JSON.parse(after.out) as { path: string }[]).map((n) => n.path),
      [''],
    );
    const gone = await cairn([...S, 'ns', 'remove', 'site-a']);
    t.equal(gone.code, 3, 'removing a missing namespace: exit 3');
    const root = await cairn([...S, 'ns', 'remove', '']);
    t.equal(root.code, 2, 'the root namespace cannot be removed');
  });
}

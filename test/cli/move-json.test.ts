/**
 * The --json of `group move`, `ns move`, `group remove` and `ns remove` names every snapshot it
 * lists by the identity the other commands use ({namespace, group, time, snapshot}): a moved one
 * where it is now (the target), a skipped or kept one where it stays (the source). Each identity
 * is checked by handing it to `cairn --ns <namespace> show <snapshot>`. The old fields stay.
 */
import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { snapshotLockKey } from '../../lib/datastore/layout.js';
import { parseNamespace } from '../../lib/types.js';
import { tempDir, writeTemp } from '../helpers/fixtures.js';
import { cairn, requireBuilt } from './run-cli.js';

const LOCKS = new URL('../../dist/host/locks.js', import.meta.url).href;
const T1 = '2026-01-01T00:00:00Z';
const T2 = '2026-01-02T00:00:00Z';
const T3 = '2026-01-03T00:00:00Z';
const ID = ['namespace', 'group', 'time', 'snapshot'];

interface Identity {
  namespace: string;
  group: string;
  time: string;
  snapshot: string;
}

/** A child process holding a snapshot's lock shared (what a reader or a mount holds) until its stdin closes. */
async function reader(store: string, ns: string, time: string): Promise<ChildProcess> {
  const file = path.join(store, snapshotLockKey(parseNamespace(ns), { type: 'vm', id: '1' }, time));
  const script = `import { acquireLock } from ${JSON.stringify(LOCKS)};
const l = await acquireLock(${JSON.stringify(file)}, 'shared');
process.stdout.write('locked\\n');
process.stdin.resume();
process.stdin.on('end', async () => { await l.release(); process.exit(0); });`;
  const env = { ...process.env };
  delete env['NODE_OPTIONS'];
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['pipe', 'pipe', 'inherit'], env });
  const [line] = (await once(child.stdout!, 'data')) as [Buffer];
  if (line.toString().trim() !== 'locked') throw new Error(`reader said ${line.toString()}`);
  return child;
}

async function end(child: ChildProcess): Promise<void> {
  child.stdin!.end();
  if (child.exitCode === null) await once(child, 'exit');
}

if (requireBuilt(t)) {
  t.test('move and remove reports identify their snapshots as every --json output does', async (t) => {
    const dir = tempDir(t, 'cairn-move-json-');
    const store = path.join(dir, 'store');
    const S = ['--store', store];
    t.equal((await cairn(['init', store, '--sync-level', 'none'])).code, 0);
    for (const ns of ['a', 'b', 'c']) t.equal((await cairn([...S, 'ns', 'create', ns])).code, 0);
    const conf = await writeTemp(dir, 'vm.conf', Buffer.from('cores: 2\n'));
    for (const time of [T1, T2, T3]) {
      const b = await cairn([...S, '--ns', 'a', 'backup', 'vm/1', `qemu-server.conf.blob:${conf}`, '--time', time]);
      t.equal(b.code, 0, b.err);
    }
    const json = async (args: string[], code = 0): Promise<any> => {
      const r = await cairn([...S, '--json', ...args]);
      t.equal(r.code, code, `${args.join(' ')}: ${r.err}`);
      return JSON.parse(r.out);
    };
    /** The identity is the first four keys, and show finds that very snapshot with it. */
    const resolves = async (x: Identity, want: Identity, what: string): Promise<void> => {
      t.same(Object.keys(x).slice(0, 4), ID, `${what}: the identity keys come first`);
      t.match(x, want, what);
      const shown = (await json(['--ns', x.namespace, 'show', x.snapshot])) as Identity;
      t.match(shown, want, `${what}: cairn --ns ${x.namespace} show ${x.snapshot} accepts it`);
    };
    const id = (namespace: string, time: string): Identity => ({ namespace, group: 'vm/1', time, snapshot: `vm/1/${time}` });

    // group move with one snapshot in use: two move, one stays.
    const busy = await reader(store, 'a', T3);
    const gm = await json(['--ns', 'a', 'group', 'move', 'vm/1', '--target-ns', 'b'], 4);
    await end(busy);
    t.same(gm.moved, [T1, T2], 'the times are still there');
    t.equal(gm.movedSnapshots.length, 2);
    await resolves(gm.movedSnapshots[0], id('b', T1), 'group move: moved, in the target');
    await resolves(gm.movedSnapshots[1], id('b', T2), 'group move: moved, in the target');
    t.equal(gm.skipped.length, 1);
    t.match(gm.skipped[0], { time: T3, reason: /is locked/ }, 'skipped keeps time and reason');
    await resolves(gm.skipped[0], id('a', T3), 'group move: skipped, in the source');

    // Run again: the rest moves (merging into the group in b).
    const again = await json(['--ns', 'a', 'group', 'move', 'vm/1', '--target-ns', 'b']);
    t.same(again.moved, [T3]);
    t.same(again.skipped, []);
    await resolves(again.movedSnapshots[0], id('b', T3), 'group move again: moved');

    // ns move b -> c/b with one snapshot in use.
    const busy2 = await reader(store, 'b', T2);
    const nm = await json(['ns', 'move', 'b', '--target-ns', 'c/b'], 4);
    await end(busy2);
    t.equal(nm.groups.length, 1);
    const g0 = nm.groups[0];
    t.match(g0, { group: 'vm/1', from: 'b', to: 'c/b', moved: [T1, T3] }, 'the group report as before');
    await resolves(g0.movedSnapshots[0], id('c/b', T1), 'ns move: moved');
    await resolves(g0.movedSnapshots[1], id('c/b', T3), 'ns move: moved');
    await resolves(g0.skipped[0], id('b', T2), 'ns move: skipped, in the source');
    t.same(nm.createdNamespaces, ['c/b'], 'the rest of the report as before');

    // group remove with a protected snapshot: kept, and named.
    t.equal((await cairn([...S, '--ns', 'c/b', 'protect', `vm/1/${T3}`])).code, 0);
    const gr = await json(['--ns', 'c/b', 'group', 'remove', 'vm/1']);
    t.match(gr, { removed: false, removedSnapshots: [T1], keptProtected: [T3] }, 'the old fields');
    t.same(
      gr.snapshots.map((x: { result: string }) => x.result),
      ['removed', 'kept-protected'],
    );
    t.match(gr.snapshots[0], id('c/b', T1), 'group remove: the removed one');
    await resolves(gr.snapshots[1], id('c/b', T3), 'group remove: the kept one');

    // ns remove --recursive: the snapshot left behind in b, and the protected one in c/b.
    const nr = await json(['ns', 'remove', 'c', '--recursive']);
    t.match(nr, { removed: false, keptProtected: [`c/b:vm/1/${T3}`] }, 'the old fields');
    t.match(nr.snapshots, [{ ...id('c/b', T3), result: 'kept-protected' }]);
    await resolves(nr.snapshots[0], id('c/b', T3), 'ns remove: the kept one');
    const nr2 = await json(['ns', 'remove', 'b', '--recursive']);
    t.match(nr2, { removed: true, removedSnapshots: [`b:vm/1/${T2}`] });
    t.same(nr2.snapshots, [{ ...id('b', T2), result: 'removed' }], 'ns remove: the removed one');

    // The text lines count in the right number.
    t.equal((await cairn([...S, '--ns', 'c/b', 'unprotect', `vm/1/${T3}`])).code, 0);
    const text = await cairn([...S, '--ns', 'c/b', 'group', 'remove', 'vm/1']);
    t.equal(text.code, 0, text.err);
    t.match(text.out, /^removed group vm\/1: 1 snapshot removed$/m);
  });
}

t.test('count: the noun in the right number', async (t) => {
  const { count } = await import('../../lib/cli/format.js');
  t.equal(count(1, 'file'), '1 file');
  t.equal(count(0, 'file'), '0 files');
  t.equal(count(2, 'snapshot'), '2 snapshots');
  t.equal(count(1, 'entry', 'entries'), '1 entry');
  t.equal(count(3, 'entry', 'entries'), '3 entries');
});

if (requireBuilt(t)) {
  t.test('CLI lines say 1 snapshot, 1 chunk, 1 file', async (t) => {
    const dir = tempDir(t, 'cairn-counts-');
    const store = path.join(dir, 'store');
    const S = ['--store', store];
    t.equal((await cairn(['init', store, '--sync-level', 'none', '--image-chunk-size', '65536'])).code, 0);
    const img = await writeTemp(dir, 'disk.raw', new Uint8Array(65536).fill(7));
    const tree = path.join(dir, 'tree');
    await mkdir(tree);
    await writeTemp(tree, 'only.txt', Buffer.from('one\n'));
    const run = async (args: string[]): Promise<string> => {
      const r = await cairn([...S, ...args]);
      t.equal(r.code, 0, `${args.join(' ')}: ${r.err}`);
      return r.out;
    };
    const b = await run(['backup', 'vm/1', `disk.img:${img}`, '--time', T1]);
    t.match(b, /disk\.img: .*; 1 chunk, 1 new /, 'backup: 1 chunk');
    const bt = await run(['backup', 'host/h', `etc.tree:${tree}`, '--time', T1]);
    t.match(bt, /etc\.tree: 2 entries, .*; 1 file read, 0 unchanged/, 'backup: 1 file read');
    t.match(await run(['show', 'vm/1']), /^size: 64\.0 KiB in 1 archive$/m, 'show: 1 archive');
    t.match(await run(['show', 'vm/1']), /^backup: .*, 1 chunk, 1 new, /m, 'show: 1 chunk');
    t.match(await run(['verify', 'vm/1']), /^verified 1 snapshot: 1 ok, 0 failed; 1 chunk, /m, 'verify: 1 snapshot, 1 chunk');
    t.match(await run(['prune', 'vm/1', '--keep-last', '1', '--dry-run']), /would remove 0 of 1 snapshot$/m, 'prune: of 1 snapshot');
    t.match(await run(['gc']), /^kept \d+ chunks? \(.*\) for 2 snapshots;/m, 'gc: kept ... for 2 snapshots');
    t.match(await run(['restore', 'host/h', 'etc.tree', path.join(dir, 'out')]), /^restored etc\.tree: 1 entry, /m, 'restore: 1 entry');
    await run(['forget', `host/h/${T1}`]);
    t.match(await run(['gc', '--dry-run']), /for 1 snapshot;/, 'gc: for 1 snapshot');
  });
}

/**
 * Every command that prints snapshots with --json names each one the same way: namespace, group
 * (type/id), time (RFC 3339 UTC) and snapshot (type/id/time), the first four keys. Also the
 * snapshots table, show's stats and owner, and ns create -p.
 */
import t from 'tap';
import path from 'node:path';
import { mkdir, writeFile } from 'node:fs/promises';
import { seededBytes, tempDir, writeTemp } from '../helpers/fixtures.js';
import { cairn, requireBuilt } from './run-cli.js';

const T1 = '2026-01-01T00:00:00Z';
const T2 = '2026-01-02T00:00:00Z';
const ID = ['namespace', 'group', 'time', 'snapshot'];

if (requireBuilt(t)) {
  t.test('one identity in every --json output', async (t) => {
    const dir = tempDir(t, 'cairn-identity-');
    const store = path.join(dir, 'store');
    const S = ['--store', store, '--ns', 'site'];
    t.equal((await cairn(['init', store, '--sync-level', 'none', '--image-chunk-size', '65536'])).code, 0);
    t.equal((await cairn(['--store', store, 'ns', 'create', 'site'])).code, 0);
    const img = await writeTemp(dir, 'disk.raw', seededBytes(2 * 65536, 3));
    const tree = path.join(dir, 'tree');
    await mkdir(tree);
    await writeFile(path.join(tree, 'hello.conf'), 'hi\n');
    for (const time of [T1, T2]) {
      const b = await cairn([...S, 'backup', 'host/a', `disk.img:${img}`, `etc.tree:${tree}`, '--time', time]);
      t.equal(b.code, 0, b.err);
    }
    const want = (x: unknown, time: string, what: string): void => {
      const o = x as Record<string, unknown>;
      t.same(Object.keys(o).slice(0, 4), ID, `${what}: the identity keys come first`);
      t.match(o, { namespace: 'site', group: 'host/a', time, snapshot: `host/a/${time}` }, what);
    };
    const json = async (args: string[]): Promise<unknown> => {
      const r = await cairn([...S, '--json', ...args]);
      t.equal(r.code, 0, `${args.join(' ')}: ${r.err}`);
      return JSON.parse(r.out) as unknown;
    };
    const cases: [string[], (j: any) => unknown, string][] = [
      [['snapshots'], (j) => j[1], T2],
      [['show', 'host/a'], (j) => j, T2],
      [['protect', `host/a/${T1}`], (j) => j, T1],
      [['unprotect', `host/a/${T1}`], (j) => j, T1],
      [['notes', `host/a/${T1}`, 'first'], (j) => j, T1],
      [['verify'], (j) => j.snapshots[0], T1],
      [['ls', 'host/a', 'etc.tree'], (j) => j, T2],
      [['find', 'host/a', 'etc.tree', '**/*.conf'], (j) => j, T2],
      [['catalog', 'find', 'hello.conf'], (j) => j[0], T1],
      [['prune', '--keep-last', '1', '--dry-run'], (j) => j.entries.find((e: { time: string }) => e.time === T1), T1],
      [['forget', `host/a/${T1}`], (j) => j, T1],
    ];
    for (const [args, pick, time] of cases) want(pick(await json(args)), time, args[0]!);
    const ls = (await json(['ls', 'host/a', 'etc.tree'])) as { entries: { path: string }[] };
    t.same(
      ls.entries.map((e) => e.path),
      ['hello.conf'],
      'ls lists the entries under "entries"',
    );
  });

  t.test('snapshots table, show, ns create -p', async (t) => {
    const dir = tempDir(t, 'cairn-listing-');
    const store = path.join(dir, 'store');
    const S = ['--store', store];
    t.equal((await cairn(['init', store, '--sync-level', 'none', '--image-chunk-size', '65536'])).code, 0);
    const img = await writeTemp(dir, 'disk.raw', seededBytes(3 * 65536, 4));
    t.equal((await cairn([...S, 'backup', 'vm/7', `disk.img:${img}`, '--time', T1])).code, 0);
    t.equal((await cairn([...S, 'backup', 'vm/7', `disk.img:${img}`, '--time', T2])).code, 0);
    t.equal((await cairn([...S, 'notes', `vm/7/${T2}`, 'after the upgrade\nsecond line'])).code, 0);
    t.equal((await cairn([...S, 'notes', 'vm/7', 'database server'])).code, 0);
    t.equal((await cairn([...S, 'protect', `vm/7/${T1}`])).code, 0);
    const r = await cairn([...S, 'snapshots']);
    t.equal(r.code, 0, r.err);
    const lines = r.out.trimEnd().split('\n');
    t.match(lines[0], /^SNAPSHOT\s+SIZE\s+STORED\s+VERIFY\s+PROTECTED\s+NOTES$/);
    t.match(lines[1], new RegExp(`^vm/7/${T1}\\s+192\\.0 KiB\\s+\\S+ KiB\\s+-\\s+yes$`));
    t.match(lines[2], new RegExp(`^vm/7/${T2}\\s+192\\.0 KiB\\s+0 B\\s+-\\s+no\\s+after the upgrade$`), 'nothing new stored; first line of the notes');
    t.equal(lines[1]!.indexOf('192'), lines[2]!.indexOf('192'), 'columns aligned');
    const j = JSON.parse((await cairn([...S, '--json', 'snapshots'])).out) as Record<string, unknown>[];
    t.match(j[1], { logicalBytes: 3 * 65536, storedBytes: 0, verifyState: null, protected: false, notes: 'after the upgrade\nsecond line' });

    const show = await cairn([...S, 'show', `vm/7/${T1}`]);
    t.match(show.out, /^backup: 192\.0 KiB read, \S+ KiB stored new, 3 chunks, 3 new, /m);
    t.match(show.out, /^group notes: database server$/m);
    t.match(show.out, /^owner: /m);
    const sj = JSON.parse((await cairn([...S, '--json', 'show', `vm/7/${T1}`])).out) as Record<string, unknown>;
    t.match(sj, { groupNotes: 'database server', stats: { chunks: 3, chunksWritten: 3 } });
    t.ok('owner' in sj);

    const p = await cairn([...S, 'ns', 'create', '-p', 'a/b/c']);
    t.equal(p.code, 0, p.err);
    t.equal(p.out, 'created namespace a\ncreated namespace a/b\ncreated namespace a/b/c\n');
    t.equal((await cairn([...S, 'ns', 'create', '-p', 'a/b'])).code, 0, '-p accepts one that exists');
    const np = await cairn([...S, 'ns', 'create', 'x/y']);
    t.equal(np.code, 3, 'without -p a missing parent is ERR_NOT_FOUND');
    t.match(np.err, /ERR_NOT_FOUND.*parent 'x' does not exist/);
  });
}

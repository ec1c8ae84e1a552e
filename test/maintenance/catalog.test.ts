import t from 'tap';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Level } from 'level';
import { CATALOG_DIR, Catalog, Datastore, isCairnError, type CatalogHit } from '../../lib/index.js';
import { acquireLock } from '../../lib/host/locks.js';
import { snapshotLockKey } from '../../lib/datastore/layout.js';
import { tempDir } from '../helpers/fixtures.js';
import { REPO, cairn, requireBuilt, runScript } from '../cli/run-cli.js';

const T = (day: number): string => `2026-01-0${day}T00:00:00Z`;
const SEC = (s: number): bigint => BigInt(s) * 1_000_000_000n;

async function setTime(p: string | Buffer, secs: number): Promise<void> {
  await fsp.utimes(p, secs, secs);
}

async function backupTree(ds: Datastore, group: string, src: string, time: string, namespace = ''): Promise<void> {
  const w = await ds.group(group, { namespace }).backup({ time });
  await w.addTree('etc.tree', src);
  await w.commit();
}

const brief = (hits: CatalogHit[]): string[] => hits.map((h) => `${h.namespace}:${h.snapshot} ${h.archive} ${h.kind} ${h.size} ${h.mtimeNs}`);

/** Every key and value of a closed catalog, hex (opens the LevelDB directly: no Catalog may be open). */
async function dump(root: string): Promise<string[]> {
  const db = new Level<Uint8Array, Uint8Array>(path.join(root, CATALOG_DIR), { keyEncoding: 'view', valueEncoding: 'view' });
  const out: string[] = [];
  for await (const [k, v] of db.iterator()) out.push(`${Buffer.from(k).toString('hex')}=${Buffer.from(v).toString('hex')}`);
  await db.close();
  return out;
}

t.test('findPath across snapshots: added, modified, deleted; removal; rebuild equals update', async (t) => {
  const dir = tempDir(t);
  const ds = await Datastore.create(path.join(dir, 'store'), { syncLevel: 'none', threads: 0 });
  t.teardown(() => ds.close());
  const src = path.join(dir, 'src');
  await fsp.mkdir(path.join(src, 'sub'), { recursive: true });
  await fsp.writeFile(path.join(src, 'a.txt'), 'v1');
  await setTime(path.join(src, 'a.txt'), 1_600_000_000);
  await fsp.writeFile(path.join(src, 'sub', 'keep'), 'keep');
  await backupTree(ds, 'host/web', src, T(1));
  // 2nd: notes.txt appears, a.txt changes.
  await fsp.writeFile(path.join(src, 'notes.txt'), 'hello');
  await setTime(path.join(src, 'notes.txt'), 1_700_000_000);
  await fsp.writeFile(path.join(src, 'a.txt'), 'version2');
  await setTime(path.join(src, 'a.txt'), 1_600_000_100);
  await backupTree(ds, 'host/web', src, T(2));
  // 3rd: notes.txt modified.
  await fsp.writeFile(path.join(src, 'notes.txt'), 'hello world');
  await setTime(path.join(src, 'notes.txt'), 1_700_000_500);
  await backupTree(ds, 'host/web', src, T(3));
  // 4th: notes.txt deleted.
  await fsp.unlink(path.join(src, 'notes.txt'));
  await backupTree(ds, 'host/web', src, T(4));
  // A snapshot without tree archives is ignored.
  const wb = await ds.group('host/web').backup({ time: T(5) });
  await wb.addBlob('conf.blob', 'x');
  await wb.commit();

  const cat = await Catalog.open(ds);
  t.teardown(() => cat.close());
  const first = await cat.update();
  t.match(first, { indexed: 4, archives: 4, removed: 0, skipped: [] });
  t.equal(first.entries, 3 + 4 + 4 + 3, 'a.txt, sub, sub/keep (+ notes.txt in the 2nd and 3rd)');
  t.match(await cat.update(), { indexed: 0, removed: 0, entries: 0 }, 'nothing new');

  t.same(brief(await cat.findPath('notes.txt', { group: 'host/web' })), [
    `:host/web/${T(2)} etc.tree file 5 ${SEC(1_700_000_000)}`,
    `:host/web/${T(3)} etc.tree file 11 ${SEC(1_700_000_500)}`,
  ]);
  t.same(brief(await cat.findPath('a.txt')), [
    `:host/web/${T(1)} etc.tree file 2 ${SEC(1_600_000_000)}`,
    `:host/web/${T(2)} etc.tree file 8 ${SEC(1_600_000_100)}`,
    `:host/web/${T(3)} etc.tree file 8 ${SEC(1_600_000_100)}`,
    `:host/web/${T(4)} etc.tree file 8 ${SEC(1_600_000_100)}`,
  ]);
  const keep = await cat.findPath('/sub//keep/', { group: 'host/web' });
  t.equal(keep.length, 4, 'path normalized');
  t.equal(keep[0]?.path.toString(), 'sub/keep');
  t.same(
    (await cat.findPath('sub')).map((h) => h.kind),
    ['dir', 'dir', 'dir', 'dir'],
  );
  t.same(await cat.findPath('nope'), []);
  t.same(await cat.findPath('a.tx'), [], 'no prefix matches');
  t.same(await cat.findPath('a.txt', { archive: 'other.tree' }), []);
  await t.rejects(cat.findPath('//'), { code: 'ERR_INVALID_ARGUMENT' });
  await t.rejects(cat.findPath('a.txt', { group: 'vm/999' }), { code: 'ERR_NOT_FOUND' });
  await t.rejects(cat.findPath('a.txt', { namespace: 'nope' }), { code: 'ERR_NOT_FOUND' });

  // A removed snapshot disappears after the next update (findPath runs one).
  await (await ds.snapshot(`host/web/${T(3)}`)).remove();
  t.same(brief(await cat.findPath('notes.txt', { group: 'host/web' })), [`:host/web/${T(2)} etc.tree file 5 ${SEC(1_700_000_000)}`]);
  t.match(await cat.update(), { removed: 0 }, 'already dropped by findPath');
  await (await ds.snapshot(`host/web/${T(1)}`)).remove();
  t.match(await cat.update(), { removed: 1, indexed: 0 });
  t.same(
    brief(await cat.findPath('a.txt')).map((s) => s.split(' ')[0]),
    [`:host/web/${T(2)}`, `:host/web/${T(4)}`],
  );

  // The incremental catalog equals a rebuilt one, byte for byte.
  await cat.close();
  const incremental = await dump(ds.root);
  t.equal(incremental.length, 1 + 2 + 4 + 3, 'version, 2 markers, the paths of two snapshots');
  const cat2 = await Catalog.open(ds);
  const r = await cat2.rebuild();
  t.match(r, { indexed: 2, archives: 2, removed: 0 });
  await cat2.close();
  t.same(await dump(ds.root), incremental, 'rebuild equals incremental update');

  // An archive interrupted mid-way (marker still pending, some paths missing) is indexed again;
  // a catalog of another layout version is cleared and rebuilt on open.
  const db = new Level<Uint8Array, Uint8Array>(path.join(ds.root, CATALOG_DIR), { keyEncoding: 'view', valueEncoding: 'view' });
  const markers = await db.keys({ gte: Buffer.from('S'), lt: Buffer.from('T') }).all();
  t.equal(markers.length, 2);
  const m0 = Buffer.from((await db.get(markers[0]!))!);
  m0[0] = 0;
  await db.put(markers[0]!, m0);
  const paths = await db.keys({ gte: Buffer.from('P'), lt: Buffer.from('Q') }).all();
  await db.del(paths[0]!);
  await db.close();
  const cat3 = await Catalog.open(ds);
  t.match(await cat3.update(), { indexed: 1, archives: 1, removed: 0 });
  await cat3.close();
  t.same(await dump(ds.root), incremental, 'the interrupted archive is complete again');
  const db2 = new Level<Uint8Array, Uint8Array>(path.join(ds.root, CATALOG_DIR), { keyEncoding: 'view', valueEncoding: 'view' });
  await db2.put(Buffer.from('V'), Buffer.from([99, 0, 0, 0]));
  await db2.close();
  const cat4 = await Catalog.open(ds);
  t.match(await cat4.update(), { indexed: 2, removed: 0 }, 'cleared on open: everything indexed again');
  await cat4.close();
  t.same(await dump(ds.root), incremental, 'and rebuilt');
});

t.test('namespace-wide search across groups and child namespaces; non-UTF-8 names', async (t) => {
  const dir = tempDir(t);
  const ds = await Datastore.create(path.join(dir, 'store'), { syncLevel: 'none', threads: 0 });
  t.teardown(() => ds.close());
  await ds.createNamespace('site');
  await ds.createNamespace('site/child');
  const src = path.join(dir, 'src');
  await fsp.mkdir(path.join(src, 'dir'), { recursive: true });
  const odd = Buffer.from([0x6e, 0xe9, 0xff, 0x80, 0x2e, 0x74]); // latin-1 é, invalid UTF-8
  const oddPath = Buffer.concat([Buffer.from(src), Buffer.from('/dir/'), odd]);
  await fsp.writeFile(oddPath, 'odd');
  await setTime(oddPath, 1_650_000_000);
  await fsp.writeFile(path.join(src, 'f'), '1');
  await backupTree(ds, 'host/a', src, T(1));
  await backupTree(ds, 'vm/100', src, T(2));
  await fsp.writeFile(path.join(src, 'f'), '22');
  await backupTree(ds, 'ct/7', src, T(3), 'site');
  await fsp.writeFile(path.join(src, 'f'), '333');
  await backupTree(ds, 'host/a', src, T(4), 'site/child');

  await using cat = await Catalog.open(ds);
  const all = await cat.findPath('f');
  t.same(
    all.map((h) => `${h.namespace}|${h.group}|${h.time}|${h.size}`),
    [`|host/a|${T(1)}|1`, `|vm/100|${T(2)}|1`, `site|ct/7|${T(3)}|2`, `site/child|host/a|${T(4)}|3`],
  );
  t.same(
    (await cat.findPath('f', { namespace: 'site' })).map((h) => h.namespace),
    ['site', 'site/child'],
  );
  t.same(
    (await cat.findPath('f', { namespace: 'site', maxDepth: 0 })).map((h) => h.namespace),
    ['site'],
  );
  t.same(
    (await cat.findPath('f', { namespace: '', maxDepth: 1 })).map((h) => h.group),
    ['host/a', 'vm/100', 'ct/7'],
  );
  t.same(
    (await cat.findPath('f', { namespace: 'site/child', group: 'host/a' })).map((h) => h.size),
    [3],
  );

  const hits = await cat.findPath(Buffer.concat([Buffer.from('dir/'), odd]));
  t.equal(hits.length, 4);
  t.ok(hits.every((h) => h.path.equals(Buffer.concat([Buffer.from('dir/'), odd])) && h.size === 3 && h.mtimeNs === SEC(1_650_000_000)));
  t.same(await cat.findPath(`dir/${odd.toString('utf8')}`), [], 'the U+FFFD spelling is another name');
  t.same((await cat.findPath('dir')).length, 4);
});

t.test('one database per process: a second open shares it and keeps the lock', async (t) => {
  if (!requireBuilt(t)) return;
  const dir = tempDir(t);
  const root = path.join(dir, 'store');
  const ds = await Datastore.create(root, { syncLevel: 'none', threads: 0 });
  t.teardown(() => ds.close());
  const src = path.join(dir, 'src');
  await fsp.mkdir(src);
  await fsp.writeFile(path.join(src, 'x'), 'x');
  await backupTree(ds, 'host/h', src, T(1));

  // A probe in another process: tries to open the catalog for 300 ms.
  const probe = path.join(dir, 'probe.mjs');
  await fsp.writeFile(
    probe,
    `import { Datastore, Catalog } from ${JSON.stringify(pathToFileURL(path.join(REPO, 'dist', 'index.js')).href)};
const ds = await Datastore.open(process.argv[2], { threads: 0 });
try { const c = await Catalog.open(ds, { lockTimeoutMs: 300 }); const hits = await c.findPath('x'); await c.close(); console.log('opened ' + hits.length); }
catch (e) { console.log(e.code); }
await ds.close();\n`,
  );
  const other = async (): Promise<string> => (await runScript(probe, [root])).out.trim();

  const [c1, c2] = await Promise.all([Catalog.open(ds), Catalog.open(ds)]);
  const ds2 = await Datastore.open(path.join(dir, '.', 'store'), { threads: 0 });
  t.teardown(() => ds2.close());
  const c3 = await Catalog.open(ds2);
  const [h1, h2, h3] = await Promise.all([c1.findPath('x'), c2.findPath('x'), c3.findPath('x')]);
  t.same([h1.length, h2.length, h3.length], [1, 1, 1], 'concurrent use of the shared database');
  t.equal(await other(), 'ERR_LOCKED', 'another process is kept out while three handles are open');
  await c1.close();
  await c1.close();
  await t.rejects(c1.findPath('x'), { code: 'ERR_NOT_OPEN' });
  t.equal((await c2.findPath('x')).length, 1, 'the other handles still work');
  t.equal(await other(), 'ERR_LOCKED', 'and the lock still holds after one handle closed');
  await c2.close();
  await c3.close();
  t.equal(await other(), 'opened 1', 'free once every handle is closed');
  // Open again after closing; the datastore's close closes an open handle.
  const c4 = await Catalog.open(ds);
  t.equal((await c4.findPath('x')).length, 1);
  await ds2.close();
  t.equal(await other(), 'ERR_LOCKED');
  await c4.close();
});

t.test('an aborted update is finished later; a snapshot being removed is skipped and reported', async (t) => {
  const dir = tempDir(t);
  const ds = await Datastore.create(path.join(dir, 'store'), { syncLevel: 'none', threads: 0 });
  t.teardown(() => ds.close());
  const src = path.join(dir, 'src');
  await fsp.mkdir(src);
  for (let i = 0; i < 50; i++) await fsp.writeFile(path.join(src, `f${i}`), String(i));
  await backupTree(ds, 'host/h', src, T(1));
  await backupTree(ds, 'host/h', src, T(2));
  await using cat = await Catalog.open(ds);
  const ac = new AbortController();
  let seen = 0;
  await t.rejects(
    cat.update({
      signal: ac.signal,
      onProgress: () => {
        seen++;
        ac.abort();
      },
    }),
    { code: 'ERR_ABORTED' },
  );
  t.equal(seen, 1);
  const r = await cat.update();
  t.equal(r.indexed, 1, 'the snapshot left after the abort');
  t.equal((await cat.findPath('f7')).length, 2);
  t.ok(isCairnError(await cat.update({ maxDepth: 9 }).catch((e: unknown) => e), 'ERR_INVALID_ARGUMENT'));

  // A snapshot locked for removal (its exclusive lock held) is skipped, reported, and indexed later.
  await backupTree(ds, 'host/h', src, T(3));
  const lock = await acquireLock(path.join(ds.root, snapshotLockKey([], { type: 'host', id: 'h' }, T(3))), 'exclusive');
  const locked = await cat.update();
  t.match(locked, { indexed: 0, skipped: [{ namespace: '', snapshot: `host/h/${T(3)}`, code: 'ERR_LOCKED' }] });
  t.equal((await cat.findPath('f7')).length, 2);
  await lock.release();
  t.match(await cat.update(), { indexed: 1, skipped: [] });
  t.equal((await cat.findPath('f7')).length, 3);
});

t.test('cairn catalog find / rebuild', async (t) => {
  if (!requireBuilt(t)) return;
  const dir = tempDir(t, 'cairn-cli-');
  const store = path.join(dir, 'store');
  const src = path.join(dir, 'etc');
  await fsp.mkdir(path.join(src, 'ssh'), { recursive: true });
  await fsp.writeFile(path.join(src, 'ssh', 'sshd_config'), 'Port 22\n');
  await fsp.writeFile(path.join(src, 'hosts'), '127.0.0.1 localhost\n');
  await setTime(path.join(src, 'hosts'), 1_700_000_000);
  const S = ['--store', store];
  t.equal((await cairn(['init', store, '--sync-level', 'none'])).code, 0);
  t.equal((await cairn([...S, 'ns', 'create', 'site'])).code, 0);
  t.equal((await cairn([...S, 'backup', 'host/web', `etc.tree:${src}`, '--time', T(1)])).code, 0);
  await fsp.unlink(path.join(src, 'hosts'));
  t.equal((await cairn([...S, 'backup', 'host/web', `etc.tree:${src}`, '--time', T(2)])).code, 0);
  t.equal((await cairn([...S, '--ns', 'site', 'backup', 'ct/9', `etc.tree:${src}`, '--time', T(3)])).code, 0);

  const f = await cairn([...S, 'catalog', 'find', 'hosts', 'host/web']);
  t.equal(f.code, 0, f.err);
  t.equal(f.out, `host/web/${T(1)}  etc.tree  20 B  2023-11-14 22:13:20\n`);
  const all = await cairn([...S, 'catalog', 'find', 'ssh/sshd_config']);
  t.same(
    all.out
      .trim()
      .split('\n')
      .map((l) => l.split('  ')[0]),
    [`host/web/${T(1)}`, `host/web/${T(2)}`, `site:ct/9/${T(3)}`],
  );
  const j = await cairn([...S, '--json', '--ns', 'site', 'catalog', 'find', 'ssh']);
  t.equal(j.code, 0, j.err);
  t.same(JSON.parse(j.out), [
    {
      namespace: 'site',
      group: 'ct/9',
      time: T(3),
      snapshot: `ct/9/${T(3)}`,
      archive: 'etc.tree',
      path: 'ssh',
      kind: 'dir',
      size: 0,
      mtimeNs: (JSON.parse(j.out) as { mtimeNs: string }[])[0]?.mtimeNs,
    },
  ]);
  const none = await cairn([...S, 'catalog', 'find', 'nope', 'host/web']);
  t.equal(none.code, 0);
  t.match(none.out, /no snapshot holds nope/);
  t.equal((await cairn([...S, 'catalog', 'find', 'hosts', 'vm/1'])).code, 3, 'unknown group: exit 3');
  t.equal((await cairn([...S, 'catalog', 'find', 'hosts', 'bad'])).code, 2, 'bad group: exit 2');
  const rb = await cairn([...S, '--json', 'catalog', 'rebuild']);
  t.equal(rb.code, 0, rb.err);
  t.match(JSON.parse(rb.out), { indexed: 3, archives: 3, removed: 0, skipped: [] });
  t.match((await cairn([...S, 'catalog', 'rebuild'])).out, /catalog rebuilt: 3 snapshots, 3 tree archives/);
  for (const cmd of [['catalog'], ['catalog', 'find'], ['catalog', 'rebuild']]) {
    const h = await cairn([...cmd, '--help']);
    t.equal(h.code, 0);
    t.match(h.out, /Example/, `${cmd.join(' ')} --help`);
  }
});

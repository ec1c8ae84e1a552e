// Issue 12: a read-only datastore was unusable (only `snapshots` worked; restore, ls and mount
// failed creating lock files), which is the disaster-recovery case of restoring from
// write-protected media. Readers now work without locks and say so; writers fail with
// ERR_READ_ONLY naming the datastore. Tried for real: a read-only bind mount (EROFS), and a user who
// may read the datastore but not write its lock tree (EACCES).
// The catalog too: LevelDB must write even to read, so on a read-only datastore `catalog find` works
// on a private copy in the temporary directory, and writes nothing to the datastore.
import t, { type Test } from 'tap';
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Catalog, Datastore } from '../../lib/index.js';
import { seededBytes, tempDir, writeTemp } from '../helpers/fixtures.js';
import { CLI, REPO, requireBuilt, type Run } from '../cli/run-cli.js';

const NOBODY = 65534;

function run(args: string[], user?: number, extraEnv: Record<string, string> = {}, script: string[] = [CLI]): Promise<Run> {
  const env = { ...process.env, ...extraEnv };
  delete env['CAIRN_STORE'];
  return new Promise((resolve, reject) => {
    // Through env(1), without NODE_OPTIONS: the test runner adds its hooks to every child it sees
    // spawned, and they write into the checkout, which nobody may not.
    const child = spawn('env', ['-u', 'NODE_OPTIONS', process.execPath, ...script, ...args], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(user === undefined ? {} : { uid: user, gid: user }),
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    child.on('close', (code) => {
      const stdout = Buffer.concat(out);
      resolve({ code, stdout, out: stdout.toString('utf8'), err: Buffer.concat(err).toString('utf8') });
    });
  });
}

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

interface Fixture {
  dir: string;
  store: string;
  image: Uint8Array;
  time: string;
}

async function fixture(t: Test): Promise<Fixture> {
  const dir = tempDir(t, 'cairn-ro-');
  chmodSync(dir, 0o755);
  const store = path.join(dir, 'store');
  const ds = await Datastore.create(store, { imageChunkSize: 64 * 1024, syncLevel: 'none', threads: 1 });
  const image = seededBytes(5 * 64 * 1024 + 100, 9);
  const tree = path.join(dir, 'tree');
  await mkdir(path.join(tree, 'sub'), { recursive: true });
  await writeFile(path.join(tree, 'sub', 'hello.txt'), 'hello from read-only media\n');
  const w = await ds.group('vm/100').backup();
  await w.addImage('disk', await writeTemp(dir, 'disk.raw', image));
  await w.addBlob('conf', 'the config\n');
  await w.addTree('root', tree);
  const snap = await w.commit();
  await ds.close();
  return { dir, store, image, time: snap.time };
}

/** The checks every reader must pass on `store`, run as `user`; `out` must be writable by that user. */
async function readers(t: Test, f: Fixture, store: string, out: string, user?: number): Promise<void> {
  const s = await run(['--store', store, '--json', 'snapshots'], user);
  t.equal(s.code, 0, `snapshots: ${s.err}`);
  t.match(s.err, /warning: datastore .* is read-only .*without locks/, 'the CLI says it reads without locks');
  t.equal(s.err.split('read-only').length - 1, 1, 'once');
  t.match(JSON.parse(s.out), [{ time: f.time }]);

  const show = await run(['--store', store, 'show', `vm/100/${f.time}`], user);
  t.equal(show.code, 0, `show: ${show.err}`);
  t.match(show.out, /disk\.img/);

  const ls = await run(['--store', store, 'ls', 'vm/100', 'root.tree:sub'], user);
  t.equal(ls.code, 0, `ls: ${ls.err}`);
  t.match(ls.out, /hello\.txt/);

  const img = path.join(out, 'disk.raw');
  const r1 = await run(['--store', store, 'restore', 'vm/100', 'disk.img', img], user);
  t.equal(r1.code, 0, `restore image: ${r1.err}`);
  t.equal(sha(readFileSync(img)), sha(f.image), 'the image restores byte-identical');
  const blob = path.join(out, 'conf');
  const r2 = await run(['--store', store, 'restore', 'vm/100', 'conf.blob', blob], user);
  t.equal(r2.code, 0, `restore blob: ${r2.err}`);
  t.equal(readFileSync(blob, 'utf8'), 'the config\n');
  const tree = path.join(out, 'tree');
  const r3 = await run(['--store', store, 'restore', 'vm/100', 'root.tree', tree], user);
  t.equal(r3.code, 0, `restore tree: ${r3.err}`);
  t.equal(readFileSync(path.join(tree, 'sub', 'hello.txt'), 'utf8'), 'hello from read-only media\n');

  const v = await run(['--store', store, '--json', 'verify'], user);
  t.equal(v.code, 0, `verify: ${v.err}`);
  const report = JSON.parse(v.out) as { ok: string[]; readOnly: boolean };
  t.same(report.ok, [`vm/100/${f.time}`], 'verify checks everything');
  t.equal(report.readOnly, true, 'and reports that it recorded nothing');
  const vt = await run(['--store', store, 'verify'], user);
  t.match(vt.out, /read-only datastore: .*no verify state was recorded/);

  // Everything that writes fails with ERR_READ_ONLY (exit 6), naming the datastore.
  const src = path.join(f.dir, 'disk.raw');
  const writers: [string, string[]][] = [
    ['backup', ['backup', 'vm/100', `disk.img:${src}`]],
    ['prune', ['prune', 'vm/100', '--keep-last', '1']],
    ['forget', ['forget', `vm/100/${f.time}`]],
    ['gc', ['gc']],
    ['notes', ['notes', `vm/100/${f.time}`, 'x']],
    ['group notes', ['notes', 'vm/100', 'x']],
    ['protect', ['protect', `vm/100/${f.time}`]],
    ['ns create', ['ns', 'create', 'n']],
    ['catalog rebuild', ['catalog', 'rebuild']],
  ];
  for (const [what, args] of writers) {
    const w = await run(['--store', store, '--json', ...args], user);
    t.equal(w.code, 6, `${what}: exit 6 (${w.out.trim()})`);
    const e = (JSON.parse(w.out || w.err.replace(/^cairn: warning.*\n/, '')) as { error: { code: string; message: string; details: { datastore?: string } } }).error;
    t.equal(e.code, 'ERR_READ_ONLY', `${what}: ERR_READ_ONLY`);
    t.ok(e.message.includes(store) && e.details.datastore === store, `${what}: the error names the datastore`);
  }
}

/** Every file and directory under `root`: path, type and mode, size, mtime (what any write changes). */
function listing(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir).sort()) {
      const p = path.join(dir, name);
      const st = lstatSync(p, { bigint: true });
      out.push(`${path.relative(root, p)} ${st.mode.toString(8)} ${st.size} ${st.mtimeNs}`);
      if (st.isDirectory()) walk(p);
    }
  };
  walk(root);
  return out;
}

const CATALOG_NOTE = /^cairn: warning: the catalog of (.*) cannot be written there: searching a temporary copy in (\S+) \(removed when done\)$/m;

/**
 * `catalog find` on the read-only `ro` (as `user`) finds what it finds on the writable `rw` (as
 * root), with no catalog, with the datastore's catalog copied, and with one that cannot be copied
 * (`unusable` makes it so, and says how); it changes nothing in the datastore and leaves no
 * temporary directory behind.
 */
async function catalogFind(t: Test, f: Fixture, ro: string, rw: string, unusable: [string, () => void], user?: number): Promise<void> {
  const tmp = path.join(f.dir, `tmp-${user ?? 'root'}`);
  mkdirSync(tmp, { mode: 0o700 });
  if (user !== undefined) chownSync(tmp, user, user);
  // `catalog find` of `p`; on `ro` as `user` (a temporary copy), or on `rw` as root.
  const find = async (what: string, on: 'ro' | 'rw', p = 'sub/hello.txt'): Promise<unknown[]> => {
    const [store, who] = on === 'ro' ? [ro, user] : [rw, undefined];
    const before = listing(f.store);
    const r = await run(['--store', store, '--json', 'catalog', 'find', p], who, { TMPDIR: tmp });
    t.equal(r.code, 0, `${what}: catalog find: ${r.err}`);
    const note = CATALOG_NOTE.exec(r.err);
    if (on === 'ro') {
      t.ok(note, `${what}: the CLI says it searches a temporary copy (${r.err.trim()})`);
      t.equal(note?.[1], ro, `${what}: naming the datastore`);
      t.ok(note !== null && note[2]!.startsWith(`${tmp}${path.sep}`), `${what}: in the temporary directory`);
      t.notOk(note !== null && existsSync(note[2]!), `${what}: the copy is gone`);
      t.same(readdirSync(tmp), [], `${what}: nothing is left in the temporary directory`);
      t.same(listing(f.store), before, `${what}: nothing in the datastore changed`);
    } else {
      t.notOk(note, 'no temporary copy on a writable datastore');
    }
    return JSON.parse(r.out) as unknown[];
  };

  rmSync(path.join(f.store, '.catalog'), { recursive: true, force: true });
  const none = await find('no catalog', 'ro');
  t.notOk(existsSync(path.join(f.store, '.catalog')), 'no catalog was made in the datastore');
  const want = await find('writable', 'rw');
  t.match(want, [{ snapshot: `vm/100/${f.time}`, archive: 'root.tree', kind: 'file', size: 27 }]);
  t.equal(want.length, 1);
  t.same(none, want, 'without a catalog: the same hits as on the writable datastore');
  execFileSync('chmod', ['-R', 'o+rX', path.join(f.store, '.catalog')]);
  t.same(await find('existing catalog', 'ro'), want, 'with the catalog copied: the same hits');

  // A snapshot the datastore's catalog has not seen: the copy is brought up to date.
  const ds = await Datastore.open(rw);
  const tree = path.join(f.dir, `tree2-${user ?? 'root'}`);
  await mkdir(path.join(tree, 'sub'), { recursive: true });
  await writeFile(path.join(tree, 'sub', 'hello.txt'), 'hello again\n');
  const w = await ds.group(`ct/${user ?? 0}`).backup();
  await w.addTree('root', tree);
  await w.commit();
  await ds.close();
  execFileSync('chmod', ['-R', 'o+rX', f.store]);
  const newer = await find('a newer snapshot', 'ro');
  const want2 = await find('writable, a newer snapshot', 'rw');
  t.equal(want2.length, 2);
  t.same(newer, want2, 'a snapshot newer than the catalog: the same hits');

  unusable[1]();
  t.same(await find(unusable[0], 'ro'), want2, `${unusable[0]}: rebuilt, the same hits`);
  t.same(await find(`${unusable[0]}, no hit`, 'ro', 'sub/nothing'), [], `${unusable[0]}: no hit for a path no snapshot has`);
  rmSync(path.join(f.store, '.catalog'), { recursive: true, force: true });
}

t.test('on a read-only bind mount (EROFS)', async (t) => {
  if (!requireBuilt(t)) return;
  const f = await fixture(t);
  const ro = path.join(f.dir, 'ro');
  mkdirSync(ro);
  execFileSync('mount', ['--bind', f.store, ro]);
  t.teardown(() => {
    execFileSync('umount', ['-l', ro]);
  });
  execFileSync('mount', ['-o', 'remount,bind,ro', ro]);

  const ds = await Datastore.open(ro);
  t.equal(ds.readOnly, true, 'the library flags it');
  t.equal(ds.readOnlyReason, 'EROFS');
  await t.rejects(ds.group('vm/100').backup(), { code: 'ERR_READ_ONLY', details: { datastore: ro } });
  await ds.close();
  const rw = await Datastore.open(f.store);
  t.equal(rw.readOnly, false, 'the same datastore through a writable path is not read-only');
  await rw.close();

  const out = path.join(f.dir, 'out');
  mkdirSync(out);
  await readers(t, f, ro, out);

  // The library: a catalog on a temporary copy, shared by the opens of the process, then removed.
  const rwds = await Datastore.open(f.store);
  const rwc = await Catalog.open(rwds);
  t.equal(rwc.temporary, false, 'a writable datastore: the catalog is not temporary');
  t.equal(rwc.directory, path.join(f.store, '.catalog'));
  t.equal((await rwc.findPath('sub/hello.txt')).length, 1);
  await rwc.close();
  await rwds.close();
  const before = listing(f.store);
  const rods = await Datastore.open(ro);
  const c1 = await Catalog.open(rods);
  const c2 = await Catalog.open(rods);
  t.equal(c1.temporary, true, 'a read-only datastore: the catalog is a temporary copy');
  t.ok(c1.directory.startsWith(`${tmpdir()}${path.sep}`), 'in the temporary directory');
  t.equal(c2.directory, c1.directory, 'one copy per process, shared');
  t.equal(statSync(c1.directory).mode & 0o777, 0o700, 'the copy is 0700');
  for (const name of readdirSync(c1.directory)) t.equal(statSync(path.join(c1.directory, name)).mode & 0o077, 0, `${name}: for this user only`);
  const upd = await c1.update();
  t.match(upd, { indexed: 0, archives: 0, removed: 0, skipped: [] }, "the datastore's catalog was copied: nothing to index again");
  t.match(await c2.findPath('sub/hello.txt'), [{ snapshot: `vm/100/${f.time}`, archive: 'root.tree', size: 27 }]);
  await t.rejects(c1.rebuild(), { code: 'ERR_READ_ONLY', details: { datastore: ro } }, 'a rebuild that could not be kept is refused');
  const dir = c1.directory;
  await c1.close();
  t.ok(existsSync(dir), 'kept while a handle is open');
  await c2.close();
  t.notOk(existsSync(dir), 'removed at the last close');
  await rods.close();
  t.same(listing(f.store), before, 'the library wrote nothing to the datastore');

  // A process that exits with the catalog open leaves no copy behind.
  const tmpExit = path.join(f.dir, 'tmp-exit');
  mkdirSync(tmpExit, { mode: 0o700 });
  const script = `const { Datastore, Catalog } = await import(${JSON.stringify(path.join(REPO, 'dist', 'index.js'))});
const ds = await Datastore.open(${JSON.stringify(ro)});
const c = await Catalog.open(ds);
process.stdout.write(c.directory);
process.exit(0);`;
  const ex = await run([], undefined, { TMPDIR: tmpExit }, ['--input-type=module', '-e', script]);
  t.equal(ex.code, 0, `exit with the catalog open: ${ex.err}`);
  t.ok(ex.out.startsWith(`${tmpExit}${path.sep}`), 'it had a temporary copy');
  t.same(readdirSync(tmpExit), [], 'removed at exit');

  await catalogFind(t, f, ro, f.store, ['a corrupt catalog', () => writeFileSync(path.join(f.store, '.catalog', 'CURRENT'), 'garbage')]);

  // Nothing was recorded: the manifest has no verify state.
  const again = await Datastore.open(f.store);
  t.equal((await again.snapshot('vm/100')).verifyState, undefined, 'verify wrote no state');
  await again.close();

  // A FUSE mount of the read-only datastore, read by another process, then unmounted.
  const mnt = path.join(f.dir, 'mnt');
  mkdirSync(mnt);
  const m = await run(['--store', ro, '--json', 'mount', 'vm/100', mnt, '--daemon']);
  t.equal(m.code, 0, `mount: ${m.err}`);
  t.teardown(() => run(['umount', mnt]));
  const got = execFileSync(process.execPath, [
    '-e',
    `process.stdout.write(require('crypto').createHash('sha256').update(require('fs').readFileSync(${JSON.stringify(path.join(mnt, 'disk.img'))})).digest('hex'))`,
  ]).toString();
  t.equal(got, sha(f.image), 'a child process reads the image from the mount');
  const u = await run(['umount', mnt]);
  t.equal(u.code, 0, `umount: ${u.err}`);
});

t.test('for a user who can read the datastore but not write its lock tree (EACCES)', async (t) => {
  if (!requireBuilt(t)) return;
  const f = await fixture(t);
  execFileSync('chmod', ['-R', 'o+rX', f.store]);
  const out = path.join(f.dir, 'out-nobody');
  mkdirSync(out);
  chownSync(out, NOBODY, NOBODY);
  await readers(t, f, f.store, out, NOBODY);
  await catalogFind(t, f, f.store, f.store, ['a catalog nobody may read', () => chmodSync(path.join(f.store, '.catalog'), 0o700)], NOBODY);
  const ds = await Datastore.open(f.store);
  t.equal(ds.readOnly, false, 'root can write it');
  t.equal((await ds.snapshot('vm/100')).verifyState, undefined, 'verify as nobody wrote no state');
  await ds.close();
});

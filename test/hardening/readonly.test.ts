// Issue 12: a read-only datastore was unusable (only `snapshots` worked; restore, ls and mount
// failed creating lock files), which is the disaster-recovery case of restoring from
// write-protected media. Readers now work without locks and say so; writers fail with
// ERR_READ_ONLY naming the datastore. Tried for real: a read-only bind mount (EROFS), and a user who
// may read the datastore but not write its lock tree (EACCES).
import t, { type Test } from 'tap';
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, chownSync, mkdirSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Datastore } from '../../lib/index.js';
import { seededBytes, tempDir, writeTemp } from '../helpers/fixtures.js';
import { CLI, requireBuilt, type Run } from '../cli/run-cli.js';

const NOBODY = 65534;

function run(args: string[], user?: number): Promise<Run> {
  const env = { ...process.env };
  delete env['CAIRN_STORE'];
  return new Promise((resolve, reject) => {
    // Through env(1), without NODE_OPTIONS: the test runner adds its hooks to every child it sees
    // spawned, and they write into the checkout, which nobody may not.
    const child = spawn('env', ['-u', 'NODE_OPTIONS', process.execPath, CLI, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'], ...(user === undefined ? {} : { uid: user, gid: user }) });
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
    ['catalog find', ['catalog', 'find', 'sub/hello.txt']],
  ];
  for (const [what, args] of writers) {
    const w = await run(['--store', store, '--json', ...args], user);
    t.equal(w.code, 6, `${what}: exit 6 (${w.out.trim()})`);
    const e = (JSON.parse(w.out || w.err.replace(/^cairn: warning.*\n/, '')) as { error: { code: string; message: string; details: { datastore?: string } } }).error;
    t.equal(e.code, 'ERR_READ_ONLY', `${what}: ERR_READ_ONLY`);
    t.ok(e.message.includes(store) && e.details.datastore === store, `${what}: the error names the datastore`);
  }
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

  // Nothing was recorded: the manifest has no verify state.
  const again = await Datastore.open(f.store);
  t.equal((await again.snapshot('vm/100')).verifyState, undefined, 'verify wrote no state');
  await again.close();

  // A FUSE mount of the read-only datastore, read by another process, then unmounted.
  const mnt = path.join(f.dir, 'mnt');
  const m = await run(['--store', ro, '--json', 'mount', 'vm/100', mnt, '--daemon']);
  t.equal(m.code, 0, `mount: ${m.err}`);
  t.teardown(() => run(['umount', mnt]));
  const got = execFileSync(process.execPath, ['-e', `process.stdout.write(require('crypto').createHash('sha256').update(require('fs').readFileSync(${JSON.stringify(path.join(mnt, 'disk.img'))})).digest('hex'))`]).toString();
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
  const ds = await Datastore.open(f.store);
  t.equal(ds.readOnly, false, 'root can write it');
  t.equal((await ds.snapshot('vm/100')).verifyState, undefined, 'verify as nobody wrote no state');
  await ds.close();
});

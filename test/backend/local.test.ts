import t, { type Test } from 'tap';
import { mkdir, readdir, readFile, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { DIR_MODE, FILE_MODE, LocalBackend, TMP_MARKER, fsyncDir } from '../../lib/backend/local.js';
import { CairnError, isCairnError } from '../../lib/errors.js';
import { seededBytes, tempDir } from '../helpers/fixtures.js';

async function rejectsCode(t: Test, p: Promise<unknown>, code: string, msg: string): Promise<CairnError | undefined> {
  try {
    await p;
    t.fail(`${msg}: expected ${code}, resolved`);
  } catch (e) {
    t.ok(isCairnError(e, code as never), `${msg}: ${code} (got ${isCairnError(e) ? e.code : String(e)})`);
    return e as CairnError;
  }
  return undefined;
}

/** All names under `dir`, recursively, relative. */
async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    out.push(p);
    if (e.isDirectory()) out.push(...(await walk(p)));
  }
  return out;
}

async function tmpFiles(dir: string): Promise<string[]> {
  return (await walk(dir)).filter((p) => path.basename(p).includes(TMP_MARKER));
}

t.test('constructor and pathOf', async (t) => {
  const dir = tempDir(t);
  const b = new LocalBackend(path.join(dir, 'x', '..', 'root'));
  t.equal(b.location, path.join(dir, 'root'), 'location is resolved');
  t.equal(b.pathOf(''), b.location);
  t.equal(b.pathOf('a/b/c'), path.join(b.location, 'a', 'b', 'c'));
  t.equal(b.pathOf('.chunks/ab/abcd'), path.join(b.location, '.chunks', 'ab', 'abcd'), 'hidden names are fine');
  t.equal(b.pathOf('/etc/passwd'), path.join(b.location, 'etc', 'passwd'), 'a leading slash stays inside');
  for (const bad of ['..', '../x', 'a/../../x', 'a/..', '.', 'a/./b']) {
    t.throws(() => b.pathOf(bad), TypeError, `refused: ${bad}`);
  }
  await t.rejects(b.put('../escape', new Uint8Array(1)), TypeError, 'put refuses a climbing key');
  await t.rejects(b.get('a/../../etc/passwd'), TypeError, 'get refuses a climbing key');
  t.equal(FILE_MODE, 0o640);
  t.equal(DIR_MODE, 0o750);
});

t.test('put: single buffer, creates missing directories, modes 0640 / 0750', async (t) => {
  const dir = tempDir(t);
  const root = path.join(dir, 'store');
  const b = new LocalBackend(root);
  const old = process.umask(0o022);
  t.teardown(() => void process.umask(old));
  const data = seededBytes(10_000, 1);
  await b.put('a/b/c/key', data);
  const p = path.join(root, 'a', 'b', 'c', 'key');
  t.equal(Buffer.compare(await readFile(p), Buffer.from(data)), 0, 'content');
  t.equal((await stat(p)).mode & 0o777, 0o640, 'file mode 0640');
  for (const d of [root, path.join(root, 'a'), path.join(root, 'a', 'b'), path.join(root, 'a', 'b', 'c')]) {
    t.equal((await stat(d)).mode & 0o777, 0o750, `dir mode 0750: ${path.relative(dir, d)}`);
  }
  t.same(await tmpFiles(root), [], 'no temp files left');

  await b.mkdir('m/n');
  t.equal((await stat(path.join(root, 'm'))).mode & 0o777, 0o750, 'mkdir parent 0750');
  t.equal((await stat(path.join(root, 'm', 'n'))).mode & 0o777, 0o750, 'mkdir 0750');
});

t.test('put: several buffers, empty ones, subarrays, replacement, sync', async (t) => {
  const dir = tempDir(t);
  const b = new LocalBackend(dir);
  const big = seededBytes(3 * 1024 * 1024 + 7, 2);
  const parts = [new Uint8Array(0), big.subarray(0, 16), new Uint8Array(0), big.subarray(16, 1_000_001), big.subarray(1_000_001)];
  await b.put('multi', parts, { sync: true });
  t.equal(Buffer.compare(await readFile(path.join(dir, 'multi')), Buffer.from(big)), 0, 'buffers written in order');

  await b.put('empty', []);
  t.equal((await stat(path.join(dir, 'empty'))).size, 0, 'no buffers: empty file');
  await b.put('empty2', new Uint8Array(0), { sync: true });
  t.equal((await stat(path.join(dir, 'empty2'))).size, 0);

  await b.put('multi', Buffer.from('short'));
  t.equal(await readFile(path.join(dir, 'multi'), 'utf8'), 'short', 'put replaces');
  t.same(await tmpFiles(dir), []);

  // Concurrent puts to the same key: one of them wins whole.
  const values = Array.from({ length: 8 }, (_, i) => seededBytes(50_000 + i, i + 10));
  await Promise.all(values.map((v) => b.put('race', v)));
  const got = await readFile(path.join(dir, 'race'));
  t.ok(
    values.some((v) => Buffer.compare(got, Buffer.from(v)) === 0),
    'one whole value',
  );
  t.same(await tmpFiles(dir), [], 'no temp files after concurrent puts');
});

t.test('put is atomic: a failed put leaves no temp file and keeps no partial value', async (t) => {
  const dir = tempDir(t);
  const b = new LocalBackend(dir);

  // Parent is a regular file: the temp file cannot even be created.
  await writeFile(path.join(dir, 'file'), 'I am a file');
  const e1 = await rejectsCode(t, b.put('file/child', new Uint8Array(10)), 'ERR_IO', 'parent is a file');
  t.equal(e1?.details.syscallCode, 'ENOTDIR');
  t.equal(e1?.details.path, path.join(dir, 'file', 'child'));
  t.equal(await readFile(path.join(dir, 'file'), 'utf8'), 'I am a file', 'the file is untouched');

  // The rename fails (target is a non-empty directory) after the temp file was written.
  await mkdir(path.join(dir, 'sub', 'target', 'inner'), { recursive: true });
  const e2 = await rejectsCode(t, b.put('sub/target', seededBytes(100_000, 3)), 'ERR_IO', 'target is a directory');
  t.ok(e2?.details.syscallCode !== undefined, `OS code reported (${e2?.details.syscallCode})`);
  t.same(await readdir(path.join(dir, 'sub')), ['target'], 'the temp file was removed');
  t.same(await tmpFiles(dir), [], 'no temp files anywhere');

  // A failed replacement leaves the old value.
  await b.put('keep', Buffer.from('old'));
  await mkdir(path.join(dir, 'dirkey', 'x'), { recursive: true });
  await t.rejects(b.put('dirkey', Buffer.from('new')));
  t.equal(await readFile(path.join(dir, 'keep'), 'utf8'), 'old');
});

t.test('get: whole, ranges, past the end, missing', async (t) => {
  const dir = tempDir(t);
  const b = new LocalBackend(dir);
  const data = seededBytes(5000, 4);
  await b.put('k/v', data);
  const whole = await b.get('k/v');
  t.equal(Buffer.compare(whole, Buffer.from(data)), 0, 'whole');
  const r = await b.get('k/v', { offset: 100, length: 200 });
  t.equal(r.byteLength, 200);
  t.equal(Buffer.compare(r, Buffer.from(data.subarray(100, 300))), 0, 'range');
  t.equal((await b.get('k/v', { offset: 0, length: 0 })).byteLength, 0, 'empty range');
  const tail = await b.get('k/v', { offset: 4990, length: 100 });
  t.equal(tail.byteLength, 10, 'a range past the end is cut short');
  t.equal(Buffer.compare(tail, Buffer.from(data.subarray(4990))), 0);
  t.equal((await b.get('k/v', { offset: 5000, length: 10 })).byteLength, 0, 'a range at the end is empty');
  t.equal((await b.get('k/v', { offset: 10_000, length: 10 })).byteLength, 0, 'a range beyond the end is empty');

  const miss = await rejectsCode(t, b.get('k/nope'), 'ERR_NOT_FOUND', 'missing key');
  t.equal(miss?.details.path, path.join(dir, 'k', 'nope'));
  await rejectsCode(t, b.get('nodir/nope', { offset: 0, length: 1 }), 'ERR_NOT_FOUND', 'missing key, range read');
  const isDir = await rejectsCode(t, b.get('k'), 'ERR_IO', 'a directory');
  t.match(isDir?.message, /is a directory/);
  await rejectsCode(t, b.get('k', undefined, { code: 'ERR_INDEX_CORRUPT' }), 'ERR_INDEX_CORRUPT', "a directory, with the caller's code");
});

t.test('stat and touch', async (t) => {
  const dir = tempDir(t);
  const b = new LocalBackend(dir);
  await b.put('d/f', new Uint8Array(123));
  const s = await b.stat('d/f');
  t.equal(s?.size, 123);
  t.equal(s?.isDirectory, false);
  t.type(s?.mtimeMs, 'number');
  t.equal((await b.stat('d'))?.isDirectory, true);
  t.equal(await b.stat('d/missing'), undefined);
  t.equal(await b.stat('d/f/under-a-file'), undefined, 'ENOTDIR counts as missing');

  await utimes(path.join(dir, 'd', 'f'), 1_000_000, 1_000_000);
  const when = 1_700_000_123_000;
  t.equal(await b.touch('d/f', when), true);
  t.equal((await stat(path.join(dir, 'd', 'f'))).mtimeMs, when, 'mtime set');
  t.equal((await b.stat('d/f'))?.mtimeMs, when);
  t.equal(await b.touch('d/missing', when), false, 'missing key: false');
  t.equal(await b.touch('nodir/missing', when), false, 'missing directory: false');
  t.equal(await b.stat('d/missing'), undefined, 'touch never creates');
  const before = (await stat(path.join(dir, 'd', 'f'))).size;
  t.equal(before, 123, 'touch does not change content');
});

t.test('list, delete, rename', async (t) => {
  const dir = tempDir(t);
  const b = new LocalBackend(dir);
  for (const k of ['p/c', 'p/a', 'p/B', 'p/b', 'p/sub/x', 'p/.hidden', 'p/10', 'p/9']) await b.put(k, Buffer.from(k));
  t.same(await b.listNames('p'), ['.hidden', '10', '9', 'B', 'a', 'b', 'c', 'sub'], 'sorted, not recursive');
  t.same(await b.listNames('p/sub'), ['x']);
  t.same(await b.listNames('missing'), [], 'missing prefix: []');
  await rejectsCode(t, b.listNames('p/c'), 'ERR_UNSAFE_PATH', 'a file where a prefix belongs is reported');
  t.ok((await b.listNames('')).includes('p'), 'root listing');

  const flat = async (prefix: string): Promise<string[]> => {
    const out: string[] = [];
    for await (const e of b.list(prefix)) out.push(e.key);
    return out.sort();
  };
  t.same(await flat('p'), ['p/.hidden', 'p/10', 'p/9', 'p/B', 'p/a', 'p/b', 'p/c', 'p/sub/x'], 'list: flat and recursive, whole keys');
  await writeFile(path.join(dir, 'p', 'sub', `.x${TMP_MARKER}1-1`), 'partial');
  t.same(await flat('p/sub'), ['p/sub/x'], 'list leaves temp files of puts out');
  await symlink('/etc', path.join(dir, 'p', 'sub', 'planted'));
  await rejectsCode(t, flat('p'), 'ERR_UNSAFE_PATH', 'a symlink below a listed prefix is reported, never followed');
  await b.delete('p/sub/planted');

  t.equal(await b.delete('p/c'), true);
  t.equal(await b.delete('p/c'), false, 'second delete: false');
  t.equal(await b.delete('nodir/x'), false);
  t.notOk((await b.listNames('p')).includes('c'));
  await rejectsCode(t, b.delete('p/sub'), 'ERR_IO', 'deleting a directory');

  await b.rename('p/a', 'p/z');
  t.equal(Buffer.from(await b.get('p/z')).toString(), 'p/a');
  t.equal(await b.stat('p/a'), undefined);
  await b.rename('p/z', 'p/b');
  t.equal(Buffer.from(await b.get('p/b')).toString(), 'p/a', 'rename replaces the target');
  const e = await rejectsCode(t, b.rename('p/none', 'p/x'), 'ERR_NOT_FOUND', 'rename of a missing key');
  t.equal(e?.details.path, path.join(dir, 'p', 'none'));
});

t.test('mkdir and rmdir', async (t) => {
  const dir = tempDir(t);
  const b = new LocalBackend(dir);
  await b.mkdir('x/y/z');
  t.equal((await b.stat('x/y/z'))?.isDirectory, true);
  await b.mkdir('x/y/z');
  t.pass('mkdir is idempotent');
  t.equal(await b.rmdir('x/y'), false, 'non-empty: false');
  t.equal(await b.rmdir('x/y/z'), true);
  t.equal(await b.rmdir('x/y/z'), false, 'missing: false');
  t.equal(await b.rmdir('x/y'), true);
  await b.put('x/f', new Uint8Array(1));
  t.equal(await b.rmdir('x'), false, 'a directory with a file: false');
  await rejectsCode(t, b.rmdir('x/f'), 'ERR_UNSAFE_PATH', 'rmdir of a file');
  await rejectsCode(t, b.mkdir('x/f/sub'), 'ERR_IO', 'mkdir under a file');
});

t.test('OS errors other than "missing" are ERR_IO with the OS code', async (t) => {
  const dir = tempDir(t);
  const b = new LocalBackend(dir);
  await symlink('loop', path.join(dir, 'loop')); // a symlink to itself: ELOOP on every access
  await b.put('file', Buffer.from('x'));
  t.equal((await b.stat('loop'))?.type, 'symlink', 'stat of a symlink loop: the link itself (lstat)');
  const l = await rejectsCode(t, b.listNames('loop'), 'ERR_UNSAFE_PATH', 'list of a symlink loop');
  t.equal(l?.details.path, path.join(dir, 'loop'));
  t.equal(await b.touch('loop', 1_000_000), true, 'touch of a symlink loop: the link itself (lutimes)');
  const g = await rejectsCode(t, b.get('loop', { offset: 0, length: 1 }), 'ERR_IO', 'range get of a symlink loop');
  t.match(g?.message, /symlink/);
  const tn = await rejectsCode(t, b.touch('file/under', 1_000_000), 'ERR_IO', 'touch below a file (ENOTDIR)');
  t.equal(tn?.details.syscallCode, 'ENOTDIR');

  await mkdir(path.join(dir, 'full', 'inner'), { recursive: true });
  const r = await rejectsCode(t, b.rename('file', 'full'), 'ERR_IO', 'rename onto a non-empty directory');
  t.ok(r?.details.syscallCode, `OS code ${r?.details.syscallCode}`);
  t.equal(Buffer.from(await b.get('file')).toString(), 'x', 'the source is untouched');
});

t.test('rename into a missing directory does not claim the source is missing', async (t) => {
  const dir = tempDir(t);
  const b = new LocalBackend(dir);
  await b.put('src', Buffer.from('x'));
  try {
    await b.rename('src', 'no/such/dir/dst');
    t.fail('should fail');
  } catch (e) {
    t.ok(isCairnError(e), 'a CairnError');
    t.equal(Buffer.from(await b.get('src')).toString(), 'x', 'the source still exists');
    t.notMatch((e as Error).message, `${path.join(dir, 'src')} does not exist`, 'the message does not say the existing source is missing');
  }
});

t.test('syncAll and fsyncDir', async (t) => {
  const dir = tempDir(t);
  const b = new LocalBackend(dir);
  await b.put('a', new Uint8Array(3), { sync: true });
  await b.syncAll();
  t.pass('syncAll on an existing root');
  await fsyncDir(dir);
  t.pass('fsyncDir');
  const missing = new LocalBackend(path.join(dir, 'does-not-exist'));
  const e = await rejectsCode(t, missing.syncAll(), 'ERR_IO', 'syncAll on a missing root');
  t.equal(e?.details.syscallCode, 'ENOENT');
});

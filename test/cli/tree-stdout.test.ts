/**
 * `cairn restore <snapshot> <name>.tree -`: a tar stream on stdout that GNU tar extracts to the
 * source tree; a tree restore onto a regular file is refused; SIGINT stops a tree restore with exit
 * 130, keeping what was restored.
 */
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fsp, writeFileSync } from 'node:fs';
import path from 'node:path';
import { CLI, cairn, requireBuilt } from './run-cli.js';
import { seededBytes, tempDir } from '../helpers/fixtures.js';

async function snapshotOf(root: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const visit = async (abs: string, rel: string): Promise<void> => {
    const st = await fsp.lstat(abs, { bigint: true });
    const kind = st.isFile() ? 'file' : st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : 'other';
    let extra = '';
    if (kind === 'file')
      extra = createHash('sha256')
        .update(await fsp.readFile(abs))
        .digest('hex');
    if (kind === 'symlink') extra = await fsp.readlink(abs);
    out.set(rel, `${kind} ${(st.mode & 0o7777n).toString(8)} ${rel === '' ? '' : st.mtimeNs} ${extra}`);
    if (kind === 'dir') for (const n of (await fsp.readdir(abs)).sort()) await visit(path.join(abs, n), rel === '' ? n : `${rel}/${n}`);
  };
  await visit(root, '');
  return out;
}

if (requireBuilt(t)) {
  t.test('restore to - writes a tar stream that tar -x turns into the source tree', async (t) => {
    const dir = tempDir(t, 'cairn-tar-');
    const store = path.join(dir, 'store');
    t.equal((await cairn(['init', store, '--sync-level', 'none'])).code, 0);
    const src = path.join(dir, 'src');
    await fsp.mkdir(path.join(src, 'a', 'b'), { recursive: true });
    writeFileSync(path.join(src, 'a', 'b', 'data.bin'), seededBytes(1_500_000, 9));
    writeFileSync(path.join(src, 'script.sh'), '#!/bin/sh\necho hi\n');
    await fsp.chmod(path.join(src, 'script.sh'), 0o750);
    await fsp.symlink('a/b/data.bin', path.join(src, 'link'));
    await fsp.link(path.join(src, 'script.sh'), path.join(src, 'a', 'hard'));
    await fsp.writeFile(path.join(src, `${'n'.repeat(120)}.txt`), 'long name');
    await fsp.utimes(path.join(src, 'script.sh'), 1_234_567_890.987654, 1_234_567_890.987654);
    await fsp.utimes(path.join(src, 'a'), 1_000_000_000, 1_000_000_000);
    const b = await cairn(['--store', store, 'backup', 'host/a', `etc.tree:${src}`]);
    t.equal(b.code, 0, b.err);

    const r = await cairn(['--store', store, 'restore', 'host/a', 'etc.tree', '-']);
    t.equal(r.code, 0, r.err);
    t.equal(r.err, '', 'nothing on stderr');
    const tarFile = path.join(dir, 'etc.tar');
    await fsp.writeFile(tarFile, r.stdout);
    const out = path.join(dir, 'out');
    await fsp.mkdir(out);
    const x = spawnSync('tar', ['-x', '-f', tarFile, '-C', out], { encoding: 'utf8' });
    t.equal(x.status, 0, x.stderr);
    t.same(await snapshotOf(out), await snapshotOf(src), 'content, modes, symlinks, mtimes');
    t.equal((await fsp.stat(path.join(out, 'a', 'hard'))).ino, (await fsp.stat(path.join(out, 'script.sh'))).ino, 'hardlink');
    t.notOk(await fsp.stat(path.join(dir, '-')).catch(() => false), 'no directory named -');

    const only = await cairn(['--store', store, 'restore', 'host/a', 'etc.tree', '-', '--include', 'a/**']);
    t.equal(only.code, 0, only.err);
    const list = spawnSync('tar', ['-t'], { input: only.stdout, encoding: 'utf8' });
    t.same(list.stdout.trim().split('\n').sort(), ['./', 'a/', 'a/b/', 'a/b/data.bin', 'a/hard'], `--include applies: ${list.stdout}`);
  });

  t.test('a tree restore onto a regular file is refused and changes nothing', async (t) => {
    const dir = tempDir(t, 'cairn-tar-');
    const store = path.join(dir, 'store');
    t.equal((await cairn(['init', store, '--sync-level', 'none'])).code, 0);
    const src = path.join(dir, 'src');
    await fsp.mkdir(src);
    writeFileSync(path.join(src, 'f'), 'x');
    t.equal((await cairn(['--store', store, 'backup', 'host/a', `t.tree:${src}`])).code, 0);
    const file = path.join(dir, 'target');
    writeFileSync(file, 'keep me');
    for (const extra of [[], ['--overwrite']]) {
      const r = await cairn(['--store', store, 'restore', 'host/a', 't.tree', file, ...extra]);
      t.equal(r.code, 2, r.err);
      t.match(r.err, /^cairn: ERR_EXISTS: restore target .* is a file, not a directory/);
      t.notMatch(r.err, /\n\s+at /, 'no stack trace');
      t.equal(await fsp.readFile(file, 'utf8'), 'keep me');
    }
  });

  t.test('SIGINT stops a tree restore: exit 130, the target holds only what was restored', async (t) => {
    const dir = tempDir(t, 'cairn-tar-');
    const store = path.join(dir, 'store');
    t.equal((await cairn(['init', store, '--sync-level', 'none'])).code, 0);
    const src = path.join(dir, 'src');
    await fsp.mkdir(src);
    const want = new Map<string, string>();
    for (let i = 0; i < 40; i++) {
      const data = seededBytes(4 * 1024 * 1024, 100 + i);
      const name = `f${String(i).padStart(2, '0')}`;
      writeFileSync(path.join(src, name), data);
      want.set(name, createHash('sha256').update(data).digest('hex'));
    }
    t.equal((await cairn(['--store', store, 'backup', 'host/a', `t.tree:${src}`])).code, 0);
    const out = path.join(dir, 'out');
    const child = spawn(process.execPath, [CLI, '--store', store, '--verbose', 'restore', 'host/a', 't.tree', out], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (b: Buffer) => {
      err += b.toString();
      // Once the restore has started writing: interrupt it.
      if (/t\.tree: \d+ \/ \d+ entries, [1-9]/.test(err) && child.exitCode === null && !child.killed) child.kill('SIGINT');
    });
    const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
    t.equal(code, 130, err);
    t.match(err, /cairn: interrupted \(SIGINT\)/);
    const names = (await fsp.readdir(out)).sort();
    t.ok(names.length < want.size, `stopped early (${names.length} of ${want.size})`);
    for (const n of names) {
      t.ok(want.has(n), `${n} is from the archive`);
      const st = await fsp.stat(path.join(out, n));
      // Completed files are whole; one cut off mid-write can only be shorter, never foreign.
      if (st.size === 4 * 1024 * 1024)
        t.equal(
          createHash('sha256')
            .update(await fsp.readFile(path.join(out, n)))
            .digest('hex'),
          want.get(n),
          `${n} is whole`,
        );
      else t.ok(st.size < 4 * 1024 * 1024, `${n} was being written`);
    }
  });
}

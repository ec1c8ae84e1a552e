/**
 * `cairn backup --dry-run` writes nothing (the datastore directory, mtimes included, is unchanged)
 * and prints what it would back up; `--exclude-file`; coded one-line errors for missing sources,
 * exclude files and `--changed` files, with no snapshot left behind.
 */
import t from 'tap';
import { promises as fsp, writeFileSync } from 'node:fs';
import path from 'node:path';
import { cairn, requireBuilt } from './run-cli.js';
import { seededBytes, tempDir } from '../helpers/fixtures.js';

/** Every path below `root` with its type, size and mtime (ns). */
async function listing(root: string): Promise<string[]> {
  const out: string[] = [];
  const visit = async (abs: string, rel: string): Promise<void> => {
    const st = await fsp.lstat(abs, { bigint: true });
    out.push(`${rel} ${st.isDirectory() ? 'd' : 'f'} ${st.size} ${st.mtimeNs}`);
    if (st.isDirectory()) for (const n of (await fsp.readdir(abs)).sort()) await visit(path.join(abs, n), `${rel}/${n}`);
  };
  await visit(root, '');
  return out;
}

if (requireBuilt(t)) {
  t.test('--dry-run prints entries and bytes per archive and writes nothing', async (t) => {
    const dir = tempDir(t, 'cairn-dry-');
    const store = path.join(dir, 'store');
    t.equal((await cairn(['init', store, '--sync-level', 'none'])).code, 0);
    const src = path.join(dir, 'src');
    await fsp.mkdir(path.join(src, 'cache'), { recursive: true });
    writeFileSync(path.join(src, 'a.txt'), 'hello');
    writeFileSync(path.join(src, 'b.log'), seededBytes(10_000, 1));
    writeFileSync(path.join(src, 'cache', 'big'), seededBytes(50_000, 2));
    writeFileSync(path.join(dir, 'disk.raw'), seededBytes(70_000, 3));
    const excl = path.join(dir, 'excludes');
    writeFileSync(excl, '# build output\n\ncache/\n*.log\n');

    // Before any snapshot (and again once there is a base).
    for (const round of [1, 2]) {
      const before = await listing(store);
      const r = await cairn(['--store', store, 'backup', 'host/a', `t.tree:${src}`, `d.img:${path.join(dir, 'disk.raw')}`, '--exclude-file', excl, '--dry-run']);
      t.equal(r.code, 0, r.err);
      t.match(r.out, /^dry run: would create a snapshot of host\/a/);
      t.match(r.out, /t\.tree: 2 entries \(1 files, 1 directories.*\), 5 B/, `round ${round}: excludes from the file apply`);
      t.match(r.out, /d\.img: image from file .*disk\.raw, 68\.4 KiB/);
      t.same(await listing(store), before, `round ${round}: the datastore directory is unchanged, mtimes included`);
      const snaps = await cairn(['--store', store, '--json', 'snapshots']);
      t.equal((JSON.parse(snaps.out) as unknown[]).length, round - 1, 'no snapshot made');
      if (round === 1) t.equal((await cairn(['--store', store, 'backup', 'host/a', `t.tree:${src}`])).code, 0, 'a real backup');
    }
    const j = await cairn(['--store', store, '--json', 'backup', 'host/a', `t.tree:${src}`, '--exclude', 'cache/', '--dry-run']);
    const parsed = JSON.parse(j.out) as { dryRun: boolean; base: string; archives: Record<string, { entries: number; bytes: number; filesReused: number }> };
    t.equal(parsed.dryRun, true);
    t.equal(parsed.archives['t.tree']!.entries, 3);
    t.equal(parsed.archives['t.tree']!.bytes, 10_005);
    t.equal(parsed.archives['t.tree']!.filesReused, 2, 'unchanged files of the base are not read');
  });

  t.test('bad input: one coded line, the right exit code, no snapshot', async (t) => {
    const dir = tempDir(t, 'cairn-dry-');
    const store = path.join(dir, 'store');
    t.equal((await cairn(['init', store, '--sync-level', 'none'])).code, 0);
    writeFileSync(path.join(dir, 'file'), 'x');
    writeFileSync(path.join(dir, 'disk.raw'), seededBytes(1000, 1));
    const cases: [string[], number, RegExp][] = [
      [['backup', 'host/a', 'etc.tree:/nonexistent-cairn-source'], 3, /^cairn: ERR_NOT_FOUND: tree source \/nonexistent-cairn-source does not exist\n$/],
      [['backup', 'host/a', `etc.tree:${path.join(dir, 'file')}`], 2, /^cairn: ERR_INVALID_ARGUMENT: tree source .*file is not a directory\n$/],
      [['backup', 'host/a', 'etc.tree:/nonexistent-cairn-source', '--dry-run'], 3, /^cairn: ERR_NOT_FOUND: tree source/],
      [['backup', 'host/a', `etc.tree:${dir}`, '--exclude-file', path.join(dir, 'nope')], 3, /^cairn: ERR_NOT_FOUND: exclude file .*nope does not exist\n$/],
      [['backup', 'host/a', `d.img:${path.join(dir, 'disk.raw')}`, '--changed', path.join(dir, 'nope')], 3, /^cairn: ERR_NOT_FOUND: changed-ranges file .*nope does not exist\n$/],
    ];
    for (const [args, code, msg] of cases) {
      const r = await cairn(['--store', store, ...args]);
      t.equal(r.code, code, `${args.join(' ')}: ${r.err}`);
      t.match(r.err, msg);
      t.notMatch(r.err, /\n\s+at /, 'no stack trace');
    }
    const snaps = await cairn(['--store', store, '--json', 'snapshots']);
    t.same(JSON.parse(snaps.out), [], 'no snapshot left');
  });
}

// A tree restore cannot be redirected (issue 12). The user who owns the restore target (root
// restoring a home directory into that user's home) swaps a directory the restore just made for a
// symlink to a root-only place outside the target, while the restore runs: nothing may be written,
// chmod'ed or chown'ed outside. A hook pauses the restore right after it made a directory, and a
// child process running as `nobody` does the swap, so the window is hit every time.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, chownSync, lstatSync, mkdirSync, readFileSync, readdirSync, statSync, symlinkSync, writeFileSync, utimesSync } from 'node:fs';
import path from 'node:path';
import { Datastore, isCairnError } from '../../lib/index.js';
import { tempDir } from '../helpers/fixtures.js';

const NOBODY = 65534;
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const why = process.getuid?.() !== 0 ? 'needs root (a second user owns the target)' : false;

t.test('a directory swapped for a symlink during a tree restore', { skip: why }, async (t) => {
  const dir = tempDir(t, 'cairn-race-');
  chmodSync(dir, 0o755); // nobody must reach the target
  // The archive: d/ (0777) with a file, e/ (0777, empty), a big file and a symlink at the top.
  const src = path.join(dir, 'src');
  mkdirSync(path.join(src, 'd', 'deeper'), { recursive: true });
  mkdirSync(path.join(src, 'e'));
  writeFileSync(path.join(src, 'd', 'x.txt'), 'written through the swapped directory\n');
  writeFileSync(path.join(src, 'd', 'shadow'), 'replaced through the swapped directory\n');
  writeFileSync(path.join(src, 'd', 'deeper', 'y.txt'), 'deeper\n');
  writeFileSync(path.join(src, 'top.txt'), 'top\n');
  symlinkSync('top.txt', path.join(src, 'link'));
  for (const d of ['d', 'e', 'd/deeper']) chmodSync(path.join(src, d), 0o777);
  chmodSync(path.join(src, 'd', 'x.txt'), 0o666);
  utimesSync(path.join(src, 'e'), 1_000_000, 1_000_000);
  const ds = await Datastore.create(path.join(dir, 'store'), { syncLevel: 'none', threads: 1 });
  t.teardown(() => ds.close());
  const w = await ds.group('host/home').backup({ time: 1_767_225_600 });
  await w.addTree('home', src);
  const snap = await w.commit();

  /** A root-only directory outside the target with a root-only 0600 file. */
  const makeOutside = (name: string): { sec: string; shadow: string; before: string } => {
    const sec = path.join(dir, name);
    mkdirSync(sec, { mode: 0o700 });
    chmodSync(sec, 0o700);
    const shadow = path.join(sec, 'shadow');
    writeFileSync(shadow, 'root:secret\n', { mode: 0o600 });
    chmodSync(shadow, 0o600);
    utimesSync(sec, 2_000_000, 2_000_000);
    return { sec, shadow, before: describe(sec) };
  };
  const describe = (sec: string): string => {
    const out: string[] = [];
    const st = lstatSync(sec);
    out.push(`. ${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid} ${st.mtimeMs}`);
    for (const n of readdirSync(sec).sort()) {
      const s = lstatSync(path.join(sec, n));
      out.push(`${n} ${(s.mode & 0o7777).toString(8)} ${s.uid}:${s.gid} ${s.mtimeMs} ${s.isFile() ? sha(readFileSync(path.join(sec, n))) : ''}`);
    }
    return out.join('\n');
  };
  /** A target owned by nobody, as a home directory is owned by its user. */
  const makeTarget = (name: string): string => {
    const target = path.join(dir, name);
    mkdirSync(target, { mode: 0o755 });
    chownSync(target, NOBODY, NOBODY);
    return target;
  };
  /** As nobody: move `target/rel` aside and put a symlink to `to` in its place. */
  const swap = (target: string, rel: string, to: string): void => {
    const p = path.join(target, rel);
    const r = spawnSync('sh', ['-c', 'mv "$1" "$1.moved" && ln -s "$2" "$1"', 'sh', p, to], { uid: NOBODY, gid: NOBODY, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`swap as nobody failed: ${r.stderr}`);
  };

  for (const [what, rel, overwrite] of [
    ['a directory that gets contents', 'd', false],
    ['a directory that gets contents (overwrite)', 'd', true],
    // The user's own existing directory d (restoring over a home): the restore goes on in it.
    ['a subdirectory in an existing directory of the user', 'd/deeper', true],
    ['an empty directory (only its metadata)', 'e', false],
  ] as const) {
    t.test(`${what}: ${rel} -> outside`, async (t) => {
      for (const toFile of [false, true]) {
        const out = makeOutside(`sec-${rel.replace('/', '_')}-${overwrite}-${toFile}`);
        const target = makeTarget(`target-${rel.replace('/', '_')}-${overwrite}-${toFile}`);
        if (overwrite) writeFileSync(path.join(target, 'already-here'), 'x');
        if (rel === 'd/deeper') {
          mkdirSync(path.join(target, 'd'));
          chownSync(path.join(target, 'd'), NOBODY, NOBODY);
        }
        let swapped = false;
        const r = await snap.open();
        const err = await r
          .restoreTree('home.tree', target, {
            overwrite,
            hooks: {
              afterMkdir: (made) => {
                if (Buffer.from(made).toString() !== rel || swapped) return;
                swapped = true;
                // To the root-only directory, or straight at the root-only file.
                swap(target, rel, toFile ? out.shadow : out.sec);
              },
            },
          })
          .then(
            () => undefined,
            (e: unknown) => e,
          );
        await r.close();
        const to = toFile ? 'the file' : 'the directory';
        t.ok(swapped, `the swap to ${to} happened during the restore`);
        t.equal(describe(out.sec), out.before, `swap to ${to}: nothing outside was written, chmod'ed or chown'ed`);
        t.equal(statSync(out.shadow).mode & 0o7777, 0o600, `swap to ${to}: the root-only file is still 0600`);
        t.equal(readFileSync(out.shadow, 'utf8'), 'root:secret\n', `swap to ${to}: and unchanged`);
        t.ok(isCairnError(err, 'ERR_UNSAFE_PATH'), `swap to ${to}: the restore ends with ERR_UNSAFE_PATH`, { err });
        t.match((err as Error | undefined)?.message ?? '', rel, 'naming the path');
        t.equal(lstatSync(path.join(target, rel)).isSymbolicLink(), true, 'the symlink was not followed or replaced');
      }
    });
  }

  t.test('the target root itself is a symlink', async (t) => {
    const out = makeOutside('sec-root');
    const link = path.join(dir, 'target-link');
    symlinkSync(out.sec, link);
    const r = await snap.open();
    const err = await r.restoreTree('home.tree', link, { overwrite: true }).then(
      () => undefined,
      (e: unknown) => e,
    );
    await r.close();
    t.ok(isCairnError(err, 'ERR_UNSAFE_PATH'), 'ERR_UNSAFE_PATH', { err });
    t.equal(describe(out.sec), out.before, 'nothing written into the directory it points at');
  });

  t.test('without a swap the same restore is exact', async (t) => {
    const target = makeTarget('target-plain');
    const r = await snap.open();
    const rs = await r.restoreTree('home.tree', target);
    await r.close();
    t.same(rs.problems, [], 'no problems');
    for (const d of ['d', 'e', 'd/deeper']) t.equal(statSync(path.join(target, d)).mode & 0o7777, 0o777, `${d}: mode`);
    t.equal(statSync(path.join(target, 'e')).mtimeMs, 1_000_000_000, 'e: mtime');
    t.equal(readFileSync(path.join(target, 'd', 'deeper', 'y.txt'), 'utf8'), 'deeper\n', 'content');
    t.equal(lstatSync(path.join(target, 'link')).isSymbolicLink(), true, 'symlink');
  });
});

// Tree restore of a tree far deeper than the descriptor limit (issue 12): the restore works only
// through directory descriptors, and keeps a bounded number of them open at every moment, also
// while it applies the metadata of many levels at once as the walk climbs back up. A tree 3,000
// levels deep (with side directories, so the restore goes up and down) restores in full under
// `ulimit -n 256`, every level with its file, its mode and its mtime.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { closeSync, constants, fchmodSync, mkdirSync, mkdtempSync, readSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { AT_FDCWD, nativeFstat, nativeFutimens, nativeMkdirat, nativeOpenat, nativeReaddir } from '../../lib/codec/native.js';
import { MAX_OPEN_DIRS } from '../../lib/datastore/tree-restore.js';
import { requireBuilt } from '../cli/run-cli.js';
import { cairnLimited, cairnTimed } from '../helpers/timed-cli.js';

const { O_RDONLY, O_WRONLY, O_CREAT, O_DIRECTORY, O_NOFOLLOW } = constants;
const DIR = O_RDONLY | O_DIRECTORY | O_NOFOLLOW;
const DEPTH = 3000;

function writeAt(dirfd: number, name: string, text: string): void {
  const f = nativeOpenat(dirfd, name, O_WRONLY | O_CREAT, 0o644);
  try {
    const b = Buffer.from(text);
    for (let w = 0; w < b.length;) w += writeSync(f, b, w, b.length - w);
  } finally {
    closeSync(f);
  }
}

function readAt(dirfd: number, name: string): string {
  const f = nativeOpenat(dirfd, name, O_RDONLY | O_NOFOLLOW);
  try {
    const buf = Buffer.alloc(4096);
    let n = 0;
    for (let r; (r = readSync(f, buf, n, buf.length - n, n)) > 0;) n += r;
    return buf.subarray(0, n).toString();
  } finally {
    closeSync(f);
  }
}

/** The mode and mtime each level of the tree gets (all different from what mkdir gives). */
const modeOf = (level: number): number => (level % 3 === 0 ? 0o750 : level % 3 === 1 ? 0o705 : 0o711);
const mtimeOf = (level: number): bigint => 1_600_000_000_000_000_000n + BigInt(level) * 1_000_000_123n;
const sideMode = 0o701;
const sideMtime = (level: number): bigint => 1_500_000_000_000_000_000n + BigInt(level) * 7n;

/**
 * Goes down the chain `d/d/...` below `rootFd` one descriptor at a time (paths exceed PATH_MAX),
 * calling `each(level, fd)` in every level 1..depth.
 */
function down(rootFd: number, depth: number, each: (level: number, fd: number) => void): void {
  let fd = rootFd;
  for (let level = 1; level <= depth; level++) {
    const next = nativeOpenat(fd, 'd', DIR);
    if (fd !== rootFd) closeSync(fd);
    fd = next;
    each(level, fd);
  }
  if (fd !== rootFd) closeSync(fd);
}

t.setTimeout(240_000);
if (requireBuilt(t)) {
  t.test('the restore keeps no more than MAX_OPEN_DIRS directories open', async (t) => {
    t.ok(MAX_OPEN_DIRS <= 128, `${MAX_OPEN_DIRS} directories, with room for files in flight and Node's own descriptors under 256`);
  });

  t.test('a tree 3,000 levels deep restores in full under a descriptor limit of 256', async (t) => {
    // Not tempDir: fs.rmSync cannot remove a tree deeper than PATH_MAX; rm(1) walks by descriptor.
    const dir = mkdtempSync(path.join(tmpdir(), 'cairn-deep-restore-'));
    t.teardown(() => void spawnSync('rm', ['-rf', dir]));
    const src = path.join(dir, 'src');
    mkdirSync(src);
    // Every level: the next level `d` and a file `f`; every 10th level also a side directory `e`
    // (after `d` in walk order) with a file: the restore climbs back up to that level, applies
    // the metadata of the 10 levels below, and goes down again.
    const srcFd = nativeOpenat(AT_FDCWD, src, DIR);
    try {
      let fd = srcFd;
      for (let level = 1; level <= DEPTH; level++) {
        nativeMkdirat(fd, 'd', 0o755);
        const next = nativeOpenat(fd, 'd', DIR);
        if (fd !== srcFd) closeSync(fd);
        fd = next;
        writeAt(fd, 'f', `level ${level}\n`);
        if (level % 10 === 0) {
          nativeMkdirat(fd, 'e', 0o755);
          const e = nativeOpenat(fd, 'e', DIR);
          writeAt(e, 'n', `side ${level}`);
          fchmodSync(e, sideMode);
          nativeFutimens(e, sideMtime(level), sideMtime(level));
          closeSync(e);
        }
      }
      if (fd !== srcFd) closeSync(fd);
      // Modes and mtimes last (creating an entry changes its directory's mtime).
      down(srcFd, DEPTH, (level, fd) => {
        fchmodSync(fd, modeOf(level));
        nativeFutimens(fd, mtimeOf(level), mtimeOf(level));
      });
    } finally {
      closeSync(srcFd);
    }

    const store = path.join(dir, 'store');
    t.equal((await cairnTimed(['init', store])).code, 0);
    const b = await cairnTimed(['--store', store, 'backup', 'host/deep', 'root.tree:' + src], { timeoutMs: 120_000 });
    t.equal(b.code, 0, `backup exit 0: ${(b.out + b.err).slice(0, 500)}`);

    const out = path.join(dir, 'restored');
    const r = await cairnLimited(256, ['--store', store, 'restore', 'host/deep', 'root.tree', out]);
    t.equal(r.code, 0, `restore exit 0 under ulimit -n 256: ${r.out.slice(0, 2000)}`);
    t.notMatch(r.out, /EMFILE|ENFILE/, 'no descriptor shortage');

    const outFd = nativeOpenat(AT_FDCWD, out, DIR);
    const bad: string[] = [];
    const fail = (what: string): void => void (bad.length < 20 && bad.push(what));
    let levels = 0;
    let sides = 0;
    try {
      t.same(
        nativeReaddir(outFd).map((e) => Buffer.from(e.name).toString()),
        ['d'],
        'the target holds the tree only',
      );
      down(outFd, DEPTH, (level, fd) => {
        levels++;
        const st = nativeFstat(fd);
        if ((st.mode & 0o7777) !== modeOf(level)) fail(`level ${level}: mode ${(st.mode & 0o7777).toString(8)}`);
        if (st.mtimeNs !== mtimeOf(level)) fail(`level ${level}: mtime ${st.mtimeNs}`);
        const names = nativeReaddir(fd)
          .map((e) => Buffer.from(e.name).toString())
          .sort();
        const want = [...(level < DEPTH ? ['d'] : []), ...(level % 10 === 0 ? ['e'] : []), 'f'].sort();
        if (names.join() !== want.join()) fail(`level ${level}: entries ${names.join()}`);
        if (readAt(fd, 'f') !== `level ${level}\n`) fail(`level ${level}: content of f`);
        if (level % 10 === 0) {
          sides++;
          const e = nativeOpenat(fd, 'e', DIR);
          try {
            const es = nativeFstat(e);
            if ((es.mode & 0o7777) !== sideMode) fail(`level ${level}/e: mode ${(es.mode & 0o7777).toString(8)}`);
            if (es.mtimeNs !== sideMtime(level)) fail(`level ${level}/e: mtime ${es.mtimeNs}`);
            if (readAt(e, 'n') !== `side ${level}`) fail(`level ${level}/e: content of n`);
          } finally {
            closeSync(e);
          }
        }
      });
    } finally {
      closeSync(outFd);
    }
    t.equal(levels, DEPTH, `all ${DEPTH} levels are restored`);
    t.equal(sides, DEPTH / 10, 'and every side directory');
    t.same(bad, [], 'each level with its file, its mode and its mtime');
  });
}

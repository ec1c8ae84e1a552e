// Trees deeper than PATH_MAX and entries that cannot be read (issue 12): the walk goes through
// directory file descriptors, so a 5,000-byte-deep file is backed up like any other; whatever
// cannot be read is listed and makes `cairn backup` exit 7 (the snapshot is still committed).
// The walk keeps a bounded number of those descriptors open: a tree 3,000 levels deep is backed
// up in full under a descriptor limit of 256, and a directory closed and re-opened on the way
// back up must still be the one first opened there.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, closeSync, constants, linkSync, mkdirSync, mkdtempSync, renameSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Datastore } from '../../lib/index.js';
import { AT_FDCWD, nativeMkdirat, nativeOpenat } from '../../lib/codec/native.js';
import { MAX_OPEN_DIRS } from '../../lib/datastore/tree-writer.js';
import { tempDir } from '../helpers/fixtures.js';
import { requireBuilt } from '../cli/run-cli.js';
import { cairnLimited, cairnTimed } from '../helpers/timed-cli.js';

const { O_RDONLY, O_WRONLY, O_CREAT, O_DIRECTORY, O_NOFOLLOW } = constants;
const NOBODY = 65534;

/** Every path of a tree archive (depth first), with file contents. */
async function listAll(store: string, group: string, archive: string): Promise<Map<string, string>> {
  const ds = await Datastore.open(store);
  try {
    const snaps = await ds.group(group).snapshots();
    const r = await snaps[snaps.length - 1]!.open();
    try {
      const tree = await r.tree(archive);
      const out = new Map<string, string>();
      const walk = async (dir: typeof tree.root): Promise<void> => {
        for (const item of await tree.readDir(dir)) {
          const p = Buffer.from(item.path).toString('hex');
          if (item.entry.kind === 'dir') {
            out.set(p, 'dir');
            await walk(item);
          } else if (item.entry.kind === 'file') {
            out.set(p, `file:${Buffer.from(await tree.readFile(item)).toString()}`);
          } else out.set(p, item.entry.kind);
        }
      };
      await walk(tree.root);
      return out;
    } finally {
      await r.close();
    }
  } finally {
    await ds.close();
  }
}

/** A directory made below the parent's descriptor, and its own descriptor (the parent stays open). */
function mkdirAt(parent: number, name: string): number {
  nativeMkdirat(parent, name, 0o755);
  return nativeOpenat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
}

function writeAt(dirfd: number, name: string, text: string): void {
  const f = nativeOpenat(dirfd, name, O_WRONLY | O_CREAT, 0o644);
  try {
    writeSync(f, text);
  } finally {
    closeSync(f);
  }
}

/** `d/d/.../d` (`depth` levels) below `dirfd`, made through descriptors; `each(level, fd)` runs in every level. */
function chainAt(dirfd: number, depth: number, each: (level: number, fd: number) => void): void {
  let fd = dirfd;
  for (let i = 1; i <= depth; i++) {
    const next = mkdirAt(fd, 'd');
    if (fd !== dirfd) closeSync(fd);
    fd = next;
    each(i, fd);
  }
  if (fd !== dirfd) closeSync(fd);
}

t.setTimeout(120_000);
if (requireBuilt(t)) {
  t.test('a file 5,000+ bytes below the root is backed up, with everything around it', async (t) => {
    // Not tempDir: fs.rmSync cannot remove a tree deeper than PATH_MAX; rm(1) walks by descriptor.
    const dir = mkdtempSync(path.join(tmpdir(), 'cairn-deep-'));
    t.teardown(() => void spawnSync('rm', ['-rf', dir]));
    const src = path.join(dir, 'src');
    mkdirSync(src);
    writeFileSync(path.join(src, 'top.txt'), 'top');
    // 26 levels of 200-byte names (not UTF-8 either): 5,226 bytes, beyond PATH_MAX (4,096).
    const seg = Buffer.alloc(200, 0x64);
    seg[5] = 0xff;
    const want = new Map<string, string>([[Buffer.from('top.txt').toString('hex'), 'file:top']]);
    let fd = nativeOpenat(AT_FDCWD, src, O_RDONLY | O_DIRECTORY);
    let rel = Buffer.alloc(0);
    for (let i = 0; i < 26; i++) {
      nativeMkdirat(fd, seg, 0o755);
      const next = nativeOpenat(fd, seg, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
      closeSync(fd);
      fd = next;
      rel = rel.length === 0 ? Buffer.from(seg) : Buffer.concat([rel, Buffer.from('/'), seg]);
      want.set(rel.toString('hex'), 'dir');
      const f = nativeOpenat(fd, `at-${i}`, O_WRONLY | O_CREAT, 0o644);
      writeSync(f, `level ${i}`);
      closeSync(f);
      want.set(Buffer.concat([rel, Buffer.from(`/at-${i}`)]).toString('hex'), `file:level ${i}`);
    }
    closeSync(fd);
    t.ok(rel.length > 5000, `${rel.length} bytes deep`);

    const store = path.join(dir, 'store');
    t.equal((await cairnTimed(['init', store])).code, 0);
    const r = await cairnTimed(['--store', store, 'backup', 'host/deep', 'root.tree:' + src]);
    t.equal(r.code, 0, `exit 0 and no warning: ${r.out}${r.err}`);
    t.notMatch(r.out + r.err, /warning|ENAMETOOLONG/);
    const got = await listAll(store, 'host/deep', 'root.tree');
    t.equal(got.size, want.size, `all ${want.size} entries are in the archive`);
    t.same(got, want, 'every directory and file, with its content');
  });

  t.test('entries the backup cannot read make it exit 7 and are listed; the rest is committed', async (t) => {
    const dir = tempDir(t, 'cairn-unreadable-');
    chmodSync(dir, 0o755);
    const src = path.join(dir, 'src');
    mkdirSync(path.join(src, 'closed'), { recursive: true });
    writeFileSync(path.join(src, 'closed', 'inside.txt'), 'root only');
    chmodSync(path.join(src, 'closed'), 0o700);
    writeFileSync(path.join(src, 'locked.txt'), 'root only');
    chmodSync(path.join(src, 'locked.txt'), 0o600);
    writeFileSync(path.join(src, 'open.txt'), 'anyone');
    chmodSync(path.join(src, 'open.txt'), 0o644);
    const home = path.join(dir, 'home');
    mkdirSync(home);
    chownSync(home, NOBODY, NOBODY);
    const store = path.join(home, 'store');
    const as = { uid: NOBODY, gid: NOBODY, cwd: home };
    t.equal((await cairnTimed(['init', store], as)).code, 0);
    const r = await cairnTimed(['--store', store, 'backup', 'host/u', 'root.tree:' + src], as);
    t.equal(r.code, 7, `exit 7 (incomplete): ${r.out}${r.err}`);
    t.match(r.out + r.err, /closed: EACCES/, 'the unreadable directory is named');
    t.match(r.out + r.err, /locked\.txt: EACCES/, 'the unreadable file is named');
    t.match(r.out + r.err, /created snapshot/, 'the snapshot is committed');
    const json = await cairnTimed(['--store', store, '--json', 'backup', 'host/u', 'root.tree:' + src], as);
    t.equal(json.code, 7);
    const stats = (JSON.parse(json.out) as { stats: Record<string, { problemCount: number; problems: { path: string; code: string }[] }> }).stats['root.tree']!;
    t.same(stats.problems.map((p) => `${p.path} ${p.code}`).sort(), ['closed EACCES', 'locked.txt EACCES']);
    const got = await listAll(store, 'host/u', 'root.tree');
    t.equal(got.get(Buffer.from('open.txt').toString('hex')), 'file:anyone', 'what could be read is there');
    t.equal(got.get(Buffer.from('closed').toString('hex')), 'dir', 'the unlistable directory is kept, empty');
    t.notOk(got.has(Buffer.from('locked.txt').toString('hex')), 'the unreadable file is left out');
  });

  t.test('a tree 3,000 levels deep is backed up in full under a descriptor limit of 256, and without one', async (t) => {
    const dir = mkdtempSync(path.join(tmpdir(), 'cairn-deeper-'));
    t.teardown(() => void spawnSync('rm', ['-rf', dir]));
    const src = path.join(dir, 'src');
    mkdirSync(src);
    const DEPTH = 3000;
    // Every 10th level also has a subdirectory `e` after `d`: the walk comes back to that level
    // (long closed) to walk it, and must re-open it from an ancestor still open.
    const rootFd = nativeOpenat(AT_FDCWD, src, O_RDONLY | O_DIRECTORY);
    try {
      chainAt(rootFd, DEPTH, (level, fd) => {
        if (level === DEPTH) writeAt(fd, 'leaf.txt', 'the bottom of the tree\n');
        if (level % 10 === 0) {
          const e = mkdirAt(fd, 'e');
          writeAt(e, 'n', String(level));
          closeSync(e);
        }
      });
    } finally {
      closeSync(rootFd);
    }
    const store = path.join(dir, 'store');
    t.equal((await cairnTimed(['init', store])).code, 0);
    const r = await cairnLimited(256, ['--store', store, 'backup', 'host/deeper', 'root.tree:' + src]);
    t.equal(r.code, 0, `exit 0: ${r.out.slice(0, 2000)}`);
    t.notMatch(r.out, /EMFILE|warning/, 'no descriptor shortage, no warning');
    // And with the usual limit: the walk is not a recursion either (3,000 nested calls overflowed
    // the stack: RangeError, exit 1).
    const again = await cairnTimed(['--store', store, 'backup', 'host/deeper', 'root.tree:' + src], { timeoutMs: 60_000 });
    t.equal(again.code, 0, `exit 0 without a low limit: ${(again.out + again.err).slice(0, 500)}`);

    const ds = await Datastore.open(store);
    t.teardown(() => ds.close());
    const snaps = await ds.group('host/deeper').snapshots();
    t.equal(snaps.length, 2);
    const rd = await snaps[0]!.open();
    t.teardown(() => rd.close());
    const tree = await rd.tree('root.tree');
    const dirs = new Set<number>();
    const found = new Map<number, string>();
    let leaf: string | undefined;
    let n = 0;
    for await (const item of tree.walk()) {
      n++;
      const p = Buffer.from(item.path).toString('latin1');
      if (p === '') continue;
      const comps = p.split('/');
      let level = 0;
      while (level < comps.length && comps[level] === 'd') level++;
      const rest = comps.slice(level).join('/');
      if (rest === '' && item.entry.kind === 'dir') dirs.add(level);
      else if (rest === 'e' && item.entry.kind === 'dir' && level % 10 === 0) continue;
      else if (rest === 'e/n' && item.entry.kind === 'file') found.set(level, Buffer.from(await tree.readFile(item)).toString());
      else if (rest === 'leaf.txt' && level === DEPTH) leaf = Buffer.from(await tree.readFile(item)).toString();
      else t.fail(`unexpected entry ${p.slice(-40)} (${item.entry.kind})`);
    }
    t.equal(dirs.size, DEPTH, `all ${DEPTH} levels are in the archive`);
    t.ok(
      [...dirs].every((l) => l >= 1 && l <= DEPTH),
      'levels 1..3000',
    );
    t.equal(found.size, DEPTH / 10, 'every second subdirectory (walked after coming back up) is there');
    t.ok(
      [...found].every(([level, text]) => text === String(level)),
      'each with its own file',
    );
    t.equal(leaf, 'the bottom of the tree\n', 'the leaf file, with its content');
    t.equal(n, 1 + DEPTH + 1 + 2 * (DEPTH / 10), 'nothing else');
    t.equal(tree.entryCount, n, 'the trailer counts what is there');
  });

  t.test('a directory swapped while its descriptor was closed is not followed when re-opened', async (t) => {
    const DEPTH = MAX_OPEN_DIRS + 40;
    for (const how of ['directory', 'symlink'] as const) {
      t.test(`swapped for a ${how}`, async (t) => {
        const dir = mkdtempSync(path.join(tmpdir(), 'cairn-reopen-'));
        t.teardown(() => void spawnSync('rm', ['-rf', dir]));
        // src/p/top/chain/d/d/... (deep enough to close p and top), then src/p/top/next, and a
        // hardlink of the deep leaf outside p (src/zz/link). Outside the tree: evil/top/next/secret.
        const src = path.join(dir, 'src');
        mkdirSync(path.join(src, 'p', 'top', 'chain'), { recursive: true });
        mkdirSync(path.join(src, 'p', 'top', 'next'));
        writeFileSync(path.join(src, 'p', 'top', 'next', 'mine.txt'), 'mine');
        writeFileSync(path.join(src, 'p', 'a.txt'), 'a');
        mkdirSync(path.join(src, 'zz'));
        writeFileSync(path.join(src, 'zz', 'after.txt'), 'after');
        const chainFd = nativeOpenat(AT_FDCWD, path.join(src, 'p', 'top', 'chain'), O_RDONLY | O_DIRECTORY);
        try {
          chainAt(chainFd, DEPTH, (level, fd) => {
            if (level === DEPTH) writeAt(fd, 'leaf.txt', 'deep leaf');
          });
        } finally {
          closeSync(chainFd);
        }
        linkSync(path.join(src, 'p', 'top', 'chain', ...Array<string>(DEPTH).fill('d'), 'leaf.txt'), path.join(src, 'zz', 'link'));
        const evil = path.join(dir, 'evil');
        mkdirSync(path.join(evil, 'top', 'next'), { recursive: true });
        writeFileSync(path.join(evil, 'top', 'next', 'secret.txt'), 'outside the tree');

        const ds = await Datastore.create(path.join(dir, 'store'), { syncLevel: 'none', threads: 1 });
        t.teardown(() => ds.close());
        const w = await ds.group('host/swap').backup({ time: 1000 });
        const reopened: string[] = [];
        const stats = await w.addTree('root', src, {
          hooks: {
            beforeReopen: (rel) => {
              const r = Buffer.from(rel).toString();
              reopened.push(r);
              if (r !== 'p/top') return;
              // The walk is back at p/top (closed) to walk `next`: swap p, an ancestor, meanwhile.
              renameSync(path.join(src, 'p'), path.join(dir, 'p-moved'));
              if (how === 'directory') renameSync(evil, path.join(src, 'p'));
              else symlinkSync(evil, path.join(src, 'p'));
            },
          },
        });
        const snap = await w.commit();
        t.same(reopened, ['p/top'], 'the walk re-opened p/top (closed while it walked the chain below)');
        t.same(
          stats.problems.map((p) => [p.path, p.code]),
          [['p', 'CHANGED']],
          'the swapped directory is reported as changed',
        );
        t.match(stats.problems[0]!.message, /left out/);
        const rd = await snap.open();
        t.teardown(() => rd.close());
        const tree = await rd.tree('root.tree');
        const paths: string[] = [];
        for await (const item of tree.walk()) {
          paths.push(Buffer.from(item.path).toString());
          if (Buffer.from(item.path).toString() === 'zz/link') {
            t.equal(item.entry.kind, 'file', 'the hardlink whose first name was left out is a file of its own');
            t.equal(Buffer.from(await tree.readFile(item)).toString(), 'deep leaf');
          }
        }
        t.same(paths, ['', 'zz', 'zz/after.txt', 'zz/link'], 'p is left out with everything below it; nothing from outside the tree');
        t.equal(tree.entryCount, paths.length, 'the trailer counts what is there');
        t.equal(stats.entries, paths.length);
        t.equal(stats.dirs, 2);
        t.equal(stats.files, 2);
      });
    }
  });

  t.test('an unswapped directory re-opened on the way back up is walked as usual', async (t) => {
    const dir = mkdtempSync(path.join(tmpdir(), 'cairn-reopen-'));
    t.teardown(() => void spawnSync('rm', ['-rf', dir]));
    const src = path.join(dir, 'src');
    mkdirSync(path.join(src, 'p', 'top', 'chain'), { recursive: true });
    mkdirSync(path.join(src, 'p', 'top', 'next'));
    writeFileSync(path.join(src, 'p', 'top', 'next', 'mine.txt'), 'mine');
    const chainFd = nativeOpenat(AT_FDCWD, path.join(src, 'p', 'top', 'chain'), O_RDONLY | O_DIRECTORY);
    try {
      chainAt(chainFd, MAX_OPEN_DIRS + 40, () => undefined);
    } finally {
      closeSync(chainFd);
    }
    const ds = await Datastore.create(path.join(dir, 'store'), { syncLevel: 'none', threads: 1 });
    t.teardown(() => ds.close());
    const w = await ds.group('host/noswap').backup({ time: 1000 });
    const reopened: string[] = [];
    const stats = await w.addTree('root', src, { hooks: { beforeReopen: (rel) => void reopened.push(Buffer.from(rel).toString()) } });
    const snap = await w.commit();
    t.same(reopened, ['p/top']);
    t.same(stats.problems, []);
    const rd = await snap.open();
    t.teardown(() => rd.close());
    const tree = await rd.tree('root.tree');
    t.equal(Buffer.from(await tree.readFile('p/top/next/mine.txt')).toString(), 'mine');
    t.equal(stats.dirs, 1 + 3 + MAX_OPEN_DIRS + 40 + 1);
  });
}

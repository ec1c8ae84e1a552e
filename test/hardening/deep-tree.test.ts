// Trees deeper than PATH_MAX and entries that cannot be read (issue 12): the walk goes through
// directory file descriptors, so a 5,000-byte-deep file is backed up like any other; whatever
// cannot be read is listed and makes `cairn backup` exit 7 (the snapshot is still committed).
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, closeSync, constants, mkdirSync, mkdtempSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Datastore } from '../../lib/index.js';
import { AT_FDCWD, nativeMkdirat, nativeOpenat } from '../../lib/codec/native.js';
import { tempDir } from '../helpers/fixtures.js';
import { requireBuilt } from '../cli/run-cli.js';
import { cairnTimed } from '../helpers/timed-cli.js';

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
}

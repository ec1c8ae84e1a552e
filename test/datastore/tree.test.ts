import t from 'tap';
import { promises as fsp, appendFileSync, unlinkSync } from 'node:fs';
import path from 'node:path';
import { Datastore } from '../../lib/index.js';
import { nativeListXattrs, nativeGetXattr, nativeMknod, nativeSetXattr } from '../../lib/codec/native.js';
import { seededBytes, tempDir } from '../helpers/fixtures.js';

const isRoot = process.getuid?.() === 0;
const B = (s: string | number[]): Buffer => (typeof s === 'string' ? Buffer.from(s) : Buffer.from(s));
const J = (...parts: (Buffer | string)[]): Buffer =>
  Buffer.concat(parts.flatMap((p, i) => (i === 0 ? [B(p as string).length ? Buffer.from(p) : Buffer.from(p)] : [Buffer.from('/'), Buffer.from(p)])));

/** A tree with every entry type, odd names, xattrs, a sparse file and hardlinks. */
async function makeTree(root: string): Promise<void> {
  const r = Buffer.from(root);
  await fsp.mkdir(root, { recursive: true });
  await fsp.writeFile(J(r, 'plain.txt'), 'hello\n');
  await fsp.writeFile(J(r, 'empty'), '');
  await fsp.writeFile(J(r, 'big.bin'), seededBytes(3 * 1024 * 1024 + 17, 5));
  await fsp.writeFile(J(r, B([0x6e, 0x61, 0xef, 0xbb, 0xbf, 0xff, 0x80, 0x2e, 0x62, 0x69, 0x6e])), 'latin-1 and invalid UTF-8 name');
  await fsp.writeFile(J(r, 'with space and\nnewline'), 'x');
  await fsp.writeFile(J(r, 'L'.repeat(255)), 'long name');
  let deep = J(r, 'deep');
  for (let i = 0; i < 30; i++) deep = J(deep, `level-${i}`);
  await fsp.mkdir(deep, { recursive: true });
  await fsp.writeFile(J(deep, 'bottom'), 'deep file');
  await fsp.symlink('plain.txt', J(r, 'link-rel'));
  await fsp.symlink('/etc/passwd', J(r, 'link-abs'));
  await fsp.symlink('does/not/exist', J(r, 'link-dangling'));
  await fsp.mkdir(J(r, 'sub'));
  await fsp.writeFile(J(r, 'sub', 'a'), 'hardlinked content');
  await fsp.link(J(r, 'sub', 'a'), J(r, 'sub', 'b'));
  await fsp.link(J(r, 'sub', 'a'), J(r, 'z-other-dir-link'));
  // Sparse: 8 MiB with 4 KiB of data in the middle.
  const fh = await fsp.open(J(r, 'sparse.img'), 'w');
  await fh.write(Buffer.alloc(4096, 7), 0, 4096, 4 * 1024 * 1024);
  await fh.truncate(8 * 1024 * 1024);
  await fh.close();
  nativeMknod(J(r, 'fifo'), 0o010644, 0, 0);
  nativeMknod(J(r, 'sock'), 0o140755, 0, 0);
  if (isRoot) {
    nativeMknod(J(r, 'null-dev'), 0o020666, 1, 3);
    nativeMknod(J(r, 'blk-dev'), 0o060660, 7, 200);
  }
  nativeSetXattr(J(r, 'plain.txt'), 'user.comment', B('a comment'));
  nativeSetXattr(J(r, 'plain.txt'), 'user.bin', B([0, 1, 2, 255]));
  nativeSetXattr(J(r, 'sub'), 'user.dir', B('on a directory'));
  await fsp.writeFile(J(r, 'setuid'), '#!/bin/sh\n');
  await fsp.chmod(J(r, 'setuid'), 0o4755);
  await fsp.mkdir(J(r, 'sticky'));
  await fsp.chmod(J(r, 'sticky'), 0o1777);
  await fsp.writeFile(J(r, 'setgid'), '');
  await fsp.chmod(J(r, 'setgid'), 0o2750);
  if (isRoot) await fsp.lchown(J(r, 'plain.txt'), 1234, 5678);
  if (isRoot) await fsp.lchown(J(r, 'link-rel'), 4321, 8765);
  // Odd mtimes, with nanoseconds, set last (children change directories' mtimes).
  await fsp.utimes(J(r, 'plain.txt'), 1_000_000_000.123456, 1_000_000_000.123456);
}

interface Meta {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  mtimeNs: string;
  size: number;
  nlinkGroup?: string;
  target?: string;
  rdev?: string;
  xattrs: string;
  content?: string;
}

/** A full metadata walk: every entry's type, mode, owner, mtime (ns), size, target, rdev, xattrs, content hash, and hardlink groups. */
async function walk(root: string): Promise<Map<string, Meta>> {
  const out = new Map<string, Meta>();
  const inodes = new Map<string, string>();
  const { createHash } = await import('node:crypto');
  const visit = async (abs: Buffer, rel: string): Promise<void> => {
    const st = await fsp.lstat(abs, { bigint: true });
    const type = st.isFile()
      ? 'file'
      : st.isDirectory()
        ? 'dir'
        : st.isSymbolicLink()
          ? 'symlink'
          : st.isFIFO()
            ? 'fifo'
            : st.isSocket()
              ? 'socket'
              : st.isCharacterDevice()
                ? 'chardev'
                : st.isBlockDevice()
                  ? 'blockdev'
                  : '?';
    const xs = st.isSymbolicLink() ? [] : nativeListXattrs(abs).sort(Buffer.compare);
    const m: Meta = {
      type,
      mode: Number(st.mode & 0o7777n),
      uid: Number(st.uid),
      gid: Number(st.gid),
      mtimeNs: type === 'dir' && rel === '' ? '' : st.mtimeNs.toString(),
      size: type === 'file' ? Number(st.size) : 0,
      xattrs: xs.map((x) => `${x.toString('hex')}=${nativeGetXattr(abs, x).toString('hex')}`).join(','),
    };
    if (type === 'symlink') m.target = (await fsp.readlink(abs, { encoding: 'buffer' })).toString('hex');
    if (type === 'chardev' || type === 'blockdev') m.rdev = st.rdev.toString();
    if (type === 'file') {
      m.content = createHash('sha256')
        .update(await fsp.readFile(abs))
        .digest('hex');
      if (st.nlink > 1n) {
        const key = `${st.ino}`;
        if (!inodes.has(key)) inodes.set(key, rel);
        m.nlinkGroup = inodes.get(key)!;
      }
    }
    out.set(rel, m);
    if (type === 'dir') {
      for (const n of (await fsp.readdir(abs, { encoding: 'buffer' })).sort(Buffer.compare)) {
        await visit(Buffer.concat([abs, B('/'), n]), rel === '' ? n.toString('hex') : `${rel}/${n.toString('hex')}`);
      }
    }
  };
  await visit(Buffer.from(root), '');
  return out;
}

t.test('a tree with every entry type round-trips exactly', async (t) => {
  const dir = tempDir(t);
  const src = path.join(dir, 'src');
  await makeTree(src);
  const ds = await Datastore.create(path.join(dir, 'store'), { syncLevel: 'none', threads: 2, cdc: { min: 16384, avg: 65536, max: 262144 } });
  t.teardown(() => ds.close());
  const w = await ds.group('ct/100').backup({ time: 1000 });
  const stats = await w.addTree('root', src);
  const snap = await w.commit();
  t.same(stats.problems, [], 'no problems');
  t.equal(stats.hardlinks, 2);
  t.equal(snap.archive('root.tree').kind, 'tree');
  const r = await snap.open();
  t.teardown(() => r.close());

  const tree = await r.tree('root.tree');
  const names = (await tree.list('')).map((i) => i.path.toString('utf8'));
  t.ok(names.includes('plain.txt') && names.includes('sub') && names.includes('fifo'), 'list the root');
  t.equal(Buffer.from(await tree.readFile('plain.txt')).toString(), 'hello\n');
  t.equal(
    Buffer.from(await tree.readFile('big.bin', 1000, 10)).toString('hex'),
    Buffer.from(seededBytes(3 * 1024 * 1024 + 17, 5).subarray(1000, 1010)).toString('hex'),
    'a byte range',
  );
  const deepItem = await tree.lookup('deep/level-0/level-1/level-2');
  t.equal(deepItem?.entry.kind, 'dir');
  t.equal(await tree.lookup('nope/x'), undefined);
  let n = 0;
  for await (const _ of tree.walk()) n++;
  t.equal(n, tree.entryCount, 'walk visits every entry once');

  const out = path.join(dir, 'out');
  const rs = await r.restoreTree('root.tree', out);
  t.same(rs.problems, [], 'no restore problems');
  const a = await walk(src);
  const b = await walk(out);
  t.same([...b.keys()].sort(), [...a.keys()].sort(), 'the same paths');
  for (const [k, v] of a)
    t.same(
      b.get(k),
      v,
      `metadata of ${
        Buffer.from(k.split('/').pop() ?? '', 'hex')
          .toString('utf8')
          .slice(0, 40) || '(root)'
      }`,
    );
  const sp = await fsp.stat(path.join(out, 'sparse.img'));
  t.ok(sp.blocks * 512 < 1024 * 1024, `the sparse file restored sparse (${sp.blocks * 512} bytes allocated)`);

  await t.rejects(r.restoreTree('root.tree', out), { code: 'ERR_EXISTS' }, 'a non-empty target needs overwrite');
  const again = await r.restoreTree('root.tree', out, { overwrite: true });
  t.equal(again.entries, rs.entries, 'overwrite restores again');
  const part = path.join(dir, 'part');
  await r.restoreTree('root.tree', part, { include: ['sub/**'] });
  t.same((await fsp.readdir(part)).sort(), ['sub'], 'include restores only the matching paths');
  t.equal(await fsp.readFile(path.join(part, 'sub', 'b'), 'utf8'), 'hardlinked content');
});

t.test('unreadable files are reported and the backup goes on', { skip: isRoot ? 'root reads everything' : false }, async (t) => {
  const dir = tempDir(t);
  const src = path.join(dir, 'src');
  await fsp.mkdir(src);
  await fsp.writeFile(path.join(src, 'ok'), 'ok');
  await fsp.writeFile(path.join(src, 'secret'), 'no');
  await fsp.chmod(path.join(src, 'secret'), 0);
  const ds = await Datastore.create(path.join(dir, 'store'), { syncLevel: 'none', threads: 1 });
  t.teardown(() => ds.close());
  const w = await ds.group('host/a').backup();
  const stats = await w.addTree('data', src);
  const snap = await w.commit();
  t.same(
    stats.problems.map((p) => [p.path, p.code]),
    [['secret', 'EACCES']],
  );
  t.ok(snap.manifest.unprotected['problems'], 'the report is in the snapshot');
});

t.test('files that vanish or change during the walk are reported with path and code', async (t) => {
  const dir = tempDir(t);
  const src = path.join(dir, 'src');
  await fsp.mkdir(src);
  // 'b' is larger than the files read ahead of the walk, so it is opened when its turn comes.
  for (const n of ['a', 'b', 'c', 'd']) await fsp.writeFile(path.join(src, n), n === 'b' || n === 'd' ? seededBytes(512 * 1024, 3) : n);
  const ds = await Datastore.create(path.join(dir, 'store'), { syncLevel: 'none', threads: 1 });
  t.teardown(() => ds.close());
  const w = await ds.group('host/a').backup();
  let removed = false;
  const stats = await w.addTree('data', src, {
    onProgress: () => {
      if (!removed) {
        removed = true;
        unlinkSync(path.join(src, 'b'));
        appendFileSync(path.join(src, 'd'), 'grown after the walk saw it');
      }
    },
  });
  const snap = await w.commit();
  t.same(
    stats.problems.map((p) => [p.path, p.code]),
    [
      ['b', 'ENOENT'],
      ['d', 'CHANGED'],
    ],
    'vanished and changed-while-read files are reported',
  );
  t.equal(stats.files, 3, 'the others are backed up');
  t.same((snap.manifest.unprotected['problems'] as Record<string, unknown[]>)['data.tree']?.length, 2, 'the report is in the snapshot');
});

t.test('excludes and .cairnignore', async (t) => {
  const dir = tempDir(t);
  const src = path.join(dir, 'src');
  await fsp.mkdir(path.join(src, 'cache', 'x'), { recursive: true });
  await fsp.mkdir(path.join(src, 'app'), { recursive: true });
  await fsp.writeFile(path.join(src, 'cache', 'x', 'f'), 'x');
  await fsp.writeFile(path.join(src, 'app', 'a.log'), 'log');
  await fsp.writeFile(path.join(src, 'app', 'a.conf'), 'conf');
  await fsp.writeFile(path.join(src, 'app', '.cairnignore'), '*.tmp\n');
  await fsp.writeFile(path.join(src, 'app', 'b.tmp'), 'tmp');
  await fsp.writeFile(path.join(src, 'keep.tmp'), 'not under app');
  const ds = await Datastore.create(path.join(dir, 'store'), { syncLevel: 'none', threads: 1 });
  t.teardown(() => ds.close());
  const w = await ds.group('host/a').backup();
  await w.addTree('data', src, { exclude: ['cache/', '*.log'] });
  const snap = await w.commit();
  const r = await snap.open();
  t.teardown(() => r.close());
  const tree = await r.tree('data.tree');
  const all: string[] = [];
  for await (const i of tree.walk()) all.push(i.path.toString());
  t.same(all.sort(), ['', 'app', 'app/.cairnignore', 'app/a.conf', 'keep.tmp']);
});

t.test('incremental backups: an unchanged tree opens no file and writes no chunk; edits restore exactly', async (t) => {
  const dir = tempDir(t);
  const src = path.join(dir, 'src');
  await fsp.mkdir(path.join(src, 'a', 'b'), { recursive: true });
  for (let i = 0; i < 200; i++) await fsp.writeFile(path.join(src, 'a', `small-${String(i).padStart(3, '0')}`), i % 50 === 7 ? '' : `file ${i}\n`.repeat(i + 1));
  for (let i = 0; i < 50; i++) await fsp.writeFile(path.join(src, 'a', 'b', `f${i}`), seededBytes(10_000 + i * 997, i));
  await fsp.writeFile(path.join(src, 'large.bin'), seededBytes(2 * 1024 * 1024, 99));
  const ds = await Datastore.create(path.join(dir, 'store'), { syncLevel: 'none', threads: 2, cdc: { min: 16384, avg: 65536, max: 262144 } });
  t.teardown(() => ds.close());
  const backup = async (time: number) => {
    const w = await ds.group('ct/7').backup({ time });
    const s = await w.addTree('root', src);
    const snap = await w.commit();
    return { s, snap };
  };
  const first = await backup(1000);
  t.equal(first.s.filesRead, 251);

  const second = await backup(2000);
  t.equal(second.s.filesRead, 0, 'an unchanged re-backup opens no file');
  t.equal(second.s.filesReused, 251);
  t.equal(second.s.payload.chunksWritten, 0, 'and writes no payload chunk');
  t.equal(second.s.meta.chunksWritten, 0, 'nor a metadata chunk (the records encode to the same bytes)');
  t.ok(second.s.paddingBytes <= 0.1 * second.s.payloadBytes, `padding ${second.s.paddingBytes} of ${second.s.payloadBytes} bytes`);

  // Edits: append, modify in the middle, delete, rename, mode and owner changes, a new file.
  await fsp.appendFile(path.join(src, 'a', 'small-010'), 'appended\n');
  const big = await fsp.open(path.join(src, 'large.bin'), 'r+');
  await big.write(Buffer.from('changed in the middle'), 0, 21, 1024 * 1024);
  await big.close();
  await fsp.unlink(path.join(src, 'a', 'small-100'));
  await fsp.rename(path.join(src, 'a', 'b', 'f3'), path.join(src, 'a', 'b', 'f3-renamed'));
  await fsp.chmod(path.join(src, 'a', 'small-020'), 0o600);
  if (isRoot) await fsp.chown(path.join(src, 'a', 'small-030'), 1000, 1000);
  await fsp.writeFile(path.join(src, 'a', 'new-file'), 'new');
  const third = await backup(3000);
  t.ok(third.s.filesRead <= 6, `only the changed files are read (${third.s.filesRead}: appended, modified, renamed, new, new mode, new owner)`);
  t.ok(third.s.filesReused >= 245, `the others are reused (${third.s.filesReused})`);
  const r = await third.snap.open();
  t.teardown(() => r.close());
  const out = path.join(dir, 'out');
  await r.restoreTree('root.tree', out);
  const a = await walk(src);
  const b = await walk(out);
  t.same([...b.keys()].sort(), [...a.keys()].sort(), 'the same paths');
  let same = 0;
  for (const [k, v] of a) if (JSON.stringify(b.get(k)) === JSON.stringify(v)) same++;
  t.equal(same, a.size, 'every entry restores exactly');
  const r1 = await first.snap.open();
  t.teardown(() => r1.close());
  t.equal(Buffer.from(await (await r1.tree('root.tree')).readFile('a/small-010')).toString(), 'file 10\n'.repeat(11), 'the first snapshot still has the old content');
});

t.test('--one-file-system keeps a mount point but not its contents', { skip: isRoot ? false : 'needs root to mount a tmpfs' }, async (t) => {
  const { execFileSync } = await import('node:child_process');
  const dir = tempDir(t);
  const src = path.join(dir, 'src');
  await fsp.mkdir(path.join(src, 'mnt'), { recursive: true });
  await fsp.writeFile(path.join(src, 'here'), 'on the root filesystem');
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'cairn-test', path.join(src, 'mnt')], { stdio: 'ignore' });
  } catch {
    t.skip('cannot mount a tmpfs here', () => undefined);
    return;
  }
  t.teardown(() => execFileSync('umount', [path.join(src, 'mnt')], { stdio: 'ignore' }));
  await fsp.writeFile(path.join(src, 'mnt', 'elsewhere'), 'on the tmpfs');
  const ds = await Datastore.create(path.join(dir, 'store'), { syncLevel: 'none', threads: 1 });
  t.teardown(() => ds.close());
  const w = await ds.group('host/m').backup();
  await w.addTree('one', src, { oneFileSystem: true });
  await w.addTree('all', src);
  const snap = await w.commit();
  const r = await snap.open();
  t.teardown(() => r.close());
  const one = await r.tree('one.tree');
  t.equal((await one.lookup('mnt'))?.entry.kind, 'dir', 'the mount point is kept');
  t.same(await one.list('mnt'), [], 'its contents are not');
  const all = await r.tree('all.tree');
  t.equal(Buffer.from(await all.readFile('mnt/elsewhere')).toString(), 'on the tmpfs', 'without the option they are');
});

/**
 * A tree archive as a tar stream (SnapshotReader.createTarStream), extracted by GNU tar and compared
 * with the source tree: contents, modes, owners, nanosecond mtimes, symlinks, hardlinks, fifos,
 * devices, xattrs, long and odd names; filters; what tar cannot carry is reported; abort.
 */
import t from 'tap';
import type { Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createWriteStream, promises as fsp } from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Datastore, isCairnError, type TreeTarStats } from '../../lib/index.js';
import { nativeGetXattr, nativeListXattrs, nativeMknod, nativeSetXattr } from '../../lib/codec/native.js';
import { seededBytes, tempDir } from '../helpers/fixtures.js';

const isRoot = process.getuid?.() === 0;

async function makeTree(root: string): Promise<void> {
  await fsp.mkdir(root, { recursive: true });
  await fsp.writeFile(path.join(root, 'plain.txt'), 'hello\n');
  await fsp.writeFile(path.join(root, 'empty'), '');
  await fsp.writeFile(path.join(root, 'big.bin'), seededBytes(3 * 1024 * 1024 + 17, 5));
  await fsp.writeFile(path.join(root, 'with space and\nnewline = x'), 'x');
  await fsp.writeFile(path.join(root, 'ünïcødé'), 'utf-8 name');
  await fsp.writeFile(path.join(root, 'L'.repeat(200)), 'long name');
  let deep = path.join(root, 'deep');
  for (let i = 0; i < 12; i++) deep = path.join(deep, `level-${i}-${'d'.repeat(20)}`);
  await fsp.mkdir(deep, { recursive: true });
  await fsp.writeFile(path.join(deep, 'bottom'), 'deep file');
  await fsp.symlink('plain.txt', path.join(root, 'link-rel'));
  await fsp.symlink('/etc/passwd', path.join(root, 'link-abs'));
  await fsp.symlink(`${'t'.repeat(150)}/dangling`, path.join(root, 'link-long'));
  await fsp.mkdir(path.join(root, 'sub'));
  await fsp.writeFile(path.join(root, 'sub', 'a'), 'hardlinked content');
  await fsp.link(path.join(root, 'sub', 'a'), path.join(root, 'sub', 'b'));
  await fsp.link(path.join(root, 'sub', 'a'), path.join(root, 'z-other-dir-link'));
  nativeMknod(path.join(root, 'fifo'), 0o010640, 0, 0);
  if (isRoot) nativeMknod(path.join(root, 'null-dev'), 0o020666, 1, 3);
  nativeSetXattr(path.join(root, 'plain.txt'), 'user.comment', Buffer.from('a comment'));
  nativeSetXattr(path.join(root, 'sub'), 'user.dir', Buffer.from('on a directory'));
  await fsp.writeFile(path.join(root, 'setuid'), '#!/bin/sh\n');
  await fsp.chmod(path.join(root, 'setuid'), 0o4755);
  await fsp.writeFile(path.join(root, 'no-perms'), 'mode 0');
  await fsp.chmod(path.join(root, 'no-perms'), 0);
  await fsp.mkdir(path.join(root, 'sticky'));
  await fsp.chmod(path.join(root, 'sticky'), 0o1777);
  if (isRoot) {
    await fsp.lchown(path.join(root, 'plain.txt'), 1234, 5678);
    await fsp.lchown(path.join(root, 'setuid'), 3_000_000, 3_000_001); // past ustar's 7 octal digits: pax uid/gid
    await fsp.chmod(path.join(root, 'setuid'), 0o4755); // chown cleared setuid
  }
  await fsp.utimes(path.join(root, 'plain.txt'), 1_000_000_000.123456, 1_000_000_000.123456);
  await fsp.utimes(path.join(root, 'big.bin'), 4_200_000_000.5, 4_200_000_000.5); // after 2038
  await fsp.utimes(path.join(root, 'sub'), 1_500_000_000, 1_500_000_000);
}

interface Meta {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  mtimeNs: string;
  size: number;
  link?: string;
  rdev?: string;
  xattrs: string;
  content?: string;
}

async function walk(root: string): Promise<Map<string, Meta>> {
  const out = new Map<string, Meta>();
  const inodes = new Map<string, string>();
  const visit = async (abs: string, rel: string): Promise<void> => {
    const st = await fsp.lstat(abs, { bigint: true });
    const type = st.isFile() ? 'file' : st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : st.isFIFO() ? 'fifo' : st.isCharacterDevice() ? 'chardev' : '?';
    const xs = st.isSymbolicLink() ? [] : nativeListXattrs(abs).sort(Buffer.compare);
    const m: Meta = {
      type,
      mode: Number(st.mode & 0o7777n),
      uid: Number(st.uid),
      gid: Number(st.gid),
      // The target directory's own time is the extraction's.
      mtimeNs: rel === '' ? '' : st.mtimeNs.toString(),
      size: type === 'file' ? Number(st.size) : 0,
      xattrs: xs.map((x) => `${x.toString()}=${nativeGetXattr(abs, x).toString('hex')}`).join(','),
    };
    if (type === 'symlink') m.link = await fsp.readlink(abs);
    if (type === 'chardev') m.rdev = st.rdev.toString();
    if (type === 'file') {
      m.content = createHash('sha256')
        .update(await fsp.readFile(abs))
        .digest('hex');
      if (st.nlink > 1n) {
        const key = `${st.ino}`;
        if (!inodes.has(key)) inodes.set(key, rel);
        m.link = `hardlink to ${inodes.get(key)!}`;
      }
    }
    out.set(rel, m);
    if (type === 'dir') {
      for (const n of (await fsp.readdir(abs)).sort()) await visit(path.join(abs, n), rel === '' ? n : `${rel}/${n}`);
    }
  };
  await visit(root, '');
  return out;
}

function untar(file: string, dir: string): void {
  const r = spawnSync('tar', ['-x', '--warning=no-timestamp', '--xattrs', '--xattrs-include=*', '-f', file, '-C', dir], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`tar -x failed (${r.status}): ${r.stderr}`);
  if (r.stderr !== '') throw new Error(`tar -x warned: ${r.stderr}`);
}

async function setup(
  t: Test,
  build: (src: string) => Promise<void>,
): Promise<{ dir: string; src: string; ds: Datastore; reader: Awaited<ReturnType<Awaited<ReturnType<Datastore['snapshot']>>['open']>> }> {
  const dir = tempDir(t);
  const src = path.join(dir, 'src');
  await build(src);
  const ds = await Datastore.create(path.join(dir, 'store'), { syncLevel: 'none', threads: 2, cdc: { min: 16384, avg: 65536, max: 262144 } });
  t.teardown(() => ds.close());
  const w = await ds.group('host/a').backup({ time: 1000 });
  const st = await w.addTree('root', src);
  t.same(st.problems, [], 'backed up without problems');
  const snap = await w.commit();
  const reader = await snap.open();
  t.teardown(() => reader.close());
  return { dir, src, ds, reader };
}

t.test('GNU tar extracts the stream to the source tree, exactly', async (t) => {
  const { dir, src, reader } = await setup(t, makeTree);
  const file = path.join(dir, 'out.tar');
  const progress: number[] = [];
  const s = reader.createTarStream('root.tree', { onProgress: (p) => progress.push(p.entries) });
  await pipeline(s, createWriteStream(file));
  const stats: TreeTarStats = await s.stats;
  t.same(stats.problems, []);
  t.equal(stats.bytes, 3 * 1024 * 1024 + 17 + 6 + 1 + 10 + 9 + 9 + 18 + 10 + 6, 'file bytes once each (hardlinks carry none)');
  t.ok(progress.length > 0 && progress[progress.length - 1] === stats.entries, 'progress ends at the entry count');
  // pax format: extended headers ('x') before entries that need them.
  const bytes = await fsp.readFile(file);
  t.equal(bytes.subarray(257, 263).toString('latin1'), 'ustar\0', 'ustar magic');
  let pax = 0;
  for (let off = 0; off + 512 <= bytes.length; off += 512) if (bytes[off + 156] === 0x78 && bytes.subarray(off + 257, off + 262).toString() === 'ustar') pax++;
  t.ok(pax > 5, `pax extended headers present (${pax})`);

  const out = path.join(dir, 'out');
  await fsp.mkdir(out);
  untar(file, out);
  const want = await walk(src);
  const got = await walk(out);
  t.same([...got.keys()], [...want.keys()], 'the same paths');
  for (const [rel, m] of want) t.same(got.get(rel), m, rel);
});

t.test('filters: a hardlink whose first name is left out carries the content; excluded paths are absent', async (t) => {
  const { dir, reader } = await setup(t, makeTree);
  const file = path.join(dir, 'f.tar');
  const s = reader.createTarStream('root.tree', { include: ['sub/b', 'z-other-dir-link', 'plain.txt'], exclude: ['plain.txt'] });
  await pipeline(s, createWriteStream(file));
  const out = path.join(dir, 'f');
  await fsp.mkdir(out);
  untar(file, out);
  t.equal(await fsp.readFile(path.join(out, 'sub', 'b'), 'utf8'), 'hardlinked content');
  const a = await fsp.stat(path.join(out, 'sub', 'b'));
  const b = await fsp.stat(path.join(out, 'z-other-dir-link'));
  t.equal(a.ino, b.ino, 'the second name links to the first one written');
  await t.rejects(fsp.lstat(path.join(out, 'plain.txt')), { code: 'ENOENT' });
  await t.rejects(fsp.lstat(path.join(out, 'sub', 'a')), { code: 'ENOENT' });
  t.equal((await s.stats).entries, 3, 'the root and two entries');
});

t.test('what tar cannot carry is left out and reported', async (t) => {
  const { dir, reader } = await setup(t, async (src) => {
    await fsp.mkdir(src);
    await fsp.writeFile(path.join(src, 'ok'), 'fine');
    await fsp.writeFile(Buffer.concat([Buffer.from(src + '/bad-'), Buffer.from([0xff, 0xfe])]), 'not UTF-8');
    nativeMknod(path.join(src, 'sock'), 0o140755, 0, 0);
    nativeSetXattr(path.join(src, 'ok'), 'user.bin', Buffer.from([0, 0xff, 1]));
  });
  const file = path.join(dir, 'p.tar');
  const s = reader.createTarStream('root.tree');
  await pipeline(s, createWriteStream(file));
  const stats = await s.stats;
  t.same(stats.problems.map((p) => p.code).sort(), ['NAME', 'SOCKET', 'XATTR']);
  t.equal(stats.problemCount, 3);
  const out = path.join(dir, 'p');
  await fsp.mkdir(out);
  untar(file, out);
  t.same((await fsp.readdir(out)).sort(), ['ok']);
  t.equal(await fsp.readFile(path.join(out, 'ok'), 'utf8'), 'fine');
});

t.test('an aborted stream fails with ERR_ABORTED; a missing archive fails the stream', async (t) => {
  const { dir, reader } = await setup(t, makeTree);
  const ac = new AbortController();
  // Abort at the first progress report, the root directory's (reports are throttled to one per
  // 50 ms, so waiting for a later one may see none: a fast machine writes this tree in less).
  const s = reader.createTarStream('root.tree', { signal: ac.signal, onProgress: () => ac.abort() });
  const codeOf = async (p: Promise<unknown>): Promise<string> =>
    p.then(
      () => 'resolved',
      (e: unknown) => (isCairnError(e) ? e.code : String(e)),
    );
  t.equal(await codeOf(pipeline(s, createWriteStream(path.join(dir, 'a.tar')))), 'ERR_ABORTED');
  t.equal(await codeOf(s.stats), 'ERR_ABORTED');
  t.equal(await codeOf(pipeline(reader.createTarStream('nope.tree'), createWriteStream(path.join(dir, 'b.tar')))), 'ERR_NOT_FOUND');
});

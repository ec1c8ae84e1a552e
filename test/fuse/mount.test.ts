/**
 * The FUSE adapter on real mounts (CI runs as root with /dev/fuse). This process serves the mounts;
 * every access to them happens in a child process (test/helpers/fs-walk.mjs, or the CLI), because a
 * process that reads its own mount can starve itself (LIBRARY-NOTES §1, trap 10).
 */
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fsp, readFileSync } from 'node:fs';
import path from 'node:path';
import { Datastore, type Snapshot } from '../../lib/index.js';
import { mountDatastore, mountSnapshot, type Mount } from '../../lib/fuse/index.js';
import { nativeMknod, nativeSetXattr } from '../../lib/codec/native.js';
import { REPO, cairn, requireBuilt, runScript } from '../cli/run-cli.js';
import { seededBytes, tempDir, writeTemp } from '../helpers/fixtures.js';

const WALK = path.join(REPO, 'test', 'helpers', 'fs-walk.mjs');
const CS = 64 * 1024;
const isRoot = process.getuid?.() === 0;
const J = path.join;
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

async function child<T>(args: string[]): Promise<T> {
  const r = await runScript(WALK, args);
  if (r.code !== 0) throw new Error(`fs-walk ${args[0]} exited ${r.code}: ${r.err}`);
  return JSON.parse(r.out) as T;
}

async function makeTree(r: string): Promise<void> {
  await fsp.mkdir(J(r, 'sub'), { recursive: true });
  await fsp.writeFile(J(r, 'plain.txt'), 'plain text\n');
  await fsp.writeFile(J(r, 'empty'), '');
  await fsp.writeFile(J(r, 'big.bin'), seededBytes(3 * 1024 * 1024 + 17, 5));
  await fsp.writeFile(J(r, 'name with space'), 'x');
  await fsp.symlink('plain.txt', J(r, 'link-rel'));
  await fsp.symlink('/does/not/exist', J(r, 'link-dangling'));
  await fsp.writeFile(J(r, 'sub', 'a'), 'hardlinked content');
  await fsp.link(J(r, 'sub', 'a'), J(r, 'sub', 'b'));
  await fsp.link(J(r, 'sub', 'a'), J(r, 'z-link'));
  const fh = await fsp.open(J(r, 'sparse.img'), 'w');
  await fh.write(Buffer.alloc(4096, 7), 0, 4096, 2 * 1024 * 1024);
  await fh.truncate(4 * 1024 * 1024);
  await fh.close();
  nativeMknod(J(r, 'fifo'), 0o010644, 0, 0);
  nativeMknod(J(r, 'sock'), 0o140755, 0, 0);
  if (isRoot) {
    nativeMknod(J(r, 'null-dev'), 0o020666, 1, 3);
    nativeMknod(J(r, 'blk-dev'), 0o060660, 7, 200);
    await fsp.lchown(J(r, 'plain.txt'), 1234, 5678);
  }
  nativeSetXattr(J(r, 'plain.txt'), 'user.comment', Buffer.from('a comment'));
  nativeSetXattr(J(r, 'plain.txt'), 'user.bin', Buffer.from([0, 1, 2, 255]));
  nativeSetXattr(J(r, 'sub'), 'user.dir', Buffer.from('on a directory'));
  await fsp.chmod(J(r, 'plain.txt'), 0o4755);
  await fsp.utimes(J(r, 'plain.txt'), 1_000_000_000.123, 1_000_000_000.123);
}

interface Env {
  dir: string;
  ds: Datastore;
  snap: Snapshot;
  image: Uint8Array;
  src: string;
}

async function setup(t: Test): Promise<Env> {
  const dir = tempDir(t, 'cairn-fuse-');
  for (const m of ['mnt', 'dmnt', 'cli-mnt']) await fsp.mkdir(J(dir, m)); // mountpoints must exist
  const ds = await Datastore.create(J(dir, 'store'), { imageChunkSize: CS, syncLevel: 'none', threads: 1 });
  t.teardown(() => ds.close());
  const src = J(dir, 'src');
  await makeTree(src);
  const image = seededBytes(40 * CS + 1234, 9);
  image.fill(0, 5 * CS, 9 * CS); // zero chunks (stored once, read as zeros)
  const img = await writeTemp(dir, 'disk.raw', image);
  const w = await ds.group('vm/100').backup();
  await w.addImage('disk', img);
  await w.addTree('root', src);
  await w.addBlob('conf', 'memory: 4096\n');
  const snap = await w.commit();
  return { dir, ds, snap, image, src };
}

async function mounted(t: Test, m: Promise<Mount>): Promise<Mount> {
  const mount = await m;
  t.teardown(() => mount.unmount());
  return mount;
}

if (requireBuilt(t)) {
  t.test('a mounted snapshot: every tree entry and attribute equals the source', async (t) => {
    const env = await setup(t);
    const m = await mounted(t, mountSnapshot(env.snap, J(env.dir, 'mnt')));
    const top = await child<Record<string, { type: string; size?: number }>>(['walk', m.mountpoint]);
    t.same(Object.keys(top).sort(), ['', 'conf.blob', 'disk.img', 'root.tree', ...Object.keys(top).filter((k) => k.startsWith('root.tree/'))].sort());
    t.match(top['disk.img'], { type: 'file', size: env.image.byteLength });
    t.match(top['conf.blob'], { type: 'file', size: 13 });
    t.match(top['root.tree'], { type: 'dir' });

    const source = await child<Record<string, unknown>>(['walk', env.src]);
    const seen = await child<Record<string, unknown>>(['walk', J(m.mountpoint, 'root.tree')]);
    t.same(Object.keys(seen).sort(), Object.keys(source).sort(), 'the same paths');
    for (const [p, want] of Object.entries(source)) t.same(seen[p], want, `entry '${p}': type, mode, owner, size, mtime, content, link target, device, xattrs, shared inode`);
    t.match(seen['z-link'], { sameInodeAs: 'sub/a' }, 'hardlinks share an inode number');
  });

  t.test('images read byte-identical at random offsets, across chunk boundaries and at the end', async (t) => {
    const env = await setup(t);
    const m = await mounted(t, mountSnapshot(env.snap, J(env.dir, 'mnt')));
    const size = env.image.byteLength;
    const ranges: [number, number][] = [
      [0, 1],
      [CS - 1, 2],
      [3 * CS - 100, 300],
      [5 * CS - 10, 4 * CS + 20],
      [size - 10, 100],
      [size, 10],
      [0, size],
    ];
    let x = 12345;
    for (let i = 0; i < 40; i++) {
      x = (x * 1103515245 + 12345) >>> 0;
      const off = x % size;
      x = (x * 1103515245 + 12345) >>> 0;
      ranges.push([off, 1 + (x % (3 * CS))]);
    }
    const got = await child<{ n: number; sha: string }[]>(['reads', J(m.mountpoint, 'disk.img'), JSON.stringify(ranges)]);
    ranges.forEach(([off, len], i) => {
      const want = env.image.subarray(off, Math.min(size, off + len));
      t.same(got[i], { n: want.byteLength, sha: sha(want) }, `read ${off}+${len}`);
    });
    const blob = await child<{ n: number; sha: string }[]>(['reads', J(m.mountpoint, 'conf.blob'), '[[0, 100], [8, 3]]']);
    t.same(blob, [
      { n: 13, sha: sha(Buffer.from('memory: 4096\n')) },
      { n: 3, sha: sha(Buffer.from('409')) },
    ]);
  });

  t.test('read-only: every mutating call gets EROFS', async (t) => {
    const env = await setup(t);
    const m = await mounted(t, mountSnapshot(env.snap, J(env.dir, 'mnt')));
    for (const [dir, file] of [
      [J(m.mountpoint, 'root.tree'), J(m.mountpoint, 'disk.img')],
      [J(m.mountpoint, 'root.tree', 'sub'), J(m.mountpoint, 'root.tree', 'sub', 'a')],
    ] as const) {
      const r = await child<Record<string, string>>(['try-writes', dir, file]);
      for (const [op, code] of Object.entries(r)) t.equal(code, 'EROFS', `${op} in ${path.relative(m.mountpoint, dir) || '/'}`);
    }
  });

  t.test('a corrupt chunk gives EIO for that read and a message naming it; the mount stays up', async (t) => {
    const env = await setup(t);
    const r = await env.snap.open();
    const idx = await r.imageIndex('disk.img');
    const digest = Buffer.from(idx.digestAt(2)).toString('hex');
    await r.close();
    const file = J(env.ds.root, '.chunks', digest.slice(0, 2), digest);
    const bytes = await fsp.readFile(file);
    bytes[bytes.length - 1]! ^= 0xff;
    await fsp.writeFile(file, bytes);
    const errors: string[] = [];
    const m = await mounted(
      t,
      mountSnapshot(env.snap, J(env.dir, 'mnt'), { onError: (e, op, p) => errors.push(`${op} ${p} ${(e as { details?: { digest?: string } }).details?.digest ?? String(e)}`) }),
    );
    const bad = await child<{ error?: string }>(['reads', J(m.mountpoint, 'disk.img'), JSON.stringify([[2 * CS + 10, 100]])]);
    t.same(bad, { error: 'EIO' });
    t.ok(
      errors.some((e) => e.startsWith('read /disk.img') && e.endsWith(digest)),
      'onError names the chunk',
    );
    const good = await child<{ n: number; sha: string }[]>([
      'reads',
      J(m.mountpoint, 'disk.img'),
      JSON.stringify([
        [0, CS],
        [3 * CS, CS],
      ]),
    ]);
    t.same(
      good,
      [
        { n: CS, sha: sha(env.image.subarray(0, CS)) },
        { n: CS, sha: sha(env.image.subarray(3 * CS, 4 * CS)) },
      ],
      'other chunks still read',
    );
  });

  t.test('a mounted snapshot is locked against prune and removal', async (t) => {
    const env = await setup(t);
    const m = await mountSnapshot(env.snap, J(env.dir, 'mnt'));
    await t.rejects(env.snap.remove(), { code: 'ERR_LOCKED' });
    await m.unmount();
    await m.unmount(); // idempotent
    await env.snap.remove();
    t.same(await env.ds.group('vm/100').snapshots(), []);
  });

  t.test('a mounted datastore: namespaces, groups, latest; new snapshots appear, removed ones go', async (t) => {
    const env = await setup(t);
    const { ds } = env;
    await ds.createNamespace('site');
    const w = await ds.group('ct/5', { namespace: 'site' }).backup();
    await w.addBlob('notes', 'in a namespace');
    const s1 = await w.commit();
    const m = await mounted(t, mountDatastore(ds, J(env.dir, 'dmnt'), { idleCloseMs: 200 }));
    const view = await child<Record<string, { type: string; target?: string; sha?: string }>>(['walk', m.mountpoint]);
    t.match(view[`vm/100/${env.snap.time}/disk.img`], { type: 'file', sha: sha(env.image) });
    t.match(view['vm/100/latest'], { type: 'symlink', target: env.snap.time });
    t.match(view[`site/ct/5/${s1.time}/notes.blob`], { type: 'file', sha: sha(Buffer.from('in a namespace')) });
    t.ok(view[`vm/100/${env.snap.time}/root.tree/sub/a`], 'tree archives inside');

    const w2 = await ds.group('ct/5', { namespace: 'site' }).backup();
    await w2.addBlob('notes', 'second');
    const s2 = await w2.commit();
    await new Promise((r) => setTimeout(r, 1300)); // attribute and entry timeout: 1 s
    const after = await child<Record<string, { type: string; target?: string }>>(['walk', J(m.mountpoint, 'site')]);
    t.ok(after[`ct/5/${s2.time}/notes.blob`], 'a new snapshot shows up without remounting');
    t.match(after['ct/5/latest'], { target: s2.time });

    await new Promise((r) => setTimeout(r, 600)); // the view closes snapshots nobody reads
    await s1.remove();
    await new Promise((r) => setTimeout(r, 1300));
    const gone = await child<Record<string, unknown>>(['walk', J(m.mountpoint, 'site')]);
    t.notOk(gone[`ct/5/${s1.time}`], 'a removed snapshot disappears');
    await t.rejects(mountDatastore(ds, J(env.dir, 'nope'), { namespace: 'nope' }), { code: 'ERR_NOT_FOUND' });
  });

  t.test('cairn mount / umount, --daemon, and a mount killed with SIGKILL', async (t) => {
    const env = await setup(t);
    await env.ds.close();
    const store = env.ds.root;
    const mnt = J(env.dir, 'cli-mnt');
    const d = await cairn(['--store', store, '--json', 'mount', 'vm/100', mnt, '--daemon']);
    t.equal(d.code, 0, d.err);
    const info = JSON.parse(d.out) as { mounted: string; pid: number };
    t.equal(info.mounted, mnt);
    const got = await child<{ n: number; sha: string }[]>(['reads', J(mnt, 'disk.img'), JSON.stringify([[0, 100]])]);
    t.same(got, [{ n: 100, sha: sha(env.image.subarray(0, 100)) }]);
    const u = await cairn(['umount', mnt]);
    t.equal(u.code, 0, u.err);
    t.equal((await cairn(['umount', mnt])).code, 3, 'nothing mounted: not found');
    let alive = true;
    for (let i = 0; i < 50 && alive; i++) {
      await new Promise((r) => setTimeout(r, 100));
      try {
        process.kill(info.pid, 0);
      } catch {
        alive = false;
      }
    }
    t.notOk(alive, 'the daemon exits after umount');

    // Foreground, then SIGKILL: the next mount at the same place works.
    const fg = spawn(process.execPath, [J(REPO, 'dist', 'cli', 'main.js'), '--store', store, 'mount', 'vm/100', mnt], { stdio: ['ignore', 'pipe', 'pipe'] });
    await new Promise<void>((resolve, reject) => {
      fg.stdout.on('data', (b: Buffer) => b.toString().includes('mounted') && resolve());
      fg.on('exit', (c) => reject(new Error(`mount exited ${c}`)));
    });
    fg.kill('SIGKILL');
    await new Promise((r) => fg.on('exit', r));
    const ds = await Datastore.open(store);
    t.teardown(() => ds.close());
    const m = await mountSnapshot(await ds.snapshot('vm/100'), mnt);
    const again = await child<{ n: number; sha: string }[]>(['reads', J(mnt, 'disk.img'), JSON.stringify([[CS, 100]])]);
    t.same(again, [{ n: 100, sha: sha(env.image.subarray(CS, CS + 100)) }], 'mounted again after a kill -9');
    await m.unmount();
    t.notOk(readFileSync('/proc/self/mounts', 'utf8').includes(mnt), 'unmounted');
  });
}

/**
 * Live restore through a mount (root, /dev/fuse, loop devices, e2fsprogs, qemu-utils; .ci/run
 * installs them):
 * (a) an ext4 image backed up as an image archive is attached read-only with `losetup -r` from the
 *     mount, mounted read-only, and its files read byte-identical to the originals;
 * (b) a qcow2 overlay on the mounted image reads back identical to the original image, and writes
 *     go to the overlay only.
 * Every command runs in a child process; this process serves the mount.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { Datastore } from '../../lib/index.js';
import { mountSnapshot } from '../../lib/fuse/index.js';
import { seededBytes, tempDir } from '../helpers/fixtures.js';

const J = path.join;

function run(cmd: string, args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    c.stdout.on('data', (b: Buffer) => (out += b.toString()));
    c.stderr.on('data', (b: Buffer) => (err += b.toString()));
    c.on('error', reject);
    c.on('close', (code) => resolve({ code, out, err }));
  });
}

async function have(cmd: string): Promise<boolean> {
  return (await run('sh', ['-c', `command -v ${cmd}`])).code === 0;
}

const missing: string[] = [];
for (const c of ['mkfs.ext4', 'losetup', 'qemu-img', 'qemu-io']) if (!(await have(c))) missing.push(c);
const skip = process.getuid?.() !== 0 ? 'needs root (loop devices)' : missing.length > 0 ? `needs ${missing.join(', ')} (.ci/run installs them)` : false;

t.test('live restore from a mounted VM snapshot', { skip }, async (t) => {
  const dir = tempDir(t, 'cairn-live-');
  const src = J(dir, 'files');
  await fsp.mkdir(J(src, 'etc'), { recursive: true });
  const files: Record<string, Uint8Array> = {
    'etc/hostname': Buffer.from('restored-vm\n'),
    'big.bin': seededBytes(3 * 1024 * 1024 + 11, 3),
    'etc/fstab': Buffer.from('/dev/vda1 / ext4 defaults 0 1\n'),
  };
  for (const [p, data] of Object.entries(files)) await fsp.writeFile(J(src, p), data);
  const img = J(dir, 'vm.raw');
  const mk = await run('mkfs.ext4', ['-q', '-F', '-b', '4096', '-d', src, img, '32M']);
  t.equal(mk.code, 0, `mkfs.ext4: ${mk.err}`);
  const original = await fsp.readFile(img);

  const ds = await Datastore.create(J(dir, 'store'), { syncLevel: 'none', threads: 1 });
  t.teardown(() => ds.close());
  const w = await ds.group('vm/200').backup();
  await w.addImage('drive-scsi0', img);
  const snap = await w.commit();
  await fsp.mkdir(J(dir, 'mnt'));
  const m = await mountSnapshot(snap, J(dir, 'mnt'));
  t.teardown(() => m.unmount());
  const image = J(m.mountpoint, 'drive-scsi0.img');

  await t.test('(a) losetup -r on the mounted image, mount it read-only, read the files', async (t) => {
    const lo = await run('losetup', ['-r', '-f', '--show', image]);
    t.equal(lo.code, 0, `losetup: ${lo.err}`);
    const dev = lo.out.trim();
    const fsMnt = J(dir, 'ext4');
    await fsp.mkdir(fsMnt);
    try {
      const mo = await run('mount', ['-t', 'ext4', '-o', 'ro,noload', dev, fsMnt]);
      t.equal(mo.code, 0, `mount: ${mo.err}`);
      try {
        for (const [p, data] of Object.entries(files)) {
          const r = await run('sha256sum', [J(fsMnt, p)]);
          t.equal(r.out.split(' ')[0], createHash('sha256').update(data).digest('hex'), `${p} byte-identical`);
        }
      } finally {
        await run('umount', [fsMnt]);
      }
    } finally {
      await run('losetup', ['-d', dev]);
    }
  });

  await t.test('(b) a qcow2 overlay backed by the mounted image', async (t) => {
    const overlay = J(dir, 'overlay.qcow2');
    const c = await run('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', image, '-F', 'raw', overlay]);
    t.equal(c.code, 0, `qemu-img create: ${c.err}`);
    const same = await run('qemu-img', ['compare', '-q', overlay, img]);
    t.equal(same.code, 0, `the overlay reads back identical to the original image ${same.err}`);
    const wr = await run('qemu-io', ['-c', 'write -P 0xab 1M 64k', overlay]);
    t.equal(wr.code, 0, `qemu-io write: ${wr.err}`);
    const differs = await run('qemu-img', ['compare', '-q', overlay, img]);
    t.equal(differs.code, 1, 'after a write the overlay differs from the original');
    const sum = await run('sha256sum', [image]);
    t.equal(sum.out.split(' ')[0], createHash('sha256').update(original).digest('hex'), 'the mounted image is unchanged: the write went to the overlay');
  });
});

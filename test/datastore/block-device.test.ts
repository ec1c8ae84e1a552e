import t from 'tap';
import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Datastore } from '../../lib/index.js';
import { seededBytes, tempDir, writeTemp } from '../helpers/fixtures.js';

const CS = 64 * 1024;

function losetup(file: string): string | undefined {
  try {
    return execFileSync('losetup', ['-f', '--show', file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return undefined;
  }
}

const probeDir = tempDir(t);
const canLoop =
  process.getuid?.() === 0 &&
  (() => {
    const f = path.join(probeDir, 'probe');
    execFileSync('truncate', ['-s', '1M', f]);
    const dev = losetup(f);
    if (dev !== undefined) execFileSync('losetup', ['-d', dev]);
    return dev !== undefined;
  })();

t.test('back up a block device and restore onto another', { skip: canLoop ? false : 'needs root and loop devices' }, async (t) => {
  const dir = tempDir(t);
  const size = 3 * 1024 * 1024 + 512 * 1024; // not a multiple of the chunk size's 16 chunks
  const data = seededBytes(size, 77);
  data.fill(0, CS * 5, CS * 9); // a zero region: must be written as zeros onto a device
  const srcFile = await writeTemp(dir, 'src.img', data);
  const dstFile = path.join(dir, 'dst.img');
  await writeTemp(dir, 'dst.img', seededBytes(size, 78)); // garbage the restore must overwrite
  const src = losetup(srcFile)!;
  const dst = losetup(dstFile)!;
  t.teardown(() => {
    execFileSync('losetup', ['-d', src]);
    execFileSync('losetup', ['-d', dst]);
  });
  const ds = await Datastore.create(path.join(dir, 'store'), { imageChunkSize: CS, syncLevel: 'none', threads: 2 });
  t.teardown(() => ds.close());
  const w = await ds.group('vm/300').backup();
  const stats = await w.addImage('drive-scsi0', src);
  t.equal(stats.bytes, size, 'the device size comes from sysfs');
  const snap = await w.commit();
  const r = await snap.open();
  t.teardown(() => r.close());
  const rs = await r.restore('drive-scsi0.img', dst);
  t.equal(rs.zeroChunks, 4);
  t.equal(Buffer.compare(await readFile(dst), Buffer.from(data)), 0, 'the target device holds the image, zeros included');

  // Changed-block maps work on devices too (their size is known).
  const changed = new Uint8Array(data);
  changed.set(seededBytes(4096, 5), CS * 20);
  await writeTemp(dir, 'src.img', changed);
  execFileSync('blockdev', ['--flushbufs', src]);
  const w2 = await ds.group('vm/300').backup();
  const s2 = await w2.addImage('drive-scsi0', src, { changed: { ranges: [[CS * 20, 4096]] } });
  await w2.commit();
  t.equal(s2.reads, 1);
});

// Quickstart: back up a disk image into ./cairn-store, back it up again after a small change
// (with a changed-block map, as a hypervisor's dirty bitmap would give), restore it, and check it.
//
//   npm run demo            (after `npm ci && npm run build`)
//
// Uses only the public API, imported by package name as an application would.
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, stat, writeFile, open } from 'node:fs/promises';
import path from 'node:path';
import { Datastore, isCairnError } from 'cairn';

const STORE = path.resolve(process.env.CAIRN_STORE ?? 'cairn-store');
const WORK = path.resolve('cairn-demo');
const IMAGE = path.join(WORK, 'disk.img');
const SIZE = 64 * 1024 * 1024;

const mib = (n) => `${(n / 1048576).toFixed(1)} MiB`;
const sha = async (file) => createHash('sha256').update(await readFile(file)).digest('hex');

async function makeImage() {
  // A VM-like image: random data, long runs of zeros, and compressible text.
  const buf = Buffer.alloc(SIZE);
  const words = 'kernel disk block inode journal backup restore chunk snapshot cairn proxmox guest'.split(' ');
  for (let off = 0; off < SIZE; off += 4 << 20) {
    const kind = (off >> 22) % 4;
    if (kind === 0 || kind === 1) randomBytes(4 << 20).copy(buf, off);
    if (kind === 2) {
      let s = '';
      for (let i = 0; s.length < 4 << 20; i++) s += `${i} ${words[(i * 7) % words.length]} ${words[(i * 13) % words.length]} ok\n`;
      buf.write(s.slice(0, 4 << 20), off);
    }
  }
  await writeFile(IMAGE, buf);
}

await mkdir(WORK, { recursive: true });
if (!(await stat(IMAGE).catch(() => undefined))) await makeImage();

let ds;
try {
  ds = await Datastore.open(STORE);
} catch (e) {
  if (!isCairnError(e, 'ERR_NOT_A_DATASTORE')) throw e;
  ds = await Datastore.create(STORE);
  console.log(`created datastore ${STORE}`);
}

try {
  const group = ds.group('vm/100');
  const hadBase = (await group.newest()) !== undefined;

  // 1. A backup of the image and the VM's config.
  let w = await group.backup();
  let s = await w.addImage('drive-scsi0', IMAGE);
  await w.addBlob('qemu-server.conf', 'memory: 2048\ncores: 2\nscsi0: local:100/disk.img\n');
  let snap = await w.commit();
  console.log(`backup ${snap.name}: ${mib(s.bytes)} in ${s.seconds.toFixed(2)} s, ${s.chunksWritten} chunks written (${mib(s.bytesStored)}), ${s.chunksKnown} known from ${hadBase ? 'the previous snapshot' : 'nothing'}, ${s.chunksZero} zero`);

  // 2. Change 1 % of the image's 4 KiB blocks in place, and back up only what changed.
  const fh = await open(IMAGE, 'r+');
  const ranges = [];
  for (let i = 0; i < SIZE / 4096 / 100; i++) {
    const at = Math.floor(Math.random() * (SIZE / 4096)) * 4096;
    await fh.write(randomBytes(4096), 0, 4096, at);
    ranges.push([at, 4096]);
  }
  await fh.close();
  w = await group.backup();
  s = await w.addImage('drive-scsi0', IMAGE, { changed: { ranges } });
  snap = await w.commit();
  console.log(`incremental ${snap.name}: read ${mib(s.bytesRead)} of ${mib(s.bytes)} (${s.chunksReused} chunks taken from the previous index), wrote ${mib(s.bytesStored)}`);

  // 3. Restore the newest snapshot and compare.
  const target = path.join(WORK, 'restored.img');
  const r = await snap.open();
  const rs = await r.restore('drive-scsi0.img', target, { overwrite: true });
  await r.close();
  const same = (await sha(IMAGE)) === (await sha(target));
  console.log(`restore: ${mib(rs.bytes)} in ${rs.seconds.toFixed(2)} s to ${path.relative(process.cwd(), target)}: ${same ? 'identical to the source' : 'DIFFERENT'}`);
  console.log(`\nsnapshots of vm/100 in ${path.relative(process.cwd(), STORE) || '.'}:`);
  for (const x of await group.snapshots()) console.log(`  ${x.name}  ${x.files.map((f) => f.name).join(', ')}`);
  console.log(`\nexplore: node dist/cli/main.js --store ${path.relative(process.cwd(), STORE)} show vm/100`);
  if (!same) process.exitCode = 1;
} finally {
  await ds.close();
}

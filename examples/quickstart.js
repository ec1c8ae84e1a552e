// Quickstart: back up a disk image into ./cairn-store, change it and back it up again twice with a
// changed-block map (as a hypervisor's dirty bitmap would give): once with writes scattered at
// random, once with the same amount written in one place. Then restore the newest and check it.
// It prints what each incremental stored and why: an image is stored in whole chunks, so what
// counts is how many chunks the writes fall in, not how many bytes changed.
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
const BLOCK = 4096;
const BLOCKS = SIZE / BLOCK;
const CHANGED = Math.round(BLOCKS / 100); // 1 % of the blocks

const mib = (n) => `${(n / 1048576).toFixed(1)} MiB`;
const pct = (a, b) => `${Math.round((100 * a) / b)} %`;
const chunks = (n) => `${n} chunk${n === 1 ? '' : 's'}`;
const sha = async (file) =>
  createHash('sha256')
    .update(await readFile(file))
    .digest('hex');

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

/** Writes random 4 KiB blocks at the given block numbers; returns the changed-block map. */
async function rewrite(blocks) {
  const fh = await open(IMAGE, 'r+');
  try {
    for (const b of blocks) await fh.write(randomBytes(BLOCK), 0, BLOCK, b * BLOCK);
  } finally {
    await fh.close();
  }
  return { ranges: blocks.map((b) => [b * BLOCK, BLOCK]) };
}

/** How many chunks of `chunkSize` the blocks fall in. */
const chunksHit = (blocks, chunkSize) => new Set(blocks.map((b) => Math.floor((b * BLOCK) / chunkSize))).size;

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
  const chunkSize = ds.config.imageChunkSize;
  const nChunks = Math.ceil(SIZE / chunkSize);

  // 1. A backup of the image and the VM's config.
  let w = await group.backup();
  let s = await w.addImage('drive-scsi0', IMAGE);
  await w.addBlob('qemu-server.conf', 'memory: 2048\ncores: 2\nscsi0: local:100/disk.img\n');
  let snap = await w.commit();
  const full = hadBase ? '' : `the full backup stored ${mib(s.bytesStored)}`;
  console.log(
    `backup ${snap.name}: ${mib(s.bytes)} in ${s.seconds.toFixed(2)} s as ${s.chunks} chunks of ${mib(chunkSize)}: ${s.chunksWritten} written (${mib(s.bytesStored)} after LZ4), ${s.chunksZero} all zero, ${hadBase ? `${s.chunksKnown} known from the previous snapshot` : 'the first backup of the group'}`,
  );

  // 2. Scattered: rewrite 1 % of the 4 KiB blocks, each at a random place.
  const picked = new Set();
  while (picked.size < CHANGED) picked.add(Math.floor(Math.random() * BLOCKS));
  const scattered = [...picked].sort((a, b) => a - b);
  const hit = chunksHit(scattered, chunkSize);
  w = await group.backup();
  s = await w.addImage('drive-scsi0', IMAGE, { changed: await rewrite(scattered) });
  snap = await w.commit();
  console.log(
    `\nscattered change: ${scattered.length} blocks of 4 KiB rewritten at random places (1 % of the image, ${mib(scattered.length * BLOCK)}) fell in ${hit} of the ${nChunks} chunks (${pct(hit, nChunks)})`,
  );
  console.log(
    `  incremental ${snap.name}: read ${mib(s.bytesRead)} and stored ${mib(s.bytesStored)} (${chunks(s.chunksWritten)}) of ${mib(s.bytes)}${full === '' ? '' : ` (${full})`}; ${chunks(s.chunksReused)} taken unread from the previous index`,
  );
  const escape = (1 - 1 / nChunks) ** scattered.length;
  const small = 64 * 1024;
  console.log(`  why: an image is stored in whole chunks, and a chunk with one changed byte is read, hashed and stored again.`);
  console.log(
    `  A chunk escapes ${scattered.length} random writes with probability (1 - 1/${nChunks})^${scattered.length} = ${pct(escape, 1)}, so about ${pct(1 - escape, 1)} are hit.`,
  );
  console.log(
    `  With 64 KiB chunks (imageChunkSize) the same writes would fall in ${chunksHit(scattered, small)} of ${SIZE / small} chunks (${pct(chunksHit(scattered, small), SIZE / small)}).`,
  );

  // 3. Contiguous: the same number of blocks, written in one run at a random place.
  const first = Math.floor(Math.random() * (BLOCKS - CHANGED));
  const contiguous = Array.from({ length: CHANGED }, (_, i) => first + i);
  const hit2 = chunksHit(contiguous, chunkSize);
  w = await group.backup();
  s = await w.addImage('drive-scsi0', IMAGE, { changed: await rewrite(contiguous) });
  snap = await w.commit();
  console.log(
    `\ncontiguous change: the same ${contiguous.length} blocks (${mib(contiguous.length * BLOCK)}) written in one run at ${mib(first * BLOCK)} fell in ${hit2} of the ${nChunks} chunks (${pct(hit2, nChunks)})`,
  );
  console.log(
    `  incremental ${snap.name}: read ${mib(s.bytesRead)} and stored ${mib(s.bytesStored)} (${chunks(s.chunksWritten)}) of ${mib(s.bytes)}; ${chunks(s.chunksReused)} taken unread from the previous index`,
  );

  // 4. Restore the newest snapshot and compare.
  const target = path.join(WORK, 'restored.img');
  const r = await snap.open();
  const rs = await r.restore('drive-scsi0.img', target, { overwrite: true });
  await r.close();
  const same = (await sha(IMAGE)) === (await sha(target));
  console.log(`\nrestore: ${mib(rs.bytes)} in ${rs.seconds.toFixed(2)} s to ${path.relative(process.cwd(), target)}: ${same ? 'identical to the source' : 'DIFFERENT'}`);
  console.log(`\nsnapshots of vm/100 in ${path.relative(process.cwd(), STORE) || '.'}:`);
  for (const x of await group.snapshots()) console.log(`  ${x.name}  ${x.files.map((f) => f.name).join(', ')}`);
  console.log(`\nexplore: node dist/cli/main.js --store ${path.relative(process.cwd(), STORE)} show vm/100`);
  if (!same) process.exitCode = 1;
} finally {
  await ds.close();
}

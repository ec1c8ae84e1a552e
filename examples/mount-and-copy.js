// Mount a snapshot read-only and copy a file out of it with an ordinary tool (cp), then unmount.
// Needs FUSE (/dev/fuse, libfuse2) and, as for any mount, root or a user allowed to mount.
//
//   node examples/mount-and-copy.js
//
// The datastore is $CAIRN_STORE or ./cairn-store. It backs up this repository's examples/
// directory first (group host/example-mount), then mounts that snapshot.
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Datastore } from 'cairn';
import { mountSnapshot } from 'cairn/fuse';

const STORE = path.resolve(process.env.CAIRN_STORE ?? 'cairn-store');
const SOURCE = fileURLToPath(new URL('.', import.meta.url));

const ds = await Datastore.openOrCreate(STORE);
try {
  const w = await ds.group('host/example-mount').backup();
  await w.addTree('examples', SOURCE);
  const snap = await w.commit();

  const work = await mkdtemp(path.join(os.tmpdir(), 'cairn-mount-'));
  const mnt = path.join(work, 'mnt');
  await mkdir(mnt); // a mountpoint is an existing directory
  const m = await mountSnapshot(snap, mnt);
  try {
    // Reach the mount from another process: this one serves it (a process that reads its own
    // mount synchronously would wait on itself).
    const copy = path.join(work, 'copy-of-mount-and-copy.js');
    await promisify(execFile)('cp', [path.join(mnt, 'examples.tree', 'mount-and-copy.js'), copy]);
    const same = (await readFile(copy, 'utf8')) === (await readFile(fileURLToPath(import.meta.url), 'utf8'));
    console.log(`mounted ${snap.name} at ${mnt}; copied examples.tree/mount-and-copy.js to ${copy}: ${same ? 'identical' : 'DIFFERENT'}`);
    if (!same) process.exitCode = 1;
  } finally {
    await m.unmount();
  }
} finally {
  await ds.close();
}

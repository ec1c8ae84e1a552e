// Back up a directory as a tree archive, change nothing and back it up again (unchanged files are
// not even opened), then look inside the archive and restore one file.
//
//   node examples/backup-directory.js [directory]     (default: this repository's lib/ directory)
//
// The datastore is $CAIRN_STORE or ./cairn-store (created when missing).
import { createHash } from 'node:crypto';
import { mkdtemp, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Datastore } from 'cairn';

const SOURCE = path.resolve(process.argv[2] ?? fileURLToPath(new URL('../lib', import.meta.url)));
const STORE = path.resolve(process.env.CAIRN_STORE ?? 'cairn-store');

const ds = await Datastore.openOrCreate(STORE);
try {
  const group = ds.group('host/example-dir');

  for (const round of ['first', 'again']) {
    const w = await group.backup();
    const stats = await w.addTree('files', SOURCE, { exclude: ['node_modules'] });
    const snap = await w.commit();
    console.log(`${round} backup ${snap.name}: ${stats.entries} entries, ${stats.filesRead} files read, ${stats.filesReused} unchanged (not opened)`);
  }

  const snap = await group.newest();
  const reader = await snap.open();
  try {
    const tree = await reader.tree('files.tree');
    const top = await tree.list('');
    console.log(`top level of the archive: ${top.map((i) => i.path.toString()).join(', ')}`);

    // Restore the first regular file found and compare it with the source.
    let file;
    for await (const item of tree.walk()) {
      if (item.entry.kind === 'file') {
        file = item;
        break;
      }
    }
    if (file !== undefined) {
      const rel = file.path.toString();
      const target = await mkdtemp(path.join(os.tmpdir(), 'cairn-example-'));
      await reader.restoreTree('files.tree', target, { include: [rel] });
      const sha = async (p) =>
        createHash('sha256')
          .update(await readFile(p))
          .digest('hex');
      const same = (await sha(path.join(target, rel))) === (await sha(path.join(SOURCE, rel)));
      console.log(`restored ${rel} into ${target}: ${same ? 'identical to the source' : 'DIFFERENT'}`);
      if (!same) process.exitCode = 1;
    }
  } finally {
    await reader.close();
  }
} finally {
  await ds.close();
}

import t from 'tap';
import path from 'node:path';
import { seededBytes, tempDir, writeTemp } from '../helpers/fixtures.js';
import { cairn, requireBuilt } from './run-cli.js';

if (requireBuilt(t)) {
  t.test('large chunks and blobs', async (t) => {
    const dir = tempDir(t, 'cairn-cli-');
    const store = path.join(dir, 'store');
    t.equal((await cairn(['init', store, '--sync-level', 'none'])).code, 0);
    const big = await writeTemp(dir, 'big.raw', seededBytes(16 * 1024 * 1024, 3));
    const r = await cairn(['--store', store, 'backup', 'vm/1', `disk.img:${big}`, '--chunk-size', String(16 * 1024 * 1024), '--time', '2026-01-01T00:00:00Z']);
    t.equal(r.code, 0, 'a backup with the largest allowed chunk size (16 MiB) succeeds');
    const blob = await writeTemp(dir, 'big.bin', seededBytes(12 * 1024 * 1024, 4));
    const rb = await cairn(['--store', store, 'backup', 'vm/2', `big.blob:${blob}`, '--time', '2026-01-01T00:00:00Z']);
    t.equal(rb.code, 0, 'a 12 MiB blob (MAX_BLOB_SIZE is 64 MiB) is backed up');
    const small = await cairn(['--store', store, 'backup', 'vm/3', `disk.img:${big}`, '--chunk-size', String(4 * 1024 * 1024), '--time', '2026-01-01T00:00:00Z']);
    t.equal(small.code, 0, `4 MiB chunks work: ${small.err}`);
  });
}

import t from 'tap';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { tempDir } from '../helpers/fixtures.js';
import { cairn, requireBuilt } from './run-cli.js';

if (requireBuilt(t)) {
  t.test('store errors and usage errors', async (t) => {
    const dir = tempDir(t, 'cairn-cli-');
    const noStore = await cairn(['snapshots']);
    t.equal(noStore.code, 2, 'no store: exit 2');
    t.match(noStore.err, /ERR_INVALID_ARGUMENT/);
    t.match(noStore.err, /CAIRN_STORE/);
    const emptyEnv = await cairn(['snapshots'], { CAIRN_STORE: '' });
    t.equal(emptyEnv.code, 2, 'empty CAIRN_STORE: exit 2');

    await mkdir(path.join(dir, 'plain'));
    const notDs = await cairn(['--store', path.join(dir, 'plain'), 'snapshots']);
    t.equal(notDs.code, 3, 'not a datastore: exit 3');
    t.match(notDs.err, /ERR_NOT_A_DATASTORE/);
    const missing = await cairn(['--store', path.join(dir, 'missing'), 'snapshots']);
    t.equal(missing.code, 3, 'a missing directory: exit 3');
    const viaEnv = await cairn(['show', 'vm/1'], { CAIRN_STORE: path.join(dir, 'plain') });
    t.equal(viaEnv.code, 3, 'CAIRN_STORE is used');
    t.match(viaEnv.err, /ERR_NOT_A_DATASTORE/);

    const unknownCmd = await cairn(['frobnicate']);
    t.equal(unknownCmd.code, 2, 'unknown command: exit 2');
    const unknownOpt = await cairn(['snapshots', '--bogus']);
    t.equal(unknownOpt.code, 2, 'unknown option: exit 2');
    const missingArg = await cairn(['--store', dir, 'show']);
    t.equal(missingArg.code, 2, 'missing argument: exit 2');
  });
}

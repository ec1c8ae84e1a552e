/**
 * The folder operations of keyspace.ts on both paths: real directories (local backend) and keys
 * only (memory backend). Each case runs on both and must give the same answers.
 */
import t from 'tap';
import { LocalBackend } from '../../lib/backend/local.js';
import { MemoryBackend } from '../../lib/backend/memory.js';
import type { Backend } from '../../lib/backend/backend.js';
import {
  childNames,
  folderExists,
  makeFolder,
  makeNamespaceFolder,
  moveFolder,
  NAMESPACE_MARKER,
  removeEmptyFolder,
  removeFileFolder,
  removeFolder,
  syncBackend,
} from '../../lib/datastore/keyspace.js';
import { tempDir } from '../helpers/fixtures.js';

const makers: [string, (dir: string) => Backend][] = [
  ['local', (dir) => new LocalBackend(dir)],
  ['memory', () => new MemoryBackend()],
];

async function keys(b: Backend, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for await (const e of b.list(prefix)) out.push(e.key);
  return out.sort();
}

for (const [name, make] of makers) {
  t.test(`${name}: folders exist, list, move and go`, async (t) => {
    const b = make(tempDir(t));
    t.equal(await folderExists(b, 'ns/a'), false, 'a missing folder');
    await makeNamespaceFolder(b, 'ns/a');
    t.equal(await folderExists(b, 'ns/a'), true, 'an empty namespace exists');
    t.same(await childNames(b, 'ns'), ['a']);
    t.same(await keys(b, 'ns/a'), name === 'memory' ? [`ns/a/${NAMESPACE_MARKER}`] : [], 'the marker is written only without directories');

    await makeFolder(b, 'ns/a/vm/1/2026-01-01T00:00:00Z');
    for (const f of ['manifest.blob', 'disk.img.fidx', 'conf.blob']) await b.put(`ns/a/vm/1/2026-01-01T00:00:00Z/${f}`, Buffer.from(f));
    await b.put('ns/a/vm/1/owner', Buffer.from('me'));
    t.same(await childNames(b, 'ns/a/vm/1'), ['2026-01-01T00:00:00Z', 'owner']);
    t.same(await childNames(b, 'missing'), []);

    await moveFolder(b, 'ns/a/vm/1/2026-01-01T00:00:00Z', 'ns/a/vm/1/2026-01-02T00:00:00Z', { last: 'manifest.blob', sync: true });
    t.same(
      await keys(b, 'ns/a/vm/1/2026-01-02T00:00:00Z'),
      ['conf.blob', 'disk.img.fidx', 'manifest.blob'].map((f) => `ns/a/vm/1/2026-01-02T00:00:00Z/${f}`),
      'moved whole',
    );
    t.same(await keys(b, 'ns/a/vm/1/2026-01-01T00:00:00Z'), [], 'nothing left at the source');
    t.equal(Buffer.from(await b.get('ns/a/vm/1/2026-01-02T00:00:00Z/conf.blob')).toString(), 'conf.blob');

    t.equal(await removeEmptyFolder(b, 'ns/a'), false, 'a namespace with a group is not empty');
    t.equal(await removeFileFolder(b, 'ns/a/vm/1/2026-01-02T00:00:00Z', 'manifest.blob'), true);
    t.equal(await removeFileFolder(b, 'ns/a/vm/1/2026-01-02T00:00:00Z', 'manifest.blob'), false, 'gone: false');
    t.equal(await removeFolder(b, 'ns/a/vm'), true, 'the group folder goes with its owner');
    t.equal(await removeFolder(b, 'ns/a/vm'), false, 'gone: false');
    if (name === 'local') await removeEmptyFolder(b, 'ns/a/vm');
    t.equal(await removeEmptyFolder(b, 'ns/a'), true, 'an empty namespace goes');
    t.equal(await folderExists(b, 'ns/a'), false);
    t.same(await keys(b), [], 'nothing left');
    await syncBackend(b);
    await b.close();
  });
}

t.test('memory: the first key of a removal goes first, and a marker alone is an empty namespace', async (t) => {
  const b = new MemoryBackend();
  await b.put('g/t/manifest.blob', Buffer.from('m'));
  await b.put('g/t/a', Buffer.from('a'));
  const deleted: string[] = [];
  const del = b.delete.bind(b);
  b.delete = async (key: string) => {
    deleted.push(key);
    return del(key);
  };
  t.equal(await removeFolder(b, 'g/t', 'manifest.blob'), true);
  t.equal(deleted[0], 'g/t/manifest.blob', 'the manifest first: the snapshot is invisible before the rest goes');
  await makeNamespaceFolder(b, 'ns/x');
  await b.put('ns/x/ns/y/.namespace', new Uint8Array(0));
  t.equal(await removeEmptyFolder(b, 'ns/x'), false, 'a child namespace keeps it');
  t.equal(await removeEmptyFolder(b, 'ns/x/ns/y'), true);
  t.equal(await removeEmptyFolder(b, 'ns/x'), true);
  t.equal(await removeEmptyFolder(b, 'ns/none'), true, 'a missing folder is gone');
});

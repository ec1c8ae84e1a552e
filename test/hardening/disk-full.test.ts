// A disk that really fills up (issue 7): a datastore on a 6 MiB tmpfs. A backup that does not fit
// fails with a coded error naming ENOSPC; the snapshots made before still restore byte-identical,
// verify passes, the next GC leaves no temp file, and once space is freed a backup succeeds.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { seededBytes, tempDir } from '../helpers/fixtures.js';
import { cairn, requireBuilt } from '../cli/run-cli.js';
import { tempFiles } from '../helpers/faults.js';

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

const why = process.getuid?.() !== 0 ? 'needs root (mount -t tmpfs)' : false;
t.test('a datastore on a full tmpfs', { skip: why }, async (t) => {
  if (!requireBuilt(t)) return;
  const dir = tempDir(t, 'cairn-full-');
  const mnt = path.join(dir, 'small');
  mkdirSync(mnt);
  const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=6m,mode=0700', 'tmpfs', mnt], { encoding: 'utf8' });
  if (m.status !== 0) {
    t.skip(`mount -t tmpfs failed: ${m.stderr.trim()}`, () => undefined);
    return;
  }
  t.teardown(() => {
    spawnSync('umount', [mnt]);
  });
  const store = path.join(mnt, 'store');
  const S = ['--store', store];
  t.equal((await cairn(['init', store, '--sync-level', 'file'])).code, 0, 'init');
  const small = seededBytes(1 << 20, 1);
  writeFileSync(path.join(dir, 'small.img'), small);
  const big = seededBytes(12 << 20, 2); // random: does not compress, does not fit
  writeFileSync(path.join(dir, 'big.img'), big);
  mkdirSync(path.join(dir, 'tree'));
  for (let i = 0; i < 40; i++) writeFileSync(path.join(dir, 'tree', `f${i}`), seededBytes(200_000, 10 + i));

  const first = await cairn([...S, 'backup', 'vm/1', `disk.img:${path.join(dir, 'small.img')}`, '--time', '2026-01-01T00:00:00Z']);
  t.equal(first.code, 0, 'a backup that fits', { stderr: first.err });

  for (const [what, args] of [
    ['an image', ['backup', 'vm/1', `disk.img:${path.join(dir, 'big.img')}`, '--time', '2026-01-01T01:00:00Z']],
    ['a tree', ['backup', 'host/2', `root.tree:${path.join(dir, 'tree')}`, '--time', '2026-01-01T01:00:00Z']],
  ] as const) {
    const r = await cairn([...S, ...args]);
    t.equal(r.code, 6, `${what} that does not fit: exit 6`);
    t.match(r.err, /^cairn: ERR_IO: .*ENOSPC/m, 'ERR_IO naming ENOSPC');
    t.notMatch(r.err, /\n\s+at /, 'no stack trace');
    const list = await cairn([...S, '--json', 'snapshots']);
    t.equal(list.code, 0, 'the datastore opens');
    t.same(
      (JSON.parse(list.out) as { type: string; id: string; time: string }[]).map((s) => `${s.type}/${s.id}/${s.time}`),
      ['vm/1/2026-01-01T00:00:00Z'],
      'only the first snapshot',
    );
    const out = path.join(dir, 'restored.img');
    const rs = await cairn([...S, 'restore', 'vm/1/2026-01-01T00:00:00Z', 'disk.img', out, '--overwrite']);
    t.equal(rs.code, 0, 'it restores', { stderr: rs.err });
    t.equal(sha(readFileSync(out)), sha(small), 'byte-identical');
    t.equal((await cairn([...S, 'verify'])).code, 0, 'verify passes');
    const gc = await cairn([...S, 'gc', '--skew', '0']);
    t.equal(gc.code, 0, 'gc runs on a full disk', { stderr: gc.err });
    t.same(tempFiles(store), [], 'no temp file left after the GC');
  }

  // The GC freed the chunks of the failed backups: a backup that fits works again.
  const again = await cairn([...S, 'backup', 'vm/1', `disk.img:${path.join(dir, 'small.img')}`, '--time', '2026-01-01T02:00:00Z']);
  t.equal(again.code, 0, 'after the GC a backup succeeds', { stderr: again.err });
  t.ok(readdirSync(store).includes('vm'));
});

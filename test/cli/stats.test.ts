/**
 * `cairn stats` on a real datastore where two groups share chunks: a group's stored bytes count
 * every chunk it references once; the total counts a shared chunk once.
 */
import t from 'tap';
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { seededBytes, tempDir, writeTemp } from '../helpers/fixtures.js';
import { cairn, requireBuilt } from './run-cli.js';

interface Space {
  snapshots: number;
  logicalBytes: number;
  storedBytes: number;
  chunks: number;
  missingChunks: number;
  dedupFactor: number;
}

if (requireBuilt(t)) {
  t.test('per group, per namespace and total, with chunks shared between groups', async (t) => {
    const dir = tempDir(t, 'cairn-stats-');
    const store = path.join(dir, 'store');
    const S = ['--store', store];
    t.equal((await cairn(['init', store, '--sync-level', 'none', '--image-chunk-size', '65536'])).code, 0);
    const CS = 65536;
    const a = seededBytes(8 * CS, 1);
    const b = Buffer.concat([a.subarray(0, 4 * CS), seededBytes(4 * CS, 2)]); // half shared with a
    const fa = await writeTemp(dir, 'a.raw', a);
    const fb = await writeTemp(dir, 'b.raw', b);
    for (const [g, f, time] of [
      ['vm/1', fa, '2026-01-01T00:00:00Z'],
      ['vm/1', fa, '2026-01-02T00:00:00Z'],
      ['vm/2', fb, '2026-01-01T00:00:00Z'],
    ] as const) {
      const r = await cairn([...S, 'backup', g, `disk.img:${f}`, '--time', time]);
      t.equal(r.code, 0, r.err);
    }
    let onDisk = 0;
    let files = 0;
    for (const s of await readdir(path.join(store, '.chunks'))) {
      for (const c of await readdir(path.join(store, '.chunks', s))) {
        onDisk += (await stat(path.join(store, '.chunks', s, c))).size;
        files++;
      }
    }
    const r = await cairn([...S, '--json', 'stats']);
    t.equal(r.code, 0, r.err);
    const j = JSON.parse(r.out) as { groups: (Space & { group: string; namespace: string })[]; namespaces: (Space & { namespace: string })[]; total: Space };
    const g1 = j.groups.find((g) => g.group === 'vm/1')!;
    const g2 = j.groups.find((g) => g.group === 'vm/2')!;
    t.match(g1, { namespace: '', snapshots: 2, logicalBytes: 2 * a.length, chunks: 8, missingChunks: 0 });
    t.match(g2, { snapshots: 1, logicalBytes: b.length, chunks: 8 });
    t.match(j.total, { snapshots: 3, logicalBytes: 2 * a.length + b.length, chunks: 12, storedBytes: onDisk, missingChunks: 0 });
    t.equal(files, 12, 'twelve distinct chunks on disk');
    t.ok(g1.storedBytes + g2.storedBytes > j.total.storedBytes, 'shared chunks count in each group, once in the total');
    t.equal(j.total.dedupFactor, j.total.logicalBytes / j.total.storedBytes);
    t.match(j.namespaces, [{ namespace: '', groups: 2, chunks: 12, storedBytes: onDisk }]);

    const one = await cairn([...S, '--json', 'stats', 'vm/2']);
    t.match(JSON.parse(one.out), { groups: [{ group: 'vm/2', chunks: 8 }], total: { chunks: 8, storedBytes: g2.storedBytes } });
    const text = await cairn([...S, 'stats']);
    t.equal(text.code, 0);
    const lines = text.out.trimEnd().split('\n');
    t.match(lines[0], /^\s+LOGICAL\s+STORED\s+DEDUP\s+CHUNKS\s+SNAPSHOTS$/);
    t.match(lines.at(-1), /^total\s+1\.50 MiB\s+.*\s+12\s+3$/);
    t.equal(new Set(lines.map((l) => l.length)).size, 1, 'columns aligned');
    const missing = await cairn([...S, 'stats', 'vm/9']);
    t.equal(missing.code, 3);
    t.match(missing.err, /^cairn: ERR_NOT_FOUND: backup group vm\/9 does not exist\n$/);
    const help = await cairn(['stats', '--help']);
    t.match(help.out, /a group's stored counts\nevery chunk it references once/);
  });
}

/**
 * `cairn gc` right after `cairn prune` frees what the prune released (issue 13): the skew is
 * measured for the datastore's filesystem (about 0.1 s on a local one) instead of a fixed minute.
 * Real CLI processes on a real datastore; the chunks left are exactly those of the kept snapshot
 * and `du` goes down. An explicit `--skew` still holds the chunks back.
 */
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Datastore, isNetworkFilesystem, mountOf } from '../../lib/index.js';
import { toHex } from '../../lib/util/bytes.js';
import { seededBytes, tempDir } from '../helpers/fixtures.js';
import { cairn, requireBuilt } from './run-cli.js';

const CS = 64 * 1024;

interface GcJson {
  removedChunks: number;
  removedBytes: number;
  pendingChunks: number;
  diskChunks: number;
  skewMs: number;
  skew: { reason: string; ms: number; fsType?: string; summary: string; measurement?: { elapsedMs: number; granularityNs: number } };
}

function chunkFiles(store: string): Set<string> {
  const dir = path.join(store, '.chunks');
  return new Set(readdirSync(dir).flatMap((shard) => readdirSync(path.join(dir, shard))));
}

/** Disk usage of the chunk directory in KiB, as `du -sk` reports it. */
function du(store: string): number {
  return Number(execFileSync('du', ['-sk', path.join(store, '.chunks')], { encoding: 'utf8' }).split('\t')[0]);
}

async function digestsOf(store: string, time: string): Promise<Set<string>> {
  const ds = await Datastore.open(store);
  try {
    const r = await (await ds.group('vm/100').snapshot(time)).open();
    const idx = await r.imageIndex('disk.img');
    const out = new Set<string>();
    for (let i = 0; i < idx.count; i++) out.add(toHex(idx.digestAt(i)));
    await r.close();
    return out;
  } finally {
    await ds.close();
  }
}

const dir = tempDir(t, 'cairn-gc-prune-');
const mount = mountOf(dir);
const skip =
  mount === undefined ? 'no mount table' : isNetworkFilesystem(mount.fsType) ? `the tmp directory is on ${mount.fsType}, a network filesystem (large skew by design)` : false;

if (requireBuilt(t)) {
  t.test('backup, backup, prune the first, gc at once: its chunks are gone and du goes down', { skip }, async (t) => {
    const s = path.join(dir, 'store');
    t.equal((await cairn(['init', s, '--image-chunk-size', String(CS), '--sync-level', 'none'])).code, 0, 'init');
    // 32 chunks; the second image keeps the first 16 and changes the other 16.
    const first = seededBytes(32 * CS, 1);
    const second = Buffer.concat([first.subarray(0, 16 * CS), seededBytes(16 * CS, 2)]);
    const img1 = path.join(dir, 'one.img');
    const img2 = path.join(dir, 'two.img');
    writeFileSync(img1, first);
    writeFileSync(img2, second);
    const T1 = '2026-01-01T10:00:00Z';
    const T2 = '2026-01-02T10:00:00Z';
    for (const [img, time] of [
      [img1, T1],
      [img2, T2],
    ] as const) {
      const r = await cairn(['--store', s, 'backup', 'vm/100', `disk.img:${img}`, '--time', time]);
      t.equal(r.code, 0, `backup ${time}: ${r.err}`);
    }
    const kept = await digestsOf(s, T2);
    const all = chunkFiles(s);
    t.equal(all.size, 48, '32 + 16 chunks stored');
    const duBefore = du(s);

    const prune = await cairn(['--store', s, 'prune', 'vm/100', '--keep-last', '1']);
    t.equal(prune.code, 0, prune.err);
    t.match(prune.out, /removed 1 of 2 snapshots/);
    const gc = await cairn(['--store', s, '--json', 'gc']);
    t.equal(gc.code, 0, gc.err);
    const r = JSON.parse(gc.out) as GcJson;
    t.equal(r.skew.reason, 'local', `skew chosen for a local filesystem: ${r.skew.summary}`);
    t.ok(r.skewMs < 1000, `skew ${r.skewMs} ms`);
    t.ok((r.skew.measurement?.elapsedMs ?? Infinity) < 50, `measured in ${r.skew.measurement?.elapsedMs} ms`);
    t.same([r.removedChunks, r.pendingChunks, r.diskChunks], [16, 0, 32], 'the 16 chunks only the pruned snapshot used are removed at once, none pending');
    t.same(chunkFiles(s), kept, "the chunks left are exactly the kept snapshot's");
    const duAfter = du(s);
    t.ok(duBefore - duAfter >= 16 * 64, `du went down by ${duBefore - duAfter} KiB (of ${duBefore} KiB), at least the 16 chunks' 1 MiB`);
    t.equal(r.removedBytes >= 16 * CS, true, 'removedBytes counts them');

    const restored = path.join(dir, 'restored.img');
    t.equal((await cairn(['--store', s, 'restore', 'vm/100', 'disk.img', restored])).code, 0, 'the kept snapshot restores');
    t.same(execFileSync('cmp', [restored, img2]).length, 0, 'identical to its source');

    // An explicit --skew still holds freed chunks back; the human line says which skew and why.
    const T3 = '2026-01-03T10:00:00Z';
    const img3 = path.join(dir, 'three.img');
    writeFileSync(img3, seededBytes(8 * CS, 3));
    t.equal((await cairn(['--store', s, 'backup', 'vm/100', `disk.img:${img3}`, '--time', T3])).code, 0, 'third backup');
    t.equal((await cairn(['--store', s, 'forget', `vm/100/${T2}`])).code, 0, 'forget the second');
    const held = await cairn(['--store', s, 'gc', '--skew', '3600']);
    t.equal(held.code, 0, held.err);
    t.match(held.out, /removed 0 chunks \(0 B\); 32 pending/);
    t.match(held.out, /^skew 3600 s: given by the caller/m);
    const freed = await cairn(['--store', s, 'gc']);
    t.equal(freed.code, 0, freed.err);
    t.match(freed.out, /removed 32 chunks \([0-9.]+ MiB\); 0 pending/);
    t.match(freed.out, new RegExp(`^skew 0\\.[0-9]+ s: local ${mount!.fsType} at .*timestamps in steps of`, 'm'));
    t.equal(chunkFiles(s).size, 8, "only the third snapshot's chunks are left");
  });
}

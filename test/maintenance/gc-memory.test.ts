/**
 * GC on a datastore whose content is in a MemoryBackend (no local files, no renames): the chunk
 * store's generic list-and-delete sweep, the skew measured through the backend, and the same
 * outcomes as on local files (exactly the unreferenced chunks go; referenced, recently touched and
 * needed `.bad` copies stay; a dry run changes nothing).
 */
import t, { type Test } from 'tap';
import { promises as fsp, readdirSync } from 'node:fs';
import path from 'node:path';
import { Datastore, GarbageCollector, GC_PROBE_PREFIX, gcSkewFor, gcSkewOf, measureBackendTimestamps, measureTimestampSkew, type Snapshot } from '../../lib/index.js';
import { MemoryBackend } from '../../lib/backend/memory.js';
import { LocalBackend } from '../../lib/backend/local.js';
import { chunkKey, CHUNK_DIR } from '../../lib/store/chunk-store.js';
import { sweepGeneric } from '../../lib/store/chunk-sweep.js';
import { GC_STATUS_KEY } from '../../lib/maintenance/gc.js';
import { encodeChunk } from '../../lib/codec/chunk-codec.js';
import { fromHex, toHex } from '../../lib/util/bytes.js';
import type { BackendStat } from '../../lib/backend/backend.js';
import { seededBytes, tempDir, writeTemp } from '../helpers/fixtures.js';
import { imageDigests as digestsOf } from '../helpers/snapshots.js';

const CS = 64 * 1024;
const FAR = 1e9;

/** A memory backend whose `stat` can be intercepted (a writer acting between the listing and the delete). */
class HookedMemory extends MemoryBackend {
  onStat: ((key: string) => Promise<void>) | undefined;
  override async stat(key: string): Promise<BackendStat | undefined> {
    const hook = this.onStat;
    if (hook !== undefined) await hook(key);
    return super.stat(key);
  }
}

interface Env {
  dir: string;
  root: string;
  backend: HookedMemory;
  ds: Datastore;
  clock: { t: number };
}

async function setup(t: Test): Promise<Env> {
  const dir = tempDir(t);
  const clock = { t: Date.now() };
  const now = { now: () => clock.t };
  const backend = new HookedMemory({ clock: now });
  const root = path.join(dir, 'state');
  const ds = await Datastore.create(root, { backend, imageChunkSize: CS, syncLevel: 'none', threads: 1, clock: now });
  t.teardown(() => ds.close());
  return { dir, root, backend, ds, clock };
}

async function backup(env: Env, group: string, time: number, data: Uint8Array): Promise<Snapshot> {
  const src = await writeTemp(env.dir, `src-${group.replace('/', '_')}-${time}.raw`, data);
  const w = await env.ds.group(group).backup({ time });
  await w.addImage('disk', src);
  return w.commit();
}

/** Every key below `.chunks`, sorted. */
async function chunkKeys(env: Env): Promise<string[]> {
  const out: string[] = [];
  for await (const e of env.backend.list(CHUNK_DIR)) out.push(e.key);
  return out.sort();
}

async function checkRestore(t: Test, env: Env, snap: Snapshot, data: Uint8Array): Promise<void> {
  const r = await snap.open();
  try {
    const out = path.join(env.dir, `out-${Math.random().toString(36).slice(2)}`);
    await r.restore('disk.img', out);
    t.equal(Buffer.compare(await fsp.readFile(out), Buffer.from(data)), 0, `${snap.name}: image byte-identical`);
  } finally {
    await r.close();
  }
}

t.test('memory backend: backup, prune, GC removes exactly the unreferenced chunks; dry run removes nothing', async (t) => {
  const env = await setup(t);
  const a = seededBytes(8 * CS, 11);
  const b = seededBytes(5 * CS, 12);
  const sa = await backup(env, 'vm/1', 1000, a);
  const sb = await backup(env, 'vm/2', 1000, b);
  const only = await digestsOf(sa);
  for (const d of await digestsOf(sb)) only.delete(d);
  t.equal(only.size, 8);
  const kept = await digestsOf(sb);
  await sa.remove();
  const gc = new GarbageCollector(env.ds);
  const progress: { phase: string; done: number; total?: number }[] = [];

  // Measured skew: a backend without local files counts as a network filesystem.
  const r1 = await gc.run({ onProgress: (p) => progress.push(p) });
  t.equal(r1.skew.reason, 'network');
  t.equal(r1.skew.backend, env.backend.location);
  t.equal(r1.skewMs, 60_000, 'at least the network skew');
  t.equal(r1.skew.measurement?.granularityNs, 1, 'the memory backend keeps exact times');
  t.match(r1.skew.summary, /without local files/);
  t.equal(r1.removedChunks, 0, 'newer than the cutoff: nothing removed');
  t.equal(r1.pendingChunks, 8);
  t.equal(r1.diskChunks, kept.size);
  t.equal(r1.removedTemp, 0);
  t.ok(
    progress.some((p) => p.phase === 'sweep' && p.total === undefined && p.done === r1.diskChunks + r1.pendingChunks),
    'sweep progress counts keys, no total',
  );
  t.ok((await env.backend.stat(GC_STATUS_KEY)) !== undefined, 'status written to the backend');

  env.clock.t += FAR;
  const before = await chunkKeys(env);
  await env.backend.delete(GC_STATUS_KEY);
  const dry = await gc.run({ dryRun: true });
  t.equal(dry.removedChunks, 8, 'dry run counts what would go');
  t.ok(dry.removedBytes > 0);
  t.same(await chunkKeys(env), before, 'dry run removes nothing');
  t.equal(await env.backend.stat(GC_STATUS_KEY), undefined, 'dry run writes no status');

  const r2 = await gc.run();
  t.equal(r2.removedChunks, 8);
  t.equal(r2.removedBytes, dry.removedBytes);
  t.equal(r2.pendingChunks, 0);
  const after = new Set((await chunkKeys(env)).map((k) => k.slice(k.lastIndexOf('/') + 1)));
  for (const d of only) t.notOk(after.has(d), `chunk ${d.slice(0, 8)} removed`);
  t.same([...after].sort(), [...kept].sort(), 'exactly the referenced chunks are left');
  await checkRestore(t, env, sb, b);
  t.equal((await gc.run()).removedChunks, 0, 'a second run has nothing left');
  t.same(readdirSync(env.root), ['.locks'], 'the local directory holds only the lock tree');
  t.equal(await env.backend.stat(`${GC_PROBE_PREFIX}/x`), undefined);
  let probes = 0;
  for await (const _ of env.backend.list(GC_PROBE_PREFIX)) probes++;
  t.equal(probes, 0, 'no probe key left');
});

t.test('memory backend: touched chunks are kept, before the listing and between the listing and the delete', async (t) => {
  const env = await setup(t);
  const sa = await backup(env, 'vm/1', 1000, seededBytes(6 * CS, 21));
  const ds = [...(await digestsOf(sa))];
  t.equal(ds.length, 6);
  await sa.remove();
  env.clock.t += FAR;
  // A writer's dedup hit before the GC: touched at "now".
  t.equal(await env.ds.chunks.touch(fromHex(ds[0]!)), true);
  // Between the listing and the re-stat: one chunk is touched (a dedup hit), one removed (quarantined).
  env.backend.onStat = async (key) => {
    if (key === chunkKey(ds[1]!)) await env.backend.touch(key, env.clock.t);
    if (key === chunkKey(ds[2]!)) await env.backend.delete(key);
  };
  const r = await new GarbageCollector(env.ds).run({ skewMs: 1000 });
  env.backend.onStat = undefined;
  t.equal(r.pendingChunks, 2, 'the touched chunks are pending');
  t.equal(r.removedChunks, 3, 'the vanished chunk is not counted');
  t.ok(await env.ds.chunks.has(fromHex(ds[0]!)), 'touched before the GC: kept');
  t.ok(await env.ds.chunks.has(fromHex(ds[1]!)), 'touched after the listing: kept by the re-stat');
  for (const d of ds.slice(2)) t.notOk(await env.ds.chunks.has(fromHex(d)));
});

t.test('memory backend: .bad copies are kept while needed, removed when a good copy exists or nothing needs them', async (t) => {
  const env = await setup(t);
  const a = seededBytes(3 * CS, 31);
  const sa = await backup(env, 'vm/1', 1000, a);
  const sb = await backup(env, 'vm/2', 1000, seededBytes(2 * CS, 32));
  const [needed] = [...(await digestsOf(sa))];
  const [garbage] = [...(await digestsOf(sb))];
  const badNeeded = await env.ds.chunks.quarantine(fromHex(needed!));
  t.equal(badNeeded, `${chunkKey(needed!)}.0.bad`, 'quarantine without renames: a copy aside');
  t.equal(await env.ds.chunks.has(fromHex(needed!)), false);
  await sb.remove();
  const badGarbage = await env.ds.chunks.quarantine(fromHex(garbage!));
  // Keys the store does not own under .chunks are left alone.
  const stray = [`${CHUNK_DIR}/ab/${'cd'.repeat(32)}`, `${CHUNK_DIR}/ab/notes.txt`, `${CHUNK_DIR}/ab/${'cd'.repeat(32)}.1.bad`];
  for (const k of stray) await env.backend.put(k, new Uint8Array(3));
  env.clock.t += FAR;

  const r1 = await new GarbageCollector(env.ds).run({ skewMs: 1000 });
  t.equal(r1.badChunks, 1, 'needed and no good copy: kept');
  t.equal(r1.removedBad, 1, 'not needed: removed');
  t.ok(await env.backend.stat(badNeeded!));
  t.equal(await env.backend.stat(badGarbage!), undefined);
  for (const k of stray) t.ok(await env.backend.stat(k), `${k} left alone`);

  // A good copy comes back (a later backup writes it again): the .bad copy goes.
  const enc = encodeChunk(a.subarray(0, CS), { compress: true });
  t.equal(toHex(enc.digest), needed);
  t.equal(await env.ds.chunks.insert(enc.digest, enc.header, enc.payload), 'written');
  const dry = await new GarbageCollector(env.ds).run({ skewMs: 1000, dryRun: true });
  t.equal(dry.removedBad, 1);
  t.ok(await env.backend.stat(badNeeded!), 'dry run keeps it');
  const r2 = await new GarbageCollector(env.ds).run({ skewMs: 1000 });
  t.equal(r2.removedBad, 1);
  t.equal(r2.badChunks, 0);
  t.equal(await env.backend.stat(badNeeded!), undefined);
  await checkRestore(t, env, sa, a);
});

t.test('the generic sweep: abort, progress batches, and the same sweep over local files', async (t) => {
  const env = await setup(t);
  const ac = new AbortController();
  ac.abort();
  await t.rejects(env.ds.chunks.sweep({ isMarked: () => false, cutoffMs: 0, tempCutoffMs: 0, signal: ac.signal }), { code: 'ERR_ABORTED' });

  // 600 chunks: one progress report at 512 keys, one at the end.
  const c = { t: 1_000_000 };
  const mem = new MemoryBackend({ clock: { now: () => c.t } });
  const keys: string[] = [];
  for (let i = 0; i < 600; i++) {
    const hex = toHex(encodeChunk(seededBytes(64, i + 1), { compress: false }).digest);
    keys.push(chunkKey(hex));
    await mem.put(chunkKey(hex), new Uint8Array(10));
  }
  const seen: number[] = [];
  const marked = new Set(keys.slice(0, 100).map((k) => k.slice(-64)));
  c.t += 10_000;
  const r = await sweepGeneric(mem, { isMarked: (h) => marked.has(h), cutoffMs: c.t, tempCutoffMs: c.t, onProgress: (p) => seen.push(p.done) });
  t.same(seen, [512, 600]);
  t.equal(r.diskChunks, 100);
  t.equal(r.removedChunks, 500);
  t.equal(r.removedBytes, 5000);
  t.equal(mem.size, 100);

  // Over local files (the local backend has its fast sweep; the generic one works there too).
  const dir = tempDir(t);
  const local = new LocalBackend(dir);
  const hex = keys[0]!.slice(-64);
  await local.put(chunkKey(hex), new Uint8Array(7));
  await local.put(`${chunkKey(hex)}.0.bad`, new Uint8Array(7));
  const dry = await sweepGeneric(local, { isMarked: () => false, cutoffMs: Date.now() + 60_000, tempCutoffMs: 0, dryRun: true });
  t.same([dry.removedChunks, dry.removedBytes, dry.removedBad], [1, 7, 1]);
  t.ok(await local.stat(chunkKey(hex)), 'dry run');
  const wet = await sweepGeneric(local, { isMarked: () => false, cutoffMs: Date.now() + 60_000, tempCutoffMs: 0 });
  t.same([wet.removedChunks, wet.removedBad], [1, 1]);
  t.equal(await local.stat(chunkKey(hex)), undefined);
});

t.test('the skew through a backend: measured, stale probes removed, and the local-only calls refuse or fall back', async (t) => {
  const env = await setup(t);
  const m = await measureBackendTimestamps(env.ds, { rounds: 2 });
  t.equal(m.rounds, 2);
  t.equal(m.granularityNs, 1);
  t.equal(m.writeLagMs, 0);
  t.equal(m.touchLagMs, 0);
  t.equal(m.directory, env.backend.locate(GC_PROBE_PREFIX));
  await t.rejects(measureBackendTimestamps(env.ds, { rounds: 0 }), { code: 'ERR_INVALID_ARGUMENT' });

  // A probe key left by a killed measurement: removed once stale.
  await env.backend.put(`${GC_PROBE_PREFIX}/left-over`, new Uint8Array(1));
  await measureBackendTimestamps(env.ds);
  t.ok(await env.backend.stat(`${GC_PROBE_PREFIX}/left-over`), 'a fresh one may be a running measurement');
  env.clock.t += 11 * 60_000;
  await measureBackendTimestamps(env.ds);
  t.equal(await env.backend.stat(`${GC_PROBE_PREFIX}/left-over`), undefined, 'a stale one is removed');

  const s = await gcSkewOf(env.ds, { networkSkewMs: 5000 });
  t.equal(s.reason, 'network');
  t.equal(s.ms, 5000);
  t.ok(s.measurement !== undefined);
  const sync = gcSkewFor(env.ds);
  t.equal(sync.reason, 'network');
  t.equal(sync.ms, 60_000);
  t.match(sync.failure, /gcSkewOf/);
  t.throws(() => measureTimestampSkew(env.ds), { code: 'ERR_INVALID_ARGUMENT' });

  // A backend whose probe cannot be written: the skew falls back, naming the failure.
  env.backend.onStat = async (key) => {
    if (key.startsWith(`${GC_PROBE_PREFIX}/`)) await env.backend.delete(key);
  };
  const failed = await gcSkewOf(env.ds);
  env.backend.onStat = undefined;
  t.equal(failed.measurement, undefined);
  t.match(failed.failure, /vanished/);
  t.equal(failed.ms, 60_000);

  // The backend measurement also runs on local files.
  const dir = tempDir(t);
  const ds = await Datastore.create(path.join(dir, 'store'), { syncLevel: 'none' });
  t.teardown(() => ds.close());
  const lm = await measureBackendTimestamps(ds);
  t.ok(lm.granularityNs >= 1);
  t.same(await fsp.readdir(path.join(dir, 'store', GC_PROBE_PREFIX)), [], 'probe removed');
  t.equal((await gcSkewOf(ds, { fsType: 'ext4' })).reason, 'local', 'gcSkewOf on local files is gcSkewFor');
});

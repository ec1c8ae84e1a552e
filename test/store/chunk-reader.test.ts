import t, { type Test } from 'tap';
import { readFile, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { LocalBackend } from '../../lib/backend/local.js';
import { MemoryBackend } from '../../lib/backend/memory.js';
import { ChunkStore, chunkKey } from '../../lib/store/chunk-store.js';
import { ChunkReader } from '../../lib/store/chunk-reader.js';
import { WorkerPool } from '../../lib/pool/worker-pool.js';
import { encodeChunk } from '../../lib/codec/chunk-codec.js';
import { blake3, initHash } from '../../lib/codec/hash.js';
import { toHex } from '../../lib/util/bytes.js';
import { isCairnError, type CairnError } from '../../lib/errors.js';
import { seededBytes, tempDir } from '../helpers/fixtures.js';

await initHash();

const pool = new WorkerPool({ threads: 1 });
t.teardown(() => pool.close());

const clock = { now: () => 1_800_000_000_000 };

async function setup(t: Test, options: ConstructorParameters<typeof ChunkReader>[2] = {}) {
  const dir = tempDir(t);
  const store = new ChunkStore(new LocalBackend(dir), 'none', clock);
  const reader = new ChunkReader(store, pool, options);
  const put = async (data: Uint8Array, compress = true): Promise<{ digest: Uint8Array; file: string }> => {
    const enc = encodeChunk(data, { compress });
    await store.insert(enc.digest, enc.header, enc.payload);
    return { digest: enc.digest, file: path.join(dir, chunkKey(toHex(enc.digest))) };
  };
  return { dir, store, reader, put };
}

async function caught(p: Promise<unknown>): Promise<CairnError> {
  try {
    await p;
  } catch (e) {
    return e as CairnError;
  }
  throw new Error('expected a rejection');
}

t.test('get decodes compressed and raw chunks', async (t) => {
  const { reader, put } = await setup(t);
  const text = new TextEncoder().encode('hello chunk reader, '.repeat(2000));
  const rnd = seededBytes(70_000, 11);
  const a = await put(text, true);
  const b = await put(rnd, false);
  t.equal(Buffer.compare(await reader.get(a.digest), Buffer.from(text)), 0, 'compressed chunk');
  t.equal(Buffer.compare(await reader.get(b.digest), Buffer.from(rnd)), 0, 'raw chunk');
  const empty = await put(new Uint8Array(0));
  t.equal((await reader.get(empty.digest)).byteLength, 0, 'empty chunk');
});

t.test('get caches: a second get does not hit the disk', async (t) => {
  const { reader, put } = await setup(t);
  const data = seededBytes(50_000, 12);
  const c = await put(data);
  const first = await reader.get(c.digest);
  await unlink(c.file);
  const second = await reader.get(c.digest);
  t.equal(second, first, 'the cached buffer');
  t.equal(Buffer.compare(second, Buffer.from(data)), 0);

  reader.clear();
  const e = await caught(reader.get(c.digest));
  t.ok(isCairnError(e, 'ERR_CHUNK_MISSING'), 'after clear() the disk is read again (and the file is gone)');
  t.equal(e.details.digest, toHex(c.digest));
});

t.test('cache: false and a small cache do not keep the chunk', async (t) => {
  const { reader, put } = await setup(t);
  const c = await put(seededBytes(1000, 13));
  await reader.get(c.digest, { cache: false });
  await unlink(c.file);
  t.ok(isCairnError(await caught(reader.get(c.digest)), 'ERR_CHUNK_MISSING'), 'not cached with cache: false');

  const small = await setup(t, { cacheBytes: 100 });
  const big = await small.put(seededBytes(1000, 14));
  await small.reader.get(big.digest);
  await unlink(big.file);
  t.ok(isCairnError(await caught(small.reader.get(big.digest)), 'ERR_CHUNK_MISSING'), 'a chunk larger than the cache is not kept');
});

t.test('concurrent gets of one digest share one load', async (t) => {
  const { reader, put } = await setup(t);
  const data = seededBytes(300_000, 15);
  const c = await put(data);
  const ps = Array.from({ length: 8 }, () => reader.get(c.digest));
  // Separate loads would each decode into a buffer of their own: one shared buffer means one load.
  const results = await Promise.all(ps);
  for (const r of results) t.equal(r, results[0], 'the same buffer for every caller');
  t.equal(Buffer.compare(results[0]!, Buffer.from(data)), 0);

  // Distinct digests load independently.
  const d = await put(seededBytes(1234, 16));
  const [x, y] = await Promise.all([reader.get(c.digest), reader.get(d.digest)]);
  t.equal(x, results[0]);
  t.equal(y.byteLength, 1234);
});

t.test('concurrent gets share one load also with cache: false, and the next get loads again', async (t) => {
  const { reader, put } = await setup(t);
  const data = seededBytes(200_000, 17);
  const c = await put(data);
  const p1 = reader.get(c.digest, { cache: false });
  const p2 = reader.get(c.digest, { cache: false });
  const [r1, r2] = await Promise.all([p1, p2]);
  t.equal(r1, r2, 'one load, one buffer');
  const r3 = await reader.get(c.digest, { cache: false });
  t.not(r3, r1, 'a later get is a new load (nothing pending, nothing cached)');
  t.equal(Buffer.compare(r3, Buffer.from(data)), 0);
});

t.test('missing chunk: ERR_CHUNK_MISSING with the digest', async (t) => {
  const { reader } = await setup(t);
  const digest = blake3(new TextEncoder().encode('absent'));
  const e = await caught(reader.get(digest, { details: { snapshot: 'vm/1/2026-01-01T00:00:00Z' } }));
  t.ok(isCairnError(e, 'ERR_CHUNK_MISSING'));
  t.equal(e.details.digest, toHex(digest));
  t.match(e.message, toHex(digest));
});

t.test('corrupt chunk file: ERR_CHUNK_CORRUPT with details.digest; a failed load is not cached', async (t) => {
  const { reader, put } = await setup(t);
  const data = new TextEncoder().encode('corrupt me please '.repeat(1000));
  const c = await put(data);
  const good = await readFile(c.file);
  const bad = Buffer.from(good);
  bad[bad.length - 5]! ^= 0xff;
  await writeFile(c.file, bad);
  const e = await caught(reader.get(c.digest, { details: { archive: 'disk.img' } }));
  t.ok(isCairnError(e, 'ERR_CHUNK_CORRUPT'), `code (${e.code})`);
  t.equal(e.details.digest, toHex(c.digest), 'details.digest');
  t.equal(e.details.archive, 'disk.img', 'caller details are kept');
  t.match(e.message, toHex(c.digest));

  // Truncated file.
  await writeFile(c.file, good.subarray(0, 10));
  const e2 = await caught(reader.get(c.digest));
  t.ok(isCairnError(e2, 'ERR_CHUNK_CORRUPT'), 'truncated');
  t.equal(e2.details.digest, toHex(c.digest));

  // Repaired: the earlier failures were not cached.
  await writeFile(c.file, good);
  t.equal(Buffer.compare(await reader.get(c.digest), Buffer.from(data)), 0, 'reads after repair');
});

t.test('a chunk file holding another chunk: caught by the digest check unless disabled', async (t) => {
  const { reader, put, dir } = await setup(t);
  const a = await put(seededBytes(4096, 18));
  const bData = seededBytes(4096, 19);
  const b = await put(bData);
  await writeFile(a.file, await readFile(b.file)); // a's file now holds b (a valid envelope)
  const e = await caught(reader.get(a.digest));
  t.ok(isCairnError(e, 'ERR_CHUNK_CORRUPT'), 'digest mismatch is corruption');
  t.equal(e.details.digest, toHex(a.digest));
  t.match(e.message, toHex(b.digest), 'the message names the actual digest');

  const store = new ChunkStore(new LocalBackend(dir), 'none', clock);
  const lax = new ChunkReader(store, pool, { verifyDigest: false });
  t.equal(Buffer.compare(await lax.get(a.digest), Buffer.from(bData)), 0, 'verifyDigest: false skips the check (CRC still ok)');
});

t.test('aborted signal', async (t) => {
  const { reader, put } = await setup(t);
  const c = await put(seededBytes(1000, 20));
  const e = await caught(reader.get(c.digest, { signal: AbortSignal.abort() }));
  t.ok(isCairnError(e, 'ERR_ABORTED'), `code ${e.code}`);
  t.equal(Buffer.compare(await reader.get(c.digest), Buffer.from(seededBytes(1000, 20))), 0, 'a later get works');
});

t.test('one caller aborting does not fail another caller of the same digest', async (t) => {
  const { reader, put } = await setup(t);
  const data = seededBytes(100_000, 21);
  const c = await put(data);
  const ac = new AbortController();
  const pa = reader.get(c.digest, { signal: ac.signal });
  const pb = reader.get(c.digest); // no signal: must not be cancelled by the other caller
  ac.abort();
  const [ra, rb] = await Promise.allSettled([pa, pb]);
  t.equal(ra.status === 'rejected' ? (ra.reason as CairnError).code : 'fulfilled', 'ERR_ABORTED', 'the aborting caller gets ERR_ABORTED');
  t.equal(rb.status === 'fulfilled' ? 'fulfilled' : (rb.reason as CairnError).code, 'fulfilled', 'the caller without a signal gets the data');
});

t.test('a backend without local files (memory): chunks are read with get() and decoded on the pool', async (t) => {
  const dir = tempDir(t);
  void dir;
  const remote = new MemoryBackend();
  const store = new ChunkStore(remote, 'none', clock);
  const reader = new ChunkReader(store, pool);
  const data = seededBytes(200_000, 77);
  const enc = encodeChunk(data, { compress: true });
  await store.insert(enc.digest, enc.header, enc.payload);
  t.equal(store.localPathOf(enc.digest), undefined);
  t.same(await reader.get(enc.digest, { cache: false }), data);
  const missing = await caught(reader.get(blake3(seededBytes(10, 1))));
  t.equal(missing.code, 'ERR_CHUNK_MISSING');
});

t.test('inline pool: chunks read one after another never share the read buffer', async (t) => {
  const dir = tempDir(t);
  const store = new ChunkStore(new LocalBackend(dir), 'none', clock);
  const inline = new WorkerPool({ threads: 0 });
  t.teardown(() => inline.close());
  const reader = new ChunkReader(store, inline);
  const chunks = [seededBytes(300_000, 1), seededBytes(300_000, 2), seededBytes(100_000, 3)];
  const digests: Uint8Array[] = [];
  for (const c of chunks) {
    const enc = encodeChunk(c, { compress: false }); // stored raw: the decoded bytes are the file's bytes
    await store.insert(enc.digest, enc.header, enc.payload);
    digests.push(enc.digest);
  }
  const got = [];
  for (const d of digests) got.push(await reader.get(d));
  got.forEach((g, i) => t.same(g, chunks[i], `chunk ${i} intact after the later reads`));
});

import t from 'tap';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { LocalBackend } from '../../lib/backend/local.js';
import { MemoryBackend } from '../../lib/backend/memory.js';
import { ChunkStore, chunkKey } from '../../lib/store/chunk-store.js';
import { encodeChunk } from '../../lib/codec/chunk-codec.js';
import { initHash } from '../../lib/codec/hash.js';
import { ENVELOPE_MAX_BYTES } from '../../lib/format/limits.js';
import { toHex } from '../../lib/util/bytes.js';
import { seededBytes, tempDir } from '../helpers/fixtures.js';

await initHash();

function clock(ms: number): { ms: number; now: () => number } {
  const c = { ms, now: () => c.ms };
  return c;
}

const concat = (a: Uint8Array, b: Uint8Array): Uint8Array => {
  const out = new Uint8Array(a.byteLength + b.byteLength);
  out.set(a);
  out.set(b, a.byteLength);
  return out;
};

t.test('readRaw/insertRaw copy envelopes byte for byte between a local and a memory store', async (t) => {
  const dir = tempDir(t);
  const c = clock(1_800_000_000_000);
  const local = new ChunkStore(new LocalBackend(dir), 'none', c);
  const memBackend = new MemoryBackend({ clock: c });
  const mem = new ChunkStore(memBackend, 'file', c);

  for (const compress of [true, false]) {
    const enc = encodeChunk(seededBytes(70_000, compress ? 3 : 4), { compress });
    const hex = toHex(enc.digest);
    t.equal(await local.insert(enc.digest, enc.header, enc.payload), 'written');
    const raw = await local.readRaw(enc.digest);
    t.same(Buffer.from(raw), Buffer.from(await local.read(enc.digest)), 'read and readRaw return the same bytes');
    t.same(Buffer.from(raw), await readFile(path.join(dir, '.chunks', hex.slice(0, 2), hex)), 'readRaw is the file');

    // local -> memory
    t.equal(await mem.insertRaw(enc.digest, raw), 'written');
    t.same(Buffer.from(await mem.readRaw(enc.digest)), Buffer.from(raw), 'byte-identical envelope in memory');
    c.ms += 5000;
    t.equal(await mem.insertRaw(enc.digest, raw), 'duplicate', 'second insert is a dedup hit');
    t.equal((await memBackend.stat(chunkKey(hex)))?.mtimeMs, c.ms, 'the dedup hit touched the chunk');

    // memory -> a fresh local store
    const dir2 = path.join(dir, `copy-${compress}`);
    const local2 = new ChunkStore(new LocalBackend(dir2), 'none', c);
    t.equal(await local2.insertRaw(enc.digest, await mem.readRaw(enc.digest)), 'written');
    t.same(await readFile(path.join(dir2, '.chunks', hex.slice(0, 2), hex)), Buffer.from(raw), 'byte-identical file back on local');
    c.ms += 5000;
    t.equal(await local2.insertRaw(enc.digest, raw), 'duplicate');
  }
});

t.test('insertRaw refuses a damaged envelope and stores nothing', async (t) => {
  const c = clock(1_800_000_000_000);
  const backend = new MemoryBackend({ clock: c });
  const store = new ChunkStore(backend, 'none', c);
  const enc = encodeChunk(seededBytes(50_000, 9), { compress: true });
  const good = concat(enc.header, enc.payload);
  const hex = toHex(enc.digest);

  const flipped = good.slice();
  flipped[flipped.length - 1]! ^= 0x01;
  await t.rejects(store.insertRaw(enc.digest, flipped), { code: 'ERR_CHUNK_CORRUPT', details: { digest: hex } }, 'a flipped payload bit: CRC mismatch');
  await t.rejects(store.insertRaw(enc.digest, good.subarray(0, 10)), { code: 'ERR_CHUNK_CORRUPT' }, 'shorter than a header');
  const badMagic = good.slice();
  badMagic[0] = 0;
  await t.rejects(store.insertRaw(enc.digest, badMagic), { code: 'ERR_CHUNK_CORRUPT' }, 'bad magic');
  const truncated = good.subarray(0, good.length - 3);
  await t.rejects(store.insertRaw(enc.digest, truncated), { code: 'ERR_CHUNK_CORRUPT' }, 'truncated');
  const huge = new Uint8Array(ENVELOPE_MAX_BYTES + 1);
  await t.rejects(store.insertRaw(enc.digest, huge), { code: 'ERR_CHUNK_CORRUPT' }, 'oversized');
  t.equal(backend.size, 0, 'nothing stored');

  t.equal(await store.insertRaw(enc.digest, good), 'written');
  c.ms += 1000;
  await t.rejects(store.insertRaw(enc.digest, flipped), { code: 'ERR_CHUNK_CORRUPT' }, 'checked even when the digest exists');
  t.equal((await backend.stat(chunkKey(hex)))?.mtimeMs, c.ms - 1000, 'a refused copy touches nothing');
  await t.rejects(store.readRaw(new Uint8Array(32)), { code: 'ERR_CHUNK_MISSING' });
});

import t from 'tap';
import { readdir, readFile, stat, unlink, utimes } from 'node:fs/promises';
import path from 'node:path';
import { LocalBackend } from '../../lib/backend/local.js';
import { CHUNK_DIR, ChunkStore, chunkKey, shardKeys } from '../../lib/store/chunk-store.js';
import { encodeChunk } from '../../lib/codec/chunk-codec.js';
import { blake3, initHash } from '../../lib/codec/hash.js';
import { toHex } from '../../lib/util/bytes.js';
import { isCairnError, type CairnError } from '../../lib/errors.js';
import type { Clock } from '../../lib/util/clock.js';
import { seededBytes, tempDir } from '../helpers/fixtures.js';

await initHash();

/** A settable clock (whole seconds, so file mtimes compare exactly). */
function fakeClock(ms: number): Clock & { ms: number } {
  const c = { ms, now: () => c.ms };
  return c;
}

t.test('chunkKey and shardKeys', async (t) => {
  const hex = 'ab'.repeat(32);
  t.equal(CHUNK_DIR, '.chunks');
  t.equal(chunkKey(hex), `.chunks/ab/${hex}`);
  const shards = shardKeys();
  t.equal(shards.length, 256);
  t.equal(shards[0], '.chunks/00');
  t.equal(shards[255], '.chunks/ff');
  t.equal(new Set(shards).size, 256);
  t.ok(
    shards.every((s) => /^\.chunks\/[0-9a-f]{2}$/.test(s)),
    'two lowercase hex digits',
  );
  t.equal(shards.indexOf(`.chunks/${hex.slice(0, 2)}`) >= 0, true, 'every key lies in a shard');
});

t.test('insert writes once, then dedups by touching the mtime', async (t) => {
  const dir = tempDir(t);
  const backend = new LocalBackend(dir);
  const clock = fakeClock(1_800_000_000_000);
  const store = new ChunkStore(backend, 'none', clock);
  t.equal(store.backend, backend);
  t.equal(store.syncLevel, 'none');

  const data = seededBytes(100_000, 5);
  const enc = encodeChunk(data, { compress: true });
  const hex = toHex(enc.digest);
  const file = path.join(dir, '.chunks', hex.slice(0, 2), hex);

  t.equal(await store.has(enc.digest), false);
  t.equal(await store.touch(enc.digest), false, 'touch of a missing chunk: false');
  await t.rejects(stat(file), { code: 'ENOENT' }, 'touch did not create the file');

  t.equal(await store.insert(enc.digest, enc.header, enc.payload), 'written', 'first insert writes (shard dir created)');
  t.equal(await store.has(enc.digest), true);
  const stored = await readFile(file);
  t.equal(stored.byteLength, enc.header.byteLength + enc.payload.byteLength);
  t.equal(Buffer.compare(stored.subarray(0, 16), Buffer.from(enc.header)), 0, 'header first');
  t.equal(Buffer.compare(stored.subarray(16), Buffer.from(enc.payload)), 0, 'then payload');
  t.equal(Buffer.compare(Buffer.from(await store.read(enc.digest)), stored), 0, 'read returns the stored bytes');

  // Age the file, then insert again: nothing is written, the mtime moves to the clock's time.
  await utimes(file, 1_000_000_000, 1_000_000_000);
  const inode = (await stat(file)).ino;
  clock.ms = 1_900_000_000_000;
  t.equal(await store.insert(enc.digest, new Uint8Array(16), new Uint8Array(3)), 'duplicate', 'second insert is a duplicate');
  const st = await stat(file);
  t.equal(st.mtimeMs, 1_900_000_000_000, 'the duplicate touched the mtime to the clock time');
  t.equal(st.ino, inode, 'the file was not replaced');
  t.equal(Buffer.compare(await readFile(file), stored), 0, 'content unchanged (the bogus header/payload were not written)');

  clock.ms = 1_950_000_000_000;
  t.equal(await store.touch(enc.digest), true);
  t.equal((await stat(file)).mtimeMs, 1_950_000_000_000, 'touch uses the clock');

  const entries = await readdir(path.join(dir, '.chunks', hex.slice(0, 2)));
  t.same(entries, [hex], 'only the chunk file in its shard (no temp files)');
});

t.test('sync level file fsyncs and still writes the chunk', async (t) => {
  const dir = tempDir(t);
  const store = new ChunkStore(new LocalBackend(dir), 'file', fakeClock(1_800_000_000_000));
  const data = seededBytes(5000, 6);
  const enc = encodeChunk(data, { compress: false });
  t.equal(await store.insert(enc.digest, enc.header, enc.payload), 'written');
  t.equal(await store.insert(enc.digest, enc.header, enc.payload), 'duplicate');
});

t.test('a chunk removed after its first insert is written again', async (t) => {
  const dir = tempDir(t);
  const store = new ChunkStore(new LocalBackend(dir), 'none', fakeClock(1_800_000_000_000));
  const enc = encodeChunk(seededBytes(1000, 7), { compress: false });
  t.equal(await store.insert(enc.digest, enc.header, enc.payload), 'written');
  await unlink(path.join(dir, chunkKey(toHex(enc.digest))));
  t.equal(await store.insert(enc.digest, enc.header, enc.payload), 'written', 'ENOENT on the touch means write it');
});

t.test('read of a missing chunk: ERR_CHUNK_MISSING naming the digest', async (t) => {
  const dir = tempDir(t);
  const store = new ChunkStore(new LocalBackend(dir), 'none', fakeClock(0));
  const digest = blake3(new TextEncoder().encode('never stored'));
  const hex = toHex(digest);
  try {
    await store.read(digest);
    t.fail('should throw');
  } catch (e) {
    t.ok(isCairnError(e, 'ERR_CHUNK_MISSING'), 'code');
    const ce = e as CairnError;
    t.equal(ce.details.digest, hex, 'details.digest');
    t.match(ce.message, hex, 'the message names the digest');
    t.ok(isCairnError(ce.cause, 'ERR_NOT_FOUND'), 'caused by the backend NOT_FOUND');
  }
  // Any other backend error passes through unchanged.
  const weird = new ChunkStore(new LocalBackend(dir), 'none', fakeClock(0));
  const d2 = new Uint8Array(32).fill(0xcd);
  await new LocalBackend(dir).mkdir(chunkKey(toHex(d2))); // a directory where the file should be
  await t.rejects(weird.read(d2), { code: 'ERR_CHUNK_CORRUPT' }, 'a directory where the chunk belongs is ERR_CHUNK_CORRUPT, not MISSING');
});

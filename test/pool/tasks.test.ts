import t from 'tap';
import { lz4Decompress } from '../../lib/codec/compress.js';
import { runTask, worthCompressing } from '../../lib/pool/tasks.js';
import type { DecodeResult, EncodeResult, HashResult } from '../../lib/pool/protocol.js';
import { blake3, initHash } from '../../lib/codec/hash.js';
import { PLAIN_CHUNK_FORMAT as PLAIN } from '../../lib/codec/envelope.js';
import { concat, toHex } from '../../lib/util/bytes.js';
import { seededBytes } from '../helpers/fixtures.js';

await initHash();

const text = (n: number): Uint8Array => {
  const line = new TextEncoder().encode('Lorem ipsum dolor sit amet, consectetur adipiscing elit. ');
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += line.length) out.set(line.subarray(0, Math.min(line.length, n - i)), i);
  return out;
};

t.test('worthCompressing', async (t) => {
  t.equal(worthCompressing(seededBytes(1 << 20, 1)), false, 'random 1 MiB: not worth it');
  t.equal(worthCompressing(seededBytes(4 << 20, 2)), false, 'random 4 MiB');
  t.equal(worthCompressing(text(1 << 20)), true, 'text 1 MiB: worth it');
  t.equal(worthCompressing(new Uint8Array(1 << 20)), true, 'zeros');
  t.equal(worthCompressing(seededBytes(100_000, 3)), true, 'small chunks (<= 128 KiB) are always tried');
  t.equal(worthCompressing(seededBytes(128 * 1024, 3)), true, 'exactly 128 KiB is always tried');
  t.equal(worthCompressing(seededBytes(128 * 1024 + 1, 3)), false, 'just above: sampled');
  // The sample is taken from the middle: random edges around a compressible middle still count.
  const mixed = seededBytes(1 << 20, 4);
  mixed.set(text(256 * 1024), (1 << 19) - 128 * 1024);
  t.equal(worthCompressing(mixed), true, 'compressible middle');
  const mixed2 = text(1 << 20);
  mixed2.set(seededBytes(256 * 1024, 5), (1 << 19) - 128 * 1024);
  t.equal(worthCompressing(mixed2), false, 'random middle');
});

t.test('runTask encode skips LZ4 for incompressible data but still round trips', async (t) => {
  const data = seededBytes(1 << 20, 6);
  const out = runTask({ op: 'encode', format: PLAIN, data, compress: true, known: null });
  const v = out.value as EncodeResult;
  t.equal(v.error, undefined);
  t.equal(v.payload, data, 'raw payload is the input itself');
  t.same(out.transfer, [data.buffer], 'the input buffer is handed back by transfer');
  const dec = runTask({ op: 'decode', format: PLAIN, data: concat([v.header!, v.payload!]), digest: v.digest, code: 'ERR_CHUNK_CORRUPT', details: {} });
  const d = dec.value as DecodeResult;
  t.equal(Buffer.compare(d.data!, Buffer.from(data)), 0);
  t.equal(dec.transfer.length, 1);
  t.not(d.data!.buffer, data.buffer);
});

t.test('runTask encode compresses text and zeros', async (t) => {
  for (const data of [text(1 << 20), new Uint8Array(1 << 20)]) {
    const expected = toHex(blake3(data));
    const original = new Uint8Array(data);
    // runTask owns the chunk (as a worker would after the transfer): the LZ4 output is written
    // into the chunk's own buffer and handed back as a view of it.
    const v = runTask({ op: 'encode', format: PLAIN, data, compress: true, known: null }).value as EncodeResult;
    t.ok(v.payload!.byteLength < data.byteLength / 10, `compressed to ${v.payload!.byteLength}`);
    t.equal(v.payload!.buffer, data.buffer, 'the payload reuses the chunk buffer');
    t.equal(toHex(v.digest), expected);
    t.same(lz4Decompress(v.payload!.slice(), original.byteLength), original, 'the payload decodes to the chunk');
  }
});

t.test('runTask encodes and hashes the largest chunks the format allows', async (t) => {
  // MAX_IMAGE_CHUNK is 16 MiB and blobs may reach 64 MiB (MAX_BLOB_SIZE, the envelope's MAX_RAW_SIZE).
  for (const size of [8 * 1024 * 1024, 16 * 1024 * 1024, 64 * 1024 * 1024]) {
    const data = new Uint8Array(size).fill(1);
    const v = runTask({ op: 'encode', format: PLAIN, data, compress: true, known: null }).value as EncodeResult;
    t.equal(v.error?.message, undefined, `${size / 1048576} MiB chunk encodes`);
    let hashed: string;
    try {
      hashed = toHex((runTask({ op: 'hash', format: PLAIN, data: new Uint8Array(size) }).value as HashResult).digest);
    } catch (e) {
      hashed = `threw ${String(e)}`;
    }
    t.match(hashed, /^[0-9a-f]{64}$/, `${size / 1048576} MiB hash task`);
  }
});

t.test('runTask reports errors in the result, never throws', async (t) => {
  const dec = runTask({ op: 'decode', format: PLAIN, data: new Uint8Array(5), digest: null, code: 'ERR_BLOB_CORRUPT', details: { path: '/b' } }).value as DecodeResult;
  t.equal(dec.error?.code, 'ERR_BLOB_CORRUPT');
  t.equal(dec.error?.name, 'CairnError');
  t.same(dec.error?.details, { path: '/b' });
  const big = runTask({ op: 'encode', format: PLAIN, data: new Uint8Array(64 * 1024 * 1024 + 1), compress: false, known: null }).value as EncodeResult;
  t.ok(big.error !== undefined, 'an oversize chunk is an error result');
  t.equal(big.size, 0);
  t.equal(big.error?.code, 'ERR_INVALID_ARGUMENT', 'an oversize chunk is ERR_INVALID_ARGUMENT (the envelope limit)');
  const h = runTask({ op: 'hash', format: PLAIN, data: new Uint8Array([1, 2, 3]) }).value as HashResult;
  t.equal(toHex(h.digest), toHex(blake3(new Uint8Array([1, 2, 3]))));
});

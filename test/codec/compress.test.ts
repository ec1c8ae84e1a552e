import t from 'tap';
import { LZ4_PREFIX_SIZE, lz4Compress, lz4Decompress } from '../../lib/codec/compress.js';

const text = new TextEncoder().encode('the quick brown fox jumps over the lazy dog. '.repeat(2000));

t.test('round trip', async (t) => {
  const c = lz4Compress(text);
  t.ok(c.length < text.length / 5);
  t.equal(new DataView(c.buffer, c.byteOffset).getUint32(0, true), text.length, 'size prefix');
  t.equal(LZ4_PREFIX_SIZE, 4);
  const d = lz4Decompress(c, text.length);
  t.same(d, text);
  // subarray input with a non-zero offset
  const big = new Uint8Array(c.length + 10);
  big.set(c, 7);
  t.same(lz4Decompress(big.subarray(7, 7 + c.length), text.length), text);
  const sub = text.subarray(5, 5000);
  t.same(lz4Decompress(lz4Compress(sub), sub.length), sub);
  const empty = lz4Compress(new Uint8Array(0));
  t.equal(lz4Decompress(empty, 0).length, 0);
  const rnd = new Uint8Array(5000).map(() => Math.floor(Math.random() * 256));
  const cr = lz4Compress(rnd);
  t.ok(cr.length >= rnd.length, 'random data does not shrink');
  t.same(lz4Decompress(cr, rnd.length), rnd);
});

t.test('failures are plain Errors', async (t) => {
  const c = lz4Compress(text);
  t.throws(() => lz4Decompress(c, text.length + 1), /prefix .* does not match/);
  t.throws(() => lz4Decompress(c, -1), /invalid expected size/);
  t.throws(() => lz4Decompress(c, 1.5), /invalid expected size/);
  t.throws(() => lz4Decompress(c, 2 ** 32), /invalid expected size/);
  t.throws(() => lz4Decompress(new Uint8Array(3), 0), /too short/);
  t.throws(() => lz4Decompress(new Uint8Array(4), 0), /too short/);
  // a bogus prefix that lz4_flex would ignore: we check before decompressing
  const bogus = Uint8Array.from(c);
  new DataView(bogus.buffer).setUint32(0, 0x7fffffff, true);
  t.throws(() => lz4Decompress(bogus, 0x7fffffff), /cannot expand/); // more than 255 × the block: rejected before decompressing
  t.throws(() => lz4Decompress(bogus, text.length), /prefix/);
  // garbage block with a matching prefix
  const garbage = Uint8Array.from([100, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 1, 2, 3]);
  t.throws(() => lz4Decompress(garbage, 100), /invalid compressed data/);
  // truncated block
  t.throws(() => lz4Decompress(c.subarray(0, c.length - 5), text.length), /lz4/);
  // prefix claims more than the block produces
  const small = lz4Compress(new Uint8Array(100).fill(7));
  const more = Uint8Array.from(small);
  new DataView(more.buffer).setUint32(0, 200, true);
  t.throws(() => lz4Decompress(more, 200), /decompressed to 100 bytes, expected 200/);
  const less = Uint8Array.from(small);
  new DataView(less.buffer).setUint32(0, 50, true);
  t.throws(() => lz4Decompress(less, 50), /lz4/);
});

t.test('outputs own their memory (transferable)', async (t) => {
  for (const n of [0, 16, 100, 100_000]) {
    const c = lz4Compress(new Uint8Array(n).fill(3));
    t.notOk(Buffer.isBuffer(c));
    t.equal(c.byteOffset, 0);
    t.equal(c.buffer.byteLength, c.length);
    const d = lz4Decompress(c, n);
    t.notOk(Buffer.isBuffer(d));
    t.equal(d.byteOffset, 0);
    t.equal(d.buffer.byteLength, n);
  }
});

import t from 'tap';
import { blake3, crc32, createBlake3, DIGEST_SIZE, initHash, isHashReady } from '../../lib/codec/hash.js';
import { toHex } from '../../lib/util/bytes.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

t.test('throws a clear error before initHash', async (t) => {
  t.equal(isHashReady(), false);
  t.throws(() => blake3(enc('abc')), /initHash/);
  t.throws(() => createBlake3(), /initHash/);
});

t.test('blake3 after init', async (t) => {
  const p1 = initHash();
  const p2 = initHash();
  t.equal(p1, p2, 'memoized');
  await p1;
  await initHash();
  t.equal(isHashReady(), true);
  t.equal(DIGEST_SIZE, 32);
  const d = blake3(enc('abc'));
  t.equal(toHex(d), '6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85');
  t.equal(d.length, 32);
  t.equal(d.byteOffset, 0);
  t.equal(d.buffer.byteLength, 32, 'own, unpooled buffer');
  t.notOk(Buffer.isBuffer(d));
  t.equal(toHex(blake3(new Uint8Array(0))), 'af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262');
});

t.test('incremental hasher', async (t) => {
  await initHash();
  const data = new Uint8Array(100_000).map((_, i) => (i * 31) & 0xff);
  const h = createBlake3();
  t.equal(h.update(data.subarray(0, 1000)), h, 'chainable');
  h.update(data.subarray(1000, 70_000)).update(data.subarray(70_000));
  const d1 = h.digest();
  t.same(d1, blake3(data));
  t.same(h.digest(), d1, 'digest does not finalize');
  h.dispose();
  h.dispose();
  t.throws(() => h.update(data), /dispose/);
  t.throws(() => h.digest(), /dispose/);
  // Many disposed hashers do not exhaust wasm memory.
  for (let i = 0; i < 10_000; i++) {
    const x = createBlake3();
    x.update(data.subarray(0, 10));
    x.dispose();
  }
});

t.test('crc32', async (t) => {
  t.equal(crc32(enc('123456789')), 0xcbf43926);
  t.equal(crc32(new Uint8Array(0)), 0);
  const a = enc('hello '),
    b = enc('world');
  t.equal(crc32(b, crc32(a)), crc32(enc('hello world')));
});

t.test('large inputs: one call, one big update and many small updates agree', async (t) => {
  await initHash();
  const sliced = (d: Uint8Array, slice: number): string => {
    const h = createBlake3();
    try {
      for (let o = 0; o < d.length; o += slice) h.update(d.subarray(o, o + slice));
      return toHex(h.digest());
    } finally {
      h.dispose();
    }
  };
  for (const n of [4 * 1024 * 1024 + 1, 10_484_013, 64 * 1024 * 1024 + 1]) {
    const d = new Uint8Array(n);
    for (let i = 0; i < n; i += 4093) d[i] = (i * 31) & 255;
    const ref = sliced(d, 65536);
    t.equal(toHex(blake3(d)), ref, `blake3() of ${n} bytes`);
    t.equal(sliced(d, 4 * 1024 * 1024), ref, `4 MiB updates of ${n} bytes`);
    t.equal(sliced(d, n), ref, `one update of ${n} bytes`);
  }
});

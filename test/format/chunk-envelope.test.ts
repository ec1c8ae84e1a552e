import t from 'tap';
import fc from 'fast-check';
import { CairnError, type ErrorCode } from '../../lib/errors.js';
import { initHash } from '../../lib/codec/hash.js';
import { lz4Compress } from '../../lib/codec/compress.js';
import { encodeEnvelopeHeader, ENVELOPE_HEADER_SIZE, envelopeSubject, FLAG_COMPRESSED, FLAG_ENCRYPTED, MAX_RAW_SIZE, parseEnvelope } from '../../lib/codec/envelope.js';
import { CODEC } from '../../lib/format/magic.js';
import { concat } from '../../lib/util/bytes.js';
import { code } from '../helpers/codes.js';

await initHash();

const opts = { code: 'ERR_CHUNK_CORRUPT', details: { digest: 'ab'.repeat(32) } } as const;

const raw = new TextEncoder().encode('hello hello hello hello hello hello hello hello');
const plainFile = concat([encodeEnvelopeHeader({ codec: CODEC.none, rawSize: raw.length, payload: raw }), raw]);
const lz = lz4Compress(raw);
const lzFile = concat([encodeEnvelopeHeader({ codec: CODEC.lz4, rawSize: raw.length, payload: lz }), lz]);

function mutate(bytes: Uint8Array, f: (b: Uint8Array, v: DataView) => void): Uint8Array {
  const b = Uint8Array.from(bytes);
  f(b, new DataView(b.buffer));
  return b;
}

t.test('header layout', async (t) => {
  t.equal(ENVELOPE_HEADER_SIZE, 16);
  t.equal(MAX_RAW_SIZE, 64 * 1024 * 1024);
  t.equal(FLAG_COMPRESSED, 1);
  t.equal(FLAG_ENCRYPTED, 2);
  const h = encodeEnvelopeHeader({ codec: CODEC.lz4, rawSize: raw.length, payload: lz });
  t.same([...h.subarray(0, 8)], [0x43, 0x52, 0x4e, 0x45, 1, 1, 1, 0]);
  const v = new DataView(h.buffer);
  t.equal(v.getUint32(8, true), raw.length);
  const h0 = encodeEnvelopeHeader({ codec: CODEC.none, rawSize: 0, payload: new Uint8Array(0) });
  t.same([...h0], [0x43, 0x52, 0x4e, 0x45, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 'empty: crc32("") = 0');
});

t.test('round trip', async (t) => {
  const e = parseEnvelope(plainFile, opts);
  t.equal(e.codec, CODEC.none);
  t.equal(e.flags, 0);
  t.equal(e.version, 1);
  t.equal(e.rawSize, raw.length);
  t.same([...e.payload], [...raw]);
  t.equal(e.payload.buffer, plainFile.buffer, 'payload is a subarray');
  const l = parseEnvelope(lzFile, opts);
  t.equal(l.codec, CODEC.lz4);
  t.equal(l.flags, FLAG_COMPRESSED);
  t.same([...l.payload], [...lz]);
});

t.test('encode rejects bad input', async (t) => {
  t.equal(
    code(() => encodeEnvelopeHeader({ codec: 7 as 0, rawSize: 0, payload: new Uint8Array(0) })),
    'ERR_INVALID_ARGUMENT',
  );
  t.equal(
    code(() => encodeEnvelopeHeader({ codec: 0, rawSize: -1, payload: new Uint8Array(0) })),
    'ERR_INVALID_ARGUMENT',
  );
  t.equal(
    code(() => encodeEnvelopeHeader({ codec: 0, rawSize: MAX_RAW_SIZE + 1, payload: new Uint8Array(0) })),
    'ERR_INVALID_ARGUMENT',
  );
  t.equal(
    code(() => encodeEnvelopeHeader({ codec: 0, rawSize: 3, payload: new Uint8Array(2) })),
    'ERR_INVALID_ARGUMENT',
  );
  t.equal(
    code(() => encodeEnvelopeHeader({ codec: 1, rawSize: 3, payload: new Uint8Array(2) })),
    'ERR_INVALID_ARGUMENT',
  );
  t.equal(
    code(() => encodeEnvelopeHeader({ codec: 1, rawSize: raw.length + 1, payload: lz })),
    'ERR_INVALID_ARGUMENT',
  );
});

t.test('every kind of damage', async (t) => {
  const cases: [string, Uint8Array, ErrorCode, RegExp][] = [
    ['zero length', new Uint8Array(0), 'ERR_CHUNK_CORRUPT', /shorter than/],
    ['truncated header', plainFile.subarray(0, 15), 'ERR_CHUNK_CORRUPT', /shorter than/],
    ['header only', plainFile.subarray(0, 16), 'ERR_CHUNK_CORRUPT', /payload is 0 bytes/],
    ['truncated payload', plainFile.subarray(0, plainFile.length - 1), 'ERR_CHUNK_CORRUPT', /payload is/],
    ['truncated lz4', lzFile.subarray(0, lzFile.length - 1), 'ERR_CHUNK_CORRUPT', /CRC/],
    ['lz4 too short', lzFile.subarray(0, 20), 'ERR_CHUNK_CORRUPT', /impossible/],
    ['extra byte', concat([plainFile, new Uint8Array(1)]), 'ERR_CHUNK_CORRUPT', /payload is/],
    ['magic', mutate(plainFile, (b) => (b[0] = 0x44)), 'ERR_CHUNK_CORRUPT', /magic/],
    ['magic last byte', mutate(plainFile, (b) => (b[3] = 0)), 'ERR_CHUNK_CORRUPT', /magic/],
    ['version 0', mutate(plainFile, (b) => (b[4] = 0)), 'ERR_CHUNK_CORRUPT', /version 0/],
    ['version 2', mutate(plainFile, (b) => (b[4] = 2)), 'ERR_FORMAT_VERSION', /newer/],
    ['unknown flag', mutate(plainFile, (b) => (b[5] = 0x80)), 'ERR_CHUNK_CORRUPT', /flag bits/],
    ['encrypted flag', mutate(plainFile, (b) => (b[5] = FLAG_ENCRYPTED)), 'ERR_CHUNK_CORRUPT', /encrypt/],
    ['compressed flag on none', mutate(plainFile, (b) => (b[5] = 1)), 'ERR_CHUNK_CORRUPT', /does not match codec/],
    ['compressed flag off on lz4', mutate(lzFile, (b) => (b[5] = 0)), 'ERR_CHUNK_CORRUPT', /does not match codec/],
    ['unknown codec', mutate(plainFile, (b) => (b[6] = 2)), 'ERR_CHUNK_CORRUPT', /unknown codec 2/],
    ['codec none on lz4 data', mutate(lzFile, (b) => ((b[5] = 0), (b[6] = 0))), 'ERR_CHUNK_CORRUPT', /payload is/],
    ['codec lz4 on raw data', mutate(plainFile, (b) => ((b[5] = 1), (b[6] = 1))), 'ERR_CHUNK_CORRUPT', /prefix/],
    ['reserved', mutate(plainFile, (b) => (b[7] = 1)), 'ERR_CHUNK_CORRUPT', /reserved/],
    ['huge rawSize', mutate(plainFile, (_b, v) => v.setUint32(8, 0xffffffff, true)), 'ERR_CHUNK_CORRUPT', /exceeds the limit/],
    ['rawSize + 1', mutate(plainFile, (_b, v) => v.setUint32(8, raw.length + 1, true)), 'ERR_CHUNK_CORRUPT', /payload is/],
    ['lz4 rawSize', mutate(lzFile, (_b, v) => v.setUint32(8, raw.length + 1, true)), 'ERR_CHUNK_CORRUPT', /prefix/],
    ['lz4 prefix', mutate(lzFile, (_b, v) => v.setUint32(16, raw.length - 1, true)), 'ERR_CHUNK_CORRUPT', /prefix/],
    ['crc', mutate(plainFile, (b) => (b[12] = b[12]! ^ 1)), 'ERR_CHUNK_CORRUPT', /CRC-32/],
    ['payload byte', mutate(plainFile, (b) => (b[20] = b[20]! ^ 0x10)), 'ERR_CHUNK_CORRUPT', /CRC-32/],
    ['lz4 payload byte', mutate(lzFile, (b) => (b[lzFile.length - 2] = b[lzFile.length - 2]! ^ 0x10)), 'ERR_CHUNK_CORRUPT', /CRC-32/],
  ];
  for (const [name, bytes, want, msg] of cases) {
    try {
      parseEnvelope(bytes, opts);
      t.fail(`${name}: did not throw`);
    } catch (e) {
      t.ok(e instanceof CairnError, `${name}: CairnError`);
      t.equal((e as CairnError).code, want, `${name}: code`);
      t.match((e as CairnError).message, msg, `${name}: message`);
      t.equal((e as CairnError).details, opts.details, `${name}: details passed through`);
    }
  }
});

t.test('codes and subjects', async (t) => {
  const bad = new Uint8Array(3);
  for (const c of ['ERR_CHUNK_CORRUPT', 'ERR_BLOB_CORRUPT', 'ERR_MANIFEST_CORRUPT'] as const) {
    t.equal(
      code(() => parseEnvelope(bad, { code: c, details: {} })),
      c,
    );
  }
  t.equal(envelopeSubject('ERR_CHUNK_CORRUPT', { digest: 'aa' }), 'chunk aa');
  t.equal(envelopeSubject('ERR_BLOB_CORRUPT', { path: '/x' }), 'blob /x');
  t.equal(envelopeSubject('ERR_MANIFEST_CORRUPT', { archive: 'a' }), 'manifest a');
  t.equal(envelopeSubject('ERR_MANIFEST_CORRUPT', {}), 'manifest');
});

t.test('property: random bytes and mutations never throw anything but CairnError', async (t) => {
  const check = (b: Uint8Array): boolean => {
    try {
      parseEnvelope(b, opts);
      return true;
    } catch (e) {
      if (!(e instanceof CairnError)) throw e;
      return false;
    }
  };
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (b) => void check(b)),
    { numRuns: 500 },
  );
  fc.assert(
    fc.property(
      fc.constantFrom(plainFile, lzFile),
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 }),
      fc.nat(),
      (file, flips, cut) => {
        const b = Uint8Array.from(file);
        for (const [pos, x] of flips) b[pos % b.length] = b[pos % b.length]! ^ x;
        t.notOk(check(b), 'any flipped bit is detected');
        check(b.subarray(0, cut % (b.length + 1)));
      },
    ),
    { numRuns: 500 },
  );
});

import t from 'tap';
import fc from 'fast-check';
import { CairnError, type ErrorCode } from '../../lib/errors.js';
import { blake3, crc32, initHash } from '../../lib/codec/hash.js';
import { decodeFixedIndex, encodeFixedIndex, fixedChunkCount, FixedIndexBuilder, fixedIndexChecksum, isValidFixedChunkSize } from '../../lib/format/fixed-index.js';
import { concat, equalBytes, writeU64LE } from '../../lib/util/bytes.js';
import { code } from '../helpers/codes.js';

await initHash();

const uuid = Uint8Array.from({ length: 16 }, (_, i) => i + 1);
const CS = 4096;
const size = CS * 3 + 100;
const digests = concat([0, 1, 2, 3].map((i) => blake3(Uint8Array.of(i))));
const file = encodeFixedIndex({ uuid, ctime: 1_700_000_000, size, chunkSize: CS }, digests);
const details = { archive: 'disk.img', snapshot: 'vm/100/2026-01-01T00:00:00Z' };

/** Copy, mutate, and re-seal the header CRC (so later checks are reached). */
function mutate(f: (b: Uint8Array, v: DataView) => void, reseal = true): Uint8Array {
  const b = Uint8Array.from(file);
  const v = new DataView(b.buffer);
  f(b, v);
  if (reseal) v.setUint32(124, crc32(b.subarray(0, 124)), true);
  return b;
}

t.test('layout and round trip', async (t) => {
  t.equal(file.length, 128 + 4 * 32);
  t.equal(Buffer.from(file.subarray(0, 8)).toString('latin1'), 'CAIRNFIX');
  const v = new DataView(file.buffer);
  t.equal(v.getUint32(8, true), 1);
  t.equal(v.getUint32(48, true), CS);
  t.equal(Number(v.getBigUint64(56, true)), 4);
  t.equal(v.getUint32(124, true), crc32(file.subarray(0, 124)));
  const ix = decodeFixedIndex(file, details);
  t.same([...ix.uuid], [...uuid]);
  t.equal(ix.ctime, 1_700_000_000);
  t.equal(ix.size, size);
  t.equal(ix.chunkSize, CS);
  t.equal(ix.count, 4);
  t.ok(equalBytes(ix.checksum, fixedIndexChecksum(digests)));
  t.ok(equalBytes(ix.digests, digests));
  t.ok(equalBytes(ix.digestAt(2), blake3(Uint8Array.of(2))));
  t.same(ix.chunkRange(0), { start: 0, end: CS });
  t.same(ix.chunkRange(3), { start: 3 * CS, end: size });
  t.equal(ix.find(0), 0);
  t.equal(ix.find(CS - 1), 0);
  t.equal(ix.find(CS), 1);
  t.equal(ix.find(size - 1), 3);
  t.equal(ix.find(size), -1);
  t.equal(ix.find(-1), -1);
  t.equal(ix.find(NaN), -1);
  t.throws(() => ix.digestAt(4), RangeError);
  t.throws(() => ix.chunkRange(-1), RangeError);
  t.throws(() => ix.digestAt(0.5), RangeError);
  const empty = decodeFixedIndex(encodeFixedIndex({ uuid, ctime: -5, size: 0, chunkSize: CS }, new Uint8Array(0)));
  t.equal(empty.count, 0);
  t.equal(empty.ctime, -5);
  t.equal(empty.find(0), -1);
  const exact = decodeFixedIndex(encodeFixedIndex({ uuid, ctime: 0, size: 2 * CS, chunkSize: CS }, digests.subarray(0, 64)));
  t.same(exact.chunkRange(1), { start: CS, end: 2 * CS });
});

t.test('chunk sizes', async (t) => {
  t.ok(isValidFixedChunkSize(4096));
  t.ok(isValidFixedChunkSize(16 * 1024 * 1024));
  t.notOk(isValidFixedChunkSize(2048));
  t.notOk(isValidFixedChunkSize(32 * 1024 * 1024));
  t.notOk(isValidFixedChunkSize(4096 + 1));
  t.notOk(isValidFixedChunkSize(6 * 1024 * 1024));
  t.equal(fixedChunkCount(0, CS), 0);
  t.equal(fixedChunkCount(1, CS), 1);
  t.equal(fixedChunkCount(CS, CS), 1);
  t.equal(fixedChunkCount(CS + 1, CS), 2);
});

t.test('encode rejects bad input', async (t) => {
  const h = { uuid, ctime: 0, size, chunkSize: CS };
  t.equal(
    code(() => encodeFixedIndex({ ...h, uuid: new Uint8Array(15) }, digests)),
    'ERR_INVALID_ARGUMENT',
  );
  t.equal(
    code(() => encodeFixedIndex({ ...h, ctime: 1.5 }, digests)),
    'ERR_INVALID_ARGUMENT',
  );
  t.equal(
    code(() => encodeFixedIndex({ ...h, size: -1 }, digests)),
    'ERR_INVALID_ARGUMENT',
  );
  t.equal(
    code(() => encodeFixedIndex({ ...h, chunkSize: 5000 }, digests)),
    'ERR_INVALID_ARGUMENT',
  );
  t.equal(
    code(() => encodeFixedIndex(h, digests.subarray(32))),
    'ERR_INVALID_ARGUMENT',
  );
});

t.test('every kind of damage', async (t) => {
  const cases: [string, Uint8Array, ErrorCode, RegExp][] = [
    ['empty', new Uint8Array(0), 'ERR_INDEX_CORRUPT', /shorter/],
    ['truncated header', file.subarray(0, 127), 'ERR_INDEX_CORRUPT', /shorter/],
    ['header only', file.subarray(0, 128), 'ERR_INDEX_CORRUPT', /header implies/],
    ['truncated body', file.subarray(0, file.length - 1), 'ERR_INDEX_CORRUPT', /header implies/],
    ['one digest short', file.subarray(0, file.length - 32), 'ERR_INDEX_CORRUPT', /header implies/],
    ['extra bytes', concat([file, new Uint8Array(32)]), 'ERR_INDEX_CORRUPT', /header implies/],
    ['magic', mutate((b) => (b[0] = 0), false), 'ERR_INDEX_CORRUPT', /magic/],
    ['dynamic magic', mutate((b) => (b[5] = 0x44), false), 'ERR_INDEX_CORRUPT', /magic/],
    ['version 2', mutate((_b, v) => v.setUint32(8, 2, true), false), 'ERR_FORMAT_VERSION', /newer/],
    ['version 0', mutate((_b, v) => v.setUint32(8, 0, true)), 'ERR_INDEX_CORRUPT', /version 0/],
    ['header crc', mutate((_b, v) => v.setUint32(124, 0, true), false), 'ERR_INDEX_CORRUPT', /header CRC/],
    ['uuid byte, no reseal', mutate((b) => (b[20] = 0xff), false), 'ERR_INDEX_CORRUPT', /header CRC/],
    ['flags', mutate((_b, v) => v.setUint32(12, 1, true)), 'ERR_INDEX_CORRUPT', /flags/],
    ['reserved tail', mutate((b) => (b[100] = 1)), 'ERR_INDEX_CORRUPT', /reserved/],
    ['reserved after chunk size', mutate((b) => (b[53] = 1)), 'ERR_INDEX_CORRUPT', /reserved/],
    ['ctime huge', mutate((_b, v) => v.setBigInt64(32, 2n ** 60n, true)), 'ERR_INDEX_CORRUPT', /ctime/],
    ['size huge', mutate((_b, v) => v.setBigUint64(40, 2n ** 60n, true)), 'ERR_INDEX_CORRUPT', /size exceeds/],
    ['count huge', mutate((_b, v) => v.setBigUint64(56, 2n ** 63n, true)), 'ERR_INDEX_CORRUPT', /count exceeds/],
    ['size + chunk', mutate((b) => writeU64LE(b, 40, size + CS)), 'ERR_INDEX_CORRUPT', /entry count/],
    ['size - 1 (same count)', mutate((b) => writeU64LE(b, 40, size - 1)), 'ERR_INDEX_CORRUPT', /none|checksum|/],
    ['count', mutate((b) => writeU64LE(b, 56, 5)), 'ERR_INDEX_CORRUPT', /entry count/],
    ['chunk size not pow2', mutate((_b, v) => v.setUint32(48, 5000, true)), 'ERR_INDEX_CORRUPT', /chunk size/],
    ['chunk size too small', mutate((_b, v) => v.setUint32(48, 2048, true)), 'ERR_INDEX_CORRUPT', /chunk size/],
    ['chunk size too big', mutate((_b, v) => v.setUint32(48, 2 ** 25, true)), 'ERR_INDEX_CORRUPT', /chunk size/],
    ['chunk size 0', mutate((_b, v) => v.setUint32(48, 0, true)), 'ERR_INDEX_CORRUPT', /chunk size/],
    ['checksum field', mutate((b) => (b[70] = b[70]! ^ 1)), 'ERR_INDEX_CORRUPT', /checksum/],
    ['digest byte', mutate((b) => (b[200] = b[200]! ^ 1), false), 'ERR_INDEX_CORRUPT', /checksum/],
  ];
  for (const [name, bytes, want, msg] of cases) {
    try {
      decodeFixedIndex(bytes, details);
      if (name.startsWith('size - 1')) t.pass(`${name}: accepted (size is not covered by the checksum, only the crc)`);
      else t.fail(`${name}: did not throw`);
    } catch (e) {
      t.ok(e instanceof CairnError, `${name}: CairnError`);
      t.equal((e as CairnError).code, want, `${name}: code`);
      t.match((e as CairnError).message, msg, `${name}: message`);
      t.match((e as CairnError).message, /disk\.img/, `${name}: names the archive`);
      t.equal((e as CairnError).details, details, `${name}: details`);
    }
  }
  t.equal(
    code(() => decodeFixedIndex(new Uint8Array(3))),
    'ERR_INDEX_CORRUPT',
    'default details',
  );
});

t.test('builder', async (t) => {
  const b = new FixedIndexBuilder({ size, chunkSize: CS });
  t.equal(b.count, 4);
  t.equal(b.complete, false);
  b.set(3, digests.subarray(96, 128)).set(1, digests.subarray(32, 64));
  t.equal(
    code(() => b.finish({ uuid, ctime: 1_700_000_000 })),
    'ERR_INVALID_ARGUMENT',
  );
  b.append(digests.subarray(0, 32));
  b.set(2, new Uint8Array(32));
  b.set(2, digests.subarray(64, 96));
  t.equal(b.complete, true);
  t.ok(equalBytes(b.finish({ uuid, ctime: 1_700_000_000 }), file));
  t.equal(
    code(() => b.set(4, digests.subarray(0, 32))),
    'ERR_INVALID_ARGUMENT',
  );
  t.equal(
    code(() => b.set(0, new Uint8Array(31))),
    'ERR_INVALID_ARGUMENT',
  );
  t.equal(
    code(() => new FixedIndexBuilder({ size: -1, chunkSize: CS })),
    'ERR_INVALID_ARGUMENT',
  );
  t.equal(
    code(() => new FixedIndexBuilder({ size: 1, chunkSize: 3 })),
    'ERR_INVALID_ARGUMENT',
  );
  const seq = new FixedIndexBuilder({ size, chunkSize: CS });
  for (let i = 0; i < 4; i++) seq.append(digests.subarray(i * 32, i * 32 + 32));
  t.ok(equalBytes(seq.finish({ uuid, ctime: 1_700_000_000 }), file));
  t.equal(
    code(() => seq.append(digests.subarray(0, 32))),
    'ERR_INVALID_ARGUMENT',
  );
});

t.test('property: decoder only throws CairnError', async (t) => {
  const tryDecode = (b: Uint8Array): boolean => {
    try {
      decodeFixedIndex(b);
      return true;
    } catch (e) {
      if (!(e instanceof CairnError)) throw e;
      return false;
    }
  };
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 400 }), (b) => void tryDecode(b)),
    { numRuns: 300 },
  );
  fc.assert(
    fc.property(fc.nat(), fc.integer({ min: 1, max: 255 }), fc.boolean(), fc.nat(), (pos, x, reseal, cut) => {
      const b = mutate((bb) => (bb[pos % bb.length] = bb[pos % bb.length]! ^ x), reseal);
      const ok = tryDecode(b);
      // Without a re-sealed CRC every flip is detected.
      if (!reseal) t.notOk(ok);
      tryDecode(b.subarray(0, cut % (b.length + 1)));
    }),
    { numRuns: 400 },
  );
});

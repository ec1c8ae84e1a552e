import t from 'tap';
import fc from 'fast-check';
import { CairnError, type ErrorCode } from '../../lib/errors.js';
import { blake3, crc32, initHash } from '../../lib/codec/hash.js';
import { decodeDynamicIndex, DYNAMIC_ENTRY_SIZE, DynamicIndexBuilder, dynamicIndexChecksum, encodeDynamicIndex } from '../../lib/format/dynamic-index.js';
import { concat, equalBytes, writeU64LE } from '../../lib/util/bytes.js';
import { code } from '../helpers/codes.js';

await initHash();

const uuid = Uint8Array.from({ length: 16 }, (_, i) => 0xa0 + i);
const lengths = [100, 1, 5000, 37, 2 ** 33];
const dig = (i: number): Uint8Array => blake3(Uint8Array.of(i, 7));
const builder = new DynamicIndexBuilder();
lengths.forEach((l, i) => builder.append(l, dig(i)));
const file = builder.finish({ uuid, ctime: 1_750_000_000 });
const total = lengths.reduce((a, b) => a + b, 0);
const details = { archive: 'root.tree', path: '/ds/x' };

/** Copy, mutate, re-seal header CRC and (optionally) the body checksum. */
function mutate(f: (b: Uint8Array, v: DataView) => void, resealCrc = true, resealSum = false): Uint8Array {
  const b = Uint8Array.from(file);
  const v = new DataView(b.buffer);
  f(b, v);
  if (resealSum) b.set(blake3(b.subarray(128)), 64);
  if (resealCrc) v.setUint32(124, crc32(b.subarray(0, 124)), true);
  return b;
}

t.test('layout and round trip', async (t) => {
  t.equal(DYNAMIC_ENTRY_SIZE, 40);
  t.equal(file.length, 128 + lengths.length * 40);
  t.equal(Buffer.from(file.subarray(0, 8)).toString('latin1'), 'CAIRNDIX');
  t.equal(builder.count, 5);
  t.equal(builder.size, total);
  const v = new DataView(file.buffer);
  t.equal(Number(v.getBigUint64(40, true)), total);
  t.equal(Number(v.getBigUint64(56, true)), 5);
  t.equal(Number(v.getBigUint64(128, true)), 100, 'first end');
  const ix = decodeDynamicIndex(file, details);
  t.same([...ix.uuid], [...uuid]);
  t.equal(ix.ctime, 1_750_000_000);
  t.equal(ix.size, total);
  t.equal(ix.count, 5);
  t.ok(equalBytes(ix.checksum, dynamicIndexChecksum(file.subarray(128))));
  t.equal(ix.entries.length, 200);
  let start = 0;
  for (let i = 0; i < lengths.length; i++) {
    const end = start + lengths[i]!;
    t.same(ix.chunkRange(i), { start, end });
    t.equal(ix.endAt(i), end);
    t.ok(equalBytes(ix.digestAt(i), dig(i)));
    t.equal(ix.find(start), i);
    t.equal(ix.find(end - 1), i);
    if (end - start > 2) t.equal(ix.find(start + 1), i);
    start = end;
  }
  t.equal(ix.find(total), -1);
  t.equal(ix.find(-1), -1);
  t.equal(ix.find(NaN), -1);
  t.throws(() => ix.digestAt(5), RangeError);
  t.throws(() => ix.endAt(-1), RangeError);
  t.throws(() => ix.chunkRange(1.5), RangeError);
  const empty = decodeDynamicIndex(new DynamicIndexBuilder().finish({ uuid, ctime: 0 }));
  t.equal(empty.count, 0);
  t.equal(empty.size, 0);
  t.equal(empty.find(0), -1);
  t.ok(equalBytes(encodeDynamicIndex({ uuid, ctime: 1_750_000_000 }, file.subarray(128)), file), 'encode from entries');
});

t.test('binary search on many chunks', async (t) => {
  const b = new DynamicIndexBuilder();
  const d = new Uint8Array(32);
  const ends: number[] = [];
  let e = 0;
  for (let i = 0; i < 1000; i++) {
    const l = 1 + ((i * 7919) % 300);
    b.append(l, d);
    e += l;
    ends.push(e);
  }
  const ix = decodeDynamicIndex(b.finish({ uuid, ctime: 1 }));
  for (let k = 0; k < 2000; k++) {
    const off = Math.floor(Math.random() * e);
    const want = ends.findIndex((x) => x > off);
    if (ix.find(off) !== want) t.fail(`find(${off})`);
  }
  t.pass('find agrees with a linear scan');
});

t.test('builder rejects bad input', async (t) => {
  const b = new DynamicIndexBuilder();
  t.equal(
    code(() => b.append(0, new Uint8Array(32))),
    'ERR_INVALID_ARGUMENT',
  );
  t.equal(
    code(() => b.append(1.5, new Uint8Array(32))),
    'ERR_INVALID_ARGUMENT',
  );
  t.equal(
    code(() => b.append(1, new Uint8Array(31))),
    'ERR_INVALID_ARGUMENT',
  );
  b.append(2 ** 52, new Uint8Array(32));
  b.append(2 ** 52 - 1, new Uint8Array(32));
  t.equal(
    code(() => b.append(1, new Uint8Array(32))),
    'ERR_INVALID_ARGUMENT',
    'beyond 2^53 - 1',
  );
  t.equal(
    code(() => b.finish({ uuid: new Uint8Array(0), ctime: 0 })),
    'ERR_INVALID_ARGUMENT',
  );
  t.equal(
    code(() => encodeDynamicIndex({ uuid, ctime: 0 }, new Uint8Array(41))),
    'ERR_INVALID_ARGUMENT',
  );
  const bad = Uint8Array.from(file.subarray(128));
  writeU64LE(bad, 40, 50); // second end below first
  t.equal(
    code(() => encodeDynamicIndex({ uuid, ctime: 0 }, bad)),
    'ERR_INVALID_ARGUMENT',
  );
  const zero = new Uint8Array(40);
  t.equal(
    code(() => encodeDynamicIndex({ uuid, ctime: 0 }, zero)),
    'ERR_INVALID_ARGUMENT',
    'end 0',
  );
});

t.test('every kind of damage', async (t) => {
  const e = (i: number): number => 128 + i * 40;
  const cases: [string, Uint8Array, ErrorCode, RegExp][] = [
    ['empty', new Uint8Array(0), 'ERR_INDEX_CORRUPT', /shorter/],
    ['truncated header', file.subarray(0, 64), 'ERR_INDEX_CORRUPT', /shorter/],
    ['header only', file.subarray(0, 128), 'ERR_INDEX_CORRUPT', /header implies/],
    ['truncated entry', file.subarray(0, file.length - 8), 'ERR_INDEX_CORRUPT', /header implies/],
    ['extra bytes', concat([file, new Uint8Array(40)]), 'ERR_INDEX_CORRUPT', /header implies/],
    ['magic', mutate((b) => (b[7] = 0), false), 'ERR_INDEX_CORRUPT', /magic/],
    ['fixed magic', mutate((b) => (b[5] = 0x46), false), 'ERR_INDEX_CORRUPT', /magic/],
    ['version 9', mutate((_b, v) => v.setUint32(8, 9, true), false), 'ERR_FORMAT_VERSION', /newer/],
    ['version 0', mutate((_b, v) => v.setUint32(8, 0, true)), 'ERR_INDEX_CORRUPT', /version/],
    ['header crc', mutate((b) => (b[125] = b[125]! ^ 4), false), 'ERR_INDEX_CORRUPT', /header CRC/],
    ['size, no reseal', mutate((b) => (b[40] = b[40]! ^ 1), false), 'ERR_INDEX_CORRUPT', /header CRC/],
    ['flags', mutate((_b, v) => v.setUint32(12, 0x100, true)), 'ERR_INDEX_CORRUPT', /flags/],
    ['kind reserved', mutate((b) => (b[50] = 1)), 'ERR_INDEX_CORRUPT', /reserved/],
    ['tail reserved', mutate((b) => (b[123] = 1)), 'ERR_INDEX_CORRUPT', /reserved/],
    ['count', mutate((b) => writeU64LE(b, 56, 4)), 'ERR_INDEX_CORRUPT', /header implies/],
    ['count huge', mutate((_b, v) => v.setBigUint64(56, 2n ** 64n - 1n, true)), 'ERR_INDEX_CORRUPT', /count exceeds/],
    ['size', mutate((b) => writeU64LE(b, 40, total + 1)), 'ERR_INDEX_CORRUPT', /last end offset/],
    ['checksum', mutate((b) => (b[64] = b[64]! ^ 1)), 'ERR_INDEX_CORRUPT', /checksum/],
    ['digest byte', mutate((b) => (b[e(2) + 9] = b[e(2) + 9]! ^ 1)), 'ERR_INDEX_CORRUPT', /checksum/],
    ['end byte', mutate((b) => (b[e(1)] = b[e(1)]! ^ 1)), 'ERR_INDEX_CORRUPT', /checksum/],
    ['ends not increasing', mutate((b) => writeU64LE(b, e(2), 50), true, true), 'ERR_INDEX_CORRUPT', /does not exceed/],
    ['equal ends', mutate((b) => writeU64LE(b, e(1), 100), true, true), 'ERR_INDEX_CORRUPT', /does not exceed/],
    ['first end 0', mutate((b) => writeU64LE(b, e(0), 0), true, true), 'ERR_INDEX_CORRUPT', /does not exceed/],
    ['end huge', mutate((_b, v) => v.setBigUint64(e(4), 2n ** 60n, true), true, true), 'ERR_INDEX_CORRUPT', /exceeds 2\^53/],
    ['last end != size', mutate((b) => writeU64LE(b, e(4), total + 5), true, true), 'ERR_INDEX_CORRUPT', /last end offset/],
  ];
  for (const [name, bytes, want, msg] of cases) {
    try {
      decodeDynamicIndex(bytes, details);
      t.fail(`${name}: did not throw`);
    } catch (err) {
      t.ok(err instanceof CairnError, `${name}: CairnError`);
      t.equal((err as CairnError).code, want, `${name}: code`);
      t.match((err as CairnError).message, msg, `${name}: message`);
      t.match((err as CairnError).message, /root\.tree/, `${name}: names the archive`);
      t.equal((err as CairnError).details, details);
    }
  }
  t.equal(
    code(() => decodeDynamicIndex(new Uint8Array(3))),
    'ERR_INDEX_CORRUPT',
    'default details',
  );
});

t.test('property: decoder only throws CairnError', async (t) => {
  const tryDecode = (b: Uint8Array): boolean => {
    try {
      decodeDynamicIndex(b);
      return true;
    } catch (err) {
      if (!(err instanceof CairnError)) throw err;
      return false;
    }
  };
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 400 }), (b) => void tryDecode(b)),
    { numRuns: 300 },
  );
  fc.assert(
    fc.property(fc.nat(), fc.integer({ min: 1, max: 255 }), fc.boolean(), fc.boolean(), fc.nat(), (pos, x, rc, rs, cut) => {
      const b = mutate((bb) => (bb[pos % bb.length] = bb[pos % bb.length]! ^ x), rc, rs);
      const ok = tryDecode(b);
      // (with only the body checksum re-sealed, a flip inside the checksum field is undone)
      if (!rc && !rs) t.notOk(ok);
      tryDecode(b.subarray(0, cut % (b.length + 1)));
    }),
    { numRuns: 400 },
  );
});

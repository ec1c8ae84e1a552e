import t from 'tap';
import fc from 'fast-check';
import { isCairnError } from '../../lib/errors.js';
import { concat, equalBytes, fromHex, readI64LE, readU64LE, toHex, writeI64LE, writeU64LE } from '../../lib/util/bytes.js';

t.test('hex', async (t) => {
  t.equal(toHex(Uint8Array.from([0, 1, 0xab, 0xff])), '0001abff');
  t.equal(toHex(new Uint8Array(0)), '');
  t.same([...fromHex('0001ABff')], [0, 1, 0xab, 0xff]);
  t.same([...fromHex('')], []);
  t.same([...fromHex('abcd', 2)], [0xab, 0xcd]);
  for (const bad of ['0', 'zz', '0x00', 'ab cd', 'abc', ' ab']) {
    t.throws(() => fromHex(bad), { code: 'ERR_INVALID_ARGUMENT' }, bad);
  }
  t.throws(() => fromHex(5 as unknown as string), { code: 'ERR_INVALID_ARGUMENT' });
  try {
    fromHex('abcd', 32);
    t.fail();
  } catch (e) {
    t.ok(isCairnError(e, 'ERR_INVALID_ARGUMENT'));
  }
  fc.assert(fc.property(fc.uint8Array(), (b) => equalBytes(fromHex(toHex(b)), b)));
});

t.test('equalBytes and concat', async (t) => {
  t.ok(equalBytes(Uint8Array.from([1, 2]), Uint8Array.from([1, 2])));
  t.notOk(equalBytes(Uint8Array.from([1, 2]), Uint8Array.from([1, 3])));
  t.notOk(equalBytes(Uint8Array.from([1, 2]), Uint8Array.from([1])));
  const c = concat([Uint8Array.from([1]), new Uint8Array(0), Uint8Array.from([2, 3])]);
  t.same([...c], [1, 2, 3]);
  const one = Uint8Array.from([9]);
  t.not(concat([one]), one, 'always a copy');
  t.equal(concat([]).length, 0);
});

t.test('u64 / i64', async (t) => {
  const b = new Uint8Array(16);
  for (const v of [0, 1, 0xffffffff, 0x100000000, Number.MAX_SAFE_INTEGER, 123456789012345]) {
    writeU64LE(b, 3, v);
    t.equal(readU64LE(b, 3), v);
  }
  writeU64LE(b, 0, 0x0102030405);
  t.same([...b.subarray(0, 8)], [5, 4, 3, 2, 1, 0, 0, 0]);
  t.throws(() => writeU64LE(b, 0, -1), RangeError);
  t.throws(() => writeU64LE(b, 0, 1.5), RangeError);
  t.throws(() => writeU64LE(b, 0, 2 ** 53), RangeError);
  t.throws(() => writeU64LE(b, 10, 1), RangeError, 'out of bounds');
  b.fill(0xff, 0, 8);
  t.throws(() => readU64LE(b, 0), RangeError);
  b.fill(0, 0, 8);
  b[6] = 0x20; // 2^53
  t.throws(() => readU64LE(b, 0), RangeError);
  t.throws(() => readU64LE(b, 12), RangeError);
  for (const v of [0, -1, 1, -(2 ** 40), Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER]) {
    writeI64LE(b, 1, v);
    t.equal(readI64LE(b, 1), v);
  }
  writeI64LE(b, 0, -1);
  t.same([...b.subarray(0, 8)], [255, 255, 255, 255, 255, 255, 255, 255]);
  t.throws(() => writeI64LE(b, 0, 2 ** 53), RangeError);
  b.fill(0, 0, 8);
  b[7] = 0x80;
  t.throws(() => readI64LE(b, 0), RangeError);
  const sub = new Uint8Array(20).subarray(4);
  writeU64LE(sub, 0, 77);
  t.equal(readU64LE(sub, 0), 77, 'works on subarrays');
});

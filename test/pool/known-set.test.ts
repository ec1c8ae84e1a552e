import t from 'tap';
import { buildKnownSet, isAllZero, knownHas, knownSize } from '../../lib/pool/known-set.js';
import { blake3, DIGEST_SIZE, initHash } from '../../lib/codec/hash.js';
import { seededBytes } from '../helpers/fixtures.js';

await initHash();

const digestOf = (i: number): Uint8Array => blake3(new TextEncoder().encode(`chunk ${i}`));

t.test('empty set', async (t) => {
  const s = buildKnownSet([]);
  t.ok(s instanceof SharedArrayBuffer);
  t.equal(s.byteLength, 0);
  t.equal(knownSize(s), 0);
  t.notOk(knownHas(s, digestOf(1)));
});

t.test('sorted, de-duplicated, membership', async (t) => {
  const present = Array.from({ length: 500 }, (_, i) => digestOf(i));
  const withDups = [...present, ...present.slice(0, 100), present[7]!, present[7]!];
  const s = buildKnownSet(withDups);
  t.ok(s instanceof SharedArrayBuffer, 'shared memory');
  t.equal(knownSize(s), 500, 'duplicates removed');
  t.equal(s.byteLength, 500 * DIGEST_SIZE, 'exactly 32 bytes per digest');
  const table = Buffer.from(s);
  for (let i = 1; i < 500; i++) {
    const prev = table.subarray((i - 1) * 32, i * 32);
    const cur = table.subarray(i * 32, (i + 1) * 32);
    if (Buffer.compare(prev, cur) >= 0) {
      t.fail(`not strictly sorted at ${i}`);
      return;
    }
  }
  t.pass('strictly ascending');
  let hits = 0;
  for (const d of present) if (knownHas(s, d)) hits++;
  t.equal(hits, 500, 'every present digest is found');
  let falseHits = 0;
  for (let i = 500; i < 1500; i++) if (knownHas(s, digestOf(i))) falseHits++;
  t.equal(falseHits, 0, 'no absent digest is found');
  // Edges: smallest / largest possible digests.
  t.notOk(knownHas(s, new Uint8Array(32)));
  t.notOk(knownHas(s, new Uint8Array(32).fill(0xff)));
  t.ok(knownHas(s, new Uint8Array(table.subarray(0, 32))), 'the first entry');
  t.ok(knownHas(s, new Uint8Array(table.subarray(499 * 32))), 'the last entry');
});

t.test('digests given as views into larger buffers', async (t) => {
  const raw = new Uint8Array(32 * 10 + 5);
  for (let i = 0; i < 10; i++) raw.set(digestOf(i), 5 + i * 32);
  const views = Array.from({ length: 10 }, (_, i) => raw.subarray(5 + i * 32, 5 + (i + 1) * 32));
  const s = buildKnownSet(views);
  t.equal(knownSize(s), 10);
  for (let i = 0; i < 10; i++) t.ok(knownHas(s, digestOf(i)), `digest ${i}`);
  const probe = new Uint8Array(40);
  probe.set(digestOf(3), 8);
  t.ok(knownHas(s, probe.subarray(8, 40)), 'probe given as a view');
  t.notOk(knownHas(s, digestOf(10)));
});

t.test('one and two entries', async (t) => {
  const one = buildKnownSet([digestOf(1), digestOf(1)]);
  t.equal(knownSize(one), 1);
  t.ok(knownHas(one, digestOf(1)));
  t.notOk(knownHas(one, digestOf(2)));
  const two = buildKnownSet([digestOf(2), digestOf(1)]);
  t.equal(knownSize(two), 2);
  t.ok(knownHas(two, digestOf(1)));
  t.ok(knownHas(two, digestOf(2)));
  t.notOk(knownHas(two, digestOf(3)));
});

t.test('generator input', async (t) => {
  function* gen(): Generator<Uint8Array> {
    for (let i = 0; i < 20; i++) yield digestOf(i % 5);
  }
  const s = buildKnownSet(gen());
  t.equal(knownSize(s), 5);
});

t.test('isAllZero', async (t) => {
  t.ok(isAllZero(new Uint8Array(0)));
  t.ok(isAllZero(new Uint8Array(1)));
  t.ok(isAllZero(new Uint8Array((1 << 20) * 2 + 17)), 'longer than the zero page');
  const last = new Uint8Array((1 << 20) * 2 + 17);
  last[last.length - 1] = 1;
  t.notOk(isAllZero(last), 'a non-zero last byte beyond the first page');
  const first = new Uint8Array(100);
  first[0] = 1;
  t.notOk(isAllZero(first));
  t.notOk(isAllZero(seededBytes(1000, 1)));
  const backing = new Uint8Array(100).fill(9);
  backing.fill(0, 10, 90);
  t.ok(isAllZero(backing.subarray(10, 90)), 'a zero view inside a non-zero buffer');
  t.notOk(isAllZero(backing.subarray(9, 90)));
});

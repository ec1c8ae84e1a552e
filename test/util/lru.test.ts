import t from 'tap';
import { ByteLru } from '../../lib/util/lru.js';

const buf = (n: number, fill = 0): Uint8Array => new Uint8Array(n).fill(fill);

t.test('keeps entries within capacity and counts bytes', async (t) => {
  const lru = new ByteLru<string, Uint8Array>(100);
  t.equal(lru.capacity, 100);
  t.equal(lru.size, 0);
  t.equal(lru.bytes, 0);
  t.equal(lru.get('x'), undefined);
  const a = buf(30, 1);
  lru.set('a', a);
  lru.set('b', buf(30, 2));
  lru.set('c', buf(40, 3));
  t.equal(lru.size, 3);
  t.equal(lru.bytes, 100, 'exactly the capacity is kept');
  t.equal(lru.get('a'), a, 'the same object comes back');
  t.equal(lru.get('b')?.[0], 2);
  t.equal(lru.get('c')?.[0], 3);
});

t.test('evicts least recently used first', async (t) => {
  const lru = new ByteLru<string, Uint8Array>(100);
  lru.set('a', buf(30));
  lru.set('b', buf(30));
  lru.set('c', buf(30));
  lru.get('a'); // order now b, c, a
  lru.set('d', buf(30)); // 120 > 100: evict b
  t.equal(lru.get('b'), undefined, 'b was least recently used');
  t.ok(lru.get('a'));
  t.ok(lru.get('c'));
  t.ok(lru.get('d'));
  t.equal(lru.size, 3);
  t.equal(lru.bytes, 90);
  // order now a, c, d; a 70-byte entry evicts a and c (90 + 70 - 30 - 30 = 100)
  lru.set('e', buf(70));
  t.equal(lru.get('a'), undefined);
  t.equal(lru.get('c'), undefined);
  t.ok(lru.get('d'));
  t.ok(lru.get('e'));
  t.equal(lru.bytes, 100);
  t.equal(lru.size, 2);
});

t.test('replacing an entry updates bytes and recency', async (t) => {
  const lru = new ByteLru<string, Uint8Array>(100);
  lru.set('a', buf(50));
  lru.set('b', buf(20));
  lru.set('a', buf(10, 9)); // a is now most recent, 10 bytes
  t.equal(lru.bytes, 30);
  t.equal(lru.size, 2);
  t.equal(lru.get('a')?.byteLength, 10);
  lru.set('c', buf(80)); // 110: evict b (older than a)
  t.equal(lru.get('b'), undefined);
  t.ok(lru.get('a'));
  t.equal(lru.bytes, 90);
});

t.test('an entry larger than the capacity is never kept', async (t) => {
  const lru = new ByteLru<string, Uint8Array>(100);
  lru.set('a', buf(40));
  lru.set('huge', buf(101));
  t.equal(lru.get('huge'), undefined);
  t.ok(lru.get('a'), 'other entries are not evicted for it');
  t.equal(lru.bytes, 40);
  // Replacing an entry with an oversize value drops the old one.
  lru.set('a', buf(500));
  t.equal(lru.get('a'), undefined, 'the old value is gone too');
  t.equal(lru.size, 0);
  t.equal(lru.bytes, 0);

  const zero = new ByteLru<string, Uint8Array>(0);
  zero.set('e', buf(0));
  t.equal(zero.size, 1, 'an empty value fits in a zero-capacity cache');
  zero.set('x', buf(1));
  t.equal(zero.get('x'), undefined);
});

t.test('clear', async (t) => {
  const lru = new ByteLru<number, Uint8Array>(10);
  lru.set(1, buf(5));
  lru.set(2, buf(5));
  lru.clear();
  t.equal(lru.size, 0);
  t.equal(lru.bytes, 0);
  t.equal(lru.get(1), undefined);
  lru.set(3, buf(10));
  t.equal(lru.bytes, 10, 'usable after clear');
});

t.test('randomised against a reference model', async (t) => {
  const cap = 1000;
  const lru = new ByteLru<number, Uint8Array>(cap);
  let model: [number, number][] = []; // key, size; oldest first
  let x = 12345;
  const rnd = (n: number): number => {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    return x % n;
  };
  for (let i = 0; i < 2000; i++) {
    const key = rnd(30);
    if (rnd(3) === 0) {
      const got = lru.get(key);
      const idx = model.findIndex(([k]) => k === key);
      t.equal(got === undefined, idx < 0, `step ${i}: presence of ${key}`);
      if (idx >= 0) {
        const [e] = model.splice(idx, 1);
        model.push(e!);
        if (got?.byteLength !== e![1]) t.fail(`step ${i}: wrong size`);
      }
    } else {
      const size = rnd(400);
      lru.set(key, buf(size));
      model = model.filter(([k]) => k !== key);
      if (size <= cap) {
        model.push([key, size]);
        let total = model.reduce((s, [, n]) => s + n, 0);
        while (total > cap) total -= model.shift()![1];
      }
    }
    const total = model.reduce((s, [, n]) => s + n, 0);
    if (lru.bytes !== total || lru.size !== model.length) {
      t.fail(`step ${i}: bytes ${lru.bytes}/${total}, size ${lru.size}/${model.length}`);
      return;
    }
  }
  t.pass('model agrees');
});

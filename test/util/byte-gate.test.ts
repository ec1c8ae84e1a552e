import t from 'tap';
import { ByteGate } from '../../lib/util/byte-gate.js';

/** Lets queued promise callbacks run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise<void>((r) => setImmediate(r));
}

/** Starts an acquire and records when it is admitted. */
function track(gate: ByteGate, n: number, log: string[], label: string): { done: () => boolean; p: Promise<void> } {
  let admitted = false;
  const p = gate.acquire(n).then(() => {
    admitted = true;
    log.push(label);
  });
  return { done: () => admitted, p };
}

t.test('admits up to the limit at once', async (t) => {
  const gate = new ByteGate(100);
  t.equal(gate.limit, 100);
  t.equal(gate.bytesInFlight, 0);
  await gate.acquire(40);
  await gate.acquire(60);
  t.equal(gate.bytesInFlight, 100, 'exactly the limit fits');
  const log: string[] = [];
  const a = track(gate, 1, log, 'a');
  await settle();
  t.notOk(a.done(), 'one more byte waits');
  gate.release(40);
  await a.p;
  t.equal(gate.bytesInFlight, 61);
  gate.release(60);
  gate.release(1);
  t.equal(gate.bytesInFlight, 0);
});

t.test('waiters are admitted in FIFO order; a small request does not overtake a big one', async (t) => {
  const gate = new ByteGate(100);
  await gate.acquire(90);
  const log: string[] = [];
  const big = track(gate, 50, log, 'big');
  const small = track(gate, 5, log, 'small');
  await settle();
  t.notOk(big.done(), 'big waits');
  t.notOk(small.done(), 'small would fit but waits behind big');
  t.equal(gate.bytesInFlight, 90);

  // A fresh acquire that fits also queues while others wait.
  const late = track(gate, 1, log, 'late');
  await settle();
  t.notOk(late.done());

  gate.release(40); // 50 in flight: big fits (100), then small (105 > 100) does not
  await big.p;
  await settle();
  t.same(log, ['big']);
  t.equal(gate.bytesInFlight, 100);
  t.notOk(small.done());

  gate.release(50); // 50 in flight: small (55) and late (56) fit
  await Promise.all([small.p, late.p]);
  t.same(log, ['big', 'small', 'late'], 'order of arrival');
  t.equal(gate.bytesInFlight, 56);
});

t.test('a request larger than the limit is admitted when nothing is in flight', async (t) => {
  const gate = new ByteGate(10);
  await gate.acquire(1000);
  t.equal(gate.bytesInFlight, 1000, 'admitted at once into an empty gate');
  const log: string[] = [];
  const next = track(gate, 1, log, 'next');
  await settle();
  t.notOk(next.done(), 'nothing else fits while over the limit');
  gate.release(1000);
  await next.p;
  t.equal(gate.bytesInFlight, 1);

  const over = track(gate, 50, log, 'over');
  await settle();
  t.notOk(over.done(), 'an oversize request waits until the gate is empty');
  const after = track(gate, 1, log, 'after');
  await settle();
  t.notOk(after.done(), 'and blocks later requests (FIFO)');
  gate.release(1);
  await Promise.all([over.p]);
  await settle();
  t.same(log, ['next', 'over']);
  t.equal(gate.bytesInFlight, 50);
  t.notOk(after.done());
  gate.release(50);
  await after.p;
  t.same(log, ['next', 'over', 'after']);
  t.equal(gate.bytesInFlight, 1);
});

t.test('many concurrent users never exceed the limit', async (t) => {
  const gate = new ByteGate(1000);
  let peak = 0;
  const order: number[] = [];
  const jobs = Array.from({ length: 200 }, (_, i) => {
    const n = ((i * 37) % 300) + 1;
    return (async () => {
      await gate.acquire(n);
      order.push(i);
      peak = Math.max(peak, gate.bytesInFlight);
      await new Promise<void>((r) => setTimeout(r, i % 3));
      gate.release(n);
    })();
  });
  await Promise.all(jobs);
  t.ok(peak <= 1000, `peak ${peak} within the limit`);
  t.equal(gate.bytesInFlight, 0);
  t.same(
    order,
    [...order].sort((a, b) => a - b),
    'admitted in order of request',
  );
});

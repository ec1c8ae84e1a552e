import t from 'tap';
import { TaskGroup } from '../../lib/util/task-group.js';
import { isCairnError } from '../../lib/errors.js';

/** Lets queued promise callbacks run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise<void>((r) => setImmediate(r));
}

/** A promise settled from outside. */
interface Deferred {
  readonly promise: Promise<void>;
  resolve(): void;
  reject(e: unknown): void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Counts unhandled rejections while `fn` runs (and a little after). */
async function unhandled(fn: () => Promise<void>): Promise<unknown[]> {
  const seen: unknown[] = [];
  const on = (e: unknown): void => void seen.push(e);
  process.on('unhandledRejection', on);
  try {
    await fn();
    await settle();
  } finally {
    process.off('unhandledRejection', on);
  }
  return seen;
}

/** Settles to 'pending' when `p` has not settled yet. */
async function state(p: Promise<unknown>): Promise<'pending' | 'resolved' | 'rejected'> {
  let s: 'pending' | 'resolved' | 'rejected' = 'pending';
  p.then(
    () => (s = 'resolved'),
    () => (s = 'rejected'),
  );
  await settle();
  return s;
}

t.test('a count limit: at most `limit` tasks at once, started in call order', async (t) => {
  const g = new TaskGroup({ limit: 3 });
  t.equal(g.limit, 3);
  const ds = Array.from({ length: 8 }, () => deferred());
  const started: number[] = [];
  let now = 0;
  let most = 0;
  const producer = (async () => {
    for (let i = 0; i < ds.length; i++) {
      await g.run(async () => {
        started.push(i);
        most = Math.max(most, ++now);
        await ds[i]!.promise;
        now--;
      });
    }
  })();
  await settle();
  t.same(started, [0, 1, 2], 'three start; the fourth waits for room');
  t.equal(g.running, 3);
  t.equal(g.costInFlight, 3);
  ds[1]!.resolve();
  await settle();
  t.same(started, [0, 1, 2, 3], 'one finishes, one more starts');
  // Finish the rest out of order.
  for (const i of [7, 6, 5, 4, 3, 2, 0]) {
    ds[i]!.resolve();
    await settle();
  }
  await producer;
  await g.wait();
  t.same(started, [0, 1, 2, 3, 4, 5, 6, 7]);
  t.equal(most, 3, 'never more than the limit');
  t.equal(g.running, 0);
  t.equal(g.costInFlight, 0);
  t.notOk(g.failed);
});

t.test('a byte limit: costs add up; a task costlier than the limit runs alone; no overtaking', async (t) => {
  const g = new TaskGroup({ limit: 100 });
  const a = deferred();
  const b = deferred();
  const big = deferred();
  const log: string[] = [];
  await g.run(() => (log.push('a'), a.promise), 60);
  await g.run(() => (log.push('b'), b.promise), 40);
  t.equal(g.costInFlight, 100, 'exactly the limit fits');
  const bigRun = g.run(() => (log.push('big'), big.promise), 250);
  // A small one that would fit after a's release still waits behind big (FIFO).
  const smallRun = g.run(async () => void log.push('small'), 1);
  await settle();
  t.same(log, ['a', 'b']);
  a.resolve();
  await settle();
  t.same(log, ['a', 'b'], 'big waits until nothing is in flight; small waits behind it');
  t.equal(await state(smallRun), 'pending');
  b.resolve();
  await bigRun;
  t.same(log, ['a', 'b', 'big'], 'big starts alone');
  t.equal(g.costInFlight, 250);
  t.equal(await state(smallRun), 'pending', 'nothing starts beside a task over the limit');
  big.resolve();
  await smallRun;
  await g.wait();
  t.same(log, ['a', 'b', 'big', 'small']);
});

t.test('zero tasks: wait and drain resolve at once', async (t) => {
  const g = new TaskGroup({ limit: 4 });
  await g.wait();
  await g.drain();
  t.equal(g.running, 0);
  t.notOk(g.failed);
});

t.test('a task starts synchronously when there is room (before run resolves)', async (t) => {
  const g = new TaskGroup({ limit: 2 });
  let started = false;
  const r = g.run(async () => {
    started = true;
  });
  t.ok(started, 'the slot was free: fn ran inside run()');
  await r;
  await g.wait();
});

t.test('results land by index whatever the order of completion', async (t) => {
  const g = new TaskGroup({ limit: 4 });
  const out: number[] = new Array<number>(10);
  const finished: number[] = [];
  for (let i = 0; i < 10; i++) {
    await g.run(async () => {
      // Later tasks finish first.
      await new Promise((r) => setTimeout(r, (10 - i) * 2));
      out[i] = i * i;
      finished.push(i);
    });
  }
  await g.wait();
  t.same(out, [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]);
  t.notSame(finished, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 'completion order differs from start order');
});

t.test('the first failure wins, after every task in flight settles; later ones stay quiet', async (t) => {
  const seen = await unhandled(async () => {
    const g = new TaskGroup({ limit: 3 });
    const a = deferred();
    const b = deferred();
    const c = deferred();
    await g.run(() => a.promise);
    await g.run(() => b.promise);
    await g.run(() => c.promise);
    const waiting = g.wait();
    waiting.catch(() => undefined);
    const first = new Error('first');
    b.reject(first);
    await settle();
    t.ok(g.failed);
    t.equal(await state(waiting), 'pending', 'wait() holds while a and c are in flight');
    a.reject(new Error('second'));
    await settle();
    t.equal(await state(waiting), 'pending', 'still c');
    c.resolve();
    await t.rejects(waiting, first, 'the first failure, not the second');
    await t.rejects(g.wait(), first, 'and again');
    t.throws(() => g.check(), first);
  });
  t.same(seen, [], 'no unhandled rejections');
});

t.test('after a failure run() rejects with it and starts nothing; waiting runs are refused too', async (t) => {
  const seen = await unhandled(async () => {
    const g = new TaskGroup({ limit: 1 });
    const a = deferred();
    await g.run(() => a.promise);
    let startedLate = false;
    const queued = g.run(async () => {
      startedLate = true;
    });
    const boom = new Error('boom');
    a.reject(boom);
    await t.rejects(queued, boom, 'the waiting run is refused with the failure');
    t.notOk(startedLate);
    await t.rejects(
      g.run(async () => void (startedLate = true)),
      boom,
    );
    t.notOk(startedLate, 'nothing starts once failed');
    t.equal(g.running, 0);
    await t.rejects(g.wait(), boom);

    // Failed while another task still takes the room: refused at once, not queued.
    const g2 = new TaskGroup({ limit: 2 });
    const b = deferred();
    await g2.run(() => b.promise);
    await g2.run(() => Promise.reject(boom));
    await settle();
    t.equal(g2.running, 1);
    await t.rejects(
      g2.run(async () => void (startedLate = true), 2),
      boom,
    );
    t.notOk(startedLate);
    b.resolve();
    await t.rejects(g2.wait(), boom);
  });
  t.same(seen, []);
});

t.test('a task that throws synchronously fails the group', async (t) => {
  const g = new TaskGroup({ limit: 2 });
  const boom = new Error('sync');
  await g.run(() => {
    throw boom;
  });
  await t.rejects(g.wait(), boom);
  t.equal(g.running, 0);
});

t.test('a failure that is `undefined` still counts', async (t) => {
  const g = new TaskGroup({ limit: 2 });
  await g.run(() => Promise.reject(undefined));
  let threw = false;
  try {
    await g.wait();
  } catch (e) {
    threw = true;
    t.equal(e, undefined);
  }
  t.ok(threw, 'wait() threw');
  t.ok(g.failed);
});

t.test('fail(): the producer’s own error, unless a task failed first; waits for the tasks', async (t) => {
  const g = new TaskGroup({ limit: 4 });
  const a = deferred();
  await g.run(() => a.promise);
  const mine = new Error('producer');
  const f = g.fail(mine);
  t.equal(await state(f), 'pending', 'waits for the task in flight');
  a.reject(new Error('later task failure'));
  await t.rejects(f, mine, 'the producer failed first');

  const g2 = new TaskGroup({ limit: 4 });
  const taskErr = new Error('task');
  await g2.run(() => Promise.reject(taskErr));
  await settle();
  await t.rejects(g2.fail(new Error('producer, later')), taskErr, 'the task failed first');
});

t.test('abort: run and check refuse with ERR_ABORTED (the failure from then on)', async (t) => {
  const ac = new AbortController();
  const g = new TaskGroup({ limit: 2, signal: ac.signal, details: { archive: 'x.img' } });
  const a = deferred();
  await g.run(() => a.promise);
  g.check();
  ac.abort(new Error('stop'));
  let started = false;
  const err = await g
    .run(async () => void (started = true))
    .then(
      () => undefined,
      (e: unknown) => e,
    );
  t.notOk(started, 'nothing starts after the abort');
  t.ok(isCairnError(err, 'ERR_ABORTED'), 'ERR_ABORTED');
  t.equal((err as { details: { archive?: string } }).details.archive, 'x.img', 'with the details');
  t.throws(() => g.check(), { code: 'ERR_ABORTED' });
  t.ok(g.failed);
  const waiting = g.wait();
  waiting.catch(() => undefined);
  t.equal(await state(waiting), 'pending', 'the task in flight is waited for');
  a.reject(new Error('in-flight task fails after the abort'));
  await t.rejects(waiting, { code: 'ERR_ABORTED' }, 'the abort came first');
});

t.test('abort while waiting for room: refused when room comes, not started', async (t) => {
  const ac = new AbortController();
  const g = new TaskGroup({ limit: 1, signal: ac.signal });
  const a = deferred();
  await g.run(() => a.promise);
  let started = false;
  const queued = g.run(async () => void (started = true));
  ac.abort();
  a.resolve();
  await t.rejects(queued, { code: 'ERR_ABORTED' });
  t.notOk(started);
  await t.rejects(g.wait(), { code: 'ERR_ABORTED' });
});

t.test('a failure before the abort wins over it', async (t) => {
  const ac = new AbortController();
  const g = new TaskGroup({ limit: 2, signal: ac.signal });
  const boom = new Error('boom');
  await g.run(() => Promise.reject(boom));
  await settle();
  ac.abort();
  t.throws(() => g.check(), boom);
  await t.rejects(g.wait(), boom);
});

t.test('an already aborted signal: nothing starts', async (t) => {
  const g = new TaskGroup({ limit: 2, signal: AbortSignal.abort() });
  let started = false;
  await t.rejects(
    g.run(async () => void (started = true)),
    { code: 'ERR_ABORTED' },
  );
  t.notOk(started);
  await t.rejects(g.wait(), { code: 'ERR_ABORTED' });
});

t.test('spawn: starts at once outside the limit; wait covers it; its failure is the group’s', async (t) => {
  const g = new TaskGroup({ limit: 1 });
  const a = deferred();
  const s = deferred();
  await g.run(() => a.promise);
  let spawned = false;
  const handle = g.spawn(async () => {
    spawned = true;
    await s.promise;
  });
  t.ok(spawned, 'started although the limit is taken');
  t.equal(g.running, 2);
  t.equal(g.costInFlight, 1, 'costs nothing');
  a.resolve();
  await settle();
  let bigStarted = false;
  await g.run(async () => void (bigStarted = true), 5);
  t.ok(bigStarted, 'a task over the limit is alone when only spawned tasks run');
  const waiting = g.wait();
  waiting.catch(() => undefined);
  t.equal(await state(waiting), 'pending', 'wait() waits for the spawned task');
  const boom = new Error('spawned failed');
  s.reject(boom);
  await handle; // never rejects
  t.pass('the handle resolved');
  await t.rejects(waiting, boom);
});

t.test('drain waits for all and never throws', async (t) => {
  const g = new TaskGroup({ limit: 2 });
  const a = deferred();
  await g.run(() => a.promise);
  const d = g.drain();
  t.equal(await state(d), 'pending');
  a.reject(new Error('x'));
  await d;
  t.pass('drained');
  t.ok(g.failed);
});

t.test('a bad limit is a programmer error', async (t) => {
  t.throws(() => new TaskGroup({ limit: 0 }), TypeError);
  t.throws(() => new TaskGroup({ limit: Number.NaN }), TypeError);
  t.throws(() => new TaskGroup({ limit: -1 }), TypeError);
});

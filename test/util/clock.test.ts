import t from 'tap';
import { getEventListeners } from 'node:events';
import { sleep, systemClock } from '../../lib/util/clock.js';

t.test('systemClock reads the wall clock', async (t) => {
  const before = Date.now();
  const now = systemClock.now();
  const after = Date.now();
  t.ok(now >= before && now <= after);
});

t.test('sleep resolves after the delay', async (t) => {
  const t0 = performance.now();
  await sleep(30);
  t.ok(performance.now() - t0 >= 25, 'waited');
  await sleep(0);
  t.pass('zero delay resolves');
});

t.test('sleep with a signal that is never aborted removes its listener', async (t) => {
  const ac = new AbortController();
  const p = sleep(5, ac.signal);
  t.equal(getEventListeners(ac.signal, 'abort').length, 1, 'listening while asleep');
  await p;
  t.equal(getEventListeners(ac.signal, 'abort').length, 0, 'listener removed after the timer fired');
  // Aborting afterwards must not reject anything (would show as an unhandled rejection).
  ac.abort(new Error('late'));
  await sleep(5);
  t.pass('no late rejection');
});

t.test('sleep rejects at once with the reason of an aborted signal', async (t) => {
  const reason = new Error('already');
  const t0 = performance.now();
  await t.rejects(sleep(10_000, AbortSignal.abort(reason)), reason);
  t.ok(performance.now() - t0 < 1000);
});

t.test('sleep rejects when aborted while waiting, and clears its timer', async (t) => {
  const ac = new AbortController();
  const reason = new Error('stop');
  const t0 = performance.now();
  const p = sleep(60_000, ac.signal);
  setTimeout(() => ac.abort(reason), 20);
  await t.rejects(p, reason);
  t.ok(performance.now() - t0 < 5000, 'did not wait the full delay');
  t.equal(getEventListeners(ac.signal, 'abort').length, 0, 'no listener left');
  // A pending 60 s timer would keep this process alive past tap's timeout; nothing to assert here
  // beyond the file finishing promptly.
});

t.test('sleep with an aborted signal without a custom reason rejects with an AbortError', async (t) => {
  const ac = new AbortController();
  const p = sleep(60_000, ac.signal);
  ac.abort();
  await t.rejects(p, { name: 'AbortError' });
});

/**
 * A lock wait ends when its AbortSignal fires: acquireLock waits in slices and checks the signal
 * between them, so an abort ends even a long wait within a fraction of a second, with
 * ERR_ABORTED, and the waiter holds nothing afterwards. The same through the operations that wait
 * for a lock with the datastore's lockTimeoutMs: a backup (BackupOptions.signal) and a reader
 * (Snapshot.open's signal). flock locks of two open file descriptions conflict inside one process
 * like across two, so the holder here is this process.
 */
import t from 'tap';
import path from 'node:path';
import { readdir } from 'node:fs/promises';
import { Datastore } from '../../lib/index.js';
import { acquireLock, LOCK_WAIT_SLICE_MS } from '../../lib/host/locks.js';
import { groupLockKey, snapshotLockKey } from '../../lib/datastore/layout.js';
import { tempDir } from '../helpers/fixtures.js';

/** Runs `p`, aborting `ac` after `afterMs`; resolves to the rejection and how long after the abort it came. */
async function abortDuring(p: (signal: AbortSignal) => Promise<unknown>, afterMs: number): Promise<{ error: unknown; lateMs: number }> {
  const ac = new AbortController();
  let abortedAt = 0;
  const timer = setTimeout(() => {
    abortedAt = performance.now();
    ac.abort(new Error('stop'));
  }, afterMs);
  try {
    await p(ac.signal);
  } catch (error) {
    return { error, lateMs: performance.now() - abortedAt };
  } finally {
    clearTimeout(timer);
  }
  throw new Error('the wait ended without an error');
}

t.test('an abort ends a long wait for a held lock with ERR_ABORTED, and the waiter holds nothing', async (t) => {
  const file = path.join(tempDir(t, 'cairn-lock-abort-'), 'group.lock');
  const held = await acquireLock(file, 'exclusive', { operation: 'holder' });
  const t0 = performance.now();
  const { error, lateMs } = await abortDuring(
    (signal) => acquireLock(file, 'exclusive', { timeoutMs: 30_000, signal, what: 'backup group vm/1', details: { group: 'vm/1' } }),
    400,
  );
  t.match(error, { code: 'ERR_ABORTED', details: { group: 'vm/1', path: file } }, 'ERR_ABORTED with the ids of the lock');
  t.ok(performance.now() - t0 >= 390, 'it waited until the abort');
  t.ok(lateMs < LOCK_WAIT_SLICE_MS + 300, `it ended ${lateMs.toFixed(0)} ms after the abort (slice ${LOCK_WAIT_SLICE_MS} ms)`);
  t.ok(held.held, 'the holder still holds its lock');
  await held.release();
  const again = await acquireLock(file, 'exclusive');
  t.ok(again.held, 'the aborted waiter left no lock behind: the lock is free at once');
  await again.release();
});

t.test('a shared waiter is aborted the same way', async (t) => {
  const file = path.join(tempDir(t, 'cairn-lock-abort-'), 'snapshot.lock');
  const held = await acquireLock(file, 'exclusive');
  t.teardown(() => held.release());
  const { error, lateMs } = await abortDuring((signal) => acquireLock(file, 'shared', { timeoutMs: 30_000, signal }), 250);
  t.match(error, { code: 'ERR_ABORTED' });
  t.ok(lateMs < LOCK_WAIT_SLICE_MS + 300, `ended ${lateMs.toFixed(0)} ms after the abort`);
});

t.test('an already aborted signal fails before any attempt, whether the lock is free or held', async (t) => {
  const file = path.join(tempDir(t, 'cairn-lock-abort-'), 'free.lock');
  const signal = AbortSignal.abort();
  await t.rejects(acquireLock(file, 'exclusive', { signal }), { code: 'ERR_ABORTED' }, 'free lock, no wait');
  await t.rejects(acquireLock(file, 'exclusive', { timeoutMs: 5000, signal }), { code: 'ERR_ABORTED' }, 'free lock, with a wait');
  const l = await acquireLock(file, 'exclusive');
  t.ok(l.held, 'nothing was taken by the refused calls');
  await l.release();
});

t.test('with a signal that does not fire, the sliced wait keeps its timeout and its outcomes', async (t) => {
  const file = path.join(tempDir(t, 'cairn-lock-abort-'), 'timeout.lock');
  const ac = new AbortController();
  const held = await acquireLock(file, 'exclusive');
  const t0 = performance.now();
  await t.rejects(acquireLock(file, 'exclusive', { timeoutMs: 3 * LOCK_WAIT_SLICE_MS + 50, signal: ac.signal }), { code: 'ERR_LOCKED', message: /is locked/ });
  const waited = performance.now() - t0;
  t.ok(waited >= 3 * LOCK_WAIT_SLICE_MS + 40 && waited < 3 * LOCK_WAIT_SLICE_MS + 1000, `the whole timeout, not one slice (${waited.toFixed(0)} ms)`);
  // Released in the middle of the wait: the waiter gets the lock.
  setTimeout(() => void held.release(), 2 * LOCK_WAIT_SLICE_MS + 70);
  const got = await acquireLock(file, 'exclusive', { timeoutMs: 10_000, signal: ac.signal });
  t.ok(got.held, 'a lock released during the wait is taken');
  await got.release();
});

t.test('a backup waiting for its group lock and a reader waiting for a snapshot lock end on abort', async (t) => {
  const dir = tempDir(t, 'cairn-lock-abort-');
  const store = path.join(dir, 'store');
  const ds = await Datastore.create(store, { syncLevel: 'none', threads: 0, lockTimeoutMs: 30_000 });
  t.teardown(() => ds.close());
  const w0 = await ds.group('vm/1').backup({ time: 100 });
  await w0.addBlob('a.conf', 'a');
  const snap = await w0.commit();

  const groupHold = await acquireLock(path.join(store, groupLockKey([], { type: 'vm', id: '1' })), 'exclusive');
  const b = await abortDuring((signal) => ds.group('vm/1').backup({ time: 200, signal }), 300);
  t.match(b.error, { code: 'ERR_ABORTED', details: { group: 'vm/1' } }, 'backup: ERR_ABORTED');
  t.ok(b.lateMs < LOCK_WAIT_SLICE_MS + 300, `backup ended ${b.lateMs.toFixed(0)} ms after the abort`);
  t.same(
    (await readdir(path.join(store, 'vm/1'))).filter((n) => /^\d{4}-/.test(n)),
    [snap.time],
    'no snapshot directory was made',
  );
  t.same(await readdir(path.join(store, '.locks/writers')).catch(() => []), [], 'no writer registered');
  await groupHold.release();
  const w1 = await ds.group('vm/1').backup({ time: 200 });
  await w1.abort();

  const snapHold = await acquireLock(path.join(store, snapshotLockKey([], { type: 'vm', id: '1' }, snap.time)), 'exclusive');
  const r = await abortDuring((signal) => snap.open({ signal }), 300);
  t.match(r.error, { code: 'ERR_ABORTED' }, 'open: ERR_ABORTED');
  t.ok(r.lateMs < LOCK_WAIT_SLICE_MS + 300, `open ended ${r.lateMs.toFixed(0)} ms after the abort`);
  await snapHold.release();
  const reader = await snap.open();
  t.same(
    reader.files.map((f) => f.name),
    snap.files.map((f) => f.name),
    'the snapshot opens once the holder let go',
  );
  await reader.close();
});

import t from 'tap';
import { spawn } from 'node:child_process';
import { closeSync, openSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { isCairnError } from '../../lib/errors.js';
import { nativeAddonPath, nativeAvailable, nativeCdcScan, nativeFlock, nativeFlockWait, nativeSyncfs, type LockMode } from '../../lib/codec/native.js';

interface Raw {
  flock(fd: unknown, op?: unknown): boolean;
  flockWait(fd: unknown, op?: unknown, timeoutMs?: unknown): Promise<boolean>;
  syncfs(fd?: unknown): void;
  cdcScan(data?: unknown, state?: unknown, params?: unknown): number;
}

if (!nativeAvailable()) {
  t.fail('native addon not built: run `npm run build:native` first');
  t.end();
} else {
  const raw = createRequire(import.meta.url)(nativeAddonPath()) as Raw;
  const dir = t.testdir({ lock: '' });
  const file = join(dir, 'lock');
  const open = (): number => openSync(file, 'r+');
  const fds: number[] = [];
  const fresh = (): number => {
    const fd = open();
    fds.push(fd);
    return fd;
  };
  t.teardown(() => {
    for (const fd of fds) {
      try {
        closeSync(fd);
      } catch {
        // already closed by the test
      }
    }
  });

  t.test('two open file descriptions in one process conflict', async (t) => {
    const a = fresh();
    const b = fresh();
    t.equal(nativeFlock(a, 'exclusive'), true);
    t.equal(nativeFlock(b, 'exclusive'), false, 'exclusive vs exclusive');
    t.equal(nativeFlock(b, 'shared'), false, 'exclusive vs shared');
    t.equal(nativeFlock(a, 'exclusive'), true, 're-locking the same description is fine');
    t.equal(nativeFlock(a, 'unlock'), true);
    t.equal(nativeFlock(b, 'exclusive'), true, 'unlock releases');
    t.equal(nativeFlock(b, 'unlock'), true);
  });

  t.test('shared + shared is fine, shared blocks exclusive', async (t) => {
    const a = fresh();
    const b = fresh();
    const c = fresh();
    t.equal(nativeFlock(a, 'shared'), true);
    t.equal(nativeFlock(b, 'shared'), true);
    t.equal(nativeFlock(c, 'exclusive'), false);
    t.equal(nativeFlock(a, 'unlock'), true);
    t.equal(nativeFlock(c, 'exclusive'), false, 'one shared holder left');
    t.equal(nativeFlock(b, 'unlock'), true);
    t.equal(nativeFlock(c, 'exclusive'), true);
    closeSync(c);
    t.equal(nativeFlock(a, 'exclusive'), true, 'close releases');
    nativeFlock(a, 'unlock');
  });

  t.test('flockWait gets the lock when the holder releases it', async (t) => {
    const a = fresh();
    const b = fresh();
    t.equal(nativeFlock(a, 'exclusive'), true);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 5);
    setTimeout(() => nativeFlock(a, 'unlock'), 80);
    const start = performance.now();
    const got = await nativeFlockWait(b, 'exclusive', 5000);
    const elapsed = performance.now() - start;
    clearInterval(timer);
    t.equal(got, true);
    t.ok(elapsed >= 70 && elapsed < 2000, `waited ${elapsed.toFixed(1)} ms`);
    t.ok(ticks >= 5, `the event loop kept running (${ticks} ticks)`);
    t.equal(nativeFlock(a, 'shared'), false, 'b holds it now');
    t.equal(await nativeFlockWait(b, 'unlock', 0), true);
    t.equal(await nativeFlockWait(a, 'shared', 0), true, 'timeout 0: one attempt');
    nativeFlock(a, 'unlock');
  });

  t.test('flockWait returns false after the timeout', async (t) => {
    const a = fresh();
    const b = fresh();
    t.equal(nativeFlock(a, 'shared'), true);
    const start = performance.now();
    t.equal(await nativeFlockWait(b, 'exclusive', 120), false);
    const elapsed = performance.now() - start;
    t.ok(elapsed >= 115 && elapsed < 1500, `gave up after ${elapsed.toFixed(1)} ms`);
    t.equal(await nativeFlockWait(b, 'shared', 0), true, 'shared is still fine');
    t.equal(await nativeFlockWait(b, 'exclusive', 0), false);
    nativeFlock(a, 'unlock');
    nativeFlock(b, 'unlock');
  });

  t.test('a SIGKILLed holder in another process releases the lock', async (t) => {
    const code = `
      const b = require(${JSON.stringify(nativeAddonPath())});
      const fd = require('node:fs').openSync(${JSON.stringify(file)}, 'r+');
      if (!b.flock(fd, 2)) { process.stdout.write('busy\\n'); process.exit(3); }
      process.stdout.write('locked\\n');
      setInterval(() => {}, 1000);
    `;
    const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = once(child, 'exit');
    let out = '';
    child.stdout.setEncoding('utf8');
    while (!out.includes('\n')) {
      const [data] = (await once(child.stdout, 'data')) as [string];
      out += data;
    }
    t.equal(out, 'locked\n');
    const fd = fresh();
    t.equal(nativeFlock(fd, 'shared'), false, 'the child holds it');
    const waiting = nativeFlockWait(fd, 'exclusive', 10_000);
    child.kill('SIGKILL');
    const [, signal] = (await exited) as [number | null, string | null];
    t.equal(signal, 'SIGKILL');
    t.equal(await waiting, true, 'flockWait got it once the child died');
    t.equal(nativeFlock(fd, 'unlock'), true);
  });

  t.test('the addon loads in a worker thread too', async (t) => {
    const w = new Worker(
      `const { parentPort } = require('node:worker_threads');
       const b = require(${JSON.stringify(nativeAddonPath())});
       const fd = require('node:fs').openSync(${JSON.stringify(file)}, 'r+');
       parentPort.postMessage(b.flock(fd, 1) && b.cdcScan(new Uint8Array(70), new Uint32Array(2), Uint32Array.of(64, 64, 64, 0, 0)));`,
      { eval: true },
    );
    const [msg] = (await once(w, 'message')) as [unknown];
    t.equal(msg, 64);
    await w.terminate();
  });

  t.test('syncfs', async (t) => {
    const fd = fresh();
    writeSync(fd, 'hello');
    t.doesNotThrow(() => nativeSyncfs(fd));
    t.equal(raw.syncfs(fd), undefined);
    const closed = open();
    closeSync(closed);
    try {
      nativeSyncfs(closed);
      t.fail('syncfs on a closed fd should throw');
    } catch (e) {
      t.ok(isCairnError(e, 'ERR_IO'));
      t.equal((e as { details?: { syscallCode?: string } }).details?.syscallCode, 'EBADF');
    }
    t.throws(() => raw.syncfs(closed), { code: 'EBADF', errno: -9, syscall: 'syncfs', message: /^EBADF: bad file descriptor, syncfs$/ });
  });

  t.test('system errors become ERR_IO', async (t) => {
    const closed = open();
    closeSync(closed);
    t.throws(() => nativeFlock(closed, 'shared'), { name: 'CairnError', code: 'ERR_IO', details: { syscallCode: 'EBADF', fd: closed } });
    await t.rejects(nativeFlockWait(closed, 'exclusive', 100), { name: 'CairnError', code: 'ERR_IO', details: { syscallCode: 'EBADF' } });
    t.throws(() => raw.flock(closed, 1), { code: 'EBADF', syscall: 'flock' });
    await t.rejects(raw.flockWait(closed, 1, 0), { code: 'EBADF', syscall: 'flock' });
  });

  t.test('bad arguments throw TypeError', async (t) => {
    const fd = fresh();
    const u8 = new Uint8Array(10);
    const st = new Uint32Array(2);
    const pr = Uint32Array.of(64, 64, 64, 0, 0);
    const bad: [string, () => unknown][] = [
      ['flock()', () => raw.flock(undefined)],
      ['flock(fd)', () => raw.flock(fd)],
      ['flock("1", 1)', () => raw.flock('1', 1)],
      ['flock(-1, 1)', () => raw.flock(-1, 1)],
      ['flock(1.5, 1)', () => raw.flock(1.5, 1)],
      ['flock(NaN, 1)', () => raw.flock(Number.NaN, 1)],
      ['flock(2**31, 1)', () => raw.flock(2 ** 31, 1)],
      ['flock(fd, 3)', () => raw.flock(fd, 3)],
      ['flock(fd, "2")', () => raw.flock(fd, '2')],
      ['flockWait(fd, 1)', () => raw.flockWait(fd, 1)],
      ['flockWait(fd, 1, -1)', () => raw.flockWait(fd, 1, -1)],
      ['flockWait(fd, 1, NaN)', () => raw.flockWait(fd, 1, Number.NaN)],
      ['flockWait(fd, 1, "5")', () => raw.flockWait(fd, 1, '5')],
      ['flockWait(fd, 9, 5)', () => raw.flockWait(fd, 9, 5)],
      ['syncfs()', () => raw.syncfs()],
      ['syncfs({})', () => raw.syncfs({})],
      ['cdcScan()', () => raw.cdcScan()],
      ['cdcScan(array)', () => raw.cdcScan([1, 2], st, pr)],
      ['cdcScan(Int8Array)', () => raw.cdcScan(new Int8Array(4), st, pr)],
      ['cdcScan(ArrayBuffer)', () => raw.cdcScan(new ArrayBuffer(4), st, pr)],
      ['cdcScan(state too short)', () => raw.cdcScan(u8, new Uint32Array(1), pr)],
      ['cdcScan(state Int32Array)', () => raw.cdcScan(u8, new Int32Array(2), pr)],
      ['cdcScan(params too short)', () => raw.cdcScan(u8, st, new Uint32Array(4))],
      ['cdcScan(min 0)', () => raw.cdcScan(u8, st, Uint32Array.of(0, 64, 64, 0, 0))],
      ['cdcScan(min > avg)', () => raw.cdcScan(u8, st, Uint32Array.of(128, 64, 256, 0, 0))],
      ['cdcScan(avg > max)', () => raw.cdcScan(u8, st, Uint32Array.of(64, 256, 128, 0, 0))],
      ['cdcScan(chunkLen >= max)', () => raw.cdcScan(u8, Uint32Array.of(64, 0), pr)],
      ['nativeFlock(fd, "bogus")', () => nativeFlock(fd, 'bogus' as LockMode)],
      ['nativeFlock("x", "shared")', () => nativeFlock('x' as unknown as number, 'shared')],
      ['nativeFlockWait(fd, "shared", -5)', () => nativeFlockWait(fd, 'shared', -5)],
      ['nativeSyncfs(-3)', () => nativeSyncfs(-3)],
      ['nativeCdcScan(u8, st, Uint8Array)', () => nativeCdcScan(u8, st, new Uint8Array(5) as unknown as Uint32Array)],
    ];
    for (const [name, fn] of bad) t.throws(fn, TypeError, name);
    t.equal(nativeFlock(fd, 'exclusive'), true, 'the fd still works');
    t.equal(nativeFlock(fd, 'unlock'), true);
  });

  t.test('cdcScan basics', async (t) => {
    const st = new Uint32Array(2);
    const pr = Uint32Array.of(64, 64, 100, 0xffffffff, 0xffffffff);
    t.equal(raw.cdcScan(new Uint8Array(0), st, pr), -1);
    t.equal(raw.cdcScan(new Uint8Array(63), st, pr), -1);
    t.equal(st[0], 63);
    t.equal(raw.cdcScan(Buffer.alloc(50), st, pr), 37, 'cut at max = 100 (masks never match)');
    t.same([...st], [0, 0], 'state reset after a cut');
    t.equal(raw.cdcScan(new Uint8Array(0), Uint32Array.of(99, 0), pr), -1);
    t.equal(raw.cdcScan(new Uint8Array(1), Uint32Array.of(99, 0), pr), 1);
    t.equal(raw.cdcScan(new Uint8Array(5), st, Uint32Array.of(1, 1, 1, 0, 0)), 1, 'min = max = 1');
    t.equal(raw.cdcScan(new Uint8Array(5), st, Uint32Array.of(1, 4, 8, 0, 0)), 1, 'mask 0 cuts at min');
  });
}

t.test('a missing addon gives ERR_NATIVE', async (t) => {
  const createRequire = (): ((id: string) => unknown) => () => {
    throw new Error('Cannot find module cairn_native.node');
  };
  const mocked = await t.mockImport<typeof import('../../lib/codec/native.js')>('../../lib/codec/native.js', {
    'node:module': { createRequire },
  });
  t.equal(mocked.nativeAvailable(), false);
  const expected = {
    name: 'CairnError',
    code: 'ERR_NATIVE',
    message:
      /^cairn's native addon is not built and no prebuilt binary fits linux-x64 \(Cannot find module .*\): in a project that depends on cairn, `npm rebuild cairn --foreground-scripts` builds it from source .*in a clone of cairn, `npm run build:native`$/,
  };
  t.throws(() => mocked.nativeFlock(0, 'shared'), expected);
  t.throws(() => mocked.nativeSyncfs(0), expected);
  t.throws(() => mocked.nativeFlockWait(0, 'shared', 0), expected);
  t.throws(() => mocked.nativeCdcScan(new Uint8Array(1), new Uint32Array(2), new Uint32Array(5)), expected);

  const { Chunker } = await t.mockImport<typeof import('../../lib/codec/chunker.js')>('../../lib/codec/chunker.js', {
    '../../lib/codec/native.js': mocked,
  });
  t.equal(Chunker.contentDefined().scanner, 'js', "'auto' falls back to the TypeScript scan");
  t.throws(() => Chunker.contentDefined({}, { scanner: 'native' }), expected);
});

t.test('other addon failures become ERR_NATIVE', async (t) => {
  const fake = {
    flock: () => {
      throw new Error('weird');
    },
    flockWait: () => Promise.reject(new Error('odd')),
    syncfs: () => {
      throw Object.assign(new Error('EIO: i/o error, syncfs'), { code: 'EIO' });
    },
    cdcScan: () => -1,
  };
  const mocked = await t.mockImport<typeof import('../../lib/codec/native.js')>('../../lib/codec/native.js', {
    'node:module': { createRequire: () => (id: string) => (id === 'node-gyp-build' ? { resolve: () => '/nowhere/cairn.node' } : fake) },
  });
  t.throws(() => mocked.nativeFlock(0, 'shared'), { name: 'CairnError', code: 'ERR_NATIVE', message: 'flock(shared): weird' });
  await t.rejects(mocked.nativeFlockWait(0, 'exclusive', 1), { code: 'ERR_NATIVE', message: 'flock(exclusive): odd' });
  t.throws(() => mocked.nativeSyncfs(3), { code: 'ERR_IO', details: { syscallCode: 'EIO', fd: 3 } });
});

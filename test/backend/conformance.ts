/**
 * The backend conformance suite: every clause of the contract in lib/backend/backend.ts's module
 * comment, run against any {@link Backend}. A backend's test file calls
 * `runConformance(t, 'name', (t) => Promise<Backend>)` (conformance-local.test.ts,
 * conformance-memory.test.ts; an object-store backend adds its own file the same way).
 *
 * `make` returns a fresh, empty backend for one subtest; the suite closes it at the subtest's end.
 */
import { stat as fsStat } from 'node:fs/promises';
import type { Test } from 'tap';
import { localFilesOf, renamingOf, type Backend, type ListEntry } from '../../lib/backend/backend.js';
import { isCairnError, type ErrorCode } from '../../lib/errors.js';
import { seededBytes } from '../helpers/fixtures.js';

/** Makes a fresh, empty backend for one subtest. */
export type MakeBackend = (t: Test) => Promise<Backend>;

/** Modification times may be whole seconds on some storage, and the machine may be loaded. */
const MTIME_SLACK_MS = 5_000;

const bytes = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'utf8'));
const text = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('utf8');
const same = (a: Uint8Array, b: Uint8Array): boolean => Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;

async function rejectsCode(t: Test, p: Promise<unknown>, code: ErrorCode, msg: string): Promise<void> {
  try {
    await p;
    t.fail(`${msg}: expected ${code}, resolved`);
  } catch (e) {
    t.ok(isCairnError(e, code), `${msg}: ${code} (got ${isCairnError(e) ? e.code : String(e)})`);
  }
}

async function collect(it: AsyncIterable<ListEntry>): Promise<ListEntry[]> {
  const out: ListEntry[] = [];
  for await (const e of it) out.push(e);
  return out;
}

async function keysOf(b: Backend, prefix: string): Promise<string[]> {
  return (await collect(b.list(prefix))).map((e) => e.key).sort();
}

/** Runs the whole suite against the backends `make` returns, as subtests of `t` named after `name`. */
export function runConformance(t: Test, name: string, make: MakeBackend): void {
  const fresh = async (t: Test): Promise<Backend> => {
    const b = await make(t);
    t.teardown(() => b.close());
    return b;
  };

  t.test(`${name}: capabilities are declared booleans`, async (t) => {
    const b = await fresh(t);
    t.type(b.location, 'string', 'location');
    t.type(b.locate('a/b'), 'string', 'locate');
    for (const k of ['atomicPut', 'touch', 'localFiles', 'rename'] as const) t.type(b.capabilities[k], 'boolean', k);
  });

  t.test(`${name}: put and get round trip`, async (t) => {
    const b = await fresh(t);
    await b.put('one', bytes('hello'));
    t.equal(text(await b.get('one')), 'hello', 'a single buffer');

    const big = seededBytes(300_001, 7);
    const parts = [new Uint8Array(0), big.subarray(0, 10), new Uint8Array(0), big.subarray(10, 200_000), big.subarray(200_000)];
    await b.put('dir/sub/several', parts);
    t.ok(same(await b.get('dir/sub/several'), big), 'several buffers, in order, empty ones and subarrays included');

    await b.put('empty', new Uint8Array(0));
    t.equal((await b.get('empty')).byteLength, 0, 'an empty value');
    await b.put('empty-list', []);
    t.equal((await b.get('empty-list')).byteLength, 0, 'an empty list of buffers');
    t.equal((await b.stat('empty'))?.size, 0, 'stat of an empty value');

    const five = seededBytes(5 * 1024 * 1024, 11);
    await b.put('a/b/five-mib', five, { sync: true });
    const back = await b.get('a/b/five-mib');
    t.equal(back.byteLength, five.byteLength, '5 MiB: size');
    t.ok(same(back, five), '5 MiB: content (put with sync)');
  });

  t.test(`${name}: put replaces`, async (t) => {
    const b = await fresh(t);
    await b.put('k', seededBytes(10_000, 1));
    await b.put('k', bytes('short'));
    t.equal(text(await b.get('k')), 'short', 'a shorter value leaves nothing of the longer one');
    t.equal((await b.stat('k'))?.size, 5, 'stat sees the new size');
    await b.put('k', [bytes('lo'), bytes('nger value')]);
    t.equal(text(await b.get('k')), 'longer value', 'a longer one');
    t.same(await keysOf(b, ''), ['k'], 'still one key');
  });

  t.test(`${name}: get of a missing key is ERR_NOT_FOUND`, async (t) => {
    const b = await fresh(t);
    await rejectsCode(t, b.get('missing'), 'ERR_NOT_FOUND', 'missing key');
    await rejectsCode(t, b.get('no/such/prefix/key'), 'ERR_NOT_FOUND', 'missing key below a missing prefix');
    await rejectsCode(t, b.get('missing', { offset: 0, length: 4 }), 'ERR_NOT_FOUND', 'a range of a missing key');
    await b.put('x/y', bytes('v'));
    await b.delete('x/y');
    await rejectsCode(t, b.get('x/y'), 'ERR_NOT_FOUND', 'a deleted key');
  });

  t.test(`${name}: ranges`, async (t) => {
    const b = await fresh(t);
    const v = seededBytes(1000, 3);
    await b.put('r', v);
    t.ok(same(await b.get('r', { offset: 100, length: 50 }), v.subarray(100, 150)), 'inside');
    t.ok(same(await b.get('r', { offset: 0, length: 1000 }), v), 'the whole value');
    t.ok(same(await b.get('r', { offset: 900, length: 100 }), v.subarray(900)), 'at the end');
    t.ok(same(await b.get('r', { offset: 950, length: 100 }), v.subarray(950)), 'past the end is cut at the end');
    t.equal((await b.get('r', { offset: 1000, length: 10 })).byteLength, 0, 'starting at the end: empty');
    t.equal((await b.get('r', { offset: 5000, length: 10 })).byteLength, 0, 'starting past the end: empty');
    t.equal((await b.get('r', { offset: 10, length: 0 })).byteLength, 0, 'zero length');
  });

  t.test(`${name}: maxBytes fails with the given code`, async (t) => {
    const b = await fresh(t);
    await b.put('m', seededBytes(1000, 4));
    t.equal((await b.get('m', undefined, { maxBytes: 1000, code: 'ERR_CONFIG_CORRUPT' })).byteLength, 1000, 'exactly maxBytes is read');
    await rejectsCode(t, b.get('m', undefined, { maxBytes: 999, code: 'ERR_CONFIG_CORRUPT' }), 'ERR_CONFIG_CORRUPT', 'whole read over maxBytes: the given code');
    await rejectsCode(t, b.get('m', undefined, { maxBytes: 10 }), 'ERR_IO', 'whole read over maxBytes, no code: ERR_IO');
    await rejectsCode(t, b.get('m', { offset: 0, length: 100 }, { maxBytes: 50, code: 'ERR_INDEX_CORRUPT' }), 'ERR_INDEX_CORRUPT', 'a range longer than maxBytes: the given code');
    t.equal((await b.get('m', { offset: 10, length: 50 }, { maxBytes: 50, code: 'ERR_INDEX_CORRUPT' })).byteLength, 50, 'a range within maxBytes of a larger value is read');
    await rejectsCode(t, b.get('missing', undefined, { maxBytes: 10, code: 'ERR_CONFIG_CORRUPT' }), 'ERR_NOT_FOUND', 'a missing key is still ERR_NOT_FOUND');
  });

  t.test(`${name}: stat`, async (t) => {
    const b = await fresh(t);
    const before = Date.now();
    await b.put('s/t', seededBytes(1234, 5));
    const st = await b.stat('s/t');
    t.ok(st !== undefined, 'found');
    t.equal(st?.size, 1234, 'size');
    t.equal(st?.type, 'file', 'type file');
    t.equal(st?.isDirectory, false, 'not a directory');
    t.ok(st !== undefined && st.mtimeMs >= before - MTIME_SLACK_MS && st.mtimeMs <= Date.now() + MTIME_SLACK_MS, `mtime close to now (${st?.mtimeMs} vs ${before})`);
    t.equal(await b.stat('s/missing'), undefined, 'undefined when missing');
    t.equal(await b.stat('no/such/prefix'), undefined, 'undefined below a missing prefix');
  });

  t.test(`${name}: touch`, async (t) => {
    const b = await fresh(t);
    await b.put('c/k', bytes('v'));
    const when = Math.floor(Date.now() / 1000) * 1000 - 3 * 24 * 3600 * 1000;
    t.equal(await b.touch('c/k', when), true, 'true for an existing key');
    if (b.capabilities.touch) {
      t.equal((await b.stat('c/k'))?.mtimeMs, when, 'stat reports the time set');
      const listed = await collect(b.list('c'));
      t.equal(listed.length, 1);
      t.equal(listed[0]?.mtimeMs, when, 'list reports the time set');
      const later = when + 1000;
      await b.touch('c/k', later);
      t.equal((await b.stat('c/k'))?.mtimeMs, later, 'a second touch moves it again');
    }
    t.equal(text(await b.get('c/k')), 'v', 'the value is unchanged');
    t.equal(await b.touch('c/missing', when), false, 'false for a missing key');
    t.equal(await b.touch('no/such/prefix/key', when), false, 'false below a missing prefix');
    t.equal(await b.stat('c/missing'), undefined, 'touch created nothing');
    t.equal(await b.stat('no/such/prefix/key'), undefined, 'touch created nothing below a missing prefix');
    t.same(await keysOf(b, ''), ['c/k'], 'the listing has only the put key');
  });

  t.test(`${name}: delete`, async (t) => {
    const b = await fresh(t);
    await b.put('d/k', bytes('v'));
    await b.put('d/other', bytes('w'));
    t.equal(await b.delete('d/k'), true, 'true for an existing key');
    t.equal(await b.stat('d/k'), undefined, 'gone');
    t.equal(await b.delete('d/k'), false, 'false the second time');
    t.equal(await b.delete('no/such/prefix/key'), false, 'false below a missing prefix');
    t.same(await keysOf(b, ''), ['d/other'], 'the other key stays');
    await b.put('d/k', bytes('again'));
    t.equal(text(await b.get('d/k')), 'again', 'a deleted key can be put again');
  });

  t.test(`${name}: list`, async (t) => {
    const b = await fresh(t);
    const values: Record<string, number> = { 'a/x': 1, 'a/b/c': 22, 'a/b/d/e/f': 333, 'ab/x': 5, abc: 4, 'abd/y': 6, 'b/a/x': 7, top: 0 };
    for (const [k, n] of Object.entries(values)) await b.put(k, seededBytes(n, n + 1));
    const all = await collect(b.list(''));
    t.same(all.map((e) => e.key).sort(), Object.keys(values).sort(), "'' lists every key, whole keys");
    t.equal(new Set(all.map((e) => e.key)).size, all.length, 'each key once');
    for (const e of all) {
      t.equal(e.size, values[e.key], `size of ${e.key}`);
      const st = await b.stat(e.key);
      t.equal(e.mtimeMs, st?.mtimeMs, `mtime of ${e.key} is stat's`);
    }
    t.same(await keysOf(b, 'a'), ['a/b/c', 'a/b/d/e/f', 'a/x'], "'a': recursive, flat, and not 'ab/x', 'abc' or 'abd/y' (whole components only)");
    t.same(await keysOf(b, 'a/b'), ['a/b/c', 'a/b/d/e/f'], 'a deeper prefix');
    t.same(await keysOf(b, 'a/b/d/e'), ['a/b/d/e/f'], 'a prefix with only a deep key');
    t.same(await keysOf(b, 'ab'), ['ab/x'], "'ab': not 'abc' or 'abd/y'");
    t.same(await keysOf(b, 'b'), ['b/a/x'], "'b' does not yield 'a/…' nor 'ab'");
    t.same(await keysOf(b, 'missing'), [], 'a missing prefix yields nothing');
    t.same(await keysOf(b, 'a/missing/deeper'), [], 'a missing deeper prefix yields nothing');
    const empty = await fresh(t);
    t.same(await keysOf(empty, ''), [], 'an empty backend lists nothing');
  });

  t.test(`${name}: list stops with ERR_ABORTED`, async (t) => {
    const b = await fresh(t);
    for (let i = 0; i < 20; i++) await b.put(`l/${String(i).padStart(2, '0')}`, bytes(String(i)));
    const ac = new AbortController();
    ac.abort();
    await rejectsCode(t, collect(b.list('l', { signal: ac.signal })), 'ERR_ABORTED', 'an aborted signal');
    const mid = new AbortController();
    let seen = 0;
    await rejectsCode(
      t,
      (async () => {
        for await (const _ of b.list('l', { signal: mid.signal })) {
          seen++;
          if (seen === 3) mid.abort();
        }
      })(),
      'ERR_ABORTED',
      'aborted during the listing',
    );
    t.equal(seen, 3, 'nothing yielded after the abort');
  });

  t.test(`${name}: unsafe keys are refused with TypeError`, async (t) => {
    const b = await fresh(t);
    await b.put('ok/key', bytes('v'));
    const bad = ['', '.', '..', '../x', 'a/../b', 'a/..', './a', 'a/./b', 'a//b', '/a', 'a/', '/'];
    for (const k of bad) {
      await t.rejects(b.put(k, bytes('v')), TypeError, `put '${k}'`);
      await t.rejects(b.get(k), TypeError, `get '${k}'`);
      await t.rejects(b.stat(k), TypeError, `stat '${k}'`);
      await t.rejects(b.touch(k, Date.now()), TypeError, `touch '${k}'`);
      await t.rejects(b.delete(k), TypeError, `delete '${k}'`);
      if (k !== '') await t.rejects(collect(b.list(k)), TypeError, `list '${k}'`);
    }
    t.same(await keysOf(b, ''), ['ok/key'], 'nothing written');
  });

  t.test(`${name}: values are copied in and out`, async (t) => {
    const b = await fresh(t);
    const v = bytes('original');
    await b.put('v', v);
    v.fill(0x58);
    t.equal(text(await b.get('v')), 'original', 'changing the buffer after put changes nothing stored');
    const parts = [bytes('ab'), bytes('cd')];
    await b.put('w', parts);
    parts[0]!.fill(0x58);
    parts[1]!.fill(0x58);
    t.equal(text(await b.get('w')), 'abcd', 'nor the buffers of a several-buffer put');
    const got = await b.get('v');
    got.fill(0x59);
    t.equal(text(await b.get('v')), 'original', 'changing the result of get changes nothing stored');
    const part = await b.get('v', { offset: 0, length: 4 });
    part.fill(0x59);
    t.equal(text(await b.get('v')), 'original', 'nor the result of a range get');
  });

  t.test(`${name}: concurrent puts of one key end with one whole value`, async (t) => {
    const b = await fresh(t);
    const n = 8;
    const vals = Array.from({ length: n }, (_, i) => new Uint8Array(64 * 1024 + i * 4096).fill(i + 1));
    const isWhole = (got: Uint8Array): boolean => got.byteLength > 0 && vals.some((v) => v.byteLength === got.byteLength && got.every((x) => x === v[0]));
    await b.put('c', vals[0]!);
    const reads: Promise<Uint8Array>[] = [];
    const puts = vals.map(async (v, i) => {
      await b.put('c', v);
      if (b.capabilities.atomicPut && i % 2 === 0) reads.push(b.get('c'));
    });
    if (b.capabilities.atomicPut) for (let i = 0; i < n; i++) reads.push(b.get('c'));
    await Promise.all(puts);
    const final = await b.get('c');
    t.ok(isWhole(final), `the final value is one of the values, whole (${final.byteLength} bytes)`);
    if (b.capabilities.atomicPut) {
      const seen = await Promise.all(reads);
      t.ok(seen.every(isWhole), `with atomicPut, reads during the puts saw whole values only (${seen.length} reads)`);
    }
    t.same(await keysOf(b, ''), ['c'], 'one key, no leftovers listed');
  });

  t.test(`${name}: capabilities are consistent`, async (t) => {
    const b = await fresh(t);
    const local = localFilesOf(b);
    if (b.capabilities.localFiles) {
      t.equal(local, b, 'localFiles: localFilesOf returns the backend');
      t.type(local?.pathOf, 'function', 'with pathOf');
      await b.put('p/q', bytes('v'));
      const p = local!.pathOf('p/q');
      t.equal((await fsStat(p)).size, 1, 'pathOf names the file holding the key');
      for (const m of ['mkdir', 'rmdir', 'listNames', 'removeTree', 'removeFileDir', 'syncAll'] as const) t.type(local?.[m], 'function', m);
    } else {
      t.equal(local, undefined, 'no localFiles: localFilesOf returns undefined');
    }
    const renaming = renamingOf(b);
    if (b.capabilities.rename) {
      t.equal(renaming, b, 'rename: renamingOf returns the backend');
      // Within existing prefixes: whether a rename makes the target's directories is not promised.
      await b.put('to/other', bytes('o'));
      await b.put('from/k', bytes('one'));
      await renaming!.rename('from/k', 'to/k2');
      t.equal(await b.stat('from/k'), undefined, 'the source key is gone');
      t.equal(text(await b.get('to/k2')), 'one', 'the target key has the value');
      await b.put('from/k', bytes('two'));
      await renaming!.rename('from/k', 'to/k2', { sync: true });
      t.equal(text(await b.get('to/k2')), 'two', 'a rename replaces an existing value');
      t.equal(await b.stat('from/k'), undefined, 'the source is gone again');
      t.equal(text(await b.get('to/other')), 'o', 'other keys are untouched');
      await rejectsCode(t, renaming!.rename('from/missing', 'to/x'), 'ERR_NOT_FOUND', 'renaming a missing key');
    } else {
      t.equal(renaming, undefined, 'no rename: renamingOf returns undefined');
    }
  });

  t.test(`${name}: close`, async (t) => {
    const b = await make(t);
    await b.put('k', bytes('v'));
    await t.resolves(b.close(), 'close resolves');
  });
}

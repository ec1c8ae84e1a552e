import t from 'tap';
import { WorkerPool } from '../../lib/pool/worker-pool.js';
import { buildKnownSet } from '../../lib/pool/known-set.js';
import { blake3, initHash } from '../../lib/codec/hash.js';
import { decodeChunk } from '../../lib/codec/chunk-codec.js';
import { concat, toHex } from '../../lib/util/bytes.js';
import { CairnError, isCairnError } from '../../lib/errors.js';
import { seededBytes } from '../helpers/fixtures.js';

await initHash();

const TEXT = new TextEncoder().encode('the quick brown fox jumps over the lazy dog; '.repeat(6000)); // ~270 KB, compressible
const RANDOM = seededBytes(300_000, 31);
const ZEROS = new Uint8Array(256 * 1024);
const SMALL = new TextEncoder().encode('tiny');

/** A copy with its own ArrayBuffer (what the pool may transfer). */
const own = (u: Uint8Array): Uint8Array => new Uint8Array(u);

async function caught(p: Promise<unknown>): Promise<CairnError> {
  try {
    await p;
  } catch (e) {
    return e as CairnError;
  }
  throw new Error('expected a rejection');
}

const pools = { inline: new WorkerPool({ threads: 0 }), two: new WorkerPool({ threads: 2 }) };
t.teardown(async () => {
  await pools.inline.close();
  await pools.two.close();
});

t.test('options', async (t) => {
  t.equal(pools.inline.threads, 0);
  t.equal(pools.two.threads, 2);
  t.equal(pools.inline.queueSize, 0);
  t.type(pools.two.queueSize, 'number');
  for (const bad of [-1, 1.5, 257, Number.NaN, Number.POSITIVE_INFINITY]) {
    t.throws(() => new WorkerPool({ threads: bad }), { code: 'ERR_INVALID_ARGUMENT' }, `threads ${bad} refused`);
  }
  t.throws(() => new WorkerPool({ threads: '2' as unknown as number }), { code: 'ERR_INVALID_ARGUMENT' }, 'a string is refused');
  const def = new WorkerPool({ idleTimeout: 1000 });
  t.ok(def.threads >= 1, `default threads: ${def.threads}`);
  await def.close();
});

for (const [name, pool] of Object.entries(pools)) {
  t.test(`${name}: encode / decode / hash round trips`, async (t) => {
    for (const [label, data] of [
      ['text', TEXT],
      ['random', RANDOM],
      ['zeros', ZEROS],
      ['small', SMALL],
      ['empty', new Uint8Array(0)],
    ] as const) {
      for (const compress of [true, false]) {
        const enc = await pool.encode(own(data), { compress, known: null });
        t.equal(toHex(enc.digest), toHex(blake3(data)), `${label}/${compress}: digest`);
        t.equal(enc.size, data.byteLength, `${label}/${compress}: size`);
        t.equal(enc.known, false);
        t.equal(enc.zero, label === 'zeros' || label === 'empty', `${label}: zero flag`);
        t.equal(enc.header?.byteLength, 16, 'header');
        const stored = concat([enc.header!, enc.payload!]);
        t.equal(Buffer.compare(decodeChunk(stored, { code: 'ERR_CHUNK_CORRUPT', details: {} }), Buffer.from(data)), 0, `${label}/${compress}: decodes on the main thread`);
        if (!compress) t.equal(enc.payload!.byteLength, data.byteLength, 'stored raw without compression');
        if (compress && label === 'text') t.ok(enc.payload!.byteLength < data.byteLength / 4, 'text compresses');
        if (compress && label === 'zeros') t.ok(enc.payload!.byteLength < 4096, 'zeros compress');
        if (label === 'random') t.equal(enc.payload!.byteLength, data.byteLength, 'random data stays raw');
        const dec = await pool.decode(own(stored), { digest: enc.digest, code: 'ERR_CHUNK_CORRUPT', details: {} });
        t.equal(Buffer.compare(dec, Buffer.from(data)), 0, `${label}/${compress}: pool decode`);
        const dec2 = await pool.decode(own(stored), { digest: null, code: 'ERR_CHUNK_CORRUPT', details: {} });
        t.equal(Buffer.compare(dec2, Buffer.from(data)), 0, `${label}/${compress}: decode without digest check`);
      }
      const h = await pool.hash(own(data));
      t.equal(toHex(h.digest), toHex(blake3(data)), `${label}: hash`);
      t.equal(Buffer.compare(h.data, Buffer.from(data)), 0, `${label}: hash hands the data back`);
    }
  });

  t.test(`${name}: encode accepts a view into a larger buffer (not transferable)`, async (t) => {
    const big = own(TEXT);
    const view = big.subarray(100, 50_100);
    const enc = await pool.encode(view, { compress: true, known: null });
    t.equal(toHex(enc.digest), toHex(blake3(TEXT.subarray(100, 50_100))));
    t.equal(big.byteLength, TEXT.byteLength, 'the parent buffer is not transferred');
    const h = await pool.hash(view);
    t.equal(toHex(h.digest), toHex(enc.digest));
  });

  t.test(`${name}: known set`, async (t) => {
    const a = own(TEXT);
    const b = own(RANDOM);
    const known = buildKnownSet([blake3(TEXT), blake3(ZEROS)]);
    const ka = await pool.encode(a, { compress: true, known });
    t.equal(ka.known, true, 'a known digest');
    t.equal(ka.header, undefined, 'no header');
    t.equal(ka.payload, undefined, 'no payload');
    t.equal(toHex(ka.digest), toHex(blake3(TEXT)));
    t.equal(ka.size, TEXT.byteLength);
    t.equal(ka.zero, false);
    const kz = await pool.encode(own(ZEROS), { compress: true, known });
    t.equal(kz.known, true);
    t.equal(kz.zero, true, 'zero flag also for a known chunk');
    const kb = await pool.encode(b, { compress: true, known });
    t.equal(kb.known, false, 'an unknown digest is encoded');
    t.ok(kb.header && kb.payload);
    const empty = buildKnownSet([]);
    t.equal((await pool.encode(own(TEXT), { compress: true, known: empty })).known, false, 'empty known set');
  });

  t.test(`${name}: decode of a damaged chunk raises a CairnError with code and details`, async (t) => {
    const enc = await pool.encode(own(TEXT), { compress: true, known: null });
    const stored = concat([enc.header!, enc.payload!]);
    const damaged = own(stored);
    damaged[damaged.length - 3]! ^= 0x55;
    const hex = toHex(enc.digest);
    const e = await caught(pool.decode(damaged, { digest: enc.digest, code: 'ERR_CHUNK_CORRUPT', details: { digest: hex, archive: 'disk.img' } }));
    t.ok(e instanceof CairnError, 'a CairnError');
    t.equal(e.code, 'ERR_CHUNK_CORRUPT');
    t.same(e.details, { digest: hex, archive: 'disk.img' }, 'details survive the thread boundary');
    t.match(e.message, hex);

    const blob = await caught(pool.decode(own(stored.subarray(0, 10)), { digest: null, code: 'ERR_BLOB_CORRUPT', details: { path: '/x/y.blob' } }));
    t.equal(blob.code, 'ERR_BLOB_CORRUPT', 'the requested code is used');
    t.equal(blob.details.path, '/x/y.blob');

    const wrong = await caught(pool.decode(own(stored), { digest: blake3(RANDOM), code: 'ERR_CHUNK_CORRUPT', details: {} }));
    t.equal(wrong.code, 'ERR_CHUNK_CORRUPT', 'digest mismatch');
    t.match(wrong.message, hex, 'names the actual digest');

    const notEnvelope = await caught(pool.decode(own(RANDOM), { digest: null, code: 'ERR_MANIFEST_CORRUPT', details: { archive: 'index.json.blob' } }));
    t.equal(notEnvelope.code, 'ERR_MANIFEST_CORRUPT');
    t.equal(notEnvelope.details.archive, 'index.json.blob');
  });

  t.test(`${name}: aborted signal`, async (t) => {
    const sig = AbortSignal.abort(new Error('stop'));
    const data = own(TEXT);
    const e = await caught(pool.encode(data, { compress: true, known: null, signal: sig }));
    t.ok(isCairnError(e, 'ERR_ABORTED'), 'encode');
    t.equal(data.byteLength, TEXT.byteLength, 'an aborted task did not take the buffer');
    t.ok(isCairnError(await caught(pool.decode(own(TEXT), { digest: null, code: 'ERR_CHUNK_CORRUPT', details: {}, signal: sig })), 'ERR_ABORTED'), 'decode');
    t.ok(isCairnError(await caught(pool.hash(own(TEXT), sig)), 'ERR_ABORTED'), 'hash');
    const ok = await pool.encode(own(SMALL), { compress: true, known: null, signal: new AbortController().signal });
    t.equal(ok.size, 4, 'a live signal does not interfere');
  });
}

t.test('inline and threaded pools give identical results', async (t) => {
  const inputs = [TEXT, RANDOM, ZEROS, SMALL, new Uint8Array(0), seededBytes(1 << 20, 32), new Uint8Array(200_000).fill(7)];
  for (const [i, data] of inputs.entries()) {
    for (const compress of [true, false]) {
      const a = await pools.inline.encode(own(data), { compress, known: null });
      const b = await pools.two.encode(own(data), { compress, known: null });
      t.equal(toHex(a.digest), toHex(b.digest), `input ${i}/${compress}: digest`);
      t.equal(a.zero, b.zero);
      t.equal(a.size, b.size);
      t.equal(toHex(a.header!), toHex(b.header!), `input ${i}/${compress}: header`);
      t.equal(Buffer.compare(a.payload!, b.payload!), 0, `input ${i}/${compress}: payload`);
    }
  }
});

t.test('threads > 0: input buffers are transferred; threads 0: they are not', async (t) => {
  const data = own(TEXT);
  await pools.two.encode(data, { compress: true, known: null });
  t.equal(data.byteLength, 0, 'encode transferred the buffer');
  const raw = own(RANDOM);
  const enc = await pools.two.encode(own(RANDOM), { compress: false, known: null });
  const stored = concat([enc.header!, enc.payload!]);
  const dec = await pools.two.decode(stored, { digest: null, code: 'ERR_CHUNK_CORRUPT', details: {} });
  t.equal(stored.byteLength, 0, 'decode transferred the buffer');
  t.equal(Buffer.compare(dec, Buffer.from(raw)), 0);
  const h = own(RANDOM);
  const r = await pools.two.hash(h);
  t.equal(h.byteLength, 0, 'hash transferred the buffer');
  t.equal(r.data.byteLength, RANDOM.byteLength, 'and handed it back');

  const inl = own(TEXT);
  await pools.inline.encode(inl, { compress: true, known: null });
  t.equal(inl.byteLength, TEXT.byteLength, 'inline encode keeps the buffer');
});

t.test('many concurrent tasks on 2 threads', async (t) => {
  const inputs = Array.from({ length: 64 }, (_, i) => seededBytes(10_000 + i * 97, 100 + i));
  const results = await Promise.all(inputs.map((d) => pools.two.encode(own(d), { compress: true, known: null })));
  for (const [i, r] of results.entries()) {
    if (toHex(r.digest) !== toHex(blake3(inputs[i]!))) t.fail(`task ${i}: wrong digest`);
  }
  t.equal(results.length, 64);
});

t.test('close', async (t) => {
  for (const threads of [0, 1]) {
    const pool = new WorkerPool({ threads });
    const pending = pool.encode(own(TEXT), { compress: true, known: null });
    await pool.close();
    t.ok((await pending).digest, `threads ${threads}: a task submitted before close completes`);
    await pool.close();
    t.pass('close is idempotent');
    for (const [op, p] of [
      ['encode', pool.encode(own(SMALL), { compress: true, known: null })],
      ['decode', pool.decode(own(SMALL), { digest: null, code: 'ERR_CHUNK_CORRUPT', details: {} })],
      ['hash', pool.hash(own(SMALL))],
    ] as const) {
      const e = await caught(p);
      t.ok(isCairnError(e, 'ERR_NOT_OPEN'), `threads ${threads}: ${op} after close: ERR_NOT_OPEN`);
    }
  }
  const disposable = new WorkerPool({ threads: 1 });
  await disposable[Symbol.asyncDispose]();
  t.ok(isCairnError(await caught(disposable.hash(own(SMALL))), 'ERR_NOT_OPEN'), 'asyncDispose closes');
});

t.test('aborting a task queued behind a busy worker', async (t) => {
  const pool = new WorkerPool({ threads: 1 });
  t.teardown(() => pool.close());
  const busy = Array.from({ length: 4 }, (_, i) => pool.encode(seededBytes(4 << 20, 200 + i), { compress: true, known: null }));
  const ac = new AbortController();
  const queued = pool.encode(own(TEXT), { compress: true, known: null, signal: ac.signal });
  ac.abort(new Error('changed my mind'));
  const e = await caught(queued);
  t.ok(isCairnError(e, 'ERR_ABORTED'), `code ${e.code}`);
  const done = await Promise.all(busy);
  t.equal(done.length, 4, 'the other tasks finish');
});

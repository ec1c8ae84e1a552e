/**
 * The chunk format travels with every task to the pool's workers (inline and on threads): the
 * worker digests, encodes and decodes in it, and a format it does not know fails on the calling
 * thread with ERR_INVALID_ARGUMENT.
 */
import t from 'tap';
import { WorkerPool } from '../../lib/pool/worker-pool.js';
import { runTask } from '../../lib/pool/tasks.js';
import type { HashResult } from '../../lib/pool/protocol.js';
import { initHash } from '../../lib/codec/hash.js';
import { chunkDigest, type ChunkFormat, decodeChunk, PLAIN_CHUNK_FORMAT } from '../../lib/codec/envelope.js';
import { concat, equalBytes, toHex } from '../../lib/util/bytes.js';
import { isCairnError } from '../../lib/errors.js';

await initHash();

const F = PLAIN_CHUNK_FORMAT;
const BOGUS = { digest: 'blake3-keyed', crypt: 'none' } as unknown as ChunkFormat;
const TEXT = new TextEncoder().encode('a chunk format travels with the task; '.repeat(3000));
const own = (u: Uint8Array): Uint8Array => new Uint8Array(u);

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'none';
  } catch (e) {
    return isCairnError(e) ? e.code : `other: ${String(e)}`;
  }
}

for (const threads of [0, 1]) {
  t.test(`${threads} threads`, async (t) => {
    const pool = new WorkerPool({ threads });
    t.teardown(() => pool.close());
    const expected = chunkDigest(F, TEXT);
    const enc = await pool.encode(own(TEXT), { compress: true, known: null, format: F });
    t.ok(equalBytes(enc.digest, expected), 'encode digests in the format');
    const dflt = await pool.encode(own(TEXT), { compress: true, known: null });
    t.ok(equalBytes(dflt.digest, expected), 'no format: the plain one');
    const stored = concat([enc.header!, enc.payload!]);
    t.ok(equalBytes(decodeChunk(F, stored, { code: 'ERR_CHUNK_CORRUPT', details: {} }), TEXT), 'the main thread decodes what the worker encoded');
    const back = await pool.decode(own(stored), { digest: expected, code: 'ERR_CHUNK_CORRUPT', details: {}, format: F });
    t.ok(equalBytes(back, TEXT), 'decode in the format');
    t.equal(toHex((await pool.hash(own(TEXT), { format: F })).digest), toHex(expected), 'hash with options');
    t.equal(toHex((await pool.hash(own(TEXT), new AbortController().signal)).digest), toHex(expected), 'hash with a signal (the older form)');
    t.equal(toHex((await pool.hash(own(TEXT))).digest), toHex(expected), 'hash with nothing');
    t.equal(await codeOf(pool.encode(own(TEXT), { compress: true, known: null, format: BOGUS })), 'ERR_INVALID_ARGUMENT', 'encode: unknown format');
    t.equal(await codeOf(pool.decode(own(stored), { digest: null, code: 'ERR_CHUNK_CORRUPT', details: {}, format: BOGUS })), 'ERR_INVALID_ARGUMENT', 'decode: unknown format');
    t.equal(
      await codeOf(pool.readDecode('/nonexistent', { digest: null, code: 'ERR_CHUNK_CORRUPT', details: {}, format: BOGUS })),
      'ERR_INVALID_ARGUMENT',
      'readDecode: unknown format',
    );
    t.equal(await codeOf(pool.hash(own(TEXT), { format: BOGUS })), 'ERR_INVALID_ARGUMENT', 'hash: unknown format');
  });
}

t.test('a task with an unknown format is an error result, never a throw', async (t) => {
  const h = runTask({ op: 'hash', format: BOGUS, data: own(TEXT) }).value as HashResult;
  t.equal(h.error?.code, 'ERR_INVALID_ARGUMENT');
  t.equal(h.data.byteLength, TEXT.byteLength, 'the data is handed back');
  const e = runTask({ op: 'encode', format: BOGUS, data: own(TEXT), compress: true, known: null }).value as { error?: { code: string } };
  t.equal(e.error?.code, 'ERR_INVALID_ARGUMENT');
  const d = runTask({ op: 'decode', format: BOGUS, data: own(TEXT), digest: null, code: 'ERR_CHUNK_CORRUPT', details: {} }).value as { error?: { code: string } };
  t.equal(d.error?.code, 'ERR_INVALID_ARGUMENT');
});

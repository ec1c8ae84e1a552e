/**
 * The envelope module (lib/codec/envelope.ts): chunk formats, chunk digests, zero-chunk digests,
 * and the chunk, blob and manifest encoders and decoders. The bytes themselves are pinned by
 * envelope-bytes.test.ts; the header layout by test/format/chunk-envelope.test.ts.
 */
import t from 'tap';
import { CairnError, isCairnError } from '../../lib/errors.js';
import { blake3, DIGEST_SIZE, indexChecksum, initHash } from '../../lib/codec/hash.js';
import {
  checkChunkFormat,
  chunkDigest,
  chunkFormatOf,
  type ChunkFormat,
  decodeBlob,
  decodeChunk,
  decodeManifestEnvelope,
  encodeBlob,
  encodeChunk,
  encodeEnvelopeHeader,
  encodeManifestEnvelope,
  isZeroChunkDigest,
  MAX_RAW_SIZE,
  PLAIN_CHUNK_FORMAT,
  zeroChunkDigest,
} from '../../lib/codec/envelope.js';
import * as legacyCodec from '../../lib/codec/chunk-codec.js';
import { CODEC } from '../../lib/format/magic.js';
import { checkConfig, type DatastoreConfig } from '../../lib/format/config.js';
import { PLAIN_CHUNK_FORMAT as PUBLIC_PLAIN } from '../../lib/index.js';
import { concat, equalBytes, toHex } from '../../lib/util/bytes.js';
import { code } from '../helpers/codes.js';

await initHash();

const F = PLAIN_CHUNK_FORMAT;
const te = new TextEncoder();
const text = te.encode('a blob of text, '.repeat(200));
/** A format the types do not know: what a newer thread or a bad caller could hand over. */
const BOGUS = { digest: 'blake3-keyed', crypt: 'aes-256-gcm' } as unknown as ChunkFormat;

t.test('the plain chunk format', async (t) => {
  t.same(F, { digest: 'blake3', crypt: 'none' });
  t.ok(Object.isFrozen(F), 'frozen: shared by every datastore');
  t.equal(PUBLIC_PLAIN, F, 'exported from lib/index.ts');
  const config: DatastoreConfig = checkConfig({
    format: 'cairn-datastore',
    version: 1,
    uuid: '123e4567-e89b-42d3-a456-426614174000',
    created: '2026-01-02T03:04:05Z',
    imageChunkSize: 4 * 1024 * 1024,
    cdc: { min: 65536, avg: 262144, max: 1048576 },
    syncLevel: 'none',
  });
  t.equal(chunkFormatOf(config), F, 'a version 1 config has plain chunks');
  t.equal(checkChunkFormat(F), F);
  t.equal(checkChunkFormat(structuredClone(F)).digest, 'blake3', 'a format that crossed a thread boundary passes');
  for (const bad of [BOGUS, null, undefined, 'blake3', {}, { digest: 'blake3' }, { digest: 'blake3', crypt: 'aes' }]) {
    t.equal(
      code(() => checkChunkFormat(bad)),
      'ERR_INVALID_ARGUMENT',
      `refused: ${JSON.stringify(bad)}`,
    );
  }
});

t.test('chunkDigest: BLAKE3 of the plaintext in the plain format; unknown formats refused', async (t) => {
  for (const data of [new Uint8Array(0), text, new Uint8Array(1 << 20).fill(7)]) {
    const d = chunkDigest(F, data);
    t.equal(d.length, DIGEST_SIZE);
    t.ok(equalBytes(d, blake3(data)), `${data.length} bytes`);
    t.equal(d.byteOffset, 0);
    t.equal(d.buffer.byteLength, DIGEST_SIZE, 'a fresh, transferable buffer');
  }
  t.equal(
    code(() => chunkDigest(BOGUS, text)),
    'ERR_INVALID_ARGUMENT',
  );
  t.ok(equalBytes(indexChecksum(text), blake3(text)), 'indexChecksum is unkeyed BLAKE3');
});

t.test('zero chunks are recognised by the digest in the chunk format', async (t) => {
  for (const size of [0, 1, 4096, 65536, 1 << 20]) {
    const z = zeroChunkDigest(F, size);
    t.ok(equalBytes(z, chunkDigest(F, new Uint8Array(size))), `size ${size}`);
    t.equal(zeroChunkDigest(F, size), z, 'cached');
    t.ok(isZeroChunkDigest(F, chunkDigest(F, new Uint8Array(size)), size));
    t.notOk(isZeroChunkDigest(F, chunkDigest(F, new Uint8Array(size + 1)), size), 'another size is not it');
  }
  const one = new Uint8Array(4096);
  one[4095] = 1;
  t.notOk(isZeroChunkDigest(F, chunkDigest(F, one), 4096), 'one non-zero byte');
  t.not(toHex(zeroChunkDigest(F, 1)), toHex(zeroChunkDigest(F, 2)));
  // The cache is per format object: a copy of the format computes (and caches) its own.
  const copy = { ...F };
  t.ok(equalBytes(zeroChunkDigest(copy, 4096), zeroChunkDigest(F, 4096)));
  t.not(zeroChunkDigest(copy, 4096), zeroChunkDigest(F, 4096));
  // Many sizes: the per-format cache stays small and stays right.
  for (let s = 1; s < 40; s++) t.ok(equalBytes(zeroChunkDigest(F, s), blake3(new Uint8Array(s))), `size ${s} after evictions`);
  t.equal(
    code(() => zeroChunkDigest(F, -1)),
    'ERR_INVALID_ARGUMENT',
  );
  t.equal(
    code(() => zeroChunkDigest(F, MAX_RAW_SIZE + 1)),
    'ERR_INVALID_ARGUMENT',
  );
  t.equal(
    code(() => zeroChunkDigest(BOGUS, 10)),
    'ERR_INVALID_ARGUMENT',
  );
});

t.test('chunks: encode, decode, digest check; unknown formats refused', async (t) => {
  const enc = encodeChunk(F, text, { compress: true });
  t.ok(enc.compressed);
  t.ok(equalBytes(enc.digest, chunkDigest(F, text)));
  const file = concat([enc.header, enc.payload]);
  t.ok(equalBytes(decodeChunk(F, file, { code: 'ERR_CHUNK_CORRUPT', details: {}, expectDigest: enc.digest }), text));
  const plain = encodeChunk(F, text, { compress: false });
  t.equal(plain.payload, text, 'uncompressed: the payload is the input, not a copy');
  const stored = concat([plain.header, plain.payload]);
  const out = decodeChunk(F, stored, { code: 'ERR_CHUNK_CORRUPT', details: {} });
  t.equal(out.buffer, stored.buffer, 'decoded uncompressed: a view of the stored bytes, not a copy');
  const given = encodeChunk(F, text, { compress: false, digest: new Uint8Array(32).fill(1) });
  t.same([...given.digest], new Array(32).fill(1), 'a given digest is used as is');
  t.equal(
    code(() => encodeChunk(F, text, { compress: false, digest: new Uint8Array(31) })),
    'ERR_INVALID_ARGUMENT',
  );
  t.equal(
    code(() => encodeChunk(BOGUS, text, { compress: true })),
    'ERR_INVALID_ARGUMENT',
  );
  t.equal(
    code(() => decodeChunk(BOGUS, file, { code: 'ERR_CHUNK_CORRUPT', details: {} })),
    'ERR_INVALID_ARGUMENT',
  );
  const wrong = new Uint8Array(32);
  try {
    decodeChunk(F, file, { code: 'ERR_CHUNK_CORRUPT', details: { digest: 'cd' }, expectDigest: wrong });
    t.fail('no throw');
  } catch (e) {
    t.ok(isCairnError(e, 'ERR_CHUNK_CORRUPT'));
    t.equal((e as Error).message, `chunk cd is corrupt: content digest is ${toHex(enc.digest)}, expected ${toHex(wrong)}`);
  }
});

t.test('the older entry points are the same code in the plain format', async (t) => {
  const a = legacyCodec.encodeChunk(text, { compress: true });
  const b = encodeChunk(F, text, { compress: true });
  t.same([...a.header], [...b.header]);
  t.same([...a.payload], [...b.payload]);
  t.same([...a.digest], [...b.digest]);
  t.ok(equalBytes(legacyCodec.decodeChunk(concat([a.header, a.payload]), { code: 'ERR_CHUNK_CORRUPT', details: {}, expectDigest: a.digest }), text));
});

t.test('blobs: encoded as a chunk with compression tried; decoded against the manifest', async (t) => {
  for (const raw of [text, te.encode('x'), new Uint8Array(0)]) {
    const enc = encodeBlob(F, raw);
    const same = encodeChunk(F, raw, { compress: true });
    t.same([...concat([enc.header, enc.payload])], [...concat([same.header, same.payload])], `${raw.length} bytes: as a compressed chunk`);
    t.ok(equalBytes(enc.digest, chunkDigest(F, raw)), 'its checksum is the chunk digest');
    const file = concat([enc.header, enc.payload]);
    t.ok(equalBytes(decodeBlob(F, file, { details: {}, expectSize: raw.length, expectDigest: enc.digest }), raw));
    t.ok(equalBytes(decodeBlob(F, file, { details: {} }), raw), 'nothing to check against');
  }
  const enc = encodeBlob(F, text);
  const file = concat([enc.header, enc.payload]);
  const details = { path: '/s/conf.blob' };
  const err = (f: () => unknown): CairnError => {
    try {
      f();
    } catch (e) {
      return e as CairnError;
    }
    throw new Error('no throw');
  };
  const size = err(() => decodeBlob(F, file, { details, subject: "blob 'conf.blob' of vm/1/T", expectSize: 5 }));
  t.equal(size.code, 'ERR_BLOB_CORRUPT');
  t.equal(size.message, `blob 'conf.blob' of vm/1/T is corrupt: it holds ${text.length} bytes, the manifest says 5`);
  t.same(size.details, details);
  const digest = err(() => decodeBlob(F, file, { details, expectDigest: new Uint8Array(32) }));
  t.equal(digest.code, 'ERR_BLOB_CORRUPT');
  t.match(digest.message, /^blob \/s\/conf\.blob is corrupt: content digest is /);
  const damaged = Uint8Array.from(file);
  damaged[20] = damaged[20]! ^ 1;
  t.equal(
    code(() => decodeBlob(F, damaged, { details })),
    'ERR_BLOB_CORRUPT',
    'CRC',
  );
  const payload = Uint8Array.from([100, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 1, 2, 3]);
  const badLz4 = concat([encodeEnvelopeHeader({ codec: CODEC.lz4, rawSize: 100, payload }), payload]);
  const lz = err(() => decodeBlob(F, badLz4, { details, subject: "blob 'b' of x" }));
  t.equal(lz.code, 'ERR_BLOB_CORRUPT');
  t.match(lz.message, /^blob 'b' of x is corrupt: /);
  t.equal(
    code(() => encodeBlob(BOGUS, text)),
    'ERR_INVALID_ARGUMENT',
  );
  t.equal(
    code(() => decodeBlob(BOGUS, file, { details })),
    'ERR_INVALID_ARGUMENT',
  );
});

t.test('manifests: compressed when smaller, no digest, ERR_MANIFEST_CORRUPT', async (t) => {
  const json = te.encode(JSON.stringify({ files: [], note: 'n'.repeat(300) }));
  const file = encodeManifestEnvelope(json);
  t.ok(file.length < json.length, 'compressed');
  const chunk = encodeChunk(F, json, { compress: true });
  t.same([...file], [...concat([chunk.header, chunk.payload])], 'the same envelope a compressed chunk gets');
  t.ok(equalBytes(decodeManifestEnvelope(file, { details: {} }), json));
  const short = te.encode('{}');
  t.ok(equalBytes(decodeManifestEnvelope(encodeManifestEnvelope(short), { details: {} }), short), 'stored raw when LZ4 does not help');
  const damaged = Uint8Array.from(file);
  damaged[0] = 0;
  t.equal(
    code(() => decodeManifestEnvelope(damaged, { details: {} })),
    'ERR_MANIFEST_CORRUPT',
  );
  const payload = Uint8Array.from([100, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 1, 2, 3]);
  const badLz4 = concat([encodeEnvelopeHeader({ codec: CODEC.lz4, rawSize: 100, payload }), payload]);
  try {
    decodeManifestEnvelope(badLz4, { details: { snapshot: 's' }, subject: 'manifest s' });
    t.fail('no throw');
  } catch (e) {
    t.ok(isCairnError(e, 'ERR_MANIFEST_CORRUPT'));
    t.match((e as Error).message, /^manifest s is corrupt: /);
    t.same((e as CairnError).details, { snapshot: 's' });
  }
});

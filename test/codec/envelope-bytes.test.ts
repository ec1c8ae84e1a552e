/**
 * Pins the exact bytes of stored chunk, blob and manifest envelopes, captured from the encoders
 * before the envelope code was gathered into one module: whatever moves inside lib/, these bytes
 * must not change (lib/format/FORMAT.md §1).
 */
import t from 'tap';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { initHash } from '../../lib/codec/hash.js';
import { encodeChunk } from '../../lib/codec/chunk-codec.js';
import * as envelope from '../../lib/codec/envelope.js';
import { decodeManifest, encodeManifest, type Manifest } from '../../lib/format/manifest.js';
import { Datastore } from '../../lib/index.js';
import { concat, toHex } from '../../lib/util/bytes.js';
import { tempDir } from '../helpers/fixtures.js';

await initHash();

const te = new TextEncoder();

/** Chunks: [name, raw, digest, stored bytes with compress on]. */
const CHUNKS: [string, Uint8Array, string, string][] = [
  [
    'compressible',
    te.encode('cairn '.repeat(20)),
    '248e232e7807749668c9f4e33cfad0bfa99b1439bea27015eef5d55d8bb87f7d',
    '43524e450101010078000000ea69749a780000006f636169726e2006005960636169726e20',
  ],
  [
    'incompressible',
    te.encode('cairn envelope'),
    '7c53f1d309e0bf196549067cf852c78c6d583e13c34ff4204260e22cb082326b',
    '43524e45010000000e000000247cbf43636169726e20656e76656c6f7065',
  ],
  ['empty', new Uint8Array(0), 'af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262', '43524e45010000000000000000000000'],
];

/** The compressible chunk stored without compression. */
const UNCOMPRESSED = '43524e450100000078000000237dac77' + '636169726e20'.repeat(20);

const BLOBS: [string, string, string, string][] = [
  [
    'conf',
    'memory: 2048\n'.repeat(3),
    '917d45242b17c6a67fe66254de2286ba13c4fd703e8b97ac0edb8908f9f311a9',
    '43524e4501010100270000009b47bedb27000000df6d656d6f72793a20323034380a0d00016020323034380a',
  ],
  ['tiny', 'x', '3ae7d805f6789a6402acb70ad4096a85a56bf6804eaf25c0493ac697548d30b5', '43524e4501000000010000008316dc8c78'],
];

const MANIFEST_JSON =
  '{"files":[{"checksum":"917d45242b17c6a67fe66254de2286ba13c4fd703e8b97ac0edb8908f9f311a9","crypt":"none","kind":"blob","name":"conf.blob","size":39},{"checksum":"3ae7d805f6789a6402acb70ad4096a85a56bf6804eaf25c0493ac697548d30b5","crypt":"none","kind":"blob","name":"tiny.blob","size":1}],"format":"cairn-manifest","id":"1","namespace":"","time":"1970-01-01T00:16:40Z","type":"ct","unprotected":{"stats":{"bytes":40,"bytesStored":61}},"version":1}';
const MANIFEST_BYTES =
  '43524e4501010100bc0100008633ab32bc010000f9857b2266696c6573223a5b7b22636865636b73756d223a2239313764343532343262313763366136376665363632353464653232383662613133633466643730336538623937616330656462383930386639663331316139222c226372797074223a226e6f6e65222c226b696e64223a22626c6f62222c226e616d65223a22636f6e662e626c6f62222c2273697a65223a33397d2c8a00ff31336165376438303566363738396136343032616362373061643430393661383561353662663638303465616632356330343933616336393735343864333062358a00144a74696e798a00f02b317d5d2c22666f726d6174223a22636169726e2d6d616e6966657374222c226964223a2231222c226e616d657370616365223a22222c2274696d0a00f005313937302d30312d30315430303a31363a34305a1e002079701e0010634200f005756e70726f746563746564223a7b22737461747309003062797491013234302c0b004053746f722300f00236317d7d2c2276657273696f6e223a317d';

t.test('chunk envelopes: digest and stored bytes', async (t) => {
  for (const [name, raw, digest, bytes] of CHUNKS) {
    const e = encodeChunk(raw, { compress: true });
    t.equal(toHex(e.digest), digest, `${name}: digest`);
    t.equal(toHex(concat([e.header, e.payload])), bytes, `${name}: bytes`);
  }
  const plain = encodeChunk(CHUNKS[0]![1], { compress: false });
  t.equal(toHex(concat([plain.header, plain.payload])), UNCOMPRESSED, 'compress off: stored raw');
});

t.test('manifest envelope', async (t) => {
  const m = JSON.parse(MANIFEST_JSON) as Manifest;
  t.equal(toHex(encodeManifest(m)), MANIFEST_BYTES);
  t.same(decodeManifest(Buffer.from(MANIFEST_BYTES, 'hex')), m, 'the pinned bytes decode to the manifest');
});

t.test('the envelope module writes the pinned bytes in the plain chunk format', async (t) => {
  const F = envelope.PLAIN_CHUNK_FORMAT;
  for (const [name, raw, digest, bytes] of CHUNKS) {
    const e = envelope.encodeChunk(F, raw, { compress: true });
    t.equal(toHex(e.digest), digest, `${name}: digest`);
    t.equal(toHex(envelope.chunkDigest(F, raw)), digest, `${name}: chunkDigest`);
    t.equal(toHex(concat([e.header, e.payload])), bytes, `${name}: bytes`);
    const back = envelope.decodeChunk(F, Buffer.from(bytes, 'hex'), { code: 'ERR_CHUNK_CORRUPT', details: {}, expectDigest: e.digest });
    t.equal(toHex(back), toHex(raw), `${name}: decodes`);
  }
  for (const [name, text, checksum, bytes] of BLOBS) {
    const e = envelope.encodeBlob(F, te.encode(text));
    t.equal(toHex(concat([e.header, e.payload])), bytes, `${name}.blob bytes`);
    t.equal(toHex(e.digest), checksum, `${name}: checksum`);
    const back = envelope.decodeBlob(F, Buffer.from(bytes, 'hex'), { details: {}, expectSize: text.length, expectDigest: e.digest });
    t.equal(Buffer.from(back).toString(), text, `${name}: decodes`);
  }
  t.equal(toHex(envelope.encodeManifestEnvelope(te.encode(MANIFEST_JSON))), MANIFEST_BYTES, 'manifest envelope');
  t.equal(Buffer.from(envelope.decodeManifestEnvelope(Buffer.from(MANIFEST_BYTES, 'hex'), { details: {} })).toString(), MANIFEST_JSON);
});

t.test('blob files and manifest as a snapshot writes them', async (t) => {
  const dir = tempDir(t, 'cairn-pin-');
  const ds = await Datastore.create(path.join(dir, 'store'), { syncLevel: 'none', threads: 0 });
  t.teardown(() => ds.close());
  const w = await ds.group('ct/1').backup({ time: 1000 });
  for (const [name, text] of BLOBS) await w.addBlob(name, text);
  // A one-chunk image: its chunk goes through the worker pool's encode and the chunk store.
  const img = path.join(dir, 'disk.raw');
  await fsp.writeFile(img, CHUNKS[0]![1]);
  await w.addImage('disk', img);
  const s = await w.commit();
  const snapDir = path.join(ds.root, 'ct', '1', s.time);
  for (const [name, text, checksum, bytes] of BLOBS) {
    t.equal(toHex(await fsp.readFile(path.join(snapDir, `${name}.blob`))), bytes, `${name}.blob bytes`);
    t.equal(s.manifest.files.find((f) => f.name === `${name}.blob`)?.checksum, checksum, `${name}: manifest checksum`);
    const reader = await s.open();
    t.equal(Buffer.from(await reader.readBlob(name)).toString(), text, `${name}: reads back`);
    await reader.close();
  }
  const [, , digest, bytes] = CHUNKS[0]!;
  t.equal(toHex(await fsp.readFile(path.join(ds.root, '.chunks', digest.slice(0, 2), digest))), bytes, 'the image chunk file');
  const withoutImage = { ...s.manifest, files: s.manifest.files.filter((f) => f.kind === 'blob'), unprotected: {} };
  t.same(withoutImage, { ...(JSON.parse(MANIFEST_JSON) as Manifest), unprotected: {} }, 'the blob entries are the pinned ones');
});

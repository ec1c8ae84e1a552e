import t from 'tap';
import fc from 'fast-check';
import { CairnError, type ErrorCode } from '../../lib/errors.js';
import { initHash } from '../../lib/codec/hash.js';
import { lz4Compress } from '../../lib/codec/compress.js';
import { encodeEnvelopeHeader, parseEnvelope } from '../../lib/codec/envelope.js';
import { CODEC } from '../../lib/format/magic.js';
import { canonicalJson, checkManifest, decodeManifest, encodeManifest, type Manifest, manifestSignedPart } from '../../lib/format/manifest.js';
import { concat } from '../../lib/util/bytes.js';
import { code } from '../helpers/codes.js';

await initHash();

const H = 'ab'.repeat(32);
const base = (): Manifest => ({
  format: 'cairn-manifest',
  version: 1,
  namespace: 'site-a/prod',
  type: 'vm',
  id: '100',
  time: '2026-01-02T03:04:05Z',
  files: [
    { name: 'root.tree', kind: 'tree', size: 10, checksum: H, crypt: 'none' },
    { name: 'disk.img', kind: 'image', size: 4 << 20, checksum: H, crypt: 'none', chunkSize: 4 << 20 },
    { name: 'vm.conf.blob', kind: 'blob', size: 0, checksum: H, crypt: 'none' },
  ],
  unprotected: { verify: { state: 'ok', time: '2026-01-03T00:00:00Z', run: 'r1' }, notes: 'hi', stats: { chunks: 3, ratio: 0.5 }, extra: { a: [1, null] } },
});

/** An envelope around arbitrary text (codec none). */
function wrap(text: string): Uint8Array {
  const raw = new TextEncoder().encode(text);
  return concat([encodeEnvelopeHeader({ codec: CODEC.none, rawSize: raw.length, payload: raw }), raw]);
}

t.test('canonicalJson', async (t) => {
  t.equal(canonicalJson({ b: 1, a: [true, false, null, 'x"y'], c: { z: 1, y: -0.5 } }), '{"a":[true,false,null,"x\\"y"],"b":1,"c":{"y":-0.5,"z":1}}');
  t.equal(canonicalJson({ b: undefined, a: 1 }), '{"a":1}');
  t.equal(canonicalJson(Object.create(null) as object), '{}');
  t.equal(canonicalJson({ B: 1, a: 2, é: 3, _: 4 }), '{"B":1,"_":4,"a":2,"é":3}');
  t.equal(canonicalJson('\u2028'), JSON.stringify('\u2028'));
  t.equal(canonicalJson(1e21), '1e+21');
  for (const bad of [undefined, NaN, Infinity, 1n, () => 1, Symbol('x'), new Date(0), new Uint8Array(1), [undefined]]) {
    t.throws(() => canonicalJson(bad), TypeError);
  }
  const cyc: Record<string, unknown> = {};
  cyc['self'] = cyc;
  t.throws(() => canonicalJson(cyc), TypeError);
  fc.assert(
    fc.property(fc.jsonValue(), (v) => {
      const s = canonicalJson(v);
      t.equal(canonicalJson(JSON.parse(s)), s);
    }),
    { numRuns: 200 },
  );
});

t.test('round trip', async (t) => {
  const m = base();
  const bytes = encodeManifest(m);
  const d = decodeManifest(bytes, { snapshot: 'vm/100/2026-01-02T03:04:05Z' });
  t.same(
    d.files.map((f) => f.name),
    ['disk.img', 'root.tree', 'vm.conf.blob'],
    'files sorted',
  );
  t.same(d, { ...m, files: [m.files[1], m.files[0], m.files[2]] });
  t.same(encodeManifest(d), bytes, 'deterministic');
  t.equal(m.files[0]!.name, 'root.tree', 'input not modified');
  const root = { ...base(), namespace: '', unprotected: {} };
  t.same(decodeManifest(encodeManifest(root)), checkManifest(root));
  // large manifests get compressed
  const big = base();
  big.files = Array.from({ length: 200 }, (_, i) => ({ name: `f${String(i).padStart(4, '0')}.blob`, kind: 'blob' as const, size: i, checksum: H, crypt: 'none' as const }));
  const bb = encodeManifest(big);
  t.equal(parseEnvelope(bb, { code: 'ERR_MANIFEST_CORRUPT', details: {} }).codec, CODEC.lz4);
  t.same(decodeManifest(bb), big);
  // even a small manifest compresses (repeated keys)
  t.equal(parseEnvelope(encodeManifest(root), { code: 'ERR_MANIFEST_CORRUPT', details: {} }).codec, CODEC.lz4, 'also json repeats compress');
});

t.test('signed part excludes unprotected', async (t) => {
  const a = base();
  const b = { ...base(), unprotected: { notes: 'changed' } };
  t.equal(manifestSignedPart(a), manifestSignedPart(b));
  t.notMatch(manifestSignedPart(a), /unprotected/);
  t.match(manifestSignedPart(a), /^\{"files":\[\{"checksum"/);
  const c = base();
  c.id = '101';
  t.not(manifestSignedPart(a), manifestSignedPart(c));
});

t.test('encode validates', async (t) => {
  const bad: [string, (m: Manifest) => void][] = [
    ['duplicate names', (m) => m.files.push({ ...m.files[0]! })],
    ['bad checksum', (m) => (m.files[0]!.checksum = 'AB'.repeat(32))],
    ['function in unprotected', (m) => (m.unprotected['f'] = () => 1)],
    ['bigint in unprotected', (m) => (m.unprotected['f'] = 1n)],
  ];
  for (const [name, f] of bad) {
    const m = base();
    f(m);
    t.equal(
      code(() => encodeManifest(m)),
      'ERR_INVALID_ARGUMENT',
      name,
    );
  }
  t.equal(
    code(() => manifestSignedPart({ ...base(), id: '' })),
    'ERR_INVALID_ARGUMENT',
  );
  t.equal(
    code(() => checkManifest(null as unknown as Manifest)),
    'ERR_INVALID_ARGUMENT',
  );
});

t.test('schema violations are ERR_MANIFEST_CORRUPT', async (t) => {
  const mut: [string, (m: Record<string, any>) => void, ErrorCode?][] = [
    [
      'not an object',
      (m) => {
        m['__replace'] = [1];
      },
    ],
    ['format', (m) => (m['format'] = 'cairn-manifesto')],
    ['version 0', (m) => (m['version'] = 0)],
    ['version string', (m) => (m['version'] = '1')],
    ['version 1.5', (m) => (m['version'] = 1.5)],
    ['version 2', (m) => ((m['version'] = 2), (m['newField'] = 1)), 'ERR_FORMAT_VERSION'],
    ['unknown top key', (m) => (m['extra'] = 1)],
    ['namespace type', (m) => (m['namespace'] = 5)],
    ['namespace bad', (m) => (m['namespace'] = 'a//b')],
    ['namespace deep', (m) => (m['namespace'] = 'a/b/c/d/e/f/g/h')],
    ['namespace dotdot', (m) => (m['namespace'] = '..')],
    ['type', (m) => (m['type'] = 'lxc')],
    ['type number', (m) => (m['type'] = 1)],
    ['id empty', (m) => (m['id'] = '')],
    ['id slash', (m) => (m['id'] = 'a/b')],
    ['id long', (m) => (m['id'] = 'a'.repeat(129))],
    ['time format', (m) => (m['time'] = '2026-01-02 03:04:05Z')],
    ['time millis', (m) => (m['time'] = '2026-01-02T03:04:05.000Z')],
    ['time invalid date', (m) => (m['time'] = '2026-02-30T03:04:05Z')],
    ['time number', (m) => (m['time'] = 5)],
    ['files not array', (m) => (m['files'] = {})],
    ['file not object', (m) => (m['files'][0] = 'x')],
    ['file unknown key', (m) => (m['files'][0].x = 1)],
    ['file name', (m) => (m['files'][0].name = '.hidden')],
    ['file name missing', (m) => delete m['files'][0].name],
    ['files unsorted', (m) => m['files'].reverse()],
    ['files duplicate', (m) => (m['files'][1].name = m['files'][0].name)],
    ['kind', (m) => (m['files'][0].kind = 'disk')],
    ['size negative', (m) => (m['files'][0].size = -1)],
    ['size fraction', (m) => (m['files'][0].size = 1.5)],
    ['size huge', (m) => (m['files'][0].size = 2 ** 60)],
    ['size string', (m) => (m['files'][0].size = '1')],
    ['checksum short', (m) => (m['files'][0].checksum = 'ab')],
    ['checksum type', (m) => (m['files'][0].checksum = 1)],
    ['crypt', (m) => (m['files'][0].crypt = 'aes')],
    ['chunkSize bad', (m) => (m['files'][0].chunkSize = 1000)],
    ['chunkSize string', (m) => (m['files'][0].chunkSize = '4096')],
    ['chunkSize on tree', (m) => (m['files'][1].chunkSize = 4096)],
    ['unprotected missing', (m) => delete m['unprotected']],
    ['unprotected array', (m) => (m['unprotected'] = [])],
    ['verify not object', (m) => (m['unprotected'].verify = 'ok')],
    ['verify unknown key', (m) => (m['unprotected'].verify.x = 1)],
    ['verify state', (m) => (m['unprotected'].verify.state = 'good')],
    ['verify time', (m) => (m['unprotected'].verify.time = 'yesterday')],
    ['verify run', (m) => (m['unprotected'].verify.run = 5)],
    ['notes', (m) => (m['unprotected'].notes = 5)],
    ['stats not object', (m) => (m['unprotected'].stats = [1])],
    ['stats value', (m) => (m['unprotected'].stats.x = 'big')],
  ];
  const details = { snapshot: 'vm/100/x' };
  for (const [name, f, want = 'ERR_MANIFEST_CORRUPT'] of mut) {
    const m = JSON.parse(JSON.stringify(checkManifest(base()))) as Record<string, any>;
    f(m);
    const text = '__replace' in m ? JSON.stringify(m['__replace']) : JSON.stringify(m);
    try {
      decodeManifest(wrap(text), details);
      t.fail(`${name}: accepted`);
    } catch (e) {
      t.ok(e instanceof CairnError, `${name}: CairnError`);
      t.equal((e as CairnError).code, want, `${name}: ${(e as Error).message}`);
      t.match((e as Error).message, /manifest vm\/100\/x/);
      t.equal((e as CairnError).details, details);
    }
  }
  t.equal(
    code(() => decodeManifest(wrap(JSON.stringify({ ...checkManifest(base()), version: 2 })))),
    'ERR_FORMAT_VERSION',
  );
});

t.test('damaged files', async (t) => {
  const good = encodeManifest(base());
  const cases: [string, Uint8Array, ErrorCode][] = [
    ['empty', new Uint8Array(0), 'ERR_MANIFEST_CORRUPT'],
    ['truncated', good.subarray(0, good.length - 3), 'ERR_MANIFEST_CORRUPT'],
    ['flipped', Uint8Array.from(good, (x, i) => (i === 30 ? x ^ 1 : x)), 'ERR_MANIFEST_CORRUPT'],
    ['envelope version', Uint8Array.from(good, (x, i) => (i === 4 ? 2 : x)), 'ERR_FORMAT_VERSION'],
    ['not json', wrap('{"format": '), 'ERR_MANIFEST_CORRUPT'],
    ['empty json', wrap(''), 'ERR_MANIFEST_CORRUPT'],
    ['bom', wrap('\ufeff' + JSON.stringify(checkManifest(base()))), 'ERR_MANIFEST_CORRUPT'],
  ];
  const badUtf8 = Uint8Array.from([0x22, 0xff, 0xfe, 0x22]);
  cases.push(['bad utf-8', concat([encodeEnvelopeHeader({ codec: 0, rawSize: 4, payload: badUtf8 }), badUtf8]), 'ERR_MANIFEST_CORRUPT']);
  const junk = Uint8Array.from([20, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 1, 2]);
  cases.push(['bad lz4', concat([encodeEnvelopeHeader({ codec: 1, rawSize: 20, payload: junk }), junk]), 'ERR_MANIFEST_CORRUPT']);
  const lzJunk = lz4Compress(new TextEncoder().encode('[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[['));
  cases.push(['lz4 non-json', concat([encodeEnvelopeHeader({ codec: 1, rawSize: 35, payload: lzJunk }), lzJunk]), 'ERR_MANIFEST_CORRUPT']);
  for (const [name, b, want] of cases)
    t.equal(
      code(() => decodeManifest(b)),
      want,
      name,
    );
});

t.test('property: decoder only throws CairnError', async (t) => {
  const good = encodeManifest(base());
  const plain = wrap(canonicalJson(checkManifest(base())));
  const tryDecode = (b: Uint8Array): void => {
    try {
      decodeManifest(b);
    } catch (e) {
      if (!(e instanceof CairnError)) throw e;
    }
  };
  fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), tryDecode), { numRuns: 300 });
  fc.assert(
    fc.property(fc.string(), (s) => tryDecode(wrap(s))),
    { numRuns: 300 },
  );
  fc.assert(
    fc.property(fc.jsonValue(), (v) => tryDecode(wrap(JSON.stringify(v)))),
    { numRuns: 300 },
  );
  // Mutations of the JSON text inside a valid envelope reach the schema validator.
  fc.assert(
    fc.property(fc.constantFrom(good, plain), fc.nat(), fc.integer({ min: 1, max: 255 }), (file, pos, x) => {
      const b = Uint8Array.from(file);
      b[pos % b.length] = b[pos % b.length]! ^ x;
      tryDecode(b);
      const raw = new TextEncoder().encode(canonicalJson(checkManifest(base())));
      raw[pos % raw.length] = raw[pos % raw.length]! ^ x;
      tryDecode(concat([encodeEnvelopeHeader({ codec: 0, rawSize: raw.length, payload: raw }), raw]));
    }),
    { numRuns: 500 },
  );
  t.pass();
});

import t from 'tap';
import fc from 'fast-check';
import { CairnError, type ErrorCode } from '../../lib/errors.js';
import { checkConfig, decodeConfig, type DatastoreConfig, encodeConfig, isRfc3339 } from '../../lib/format/config.js';
import { code } from '../helpers/codes.js';

const base = (): DatastoreConfig => ({
  format: 'cairn-datastore',
  version: 1,
  uuid: '0f8fad5b-d9cb-469f-a165-70867728950e',
  created: '2026-01-02T03:04:05Z',
  imageChunkSize: 4 * 1024 * 1024,
  cdc: { min: 1 << 20, avg: 4 << 20, max: 16 << 20 },
  syncLevel: 'filesystem',
});
const enc = (v: unknown): Uint8Array => new TextEncoder().encode(typeof v === 'string' ? v : JSON.stringify(v));

t.test('round trip, human-readable', async (t) => {
  const bytes = encodeConfig(base());
  const text = new TextDecoder().decode(bytes);
  t.equal(
    text,
    `{
  "format": "cairn-datastore",
  "version": 1,
  "uuid": "0f8fad5b-d9cb-469f-a165-70867728950e",
  "created": "2026-01-02T03:04:05Z",
  "imageChunkSize": 4194304,
  "cdc": {
    "min": 1048576,
    "avg": 4194304,
    "max": 16777216
  },
  "syncLevel": "filesystem"
}
`,
  );
  t.same(decodeConfig(bytes), base());
  const shuffled = {
    syncLevel: 'none',
    cdc: { max: 1024, avg: 512, min: 64 },
    imageChunkSize: 65536,
    created: '2026-01-02T03:04:05.123+02:00',
    uuid: '0F8FAD5B-D9CB-469F-A165-70867728950E',
    version: 1,
    format: 'cairn-datastore',
  };
  const d = decodeConfig(enc(shuffled));
  t.equal(d.syncLevel, 'none');
  t.equal(new TextDecoder().decode(encodeConfig(d)).indexOf('"format"'), 4, 'fixed key order');
  t.same(checkConfig(base()), base());
});

t.test('rfc3339', async (t) => {
  for (const ok of ['2026-01-02T03:04:05Z', '2024-02-29T23:59:59.5Z', '2026-01-02t03:04:05z', '2026-01-02T03:04:05-05:30']) t.ok(isRfc3339(ok), ok);
  for (const bad of [
    '2026-01-02',
    '2025-02-29T00:00:00Z',
    '2026-13-01T00:00:00Z',
    '2026-01-02T24:00:00Z',
    '2026-01-02T03:60:00Z',
    '2026-01-02T03:04:60Z',
    '2026-01-00T00:00:00Z',
    '2026-01-02T03:04:05+24:00',
    '2026-01-02T03:04:05+01:60',
    5,
  ]) {
    t.notOk(isRfc3339(bad), String(bad));
  }
});

t.test('not a config', async (t) => {
  const details = { path: '/ds/cairn.json' };
  for (const [name, bytes] of [
    ['empty', new Uint8Array(0)],
    ['garbage', Uint8Array.from([0xff, 0xfe, 0, 1])],
    ['not json', enc('hello')],
    ['array', enc([1])],
    ['null', enc('null')],
    ['other format', enc({ ...base(), format: 'pbs' })],
    ['no format', enc({ version: 1 })],
    ['too big', new Uint8Array(70_000).fill(0x20)],
  ] as const) {
    try {
      decodeConfig(bytes, details);
      t.fail(name);
    } catch (e) {
      t.ok(e instanceof CairnError);
      t.equal((e as CairnError).code, 'ERR_CONFIG_CORRUPT', name);
      t.match((e as Error).message, /\/ds\/cairn\.json: not a Cairn datastore config or corrupt/, name);
      t.equal((e as CairnError).details, details);
    }
  }
});

t.test('field validation', async (t) => {
  const mut: [string, (c: Record<string, any>) => void, ErrorCode?][] = [
    ['version 2', (c) => ((c['version'] = 2), (c['encryption'] = 'x')), 'ERR_FORMAT_VERSION'],
    ['version 0', (c) => (c['version'] = 0)],
    ['version string', (c) => (c['version'] = '1')],
    ['unknown key', (c) => (c['extra'] = true)],
    ['uuid', (c) => (c['uuid'] = 'not-a-uuid')],
    ['uuid variant', (c) => (c['uuid'] = '0f8fad5b-d9cb-469f-c165-70867728950e')],
    ['uuid missing', (c) => delete c['uuid']],
    ['created', (c) => (c['created'] = 'yesterday')],
    ['imageChunkSize small', (c) => (c['imageChunkSize'] = 32768)],
    ['imageChunkSize big', (c) => (c['imageChunkSize'] = 32 << 20)],
    ['imageChunkSize odd', (c) => (c['imageChunkSize'] = 65537)],
    ['imageChunkSize string', (c) => (c['imageChunkSize'] = '65536')],
    ['cdc missing', (c) => delete c['cdc']],
    ['cdc array', (c) => (c['cdc'] = [])],
    ['cdc unknown', (c) => (c['cdc'].x = 1)],
    ['cdc min string', (c) => (c['cdc'].min = '1')],
    ['cdc avg missing', (c) => delete c['cdc'].avg],
    ['cdc min tiny', (c) => (c['cdc'].min = 32)],
    ['cdc max big', (c) => (c['cdc'].max = 32 << 20)],
    ['cdc avg not pow2', (c) => (c['cdc'].avg = 3 << 20)],
    ['cdc min > avg', (c) => (c['cdc'].min = 8 << 20)],
    ['cdc avg > max', (c) => (c['cdc'].max = 2 << 20)],
    ['syncLevel', (c) => (c['syncLevel'] = 'always')],
    ['syncLevel missing', (c) => delete c['syncLevel']],
  ];
  for (const [name, f, want = 'ERR_CONFIG_CORRUPT'] of mut) {
    const c = JSON.parse(JSON.stringify(base())) as Record<string, any>;
    f(c);
    try {
      decodeConfig(enc(c), { datastore: '/ds' });
      t.fail(`${name}: accepted`);
    } catch (e) {
      t.ok(e instanceof CairnError, name);
      t.equal((e as CairnError).code, want, `${name}: ${(e as Error).message}`);
      t.match((e as Error).message, /datastore config \/ds/);
    }
    if (want === 'ERR_CONFIG_CORRUPT')
      t.equal(
        code(() => encodeConfig(c as DatastoreConfig)),
        'ERR_INVALID_ARGUMENT',
        `encode: ${name}`,
      );
  }
  t.equal(
    code(() => encodeConfig({ ...base(), format: 'x' as 'cairn-datastore' })),
    'ERR_INVALID_ARGUMENT',
  );
  t.equal(
    code(() => decodeConfig(enc({ ...base(), version: 1.5 }))),
    'ERR_CONFIG_CORRUPT',
  );
});

t.test('property: decoder only throws CairnError', async (t) => {
  const good = encodeConfig(base());
  const tryDecode = (b: Uint8Array): void => {
    try {
      decodeConfig(b);
    } catch (e) {
      if (!(e instanceof CairnError)) throw e;
    }
  };
  fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), tryDecode), { numRuns: 300 });
  fc.assert(
    fc.property(fc.jsonValue(), (v) => tryDecode(enc(JSON.stringify(v)))),
    { numRuns: 300 },
  );
  fc.assert(
    fc.property(fc.nat(), fc.integer({ min: 1, max: 255 }), (pos, x) => {
      const b = Uint8Array.from(good);
      b[pos % b.length] = b[pos % b.length]! ^ x;
      tryDecode(b);
    }),
    { numRuns: 500 },
  );
  t.pass();
});

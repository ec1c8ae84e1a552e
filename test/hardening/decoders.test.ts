/**
 * Hardening (issue 7): property and fuzz tests for every decoder of stored bytes.
 *
 * For each decoder: random bytes, random bytes behind a valid prefix, every truncation and every
 * single-bit flip of valid encodings (with and without re-sealed CRCs/checksums, so the damage reaches
 * the checks behind them), random mutations (bit flips, byte sets, insertions, deletions, copies,
 * integer fields set to huge values, oversized varints), and every length/count field set to every
 * value of HUGE_VALUES. Every call must return or throw a CairnError with the decoder's code and the
 * caller's details, within 500 ms and without growing memory by 256 MiB (test/helpers/fuzz.ts). An
 * accepted input must be canonical: encoding what was decoded gives the same bytes (or, for the JSON
 * formats, the same value). Round-trip properties cover the encoders.
 *
 * Seeded (FUZZ_SEED) so CI is reproducible; CAIRN_FUZZ_SEED / CAIRN_FUZZ_SCALE for longer runs.
 */
import t from 'tap';
import fc from 'fast-check';
import { deepStrictEqual } from 'node:assert/strict';
import { type ErrorCode } from '../../lib/errors.js';
import { blake3, crc32, initHash } from '../../lib/codec/hash.js';
import { lz4Compress, lz4Decompress } from '../../lib/codec/compress.js';
import { decodeChunk, encodeChunk } from '../../lib/codec/chunk-codec.js';
import { type Envelope, encodeEnvelopeHeader, MAX_RAW_SIZE, parseEnvelope } from '../../lib/codec/envelope.js';
import { decodeFixedIndex, encodeFixedIndex, type FixedIndex } from '../../lib/format/fixed-index.js';
import { decodeDynamicIndex, DynamicIndexBuilder, type DynamicIndex, encodeDynamicIndex } from '../../lib/format/dynamic-index.js';
import { decodeManifest, encodeManifest, type Manifest } from '../../lib/format/manifest.js';
import { decodeConfig, type DatastoreConfig, encodeConfig } from '../../lib/format/config.js';
import {
  checkTreeStreamHeader,
  compareNames,
  decodeDirHeader,
  decodeDirRecord,
  decodeEntry,
  decodeRootEntry,
  decodeTreeTrailer,
  type DirHeader,
  encodeDirRecord,
  encodeRootEntry,
  encodeTreeStreamHeader,
  encodeTreeTrailer,
  findInRecord,
  type TreeEntry,
  type TreeTrailer,
  validateEntryName,
} from '../../lib/format/tree.js';
import { CODEC } from '../../lib/format/magic.js';
import { formatSnapshotTime } from '../../lib/types.js';
import { concat, equalBytes } from '../../lib/util/bytes.js';
import { applyMutations, type Field, forEachBitFlip, fuzzParams, guarded, type GuardOptions, HUGE_VALUES, leb128, mutationsArb, type Outcome } from '../helpers/fuzz.js';

await initHash();

const enc = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'latin1'));
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);
const u32 = (at: number): Field => ({ at, width: 4 });
const u64 = (at: number): Field => ({ at, width: 8 });

/** A valid encoding to mutate. */
interface Sample {
  readonly label: string;
  readonly bytes: Uint8Array;
}

/** A decoder under test. */
interface Target<S extends Sample, T> {
  readonly name: string;
  readonly samples: readonly S[];
  readonly guard: GuardOptions;
  /** Calls the decoder (inside {@link guarded}). */
  decode(b: Uint8Array, s: S): T;
  /** Recomputes the CRCs/checksums of a (mutated) encoding in place, so damage reaches later checks. */
  reseal?(b: Uint8Array): void;
  /** The sample's integer fields, for targeted mutations. */
  fields(s: S): readonly Field[];
  /** Checks an accepted (maybe mutated) input: throws when the decoder accepted something it must not. */
  accepted(value: T, b: Uint8Array, s: S): void;
  /** Every truncation (without a reseal) is rejected. */
  readonly strict: boolean;
  /** Every single-bit flip (without a reseal) is rejected; defaults to `strict`. */
  readonly flipsDetected?: boolean;
  /** Runs of the random-mutation property (the other properties scale from it). */
  readonly runs: number;
}

/** Per-target counts, reported as comments (and checked to be non-trivial). */
interface Tally {
  ok: number;
  rejected: number;
  messages: Set<string>;
}

function record<T>(tally: Tally, o: Outcome<T>): Outcome<T> {
  if (o.ok) tally.ok++;
  else {
    tally.rejected++;
    tally.messages.add(o.error.message.replace(/[0-9a-f]{8,}|\d+/g, '#'));
  }
  return o;
}

function fuzzTarget<S extends Sample, T>(tgt: Target<S, T>): void {
  const run = (b: Uint8Array, s: S, tally: Tally): Outcome<T> => {
    const o = record(
      tally,
      guarded(tgt.name, tgt.guard, () => tgt.decode(b, s)),
    );
    if (o.ok) tgt.accepted(o.value, b, s);
    return o;
  };
  const resealed = (b: Uint8Array): Uint8Array => {
    const c = Uint8Array.from(b);
    tgt.reseal?.(c);
    return c;
  };
  const newTally = (): Tally => ({ ok: 0, rejected: 0, messages: new Set() });
  const sampleArb = fc.nat(tgt.samples.length - 1).map((i) => tgt.samples[i]!);

  t.test(`${tgt.name}`, async (t) => {
    t.test('valid samples are accepted (and canonical)', async (t) => {
      for (const s of tgt.samples) {
        const o = run(s.bytes, s, newTally());
        t.ok(o.ok, `${s.label} decodes`);
        if (tgt.reseal !== undefined) t.ok(equalBytes(resealed(s.bytes), s.bytes), `${s.label}: resealing a valid encoding changes nothing`);
      }
    });

    t.test('random bytes, alone and behind a valid prefix', async (t) => {
      const tally = newTally();
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 600 }), (b) => void run(b, tgt.samples[0]!, tally)),
        fuzzParams(Math.ceil(tgt.runs / 2)),
      );
      fc.assert(
        fc.property(sampleArb, fc.nat(), fc.uint8Array({ maxLength: 300 }), fc.boolean(), (s, cut, tail, seal) => {
          const b = concat([s.bytes.subarray(0, cut % (s.bytes.length + 1)), tail]);
          run(seal ? resealed(b) : b, s, tally);
        }),
        fuzzParams(Math.ceil(tgt.runs / 2)),
      );
      t.ok(tally.rejected > 0, `random input is rejected (${tally.rejected} rejected, ${tally.ok} accepted)`);
    });

    t.test('every truncation', async (t) => {
      const tally = newTally();
      let accepted = 0;
      for (const s of tgt.samples) {
        for (let n = 0; n < s.bytes.length; n++) {
          const cut = s.bytes.slice(0, n);
          if (run(cut, s, tally).ok) accepted++;
          if (tgt.reseal !== undefined) run(resealed(cut), s, tally);
        }
      }
      if (tgt.strict) t.equal(accepted, 0, 'no truncated encoding is accepted');
      t.ok(tally.rejected > 0, `${tally.rejected} truncations rejected`);
    });

    t.test('every single-bit flip', async (t) => {
      const tally = newTally();
      let undetected = 0;
      for (const s of tgt.samples) {
        if (s.bytes.length > 4096) continue;
        forEachBitFlip(s.bytes, (b) => {
          if (run(b, s, tally).ok) undetected++;
          if (tgt.reseal !== undefined) run(resealed(b), s, tally);
        });
      }
      if (tgt.flipsDetected ?? tgt.strict) t.equal(undetected, 0, 'every flipped bit is detected');
      t.comment(`${tgt.name}: bit flips ${tally.rejected} rejected, ${tally.ok} accepted, ${tally.messages.size} distinct errors`);
    });

    t.test('random mutations (bit flips, truncation, insertions, deletions, huge fields)', async (t) => {
      const tally = newTally();
      fc.assert(
        fc.property(
          sampleArb.chain((s) => fc.tuple(fc.constant(s), mutationsArb(tgt.fields(s)), fc.boolean())),
          ([s, ms, seal]) => {
            const b = applyMutations(s.bytes, ms, tgt.fields(s));
            run(seal ? resealed(b) : b, s, tally);
          },
        ),
        fuzzParams(tgt.runs),
      );
      t.ok(tally.rejected > 0, `${tally.rejected} rejected, ${tally.ok} accepted`);
      t.comment(`${tgt.name}: mutations ${tally.rejected} rejected, ${tally.ok} accepted, ${tally.messages.size} distinct errors`);
    });

    if (tgt.samples.every((s) => tgt.fields(s).length === 0)) return;
    t.test('length and count fields set to huge values', async (t) => {
      const tally = newTally();
      for (const s of tgt.samples) {
        for (const f of tgt.fields(s)) {
          for (const v of HUGE_VALUES) {
            const b = applyMutations(s.bytes, [{ op: 'field', field: 0, value: v }], [f]);
            run(b, s, tally);
            run(resealed(b), s, tally);
          }
        }
      }
      fc.assert(
        fc.property(sampleArb, fc.array(fc.tuple(fc.nat(), fc.constantFrom(...HUGE_VALUES)), { minLength: 1, maxLength: 3 }), (s, sets) => {
          const b = applyMutations(
            s.bytes,
            sets.map(([field, value]) => ({ op: 'field', field, value })),
            tgt.fields(s),
          );
          run(resealed(b), s, tally);
        }),
        fuzzParams(Math.ceil(tgt.runs / 4)),
      );
      t.pass(`${tally.rejected} rejected, ${tally.ok} accepted`);
    });
  });
}

// -------------------------------------------------------------------------------------------------
// Chunk / blob envelope (lib/codec/envelope.ts, lib/codec/compress.ts)

interface ChunkSample extends Sample {
  readonly raw: Uint8Array;
  readonly digest: Uint8Array;
}

function chunkSample(label: string, raw: Uint8Array, compress: boolean): ChunkSample {
  const e = encodeChunk(raw, { compress });
  return { label, raw, digest: e.digest, bytes: concat([e.header, e.payload]) };
}

const TEXT = utf8('Cairn stores every chunk once, however many snapshots use it. '.repeat(60));
const RANDOM = Uint8Array.from({ length: 300 }, (_, i) => (i * 2654435761) >>> 24);
const chunkSamples: ChunkSample[] = [
  chunkSample('lz4 text', TEXT, true),
  chunkSample('lz4 short', utf8('aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab'), true),
  chunkSample('raw bytes', RANDOM, false),
  chunkSample('empty', new Uint8Array(0), true),
  chunkSample('three bytes', utf8('abc'), true),
];
const envelopeFields: Field[] = [u32(4), u32(8), u32(12), u32(16)];
const ENV_DETAILS = { digest: 'fuzz-digest', path: '/fuzz/chunk' };

function resealEnvelope(b: Uint8Array): void {
  if (b.length < 16) return;
  new DataView(b.buffer, b.byteOffset, 16).setUint32(12, crc32(b.subarray(16)), true);
}

fuzzTarget<ChunkSample, Envelope>({
  name: 'parseEnvelope',
  samples: chunkSamples,
  guard: { codes: ['ERR_BLOB_CORRUPT', 'ERR_FORMAT_VERSION'], details: ENV_DETAILS },
  decode: (b) => parseEnvelope(b, { code: 'ERR_BLOB_CORRUPT', details: ENV_DETAILS }),
  reseal: resealEnvelope,
  fields: () => envelopeFields,
  accepted(env, b) {
    const again = concat([encodeEnvelopeHeader({ codec: env.codec, rawSize: env.rawSize, payload: env.payload }), env.payload]);
    if (!equalBytes(again, b)) throw new Error('parseEnvelope accepted a non-canonical envelope');
    if (env.codec === CODEC.none && env.payload.length !== env.rawSize) throw new Error('payload length differs from rawSize');
  },
  strict: true,
  runs: 2000,
});

fuzzTarget<ChunkSample, Uint8Array>({
  name: 'decodeChunk (expected digest)',
  samples: chunkSamples,
  guard: { codes: ['ERR_CHUNK_CORRUPT', 'ERR_FORMAT_VERSION'], details: ENV_DETAILS },
  decode: (b, s) => decodeChunk(b, { code: 'ERR_CHUNK_CORRUPT', details: ENV_DETAILS, expectDigest: s.digest }),
  reseal: resealEnvelope,
  fields: () => envelopeFields,
  accepted(raw, _b, s) {
    // With a re-sealed CRC a changed lz4 block may still expand to the same bytes; anything else is a miss.
    if (!equalBytes(raw, s.raw)) throw new Error('decodeChunk returned data whose digest is not the expected one');
  },
  strict: true,
  runs: 2000,
});

fuzzTarget<ChunkSample, Uint8Array>({
  name: 'decodeChunk (no digest)',
  samples: chunkSamples,
  guard: { codes: ['ERR_MANIFEST_CORRUPT', 'ERR_FORMAT_VERSION'], details: ENV_DETAILS },
  decode: (b) => decodeChunk(b, { code: 'ERR_MANIFEST_CORRUPT', details: ENV_DETAILS }),
  reseal: resealEnvelope,
  fields: () => envelopeFields,
  accepted(raw, b) {
    const rawSize = new DataView(b.buffer, b.byteOffset, 16).getUint32(8, true);
    if (raw.length !== rawSize) throw new Error(`decodeChunk returned ${raw.length} bytes, the envelope says ${rawSize}`);
  },
  strict: true,
  runs: 1500,
});

/** lz4Decompress is documented to throw plain Errors ("lz4: ...") that its callers map to their code. */
fuzzTarget<ChunkSample, Uint8Array>({
  name: 'lz4Decompress',
  samples: chunkSamples.filter((s) => s.bytes[6] === CODEC.lz4).map((s) => ({ ...s, bytes: s.bytes.slice(16) })),
  guard: { codes: [], plainError: /^lz4: / },
  decode: (b, s) => lz4Decompress(b, s.raw.length),
  fields: () => [u32(0), u32(4)],
  accepted(raw, _b, s) {
    if (raw.length !== s.raw.length) throw new Error(`lz4Decompress returned ${raw.length} bytes, expected ${s.raw.length}`);
  },
  strict: false, // no checksum: a flipped literal decodes to other bytes of the right length
  runs: 1500,
});

t.test('envelope round trip: decodeChunk(encodeChunk(x)) is x, for compressible and random data', async (t) => {
  const data = fc.oneof(
    fc.uint8Array({ maxLength: 3000 }),
    fc.tuple(fc.uint8Array({ minLength: 1, maxLength: 40 }), fc.integer({ min: 1, max: 200 })).map(([p, n]) => {
      const out = new Uint8Array(p.length * n);
      for (let i = 0; i < n; i++) out.set(p, i * p.length);
      return out;
    }),
  );
  let compressed = 0;
  fc.assert(
    fc.property(data, fc.boolean(), (raw, compress) => {
      const e = encodeChunk(raw, { compress });
      if (e.compressed) compressed++;
      const back = decodeChunk(concat([e.header, e.payload]), { code: 'ERR_CHUNK_CORRUPT', details: {}, expectDigest: e.digest });
      deepStrictEqual(back, raw);
    }),
    fuzzParams(500),
  );
  t.ok(compressed > 50, `the lz4 path is exercised (${compressed} compressed)`);
});

// -------------------------------------------------------------------------------------------------
// Fixed and dynamic indexes (lib/format/fixed-index.ts, dynamic-index.ts, index-header.ts)

const IDX_DETAILS = { archive: 'fuzz.img', path: '/fuzz/index' };
const headerFields: Field[] = [u32(8), u32(12), u64(32), u64(40), u32(48), u32(52), u64(56), u32(96), u32(120), u32(124)];
const uuid = Uint8Array.from({ length: 16 }, (_, i) => 0xa0 + i);
const digest = (i: number): Uint8Array => blake3(utf8(`chunk ${i}`));

function resealIndex(b: Uint8Array): void {
  if (b.length < 128) return;
  b.set(blake3(b.subarray(128)), 64);
  new DataView(b.buffer, b.byteOffset, 128).setUint32(124, crc32(b.subarray(0, 124)), true);
}

function fixedSample(label: string, size: number, chunkSize: number, ctime: number): Sample {
  const count = Math.ceil(size / chunkSize);
  return { label, bytes: encodeFixedIndex({ uuid, ctime, size, chunkSize }, concat(Array.from({ length: count }, (_, i) => digest(i)))) };
}

function checkFixedAccessors(idx: FixedIndex): void {
  let covered = 0;
  for (let i = 0; i < idx.count; i++) {
    const r = idx.chunkRange(i);
    if (r.start !== covered || r.end <= r.start || idx.find(r.start) !== i || idx.find(r.end - 1) !== i) throw new Error(`fixed index chunk ${i} is inconsistent`);
    if (idx.digestAt(i).length !== 32) throw new Error('digest is not 32 bytes');
    covered = r.end;
  }
  if (covered !== idx.size || idx.find(idx.size) !== -1 || idx.find(-1) !== -1) throw new Error('fixed index chunks do not cover the image');
}

fuzzTarget<Sample, FixedIndex>({
  name: 'decodeFixedIndex',
  samples: [
    fixedSample('six chunks, short last', 5 * 4096 + 100, 4096, 1_700_000_000),
    fixedSample('empty image', 0, 1 << 20, -5),
    fixedSample('one byte, 16 MiB chunks', 1, 16 << 20, 0),
    fixedSample('exact multiple', 3 * 65536, 65536, 2 ** 53 - 1),
  ],
  guard: { codes: ['ERR_INDEX_CORRUPT', 'ERR_FORMAT_VERSION'], details: IDX_DETAILS },
  decode: (b) => decodeFixedIndex(b, IDX_DETAILS),
  reseal: resealIndex,
  fields: () => headerFields,
  accepted(idx, b) {
    const again = encodeFixedIndex({ uuid: idx.uuid, ctime: idx.ctime, size: idx.size, chunkSize: idx.chunkSize }, idx.digests);
    if (!equalBytes(again, b)) throw new Error('decodeFixedIndex accepted a non-canonical index');
    checkFixedAccessors(idx);
  },
  strict: true,
  runs: 2000,
});

function dynamicSample(label: string, lengths: readonly number[], ctime: number): Sample {
  const bld = new DynamicIndexBuilder();
  lengths.forEach((n, i) => bld.append(n, digest(i)));
  return { label, bytes: bld.finish({ uuid, ctime }) };
}

function checkDynamicAccessors(idx: DynamicIndex): void {
  let covered = 0;
  for (let i = 0; i < idx.count; i++) {
    const r = idx.chunkRange(i);
    if (r.start !== covered || r.end <= r.start || r.end !== idx.endAt(i)) throw new Error(`dynamic index chunk ${i} is inconsistent`);
    if (idx.find(r.start) !== i || idx.find(r.end - 1) !== i) throw new Error(`find() misses chunk ${i}`);
    covered = r.end;
  }
  if (covered !== idx.size || idx.find(idx.size) !== -1) throw new Error('dynamic index chunks do not cover the stream');
}

const dynamicSamples = [dynamicSample('five chunks', [1, 4096, 70_000, 3, 2 ** 40], 1_700_000_000), dynamicSample('empty', [], 0), dynamicSample('one chunk', [2 ** 53 - 1], -1)];

fuzzTarget<Sample, DynamicIndex>({
  name: 'decodeDynamicIndex',
  samples: dynamicSamples,
  guard: { codes: ['ERR_INDEX_CORRUPT', 'ERR_FORMAT_VERSION'], details: IDX_DETAILS },
  decode: (b) => decodeDynamicIndex(b, IDX_DETAILS),
  reseal: resealIndex,
  fields: (s) => {
    const count = (s.bytes.length - 128) / 40;
    return [...headerFields, u64(48), ...Array.from({ length: count }, (_, i) => u64(128 + 40 * i))];
  },
  accepted(idx, b) {
    if (!equalBytes(encodeDynamicIndex({ uuid: idx.uuid, ctime: idx.ctime }, idx.entries), b)) throw new Error('decodeDynamicIndex accepted a non-canonical index');
    checkDynamicAccessors(idx);
  },
  strict: true,
  runs: 2000,
});

t.test('index round trips', async (t) => {
  const id = fc.record({ uuid: fc.uint8Array({ minLength: 16, maxLength: 16 }), ctime: fc.maxSafeInteger() });
  fc.assert(
    fc.property(id, fc.integer({ min: 12, max: 24 }), fc.nat(40), fc.nat(), (ident, log2, count, extra) => {
      const chunkSize = 2 ** log2;
      const size = count === 0 ? 0 : (count - 1) * chunkSize + 1 + (extra % chunkSize);
      const digests = concat(Array.from({ length: count }, (_, i) => digest(i + extra)));
      const idx = decodeFixedIndex(encodeFixedIndex({ ...ident, size, chunkSize }, digests));
      deepStrictEqual([idx.uuid, idx.ctime, idx.size, idx.chunkSize, idx.count], [ident.uuid, ident.ctime, size, chunkSize, count]);
      deepStrictEqual(idx.digests, digests);
      checkFixedAccessors(idx);
    }),
    fuzzParams(300),
  );
  fc.assert(
    fc.property(id, fc.array(fc.integer({ min: 1, max: 2 ** 40 }), { maxLength: 40 }), (ident, lengths) => {
      const bld = new DynamicIndexBuilder();
      lengths.forEach((n, i) => bld.append(n, digest(i)));
      const idx = decodeDynamicIndex(bld.finish(ident));
      deepStrictEqual([idx.uuid, idx.ctime, idx.count], [ident.uuid, ident.ctime, lengths.length]);
      let end = 0;
      lengths.forEach((n, i) => {
        end += n;
        deepStrictEqual([idx.endAt(i), idx.digestAt(i)], [end, digest(i)]);
      });
      t.equal(idx.size, end);
      checkDynamicAccessors(idx);
    }),
    fuzzParams(300),
  );
});

// -------------------------------------------------------------------------------------------------
// JSON formats: structural mutations (a value replaced by, or a key added with, a raw JSON token)

/** Raw JSON tokens that stress validators: non-finite and unsafe numbers, -0, odd strings, deep or wide values. */
const RAW_TOKENS: readonly string[] = [
  '1e999',
  '-1e999',
  '-0',
  '0.5',
  '1E400',
  '9007199254740993',
  '4294967296',
  '-1',
  '65536.000000001',
  'null',
  'true',
  '""',
  '"\\u0000"',
  '"\\ud800"',
  '"a/b"',
  '"."',
  '"2026-02-29T00:00:00Z"',
  '"0000-02-29T00:00:00Z"',
  '[]',
  '{}',
  '{"__proto__":{"x":1}}',
  '{"a":1,"a":2}',
  '[{"state":"ok"}]',
  `${'['.repeat(250)}${']'.repeat(250)}`,
  `${'{"a":'.repeat(250)}1${'}'.repeat(250)}`,
  `[${'0,'.repeat(5000)}0]`,
  `"${'x'.repeat(20000)}"`,
];
const KEYS: readonly string[] = ['__proto__', 'constructor', 'toString', 'verify', 'notes', 'stats', 'chunkSize', 'min', 'x', ''];

type JsonMutation = { readonly path: number; readonly action: 'replace' | 'add' | 'delete'; readonly key: string; readonly token: string };

const jsonMutationArb: fc.Arbitrary<JsonMutation> = fc.record({
  path: fc.nat(),
  action: fc.constantFrom('replace' as const, 'add' as const, 'delete' as const),
  key: fc.oneof(fc.constantFrom(...KEYS), fc.string({ maxLength: 8 })),
  token: fc.oneof(
    fc.constantFrom(...RAW_TOKENS),
    fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
  ),
});

const SENTINEL = '\u0000\u0001sentinel';

/** Applies `ms` to the JSON text `text` (a JSON object), returning new text. */
function mutateJson(text: string, ms: readonly JsonMutation[]): string {
  let value: unknown = JSON.parse(text);
  const tokens: string[] = [];
  for (const m of ms) {
    // Every container and every slot in it, depth first.
    const slots: [Record<string, unknown> | unknown[], string | number][] = [];
    const walk = (v: unknown): void => {
      if (Array.isArray(v)) v.forEach((x, i) => (slots.push([v, i]), walk(x)));
      else if (typeof v === 'object' && v !== null)
        for (const [k, x] of Object.entries(v)) {
          slots.push([v as Record<string, unknown>, k]);
          walk(x);
        }
    };
    walk(value);
    const slot = slots[m.path % Math.max(1, slots.length)];
    const marker = `${SENTINEL}${tokens.length}`;
    tokens.push(m.token);
    if (slot === undefined) {
      value = marker;
      continue;
    }
    const [container, key] = slot;
    if (m.action === 'replace') (container as Record<string | number, unknown>)[key] = marker;
    else if (m.action === 'delete') {
      if (Array.isArray(container)) container.splice(key as number, 1);
      else delete container[key as string];
    } else if (Array.isArray(container)) container.push(marker);
    else Object.defineProperty(container, m.key, { value: marker, enumerable: true, configurable: true, writable: true });
  }
  let out = JSON.stringify(value);
  tokens.forEach((tok, i) => {
    out = out.replace(JSON.stringify(`${SENTINEL}${i}`), () => tok);
  });
  return out;
}

/** Targets for a JSON format: byte-level fuzzing of its text plus structural mutations. */
function fuzzJson<T>(name: string, samples: readonly Sample[], guard: GuardOptions, decodeText: (b: Uint8Array) => T, accepted: (v: T) => void, runs: number): void {
  fuzzTarget<Sample, T>({
    name: `${name} (JSON text)`,
    samples,
    guard,
    decode: decodeText,
    fields: () => [],
    accepted,
    strict: false,
    runs,
  });
  t.test(`${name}: structural mutations and raw tokens (huge, non-finite, deep, wide values)`, async (t) => {
    let ok = 0;
    let rejected = 0;
    fc.assert(
      fc.property(fc.nat(samples.length - 1), fc.array(jsonMutationArb, { minLength: 1, maxLength: 3 }), (i, ms) => {
        const text = mutateJson(new TextDecoder().decode(samples[i]!.bytes), ms);
        const o = guarded(name, guard, () => decodeText(utf8(text)));
        if (o.ok) {
          ok++;
          accepted(o.value);
        } else rejected++;
      }),
      fuzzParams(runs),
    );
    t.ok(ok > 0 && rejected > 0, `${rejected} rejected, ${ok} accepted`);
  });
}

// -------------------------------------------------------------------------------------------------
// Manifest (lib/format/manifest.ts)

const H = 'ab'.repeat(32);
const baseManifest = (): Manifest => ({
  format: 'cairn-manifest',
  version: 1,
  namespace: 'site-a/prod',
  type: 'vm',
  id: '100',
  time: '2026-01-02T03:04:05Z',
  files: [
    { name: 'disk.img', kind: 'image', size: 4 << 20, checksum: H, crypt: 'none', chunkSize: 4 << 20 },
    { name: 'root.tree', kind: 'tree', size: 10, checksum: H, crypt: 'none' },
    { name: 'vm.conf.blob', kind: 'blob', size: 0, checksum: H, crypt: 'none' },
  ],
  unprotected: { verify: { state: 'ok', time: '2026-01-03T00:00:00Z', run: 'r1' }, notes: 'hi', stats: { chunks: 3, ratio: 0.5 }, extra: { a: [1, null] } },
});
const MANIFEST_DETAILS = { snapshot: 'vm/100/2026-01-02T03:04:05Z', path: '/fuzz/index.json.blob' };

function wrap(raw: Uint8Array): Uint8Array {
  return concat([encodeEnvelopeHeader({ codec: CODEC.none, rawSize: raw.length, payload: raw }), raw]);
}

function manifestReencodes(m: Manifest): void {
  // What a reader accepted, a writer (verify, notes) must be able to write back unchanged.
  const again = decodeManifest(encodeManifest(m));
  // JSON has no -0 (canonical JSON writes 0), so compare with the JSON value of m.
  deepStrictEqual(again, JSON.parse(JSON.stringify(m)) as Manifest);
}

const manySmallFiles = (): Manifest => ({
  ...baseManifest(),
  namespace: '',
  type: 'host',
  id: 'web-1',
  files: Array.from({ length: 20 }, (_, i) => ({ name: `f${String(i).padStart(3, '0')}.blob`, kind: 'blob' as const, size: i, checksum: H, crypt: 'none' as const })),
  unprotected: {},
});
const manifestSamples: Sample[] = [
  { label: 'base', bytes: encodeManifest(baseManifest()) },
  { label: 'lz4 (many files)', bytes: encodeManifest(manySmallFiles()) },
  { label: 'no files', bytes: encodeManifest({ ...baseManifest(), files: [], unprotected: {} }) },
];

t.test('manifest samples cover both codecs', async (t) => {
  t.same(new Set(manifestSamples.map((s) => s.bytes[6])), new Set([CODEC.none, CODEC.lz4]));
});

fuzzTarget<Sample, Manifest>({
  name: 'decodeManifest',
  samples: manifestSamples,
  guard: { codes: ['ERR_MANIFEST_CORRUPT', 'ERR_FORMAT_VERSION'], details: MANIFEST_DETAILS },
  decode: (b) => decodeManifest(b, MANIFEST_DETAILS),
  reseal: resealEnvelope,
  fields: () => envelopeFields,
  accepted: manifestReencodes,
  strict: true,
  runs: 2000,
});

const manifestTexts: Sample[] = [baseManifest(), manySmallFiles()].map((m, i) => {
  const raw = encodeManifest(m);
  return { label: `manifest text ${i}`, bytes: decodeChunk(raw, { code: 'ERR_MANIFEST_CORRUPT', details: {} }).slice() };
});
fuzzJson(
  'decodeManifest',
  manifestTexts,
  { codes: ['ERR_MANIFEST_CORRUPT', 'ERR_FORMAT_VERSION'], details: MANIFEST_DETAILS },
  (b) => decodeManifest(wrap(b), MANIFEST_DETAILS),
  manifestReencodes,
  1500,
);

const safeName = fc.tuple(fc.constantFrom(...'abcXYZ019_'), fc.array(fc.constantFrom(...'abcxyz09._-'), { maxLength: 20 })).map(([h, rest]) => h + rest.join(''));
const manifestArb: fc.Arbitrary<Manifest> = fc.record({
  format: fc.constant('cairn-manifest' as const),
  version: fc.constant(1 as const),
  namespace: fc.constantFrom('', 'a', 'site-a/prod', 'a/b/c/d/e/f/g'),
  type: fc.constantFrom('vm' as const, 'ct' as const, 'host' as const),
  id: safeName,
  time: fc.integer({ min: 0, max: 253402300799 }).map(formatSnapshotTime),
  files: fc.uniqueArray(
    fc.record({
      name: safeName,
      kind: fc.constantFrom('blob' as const, 'tree' as const),
      size: fc.maxSafeNat(),
      checksum: fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b).toString('hex')),
      crypt: fc.constant('none' as const),
    }),
    { selector: (f) => f.name, maxLength: 6 },
  ),
  unprotected: fc.record(
    {
      verify: fc.record({ state: fc.constantFrom('ok' as const, 'failed' as const), time: fc.constant('2026-01-03T00:00:00Z'), run: fc.string() }),
      notes: fc.string({ unit: 'binary' }),
      stats: fc.dictionary(safeName, fc.double({ noNaN: true, noDefaultInfinity: true })),
      extra: fc.jsonValue({ maxDepth: 4 }),
    },
    { requiredKeys: [] },
  ),
});

t.test('manifest round trip: decodeManifest(encodeManifest(m)) is m', async (t) => {
  fc.assert(
    fc.property(manifestArb, (m) => {
      const sorted = { ...m, files: [...m.files].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)) };
      // JSON has no -0: the canonical form writes 0.
      deepStrictEqual(decodeManifest(encodeManifest(m)), JSON.parse(JSON.stringify(sorted)) as Manifest);
    }),
    fuzzParams(500),
  );
  t.pass();
});

// -------------------------------------------------------------------------------------------------
// Datastore config, cairn.json (lib/format/config.ts)

const baseConfig = (): DatastoreConfig => ({
  format: 'cairn-datastore',
  version: 1,
  uuid: '0f8fad5b-d9cb-469f-a165-70867728950e',
  created: '2026-01-02T03:04:05Z',
  imageChunkSize: 4 * 1024 * 1024,
  cdc: { min: 1 << 20, avg: 4 << 20, max: 16 << 20 },
  syncLevel: 'filesystem',
});
const CONFIG_DETAILS = { datastore: '/fuzz', path: '/fuzz/cairn.json' };

function configReencodes(c: DatastoreConfig): void {
  deepStrictEqual(decodeConfig(encodeConfig(c)), c);
}

fuzzJson(
  'decodeConfig',
  [
    { label: 'base', bytes: encodeConfig(baseConfig()) },
    {
      label: 'compact, other order',
      bytes: utf8(
        '{"syncLevel":"none","cdc":{"max":1024,"avg":512,"min":64},"imageChunkSize":65536,"created":"2026-01-02T03:04:05.123+02:00","uuid":"0F8FAD5B-D9CB-469F-A165-70867728950E","version":1,"format":"cairn-datastore"}',
      ),
    },
  ],
  { codes: ['ERR_CONFIG_CORRUPT', 'ERR_FORMAT_VERSION'], details: CONFIG_DETAILS },
  (b) => decodeConfig(b, CONFIG_DETAILS),
  configReencodes,
  1500,
);

const configArb: fc.Arbitrary<DatastoreConfig> = fc
  .record({
    uuid: fc.uuid(),
    created: fc.date({ min: new Date('0000-01-01T00:00:00Z'), max: new Date('9999-12-31T23:59:59Z'), noInvalidDate: true }).map((d) => d.toISOString()),
    ics: fc.integer({ min: 16, max: 24 }),
    avg: fc.integer({ min: 6, max: 24 }),
    lo: fc.double({ min: 0, max: 1, noNaN: true }),
    hi: fc.double({ min: 0, max: 1, noNaN: true }),
    syncLevel: fc.constantFrom('none' as const, 'file' as const, 'filesystem' as const),
    upper: fc.boolean(),
  })
  .map(({ uuid, created, ics, avg, lo, hi, syncLevel, upper }) => {
    const a = 2 ** avg;
    return {
      format: 'cairn-datastore' as const,
      version: 1 as const,
      uuid: upper ? uuid.toUpperCase() : uuid,
      created,
      imageChunkSize: 2 ** ics,
      cdc: { min: Math.floor(64 + lo * (a - 64)), avg: a, max: Math.floor(a + hi * (16 * 2 ** 20 - a)) },
      syncLevel,
    };
  });

t.test('config round trip: decodeConfig(encodeConfig(c)) is c, for every valid date', async (t) => {
  fc.assert(
    fc.property(configArb, (c) => deepStrictEqual(decodeConfig(encodeConfig(c)), c)),
    fuzzParams(1000),
  );
  t.pass();
});

// -------------------------------------------------------------------------------------------------
// Tree archive metadata (lib/format/tree.ts)

const TREE_DETAILS = { archive: 'fuzz.tree', path: '/fuzz/meta' };
const treeGuard: GuardOptions = { codes: ['ERR_TREE_CORRUPT'], details: TREE_DETAILS };
const treeGuardV: GuardOptions = { codes: ['ERR_TREE_CORRUPT', 'ERR_FORMAT_VERSION'], details: TREE_DETAILS };
const meta = { mode: 0o644, uid: 1000, gid: 100, mtimeNs: 1_700_000_000_123_456_789n, size: 0, payloadOffset: 0 } as const;
const file = (name: string, size = 10, payloadOffset = 5): TreeEntry => ({ ...meta, name: enc(name), kind: 'file', size, payloadOffset });
const allKinds: TreeEntry[] = [
  file('plain.txt'),
  { ...meta, name: enc('dir'), kind: 'dir', mode: 0o1777, child: { metaOffset: 16, payloadBase: 123 } },
  { ...meta, name: enc('link'), kind: 'symlink', target: enc('../some where/\xff\n') },
  { ...meta, name: enc('hard'), kind: 'hardlink', target: enc('dir/sub/plain.txt') },
  { ...meta, name: enc('tty'), kind: 'chardev', rdevMajor: 4, rdevMinor: 0xffff_ffff },
  { ...meta, name: enc('sda'), kind: 'blockdev', rdevMajor: 0xffff_ffff, rdevMinor: 0 },
  { ...meta, name: enc('pipe'), kind: 'fifo', mode: 0o7777, uid: 0xffff_ffff, gid: 0xffff_ffff },
  { ...meta, name: enc('sock'), kind: 'socket', mode: 0, uid: 0, gid: 0, mtimeNs: -1_500_000_000n },
  {
    ...file('xattrs', 2 ** 53 - 2, 1),
    xattrs: [
      [enc('user.b'), Uint8Array.of(0, 1, 2, 255)],
      [enc('user.empty'), new Uint8Array(0)],
    ],
  },
];
const rootEntry: TreeEntry = {
  ...meta,
  name: new Uint8Array(0),
  kind: 'dir',
  mode: 0o755,
  child: { metaOffset: 2 ** 40, payloadBase: 7 },
  xattrs: [[enc('system.posix_acl_access'), Uint8Array.of(2, 0, 0, 0)]],
};

function dirFields(s: Sample): Field[] {
  const count = s.bytes.length >= 8 ? new DataView(s.bytes.buffer, s.bytes.byteOffset).getUint32(4, true) : 0;
  return [u32(4), u32(8), u32(12), ...Array.from({ length: count }, (_, i) => u32(16 + 4 * i)), u32(s.bytes.length - 4)];
}

function resealLast4(b: Uint8Array): void {
  if (b.length < 4) return;
  new DataView(b.buffer, b.byteOffset).setUint32(b.length - 4, crc32(b.subarray(0, b.length - 4)), true);
}

const dirSamples: Sample[] = [
  { label: 'all kinds', bytes: encodeDirRecord(allKinds) },
  { label: 'empty', bytes: encodeDirRecord([]) },
  { label: 'one fifo', bytes: encodeDirRecord([{ ...meta, name: enc('p'), kind: 'fifo', mode: 0, uid: 0, gid: 0, mtimeNs: 0n }]) },
  { label: '40 files', bytes: encodeDirRecord(Array.from({ length: 40 }, (_, i) => file(`file-${String(i).padStart(2, '0')}`, i, i * 7))) },
];

fuzzTarget<Sample, TreeEntry[]>({
  name: 'decodeDirRecord',
  samples: dirSamples,
  guard: treeGuard,
  decode: (b) => decodeDirRecord(b, TREE_DETAILS),
  reseal: resealLast4,
  fields: dirFields,
  accepted(entries, b) {
    if (!equalBytes(encodeDirRecord(entries), b)) throw new Error('decodeDirRecord accepted a non-canonical record');
  },
  strict: true,
  runs: 2000,
});

fuzzTarget<Sample, DirHeader>({
  name: 'decodeDirHeader',
  samples: dirSamples,
  guard: treeGuard,
  decode: (b) => decodeDirHeader(b, TREE_DETAILS),
  fields: dirFields,
  accepted(h) {
    if (h.count > 2 ** 24 || h.entriesLength < 10 * h.count || (h.count === 0) !== (h.entriesLength === 0) || h.recordLength !== 16 + 4 * h.count + h.entriesLength + 4) {
      throw new Error(`decodeDirHeader accepted an impossible header ${JSON.stringify(h)}`);
    }
  },
  strict: false, // only the first 16 bytes are read
  runs: 1000,
});

/** Names looked up in every (mutated) record: present, absent, boundary. */
const LOOKUPS: Uint8Array[] = [...allKinds.map((e) => e.name), enc('file-17'), enc('zzz'), enc('a'), enc('file-00'), enc('file-39'), enc('p'), enc('\xff')];

fuzzTarget<Sample, (TreeEntry | undefined)[]>({
  name: 'findInRecord',
  samples: dirSamples,
  guard: treeGuard,
  decode: (b) => LOOKUPS.map((name) => findInRecord(b, name, TREE_DETAILS)),
  reseal: resealLast4,
  fields: dirFields,
  accepted(found, b) {
    found.forEach((e, i) => {
      if (e !== undefined && compareNames(e.name, LOOKUPS[i]!) !== 0) throw new Error('findInRecord returned an entry with another name');
    });
    // On an intact record a lookup agrees with the full decode.
    let full: TreeEntry[] | undefined;
    try {
      full = decodeDirRecord(b, TREE_DETAILS);
    } catch {
      return;
    }
    found.forEach((e, i) =>
      deepStrictEqual(
        e,
        full.find((x) => compareNames(x.name, LOOKUPS[i]!) === 0),
      ),
    );
  },
  strict: true, // the record length is checked
  flipsDetected: false, // but not the CRC (FORMAT.md §7.4)
  runs: 1500,
});

/** `varint length · entry` as in a record's entries region. */
const entryBytes = (e: TreeEntry): Uint8Array => {
  const r = encodeDirRecord([e]);
  return r.slice(20, r.length - 4);
};

fuzzTarget<Sample, { entry: TreeEntry; next: number }>({
  name: 'decodeEntry',
  samples: allKinds.map((e) => ({ label: new TextDecoder().decode(e.name), bytes: entryBytes(e) })),
  guard: treeGuard,
  decode: (b) => decodeEntry(b, 0, TREE_DETAILS),
  fields: () => [],
  accepted({ entry, next }, b) {
    if (!validateEntryName(entry.name)) throw new Error('decodeEntry accepted an invalid name');
    if (!equalBytes(entryBytes(entry), b.subarray(0, next))) throw new Error('decodeEntry accepted a non-canonical entry');
  },
  strict: false, // no checksum: a flipped bit in a name or a number is another valid entry
  runs: 2000,
});

fuzzTarget<Sample, { entry: TreeEntry; length: number }>({
  name: 'decodeRootEntry',
  samples: [
    { label: 'root with xattr', bytes: encodeRootEntry(rootEntry) },
    { label: 'plain root', bytes: encodeRootEntry({ ...meta, name: new Uint8Array(0), kind: 'dir', child: { metaOffset: 16, payloadBase: 0 } }) },
  ],
  guard: treeGuard,
  decode: (b) => decodeRootEntry(b, TREE_DETAILS),
  reseal: resealLast4,
  fields: (s) => [u32(s.bytes.length - 4)],
  accepted({ entry, length }, b) {
    if (!equalBytes(encodeRootEntry(entry), b.subarray(0, length))) throw new Error('decodeRootEntry accepted a non-canonical record');
  },
  strict: true,
  runs: 2000,
});

fuzzTarget<Sample, TreeTrailer>({
  name: 'decodeTreeTrailer',
  samples: [
    { label: 'typical', bytes: encodeTreeTrailer({ rootEntryOffset: 1234, payloadSize: 2 ** 40, entryCount: 99 }) },
    { label: 'extremes', bytes: encodeTreeTrailer({ rootEntryOffset: 2 ** 53 - 1, payloadSize: 0, entryCount: 1 }) },
  ],
  guard: treeGuardV,
  decode: (b) => decodeTreeTrailer(b, TREE_DETAILS),
  reseal: (b) => {
    if (b.length >= 48) new DataView(b.buffer, b.byteOffset).setUint32(44, crc32(b.subarray(0, 44)), true);
  },
  fields: () => [u32(8), u32(12), u64(16), u64(24), u64(32), u32(40), u32(44)],
  accepted(tr, b) {
    if (!equalBytes(encodeTreeTrailer(tr), b)) throw new Error('decodeTreeTrailer accepted a non-canonical trailer');
  },
  strict: true,
  runs: 1000,
});

fuzzTarget<Sample, void>({
  name: 'checkTreeStreamHeader',
  samples: [{ label: 'header', bytes: encodeTreeStreamHeader() }],
  guard: treeGuardV,
  decode: (b) => checkTreeStreamHeader(b, TREE_DETAILS),
  fields: () => [u32(8), u32(12)],
  accepted(_v, b) {
    if (!equalBytes(b.subarray(0, 16), encodeTreeStreamHeader())) throw new Error('checkTreeStreamHeader accepted another header');
  },
  strict: false, // longer input is fine by design; truncation is still rejected (checked below)
  runs: 500,
});

const nameArb = fc.uint8Array({ minLength: 1, maxLength: 24 }).map((b) => {
  const n = b.map((c) => (c === 0 || c === 0x2f ? 0x41 : c));
  return n[0] === 0x2e && (n.length === 1 || (n.length === 2 && n[1] === 0x2e)) ? concat([n, enc('x')]) : n;
});
const u32Arb = fc.nat({ max: 0xffff_ffff });
const xattrsArb = fc.uniqueArray(
  fc.tuple(
    nameArb.map((n) => n.subarray(0, 255)),
    fc.uint8Array({ maxLength: 40 }),
  ),
  {
    selector: (x) => Buffer.from(x[0]).toString('latin1'),
    maxLength: 3,
  },
);
const entryArb: fc.Arbitrary<TreeEntry> = fc
  .record({
    name: nameArb,
    kind: fc.constantFrom('file', 'dir', 'symlink', 'hardlink', 'chardev', 'blockdev', 'fifo', 'socket') as fc.Arbitrary<TreeEntry['kind']>,
    mode: fc.nat(0o7777),
    uid: u32Arb,
    gid: u32Arb,
    mtimeNs: fc.bigInt({ min: -(2n ** 52n) * 1_000_000_000n, max: (2n ** 52n - 1n) * 1_000_000_000n + 999_999_999n }),
    size: fc.maxSafeNat(),
    offset: fc.maxSafeNat(),
    target: fc.array(nameArb, { minLength: 1, maxLength: 4 }),
    dev: fc.tuple(u32Arb, u32Arb),
    child: fc.record({ metaOffset: fc.integer({ min: 16, max: Number.MAX_SAFE_INTEGER }), payloadBase: fc.maxSafeNat() }, { noNullPrototype: true }),
    xattrs: xattrsArb,
  })
  .map(({ name, kind, mode, uid, gid, mtimeNs, size, offset, target, dev, child, xattrs }) => {
    const e: { -readonly [K in keyof TreeEntry]: TreeEntry[K] } = { name, kind, mode, uid, gid, mtimeNs, size: 0, payloadOffset: 0 };
    if (kind === 'file') {
      e.size = size;
      e.payloadOffset = Math.min(offset, Number.MAX_SAFE_INTEGER - size);
    }
    if (kind === 'dir') e.child = child;
    if (kind === 'symlink') e.target = target[0]!;
    if (kind === 'hardlink') e.target = concat(target.flatMap((c, i) => (i === 0 ? [c] : [enc('/'), c])));
    if (kind === 'chardev' || kind === 'blockdev') [e.rdevMajor, e.rdevMinor] = dev;
    if (xattrs.length > 0) e.xattrs = [...xattrs].sort((a, b) => compareNames(a[0], b[0]));
    return e;
  });

t.test('tree round trips: records, single entries, root entry, trailer', async (t) => {
  fc.assert(
    fc.property(fc.uniqueArray(entryArb, { selector: (e) => Buffer.from(e.name).toString('latin1'), maxLength: 12 }), (entries) => {
      const rec = encodeDirRecord(entries);
      const sorted = [...entries].sort((a, b) => compareNames(a.name, b.name));
      deepStrictEqual(decodeDirRecord(rec, {}), sorted);
      for (const e of entries) deepStrictEqual(findInRecord(rec, e.name, {}), e);
      const h = decodeDirHeader(rec, {});
      deepStrictEqual([h.count, h.recordLength], [entries.length, rec.length]);
    }),
    fuzzParams(400),
  );
  fc.assert(
    fc.property(entryArb, (e) => {
      const b = entryBytes(e);
      deepStrictEqual(decodeEntry(b, 0, {}), { entry: e, next: b.length });
      if (e.kind === 'dir') {
        const root = { ...e, name: new Uint8Array(0) };
        const r = encodeRootEntry(root);
        deepStrictEqual(decodeRootEntry(concat([r, encodeTreeStreamHeader()]), {}), { entry: root, length: r.length });
      }
    }),
    fuzzParams(600),
  );
  fc.assert(
    fc.property(fc.integer({ min: 16, max: Number.MAX_SAFE_INTEGER }), fc.maxSafeNat(), fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }), (r, p, n) => {
      const tr = { rootEntryOffset: r, payloadSize: p, entryCount: n };
      deepStrictEqual(decodeTreeTrailer(encodeTreeTrailer(tr), {}), tr);
    }),
    fuzzParams(300),
  );
  t.pass();
});

t.test('checkTreeStreamHeader rejects every truncation', async (t) => {
  const h = encodeTreeStreamHeader();
  for (let n = 0; n < h.length; n++) t.equal(guarded('stream header', treeGuard, () => checkTreeStreamHeader(h.subarray(0, n), TREE_DETAILS)).ok, false);
});

// -------------------------------------------------------------------------------------------------
// Regressions: inputs the fuzzing above found or that pin a limit

/** The error code of a guarded call ('ok' when it returned). */
function outcome(what: string, guard: GuardOptions, fn: () => unknown): ErrorCode | 'plain-error' | 'ok' {
  const o = guarded(what, guard, fn);
  return o.ok ? 'ok' : o.code;
}

t.test('regression: huge length fields are rejected before anything is allocated', async (t) => {
  const guard: GuardOptions = { codes: ['ERR_CHUNK_CORRUPT', 'ERR_FORMAT_VERSION'], details: ENV_DETAILS };
  const opts = { code: 'ERR_CHUNK_CORRUPT' as const, details: ENV_DETAILS };
  // rawSize 4 GiB - 1 and 2^31: over the envelope limit.
  for (const raw of [0xffff_ffff, 0x8000_0000, MAX_RAW_SIZE + 1]) {
    const payload = new Uint8Array(8);
    new DataView(payload.buffer).setUint32(0, raw, true);
    const h = new Uint8Array(16);
    h.set(encodeEnvelopeHeader({ codec: CODEC.lz4, rawSize: 0, payload: Uint8Array.of(0, 0, 0, 0, 0) }));
    new DataView(h.buffer).setUint32(8, raw, true);
    const b = concat([h, payload]);
    resealEnvelope(b);
    t.equal(
      outcome('decodeChunk', guard, () => decodeChunk(b, opts)),
      'ERR_CHUNK_CORRUPT',
      `rawSize ${raw}`,
    );
  }
  // Indexes whose count claims 2^53 - 1 entries (header resealed).
  for (const s of [fixedSample('x', 4096, 4096, 0), dynamicSamples[0]!]) {
    const b = applyMutations(
      s.bytes,
      [
        { op: 'int', pos: 56, width: 8, value: 2n ** 53n - 1n },
        { op: 'int', pos: 40, width: 8, value: 2n ** 53n - 1n },
      ],
      [],
    );
    resealIndex(b);
    t.equal(
      outcome('index', { codes: ['ERR_INDEX_CORRUPT'] }, () => (s === dynamicSamples[0] ? decodeDynamicIndex(b) : decodeFixedIndex(b))),
      'ERR_INDEX_CORRUPT',
    );
  }
  // A directory record claiming 2^24 entries in a 20-byte record.
  const rec = Uint8Array.from(encodeDirRecord([]));
  new DataView(rec.buffer).setUint32(4, 2 ** 24, true);
  new DataView(rec.buffer).setUint32(8, 0xffff_ffff, true);
  resealLast4(rec);
  t.equal(
    outcome('record', treeGuard, () => decodeDirRecord(rec, TREE_DETAILS)),
    'ERR_TREE_CORRUPT',
  );
  // An entry whose length varint says 2^53 - 1.
  t.equal(
    outcome('entry', treeGuard, () => decodeEntry(concat([leb128(2n ** 53n - 1n), entryBytes(allKinds[0]!)]), 0, TREE_DETAILS)),
    'ERR_TREE_CORRUPT',
  );
});

t.test('sealed but inconsistent inputs are caught by the checks behind the CRCs', async (t) => {
  // Dynamic index whose ends decrease, with a correct checksum and header CRC.
  const b = Uint8Array.from(dynamicSamples[0]!.bytes);
  b.set(b.subarray(128 + 40, 128 + 48), 128 + 80);
  resealIndex(b);
  t.equal(
    outcome('didx', { codes: ['ERR_INDEX_CORRUPT'] }, () => decodeDynamicIndex(b)),
    'ERR_INDEX_CORRUPT',
    'decreasing ends',
  );
  // A directory record with its two entries in the wrong order (offsets and CRC consistent).
  const [ea, eb] = [entryBytes(file('a')), entryBytes(file('b'))];
  const rec = concat([encodeDirRecord([file('a'), file('b')]).subarray(0, 16), Uint8Array.of(0, 0, 0, 0, eb.length, 0, 0, 0), eb, ea, new Uint8Array(4)]);
  resealLast4(rec);
  t.equal(
    outcome('record', treeGuard, () => decodeDirRecord(rec, TREE_DETAILS)),
    'ERR_TREE_CORRUPT',
    'entries out of order',
  );
  const dup = concat([rec.subarray(0, 24), ea, ea, new Uint8Array(4)]);
  resealLast4(dup);
  t.equal(
    outcome('record', treeGuard, () => decodeDirRecord(dup, TREE_DETAILS)),
    'ERR_TREE_CORRUPT',
    'duplicate names',
  );
  // The same bytes in the right order decode (so the two rejections above are about the order).
  const good = concat([rec.subarray(0, 20), Uint8Array.of(ea.length, 0, 0, 0), ea, eb, new Uint8Array(4)]);
  resealLast4(good);
  t.same(
    outcome('record', treeGuard, () => decodeDirRecord(good, TREE_DETAILS)),
    'ok',
  );
  // A trailer pointing into the stream header, and one with no entries.
  for (const [at, v] of [
    [16, 15n],
    [32, 0n],
  ] as const) {
    const tr = applyMutations(encodeTreeTrailer({ rootEntryOffset: 100, payloadSize: 1, entryCount: 2 }), [{ op: 'int', pos: at, width: 8, value: v }], []);
    tr.set(Uint8Array.of(...[0, 8, 16, 24].map((sh) => (crc32(tr.subarray(0, 44)) >>> sh) & 0xff)), 44);
    t.equal(
      outcome('trailer', treeGuard, () => decodeTreeTrailer(tr, TREE_DETAILS)),
      'ERR_TREE_CORRUPT',
      `trailer field at ${at} = ${v}`,
    );
  }
});

t.test('regression: an lz4 envelope whose payload cannot expand to rawSize is rejected before decompressing', async (t) => {
  // A 21-byte chunk claiming 64 MiB: the LZ4 prefix matched rawSize and the CRC was right, so
  // parseEnvelope accepted it and decodeChunk let lz4 allocate 64 MiB before failing. LZ4 expands
  // at most 255-fold (one length byte adds at most 255 output bytes).
  const guard: GuardOptions = { codes: ['ERR_CHUNK_CORRUPT'], details: ENV_DETAILS };
  const lying = (rawSize: number, blockLength: number): Uint8Array => {
    const payload = new Uint8Array(4 + blockLength);
    new DataView(payload.buffer).setUint32(0, rawSize, true);
    return concat([encodeEnvelopeHeader({ codec: CODEC.lz4, rawSize, payload }), payload]);
  };
  const b = lying(MAX_RAW_SIZE, 1);
  const o = guarded('parseEnvelope', guard, () => parseEnvelope(b, { code: 'ERR_CHUNK_CORRUPT', details: ENV_DETAILS }));
  t.equal(o.ok, false, 'parseEnvelope rejects it');
  if (!o.ok) t.match(o.error.message, /cannot expand/);
  t.throws(() => lz4Decompress(b.subarray(16), MAX_RAW_SIZE), /^lz4: .*cannot expand/, 'lz4Decompress checks it too (it has other callers)');
  // The exact bound: 255 × block length passes the envelope (and fails in lz4: the block is garbage), one more does not.
  for (const n of [1, 2, 1000]) {
    const at = guarded('parseEnvelope', guard, () => parseEnvelope(lying(255 * n, n), { code: 'ERR_CHUNK_CORRUPT', details: ENV_DETAILS }));
    t.equal(at.ok, true, `${255 * n} bytes from a ${n}-byte block passes the envelope`);
    const over = guarded('parseEnvelope', guard, () => parseEnvelope(lying(255 * n + 1, n), { code: 'ERR_CHUNK_CORRUPT', details: ENV_DETAILS }));
    t.equal(over.ok, false, `${255 * n + 1} bytes from a ${n}-byte block is rejected`);
  }
  // The best ratio LZ4 reaches (all zeros, 64 MiB: about 254.98) still decodes.
  const zeros = new Uint8Array(MAX_RAW_SIZE);
  const e = encodeChunk(zeros, { compress: true });
  t.ok(e.compressed && e.payload.length < MAX_RAW_SIZE / 250, `64 MiB of zeros compress to ${e.payload.length} bytes`);
  t.equal(decodeChunk(concat([e.header, e.payload]), { code: 'ERR_CHUNK_CORRUPT', details: {}, expectDigest: e.digest }).length, MAX_RAW_SIZE);
});

/** A manifest envelope (lz4, so a small file) around `text`. */
function lz4Manifest(text: string): Uint8Array {
  const raw = utf8(text);
  const payload = lz4Compress(raw);
  return concat([encodeEnvelopeHeader({ codec: CODEC.lz4, rawSize: raw.length, payload }), payload]);
}

const manifestText = (unprotectedExtra: string): string => {
  const m = { ...baseManifest(), unprotected: { extra: SENTINEL } };
  return JSON.stringify(m).replace(JSON.stringify(SENTINEL), () => unprotectedExtra);
};
const manifestGuard: GuardOptions = { codes: ['ERR_MANIFEST_CORRUPT'], details: MANIFEST_DETAILS };

t.test('regression: manifest JSON that expands in memory is rejected before parsing', async (t) => {
  // A 16 KiB manifest file holding 16 MiB of "[": JSON.parse took 2 s and 500 MB of heap (64 MiB:
  // several GB, an out-of-memory crash). Likewise millions of tiny values.
  const big = 16 * 2 ** 20;
  const cases: [string, string][] = [
    ['deep', manifestText(`${'['.repeat(big / 2)}${']'.repeat(big / 2)}`)],
    ['wide', manifestText(`[${'{},'.repeat(big / 3)}{}]`)],
    ['deep, unbalanced', manifestText('['.repeat(big))],
  ];
  for (const [name, text] of cases) {
    const file = lz4Manifest(text);
    t.ok(file.length < big / 100, `${name}: a ${file.length}-byte file`);
    const o = guarded(`decodeManifest ${name}`, manifestGuard, () => decodeManifest(file, MANIFEST_DETAILS));
    t.equal(o.ok, false, `${name}: rejected`);
    if (!o.ok) t.match(o.error.message, /nested deeper than 200|more than 1048576 values/, `${name}: by the shape check`);
  }
  // The limits exactly: 200 levels of arrays and objects, 2^20 values.
  const nested = (n: number): string => `${'['.repeat(n)}${']'.repeat(n)}`;
  // The top object and "unprotected" are two levels.
  t.equal(
    outcome('depth 200', manifestGuard, () => decodeManifest(wrap(utf8(manifestText(nested(198)))), MANIFEST_DETAILS)),
    'ok',
  );
  t.equal(
    outcome('depth 201', manifestGuard, () => decodeManifest(wrap(utf8(manifestText(nested(199)))), MANIFEST_DETAILS)),
    'ERR_MANIFEST_CORRUPT',
  );
  const inArray = (n: number): string => `[${'0,'.repeat(n - 1)}0]`;
  // Values as FORMAT.md §5 counts them: 1 + opening brackets + commas, outside strings.
  const countValues = (text: string): number => 1 + (text.replace(/"(?:[^"\\]|\\.)*"/g, '').match(/[[{,]/g) ?? []).length;
  const fit = 2 ** 20 - countValues(manifestText('[0]')) + 1;
  t.equal(countValues(manifestText(inArray(fit))), 2 ** 20);
  // (Not guarded: parsing and re-encoding a million values takes a few hundred ms, legitimately.)
  t.equal(decodeManifest(lz4Manifest(manifestText(inArray(fit))), MANIFEST_DETAILS).files.length, 3, '2^20 values decode');
  t.equal(
    outcome('2^20 + 1 values', manifestGuard, () => decodeManifest(lz4Manifest(manifestText(inArray(fit + 1))), MANIFEST_DETAILS)),
    'ERR_MANIFEST_CORRUPT',
  );
  // Strings may hold anything: brackets and commas inside them do not count.
  t.equal(
    outcome('brackets in a string', manifestGuard, () => decodeManifest(lz4Manifest(manifestText(JSON.stringify(`\\"${'[,{'.repeat(500_000)}`))), MANIFEST_DETAILS)),
    'ok',
  );
  // The writer refuses what the reader would reject, so it never writes an unreadable manifest.
  const m = (extra: unknown): Manifest => ({ ...baseManifest(), unprotected: { extra } });
  const deep = (n: number): unknown => (n === 0 ? [] : [deep(n - 1)]);
  t.equal(
    outcome('encode depth 200', { codes: [] }, () => encodeManifest(m(deep(197)))),
    'ok',
  );
  t.equal(
    outcome('encode depth 201', { codes: ['ERR_INVALID_ARGUMENT'] }, () => encodeManifest(m(deep(198)))),
    'ERR_INVALID_ARGUMENT',
  );
  t.throws(() => encodeManifest(m(new Array(fit + 1).fill(0))), { code: 'ERR_INVALID_ARGUMENT', message: /more than 1048576 values/ }, 'encode 2^20 + 1 values');
});

t.test('regression: a manifest value that cannot be written back (1e999) is corrupt', async (t) => {
  // Found by the structural mutations: JSON.parse reads 1e999 as Infinity, which the manifest
  // accepted inside "unprotected"; the next verify or notes update then failed to encode it.
  for (const extra of ['1e999', '-1e999', '{"a":[1E400]}']) {
    const b = wrap(utf8(manifestText(extra)));
    const o = guarded('decodeManifest', manifestGuard, () => decodeManifest(b, MANIFEST_DETAILS));
    t.equal(o.ok, false, `${extra} is rejected`);
  }
  t.equal(
    outcome('finite', manifestGuard, () => decodeManifest(wrap(utf8(manifestText('[1e308,-0,0.5]'))), MANIFEST_DETAILS)),
    'ok',
  );
});

t.test('regression: 0000-02-29 is a valid config date (year 0 is a leap year)', async (t) => {
  // Date.UTC maps years 0-99 to 1900-1999, and 1900 is not a leap year.
  const c = { ...baseConfig(), created: '0000-02-29T00:00:00Z' };
  deepStrictEqual(decodeConfig(utf8(JSON.stringify(c))), c);
  t.equal(
    outcome('0100-02-29', { codes: ['ERR_CONFIG_CORRUPT'] }, () => decodeConfig(utf8(JSON.stringify({ ...c, created: '0100-02-29T00:00:00Z' })))),
    'ERR_CONFIG_CORRUPT',
  );
  t.equal(
    outcome('0004-02-29', { codes: ['ERR_CONFIG_CORRUPT'] }, () => decodeConfig(utf8(JSON.stringify({ ...c, created: '0004-02-29T00:00:00Z' })))),
    'ok',
  );
});

import t from 'tap';
import { createHash } from 'node:crypto';
import { Chunker, DEFAULT_CDC_PARAMS, resolveCdcParams, type CdcParams } from '../../lib/codec/chunker.js';
import { cdcMasks, gearTable, GEAR_SEED, jsCdcScan, spreadMask } from '../../lib/codec/gear.js';
import { nativeAvailable } from '../../lib/codec/native.js';

const KiB = 1024;
const MiB = 1024 * 1024;

/** Deterministic pseudo-random bytes (xorshift32 words, little-endian). */
function prng(n: number, seed: number): Uint8Array {
  const words = new Uint32Array(Math.ceil(n / 4));
  let x = seed >>> 0 || 1;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    words[i] = x;
  }
  return new Uint8Array(words.buffer, 0, n);
}

/** A small deterministic number generator for piece sizes. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 4294967296;
  };
}

/** Cuts `data` into pieces from 1 byte to several MiB. */
function pieces(data: Uint8Array, seed: number, maxPiece = 6 * MiB): Uint8Array[] {
  const r = rng(seed);
  const out: Uint8Array[] = [];
  let off = 0;
  while (off < data.length) {
    const c = r();
    let size: number;
    if (c < 0.15) size = 1 + Math.floor(r() * 16);
    else if (c < 0.55) size = 1 + Math.floor(r() * 4096);
    else if (c < 0.85) size = 4096 + Math.floor(r() * 256 * KiB);
    else size = 256 * KiB + Math.floor(r() * (maxPiece - 256 * KiB));
    out.push(data.subarray(off, Math.min(data.length, off + size)));
    off += size;
  }
  return out;
}

/** Chunk lengths found by driving `next()` piece by piece. */
function lengthsByNext(chunker: Chunker, parts: Uint8Array[]): number[] {
  chunker.reset();
  const lengths: number[] = [];
  let cur = 0;
  for (const part of parts) {
    let off = 0;
    while (off < part.length) {
      const cut = chunker.next(part.subarray(off));
      if (cut < 0) {
        cur += part.length - off;
        break;
      }
      lengths.push(cur + cut);
      cur = 0;
      off += cut;
    }
  }
  if (cur > 0) lengths.push(cur);
  chunker.reset();
  return lengths;
}

async function collect<T extends Uint8Array>(gen: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const c of gen) out.push(c);
  return out;
}

function sha(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

/** Compares two long number arrays quickly (tap's deep compare is slow on 50 000 items). */
function sameList(a: readonly number[], b: readonly number[]): string | true {
  if (a.length !== b.length) return `length ${a.length} vs ${b.length}`;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return `item ${i}: ${a[i]} vs ${b[i]}`;
  return true;
}

const scanners: ('js' | 'native')[] = nativeAvailable() ? ['js', 'native'] : ['js'];

t.test('gear table and masks are pinned', async (t) => {
  t.equal(GEAR_SEED, 0x43414952);
  const g = gearTable();
  t.equal(g.length, 256);
  t.equal(g[0], 0xc9531973);
  t.equal(g[1], 0xced0a1b5);
  t.equal(g[255], 0x616c8ffc);
  t.equal(createHash('sha256').update(g).digest('hex'), 'aaf22ec44142671dc8bfa60e4972e90363adab7c616576e8d67e34b2139f962a');
  g[0] = 0;
  t.equal(gearTable()[0], 0xc9531973, 'gearTable returns a copy');

  t.equal(spreadMask(4), 0xaa000000);
  t.equal(spreadMask(16), 0xaaaaaaaa);
  t.equal(spreadMask(20), 0xdadadada);
  t.equal(spreadMask(22), 0xedb6edb6);
  t.equal(spreadMask(32), 0xffffffff);
  for (let b = 1; b <= 32; b++) {
    const m = spreadMask(b);
    let ones = 0;
    for (let i = 0; i < 32; i++) ones += (m >>> i) & 1;
    t.equal(ones, b, `spreadMask(${b}) has ${b} bits`);
    t.equal(m >>> 31, 1, 'top bit set');
  }
  t.same(cdcMasks(MiB), { maskS: 0xedb6edb6, maskL: 0xd5aad5aa });
  t.same(cdcMasks(64), { maskS: 0xaaaa0000, maskL: 0xaa000000 });
  t.throws(() => cdcMasks(100), TypeError);
  t.throws(() => spreadMask(0), TypeError);
});

t.test('pinned boundaries of a fixed pseudo-random input', async (t) => {
  const small = prng(MiB, 0x12345678);
  const expectSmall = [
    16400, 5033, 16875, 20570, 29447, 16940, 25340, 26451, 22656, 17431, 18157, 17695, 21141, 17107, 20410, 18060, 20364, 28046, 23222, 12511, 18841, 18294, 23236, 21880, 18523,
    17286, 18331, 17101, 17378, 16904, 19420, 36910, 10651, 17315, 17415, 19867, 21062, 16479, 23821, 18193, 16613, 20226, 18195, 22223, 21253, 6193, 19958, 22573, 28096, 17067,
    14090, 7478, 18538, 18668, 6787, 7855,
  ];
  const big = prng(16 * MiB, 42);
  const expectBig = [965977, 2019169, 1076843, 302565, 1061905, 1439435, 1219374, 1229464, 1062993, 914267, 1091472, 1091293, 1191820, 1117011, 993628];
  for (const s of scanners) {
    t.same(Chunker.contentDefined({ min: 4096, avg: 16384, max: 65536 }, { scanner: s }).splitSync(small), expectSmall, `${s} small`);
    t.same(Chunker.contentDefined({}, { scanner: s }).splitSync(big), expectBig, `${s} default params`);
  }
});

const paramSets: Partial<CdcParams>[] = [
  { min: 64, avg: 64, max: 64 },
  { min: 64, avg: 256, max: 1024 },
  { min: 100, avg: 128, max: 129 },
  { min: 1024, avg: 4096, max: 16384 },
  { min: 4096, avg: 4096, max: 4096 * 3 + 7 },
  { avg: 64 * KiB },
  {},
  { min: 64, avg: MiB, max: 16 * MiB },
];
const sizes = [0, 1, 63, 64, 65, 1000, 100_000, 3 * MiB + 17, 20 * MiB];

t.test('native and js scans agree, whatever the pieces', async (t) => {
  let seed = 1;
  for (const params of paramSets) {
    for (const size of sizes) {
      if (size > 3 * MiB + 17 && (params.avg ?? MiB) < 4096) continue; // keep the run short
      seed++;
      const data = prng(size, seed * 7919);
      const ref = Chunker.contentDefined(params, { scanner: 'js' }).splitSync(data);
      t.equal(
        ref.reduce((a, b) => a + b, 0),
        size,
        'lengths add up',
      );
      const p = resolveCdcParams(params);
      for (let i = 0; i < ref.length - 1; i++) {
        const len = ref[i]!;
        if (len < p.min || len > p.max) t.fail(`chunk ${i} of ${len} bytes outside [${p.min}, ${p.max}]`);
      }
      if (ref.length > 0 && ref[ref.length - 1]! > p.max) t.fail('last chunk above max');
      for (const s of scanners) {
        const c = Chunker.contentDefined(params, { scanner: s });
        const label = `${s} ${JSON.stringify(params)} size ${size}`;
        t.equal(sameList(c.splitSync(data), ref), true, `${label} splitSync`);
        t.equal(sameList(lengthsByNext(c, pieces(data, seed)), ref), true, `${label} next() in random pieces`);
        const chunks = await collect(c.split(pieces(data, seed + 1000)));
        t.equal(
          sameList(
            chunks.map((x) => x.length),
            ref,
          ),
          true,
          `${label} split()`,
        );
        t.ok(Buffer.concat(chunks).equals(data), `${label} split() bytes are the input`);
      }
    }
  }
});

t.test('1-byte pieces', async (t) => {
  const data = prng(100_000, 99);
  const params = { min: 64, avg: 512, max: 2048 };
  const ref = Chunker.contentDefined(params, { scanner: 'js' }).splitSync(data);
  t.ok(ref.length > 50);
  const ones: Uint8Array[] = [];
  for (let i = 0; i < data.length; i++) ones.push(data.subarray(i, i + 1));
  for (const s of scanners) {
    const c = Chunker.contentDefined(params, { scanner: s });
    t.equal(sameList(lengthsByNext(c, ones), ref), true, `${s} next()`);
    t.equal(
      sameList(
        (await collect(c.split(ones))).map((x) => x.length),
        ref,
      ),
      true,
      `${s} split()`,
    );
  }
});

t.test('the raw scans agree on state, offsets and typed-array views', async (t) => {
  const data = prng(300_000, 5);
  const buf = Buffer.from(data); // pooled Buffer with a non-zero offset, probably
  const masks = cdcMasks(1024);
  const params = Uint32Array.of(256, 1024, 4096, masks.maskS, masks.maskL);
  const a = new Uint32Array(2);
  const b = new Uint32Array(2);
  const r = rng(3);
  let off = 0;
  const { nativeCdcScan } = await import('../../lib/codec/native.js');
  while (off < data.length) {
    const end = Math.min(data.length, off + 1 + Math.floor(r() * 3000));
    const x = jsCdcScan(data.subarray(off, end), a, params);
    const y = scanners.includes('native') ? nativeCdcScan(buf.subarray(off, end), b, params) : jsCdcScan(buf.subarray(off, end), b, params);
    if (x !== y || a[0] !== b[0] || a[1] !== b[1]) {
      t.fail(`mismatch at ${off}: ${x} vs ${y}, state ${String(a)} vs ${String(b)}`);
      return;
    }
    off = x < 0 ? end : off + x;
  }
  t.pass('identical');
  t.equal(jsCdcScan(new Uint8Array(0), a, params), -1, 'empty data continues the chunk');
});

t.test('determinism: new chunkers, repeated runs', async (t) => {
  const data = prng(5 * MiB, 77);
  const a = Chunker.contentDefined({ avg: 64 * KiB }).splitSync(data);
  const c = Chunker.contentDefined({ avg: 64 * KiB });
  t.same(c.splitSync(data), a);
  t.same(c.splitSync(data), a);
  t.same(Chunker.contentDefined({ min: 16 * KiB, avg: 64 * KiB, max: 256 * KiB }).splitSync(data), a, 'derived params');
});

t.test('an insertion or deletion changes only the chunks around it', async (t) => {
  const data = prng(32 * MiB, 2024);
  const mid = 16 * MiB + 12345;
  const inserted = new Uint8Array(data.length + 7);
  inserted.set(data.subarray(0, mid));
  inserted.set([1, 2, 3, 4, 5, 6, 7], mid);
  inserted.set(data.subarray(mid), mid + 7);
  const deleted = new Uint8Array(data.length - 5);
  deleted.set(data.subarray(0, mid));
  deleted.set(data.subarray(mid + 5), mid);

  for (const [params, minShare] of [
    [{ avg: 64 * KiB }, 0.99],
    [{}, 0.9],
  ] as const) {
    const c = Chunker.contentDefined(params);
    const digests = (buf: Uint8Array): string[] => {
      const out: string[] = [];
      let off = 0;
      for (const len of c.splitSync(buf)) {
        out.push(sha(buf.subarray(off, off + len)));
        off += len;
      }
      return out;
    };
    const base = new Set(digests(data));
    for (const [name, buf] of [
      ['insert', inserted],
      ['delete', deleted],
    ] as const) {
      const d = digests(buf);
      const shared = d.filter((x) => base.has(x)).length;
      t.ok(shared / d.length >= minShare, `${name} ${JSON.stringify(params)}: ${shared}/${d.length} chunks shared`);
      t.ok(d.length - shared <= 3, `${name}: at most 3 new chunks (${d.length - shared})`);
    }
  }
});

t.test('zero input gives max-size chunks', async (t) => {
  for (const s of scanners) {
    t.same(Chunker.contentDefined({}, { scanner: s }).splitSync(new Uint8Array(10 * MiB)), [4 * MiB, 4 * MiB, 2 * MiB], s);
    t.same(Chunker.contentDefined({ min: 64, avg: 64, max: 200 }, { scanner: s }).splitSync(new Uint8Array(1000)), [200, 200, 200, 200, 200]);
  }
});

t.test('fixed-size chunker', async (t) => {
  const c = Chunker.fixed(4096);
  t.equal(c.kind, 'fixed');
  t.equal(c.scanner, 'fixed');
  t.same(c.params, { min: 4096, avg: 4096, max: 4096 });
  t.same(c.splitSync(new Uint8Array(10_000)), [4096, 4096, 1808]);
  t.same(c.splitSync(new Uint8Array(8192)), [4096, 4096]);
  t.same(c.splitSync(new Uint8Array(0)), []);
  t.same(Chunker.fixed(1).splitSync(new Uint8Array(3)), [1, 1, 1]);
  t.same(Chunker.fixed(16 * MiB).splitSync(new Uint8Array(17 * MiB)), [16 * MiB, MiB]);
  t.same(Chunker.fixed(3000).splitSync(new Uint8Array(7000)), [3000, 3000, 1000], 'any size, not only powers of two');

  const data = prng(1_000_000, 8);
  t.same(lengthsByNext(c, pieces(data, 4, 100_000)), c.splitSync(data));
  t.equal(c.next(new Uint8Array(100)), -1);
  t.equal(c.chunkLength, 100);
  t.equal(c.next(new Uint8Array(0)), -1);
  t.equal(c.next(new Uint8Array(5000)), 3996);
  t.equal(c.chunkLength, 0);
  c.next(new Uint8Array(10));
  c.reset();
  t.equal(c.chunkLength, 0);
  t.equal(c.next(new Uint8Array(4096)), 4096);

  const chunks = await collect(Chunker.fixed(1000).split(pieces(data, 9, 5000)));
  t.same(
    chunks.map((x) => x.length),
    Chunker.fixed(1000).splitSync(data),
  );

  for (const bad of [0, -1, 1.5, 16 * MiB + 1, Number.NaN, Infinity, '4096' as unknown as number]) {
    t.throws(() => Chunker.fixed(bad), { code: 'ERR_INVALID_ARGUMENT' }, `fixed(${String(bad)})`);
  }
});

t.test('parameter validation', async (t) => {
  t.same(resolveCdcParams(), DEFAULT_CDC_PARAMS);
  t.same(DEFAULT_CDC_PARAMS, { min: 256 * KiB, avg: MiB, max: 4 * MiB });
  t.ok(Object.isFrozen(DEFAULT_CDC_PARAMS));
  t.same(resolveCdcParams({ avg: 65536 }), { min: 16384, avg: 65536, max: 262144 });
  t.same(resolveCdcParams({ avg: 64 }), { min: 64, avg: 64, max: 256 });
  t.same(resolveCdcParams({ avg: 16 * MiB }), { min: 4 * MiB, avg: 16 * MiB, max: 16 * MiB });
  t.same(Chunker.contentDefined({ min: 64, avg: 64, max: 64 }).params, { min: 64, avg: 64, max: 64 });
  const bad: Partial<CdcParams>[] = [
    { avg: 3000 },
    { avg: 0 },
    { avg: 32 },
    { min: 63, avg: 64, max: 64 },
    { min: 128, avg: 64, max: 256 },
    { min: 64, avg: 128, max: 100 },
    { max: 16 * MiB + 1 },
    { min: 64.5 },
    { avg: 32 * MiB },
    { avg: Number.NaN },
    { min: '64' as unknown as number },
  ];
  for (const p of bad) {
    t.throws(() => Chunker.contentDefined(p), { code: 'ERR_INVALID_ARGUMENT' }, JSON.stringify(p));
  }
  t.throws(() => Chunker.contentDefined({}, { scanner: 'simd' as 'js' }), { code: 'ERR_INVALID_ARGUMENT' });
  t.throws(() => resolveCdcParams(null as unknown as CdcParams), { code: 'ERR_INVALID_ARGUMENT' });
});

t.test('scanner choice', async (t) => {
  t.equal(Chunker.contentDefined({}, { scanner: 'js' }).scanner, 'js');
  const auto = Chunker.contentDefined();
  t.equal(auto.kind, 'cdc');
  t.equal(auto.scanner, nativeAvailable() ? 'native' : 'js');
  if (nativeAvailable()) t.equal(Chunker.contentDefined({}, { scanner: 'native' }).scanner, 'native');
  else t.throws(() => Chunker.contentDefined({}, { scanner: 'native' }), { code: 'ERR_NATIVE' });
});

t.test('next() keeps state across calls; reset() forgets it', async (t) => {
  for (const s of scanners) {
    const c = Chunker.contentDefined({ min: 64, avg: 64, max: 64 }, { scanner: s });
    const d = new Uint8Array(100);
    t.equal(c.next(d.subarray(0, 30)), -1);
    t.equal(c.chunkLength, 30);
    t.equal(c.next(d), 34);
    t.equal(c.chunkLength, 0);
    t.equal(c.next(d.subarray(0, 10)), -1);
    c.reset();
    t.equal(c.next(d), 64);
    t.equal(c.next(new Uint8Array(0)), -1);
  }
});

t.test('split() chunks own their buffers; sources may reuse buffers', async (t) => {
  const data = prng(3 * MiB, 11);
  const c = Chunker.contentDefined({ avg: 64 * KiB });
  const ref = c.splitSync(data);
  async function* reusing(): AsyncGenerator<Uint8Array> {
    const buf = new Uint8Array(10_000);
    for (let off = 0; off < data.length; off += buf.length) {
      const n = Math.min(buf.length, data.length - off);
      buf.set(data.subarray(off, off + n));
      yield buf.subarray(0, n);
      buf.fill(0xee);
    }
  }
  const chunks = await collect(c.split(reusing()));
  t.same(
    chunks.map((x) => x.length),
    ref,
  );
  let off = 0;
  let ok = true;
  for (const ch of chunks) {
    if (ch.byteOffset !== 0 || ch.byteLength !== ch.buffer.byteLength) ok = false;
    if (sha(ch) !== sha(data.subarray(off, off + ch.length))) ok = false;
    off += ch.length;
  }
  t.ok(ok, 'each chunk owns its whole ArrayBuffer and holds the right bytes');
  const first = chunks[0]!;
  const moved = structuredClone(first, { transfer: [first.buffer] });
  t.equal(first.byteLength, 0, 'transferred (detached), not copied');
  t.equal(moved.length, ref[0]);

  t.same(await collect(c.split([])), [], 'empty source');
  t.same(await collect(c.split([new Uint8Array(0), new Uint8Array(0)])), [], 'empty pieces');
  const tiny = await collect(c.split([Uint8Array.of(1, 2, 3)]));
  t.same(
    tiny.map((x) => [...x]),
    [[1, 2, 3]],
    'short last chunk',
  );
  await t.rejects(collect(c.split(['abc' as unknown as Uint8Array])), TypeError);

  // two splits at once, and next() state untouched
  c.next(new Uint8Array(10));
  const [x, y] = await Promise.all([collect(c.split([data])), collect(c.split(pieces(data, 12)))]);
  t.same(
    x.map((z) => z.length),
    ref,
  );
  t.same(
    y.map((z) => z.length),
    ref,
  );
  t.equal(c.chunkLength, 10);
});

t.test('abort', async (t) => {
  const data = prng(2 * MiB, 13);
  const c = Chunker.contentDefined({ avg: 64 * KiB });
  const pre = new AbortController();
  pre.abort();
  await t.rejects(collect(c.split([data], { signal: pre.signal })), { code: 'ERR_ABORTED', name: 'CairnError' });

  const ac = new AbortController();
  let seen = 0;
  const run = async (): Promise<void> => {
    for await (const _ of c.split(pieces(data, 14, 100_000), { signal: ac.signal })) {
      void _;
      if (++seen === 3) ac.abort(new Error('stop'));
    }
  };
  await t.rejects(run(), { code: 'ERR_ABORTED', name: 'CairnError' });
  t.equal(seen, 3, 'no chunk after the abort');

  const ac2 = new AbortController();
  async function* slow(): AsyncGenerator<Uint8Array> {
    yield data.subarray(0, 1000);
    ac2.abort();
    yield data.subarray(1000, 2000);
  }
  await t.rejects(collect(c.split(slow(), { signal: ac2.signal })), { code: 'ERR_ABORTED', name: 'CairnError' });
});

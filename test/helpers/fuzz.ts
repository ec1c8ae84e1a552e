/**
 * Test helper for decoder fuzzing (test/hardening): a guard that runs one decode call and enforces
 * the decoder contract (only CairnErrors with an expected code and the caller's details, bounded time
 * and memory), and byte-level mutations of valid encodings as fast-check arbitraries.
 *
 * Reproducible by default: every property uses {@link FUZZ_SEED}. `CAIRN_FUZZ_SEED=<int>` picks
 * another seed and `CAIRN_FUZZ_SCALE=<factor>` multiplies every run count (for long local runs).
 */
import fc from 'fast-check';
import { isCairnError, type ErrorCode } from '../../lib/errors.js';

/** The fast-check seed of every property (fixed, so CI runs are reproducible). */
export const FUZZ_SEED = Number.parseInt(process.env['CAIRN_FUZZ_SEED'] ?? '', 10) || 0x0ca1_4b3d;
const SCALE = Number(process.env['CAIRN_FUZZ_SCALE'] ?? '1') || 1;

/** fast-check parameters: the fixed seed and `runs` scaled by `CAIRN_FUZZ_SCALE`. */
export function fuzzParams(runs: number): { seed: number; numRuns: number } {
  return { seed: FUZZ_SEED, numRuns: Math.max(1, Math.round(runs * SCALE)) };
}

/** Longest a single decode call may take. */
export const MAX_CALL_MS = 500;
/** Most a single decode call may grow the heap, the ArrayBuffers, the RSS, or the peak RSS over the RSS before the call. */
export const MAX_GROWTH = 256 * 1024 * 1024;

const peakRss = (): number => process.resourceUsage().maxRSS * 1024;

/** How a guarded call ended. */
export type Outcome<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly code: ErrorCode | 'plain-error'; readonly error: Error };

/** What {@link guarded} accepts besides CairnErrors. */
export interface GuardOptions {
  /** The error codes the decoder may throw. */
  readonly codes: readonly ErrorCode[];
  /** Detail properties every error must carry unchanged. */
  readonly details?: Readonly<Record<string, unknown>>;
  /** Also allow a plain Error whose message matches (for primitives documented to throw plain Errors). */
  readonly plainError?: RegExp;
}

function describe(e: unknown): string {
  if (e instanceof Error) return `${e.constructor.name}: ${e.message}`;
  return `a non-Error ${typeof e}: ${String(e)}`;
}

/**
 * Runs `fn` (one decode call) and checks the decoder contract: it returns, or throws a CairnError
 * with one of `opts.codes` and the caller's details (or an allowed plain Error); it takes at most
 * {@link MAX_CALL_MS}; it grows neither heap, ArrayBuffers nor RSS by more than {@link MAX_GROWTH}, and
 * when it raises the process's peak RSS, the new peak is within {@link MAX_GROWTH} of the RSS before
 * the call (this catches a transient allocation that is freed before the call returns).
 * @throws Error describing the violation (fast-check reports it with the shrunk input).
 */
export function guarded<T>(what: string, opts: GuardOptions, fn: () => T): Outcome<T> {
  const m0 = process.memoryUsage();
  const peak0 = peakRss();
  const t0 = performance.now();
  let out: Outcome<T>;
  try {
    out = { ok: true, value: fn() };
  } catch (e) {
    if (isCairnError(e)) {
      if (!opts.codes.includes(e.code)) throw new Error(`${what}: threw ${e.code} (${e.message}), expected one of ${opts.codes.join(', ')}`, { cause: e });
      for (const [k, v] of Object.entries(opts.details ?? {})) {
        if (e.details[k] !== v) throw new Error(`${what}: ${e.code} lost detail ${k} (${String(e.details[k])} instead of ${String(v)})`, { cause: e });
      }
      out = { ok: false, code: e.code, error: e };
    } else if (opts.plainError !== undefined && e instanceof Error && e.constructor === Error && opts.plainError.test(e.message)) {
      out = { ok: false, code: 'plain-error', error: e };
    } else {
      throw new Error(`${what}: threw ${describe(e)} instead of a CairnError`, { cause: e });
    }
  }
  const ms = performance.now() - t0;
  const m1 = process.memoryUsage();
  if (ms > MAX_CALL_MS) throw new Error(`${what}: took ${ms.toFixed(0)} ms (limit ${MAX_CALL_MS} ms)`);
  const growth: [string, number][] = [
    ['heap', m1.heapUsed - m0.heapUsed],
    ['ArrayBuffers', m1.arrayBuffers - m0.arrayBuffers],
    ['RSS', m1.rss - m0.rss],
  ];
  const peak1 = peakRss();
  if (peak1 > peak0) growth.push(['peak RSS', peak1 - m0.rss]);
  for (const [k, n] of growth) {
    if (n > MAX_GROWTH) throw new Error(`${what}: ${k} grew by ${(n / 2 ** 20).toFixed(0)} MiB (limit ${MAX_GROWTH / 2 ** 20} MiB)`);
  }
  return out;
}

/** A fixed-width little-endian integer field of a format, for targeted mutations. */
export interface Field {
  /** Byte offset. */
  readonly at: number;
  /** Width in bytes. */
  readonly width: 1 | 2 | 4 | 8;
}

/** One byte-level change. Positions are taken modulo the current length when applied. */
export type Mutation =
  | { readonly op: 'flip'; readonly pos: number; readonly bit: number }
  | { readonly op: 'set'; readonly pos: number; readonly value: number }
  | { readonly op: 'truncate'; readonly len: number }
  | { readonly op: 'insert'; readonly pos: number; readonly bytes: Uint8Array }
  | { readonly op: 'delete'; readonly pos: number; readonly n: number }
  | { readonly op: 'copy'; readonly from: number; readonly to: number; readonly n: number }
  | { readonly op: 'field'; readonly field: number; readonly value: bigint }
  | { readonly op: 'int'; readonly pos: number; readonly width: 4 | 8; readonly value: bigint }
  | { readonly op: 'varint'; readonly pos: number; readonly replace: number; readonly value: bigint; readonly pad: number };

/** Values that break length and count fields: zero, sign and width boundaries, 2^53, all ones. */
export const HUGE_VALUES: readonly bigint[] = [
  0n,
  1n,
  0x7fn,
  0x80n,
  0xffn,
  0xffffn,
  0x7fff_ffffn,
  0x8000_0000n,
  0xffff_ffffn,
  0x1_0000_0000n,
  2n ** 52n,
  2n ** 53n - 1n,
  2n ** 53n,
  2n ** 63n - 1n,
  2n ** 63n,
  2n ** 64n - 1n,
];

const posArb = fc.nat({ max: 1 << 20 });
const valueArb = fc.oneof(fc.constantFrom(...HUGE_VALUES), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }));

/** One mutation; `fields` are the format's integer fields (targeted by the `field` op). */
export function mutationArb(fields: readonly Field[]): fc.Arbitrary<Mutation> {
  return fc.oneof(
    { arbitrary: fc.record({ op: fc.constant('flip' as const), pos: posArb, bit: fc.nat(7) }), weight: 3 },
    { arbitrary: fc.record({ op: fc.constant('set' as const), pos: posArb, value: fc.nat(255) }), weight: 2 },
    { arbitrary: fc.record({ op: fc.constant('truncate' as const), len: posArb }), weight: 1 },
    { arbitrary: fc.record({ op: fc.constant('insert' as const), pos: posArb, bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }), weight: 1 },
    { arbitrary: fc.record({ op: fc.constant('delete' as const), pos: posArb, n: fc.integer({ min: 1, max: 16 }) }), weight: 1 },
    { arbitrary: fc.record({ op: fc.constant('copy' as const), from: posArb, to: posArb, n: fc.integer({ min: 1, max: 64 }) }), weight: 1 },
    { arbitrary: fc.record({ op: fc.constant('field' as const), field: fc.nat(), value: valueArb }), weight: fields.length > 0 ? 3 : 0 },
    { arbitrary: fc.record({ op: fc.constant('int' as const), pos: posArb, width: fc.constantFrom(4 as const, 8 as const), value: valueArb }), weight: 1 },
    {
      arbitrary: fc.record({ op: fc.constant('varint' as const), pos: posArb, replace: fc.nat(9), value: valueArb, pad: fc.nat(3) }),
      weight: 1,
    },
  );
}

/** 1–4 mutations. */
export function mutationsArb(fields: readonly Field[]): fc.Arbitrary<Mutation[]> {
  return fc.array(mutationArb(fields), { minLength: 1, maxLength: 4 });
}

/** Unsigned LEB128 of `v`, with `pad` extra continuation groups (non-minimal when pad > 0). */
export function leb128(v: bigint, pad = 0): Uint8Array {
  const out: number[] = [];
  do {
    out.push(Number(v & 0x7fn));
    v >>= 7n;
  } while (v > 0n);
  for (let i = 0; i < pad; i++) out.push(0);
  for (let i = 0; i < out.length - 1; i++) out[i]! |= 0x80;
  return Uint8Array.from(out);
}

function writeInt(b: Uint8Array, at: number, width: number, value: bigint): void {
  if (at < 0 || at + width > b.length) return;
  for (let i = 0; i < width; i++) b[at + i] = Number((value >> BigInt(8 * i)) & 0xffn);
}

function splice(b: Uint8Array, at: number, remove: number, insert: Uint8Array): Uint8Array {
  const out = new Uint8Array(b.length - remove + insert.length);
  out.set(b.subarray(0, at), 0);
  out.set(insert, at);
  out.set(b.subarray(at + remove), at + insert.length);
  return out;
}

/** Applies `ms` to a copy of `bytes`. */
export function applyMutations(bytes: Uint8Array, ms: readonly Mutation[], fields: readonly Field[]): Uint8Array {
  let b: Uint8Array = Uint8Array.from(bytes);
  for (const m of ms) {
    const n = b.length;
    switch (m.op) {
      case 'flip':
        if (n > 0) b[m.pos % n]! ^= 1 << m.bit;
        break;
      case 'set':
        if (n > 0) b[m.pos % n] = m.value;
        break;
      case 'truncate':
        b = b.slice(0, m.len % (n + 1));
        break;
      case 'insert':
        b = splice(b, m.pos % (n + 1), 0, m.bytes);
        break;
      case 'delete': {
        const at = m.pos % (n + 1);
        b = splice(b, at, Math.min(m.n, n - at), new Uint8Array(0));
        break;
      }
      case 'copy':
        if (n > 0) {
          const from = m.from % n;
          b.copyWithin(m.to % n, from, Math.min(n, from + m.n));
        }
        break;
      case 'field': {
        const f = fields[m.field % Math.max(1, fields.length)];
        if (f !== undefined) writeInt(b, f.at, f.width, m.value);
        break;
      }
      case 'int':
        if (n > 0) writeInt(b, m.pos % n, m.width, m.value);
        break;
      case 'varint': {
        const at = m.pos % (n + 1);
        b = splice(b, at, Math.min(m.replace, n - at), leb128(m.value, m.pad));
        break;
      }
    }
  }
  return b;
}

/** Every single-bit flip of `bytes`: calls `fn` with a fresh copy per flip. */
export function forEachBitFlip(bytes: Uint8Array, fn: (b: Uint8Array, pos: number, bit: number) => void): void {
  for (let pos = 0; pos < bytes.length; pos++) {
    for (let bit = 0; bit < 8; bit++) {
      const b = Uint8Array.from(bytes);
      b[pos]! ^= 1 << bit;
      fn(b, pos, bit);
    }
  }
}

/**
 * Splitting byte streams into chunks (layer L1): gear content-defined chunking for streams and
 * trees, fixed-size chunking for images.
 *
 * The content-defined cut points are defined in `gear.ts` (gear table, masks, cut rule) and are
 * part of the storage format: the same bytes always cut at the same places, with either scanner.
 *
 * @module
 */
import { Buffer } from 'node:buffer';
import { CairnError, throwIfAborted } from '../errors.js';
import { cdcMasks, jsCdcScan } from './gear.js';
import { nativeAvailable, nativeCdcScan } from './native.js';

/** The largest chunk any {@link Chunker} produces: 16 MiB. */
export const MAX_CHUNK_SIZE = 16 * 1024 * 1024;

/** The smallest allowed `min` of content-defined chunking: 64 bytes. */
export const MIN_CDC_SIZE = 64;

/**
 * Sizes of content-defined chunking, in bytes.
 * @category Building blocks
 */
export interface CdcParams {
  /** No cut before a chunk has this many bytes. At least 64. */
  readonly min: number;
  /** The target average; a power of two with `min <= avg <= max`. */
  readonly avg: number;
  /** A chunk is always cut at this many bytes. At most 16 MiB. */
  readonly max: number;
}

/**
 * The default content-defined sizes: `{ min: 256 KiB, avg: 1 MiB, max: 4 MiB }`.
 * @category Building blocks
 */
export const DEFAULT_CDC_PARAMS: Readonly<CdcParams> = Object.freeze({
  min: 256 * 1024,
  avg: 1024 * 1024,
  max: 4 * 1024 * 1024,
});

/**
 * What kind of cut points a {@link Chunker} makes.
 * @category Building blocks
 */
export type ChunkerKind = 'cdc' | 'fixed';

/**
 * Which implementation finds the cut points: the native addon, the TypeScript reference (both
 * give identical results), or `'fixed'` for fixed-size chunkers.
 * @category Building blocks
 */
export type ChunkerScanner = 'native' | 'js' | 'fixed';

/**
 * Options of {@link Chunker.contentDefined}.
 * @category Building blocks
 */
export interface ContentDefinedOptions {
  /**
   * `'auto'` (default) uses the native addon when it is built and the TypeScript scan otherwise;
   * `'native'` requires the addon (else `ERR_NATIVE`); `'js'` always uses TypeScript.
   */
  readonly scanner?: 'auto' | 'native' | 'js';
}

/**
 * Options of {@link Chunker.split}.
 * @category Building blocks
 */
export interface SplitOptions {
  /** Aborts the split with `ERR_ABORTED`; checked between input pieces and between chunks. */
  readonly signal?: AbortSignal;
}

type ScanFn = (data: Uint8Array, state: Uint32Array, params: Uint32Array) => number;

function invalid(message: string, params: Partial<CdcParams>): CairnError {
  const details: Record<string, number> = {};
  for (const k of ['min', 'avg', 'max'] as const) {
    const v = params[k];
    if (typeof v === 'number') details[k] = v;
  }
  return new CairnError('ERR_INVALID_ARGUMENT', message, details);
}

function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
}

/**
 * Fills in and checks content-defined sizes.
 *
 * Missing fields are derived from the given ones: `avg` defaults to 1 MiB, `min` to `avg / 4` (at
 * least 64) and `max` to `avg * 4` (at most 16 MiB), so `{ avg: 65536 }` means
 * `{ min: 16384, avg: 65536, max: 262144 }`.
 *
 * @param params - some or all of the sizes
 * @returns the complete, frozen sizes
 * @throws `ERR_INVALID_ARGUMENT` unless all are integers, `avg` is a power of two, and
 *   `64 <= min <= avg <= max <= 16 MiB`
 * @category Building blocks
 */
export function resolveCdcParams(params: Partial<CdcParams> = {}): Readonly<CdcParams> {
  if (typeof params !== 'object' || params === null) throw new CairnError('ERR_INVALID_ARGUMENT', 'CDC params must be an object');
  const avg = params.avg ?? DEFAULT_CDC_PARAMS.avg;
  const min = params.min ?? Math.max(MIN_CDC_SIZE, Math.floor(avg / 4));
  const max = params.max ?? Math.min(MAX_CHUNK_SIZE, avg * 4);
  const all = { min, avg, max };
  for (const k of ['min', 'avg', 'max'] as const) {
    if (typeof all[k] !== 'number' || !Number.isInteger(all[k])) throw invalid(`CDC ${k} must be an integer, got ${String(all[k])}`, params);
  }
  if (!isPowerOfTwo(avg)) throw invalid(`CDC avg must be a power of two, got ${avg}`, params);
  if (!(MIN_CDC_SIZE <= min && min <= avg && avg <= max && max <= MAX_CHUNK_SIZE)) {
    throw invalid(`CDC sizes must satisfy 64 <= min <= avg <= max <= 16 MiB, got min ${min}, avg ${avg}, max ${max}`, params);
  }
  return Object.freeze(all);
}

/** Allocates an unpooled byte array that owns its whole ArrayBuffer (so it can be transferred). */
function ownedBytes(n: number): Uint8Array<ArrayBuffer> {
  return new Uint8Array(Buffer.allocUnsafeSlow(n).buffer as ArrayBuffer, 0, n);
}

const EMPTY = new Uint8Array(0);

/**
 * Cuts a byte stream into chunks: content-defined (gear hash, normalised chunking) or fixed-size.
 *
 * A Chunker can be driven byte-range by byte-range with {@link Chunker.next} (it keeps the
 * position inside the current chunk), or it can split a whole source with {@link Chunker.split}
 * or {@link Chunker.splitSync}, which keep their own state and do not disturb `next`.
 * Content-defined cut points depend only on the bytes, never on how the input was cut into pieces
 * or on which scanner ran.
 *
 * @example
 * ```ts
 * import { createReadStream } from 'node:fs';
 *
 * const chunker = Chunker.contentDefined();            // 256 KiB / 1 MiB / 4 MiB
 * for await (const chunk of chunker.split(createReadStream('disk.img'), { signal })) {
 *   await pool.run(chunk, { transferList: [chunk.buffer] }); // each chunk owns its buffer
 * }
 *
 * // Driving it by hand: find where the current chunk ends.
 * const c = Chunker.contentDefined({ avg: 64 * 1024 });
 * const n = c.next(piece);   // -1: the chunk goes on past `piece`; else bytes of `piece` in it
 *
 * Chunker.fixed(4 * 1024 * 1024).splitSync(new Uint8Array(10 << 20)); // [4194304, 4194304, 2097152]
 * ```
 * @category Building blocks
 */
export class Chunker {
  /** `'cdc'` for content-defined chunking, `'fixed'` for fixed-size chunks. */
  readonly kind: ChunkerKind;
  /**
   * The chunk sizes. For a fixed-size chunker `min`, `avg` and `max` all equal the chunk size.
   * Every chunk is at most `max` bytes; every chunk but the last is at least `min` bytes.
   */
  readonly params: Readonly<CdcParams>;
  /** Which implementation finds the cut points. */
  readonly scanner: ChunkerScanner;

  readonly #scan: ScanFn | undefined;
  readonly #p: Uint32Array;
  readonly #state = new Uint32Array(2);

  private constructor(kind: ChunkerKind, params: Readonly<CdcParams>, scanner: ChunkerScanner, scan: ScanFn | undefined) {
    this.kind = kind;
    this.params = params;
    this.scanner = scanner;
    this.#scan = scan;
    const masks = kind === 'cdc' ? cdcMasks(params.avg) : { maskS: 0, maskL: 0 };
    this.#p = Uint32Array.of(params.min, params.avg, params.max, masks.maskS, masks.maskL);
  }

  /**
   * A content-defined chunker.
   *
   * @param params - sizes; missing ones are derived as in {@link resolveCdcParams}; defaults to
   *   {@link DEFAULT_CDC_PARAMS}
   * @param options - which scanner to use
   * @returns a new chunker at the start of a chunk
   * @throws `ERR_INVALID_ARGUMENT` on bad sizes or scanner; `ERR_NATIVE` with `scanner: 'native'`
   *   when the addon is not built
   */
  static contentDefined(params: Partial<CdcParams> = {}, options: ContentDefinedOptions = {}): Chunker {
    const resolved = resolveCdcParams(params);
    const choice = options.scanner ?? 'auto';
    if (choice === 'js' || (choice === 'auto' && !nativeAvailable())) return new Chunker('cdc', resolved, 'js', jsCdcScan);
    if (choice !== 'native' && choice !== 'auto') {
      throw new CairnError('ERR_INVALID_ARGUMENT', `scanner must be 'auto', 'native' or 'js', got ${String(choice)}`);
    }
    const chunker = new Chunker('cdc', resolved, 'native', nativeCdcScan);
    nativeCdcScan(EMPTY, new Uint32Array(2), chunker.#p); // loads the addon: ERR_NATIVE when missing
    return chunker;
  }

  /**
   * A fixed-size chunker: every chunk has `size` bytes except a shorter last one.
   *
   * @param size - the chunk size, an integer from 1 to 16 MiB (images use powers of two)
   * @returns a new chunker at the start of a chunk
   * @throws `ERR_INVALID_ARGUMENT` when `size` is out of range
   */
  static fixed(size: number): Chunker {
    if (typeof size !== 'number' || !Number.isInteger(size) || size < 1 || size > MAX_CHUNK_SIZE) {
      throw new CairnError('ERR_INVALID_ARGUMENT', `fixed chunk size must be an integer from 1 to 16 MiB, got ${String(size)}`, {
        size: typeof size === 'number' ? size : String(size),
      });
    }
    return new Chunker('fixed', Object.freeze({ min: size, avg: size, max: size }), 'fixed', undefined);
  }

  /** How many bytes the current chunk of {@link Chunker.next} holds so far. */
  get chunkLength(): number {
    return this.#state[0] ?? 0;
  }

  /**
   * Feeds the next bytes of the current chunk.
   *
   * @param data - the bytes that follow those already fed (may be empty)
   * @returns the number of bytes at the start of `data` that complete the current chunk (1 to
   *   `data.length`; the chunker then starts a new chunk, and the caller feeds the rest of `data`
   *   again), or -1 when the whole of `data` belongs to a chunk that goes on
   */
  next(data: Uint8Array): number {
    return this.#feed(data, this.#state);
  }

  /** Forgets the current chunk of {@link Chunker.next}: the next byte starts a new chunk. */
  reset(): void {
    this.#state[0] = 0;
    this.#state[1] = 0;
  }

  /**
   * Splits a source into chunks.
   *
   * Each chunk is a fresh `Uint8Array` that owns its whole `ArrayBuffer` (offset 0, unpooled), so
   * it can be transferred to a worker thread. The last chunk may be shorter than `min`; an empty
   * source yields nothing. Bytes are copied out of each input piece before the next one is
   * requested, so a source may reuse its buffers. Memory stays bounded by about `max` plus one
   * input piece. This uses its own state: it does not touch the state of {@link Chunker.next}, and
   * several splits may run at once.
   *
   * @param source - the bytes, in pieces of any size (Node streams qualify)
   * @param options - an optional abort signal
   * @returns an async generator of chunks
   * @throws `ERR_ABORTED` when the signal fires; TypeError when the source yields a non-Uint8Array
   */
  async *split(source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, options: SplitOptions = {}): AsyncGenerator<Uint8Array<ArrayBuffer>> {
    const signal = options.signal;
    throwIfAborted(signal);
    const state = new Uint32Array(2);
    let acc = EMPTY;
    let accLen = 0;
    for await (const piece of source) {
      throwIfAborted(signal);
      if (!(piece instanceof Uint8Array)) throw new TypeError('Chunker.split: the source must yield Uint8Arrays');
      const n = piece.length;
      let off = 0;
      while (off < n) {
        const view = off === 0 ? piece : piece.subarray(off);
        const cut = this.#feed(view, state);
        if (cut < 0) {
          const need = accLen + view.length;
          if (need > acc.length) {
            const grown = new Uint8Array(Math.min(this.params.max, Math.max(need, 2 * acc.length, 65536)));
            grown.set(acc.subarray(0, accLen));
            acc = grown;
          }
          acc.set(view, accLen);
          accLen = need;
          break;
        }
        const chunk = ownedBytes(accLen + cut);
        if (accLen > 0) chunk.set(acc.subarray(0, accLen));
        chunk.set(cut === view.length ? view : view.subarray(0, cut), accLen);
        accLen = 0;
        off += cut;
        yield chunk;
        throwIfAborted(signal);
      }
    }
    if (accLen > 0) {
      const chunk = ownedBytes(accLen);
      chunk.set(acc.subarray(0, accLen));
      yield chunk;
    }
  }

  /**
   * Splits one buffer and returns the chunk lengths (handy for tests and benchmarks).
   *
   * @param data - the whole input
   * @returns the chunk lengths in order; they add up to `data.length` (empty input: `[]`)
   */
  splitSync(data: Uint8Array): number[] {
    const state = new Uint32Array(2);
    const lengths: number[] = [];
    let off = 0;
    while (off < data.length) {
      const cut = this.#feed(off === 0 ? data : data.subarray(off), state);
      if (cut < 0) {
        lengths.push(data.length - off);
        break;
      }
      lengths.push(cut);
      off += cut;
    }
    return lengths;
  }

  /** The one place that finds a cut: content-defined scan or fixed-size count. */
  #feed(data: Uint8Array, state: Uint32Array): number {
    const scan = this.#scan;
    if (scan !== undefined) return scan(data, state, this.#p);
    const len = state[0] ?? 0;
    const need = this.params.max - len;
    if (data.length >= need) {
      state[0] = 0;
      return need;
    }
    state[0] = len + data.length;
    return -1;
  }
}

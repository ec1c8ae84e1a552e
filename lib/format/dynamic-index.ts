/**
 * Dynamic index, `.didx` (layer L1): the chunk list of a content-defined stream (tree archives).
 *
 * File = 128-byte header (see `lib/format/FORMAT.md`; magic `CAIRNDIX`) followed by `count` 40-byte
 * entries `(end u64 LE, digest[32])`, where `end` is the stream offset just past the chunk. Ends are
 * strictly increasing and the last end equals the header's size. The header checksum is BLAKE3 of
 * the whole entry area as stored. BLAKE3 must be initialised in the calling thread (`initHash()`).
 */
import { CairnError, type ErrorDetails } from '../errors.js';
import { DIGEST_SIZE, indexChecksum } from '../codec/hash.js';
import { equalBytes, readU64LE, toHex, writeU64LE } from '../util/bytes.js';
import { checkIdentity, INDEX_HEADER_SIZE, type IndexIdentity, indexLabel, OFF, parseIndexHeader, writeIndexHeader } from './index-header.js';
import { DYNAMIC_INDEX_MAGIC, DYNAMIC_INDEX_VERSION } from './magic.js';
import type { ByteSpan } from './fixed-index.js';

/** Size of one dynamic index entry: end offset (8) + digest (32). */
export const DYNAMIC_ENTRY_SIZE = 8 + DIGEST_SIZE;

/**
 * A decoded dynamic index.
 * @category Formats
 */
export interface DynamicIndex {
  /** The index's uuid (16 bytes). */
  readonly uuid: Uint8Array;
  /** Creation time, Unix seconds. */
  readonly ctime: number;
  /** Stream size in bytes (= the last end, 0 when empty). */
  readonly size: number;
  /** Number of chunks. */
  readonly count: number;
  /** BLAKE3 of {@link DynamicIndex.entries} (already verified). */
  readonly checksum: Uint8Array;
  /** The raw entry area, `count × 40` bytes: a subarray of the decoded file, not a copy. */
  readonly entries: Uint8Array;
  /** End offset (exclusive) of chunk `i`. @throws RangeError when `i` is out of range. */
  endAt(i: number): number;
  /** Digest of chunk `i` (a subarray, not a copy). @throws RangeError when `i` is out of range. */
  digestAt(i: number): Uint8Array;
  /** Byte range `[start, end)` of chunk `i` in the stream. @throws RangeError when `i` is out of range. */
  chunkRange(i: number): ByteSpan;
  /** Index of the chunk holding byte `offset` (binary search), or -1 when outside `[0, size)`. */
  find(offset: number): number;
}

/** The dynamic index checksum: BLAKE3 of the entry area (`end ‖ digest` entries as stored). */
export function dynamicIndexChecksum(entries: Uint8Array): Uint8Array {
  return indexChecksum(entries);
}

/**
 * Checks an entry area and returns its end offsets.
 * Calls `fail` (which throws) on the first problem.
 */
function readEnds(entries: Uint8Array, fail: (what: string) => never): Float64Array {
  const count = entries.length / DYNAMIC_ENTRY_SIZE;
  const ends = new Float64Array(count);
  let prev = 0;
  for (let i = 0; i < count; i++) {
    let end: number;
    try {
      end = readU64LE(entries, i * DYNAMIC_ENTRY_SIZE);
    } catch {
      return fail(`end offset of chunk ${i} exceeds 2^53 - 1`);
    }
    if (end <= prev) fail(`end offset ${end} of chunk ${i} does not exceed the previous end ${prev}`);
    ends[i] = end;
    prev = end;
  }
  return ends;
}

/**
 * Encodes a whole `.didx` file from a ready entry area.
 * @param entries - `count × 40` bytes of `(end u64 LE, digest)` with strictly increasing ends > 0
 * @throws `ERR_INVALID_ARGUMENT` for a bad uuid, ctime or entry area.
 */
export function encodeDynamicIndex(id: IndexIdentity, entries: Uint8Array): Uint8Array {
  checkIdentity('dynamic index', id);
  if (entries.length % DYNAMIC_ENTRY_SIZE !== 0) {
    throw new CairnError('ERR_INVALID_ARGUMENT', `dynamic index: entry area of ${entries.length} bytes is not a multiple of ${DYNAMIC_ENTRY_SIZE}`);
  }
  const ends = readEnds(entries, (what) => {
    throw new CairnError('ERR_INVALID_ARGUMENT', `dynamic index: ${what}`);
  });
  const count = ends.length;
  const size = count === 0 ? 0 : ends[count - 1]!;
  const out = new Uint8Array(INDEX_HEADER_SIZE + entries.length);
  out.set(entries, INDEX_HEADER_SIZE);
  writeIndexHeader(out, DYNAMIC_INDEX_MAGIC, DYNAMIC_INDEX_VERSION, id, size, count, dynamicIndexChecksum(entries), () => {});
  return out;
}

class DynamicIndexImpl implements DynamicIndex {
  readonly #ends: Float64Array;

  constructor(
    readonly uuid: Uint8Array,
    readonly ctime: number,
    readonly size: number,
    readonly count: number,
    readonly checksum: Uint8Array,
    readonly entries: Uint8Array,
    ends: Float64Array,
  ) {
    this.#ends = ends;
  }

  private check(i: number): void {
    if (!Number.isInteger(i) || i < 0 || i >= this.count) {
      throw new RangeError(`dynamic index: chunk ${i} is out of range [0, ${this.count})`);
    }
  }

  endAt(i: number): number {
    this.check(i);
    return this.#ends[i]!;
  }

  digestAt(i: number): Uint8Array {
    this.check(i);
    const o = i * DYNAMIC_ENTRY_SIZE + 8;
    return this.entries.subarray(o, o + DIGEST_SIZE);
  }

  chunkRange(i: number): ByteSpan {
    this.check(i);
    return { start: i === 0 ? 0 : this.#ends[i - 1]!, end: this.#ends[i]! };
  }

  find(offset: number): number {
    if (!(offset >= 0 && offset < this.size)) return -1;
    // First chunk whose end is greater than offset.
    let lo = 0;
    let hi = this.count - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#ends[mid]! > offset) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }
}

/**
 * Decodes and fully checks a `.didx` file (header CRC, layout, strictly increasing ends, last end =
 * size, body checksum).
 * @param details - ids for the errors (archive, path, snapshot, ...)
 * @throws `ERR_FORMAT_VERSION` for a newer format version, `ERR_INDEX_CORRUPT` for any inconsistency.
 */
export function decodeDynamicIndex(bytes: Uint8Array, details: ErrorDetails = {}): DynamicIndex {
  const label = indexLabel('dynamic index', details);
  const fail = (what: string): never => {
    throw new CairnError('ERR_INDEX_CORRUPT', `${label} is corrupt: ${what}`, details);
  };
  const h = parseIndexHeader(bytes, DYNAMIC_INDEX_MAGIC, DYNAMIC_INDEX_VERSION, fail, label, details);
  for (let i = OFF.kind; i < OFF.count; i++) if (bytes[i] !== 0) fail(`reserved header byte ${i} is not zero`);
  const expectLength = INDEX_HEADER_SIZE + h.count * DYNAMIC_ENTRY_SIZE;
  if (bytes.length !== expectLength) fail(`file is ${bytes.length} bytes, header implies ${expectLength}`);
  const entries = bytes.subarray(INDEX_HEADER_SIZE);
  const actual = dynamicIndexChecksum(entries);
  if (!equalBytes(actual, h.checksum)) fail(`checksum is ${toHex(actual)}, header says ${toHex(h.checksum)}`);
  const ends = readEnds(entries, fail);
  const last = h.count === 0 ? 0 : ends[h.count - 1]!;
  if (last !== h.size) fail(`last end offset ${last} does not equal size ${h.size}`);
  return new DynamicIndexImpl(h.uuid, h.ctime, h.size, h.count, h.checksum, entries, ends);
}

/** Builds a `.didx` file incrementally, one chunk at a time in stream order. */
export class DynamicIndexBuilder {
  #buf = new Uint8Array(64 * DYNAMIC_ENTRY_SIZE);
  #count = 0;
  #size = 0;

  /** Bytes of stream covered so far (the last end). */
  get size(): number {
    return this.#size;
  }

  /** Chunks appended so far. */
  get count(): number {
    return this.#count;
  }

  /**
   * Appends the next chunk.
   * @param length - the chunk's length in bytes (> 0); its end offset is `size + length`
   * @param digest - the chunk's 32-byte digest (copied)
   * @throws `ERR_INVALID_ARGUMENT` for a length that is not a positive integer, a digest that is not
   *   32 bytes, or a stream larger than 2^53 - 1 bytes.
   */
  append(length: number, digest: Uint8Array): this {
    if (!Number.isSafeInteger(length) || length <= 0) {
      throw new CairnError('ERR_INVALID_ARGUMENT', `dynamic index: chunk length must be a positive integer, got ${length}`);
    }
    if (digest.length !== DIGEST_SIZE) {
      throw new CairnError('ERR_INVALID_ARGUMENT', `dynamic index: digest must be ${DIGEST_SIZE} bytes, got ${digest.length}`);
    }
    const end = this.#size + length;
    if (!Number.isSafeInteger(end)) throw new CairnError('ERR_INVALID_ARGUMENT', 'dynamic index: stream exceeds 2^53 - 1 bytes');
    const need = (this.#count + 1) * DYNAMIC_ENTRY_SIZE;
    if (need > this.#buf.length) {
      const bigger = new Uint8Array(Math.max(need, this.#buf.length * 2));
      bigger.set(this.#buf.subarray(0, this.#count * DYNAMIC_ENTRY_SIZE));
      this.#buf = bigger;
    }
    const o = this.#count * DYNAMIC_ENTRY_SIZE;
    writeU64LE(this.#buf, o, end);
    this.#buf.set(digest, o + 8);
    this.#count++;
    this.#size = end;
    return this;
  }

  /**
   * Encodes the `.didx` file. The builder stays usable (more appends, another finish).
   * @throws `ERR_INVALID_ARGUMENT` for a bad uuid or ctime.
   */
  finish(id: IndexIdentity): Uint8Array {
    return encodeDynamicIndex(id, this.#buf.subarray(0, this.#count * DYNAMIC_ENTRY_SIZE));
  }
}

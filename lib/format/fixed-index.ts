/**
 * Fixed index, `.fidx` (layer L1): the chunk list of an image, all chunks `chunkSize` bytes except
 * possibly the last.
 *
 * File = 128-byte header (see `lib/format/FORMAT.md`; magic `CAIRNFIX`, chunkSize u32 LE at offset 48)
 * followed by `count` 32-byte BLAKE3 digests, `count = ceil(size / chunkSize)`. The header checksum
 * is BLAKE3 of the concatenated digests. BLAKE3 must be initialised in the calling thread
 * (`initHash()`).
 */
import { CairnError, type ErrorDetails } from '../errors.js';
import { DIGEST_SIZE, indexChecksum } from '../codec/hash.js';
import { equalBytes, toHex } from '../util/bytes.js';
import { checkIdentity, INDEX_HEADER_SIZE, type IndexIdentity, indexLabel, OFF, parseIndexHeader, writeIndexHeader } from './index-header.js';
import { FIXED_INDEX_MAGIC, FIXED_INDEX_VERSION } from './magic.js';

/** Smallest chunk size a fixed index accepts: 4 KiB. */
export const FIXED_MIN_CHUNK_SIZE = 4 * 1024;
/** Largest chunk size a fixed index accepts: 16 MiB. */
export const FIXED_MAX_CHUNK_SIZE = 16 * 1024 * 1024;

/** What {@link encodeFixedIndex} needs besides the digests. */
export interface FixedIndexHeaderInput extends IndexIdentity {
  /** Image size in bytes. */
  readonly size: number;
  /** Chunk size: a power of two from 4 KiB to 16 MiB. */
  readonly chunkSize: number;
}

/**
 * A half-open byte range `[start, end)` of an archive.
 * @category Formats
 */
export interface ByteSpan {
  /** First byte. */
  readonly start: number;
  /** One past the last byte. */
  readonly end: number;
}

/**
 * A decoded fixed index.
 * @category Formats
 */
export interface FixedIndex {
  /** The index's uuid (16 bytes). */
  readonly uuid: Uint8Array;
  /** Creation time, Unix seconds. */
  readonly ctime: number;
  /** Image size in bytes. */
  readonly size: number;
  /** Chunk size in bytes. */
  readonly chunkSize: number;
  /** Number of chunks: `ceil(size / chunkSize)`. */
  readonly count: number;
  /** BLAKE3 of {@link FixedIndex.digests} (already verified). */
  readonly checksum: Uint8Array;
  /** All digests, `count × 32` bytes: a subarray of the decoded file, not a copy. */
  readonly digests: Uint8Array;
  /** Digest of chunk `i` (a subarray, not a copy). @throws RangeError when `i` is out of range. */
  digestAt(i: number): Uint8Array;
  /** Byte range `[start, end)` of chunk `i` in the image. @throws RangeError when `i` is out of range. */
  chunkRange(i: number): ByteSpan;
  /** Index of the chunk holding byte `offset`, or -1 when `offset` is outside `[0, size)`. */
  find(offset: number): number;
}

/** True when `n` is a power of two from 4 KiB to 16 MiB. */
export function isValidFixedChunkSize(n: number): boolean {
  return Number.isInteger(n) && n >= FIXED_MIN_CHUNK_SIZE && n <= FIXED_MAX_CHUNK_SIZE && (n & (n - 1)) === 0;
}

/** Number of chunks of an image: `ceil(size / chunkSize)`. */
export function fixedChunkCount(size: number, chunkSize: number): number {
  return Math.ceil(size / chunkSize);
}

/** The fixed index checksum: BLAKE3 of the concatenated digests. */
export function fixedIndexChecksum(digests: Uint8Array): Uint8Array {
  return indexChecksum(digests);
}

function checkHeaderInput(h: FixedIndexHeaderInput): number {
  checkIdentity('fixed index', h);
  if (!Number.isSafeInteger(h.size) || h.size < 0) {
    throw new CairnError('ERR_INVALID_ARGUMENT', `fixed index: size must be a non-negative integer, got ${h.size}`);
  }
  if (!isValidFixedChunkSize(h.chunkSize)) {
    throw new CairnError('ERR_INVALID_ARGUMENT', `fixed index: chunk size ${h.chunkSize} is not a power of two from 4 KiB to 16 MiB`);
  }
  return fixedChunkCount(h.size, h.chunkSize);
}

/**
 * Encodes a whole `.fidx` file.
 * @param digests - `ceil(size / chunkSize) × 32` bytes, chunk digests in image order
 * @throws `ERR_INVALID_ARGUMENT` for a bad uuid, ctime, size, chunk size or digest count.
 */
export function encodeFixedIndex(header: FixedIndexHeaderInput, digests: Uint8Array): Uint8Array {
  const count = checkHeaderInput(header);
  if (digests.length !== count * DIGEST_SIZE) {
    throw new CairnError('ERR_INVALID_ARGUMENT', `fixed index: ${header.size} bytes in chunks of ${header.chunkSize} need ${count} digests, got ${digests.length / DIGEST_SIZE}`);
  }
  const out = new Uint8Array(INDEX_HEADER_SIZE + digests.length);
  out.set(digests, INDEX_HEADER_SIZE);
  writeIndexHeader(out, FIXED_INDEX_MAGIC, FIXED_INDEX_VERSION, header, header.size, count, fixedIndexChecksum(digests), (h) => {
    new DataView(h.buffer, h.byteOffset).setUint32(OFF.kind, header.chunkSize, true);
  });
  return out;
}

class FixedIndexImpl implements FixedIndex {
  constructor(
    readonly uuid: Uint8Array,
    readonly ctime: number,
    readonly size: number,
    readonly chunkSize: number,
    readonly count: number,
    readonly checksum: Uint8Array,
    readonly digests: Uint8Array,
  ) {}

  private check(i: number): void {
    if (!Number.isInteger(i) || i < 0 || i >= this.count) {
      throw new RangeError(`fixed index: chunk ${i} is out of range [0, ${this.count})`);
    }
  }

  digestAt(i: number): Uint8Array {
    this.check(i);
    return this.digests.subarray(i * DIGEST_SIZE, (i + 1) * DIGEST_SIZE);
  }

  chunkRange(i: number): ByteSpan {
    this.check(i);
    const start = i * this.chunkSize;
    return { start, end: Math.min(this.size, start + this.chunkSize) };
  }

  find(offset: number): number {
    if (!(offset >= 0 && offset < this.size)) return -1;
    return Math.floor(offset / this.chunkSize);
  }
}

/**
 * Decodes and fully checks a `.fidx` file (header CRC, layout, body checksum).
 * @param details - ids for the errors (archive, path, snapshot, ...)
 * @throws `ERR_FORMAT_VERSION` for a newer format version, `ERR_INDEX_CORRUPT` for any inconsistency.
 */
export function decodeFixedIndex(bytes: Uint8Array, details: ErrorDetails = {}): FixedIndex {
  const label = indexLabel('fixed index', details);
  const fail = (what: string): never => {
    throw new CairnError('ERR_INDEX_CORRUPT', `${label} is corrupt: ${what}`, details);
  };
  const h = parseIndexHeader(bytes, FIXED_INDEX_MAGIC, FIXED_INDEX_VERSION, fail, label, details);
  const v = new DataView(bytes.buffer, bytes.byteOffset, INDEX_HEADER_SIZE);
  const chunkSize = v.getUint32(OFF.kind, true);
  if (v.getUint32(OFF.kind + 4, true) !== 0) fail('reserved field after chunk size is not zero');
  if (!isValidFixedChunkSize(chunkSize)) fail(`chunk size ${chunkSize} is not a power of two from 4 KiB to 16 MiB`);
  const expectCount = fixedChunkCount(h.size, chunkSize);
  if (h.count !== expectCount) fail(`entry count ${h.count} does not match size ${h.size} / chunk size ${chunkSize} (${expectCount})`);
  const expectLength = INDEX_HEADER_SIZE + h.count * DIGEST_SIZE;
  if (bytes.length !== expectLength) fail(`file is ${bytes.length} bytes, header implies ${expectLength}`);
  const digests = bytes.subarray(INDEX_HEADER_SIZE);
  const actual = fixedIndexChecksum(digests);
  if (!equalBytes(actual, h.checksum)) fail(`checksum is ${toHex(actual)}, header says ${toHex(h.checksum)}`);
  return new FixedIndexImpl(h.uuid, h.ctime, h.size, chunkSize, h.count, h.checksum, digests);
}

/**
 * Collects the digests of an image whose size is known up front, in any order (parallel writers may
 * finish chunks out of order), then encodes the `.fidx` file.
 */
export class FixedIndexBuilder {
  /** Image size in bytes. */
  readonly size: number;
  /** Chunk size in bytes. */
  readonly chunkSize: number;
  /** Number of chunks. */
  readonly count: number;
  readonly #digests: Uint8Array;
  readonly #isSet: Uint8Array;
  #setCount = 0;
  #next = 0;

  /**
   * @param opts - image size and chunk size (a power of two from 4 KiB to 16 MiB)
   * @throws `ERR_INVALID_ARGUMENT` for a bad size or chunk size.
   */
  constructor(opts: { readonly size: number; readonly chunkSize: number }) {
    this.count = checkHeaderInput({ uuid: new Uint8Array(16), ctime: 0, size: opts.size, chunkSize: opts.chunkSize });
    this.size = opts.size;
    this.chunkSize = opts.chunkSize;
    this.#digests = new Uint8Array(this.count * DIGEST_SIZE);
    this.#isSet = new Uint8Array(this.count);
  }

  /**
   * Sets the digest of chunk `i` (setting it again overwrites).
   * @throws `ERR_INVALID_ARGUMENT` for an index out of range or a digest that is not 32 bytes.
   */
  set(i: number, digest: Uint8Array): this {
    if (!Number.isInteger(i) || i < 0 || i >= this.count) {
      throw new CairnError('ERR_INVALID_ARGUMENT', `fixed index: chunk ${i} is out of range [0, ${this.count})`);
    }
    if (digest.length !== DIGEST_SIZE) {
      throw new CairnError('ERR_INVALID_ARGUMENT', `fixed index: digest must be ${DIGEST_SIZE} bytes, got ${digest.length}`);
    }
    this.#digests.set(digest, i * DIGEST_SIZE);
    if (this.#isSet[i] === 0) {
      this.#isSet[i] = 1;
      this.#setCount++;
    }
    return this;
  }

  /** Sets the digest of the chunk after the one last appended (starting at 0). */
  append(digest: Uint8Array): this {
    this.set(this.#next, digest);
    this.#next++;
    return this;
  }

  /** True once every chunk has a digest. */
  get complete(): boolean {
    return this.#setCount === this.count;
  }

  /**
   * Encodes the `.fidx` file.
   * @throws `ERR_INVALID_ARGUMENT` when a chunk has no digest yet, or for a bad uuid or ctime.
   */
  finish(id: IndexIdentity): Uint8Array {
    if (!this.complete) {
      const missing = this.#isSet.indexOf(0);
      throw new CairnError('ERR_INVALID_ARGUMENT', `fixed index: ${this.count - this.#setCount} chunks have no digest (first: ${missing})`);
    }
    return encodeFixedIndex({ uuid: id.uuid, ctime: id.ctime, size: this.size, chunkSize: this.chunkSize }, this.#digests);
  }
}

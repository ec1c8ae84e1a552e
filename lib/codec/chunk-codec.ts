/**
 * Chunk encoding and decoding (layer L1): digest, optional LZ4, envelope. Pure and synchronous, so it
 * runs in worker threads as well as the main thread; `initHash()` (lib/codec/hash.ts) must have been awaited in the
 * calling thread first.
 */
import { CairnError, type ErrorDetails } from '../errors.js';
import { type EnvelopeCorruptCode, encodeEnvelopeHeader, envelopeSubject, parseEnvelope } from '../format/chunk-envelope.js';
import { CODEC } from '../format/magic.js';
import { equalBytes, toHex } from '../util/bytes.js';
import { lz4Compress, lz4Decompress } from './compress.js';
import { blake3, DIGEST_SIZE } from './hash.js';

/** Options of {@link encodeChunk}. */
export interface EncodeChunkOptions {
  /** Try LZ4; the compressed form is kept only when strictly smaller than the raw data. */
  readonly compress: boolean;
  /**
   * BLAKE3 of `raw` when the caller already computed it (saves hashing twice). Trusted as given:
   * a wrong value produces a chunk stored under the wrong id.
   */
  readonly digest?: Uint8Array;
}

/** An encoded chunk: write `header` then `payload` (for example with one writev). */
export interface EncodedChunk {
  /** BLAKE3 of the raw data: the chunk's id. */
  readonly digest: Uint8Array;
  /** The 16-byte envelope header. */
  readonly header: Uint8Array;
  /** The stored payload: the LZ4 output, or `raw` itself (same object, not a copy). */
  readonly payload: Uint8Array;
  /** True when `payload` is LZ4-compressed. */
  readonly compressed: boolean;
}

/** Options of {@link decodeChunk}. */
export interface DecodeChunkOptions {
  /** The code every corruption is reported with. */
  readonly code: EnvelopeCorruptCode;
  /** Ids passed through unchanged into every error. */
  readonly details: ErrorDetails;
  /** When given, BLAKE3 of the decoded data must equal this digest. */
  readonly expectDigest?: Uint8Array;
}

/**
 * Encodes a chunk (or blob): digest = BLAKE3(raw); payload = LZ4 output when `opts.compress` is set
 * and the output is strictly smaller than `raw`, otherwise `raw` itself (no copy).
 * @throws `ERR_INVALID_ARGUMENT` when `raw` is larger than the envelope limit (64 MiB); Error when
 *   `initHash()` (lib/codec/hash.ts) has not completed in this thread.
 */
export function encodeChunk(raw: Uint8Array, opts: EncodeChunkOptions): EncodedChunk {
  if (opts.digest !== undefined && opts.digest.length !== DIGEST_SIZE) {
    throw new CairnError('ERR_INVALID_ARGUMENT', `encodeChunk: digest must be ${DIGEST_SIZE} bytes, got ${opts.digest.length}`);
  }
  const digest = opts.digest ?? blake3(raw);
  let payload = raw;
  let compressed = false;
  if (opts.compress && raw.length > 0) {
    const c = lz4Compress(raw);
    if (c.length < raw.length) {
      payload = c;
      compressed = true;
    }
  }
  const header = encodeEnvelopeHeader({ codec: compressed ? CODEC.lz4 : CODEC.none, rawSize: raw.length, payload });
  return { digest, header, payload, compressed };
}

/**
 * Decodes a stored chunk (or blob): parses the envelope, decompresses, and, when
 * `opts.expectDigest` is given, checks BLAKE3 of the result.
 * @returns the raw data. For an uncompressed envelope this is a subarray of `bytes` (no copy).
 * @throws `ERR_FORMAT_VERSION` for a newer envelope version; `opts.code` for every other problem
 *   (bad envelope, bad LZ4 data, digest mismatch: the message then names both digests in hex).
 */
export function decodeChunk(bytes: Uint8Array, opts: DecodeChunkOptions): Uint8Array {
  const env = parseEnvelope(bytes, opts);
  let raw: Uint8Array;
  if (env.codec === CODEC.lz4) {
    try {
      raw = lz4Decompress(env.payload, env.rawSize);
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      throw new CairnError(opts.code, `${label(opts)} is corrupt: ${msg}`, opts.details, e);
    }
  } else {
    raw = env.payload;
  }
  if (opts.expectDigest !== undefined) {
    const actual = blake3(raw);
    if (!equalBytes(actual, opts.expectDigest)) {
      throw new CairnError(
        opts.code,
        `${label(opts)} is corrupt: content digest is ${toHex(actual)}, expected ${toHex(opts.expectDigest)}`,
        opts.details,
      );
    }
  }
  return raw;
}

function label(opts: DecodeChunkOptions): string {
  return envelopeSubject(opts.code, opts.details);
}

/**
 * Chunk encoding and decoding in the plain chunk format, for existing imports (layer L1): thin
 * wrappers over lib/codec/envelope.ts, the one module that encodes and decodes chunks, blobs and
 * manifests. Library code calls lib/codec/envelope.ts with the datastore's chunk format
 * instead; these exist for older callers (tests, tools) that predate chunk formats.
 */
import type { ErrorDetails } from '../errors.js';
import { type EncodedChunk, type EnvelopeCorruptCode, decodeChunk as decodeChunkIn, encodeChunk as encodeChunkIn, PLAIN_CHUNK_FORMAT } from './envelope.js';

export type { EncodedChunk } from './envelope.js';

/** Options of {@link encodeChunk}. */
export interface EncodeChunkOptions {
  /** Try LZ4; the compressed form is kept only when strictly smaller than the raw data. */
  readonly compress: boolean;
  /** BLAKE3 of `raw` when the caller already computed it (trusted as given). */
  readonly digest?: Uint8Array;
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
 * `encodeChunk` of lib/codec/envelope.ts in {@link PLAIN_CHUNK_FORMAT}.
 * @deprecated Call `encodeChunk(format, raw, opts)` of lib/codec/envelope.ts with the datastore's chunk format.
 */
export function encodeChunk(raw: Uint8Array, opts: EncodeChunkOptions): EncodedChunk {
  return encodeChunkIn(PLAIN_CHUNK_FORMAT, raw, opts);
}

/**
 * `decodeChunk` of lib/codec/envelope.ts in {@link PLAIN_CHUNK_FORMAT}.
 * @deprecated Call `decodeChunk(format, bytes, opts)` of lib/codec/envelope.ts with the datastore's chunk format.
 */
export function decodeChunk(bytes: Uint8Array, opts: DecodeChunkOptions): Uint8Array {
  return decodeChunkIn(PLAIN_CHUNK_FORMAT, bytes, opts);
}

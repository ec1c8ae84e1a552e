/**
 * The envelope module (layer L1): the one place that encodes and decodes what Cairn stores in an
 * envelope (chunks, blob archives and manifests), and the one place that computes a chunk's
 * digest. Every other module calls it; lib/codec/chunk-codec.ts only wraps it for the plain format
 * (older imports).
 *
 * A {@link ChunkFormat} says which digest and crypt mode a datastore's chunks use. Chunk and blob
 * encoding, decoding and digesting take it, so that client-side encryption (keyed BLAKE3 digests,
 * AES-256-GCM payloads) changes this module and nothing else. Today one format exists,
 * {@link PLAIN_CHUNK_FORMAT}: unkeyed BLAKE3, no encryption.
 *
 * Everything here is pure and synchronous, so it runs in the pool's worker threads as well as on
 * the main thread; the functions that digest need `initHash()` (lib/codec/hash.ts) to have been
 * awaited in the calling thread. Chunk buffers are never copied: an uncompressed payload is the raw
 * data itself, and a decoded uncompressed envelope is a subarray of the stored bytes.
 *
 * The envelope: a 16-byte header in front of every stored chunk, blob and manifest
 * (lib/format/FORMAT.md §1).
 *
 * ```
 * offset size field
 *  0     4    magic "CRNE" (43 52 4e 45)
 *  4     1    version (1)
 *  5     1    flags: bit0 compressed, bit1 encrypted (reserved, must be 0), other bits must be 0
 *  6     1    codec: 0 none, 1 lz4 (size-prefixed block)
 *  7     1    reserved, must be 0
 *  8     4    rawSize, u32 LE: length of the original data, at most MAX_RAW_SIZE (64 MiB)
 * 12     4    crc32, u32 LE: CRC-32 of the stored payload (every byte after the header)
 * 16     n    payload
 * ```
 *
 * The compressed flag is set exactly when the codec is not `none`. For codec `none` the payload is
 * the raw data and `n == rawSize`; for `lz4` the payload's own size prefix must equal `rawSize`.
 */
import { CairnError, type ErrorDetails } from '../errors.js';
import type { DatastoreConfig } from '../format/config.js';
import { CODEC, type CodecId, ENVELOPE_MAGIC, ENVELOPE_VERSION, hasMagic } from '../format/magic.js';
import { concat, equalBytes, toHex } from '../util/bytes.js';
import { LZ4_MAX_EXPANSION, LZ4_PREFIX_SIZE, lz4Compress, lz4Decompress } from './compress.js';
import { blake3, crc32, DIGEST_SIZE } from './hash.js';

/** Size of the envelope header in bytes. */
export const ENVELOPE_HEADER_SIZE = 16;
/** Largest raw (uncompressed) size an envelope may hold: 64 MiB. */
export const MAX_RAW_SIZE = 64 * 1024 * 1024;
/** Flag bit: the payload is compressed (set exactly when the codec is not `none`). */
export const FLAG_COMPRESSED = 0x01;
/** Flag bit: the payload is encrypted. Reserved for a later version; rejected today. */
export const FLAG_ENCRYPTED = 0x02;

/**
 * The error codes an envelope failure may be reported with.
 * @category Formats
 */
export type EnvelopeCorruptCode = 'ERR_CHUNK_CORRUPT' | 'ERR_BLOB_CORRUPT' | 'ERR_MANIFEST_CORRUPT';

/** Options of {@link parseEnvelope}. */
export interface ParseEnvelopeOptions {
  /** The code every corruption is reported with. */
  readonly code: EnvelopeCorruptCode;
  /** Ids passed through unchanged into every error (digest, path, snapshot, ...). */
  readonly details: ErrorDetails;
}

/** A parsed envelope. */
export interface Envelope {
  /** The format version (always {@link ENVELOPE_VERSION} today). */
  readonly version: number;
  /** The flags byte. */
  readonly flags: number;
  /** The codec of the payload. */
  readonly codec: CodecId;
  /** Length of the original data. */
  readonly rawSize: number;
  /** The stored CRC-32 (already verified). */
  readonly crc: number;
  /** The stored payload: a subarray of the input, not a copy. */
  readonly payload: Uint8Array;
}

/** What {@link encodeEnvelopeHeader} needs. */
export interface EnvelopeHeaderInput {
  /** The codec of `payload`. */
  readonly codec: CodecId;
  /** Length of the original data (equal to `payload.length` for codec none). */
  readonly rawSize: number;
  /** The bytes that will follow the header. */
  readonly payload: Uint8Array;
}

/** Worst-case size of an lz4 size-prefixed payload for `rawSize` input bytes. */
function lz4Bound(rawSize: number): number {
  return 4 + rawSize + Math.floor(rawSize / 255) + 16;
}

/**
 * How errors name the object: `chunk <digest>`, `blob <path>`, `manifest <archive>`... (the kind
 * follows from the code, the id from the details: digest, else path, else archive).
 */
export function envelopeSubject(code: EnvelopeCorruptCode, details: ErrorDetails): string {
  const kind = code === 'ERR_CHUNK_CORRUPT' ? 'chunk' : code === 'ERR_BLOB_CORRUPT' ? 'blob' : 'manifest';
  const id = details.digest ?? details.path ?? details.archive;
  return id === undefined ? kind : `${kind} ${id}`;
}

/**
 * Builds the 16-byte header for `payload` (computes the CRC-32 of the payload).
 * @throws `ERR_INVALID_ARGUMENT` for an unknown codec, a rawSize out of range, or a payload that does
 *   not fit the codec (codec none: length must equal rawSize; lz4: its size prefix must equal rawSize).
 */
export function encodeEnvelopeHeader(input: EnvelopeHeaderInput): Uint8Array {
  const { codec, rawSize, payload } = input;
  if (codec !== CODEC.none && codec !== CODEC.lz4) {
    throw new CairnError('ERR_INVALID_ARGUMENT', `envelope: unknown codec ${String(codec)}`);
  }
  if (!Number.isInteger(rawSize) || rawSize < 0 || rawSize > MAX_RAW_SIZE) {
    throw new CairnError('ERR_INVALID_ARGUMENT', `envelope: raw size ${rawSize} is outside [0, ${MAX_RAW_SIZE}]`);
  }
  if (codec === CODEC.none && payload.length !== rawSize) {
    throw new CairnError('ERR_INVALID_ARGUMENT', `envelope: uncompressed payload of ${payload.length} bytes must equal raw size ${rawSize}`);
  }
  if (codec === CODEC.lz4) {
    const ok = payload.length >= 5 && new DataView(payload.buffer, payload.byteOffset, 4).getUint32(0, true) === rawSize;
    if (!ok) throw new CairnError('ERR_INVALID_ARGUMENT', `envelope: lz4 payload does not carry the size prefix ${rawSize}`);
  }
  const h = new Uint8Array(ENVELOPE_HEADER_SIZE);
  h.set(ENVELOPE_MAGIC, 0);
  h[4] = ENVELOPE_VERSION;
  h[5] = codec === CODEC.none ? 0 : FLAG_COMPRESSED;
  h[6] = codec;
  h[7] = 0;
  const v = new DataView(h.buffer);
  v.setUint32(8, rawSize, true);
  v.setUint32(12, crc32(payload), true);
  return h;
}

/**
 * Parses and checks an envelope (header and payload CRC). Does not decompress.
 *
 * Checks, in order: length, magic, version, flags, codec, reserved byte, rawSize limit, payload size
 * against rawSize (for lz4: the size prefix, and a block long enough to expand to rawSize), CRC-32 of
 * the payload.
 * @throws `ERR_FORMAT_VERSION` for a version newer than this code reads; `opts.code` for anything
 *   else, with `opts.details` and a message saying what is wrong.
 */
export function parseEnvelope(bytes: Uint8Array, opts: ParseEnvelopeOptions): Envelope {
  const { code, details } = opts;
  const fail = (what: string): never => {
    throw new CairnError(code, `${envelopeSubject(code, details)} is corrupt: ${what}`, details);
  };
  if (bytes.length < ENVELOPE_HEADER_SIZE) {
    fail(`${bytes.length} bytes is shorter than the ${ENVELOPE_HEADER_SIZE}-byte envelope header`);
  }
  if (!hasMagic(bytes, ENVELOPE_MAGIC)) fail('bad magic (not a Cairn envelope)');
  const version = bytes[4]!;
  if (version > ENVELOPE_VERSION) {
    throw new CairnError('ERR_FORMAT_VERSION', `${envelopeSubject(code, details)}: envelope version ${version} is newer than this Cairn reads (${ENVELOPE_VERSION})`, details);
  }
  if (version !== ENVELOPE_VERSION) fail(`envelope version ${version} is invalid`);
  const flags = bytes[5]!;
  if ((flags & ~(FLAG_COMPRESSED | FLAG_ENCRYPTED)) !== 0) fail(`unknown flag bits 0x${flags.toString(16)}`);
  if ((flags & FLAG_ENCRYPTED) !== 0) fail('encrypted flag set, but encryption is not defined in envelope version 1');
  const codecByte = bytes[6]!;
  if (codecByte !== CODEC.none && codecByte !== CODEC.lz4) fail(`unknown codec ${codecByte}`);
  const codec = codecByte as CodecId;
  if (((flags & FLAG_COMPRESSED) !== 0) !== (codec !== CODEC.none)) {
    fail(`compressed flag ${flags & FLAG_COMPRESSED} does not match codec ${codec}`);
  }
  if (bytes[7] !== 0) fail(`reserved byte is ${bytes[7]}, must be 0`);
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const rawSize = v.getUint32(8, true);
  if (rawSize > MAX_RAW_SIZE) fail(`raw size ${rawSize} exceeds the limit of ${MAX_RAW_SIZE} bytes`);
  const crc = v.getUint32(12, true);
  const payload = bytes.subarray(ENVELOPE_HEADER_SIZE);
  if (codec === CODEC.none) {
    if (payload.length !== rawSize) fail(`payload is ${payload.length} bytes, raw size says ${rawSize}`);
  } else {
    if (payload.length < 5 || payload.length > lz4Bound(rawSize)) {
      fail(`lz4 payload of ${payload.length} bytes is impossible for raw size ${rawSize}`);
    }
    const prefix = v.getUint32(ENVELOPE_HEADER_SIZE, true);
    if (prefix !== rawSize) fail(`lz4 size prefix ${prefix} does not match raw size ${rawSize}`);
    const block = payload.length - LZ4_PREFIX_SIZE;
    if (rawSize > LZ4_MAX_EXPANSION * block) fail(`an lz4 block of ${block} bytes cannot expand to raw size ${rawSize}`);
  }
  const actual = crc32(payload);
  if (actual !== crc) {
    fail(`payload CRC-32 is ${actual.toString(16).padStart(8, '0')}, header says ${crc.toString(16).padStart(8, '0')}`);
  }
  return { version, flags, codec, rawSize, crc, payload };
}

// ---------------------------------------------------------------------------------------------
// The chunk format: which digest and crypt mode a datastore's chunks use.
// ---------------------------------------------------------------------------------------------

/**
 * How a chunk's digest (its id) is computed from its plaintext. `'blake3'`: unkeyed BLAKE3-256.
 * Keyed BLAKE3 is the planned second kind (for encrypted datastores).
 * @category Formats
 */
export type ChunkDigestKind = 'blake3';

/**
 * How a chunk's stored payload is protected. `'none'`: stored as is (LZ4 at most). AES-256-GCM is
 * the planned second mode. The same value is recorded as `crypt` of each manifest entry.
 * @category Formats
 */
export type ChunkCryptMode = 'none';

/**
 * Which digest kind and crypt mode a datastore's chunks (and blob archives) use: everything that
 * encodes, decodes or digests a chunk takes one. Made from the datastore config by
 * `chunkFormatOf` (lib/codec/envelope.ts), held by the chunk store, and sent with every task to
 * the worker pool. A plain, cloneable value (it crosses thread boundaries by structured clone);
 * today the only one is {@link PLAIN_CHUNK_FORMAT}. A digest is a chunk's id in its format only:
 * chunks deduplicate across datastores only when their formats are equal.
 * @category Formats
 */
export interface ChunkFormat {
  /** How chunk digests are computed. */
  readonly digest: ChunkDigestKind;
  /** How chunk payloads are protected. */
  readonly crypt: ChunkCryptMode;
}

/**
 * The chunk format of every datastore today: unkeyed BLAKE3 digests, no encryption.
 * @category Formats
 */
export const PLAIN_CHUNK_FORMAT: ChunkFormat = Object.freeze({ digest: 'blake3', crypt: 'none' });

/**
 * The chunk format a datastore's config calls for. Config version 1 has no crypt settings, so
 * this is {@link PLAIN_CHUNK_FORMAT}; a config with an encryption key will make a keyed one here.
 * @internal
 */
export function chunkFormatOf(_config: DatastoreConfig): ChunkFormat {
  return PLAIN_CHUNK_FORMAT;
}

/**
 * Checks a chunk format that arrived from elsewhere (a task from another thread, a caller's
 * option) and returns it.
 * @throws `ERR_INVALID_ARGUMENT` for anything but a known digest kind and crypt mode.
 * @internal
 */
export function checkChunkFormat(value: unknown): ChunkFormat {
  const f = value as Partial<ChunkFormat> | null;
  if (typeof f !== 'object' || f === null || f.digest !== 'blake3' || f.crypt !== 'none') {
    throw new CairnError('ERR_INVALID_ARGUMENT', `unknown chunk format ${safeJson(value)} (known: digest "blake3", crypt "none")`);
  }
  return f as ChunkFormat;
}

function safeJson(v: unknown): string {
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}

/** Throws for a format this module cannot digest with (a value that bypassed the types). */
function unknownFormat(format: ChunkFormat): never {
  return checkChunkFormat(format) as never;
}

/**
 * Refuses a format this module does not implement (the types allow only known ones; a value from
 * another thread or an untyped caller may not be): the per-chunk guard of the encoders and
 * decoders, where a crypt mode will select its code path.
 */
function checkKnown(format: ChunkFormat): void {
  if (format.digest !== 'blake3' || format.crypt !== 'none') unknownFormat(format);
}

// ---------------------------------------------------------------------------------------------
// Chunk digests.
// ---------------------------------------------------------------------------------------------

/**
 * The digest (id) of a chunk or blob with plaintext `data` under `format`: 32 bytes in a fresh,
 * transferable Uint8Array. Every chunk digest in Cairn is computed here. Index checksums and other
 * digests that are not chunk ids use `indexChecksum` (lib/codec/hash.ts).
 * @throws Error when `initHash()` has not completed in this thread; `ERR_INVALID_ARGUMENT` for an
 *   unknown format.
 * @internal
 */
export function chunkDigest(format: ChunkFormat, data: Uint8Array): Uint8Array {
  if (format.digest === 'blake3') return blake3(data);
  return unknownFormat(format);
}

/** Digests of all-zero chunks by format (one map per format object) and size. */
const zeroDigests = new WeakMap<ChunkFormat, Map<number, Uint8Array>>();
/** Sizes remembered per format: chunk sizes and image tails, so a handful in practice. */
const ZERO_DIGEST_SIZES = 16;

/**
 * The digest of `size` zero bytes under `format` (cached per format object and size; do not
 * modify the result). Readers recognise an all-zero chunk of an image by it without reading it;
 * being computed with the datastore's own format, it stays right when digests are keyed.
 * @throws as {@link chunkDigest}; `ERR_INVALID_ARGUMENT` for a size out of [0, 64 MiB].
 * @internal
 */
export function zeroChunkDigest(format: ChunkFormat, size: number): Uint8Array {
  let bySize = zeroDigests.get(format);
  if (bySize === undefined) zeroDigests.set(format, (bySize = new Map()));
  let d = bySize.get(size);
  if (d === undefined) {
    if (!Number.isInteger(size) || size < 0 || size > MAX_RAW_SIZE) {
      throw new CairnError('ERR_INVALID_ARGUMENT', `zero chunk size ${size} is outside [0, ${MAX_RAW_SIZE}]`);
    }
    d = chunkDigest(format, new Uint8Array(size));
    if (bySize.size >= ZERO_DIGEST_SIZES) bySize.clear();
    bySize.set(size, d);
  }
  return d;
}

/**
 * True when `digest` is the digest of `size` zero bytes under `format`: the chunk is all zeros.
 * @throws as {@link zeroChunkDigest}.
 * @internal
 */
export function isZeroChunkDigest(format: ChunkFormat, digest: Uint8Array, size: number): boolean {
  return equalBytes(digest, zeroChunkDigest(format, size));
}

// ---------------------------------------------------------------------------------------------
// Chunks and blobs.
// ---------------------------------------------------------------------------------------------

/**
 * Options of {@link encodeChunk}.
 * @internal
 */
export interface EncodeChunkOptions {
  /** Try LZ4; the compressed form is kept only when strictly smaller than the raw data. */
  readonly compress: boolean;
  /**
   * The chunk's digest under the same format when the caller already computed it with
   * {@link chunkDigest} (saves hashing twice). Trusted as given: a wrong value produces a chunk
   * stored under the wrong id.
   */
  readonly digest?: Uint8Array;
}

/**
 * An encoded chunk or blob: write `header` then `payload` (for example with one writev).
 * @internal
 */
export interface EncodedChunk {
  /** The digest of the raw data under the chunk format: the chunk's id, the blob's checksum. */
  readonly digest: Uint8Array;
  /** The 16-byte envelope header. */
  readonly header: Uint8Array;
  /** The stored payload: the LZ4 output, or `raw` itself (same object, not a copy). */
  readonly payload: Uint8Array;
  /** True when `payload` is LZ4-compressed. */
  readonly compressed: boolean;
}

/**
 * Options of {@link decodeChunk}.
 * @internal
 */
export interface DecodeChunkOptions {
  /** The code every corruption is reported with. */
  readonly code: EnvelopeCorruptCode;
  /** Ids passed through unchanged into every error. */
  readonly details: ErrorDetails;
  /** When given, the digest of the decoded data (under the chunk format) must equal this one. */
  readonly expectDigest?: Uint8Array;
}

/** The header and payload of `raw`: LZ4 output when asked for and strictly smaller, else `raw` itself. */
function seal(raw: Uint8Array, compress: boolean): { header: Uint8Array; payload: Uint8Array; compressed: boolean } {
  let payload = raw;
  let compressed = false;
  if (compress && raw.length > 0) {
    const c = lz4Compress(raw);
    if (c.length < raw.length) {
      payload = c;
      compressed = true;
    }
  }
  const header = encodeEnvelopeHeader({ codec: compressed ? CODEC.lz4 : CODEC.none, rawSize: raw.length, payload });
  return { header, payload, compressed };
}

/**
 * Parses and checks an envelope and returns its raw data (a subarray of `bytes` when stored
 * uncompressed). `subject` names the object in the errors found after parsing (default
 * {@link envelopeSubject}; built only on failure, as this runs per chunk).
 */
function open(bytes: Uint8Array, code: EnvelopeCorruptCode, details: ErrorDetails, subject: string | undefined): Uint8Array {
  const env = parseEnvelope(bytes, { code, details });
  if (env.codec !== CODEC.lz4) return env.payload;
  try {
    return lz4Decompress(env.payload, env.rawSize);
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    throw new CairnError(code, `${subject ?? envelopeSubject(code, details)} is corrupt: ${msg}`, details, e);
  }
}

/** Throws unless `raw` has `digest` under `format`. */
function checkDigest(format: ChunkFormat, raw: Uint8Array, expect: Uint8Array, code: EnvelopeCorruptCode, details: ErrorDetails, subject: string | undefined): void {
  const actual = chunkDigest(format, raw);
  if (!equalBytes(actual, expect)) {
    const what = subject ?? envelopeSubject(code, details);
    throw new CairnError(code, `${what} is corrupt: content digest is ${toHex(actual)}, expected ${toHex(expect)}`, details);
  }
}

/**
 * Encodes a chunk: digest = {@link chunkDigest} of `raw` (unless `opts.digest` gives it);
 * payload = LZ4 output when `opts.compress` is set and the output is strictly smaller than `raw`,
 * otherwise `raw` itself (no copy).
 * @throws `ERR_INVALID_ARGUMENT` when `raw` is larger than the envelope limit (64 MiB), for a
 *   digest of the wrong length or an unknown format; Error when `initHash()` has not completed in
 *   this thread.
 * @internal
 */
export function encodeChunk(format: ChunkFormat, raw: Uint8Array, opts: EncodeChunkOptions): EncodedChunk {
  checkKnown(format);
  if (opts.digest !== undefined && opts.digest.length !== DIGEST_SIZE) {
    throw new CairnError('ERR_INVALID_ARGUMENT', `encodeChunk: digest must be ${DIGEST_SIZE} bytes, got ${opts.digest.length}`);
  }
  const digest = opts.digest ?? chunkDigest(format, raw);
  const { header, payload, compressed } = seal(raw, opts.compress);
  return { digest, header, payload, compressed };
}

/**
 * Decodes a stored chunk: parses the envelope, decompresses, and, when `opts.expectDigest` is
 * given, checks the digest of the result under `format`.
 * @returns the raw data. For an uncompressed envelope this is a subarray of `bytes` (no copy).
 * @throws `ERR_FORMAT_VERSION` for a newer envelope version; `opts.code` for every other problem
 *   (bad envelope, bad LZ4 data, digest mismatch: the message then names both digests in hex).
 * @internal
 */
export function decodeChunk(format: ChunkFormat, bytes: Uint8Array, opts: DecodeChunkOptions): Uint8Array {
  checkKnown(format);
  const raw = open(bytes, opts.code, opts.details, undefined);
  if (opts.expectDigest !== undefined) checkDigest(format, raw, opts.expectDigest, opts.code, opts.details, undefined);
  return raw;
}

/**
 * Encodes a blob archive (a config file, a log): as a chunk with compression tried; its digest
 * under `format` is the checksum the manifest records.
 * @throws as {@link encodeChunk}.
 * @internal
 */
export function encodeBlob(format: ChunkFormat, raw: Uint8Array): EncodedChunk {
  return encodeChunk(format, raw, { compress: true });
}

/**
 * Options of {@link decodeBlob}.
 * @internal
 */
export interface DecodeBlobOptions {
  /** Ids passed through unchanged into every error (path, snapshot, archive). */
  readonly details: ErrorDetails;
  /**
   * How errors found after the envelope is parsed name the blob, e.g. `blob 'conf.blob' of
   * vm/100/2026-01-01T00:00:00Z`; the default is {@link envelopeSubject}.
   */
  readonly subject?: string;
  /** The size the manifest records: the decoded blob must have it. */
  readonly expectSize?: number;
  /** The checksum the manifest records: the digest of the decoded blob under the format must equal it. */
  readonly expectDigest?: Uint8Array;
}

/**
 * Decodes a stored blob archive and checks it against what the manifest records.
 * @returns the blob's content (a subarray of `bytes` when stored uncompressed).
 * @throws `ERR_FORMAT_VERSION` for a newer envelope version; `ERR_BLOB_CORRUPT` for every other
 *   problem (bad envelope, bad LZ4 data, a size or digest other than expected).
 * @internal
 */
export function decodeBlob(format: ChunkFormat, bytes: Uint8Array, opts: DecodeBlobOptions): Uint8Array {
  checkKnown(format);
  const code = 'ERR_BLOB_CORRUPT';
  const subject = opts.subject;
  const raw = open(bytes, code, opts.details, subject);
  if (opts.expectSize !== undefined && raw.byteLength !== opts.expectSize) {
    throw new CairnError(
      code,
      `${subject ?? envelopeSubject(code, opts.details)} is corrupt: it holds ${raw.byteLength} bytes, the manifest says ${opts.expectSize}`,
      opts.details,
    );
  }
  if (opts.expectDigest !== undefined) checkDigest(format, raw, opts.expectDigest, code, opts.details, subject);
  return raw;
}

// ---------------------------------------------------------------------------------------------
// Manifests.
// ---------------------------------------------------------------------------------------------

/**
 * Wraps a manifest's canonical JSON in an envelope, LZ4-compressed when that is smaller. Manifests
 * are not chunks: no digest, no chunk format (a signature will protect them, not encryption).
 * @returns the whole manifest file (header and payload in one buffer).
 * @throws `ERR_INVALID_ARGUMENT` for JSON over 64 MiB.
 * @internal
 */
export function encodeManifestEnvelope(json: Uint8Array): Uint8Array {
  const { header, payload } = seal(json, true);
  return concat([header, payload]);
}

/**
 * Options of {@link decodeManifestEnvelope}.
 * @internal
 */
export interface DecodeManifestEnvelopeOptions {
  /** Ids passed through unchanged into every error. */
  readonly details: ErrorDetails;
  /** How errors found after the envelope is parsed name the manifest; the default is {@link envelopeSubject}. */
  readonly subject?: string;
}

/**
 * Opens a manifest file's envelope.
 * @returns the manifest's JSON bytes, not yet checked (a subarray of `bytes` when stored uncompressed).
 * @throws `ERR_FORMAT_VERSION` for a newer envelope version; `ERR_MANIFEST_CORRUPT` for a damaged
 *   envelope or bad LZ4 data.
 * @internal
 */
export function decodeManifestEnvelope(bytes: Uint8Array, opts: DecodeManifestEnvelopeOptions): Uint8Array {
  const code = 'ERR_MANIFEST_CORRUPT';
  return open(bytes, code, opts.details, opts.subject);
}

/**
 * The chunk/blob envelope (layer L1): a 16-byte header in front of every stored chunk, blob and
 * manifest.
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
import { crc32 } from '../codec/hash.js';
import { LZ4_MAX_EXPANSION, LZ4_PREFIX_SIZE } from '../codec/compress.js';
import { CODEC, type CodecId, ENVELOPE_MAGIC, ENVELOPE_VERSION, hasMagic } from './magic.js';

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
    throw new CairnError(
      'ERR_FORMAT_VERSION',
      `${envelopeSubject(code, details)}: envelope version ${version} is newer than this Cairn reads (${ENVELOPE_VERSION})`,
      details,
    );
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

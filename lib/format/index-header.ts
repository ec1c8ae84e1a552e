/**
 * The 128-byte header shared by fixed (`.fidx`) and dynamic (`.didx`) indexes (layer L1, internal).
 *
 * ```
 * offset size field
 *   0     8   magic (CAIRNFIX / CAIRNDIX)
 *   8     4   version, u32 LE (1)
 *  12     4   flags, u32 LE (0; every bit reserved)
 *  16    16   uuid of the index (random, written by the creator)
 *  32     8   ctime, i64 LE, Unix seconds
 *  40     8   size, u64 LE, bytes of data the index describes
 *  48     8   kind-specific (fixed: chunkSize u32 LE + 4 reserved zero bytes; dynamic: 8 reserved zero bytes)
 *  56     8   count, u64 LE, number of entries
 *  64    32   checksum: BLAKE3 of the whole body (all entries as stored)
 *  96    28   reserved, zero
 * 124     4   headerCrc, u32 LE: CRC-32 of bytes 0..123
 * ```
 * @internal
 */
import { CairnError, type ErrorDetails } from '../errors.js';
import { crc32, DIGEST_SIZE } from '../codec/hash.js';
import { readI64LE, readU64LE, writeI64LE, writeU64LE } from '../util/bytes.js';
import { hasMagic } from './magic.js';

/** Size of an index header in bytes. */
export const INDEX_HEADER_SIZE = 128;
/** Size of the uuid field. */
export const INDEX_UUID_SIZE = 16;

/** Offsets of the header fields. */
export const OFF = Object.freeze({
  version: 8,
  flags: 12,
  uuid: 16,
  ctime: 32,
  size: 40,
  kind: 48,
  count: 56,
  checksum: 64,
  reserved: 96,
  crc: 124,
} as const);

/** Header fields common to both index kinds. */
export interface IndexHeaderFields {
  /** The index's uuid (a copy, 16 bytes). */
  readonly uuid: Uint8Array;
  /** Creation time, Unix seconds. */
  readonly ctime: number;
  /** Bytes of data described. */
  readonly size: number;
  /** Number of entries. */
  readonly count: number;
  /** BLAKE3 of the body (a copy, 32 bytes). */
  readonly checksum: Uint8Array;
}

/** Identity fields the creator supplies. */
export interface IndexIdentity {
  /** 16 random bytes. */
  readonly uuid: Uint8Array;
  /** Creation time, Unix seconds (an integer; passed in, never read from a clock here). */
  readonly ctime: number;
}

/** Throws `ERR_INVALID_ARGUMENT` unless uuid and ctime are well-formed. */
export function checkIdentity(what: string, id: IndexIdentity): void {
  if (!(id.uuid instanceof Uint8Array) || id.uuid.length !== INDEX_UUID_SIZE) {
    throw new CairnError('ERR_INVALID_ARGUMENT', `${what}: uuid must be ${INDEX_UUID_SIZE} bytes`);
  }
  if (!Number.isSafeInteger(id.ctime)) {
    throw new CairnError('ERR_INVALID_ARGUMENT', `${what}: ctime must be an integer number of seconds, got ${id.ctime}`);
  }
}

/** Writes a complete header (including headerCrc) into `h` (128 bytes, zero-filled). */
export function writeIndexHeader(
  h: Uint8Array,
  magic: readonly number[],
  version: number,
  id: IndexIdentity,
  size: number,
  count: number,
  checksum: Uint8Array,
  kindField: (h: Uint8Array) => void,
): void {
  const v = new DataView(h.buffer, h.byteOffset, INDEX_HEADER_SIZE);
  h.set(magic, 0);
  v.setUint32(OFF.version, version, true);
  v.setUint32(OFF.flags, 0, true);
  h.set(id.uuid, OFF.uuid);
  writeI64LE(h, OFF.ctime, id.ctime);
  writeU64LE(h, OFF.size, size);
  kindField(h);
  writeU64LE(h, OFF.count, count);
  h.set(checksum, OFF.checksum);
  v.setUint32(OFF.crc, crc32(h.subarray(0, OFF.crc)), true);
}

/**
 * Parses and checks the common header: length, magic, version, headerCrc, flags, reserved bytes,
 * 64-bit fields. The kind-specific field and the body are the caller's.
 * @throws `ERR_FORMAT_VERSION` for a newer version, `ERR_INDEX_CORRUPT` for anything else.
 */
export function parseIndexHeader(
  bytes: Uint8Array,
  magic: readonly number[],
  version: number,
  fail: (what: string) => never,
  label: string,
  details: ErrorDetails,
): IndexHeaderFields {
  if (bytes.length < INDEX_HEADER_SIZE) {
    fail(`${bytes.length} bytes is shorter than the ${INDEX_HEADER_SIZE}-byte header`);
  }
  if (!hasMagic(bytes, magic)) fail('bad magic');
  const v = new DataView(bytes.buffer, bytes.byteOffset, INDEX_HEADER_SIZE);
  const ver = v.getUint32(OFF.version, true);
  if (ver > version) {
    throw new CairnError('ERR_FORMAT_VERSION', `${label}: format version ${ver} is newer than this Cairn reads (${version})`, details);
  }
  if (ver !== version) fail(`format version ${ver} is invalid`);
  const crc = v.getUint32(OFF.crc, true);
  const actual = crc32(bytes.subarray(0, OFF.crc));
  if (crc !== actual) fail(`header CRC-32 is ${hex32(actual)}, stored ${hex32(crc)}`);
  const flags = v.getUint32(OFF.flags, true);
  if (flags !== 0) fail(`unknown flags 0x${flags.toString(16)}`);
  for (let i = OFF.reserved; i < OFF.crc; i++) if (bytes[i] !== 0) fail(`reserved header byte ${i} is not zero`);
  const u64 = (off: number, name: string): number => {
    try {
      return readU64LE(bytes, off);
    } catch {
      return fail(`${name} exceeds 2^53 - 1`);
    }
  };
  let ctime: number;
  try {
    ctime = readI64LE(bytes, OFF.ctime);
  } catch {
    return fail('ctime is outside ±(2^53 - 1)');
  }
  const size = u64(OFF.size, 'size');
  const count = u64(OFF.count, 'entry count');
  return {
    uuid: bytes.slice(OFF.uuid, OFF.uuid + INDEX_UUID_SIZE),
    ctime,
    size,
    count,
    checksum: bytes.slice(OFF.checksum, OFF.checksum + DIGEST_SIZE),
  };
}

/** 8 lowercase hex digits. */
export function hex32(n: number): string {
  return n.toString(16).padStart(8, '0');
}

/** How errors name an index: `fixed index <archive|path>`. */
export function indexLabel(kind: string, details: ErrorDetails): string {
  const id = details.archive ?? details.path;
  return id === undefined ? kind : `${kind} ${id}`;
}

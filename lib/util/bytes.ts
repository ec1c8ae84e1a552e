/**
 * Byte helpers (layer L0): hex, comparison, 64-bit little-endian integers as JS numbers, concat.
 *
 * 64-bit fields on disk are read and written as plain JS numbers. Only integers up to
 * `Number.MAX_SAFE_INTEGER` (2^53 - 1) are representable; anything larger is an error rather than a
 * silently rounded value.
 */
import { CairnError } from '../errors.js';

const HEX = '0123456789abcdef';
const HEX_PAIRS: string[] = [];
for (let i = 0; i < 256; i++) HEX_PAIRS.push(HEX[i >> 4]! + HEX[i & 15]!);

/** Lowercase hex of `bytes` (two characters per byte). */
export function toHex(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += HEX_PAIRS[bytes[i]!]!;
  return s;
}

const HEX_RE = /^(?:[0-9a-fA-F]{2})*$/;

/**
 * Parses hex (either case) into bytes.
 * @param hex - an even number of hex digits, nothing else (no `0x`, no whitespace)
 * @param expectLength - when given, the number of bytes the string must encode
 * @throws `ERR_INVALID_ARGUMENT` for anything that is not well-formed hex of the expected length.
 */
export function fromHex(hex: string, expectLength?: number): Uint8Array {
  if (typeof hex !== 'string' || !HEX_RE.test(hex)) {
    throw new CairnError('ERR_INVALID_ARGUMENT', `not a hex string: '${String(hex).slice(0, 80)}'`);
  }
  if (expectLength !== undefined && hex.length !== expectLength * 2) {
    throw new CairnError('ERR_INVALID_ARGUMENT', `hex string must encode ${expectLength} bytes, got ${hex.length / 2}`);
  }
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}

/** True when `a` and `b` hold the same bytes. Not constant-time: do not use it to compare secrets. */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

const TWO_32 = 0x1_0000_0000;

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * Reads an unsigned 64-bit little-endian integer as a JS number.
 * @throws RangeError when the value exceeds `Number.MAX_SAFE_INTEGER` or the 8 bytes are out of bounds.
 */
export function readU64LE(bytes: Uint8Array, offset: number): number {
  const v = view(bytes);
  const lo = v.getUint32(offset, true);
  const hi = v.getUint32(offset + 4, true);
  if (hi > 0x1f_ffff) throw new RangeError(`64-bit value at offset ${offset} exceeds 2^53 - 1`);
  return hi * TWO_32 + lo;
}

/**
 * Writes `value` as an unsigned 64-bit little-endian integer.
 * @throws RangeError unless `value` is an integer in [0, 2^53 - 1], or when out of bounds.
 */
export function writeU64LE(bytes: Uint8Array, offset: number, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`not an unsigned 53-bit integer: ${value}`);
  const v = view(bytes);
  v.setUint32(offset, value % TWO_32, true);
  v.setUint32(offset + 4, Math.floor(value / TWO_32), true);
}

/**
 * Reads a signed 64-bit little-endian integer (two's complement) as a JS number.
 * @throws RangeError when the value is outside ±(2^53 - 1) or the 8 bytes are out of bounds.
 */
export function readI64LE(bytes: Uint8Array, offset: number): number {
  const value = view(bytes).getBigInt64(offset, true);
  if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < BigInt(Number.MIN_SAFE_INTEGER)) {
    throw new RangeError(`64-bit value at offset ${offset} is outside ±(2^53 - 1)`);
  }
  return Number(value);
}

/**
 * Writes `value` as a signed 64-bit little-endian integer (two's complement).
 * @throws RangeError unless `value` is an integer in ±(2^53 - 1), or when out of bounds.
 */
export function writeI64LE(bytes: Uint8Array, offset: number, value: number): void {
  if (!Number.isSafeInteger(value)) throw new RangeError(`not a 53-bit integer: ${value}`);
  view(bytes).setBigInt64(offset, BigInt(value), true);
}

/** A new array holding `parts` one after the other (always a copy, even for one part). */
export function concat(parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

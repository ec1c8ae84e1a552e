/**
 * LZ4 compression (layer L1), synchronous, via lz4-napi (a binding of Rust's lz4_flex).
 *
 * **Stored format** (codec id 1, "lz4-block-size-prefixed", see `lib/format/FORMAT.md`): exactly what
 * lz4_flex's `compress_prepend_size` writes —
 *
 * | offset | size | field |
 * | --- | --- | --- |
 * | 0 | 4 | uncompressed size, u32 little-endian |
 * | 4 | n | one raw LZ4 block (no frame, no checksum) |
 *
 * This is not the LZ4 frame format and the `lz4` command-line tool cannot read it. The block has no
 * checksum of its own; integrity comes from the envelope's CRC-32 and the chunk digest.
 *
 * The synchronous functions are used on purpose: they run in the calling thread (a worker thread in
 * the chunk pipeline) and never occupy the libuv threadpool.
 */
import { compressSync, uncompressSync } from 'lz4-napi';

/** Size of the little-endian uncompressed-size prefix in front of the LZ4 block. */
export const LZ4_PREFIX_SIZE = 4;

/**
 * The most an LZ4 block can expand: every input byte yields at most 255 output bytes (a length
 * byte adds at most 255 to a literal run or a match), so a block of `n` bytes decompresses to at
 * most `255 × n` bytes. A size prefix above that bound is corrupt, whatever the block holds.
 */
export const LZ4_MAX_EXPANSION = 255;

function asBuffer(u8: Uint8Array): Buffer {
  return Buffer.isBuffer(u8) ? u8 : Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength);
}

/**
 * Compresses `raw` into the size-prefixed LZ4 block format described above. The result may be
 * larger than `raw` for incompressible data; callers store `raw` uncompressed in that case.
 * @returns a plain Uint8Array over its own ArrayBuffer (safe to transfer)
 * @throws Error when `raw` is 4 GiB or larger (the prefix is 32 bits).
 */
export function lz4Compress(raw: Uint8Array): Uint8Array {
  if (raw.length > 0xffff_ffff) throw new Error(`lz4: input of ${raw.length} bytes is too large`);
  return plain(compressSync(asBuffer(raw)));
}

/** The same memory as a plain Uint8Array (so `slice` copies, as callers of a Uint8Array expect). */
function plain(b: Buffer): Uint8Array {
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

/**
 * Decompresses a size-prefixed LZ4 payload that must expand to exactly `rawSize` bytes.
 *
 * The prefix is checked against `rawSize`, and `rawSize` against what the block can expand to
 * ({@link LZ4_MAX_EXPANSION}), **before** anything is allocated, so a corrupt prefix can never cause
 * an allocation out of proportion to the payload; the caller is responsible for bounding `rawSize`
 * itself (the envelope limits it to 64 MiB). The output length is checked again after decompression.
 * @returns a fresh array of `rawSize` bytes (its own ArrayBuffer, safe to transfer)
 * @throws Error (plain, for the caller to map to its own corrupt code) for a short payload, a prefix
 *   that differs from `rawSize`, a `rawSize` the block cannot expand to, an invalid block, or an
 *   output of the wrong length.
 */
export function lz4Decompress(payload: Uint8Array, rawSize: number): Uint8Array {
  if (!Number.isInteger(rawSize) || rawSize < 0 || rawSize > 0xffff_ffff) {
    throw new Error(`lz4: invalid expected size ${rawSize}`);
  }
  if (payload.length < LZ4_PREFIX_SIZE + 1) {
    throw new Error(`lz4: payload of ${payload.length} bytes is too short`);
  }
  const prefix = new DataView(payload.buffer, payload.byteOffset, LZ4_PREFIX_SIZE).getUint32(0, true);
  if (prefix !== rawSize) {
    throw new Error(`lz4: size prefix ${prefix} does not match the expected size ${rawSize}`);
  }
  if (rawSize > LZ4_MAX_EXPANSION * (payload.length - LZ4_PREFIX_SIZE)) {
    throw new Error(`lz4: a block of ${payload.length - LZ4_PREFIX_SIZE} bytes cannot expand to ${rawSize} bytes`);
  }
  let out: Uint8Array;
  try {
    out = plain(uncompressSync(payload));
  } catch (e) {
    throw new Error(`lz4: invalid compressed data: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  if (out.length !== rawSize) {
    throw new Error(`lz4: decompressed to ${out.length} bytes, expected ${rawSize}`);
  }
  return out;
}

/**
 * Image sources (layer L4): a file or block device read by position, or a stream of unknown or
 * known length; and changed-block maps.
 */
import { promises as fsp } from 'node:fs';
import { CairnError, ioError } from '../errors.js';

/**
 * Where an image comes from:
 * - a path to a regular file or a block device (read by position; a changed-block map then reads
 *   only the changed chunks);
 * - `{ stream, size? }` or any `AsyncIterable<Uint8Array>` / Node `Readable`, of known or unknown
 *   length (read in order).
 */
export type ImageSource = string | ImagePathSource | ImageStreamSource | AsyncIterable<Uint8Array>;

/** A file or block device by path. */
export interface ImagePathSource {
  /** Path of a regular file or a block device. */
  readonly path: string;
}

/** A stream of bytes (a Node Readable is an AsyncIterable). */
export interface ImageStreamSource {
  /** The bytes, in order. */
  readonly stream: AsyncIterable<Uint8Array>;
  /** The size when known in advance (a changed-block map needs it). */
  readonly size?: number;
}

/**
 * Which parts of an image changed since the previous backup of the same archive, as a hypervisor's
 * dirty tracking reports them:
 * - `{ ranges }`: byte ranges `[offset, length]`;
 * - `{ bitmap, granularity }`: bit `i` (LSB first within each byte) marks bytes
 *   `[i × granularity, (i+1) × granularity)`; granularity is a power of two.
 */
export type ChangedMap = ChangedRanges | ChangedBitmap;

/** Changed byte ranges. */
export interface ChangedRanges {
  /** `[offset, length]` pairs, in any order; overlaps are fine. */
  readonly ranges: readonly (readonly [offset: number, length: number])[];
}

/** A dirty bitmap. */
export interface ChangedBitmap {
  /** Bit `i` (least significant bit first within each byte) marks block `i`. */
  readonly bitmap: Uint8Array;
  /** Bytes per bit: a power of two. */
  readonly granularity: number;
}

/** An opened source. */
export interface OpenedSource {
  /** Size in bytes when known before reading. */
  readonly size: number | undefined;
  /**
   * Reads at a position (files and devices only), into `into` when given (it must hold `length`
   * bytes); the result is shorter at the end of the source.
   */
  readAt?(position: number, length: number, into?: Uint8Array): Promise<Uint8Array>;
  /** The bytes in order, as pieces of any size; `take` supplies chunk-sized buffers to fill. */
  pieces(chunkSize: number, take?: () => Uint8Array): AsyncIterable<Uint8Array>;
  /** Releases the source. */
  close(): Promise<void>;
}

/** Size of a block device from sysfs (in 512-byte sectors), or undefined. */
async function blockDeviceSize(rdev: number): Promise<number | undefined> {
  const major = Number((BigInt(rdev) >> 8n) & 0xfffn) | Number((BigInt(rdev) >> 32n) & ~0xfffn);
  const minor = Number(BigInt(rdev) & 0xffn) | Number((BigInt(rdev) >> 12n) & ~0xffn);
  try {
    const text = await fsp.readFile(`/sys/dev/block/${major}:${minor}/size`, 'utf8');
    const sectors = Number(text.trim());
    return Number.isSafeInteger(sectors) ? sectors * 512 : undefined;
  } catch {
    return undefined;
  }
}

/** Opens a source for reading. Counts the read calls it makes in `counters`. */
export async function openImageSource(source: ImageSource, counters: { reads: number; bytesRead: number }): Promise<OpenedSource> {
  if (typeof source === 'string' || (typeof source === 'object' && source !== null && 'path' in source)) {
    const file = typeof source === 'string' ? source : source.path;
    let fh: fsp.FileHandle;
    try {
      fh = await fsp.open(file, 'r');
    } catch (e) {
      if ((e as { code?: string }).code === 'ENOENT') throw new CairnError('ERR_NOT_FOUND', `image source ${file} does not exist`, { path: file }, e);
      throw ioError(e, `cannot open image source ${file}`, { path: file });
    }
    const st = await fh.stat();
    if (st.isDirectory()) {
      await fh.close();
      throw new CairnError('ERR_INVALID_ARGUMENT', `image source ${file} is a directory`, { path: file });
    }
    const size = st.isFile() ? st.size : st.isBlockDevice() ? await blockDeviceSize(st.rdev) : undefined;
    const readAt = async (position: number, length: number, into?: Uint8Array): Promise<Uint8Array> => {
      const buf = into !== undefined && into.byteLength >= length ? into : new Uint8Array(length);
      let done = 0;
      try {
        while (done < length) {
          counters.reads++;
          const { bytesRead } = await fh.read(buf, done, length - done, position + done);
          if (bytesRead === 0) break;
          done += bytesRead;
        }
      } catch (e) {
        throw ioError(e, `cannot read image source ${file}`, { path: file });
      }
      counters.bytesRead += done;
      return done === buf.byteLength ? buf : new Uint8Array(buf.subarray(0, done));
    };
    return {
      size,
      readAt,
      async *pieces(chunkSize: number, take?: () => Uint8Array) {
        for (let pos = 0; ; pos += chunkSize) {
          const b = await readAt(pos, chunkSize, take?.());
          const n = b.byteLength; // the consumer may transfer b away
          if (n > 0) yield b;
          if (n < chunkSize) return;
        }
      },
      close: () => fh.close(),
    };
  }
  const it: AsyncIterable<Uint8Array> = Symbol.asyncIterator in source ? (source as AsyncIterable<Uint8Array>) : source.stream;
  const size = 'stream' in source ? source.size : undefined;
  return {
    size,
    async *pieces() {
      for await (const piece of it) {
        const u8 = typeof piece === 'string' ? Buffer.from(piece) : piece;
        counters.reads++;
        counters.bytesRead += u8.byteLength;
        yield u8;
      }
    },
    close: async () => undefined,
  };
}

/**
 * Re-cuts pieces of any size into chunks of exactly `chunkSize` (the last may be shorter), each in
 * a buffer of its own (transferable to a worker). Pieces that already are whole, owned chunks pass
 * through without a copy.
 */
export async function* fixedChunks(pieces: AsyncIterable<Uint8Array>, chunkSize: number): AsyncGenerator<Uint8Array> {
  let cur: Uint8Array | undefined;
  let fill = 0;
  for await (const piece of pieces) {
    let off = 0;
    if (cur === undefined && piece.byteLength === chunkSize && piece.byteOffset === 0 && piece.buffer.byteLength === chunkSize && piece.buffer instanceof ArrayBuffer) {
      yield piece;
      continue;
    }
    while (off < piece.byteLength) {
      cur ??= new Uint8Array(chunkSize);
      const n = Math.min(chunkSize - fill, piece.byteLength - off);
      cur.set(piece.subarray(off, off + n), fill);
      fill += n;
      off += n;
      if (fill === chunkSize) {
        yield cur;
        cur = undefined;
        fill = 0;
      }
    }
  }
  if (cur !== undefined && fill > 0) yield new Uint8Array(cur.subarray(0, fill));
}

/**
 * Turns a changed map into one flag per chunk.
 * @throws `ERR_CHANGED_MAP` for ranges outside the image or a bad granularity.
 */
export function changedChunks(map: ChangedMap, size: number, chunkSize: number): Uint8Array {
  const count = Math.ceil(size / chunkSize);
  const flags = new Uint8Array(count);
  const mark = (offset: number, length: number): void => {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > size) {
      throw new CairnError('ERR_CHANGED_MAP', `changed range ${offset}+${length} lies outside the image (size ${size})`);
    }
    if (length === 0) return;
    const first = Math.floor(offset / chunkSize);
    const last = Math.floor((offset + length - 1) / chunkSize);
    flags.fill(1, first, last + 1);
  };
  if ('ranges' in map) {
    for (const r of map.ranges) mark(r[0], r[1]);
    return flags;
  }
  const g = map.granularity;
  if (!Number.isSafeInteger(g) || g <= 0 || (g & (g - 1)) !== 0) {
    throw new CairnError('ERR_CHANGED_MAP', `bitmap granularity ${g} is not a power of two`);
  }
  const bits = Math.ceil(size / g);
  if (map.bitmap.byteLength * 8 < bits) {
    throw new CairnError('ERR_CHANGED_MAP', `bitmap of ${map.bitmap.byteLength} bytes is too short for ${bits} blocks of ${g} bytes`);
  }
  for (let i = 0; i < bits; i++) {
    if ((map.bitmap[i >> 3]! >> (i & 7)) & 1) mark(i * g, Math.min(g, size - i * g));
  }
  return flags;
}

/**
 * Image sources (layer L4): a file or block device read by position, or a stream of unknown or
 * known length; and changed-block maps.
 */
import { promises as fsp, close as fsClose, constants as fsc, fstat as fsFstat, open as fsOpen, read as fsRead, type Stats } from 'node:fs';
import { promisify } from 'node:util';
import { Socket } from 'node:net';
import { CairnError, abortError, ioError, throwIfAborted } from '../errors.js';
import { MAX_RAW_SIZE } from '../codec/envelope.js';

/**
 * Where an image comes from:
 * - a path to a regular file or a block device (read by position; a changed-block map then reads
 *   only the changed chunks);
 * - `{ stream, size? }` or any `AsyncIterable<Uint8Array>` / Node `Readable`, of known or unknown
 *   length (read in order).
 * @category Backup
 */
export type ImageSource = string | ImagePathSource | ImageStreamSource | AsyncIterable<Uint8Array>;

/**
 * A file, block device, character device or pipe by path. The path is opened non-blocking and
 * its descriptor stat-ed: a regular file is read up to its size at open (a file whose size changes
 * while it is read fails with `ERR_IO`); a block device up to its size; a FIFO or pipe
 * (`/dev/stdin`) is streamed, of unknown length; a character device needs `size`.
 * @category Backup
 */
export interface ImagePathSource {
  /** Path of a regular file, a block device, a FIFO or pipe, or a character device. */
  readonly path: string;
  /**
   * Bytes to read: required for a character device (`/dev/zero` never ends); for a pipe, the
   * length it must deliver; for a file or block device, a prefix of it.
   */
  readonly size?: number;
}

/**
 * A stream of bytes (a Node Readable is an AsyncIterable).
 * @category Backup
 */
export interface ImageStreamSource {
  /** The bytes, in order. */
  readonly stream: AsyncIterable<Uint8Array>;
  /**
   * The size when known in advance (a changed-block map needs it): at most this many bytes are
   * read (a stream that goes on is not read further); a stream that ends earlier fails with `ERR_IO`.
   */
  readonly size?: number;
}

/**
 * Which parts of an image changed since the previous backup of the same archive, as a hypervisor's
 * dirty tracking reports them:
 * - `{ ranges }`: byte ranges `[offset, length]`;
 * - `{ bitmap, granularity }`: bit `i` (LSB first within each byte) marks bytes
 *   `[i × granularity, (i+1) × granularity)`; granularity is a power of two.
 * @category Backup
 */
export type ChangedMap = ChangedRanges | ChangedBitmap;

/**
 * Changed byte ranges.
 * @category Backup
 */
export interface ChangedRanges {
  /** `[offset, length]` pairs, in any order; overlaps are fine. */
  readonly ranges: readonly (readonly [offset: number, length: number])[];
}

/**
 * A dirty bitmap.
 * @category Backup
 */
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

/** Opens a source for reading. Counts the read calls it makes in `counters`; `signal` ends a wait on a pipe. */
export async function openImageSource(source: ImageSource, counters: { reads: number; bytesRead: number }, signal?: AbortSignal): Promise<OpenedSource> {
  if (typeof source === 'string' || (typeof source === 'object' && source !== null && 'path' in source)) {
    const file = typeof source === 'string' ? source : source.path;
    const given = typeof source === 'string' ? undefined : source.size;
    if (given !== undefined && (!Number.isSafeInteger(given) || given < 0)) {
      throw new CairnError('ERR_INVALID_ARGUMENT', `image source size ${given} must be an integer >= 0`, { path: file });
    }
    const { fh, st } = await openSource(file, 'image');
    try {
      if (st.isFile()) return regularImage(fh, file, given ?? st.size, given === undefined ? st : undefined, counters);
      if (st.isBlockDevice()) return regularImage(fh, file, given ?? (await blockDeviceSize(st.rdev)), undefined, counters);
      if (st.isCharacterDevice()) {
        if (given === undefined) {
          throw new CairnError(
            'ERR_INVALID_ARGUMENT',
            `image source ${file} is a character device, which may never end: give its size (the API's { path, size }, the command line's --source-size)`,
            { path: file },
          );
        }
        return sequentialImage(fh, file, given, counters, signal);
      }
      if (st.isFIFO() || st.isSocket()) return pipeImage(fh, file, given, counters, signal);
      throw new CairnError('ERR_INVALID_ARGUMENT', `image source ${file} is not a file, block device or pipe`, { path: file });
    } catch (e) {
      await fh.close().catch(() => undefined);
      throw e;
    }
  }
  const it: AsyncIterable<Uint8Array> = Symbol.asyncIterator in source ? (source as AsyncIterable<Uint8Array>) : source.stream;
  const size = 'stream' in source ? source.size : undefined;
  return {
    size,
    async *pieces() {
      let total = 0;
      for await (const piece of abortable(it, signal)) {
        const u8 = typeof piece === 'string' ? Buffer.from(piece) : piece;
        counters.reads++;
        // A declared size is the image's size: a stream that goes on is not read past it.
        const keep = size === undefined ? u8 : u8.subarray(0, Math.max(0, size - total));
        total += keep.byteLength;
        counters.bytesRead += keep.byteLength;
        if (keep.byteLength > 0) yield keep;
        if (size !== undefined && total >= size) return;
      }
      if (size !== undefined && total < size) {
        throw new CairnError('ERR_IO', `image stream ended after ${total} bytes, before its declared size ${size}`, { sizeDeclared: size, sizeRead: total });
      }
    },
    close: async () => undefined,
  };
}

/** Source open flags: a FIFO opens at once (no waiting for a writer on the main thread), a tty does not become ours. */
const SOURCE_FLAGS = fsc.O_RDONLY | fsc.O_NONBLOCK | fsc.O_NOCTTY;

const openAsync = promisify(fsOpen);
const readAsync = promisify(fsRead);
const fstatAsync = promisify(fsFstat);
const closeAsync = promisify(fsClose);

/**
 * An open source descriptor. A pipe's descriptor is handed to a socket, which then owns it (and
 * closes it): `close` never closes a descriptor twice.
 */
class SourceFd {
  private owned = true;
  constructor(readonly fd: number) {}
  async read(buf: Uint8Array, offset: number, length: number, position: number | null): Promise<{ bytesRead: number }> {
    return { bytesRead: (await readAsync(this.fd, buf, offset, length, position)).bytesRead };
  }
  stat(): Promise<Stats> {
    return fstatAsync(this.fd);
  }
  /** The socket that reads a pipe takes the descriptor over. */
  handOver(): number {
    this.owned = false;
    return this.fd;
  }
  async close(): Promise<void> {
    if (!this.owned) return;
    this.owned = false;
    await closeAsync(this.fd);
  }
}

/** Opens a user-given source path (symlinks followed: `/dev/vg0/disk` is one) and stats the descriptor. */
async function openSource(file: string, what: 'image' | 'blob'): Promise<{ fh: SourceFd; st: Stats }> {
  let fh: SourceFd;
  try {
    fh = new SourceFd(await openAsync(file, SOURCE_FLAGS));
  } catch (e) {
    if ((e as { code?: string }).code === 'ENOENT') throw new CairnError('ERR_NOT_FOUND', `${what} source ${file} does not exist`, { path: file }, e);
    throw ioError(e, `cannot open ${what} source ${file}`, { path: file });
  }
  let st: Stats;
  try {
    st = await fh.stat();
  } catch (e) {
    await fh.close().catch(() => undefined);
    throw ioError(e, `cannot stat ${what} source ${file}`, { path: file });
  }
  if (st.isDirectory()) {
    await fh.close();
    throw new CairnError('ERR_INVALID_ARGUMENT', `${what} source ${file} is a directory`, { path: file });
  }
  return { fh, st };
}

/**
 * A regular file or block device, read by position and never past `size` (the size at open, or
 * the one given): a file that keeps growing cannot make the read endless. When `atOpen` is set
 * (a file without a given size), a file whose size changed while it was read fails the archive.
 */
function regularImage(fh: SourceFd, file: string, size: number | undefined, atOpen: Stats | undefined, counters: { reads: number; bytesRead: number }): OpenedSource {
  const readAt = async (position: number, length: number, into?: Uint8Array): Promise<Uint8Array> => {
    const len = size === undefined ? length : Math.max(0, Math.min(length, size - position));
    const buf = into !== undefined && into.byteLength >= len ? into : new Uint8Array(len);
    let done = 0;
    try {
      while (done < len) {
        counters.reads++;
        const { bytesRead } = await fh.read(buf, done, len - done, position + done);
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
        const want = size === undefined ? chunkSize : Math.min(chunkSize, size - pos);
        if (want <= 0) break;
        const b = await readAt(pos, chunkSize, take?.());
        const n = b.byteLength; // the consumer may transfer b away
        if (n > 0) yield b;
        if (n < want) {
          if (size !== undefined) throw changed(file, size, pos + n, 'it ended early');
          break;
        }
        if (n < chunkSize) break;
      }
      if (atOpen !== undefined) {
        const now = await fh.stat().catch(() => undefined);
        if (now === undefined || now.size !== atOpen.size) throw changed(file, atOpen.size, now?.size, 'its size changed');
      }
    },
    close: () => fh.close(),
  };
}

function changed(file: string, sizeAtOpen: number, now: number | undefined, how: string): CairnError {
  return new CairnError('ERR_IO', `image source ${file} changed while it was read: ${how} (${sizeAtOpen} bytes at open, ${now ?? 'unknown'} now)`, {
    path: file,
    sizeAtOpen,
    ...(now === undefined ? {} : { sizeNow: now }),
  });
}

/** A character device of a given size, read in order (a device need not support positions). */
function sequentialImage(fh: SourceFd, file: string, size: number, counters: { reads: number; bytesRead: number }, signal: AbortSignal | undefined): OpenedSource {
  return {
    size,
    async *pieces(chunkSize: number, take?: () => Uint8Array) {
      for (let pos = 0; pos < size;) {
        throwIfAborted(signal, { path: file });
        const want = Math.min(chunkSize, size - pos);
        const t = take?.();
        const buf = t !== undefined && t.byteLength >= want ? t.subarray(0, want) : new Uint8Array(want);
        let n: number;
        try {
          counters.reads++;
          n = (await fh.read(buf, 0, want, null)).bytesRead;
        } catch (e) {
          throw ioError(e, `cannot read image source ${file}`, { path: file });
        }
        if (n === 0) throw changed(file, size, pos, 'it ended before the size given');
        counters.bytesRead += n;
        pos += n;
        yield n === buf.byteLength && buf.byteOffset === 0 && buf.buffer.byteLength === n ? buf : new Uint8Array(buf.subarray(0, n));
      }
    },
    close: () => fh.close(),
  };
}

/**
 * A FIFO (or `/dev/stdin` as a pipe): streamed through the event loop (waiting for a writer or
 * for data blocks nothing, and `signal` ends the wait), of unknown length unless one is given.
 */
function pipeImage(fh: SourceFd, file: string, size: number | undefined, counters: { reads: number; bytesRead: number }, signal: AbortSignal | undefined): OpenedSource {
  let sock: Socket | undefined;
  return {
    size,
    async *pieces() {
      let total = 0;
      for await (const piece of pipeStream(fh, signal, (s) => (sock = s))) {
        counters.reads++;
        const keep = size === undefined ? piece : piece.subarray(0, Math.max(0, size - total));
        total += keep.byteLength;
        counters.bytesRead += keep.byteLength;
        if (keep.byteLength > 0) yield keep;
        if (size !== undefined && total >= size) return;
      }
      if (size !== undefined && total < size) throw changed(file, size, total, 'it ended before the size given');
    },
    close: async () => {
      sock?.destroy();
      await fh.close().catch(() => undefined);
    },
  };
}

/** The bytes of a pipe descriptor, read by the event loop; ends with `ERR_ABORTED` when `signal` fires. */
async function* pipeStream(fh: SourceFd, signal: AbortSignal | undefined, onSocket?: (s: Socket) => void): AsyncGenerator<Uint8Array> {
  throwIfAborted(signal);
  // The socket owns the descriptor from here on (it closes it when destroyed).
  const sock = new Socket({ fd: fh.handOver(), readable: true, writable: false, allowHalfOpen: true });
  onSocket?.(sock);
  const onAbort = (): void => void sock.destroy(abortError(signal));
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    for await (const piece of sock) yield piece as Buffer;
  } finally {
    signal?.removeEventListener('abort', onAbort);
    sock.destroy();
  }
}

/** Ends waiting on `it` with `ERR_ABORTED` as soon as `signal` fires (not only between pieces). */
async function* abortable<T>(it: AsyncIterable<T>, signal: AbortSignal | undefined): AsyncGenerator<T> {
  if (signal === undefined) {
    yield* it;
    return;
  }
  throwIfAborted(signal);
  const iter = it[Symbol.asyncIterator]();
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(abortError(signal));
    signal.addEventListener('abort', onAbort, { once: true });
  });
  aborted.catch(() => undefined);
  try {
    for (;;) {
      const r = await Promise.race([iter.next(), aborted]);
      if (r.done === true) return;
      yield r.value;
    }
  } finally {
    signal.removeEventListener('abort', onAbort!);
    // Not awaited: a generator still waiting inside next() would only take the request after that.
    void iter.return?.()?.catch?.(() => undefined);
  }
}

/**
 * Options of {@link readBlobSource}.
 * @category Backup
 */
export interface ReadBlobSourceOptions {
  /** The largest size accepted. @defaultValue 64 MiB: the format's limit for one envelope, a blob archive's `MAX_BLOB_SIZE` */
  readonly maxSize?: number;
  /** Ends the read (a pipe that never ends, a writer that never writes) with `ERR_ABORTED`. */
  readonly signal?: AbortSignal;
}

/**
 * Reads the source of a blob archive from a path, safely: a regular file is size-checked before
 * a byte is read and read up to its size at open; a FIFO or pipe is read through the event loop
 * (abortable) up to the limit; devices and directories are refused.
 *
 * @param file - a regular file, a FIFO or a pipe (`/dev/stdin`)
 * @param options - the limit and a signal
 * @returns the bytes
 * @throws `ERR_INVALID_ARGUMENT` when the source is larger than the limit or is a device or
 *   directory; `ERR_NOT_FOUND`; `ERR_IO` when it cannot be read or changed size while read;
 *   `ERR_ABORTED`
 * @category Backup
 */
export async function readBlobSource(file: string, options: ReadBlobSourceOptions = {}): Promise<Uint8Array> {
  const max = options.maxSize ?? MAX_RAW_SIZE;
  const tooBig = (n: number | string): CairnError => new CairnError('ERR_INVALID_ARGUMENT', `blob source ${file} has ${n} bytes; the limit is ${max}`, { path: file, limit: max });
  const { fh, st } = await openSource(file, 'blob');
  try {
    if (st.isFile()) {
      if (st.size > max) throw tooBig(st.size);
      const buf = Buffer.alloc(st.size);
      let n = 0;
      try {
        while (n < buf.length) {
          const { bytesRead } = await fh.read(buf, n, buf.length - n, n);
          if (bytesRead === 0) break;
          n += bytesRead;
        }
      } catch (e) {
        throw ioError(e, `cannot read blob source ${file}`, { path: file });
      }
      const now = await fh.stat().catch(() => undefined);
      if (n !== st.size || now?.size !== st.size) {
        throw new CairnError('ERR_IO', `blob source ${file} changed while it was read (${st.size} bytes at open, ${now?.size ?? 'unknown'} now)`, { path: file });
      }
      return buf;
    }
    if (st.isFIFO() || st.isSocket()) {
      const parts: Uint8Array[] = [];
      let total = 0;
      for await (const piece of pipeStream(fh, options.signal)) {
        total += piece.byteLength;
        if (total > max) throw tooBig(`more than ${max}`);
        parts.push(piece);
      }
      return Buffer.concat(parts);
    }
    throw new CairnError(
      'ERR_INVALID_ARGUMENT',
      `blob source ${file} is a ${st.isCharacterDevice() ? 'character device' : st.isBlockDevice() ? 'block device' : 'special file'}: a blob is read from a file or a pipe`,
      { path: file },
    );
  } finally {
    await fh.close().catch(() => undefined);
  }
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

/**
 * The work the pool does on chunks (layer L3), as plain functions: they run inside worker threads
 * (see worker.ts) or inline on the calling thread for a pool of zero threads. Each returns its
 * result and the buffers to transfer back.
 */
import { lz4Compress } from '../codec/compress.js';
import { chunkDigest, decodeChunk, encodeChunk } from '../codec/envelope.js';
import { CairnError, errorFromJSON, ioError, syscallCode, type CairnErrorJSON } from '../errors.js';
import { closeSync, constants as fsConstants, fstatSync, openSync, readSync } from 'node:fs';
import type { DecodeResult, DecodeTask, EncodeResult, EncodeTask, HashResult, HashTask, PoolTask, ReadDecodeTask } from './protocol.js';
import { isAllZero, knownHas } from './known-set.js';
import { ENVELOPE_MAX_BYTES } from '../format/limits.js';

/** Open flags of chunk files: no symlink followed, no blocking on a FIFO (O_NONBLOCK does nothing to regular files). */
const READ_FLAGS = fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK;

/** A result and the buffers to transfer with it. */
export interface TaskOutput<T> {
  /** The result. */
  readonly value: T;
  /** Buffers owned by the result, to transfer rather than copy. */
  readonly transfer: ArrayBuffer[];
}

function errorJson(e: unknown): CairnErrorJSON {
  return (e instanceof CairnError ? e : errorFromJSON(e)).toJSON();
}

function ownsBuffer(u8: Uint8Array): boolean {
  return u8.byteOffset === 0 && u8.byteLength === u8.buffer.byteLength && !(u8.buffer instanceof SharedArrayBuffer);
}

/** Bytes of the sample that predicts whether a chunk compresses. */
const SAMPLE = 64 * 1024;

/**
 * Predicts from a sample whether LZ4 will shrink a chunk, as borg's "auto" mode does: random or
 * already-compressed data is stored raw without paying for a full compression (and without the
 * worker accumulating chunk-sized garbage). The prediction only decides whether to try; the
 * envelope still keeps LZ4 output only when it is smaller.
 */
export function worthCompressing(data: Uint8Array): boolean {
  if (data.byteLength <= 2 * SAMPLE) return true;
  const mid = Math.floor((data.byteLength - SAMPLE) / 2);
  const sample = data.subarray(mid, mid + SAMPLE);
  return lz4Compress(sample).byteLength < SAMPLE * 0.97;
}

function encode(task: EncodeTask): TaskOutput<EncodeResult> {
  const data = task.data;
  const zero = isAllZero(data);
  const digest = chunkDigest(task.format, data);
  const spare = ownsBuffer(data) ? { spare: data } : {};
  const spareList = ownsBuffer(data) ? [data.buffer as ArrayBuffer] : [];
  if (task.known !== null && knownHas(task.known, digest)) {
    return { value: { digest, zero, known: true, size: data.byteLength, ...spare }, transfer: spareList };
  }
  const enc = encodeChunk(task.format, data, { digest, compress: task.compress && (zero || worthCompressing(data)) });
  if (enc.payload === data) {
    const value: EncodeResult = { digest, zero, known: false, size: data.byteLength, header: enc.header, payload: data };
    return { value, transfer: spareList };
  }
  if (ownsBuffer(data)) {
    // The raw bytes are hashed and compressed: the LZ4 output (smaller, and in memory that cannot be
    // transferred) goes into the chunk's own buffer, which travels back and is reused; no allocation.
    data.set(enc.payload, 0);
    const payload = data.subarray(0, enc.payload.byteLength);
    return { value: { digest, zero, known: false, size: data.byteLength, header: enc.header, payload }, transfer: spareList };
  }
  const payload = new Uint8Array(enc.payload);
  const value: EncodeResult = { digest, zero, known: false, size: data.byteLength, header: enc.header, payload };
  return { value, transfer: [payload.buffer as ArrayBuffer] };
}

function decode(task: DecodeTask): TaskOutput<DecodeResult> {
  try {
    const opts = task.digest === null ? { code: task.code, details: task.details } : { code: task.code, details: task.details, expectDigest: task.digest };
    const raw = decodeChunk(task.format, task.data, opts);
    if (raw.buffer === task.data.buffer && ownsBuffer(task.data)) {
      // Stored uncompressed: hand back a view of the input, no copy.
      return { value: { data: raw }, transfer: [task.data.buffer as ArrayBuffer] };
    }
    const own = ownsBuffer(raw) ? raw : new Uint8Array(raw);
    return { value: { data: own }, transfer: [own.buffer as ArrayBuffer] };
  } catch (e) {
    return { value: { error: errorJson(e) }, transfer: [] };
  }
}

/**
 * The buffer chunk files are read into, reused from task to task (one per worker thread): reading
 * each file into a fresh buffer left a chunk-sized piece of garbage per read in the worker's heap
 * (a FUSE mount's peak RSS grew by 44 MiB). The decoded result never aliases it (see decode()).
 */
let readBuffer = new Uint8Array(0);

/** Thrown by {@link readChunkFile} for a chunk file that is not what the layout says. */
class NotAChunkFile extends Error {}

/**
 * Reads a chunk file: opened `O_NOFOLLOW|O_NONBLOCK` (a symlink fails, a FIFO cannot block the
 * worker), required to be a regular file by `fstat`, and at most {@link ENVELOPE_MAX_BYTES}, so a
 * planted `/dev/zero`, FIFO, directory or huge sparse file fails at once as a corrupt chunk.
 */
function readChunkFile(file: string): Uint8Array {
  let fd: number;
  try {
    fd = openSync(file, READ_FLAGS);
  } catch (e) {
    if (syscallCode(e) === 'ELOOP') throw new NotAChunkFile('is a symlink, not a regular file');
    throw e;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new NotAChunkFile(st.isDirectory() ? 'is a directory' : 'is not a regular file (a FIFO, device or socket)');
    const size = st.size;
    if (size > ENVELOPE_MAX_BYTES) throw new NotAChunkFile(`is ${size} bytes, more than the ${ENVELOPE_MAX_BYTES} a chunk can have`);
    if (readBuffer.byteLength < size) readBuffer = new Uint8Array(size);
    let n = 0;
    while (n < size) {
      const r = readSync(fd, readBuffer, n, size - n, n);
      if (r === 0) break;
      n += r;
    }
    return readBuffer.subarray(0, n);
  } finally {
    closeSync(fd);
  }
}

function readDecode(task: ReadDecodeTask): TaskOutput<DecodeResult> {
  let data: Uint8Array;
  try {
    data = readChunkFile(task.path);
  } catch (e) {
    const err =
      e instanceof NotAChunkFile
        ? new CairnError(task.code, `chunk ${task.details.digest ?? ''} at ${task.path} ${e.message}`, { ...task.details, path: task.path })
        : syscallCode(e) === 'ENOENT'
          ? new CairnError('ERR_CHUNK_MISSING', `chunk ${task.details.digest ?? task.path} is missing`, { ...task.details, path: task.path }, e)
          : ioError(e, `cannot read chunk ${task.details.digest ?? ''} at ${task.path}`, { ...task.details, path: task.path });
    return { value: { error: err.toJSON() }, transfer: [] };
  }
  try {
    const opts = task.digest === null ? { code: task.code, details: task.details } : { code: task.code, details: task.details, expectDigest: task.digest };
    const raw = decodeChunk(task.format, data, opts);
    // Never hand out (or transfer) the reused read buffer: a chunk stored uncompressed is copied.
    const own = raw.buffer === readBuffer.buffer || !ownsBuffer(raw) ? new Uint8Array(raw) : raw;
    return { value: { data: own }, transfer: [own.buffer as ArrayBuffer] };
  } catch (e) {
    return { value: { error: errorJson(e) }, transfer: [] };
  }
}

function hash(task: HashTask): TaskOutput<HashResult> {
  const transfer = ownsBuffer(task.data) ? [task.data.buffer as ArrayBuffer] : [];
  try {
    return { value: { digest: chunkDigest(task.format, task.data), data: task.data }, transfer };
  } catch (e) {
    return { value: { digest: new Uint8Array(0), data: task.data, error: errorJson(e) }, transfer };
  }
}

/**
 * Runs one task; never throws for bad data (the error is in the result). The task owns its `data`
 * buffer, as a worker does after the transfer: encode may overwrite it with the compressed payload.
 */
export function runTask(task: PoolTask): TaskOutput<EncodeResult | DecodeResult | HashResult> {
  switch (task.op) {
    case 'encode':
      try {
        return encode(task);
      } catch (e) {
        return { value: { digest: new Uint8Array(0), zero: false, known: false, size: 0, error: errorJson(e) }, transfer: [] };
      }
    case 'decode':
      return decode(task);
    case 'readDecode':
      return readDecode(task);
    case 'hash':
      return hash(task);
  }
}

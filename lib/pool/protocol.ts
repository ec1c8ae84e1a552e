/**
 * Messages between the main thread and the pool's workers (layer L3).
 *
 * Chunk buffers travel by transfer, never by copy: a task owns its `data` buffer, which the caller
 * must not touch after submitting it. Errors travel as {@link CairnErrorJSON} values in the result
 * (`error`), so their code and details survive the thread boundary. Every chunk task carries the
 * {@link ChunkFormat} of the datastore it works for (a pool may serve several datastores), and the
 * worker digests, encodes and decodes in that format.
 */
import type { CairnErrorJSON, ErrorDetails } from '../errors.js';
import type { ChunkFormat, EnvelopeCorruptCode } from '../codec/envelope.js';

/** Hash a chunk, and unless its digest is known, compress it and build its envelope header. */
export interface EncodeTask {
  /** Discriminator. */
  readonly op: 'encode';
  /** The chunk (transferred). */
  readonly data: Uint8Array;
  /** Digest kind and crypt mode of the datastore's chunks. */
  readonly format: ChunkFormat;
  /** Try LZ4 (kept only when smaller). */
  readonly compress: boolean;
  /** Sorted 32-byte digests the store already has (shared memory, never copied). */
  readonly known: SharedArrayBuffer | null;
}

/**
 * Result of an encode task.
 * @category Building blocks
 */
export interface EncodeResult {
  /** The chunk's digest in the task's chunk format (BLAKE3 of the chunk today). */
  readonly digest: Uint8Array;
  /** The chunk is all zeros. */
  readonly zero: boolean;
  /** The digest is in the known set: no header, no payload. */
  readonly known: boolean;
  /** The chunk's size. */
  readonly size: number;
  /** Envelope header (absent when known). */
  readonly header?: Uint8Array;
  /** Stored payload: LZ4 output or the chunk itself (absent when known). */
  readonly payload?: Uint8Array;
  /** The chunk's buffer handed back for reuse, when it is not the payload. */
  readonly spare?: Uint8Array;
  /** Set when the task failed. */
  readonly error?: CairnErrorJSON;
}

/** Check and decode a stored chunk. */
export interface DecodeTask {
  /** Discriminator. */
  readonly op: 'decode';
  /** The stored bytes (transferred). */
  readonly data: Uint8Array;
  /** Digest kind and crypt mode of the datastore's chunks. */
  readonly format: ChunkFormat;
  /** The digest the plaintext must have, or null to skip the check. */
  readonly digest: Uint8Array | null;
  /** Error code on damage. */
  readonly code: EnvelopeCorruptCode;
  /** Ids for the error. */
  readonly details: ErrorDetails;
}

/**
 * Read a chunk file and decode it, both on the worker: the main thread then makes no file system
 * call per chunk (an awaited `readFile` is several thread-pool round trips on the event loop).
 */
export interface ReadDecodeTask {
  /** Discriminator. */
  readonly op: 'readDecode';
  /** The chunk file. */
  readonly path: string;
  /** Digest kind and crypt mode of the datastore's chunks. */
  readonly format: ChunkFormat;
  /** The digest the plaintext must have, or null to skip the check. */
  readonly digest: Uint8Array | null;
  /** Error code on damage (a missing file is always `ERR_CHUNK_MISSING`). */
  readonly code: EnvelopeCorruptCode;
  /** Ids for the error (with the digest in hex). */
  readonly details: ErrorDetails;
}

/** Result of a {@link DecodeTask}. */
export interface DecodeResult {
  /** The plaintext. */
  readonly data?: Uint8Array;
  /** Set when the chunk is damaged. */
  readonly error?: CairnErrorJSON;
}

/** Hash only (benchmarks, verification of raw data). */
export interface HashTask {
  /** Discriminator. */
  readonly op: 'hash';
  /** The bytes (transferred; returned). */
  readonly data: Uint8Array;
  /** Digest kind of the datastore's chunks. */
  readonly format: ChunkFormat;
}

/**
 * Result of a hash task.
 * @category Building blocks
 */
export interface HashResult {
  /** The digest of the bytes in the task's chunk format (BLAKE3 today). */
  readonly digest: Uint8Array;
  /** The bytes, handed back. */
  readonly data: Uint8Array;
  /** Set when the task failed (an unknown chunk format). */
  readonly error?: CairnErrorJSON;
}

/** Any task. */
export type PoolTask = EncodeTask | DecodeTask | ReadDecodeTask | HashTask;

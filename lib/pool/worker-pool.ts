/**
 * The worker pool (layer L3): BLAKE3 and LZ4 on piscina worker threads.
 *
 * One pool may serve several datastores: each call names the {@link ChunkFormat} of the chunks
 * it works on (digest kind and crypt mode; {@link PLAIN_CHUNK_FORMAT} when not given), and the
 * format travels with the task to the worker, which digests, encodes and decodes in it.
 *
 * Chunk buffers are transferred to the workers and back, never copied, so a chunk passed to
 * {@link WorkerPool.encode} must be a buffer the caller allocated itself (not a slice of a pooled
 * Buffer) and must not be used afterwards. The pool does not bound its queue: callers bound the
 * bytes they have in flight (the snapshot writer uses a {@link ByteGate}).
 */
import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import { CairnError, abortError, errorFromJSON, throwIfAborted, type ErrorDetails } from '../errors.js';
import { type ChunkFormat, type EnvelopeCorruptCode, checkChunkFormat, PLAIN_CHUNK_FORMAT } from '../codec/envelope.js';
import { initHash } from '../codec/hash.js';
import type { DecodeResult, EncodeResult, HashResult, PoolTask } from './protocol.js';
import { runTask } from './tasks.js';

/**
 * Options of {@link WorkerPool}.
 * @category Building blocks
 */
export interface WorkerPoolOptions {
  /**
   * Worker threads. 0 runs every task inline on the calling thread (handy for small jobs and
   * debugging).
   * @defaultValue the available cores (`os.availableParallelism()`)
   */
  readonly threads?: number;
  /**
   * How long an idle worker lives, in ms. Long, because a new worker must initialise BLAKE3.
   * @defaultValue 30000
   */
  readonly idleTimeout?: number;
}

/**
 * The chunk format a call names, checked on the calling thread (a bad one fails there with
 * `ERR_INVALID_ARGUMENT`, not in a worker).
 */
function formatOf(format: ChunkFormat | undefined): ChunkFormat {
  return format === undefined ? PLAIN_CHUNK_FORMAT : checkChunkFormat(format);
}

/**
 * What {@link WorkerPool.hash} takes besides the data.
 * @category Building blocks
 */
export interface HashOptions {
  /** Ends the wait with `ERR_ABORTED`. */
  readonly signal?: AbortSignal;
  /**
   * Digest kind of the datastore the bytes are a chunk of.
   * @defaultValue {@link PLAIN_CHUNK_FORMAT}
   */
  readonly format?: ChunkFormat;
}

/**
 * The outcome of encoding one chunk.
 * @category Building blocks
 */
export type EncodedChunk = Omit<EncodeResult, 'error'>;

const workerUrl = new URL(import.meta.url.endsWith('.ts') ? './worker.ts' : './worker.js', import.meta.url);

/**
 * Runs chunk work on worker threads.
 *
 * @example
 * ```ts
 * const pool = new WorkerPool({ threads: 2 });
 * const chunk = new Uint8Array(1 << 20);
 * const { digest, header, payload } = await pool.encode(chunk, { compress: true, known: null });
 * await pool.close();
 * ```
 * @category Building blocks
 */
export class WorkerPool {
  /** Number of worker threads (0: inline). */
  readonly threads: number;
  private readonly piscina: Piscina | undefined;
  private closed = false;

  /** @param options - see {@link WorkerPoolOptions} */
  constructor(options: WorkerPoolOptions = {}) {
    const threads = options.threads ?? availableParallelism();
    if (!Number.isInteger(threads) || threads < 0 || threads > 256) {
      throw new CairnError('ERR_INVALID_ARGUMENT', `pool threads must be an integer from 0 to 256, got ${threads}`);
    }
    this.threads = threads;
    this.piscina =
      threads === 0
        ? undefined
        : new Piscina({
            filename: workerUrl.href,
            minThreads: threads,
            maxThreads: threads,
            idleTimeout: options.idleTimeout ?? 30_000,
            // With piscina's default ('sync') a worker waits in Atomics.wait between tasks and its
            // event loop never turns, so the finalizers that free lz4-napi's output buffers never
            // run: measured, a 1 GiB backup in 64 KiB chunks grew to 1.8 GiB RSS. 'disabled' lets
            // the loop turn between tasks.
            atomics: 'disabled',
            // Workers inherit the parent's flags; `--input-type` (node -e scripts) breaks them.
            execArgv: process.execArgv.filter((a) => !a.startsWith('--input-type')),
          });
  }

  /** Number of tasks waiting for a worker. */
  get queueSize(): number {
    return this.piscina?.queueSize ?? 0;
  }

  private async run<T>(task: PoolTask, transfer: ArrayBuffer[], signal: AbortSignal | undefined): Promise<T> {
    if (this.closed) throw new CairnError('ERR_NOT_OPEN', 'worker pool is closed');
    throwIfAborted(signal);
    if (this.piscina === undefined) {
      await initHash();
      return runTask(task).value as T;
    }
    try {
      const opts = signal === undefined ? { transferList: transfer } : { transferList: transfer, signal };
      return (await this.piscina.run(task, opts)) as T;
    } catch (e) {
      if (signal?.aborted === true) throw abortError(signal);
      throw new CairnError('ERR_IO', `worker task failed: ${e instanceof Error ? e.message : String(e)}`, {}, e);
    }
  }

  /**
   * Hashes a chunk; unless the digest is in `known`, compresses it (kept only when smaller) and
   * builds its envelope header. `data` is transferred: do not use it afterwards. `format` is the
   * chunk format of the datastore it is for ({@link PLAIN_CHUNK_FORMAT} when not given).
   */
  async encode(data: Uint8Array, options: { compress: boolean; known: SharedArrayBuffer | null; signal?: AbortSignal; format?: ChunkFormat }): Promise<EncodedChunk> {
    const task = { op: 'encode' as const, data, format: formatOf(options.format), compress: options.compress, known: options.known };
    const r = await this.run<EncodeResult>(task, transferOf(data), options.signal);
    if (r.error !== undefined) throw errorFromJSON(r.error);
    return r;
  }

  /**
   * Checks and decodes a stored chunk (CRC, LZ4, and the digest when given, in `format`:
   * {@link PLAIN_CHUNK_FORMAT} when not given). `data` is transferred. Damage raises a
   * {@link CairnError} with `code` and `details`.
   */
  async decode(
    data: Uint8Array,
    options: { digest: Uint8Array | null; code: EnvelopeCorruptCode; details: ErrorDetails; signal?: AbortSignal; format?: ChunkFormat },
  ): Promise<Uint8Array> {
    const task = { op: 'decode' as const, data, format: formatOf(options.format), digest: options.digest, code: options.code, details: options.details };
    const r = await this.run<DecodeResult>(task, transferOf(data), options.signal);
    if (r.error !== undefined) throw errorFromJSON(r.error);
    return r.data!;
  }

  /**
   * Reads a chunk file and checks and decodes it (in `format`, as {@link WorkerPool.decode}), all
   * on a worker. A missing file raises `ERR_CHUNK_MISSING`; damage raises `code`; both with `details`.
   */
  async readDecode(
    path: string,
    options: { digest: Uint8Array | null; code: EnvelopeCorruptCode; details: ErrorDetails; signal?: AbortSignal; format?: ChunkFormat },
  ): Promise<Uint8Array> {
    const task = { op: 'readDecode' as const, path, format: formatOf(options.format), digest: options.digest, code: options.code, details: options.details };
    const r = await this.run<DecodeResult>(task, [], options.signal);
    if (r.error !== undefined) throw errorFromJSON(r.error);
    return r.data!;
  }

  /**
   * The chunk digest of `data` (BLAKE3 in {@link PLAIN_CHUNK_FORMAT}) on a worker; `data` is
   * transferred and handed back in the result.
   * @param options - an abort signal, or {@link HashOptions} (signal and chunk format)
   */
  async hash(data: Uint8Array, options?: AbortSignal | HashOptions): Promise<HashResult> {
    const o: HashOptions = options === undefined ? {} : options instanceof AbortSignal ? { signal: options } : options;
    const r = await this.run<HashResult>({ op: 'hash', data, format: formatOf(o.format) }, transferOf(data), o.signal);
    if (r.error !== undefined) throw errorFromJSON(r.error);
    return r;
  }

  /** Waits for running and queued tasks, then stops the workers. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.piscina?.close();
  }

  /** Alias of {@link WorkerPool.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

function transferOf(data: Uint8Array): ArrayBuffer[] {
  const b = data.buffer;
  return b instanceof ArrayBuffer && data.byteOffset === 0 && data.byteLength === b.byteLength ? [b] : [];
}

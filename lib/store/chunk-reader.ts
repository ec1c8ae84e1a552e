/**
 * Reads chunks back (layer L3): chunk file -> worker (CRC, LZ4, BLAKE3 check) -> bytes, with a
 * cache bounded in bytes and one read per digest however many callers ask at once.
 */
import { toHex } from '../util/bytes.js';
import { ByteLru } from '../util/lru.js';
import { CairnError, abortError, throwIfAborted, type ErrorDetails } from '../errors.js';
import type { WorkerPool } from '../pool/worker-pool.js';
import type { ChunkStore } from './chunk-store.js';

/** Options of {@link ChunkReader}. */
export interface ChunkReaderOptions {
  /**
   * Bytes of decoded chunks kept for re-reads (random access, FUSE).
   * @defaultValue 32 MiB
   */
  readonly cacheBytes?: number;
  /**
   * Check each chunk's digest (in the store's chunk format) after decoding (the CRC is always
   * checked). Catches a chunk file that holds another chunk's bytes.
   * @defaultValue true
   */
  readonly verifyDigest?: boolean;
}

/** Decoded chunk reads with a byte-bounded cache. */
export class ChunkReader {
  private readonly cache: ByteLru<string, Uint8Array>;
  private readonly pending = new Map<string, Promise<Uint8Array>>();
  private readonly verifyDigest: boolean;

  /**
   * @param store - the chunk files
   * @param pool - where decoding runs
   * @param options - see {@link ChunkReaderOptions}
   */
  constructor(
    private readonly store: ChunkStore,
    private readonly pool: WorkerPool,
    options: ChunkReaderOptions = {},
  ) {
    this.cache = new ByteLru(options.cacheBytes ?? 32 * 1024 * 1024);
    this.verifyDigest = options.verifyDigest ?? true;
  }

  /**
   * The decoded chunk. The returned buffer may be shared with the cache: do not modify it.
   * @throws `ERR_CHUNK_MISSING` or `ERR_CHUNK_CORRUPT`, naming the digest.
   */
  async get(digest: Uint8Array, options: { details?: ErrorDetails; cache?: boolean; signal?: AbortSignal } = {}): Promise<Uint8Array> {
    throwIfAborted(options.signal, options.details);
    const hex = toHex(digest);
    const hit = this.cache.get(hex);
    if (hit !== undefined) return hit;
    let p = this.pending.get(hex);
    if (p === undefined) {
      // One load per digest, shared by every concurrent caller: it belongs to none of them, so it
      // takes no caller's signal, and each caller gets errors with its own ids.
      p = this.load(digest, hex);
      this.pending.set(hex, p);
      void p.then(
        (data) => {
          this.pending.delete(hex);
          if (options.cache !== false) this.cache.set(hex, data);
        },
        () => this.pending.delete(hex),
      );
    }
    const mine = p.catch((e: unknown) => {
      throw e instanceof CairnError ? new CairnError(e.code, e.message, { ...options.details, ...e.details }, e.cause) : e;
    });
    const signal = options.signal;
    if (signal === undefined) return mine;
    return new Promise<Uint8Array>((resolve, reject) => {
      const onAbort = (): void => reject(abortError(signal, { ...options.details, digest: hex }));
      signal.addEventListener('abort', onAbort, { once: true });
      mine.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
    });
  }

  private async load(digest: Uint8Array, hex: string): Promise<Uint8Array> {
    const opts = { digest: this.verifyDigest ? digest : null, code: 'ERR_CHUNK_CORRUPT' as const, details: { digest: hex }, format: this.store.format };
    // A local file is read on the worker too: no file system round trips on the caller's event loop.
    const file = this.store.localPathOf(digest);
    if (file !== undefined) return this.pool.readDecode(file, opts);
    const stored = await this.store.read(digest);
    const own = stored.byteOffset === 0 && stored.byteLength === stored.buffer.byteLength ? stored : new Uint8Array(stored);
    return this.pool.decode(own, opts);
  }

  /** Drops the cache. */
  clear(): void {
    this.cache.clear();
  }
}

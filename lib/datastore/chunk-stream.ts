/**
 * A byte stream cut by the content-defined chunker and stored behind a dynamic index (layer L4):
 * the payload and metadata streams of tree archives.
 *
 * Bytes are cut where the chunker says, or earlier at a *preferred cut* (a file boundary) when the
 * chunk is at least `min` bytes long, so that an edited file does not disturb its neighbours'
 * chunks. Chunks go to the worker pool and the chunk store concurrently, with the bytes in flight
 * bounded; the index records them in stream order. Chunks of the base snapshot can be appended by
 * digest without their bytes (`appendChunk`), which is how unchanged files are reused.
 */
import { CairnError, type ErrorDetails } from '../errors.js';
import { Chunker, type CdcParams } from '../codec/chunker.js';
import { DynamicIndexBuilder, decodeDynamicIndex } from '../format/dynamic-index.js';
import { TaskGroup } from '../util/task-group.js';
import { toHex } from '../util/bytes.js';
import { indexChecksum, initHash } from '../codec/hash.js';
import type { StoreContext } from './context.js';

/**
 * Counters of one stream.
 * @category Backup
 */
export interface ChunkStreamStats {
  /** Chunks in the index. */
  chunks: number;
  /** Chunks written to the store. */
  chunksWritten: number;
  /** Chunks the store already had (touched). */
  chunksDuplicate: number;
  /** Chunks of the base snapshot (neither compressed, written nor touched). */
  chunksKnown: number;
  /** Chunks appended by digest, without their bytes. */
  chunksReused: number;
  /** Bytes written to the store (after compression). */
  bytesStored: number;
}

/** The finished stream. */
export interface FinishedStream {
  /** The encoded dynamic index. */
  readonly index: Uint8Array;
  /** Its checksum (BLAKE3 of the entries). */
  readonly checksum: Uint8Array;
  /** Stream length in bytes. */
  readonly size: number;
}

/**
 * The cutting of a chunked stream, the same wherever a stream is cut: by the content-defined
 * chunker, or earlier at a preferred cut when the chunk is long enough, or wherever a chunk is
 * appended by digest. Each chunk cut goes to {@link ChunkCutter.process} in stream order, with the
 * bytes in flight bounded. {@link ChunkStream} stores the chunks; the dry run of a backup
 * (dry-run.ts) only hashes and counts them, and cuts exactly where a backup would because it is
 * this code.
 */
export abstract class ChunkCutter {
  private readonly chunker: Chunker;
  private readonly cur: Uint8Array;
  private curLen = 0;
  private pos = 0;
  private readonly tasks: TaskGroup;

  /**
   * @param params - chunker sizes
   * @param details - ids for errors
   * @param signal - cancels
   */
  constructor(
    params: Partial<CdcParams>,
    protected readonly details: ErrorDetails,
    signal?: AbortSignal,
  ) {
    this.chunker = Chunker.contentDefined(params);
    this.cur = new Uint8Array(this.chunker.params.max);
    this.tasks = new TaskGroup({ limit: Math.max(16 * 1024 * 1024, 4 * this.chunker.params.max), signal, details });
  }

  /** Stream position: bytes written or appended so far. */
  get offset(): number {
    return this.pos;
  }

  /** Chunker sizes in use. */
  get params(): Readonly<CdcParams> {
    return this.chunker.params;
  }

  private check(): void {
    this.tasks.check();
  }

  /** Appends bytes (copied; the caller may reuse `data`). */
  async write(data: Uint8Array): Promise<void> {
    this.check();
    let off = 0;
    while (off < data.byteLength) {
      const view = off === 0 ? data : data.subarray(off);
      const n = this.chunker.next(view);
      const take = n < 0 ? view.byteLength : n;
      this.cur.set(view.subarray(0, take), this.curLen);
      this.curLen += take;
      off += take;
      this.pos += take;
      if (n >= 0) await this.emit();
    }
  }

  /** A good place to cut (a file ends here): cut when the chunk is long enough. */
  async preferCut(): Promise<void> {
    if (this.curLen >= this.chunker.params.min) {
      this.chunker.reset();
      await this.emit();
    }
  }

  /** Cuts here whatever the chunk's length (before appending chunks by digest). */
  async cut(): Promise<void> {
    this.chunker.reset();
    if (this.curLen > 0) await this.emit();
  }

  /**
   * Appends a stored chunk by digest, without its bytes (a reused chunk of the base snapshot).
   * Cuts the current chunk first.
   */
  async appendChunk(digest: Uint8Array, length: number): Promise<void> {
    this.check();
    await this.cut();
    this.appended(digest, length);
    this.pos += length;
  }

  /** Records a chunk appended by digest, in stream order. */
  protected abstract appended(digest: Uint8Array, length: number): void;

  /**
   * Starts the work on one chunk cut (its own copy, which may be transferred to a worker: read
   * its length first), called in stream order; the bytes stay counted in flight until the
   * returned promise settles, and a rejection fails the stream.
   */
  protected abstract process(chunk: Uint8Array): Promise<void>;

  private async emit(): Promise<void> {
    const len = this.curLen;
    const chunk = this.cur.slice(0, len);
    this.curLen = 0;
    await this.tasks.run(() => this.process(chunk), len);
  }

  /** Cuts the last chunk and waits for every chunk in flight; throws the first failure. */
  protected async settle(): Promise<void> {
    try {
      await this.cut();
    } catch (e) {
      await this.tasks.fail(e);
    }
    await this.tasks.wait();
  }

  /** Waits for chunks in flight and drops the stream (on abort or failure). */
  async discard(): Promise<void> {
    await this.tasks.drain();
  }
}

/** Writes one chunked stream. Call {@link ChunkStream.finish} exactly once at the end. */
export class ChunkStream extends ChunkCutter {
  private readonly slots: { length: number; digest: Uint8Array | undefined }[] = [];
  /** Counters. */
  readonly stats: ChunkStreamStats = { chunks: 0, chunksWritten: 0, chunksDuplicate: 0, chunksKnown: 0, chunksReused: 0, bytesStored: 0 };

  /**
   * @param ctx - the datastore
   * @param params - chunker sizes
   * @param known - digests of the base snapshot (shared with the workers), or null
   * @param details - ids for errors
   * @param signal - cancels
   */
  constructor(
    private readonly ctx: StoreContext,
    params: Partial<CdcParams>,
    private readonly known: SharedArrayBuffer | null,
    details: ErrorDetails,
    signal?: AbortSignal,
  ) {
    super(params, details, signal);
  }

  protected appended(digest: Uint8Array, length: number): void {
    this.slots.push({ length, digest });
    this.stats.chunks++;
    this.stats.chunksReused++;
  }

  protected process(chunk: Uint8Array): Promise<void> {
    // The length is taken before the chunk's buffer is transferred to a worker.
    const slot = { length: chunk.byteLength, digest: undefined as Uint8Array | undefined };
    this.slots.push(slot);
    this.stats.chunks++;
    return this.store(chunk).then((digest) => {
      slot.digest = digest;
    });
  }

  private async store(chunk: Uint8Array): Promise<Uint8Array> {
    const r = await this.ctx.pool().encode(chunk, { compress: true, known: this.known, format: this.ctx.chunks.format });
    if (r.known) {
      this.stats.chunksKnown++;
    } else if ((await this.ctx.chunks.insert(r.digest, r.header!, r.payload!)) === 'written') {
      this.stats.chunksWritten++;
      this.stats.bytesStored += r.header!.byteLength + r.payload!.byteLength;
    } else {
      this.stats.chunksDuplicate++;
    }
    return r.digest;
  }

  /** Cuts the last chunk, waits for every chunk to be stored, and encodes the index. */
  async finish(ctimeSecs: number, uuid: Uint8Array): Promise<FinishedStream> {
    await initHash();
    await this.settle();
    const b = new DynamicIndexBuilder();
    for (const s of this.slots) {
      if (s.digest === undefined) throw new CairnError('ERR_IO', 'chunk stream: a chunk was not stored', this.details);
      b.append(s.length, s.digest);
    }
    const index = b.finish({ uuid, ctime: ctimeSecs });
    return { index, checksum: decodeDynamicIndex(index, this.details).checksum, size: b.size };
  }
}

/** The manifest checksum of a tree archive: BLAKE3 over both streams' index checksums. */
export function treeChecksum(meta: Uint8Array, payload: Uint8Array): string {
  const both = new Uint8Array(meta.byteLength + payload.byteLength);
  both.set(meta);
  both.set(payload, meta.byteLength);
  return toHex(indexChecksum(both));
}

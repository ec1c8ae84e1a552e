/**
 * A dry run of a backup (layer L4): reads the sources, cuts them into chunks and hashes them
 * exactly as a {@link SnapshotWriter} would, and asks the chunk store which of those chunks it
 * already has, so it can say how much a backup would store. It writes nothing, touches nothing and
 * makes no temp file.
 *
 * What is the same as the real backup, so the counts agree with its `chunksWritten`:
 * - the base: the group's newest snapshot unless verify marked it failed; its chunk digests are
 *   known (not new, not looked up), and a tree's unchanged files reuse its payload chunks without
 *   being read (unless the base's padding is above {@link MAX_PADDING}, as in the writer);
 * - images: fixed chunks of the chunk size the writer uses (the option, or the datastore's),
 *   with a changed-block map applied the same way;
 * - trees: the walk of {@link TreeWalker} into {@link HashingSink}s, which cut with the same
 *   content-defined chunker, sizes, preferred cuts and appends as {@link ChunkStream};
 * - a chunk that the store does not have is new once: another copy in the same dry run (in any
 *   archive) is counted as a chunk, not as a new one.
 *
 * What differs: nothing is compressed, so `newBytes` is the chunks' raw size (LZ4 may store them
 * smaller); the indexes and the manifest (small) are not counted; a GC or another backup between
 * the dry run and the backup can change the answer.
 *
 * Memory: the sources are streamed with the bytes in flight bounded as in the writer; what grows
 * is the set of new digests (one entry per new chunk), and the base's known set, as in the writer.
 */
import { CairnError, isCairnError, throwIfAborted, type ErrorDetails } from '../errors.js';
import type { CdcParams } from '../codec/chunker.js';
import { buildKnownSet, knownHas } from '../pool/known-set.js';
import { ByteGate } from '../util/byte-gate.js';
import { BufferPool } from '../util/buffer-pool.js';
import { changedChunks, fixedChunks, openImageSource, type ImageSource, type OpenedSource } from './image-source.js';
import { MAX_BLOB_SIZE, MAX_IMAGE_CHUNK, MAX_PADDING, MIN_IMAGE_CHUNK, TREE_META_CDC, type AddImageOptions } from './snapshot-writer.js';
import { TreeWalker, type AddTreeOptions, type TreeScanStats, type TreeSink } from './tree-writer.js';
import type { StoreContext } from './context.js';
import type { Snapshot } from './snapshot.js';
import type { Datastore } from './datastore.js';
import type { SnapshotReader } from './snapshot-reader.js';
import type { FixedIndex } from '../format/fixed-index.js';
import type { TreeReader } from './tree-reader.js';
import { ChunkCutter } from './chunk-stream.js';

/**
 * What a dry run found for the chunks of one archive (or one stream of a tree archive).
 * @category Backup
 */
export interface DryRunChunks {
  /** Chunks the archive would have (a blob counts as one). */
  chunks: number;
  /**
   * Chunks among them that the datastore does not have and that no earlier archive or chunk of
   * this dry run already counted: what a backup would write.
   */
  newChunks: number;
  /** Bytes of the new chunks, uncompressed (the backup stores them LZ4-compressed where that is smaller). */
  newBytes: number;
}

/**
 * A dry run of an image archive.
 * @category Backup
 */
export interface ImageDryRunStats extends DryRunChunks {
  /** Image bytes. */
  bytes: number;
  /** The chunk size the backup would use. */
  chunkSize: number;
  /** Chunks taken from the base snapshot's digests (not looked up, not new). */
  chunksKnown: number;
  /** Chunks taken unread from the base through a changed-block map. */
  chunksReused: number;
  /** Seconds taken. */
  seconds: number;
}

/**
 * A dry run of a tree archive: the walk's counters and both streams' chunks (the archive's
 * `chunks`, `newChunks` and `newBytes` are the sums of `meta` and `payload`).
 * @category Backup
 */
export interface TreeDryRunStats extends TreeScanStats, DryRunChunks {
  /** Bytes of the payload stream. */
  payloadBytes: number;
  /** The metadata stream's chunks. */
  meta: DryRunChunks;
  /** The payload stream's chunks (reused chunks of unchanged files included, never new). */
  payload: DryRunChunks;
}

/**
 * A dry run of a blob archive: a blob is stored whole with the snapshot, never deduplicated, so
 * it is always one new chunk of its size.
 * @category Backup
 */
export interface BlobDryRunStats extends DryRunChunks {
  /** Blob bytes. */
  bytes: number;
}

/**
 * The sums over the archives of a dry run.
 * @category Backup
 */
export interface DryRunTotals extends DryRunChunks {
  /** Logical bytes: image sizes, tree file bytes, blob sizes. */
  bytes: number;
}

/** Options of {@link BackupDryRun.start}. @category Backup */
export interface BackupDryRunOptions {
  /** The group's namespace. @defaultValue '' (the root) */
  readonly namespace?: string;
}

/** Counts which chunks are new: the base's digests, the chunk store, and those already counted. */
class NewChunkCounter {
  /** Digests (latin1 keys) of the chunks found new so far: each is new once. */
  private readonly seen = new Set<string>();
  /** Look-ups in flight, so two copies of one chunk at once are one look-up. */
  private readonly pending = new Map<string, Promise<void>>();
  readonly totals: DryRunTotals = { bytes: 0, chunks: 0, newChunks: 0, newBytes: 0 };

  constructor(
    private readonly ctx: StoreContext,
    readonly known: SharedArrayBuffer | null,
  ) {}

  /** True when the digest is one of the base snapshot's. */
  isKnown(digest: Uint8Array): boolean {
    return this.known !== null && knownHas(this.known, digest);
  }

  /**
   * Counts one chunk in `into` (and the totals): new when it is not the base's, not in the store
   * (`has`: a stat, read-only), and not counted before.
   */
  async count(digest: Uint8Array, size: number, into: DryRunChunks): Promise<void> {
    into.chunks++;
    this.totals.chunks++;
    if (this.isKnown(digest)) return;
    const key = Buffer.from(digest.buffer, digest.byteOffset, digest.byteLength).toString('latin1');
    if (this.seen.has(key)) return;
    const inFlight = this.pending.get(key);
    if (inFlight !== undefined) return inFlight;
    const p = this.ctx.chunks
      .has(digest)
      .then((exists) => {
        if (exists) return;
        this.seen.add(key);
        this.addNew(size, into);
      })
      .finally(() => this.pending.delete(key));
    this.pending.set(key, p);
    return p;
  }

  /** Counts a new chunk (or blob) of `size` bytes. */
  addNew(size: number, into: DryRunChunks): void {
    into.newChunks++;
    into.newBytes += size;
    this.totals.newChunks++;
    this.totals.newBytes += size;
  }
}

/**
 * A tree stream for a dry run: cut exactly as {@link ChunkStream} cuts (the same chunker, the same
 * preferred cuts at file ends, the same cuts before appended chunks), each chunk hashed on the
 * worker pool and counted, never stored. The bytes in flight are bounded as in ChunkStream.
 */
class HashingSink extends ChunkCutter implements TreeSink {
  /** The stream's chunks. */
  readonly stats: DryRunChunks = { chunks: 0, newChunks: 0, newBytes: 0 };

  /**
   * @param ctx - the datastore (its worker pool hashes)
   * @param counter - decides which chunks are new
   * @param params - chunker sizes
   * @param details - ids for errors
   * @param signal - cancels
   */
  constructor(
    private readonly ctx: StoreContext,
    private readonly counter: NewChunkCounter,
    params: Partial<CdcParams>,
    details: ErrorDetails,
    signal?: AbortSignal,
  ) {
    super(params, details, signal);
  }

  /** A reused chunk of the base: a chunk, never a new one. */
  protected appended(): void {
    this.stats.chunks++;
    this.counter.totals.chunks++;
  }

  protected process(chunk: Uint8Array): Promise<void> {
    // Read the length first: the chunk's buffer is transferred to the worker.
    const len = chunk.byteLength;
    return this.ctx
      .pool()
      .hash(chunk, { format: this.ctx.chunks.format })
      .then((r) => this.counter.count(r.digest, len, this.stats));
  }

  /** Cuts the last chunk and waits for every chunk to be counted. */
  finish(): Promise<void> {
    return this.settle();
  }
}

/**
 * A dry run of one backup of a group: add the archives as to a {@link SnapshotWriter}, and each
 * call says how many chunks the archive would have, how many of them are new to the datastore and
 * their bytes; {@link BackupDryRun.totals} sums them. Nothing is written or touched, no temp file
 * is made; on a datastore opened read-only (`Datastore.open(path, { readOnly: true })`) no lock is
 * taken either (otherwise the base is read under a shared lock, as a restore reads). Close it
 * when done.
 *
 * @example
 * ```ts
 * const ds = await Datastore.open('./cairn-store', { readOnly: true });
 * const dry = await BackupDryRun.start(ds, 'host/web');
 * const etc = await dry.addTree('etc.tree', '/etc');
 * console.log(`${etc.newChunks} new chunks, ${etc.newBytes} bytes`, dry.totals);
 * await dry.close();
 * ```
 * @category Backup
 */
export class BackupDryRun {
  private readonly names = new Set<string>();
  private closed = false;

  private constructor(
    private readonly ctx: StoreContext,
    /** The snapshot a backup would be incremental to, if any. */
    readonly base: Snapshot | undefined,
    private readonly reader: SnapshotReader | undefined,
    private readonly counter: NewChunkCounter,
    private readonly baseIndexes: ReadonlyMap<string, FixedIndex>,
  ) {}

  /**
   * Starts a dry run for `group`: picks the base as a backup would (the newest finished snapshot,
   * unless verify marked it failed) and loads its chunk digests.
   * @param ds - the datastore (open it read-only for a dry run without locks)
   * @param group - `type/id`
   * @param options - the namespace
   * @throws `ERR_INVALID_NAME`, `ERR_NOT_FOUND` (namespace)
   */
  static async start(ds: Datastore, group: string, options: BackupDryRunOptions = {}): Promise<BackupDryRun> {
    ds.assertOpen();
    const ns = ds.namespace(options.namespace ?? '');
    const g = ns.group(group);
    await ns.assertExists(); // as the backup: a missing namespace is not created, it is an error
    const newest = await g.newest();
    const base = newest !== undefined && newest.verifyState !== 'failed' ? newest : undefined;
    let reader: SnapshotReader | undefined;
    const baseIndexes = new Map<string, FixedIndex>();
    let known: SharedArrayBuffer | null = null;
    if (base !== undefined) {
      try {
        reader = await base.open();
      } catch (e) {
        // Removed meanwhile: a backup then has no base either.
        if (!isCairnError(e, 'ERR_NOT_FOUND')) throw e;
      }
    }
    if (reader !== undefined) {
      try {
        const all: Uint8Array[] = [];
        for (const f of reader.files) {
          if (f.kind === 'blob') continue;
          try {
            if (f.kind === 'image') {
              const idx = await reader.imageIndex(f.name);
              baseIndexes.set(f.name, idx);
              for (let i = 0; i < idx.count; i++) all.push(idx.digestAt(i));
            } else {
              const { meta, payload } = await reader.treeIndexes(f.name);
              for (const idx of [meta, payload]) for (let i = 0; i < idx.count; i++) all.push(idx.digestAt(i));
            }
          } catch (e) {
            // As in the writer: a damaged base index only costs deduplication.
            if (!isCairnError(e, 'ERR_INDEX_CORRUPT')) throw e;
          }
        }
        known = all.length === 0 ? null : buildKnownSet(all);
      } catch (e) {
        await reader.close();
        throw e;
      }
    }
    return new BackupDryRun(ds, reader === undefined ? undefined : base, reader, new NewChunkCounter(ds, known), baseIndexes);
  }

  /** The sums over the archives added so far (chunks new to this dry run counted once). */
  get totals(): Readonly<DryRunTotals> {
    return { ...this.counter.totals };
  }

  private begin(archive: string): void {
    if (this.closed) throw new CairnError('ERR_WRITER_STATE', 'the dry run is closed', { archive });
    this.ctx.assertOpen();
    if (this.names.has(archive)) throw new CairnError('ERR_EXISTS', `the dry run already has an archive '${archive}'`, { archive });
    this.names.add(archive);
  }

  /**
   * Reads an image as {@link SnapshotWriter.addImage} would (`chunkSize`, `changed`, `signal`,
   * `onProgress` as there) and counts its chunks.
   * @param archive - the archive name, with its `.img` extension (as the backup stores it)
   * @throws as addImage
   */
  async addImage(archive: string, source: ImageSource, options: AddImageOptions = {}): Promise<ImageDryRunStats> {
    this.begin(archive);
    const t0 = performance.now();
    const details: ErrorDetails = { archive };
    const chunkSize = options.chunkSize ?? this.ctx.config.imageChunkSize;
    if (!Number.isInteger(chunkSize) || chunkSize < MIN_IMAGE_CHUNK || chunkSize > MAX_IMAGE_CHUNK || (chunkSize & (chunkSize - 1)) !== 0) {
      throw new CairnError('ERR_INVALID_ARGUMENT', `image chunk size ${chunkSize} must be a power of two from 64 KiB to 16 MiB`, details);
    }
    const stats: ImageDryRunStats = { bytes: 0, chunkSize, chunks: 0, newChunks: 0, newBytes: 0, chunksKnown: 0, chunksReused: 0, seconds: 0 };
    let src: OpenedSource | undefined;
    try {
      src = await openImageSource(source, { reads: 0, bytesRead: 0 }, options.signal);
      const prev = this.baseIndexes.get(archive);
      let flags: Uint8Array | undefined;
      if (options.changed !== undefined) {
        const why =
          prev === undefined
            ? 'there is no previous backup of this archive to apply it to'
            : src.size === undefined
              ? 'the source size is unknown'
              : prev.size !== src.size
                ? `the previous image has size ${prev.size}, the source ${src.size}`
                : prev.chunkSize !== chunkSize
                  ? `the previous image has chunk size ${prev.chunkSize}, this backup ${chunkSize}`
                  : undefined;
        if (why !== undefined) throw new CairnError('ERR_CHANGED_MAP', `changed-block map refused for '${archive}': ${why}`, details);
        flags = changedChunks(options.changed, src.size!, chunkSize);
      }
      await this.imageChunks(archive, src, chunkSize, prev, flags, stats, options);
      this.counter.totals.bytes += stats.bytes;
      stats.seconds = (performance.now() - t0) / 1000;
      return stats;
    } finally {
      await src?.close().catch(() => undefined);
    }
  }

  private async imageChunks(
    archive: string,
    src: OpenedSource,
    chunkSize: number,
    prev: FixedIndex | undefined,
    flags: Uint8Array | undefined,
    stats: ImageDryRunStats,
    options: AddImageOptions,
  ): Promise<void> {
    const pool = this.ctx.pool();
    const gate = new ByteGate(Math.max(16 * 1024 * 1024, 4 * (pool.threads + 1) * chunkSize));
    const buffers = new BufferPool(chunkSize, Math.ceil(gate.limit / chunkSize) + 2);
    const inFlight = new Set<Promise<void>>();
    let failure: unknown;
    let done = 0;
    const details: ErrorDetails = { archive };
    const reuse = (i: number): void => {
      // Taken unread from the base's index: a chunk of the archive, never new.
      const { start, end } = prev!.chunkRange(i);
      stats.chunks++;
      stats.chunksReused++;
      this.counter.totals.chunks++;
      done += end - start;
    };
    const launch = async (data: Uint8Array): Promise<void> => {
      const size = data.byteLength;
      await gate.acquire(size);
      const p: Promise<void> = pool
        .hash(data, { format: this.ctx.chunks.format })
        .then(async (r) => {
          if (this.counter.isKnown(r.digest)) {
            stats.chunks++;
            stats.chunksKnown++;
            this.counter.totals.chunks++;
          } else {
            await this.counter.count(r.digest, size, stats);
          }
          buffers.give(r.data.buffer);
          done += size;
          options.onProgress?.({ archive, bytesDone: done, bytesTotal: src.size });
        })
        .then(
          () => {
            inFlight.delete(p);
            gate.release(size);
          },
          (e: unknown) => {
            inFlight.delete(p);
            gate.release(size);
            failure ??= e;
          },
        );
      inFlight.add(p);
    };
    try {
      if (flags !== undefined && prev !== undefined && src.readAt !== undefined) {
        for (let i = 0; i < flags.length && failure === undefined; i++) {
          throwIfAborted(options.signal, details);
          if (flags[i] === 0) {
            reuse(i);
            continue;
          }
          const { start, end } = prev.chunkRange(i);
          const data = await src.readAt(start, end - start, buffers.take());
          if (data.byteLength !== end - start) throw new CairnError('ERR_IO', `image source shrank while reading '${archive}' (short read at ${start})`, details);
          await launch(data);
        }
        stats.bytes = prev.size;
      } else {
        let i = 0;
        for await (const data of fixedChunks(
          src.pieces(chunkSize, () => buffers.take()),
          chunkSize,
        )) {
          if (failure !== undefined) break;
          throwIfAborted(options.signal, details);
          const size = data.byteLength;
          if (flags !== undefined && flags[i] === 0 && prev !== undefined && i < prev.count) {
            stats.chunks++;
            stats.chunksReused++;
            this.counter.totals.chunks++;
            buffers.give(data.buffer);
          } else {
            await launch(data);
          }
          stats.bytes += size;
          i++;
        }
      }
      await Promise.all(inFlight);
    } catch (e) {
      failure ??= e;
      await Promise.allSettled(inFlight);
    }
    if (failure !== undefined) throw failure;
  }

  /**
   * Walks a tree as {@link SnapshotWriter.addTree} would (the same excludes, `.cairnignore` files,
   * one-file-system rule; unchanged files of the base's archive of the same name not read, unless
   * the base's padding is too high), chunks and hashes both streams, and counts their chunks.
   * @param archive - the archive name, with its `.tree` extension
   * @throws as addTree
   */
  async addTree(archive: string, dir: string, options: AddTreeOptions = {}): Promise<TreeDryRunStats> {
    this.begin(archive);
    const t0 = performance.now();
    const details: ErrorDetails = { archive };
    const meta = new HashingSink(this.ctx, this.counter, TREE_META_CDC, details, options.signal);
    const payload = new HashingSink(this.ctx, this.counter, this.ctx.config.cdc, details, options.signal);
    try {
      let prev: TreeReader | undefined;
      const baseStats = this.base?.manifest.unprotected.stats;
      const padding = (baseStats?.['tree.paddingBytes'] ?? 0) / Math.max(1, baseStats?.['tree.payloadBytes'] ?? 0);
      if (this.reader !== undefined && this.reader.files.some((f) => f.name === archive && f.kind === 'tree') && padding <= MAX_PADDING) {
        prev = await this.reader.tree(archive);
      }
      const walker = new TreeWalker(archive, meta, payload, options, details, prev);
      await walker.run(dir);
      await meta.finish();
      await payload.finish();
      this.counter.totals.bytes += walker.stats.bytes;
      return {
        ...walker.stats,
        metaBytes: meta.offset,
        payloadBytes: payload.offset,
        chunks: meta.stats.chunks + payload.stats.chunks,
        newChunks: meta.stats.newChunks + payload.stats.newChunks,
        newBytes: meta.stats.newBytes + payload.stats.newBytes,
        meta: { ...meta.stats },
        payload: { ...payload.stats },
        seconds: (performance.now() - t0) / 1000,
      };
    } catch (e) {
      await meta.discard();
      await payload.discard();
      throw e;
    }
  }

  /**
   * Counts a blob archive of `data` (or of that many bytes): one new chunk of its size, since a
   * blob is stored whole with each snapshot.
   * @param archive - the archive name, with its `.blob` extension
   * @throws `ERR_INVALID_ARGUMENT` when larger than {@link MAX_BLOB_SIZE}
   */
  addBlob(archive: string, data: Uint8Array | string | number): BlobDryRunStats {
    this.begin(archive);
    const bytes = typeof data === 'number' ? data : typeof data === 'string' ? Buffer.byteLength(data, 'utf8') : data.byteLength;
    if (bytes > MAX_BLOB_SIZE) throw new CairnError('ERR_INVALID_ARGUMENT', `blob '${archive}' has ${bytes} bytes; the limit is ${MAX_BLOB_SIZE}`, { archive });
    const stats: BlobDryRunStats = { bytes, chunks: 1, newChunks: 0, newBytes: 0 };
    this.counter.totals.chunks++;
    this.counter.totals.bytes += bytes;
    this.counter.addNew(bytes, stats);
    return stats;
  }

  /** Releases the base snapshot. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.reader?.close();
  }
}

/**
 * Writes a new snapshot (layer L4): archives first, the manifest last.
 *
 * Write path (DESIGN.md §3): source -> fixed-size chunks (main thread) -> worker pool (zero check,
 * BLAKE3, known-digest check, LZ4) -> chunk store (touch or write) -> fixed index -> manifest.
 * The bytes in flight are bounded (a {@link TaskGroup} with a byte limit), so a fast source waits
 * for the pool and the disk instead of filling memory.
 *
 * Safety: the writer holds the group's lock exclusively for its whole life and the base snapshot's
 * lock shared (so the base cannot be pruned while its chunks are reused without a touch), and is
 * registered as a live writer (for the garbage collector's cutoff). Until the manifest is written
 * the snapshot directory is unfinished and invisible; a crash leaves it for the next backup of the
 * group (which removes it) or for prune.
 */
import { randomBytes } from 'node:crypto';
import { CairnError, isCairnError, type ErrorDetails } from '../errors.js';
import { encodeFixedIndex, fixedIndexChecksum, type FixedIndex } from '../format/fixed-index.js';
import { encodeManifest, type Manifest, type ManifestFile } from '../format/manifest.js';
import { encodeBlob } from '../codec/envelope.js';
import { initHash } from '../codec/hash.js';
import { toHex } from '../util/bytes.js';
import { TaskGroup } from '../util/task-group.js';
import { BufferPool } from '../util/buffer-pool.js';
import { buildKnownSet } from '../pool/known-set.js';
import { archiveName, formatGroup, formatSnapshotTime, parseSnapshotTime } from '../types.js';
import type { StoreContext } from './context.js';
import type { FileLock } from '../host/locks.js';
import type { WriterRegistration } from '../host/writer-registry.js';
import { childNames, removeFileFolder, removeFolder, syncBackend } from './keyspace.js';
import { MANIFEST_FILE, OWNER_FILE, archiveFileKey, groupKey, snapshotKey, treeIndexKeys } from './layout.js';
import { ChunkStream, treeChecksum, type ChunkStreamStats } from './chunk-stream.js';
import type { CdcParams } from '../codec/chunker.js';
import { TreeWalker, type AddTreeOptions, type TreeProblem, type TreeStats } from './tree-writer.js';
import type { TreeReader } from './tree-reader.js';
import type { SnapshotReader } from './snapshot-reader.js';
import { loadSnapshot, snapshotDetails, type Snapshot, type SnapshotRef } from './snapshot.js';
import { changedChunks, fixedChunks, openImageSource, type ChangedMap, type ImageSource, type OpenedSource } from './image-source.js';

/**
 * Smallest and largest image chunk sizes (powers of two).
 * @category Backup
 */
export const MIN_IMAGE_CHUNK = 64 * 1024;
/**
 * Largest image chunk size.
 * @category Backup
 */
export const MAX_IMAGE_CHUNK = 16 * 1024 * 1024;
/**
 * Largest blob archive.
 * @category Backup
 */
export const MAX_BLOB_SIZE = 64 * 1024 * 1024;

/**
 * Progress of a backup.
 * @category Backup
 */
export interface BackupProgress {
  /** Archive being written. */
  readonly archive: string;
  /** Source bytes processed. */
  readonly bytesDone: number;
  /** Source size, when known. */
  readonly bytesTotal: number | undefined;
}

/**
 * Options of {@link SnapshotWriter.addImage}.
 * @category Backup
 */
export interface AddImageOptions {
  /**
   * Fixed chunk size, a power of two from 64 KiB to 16 MiB.
   * @defaultValue the datastore's `imageChunkSize`
   */
  readonly chunkSize?: number;
  /**
   * The parts that changed since the previous backup of this archive. Only those chunks are read;
   * the others are taken from the previous index. Refused (`ERR_CHANGED_MAP`) when there is no
   * usable previous archive of the same name, or its size or chunk size differ.
   */
  readonly changed?: ChangedMap;
  /** Cancels the backup of this archive (the writer can still be aborted or committed without it). */
  readonly signal?: AbortSignal;
  /** Called as chunks are stored. */
  readonly onProgress?: (p: BackupProgress) => void;
}

/**
 * Counters of one image archive's backup.
 *
 * Every chunk of the index is counted in exactly one of `chunksWritten`, `chunksDuplicate`,
 * `chunksKnown` and `chunksReused`, so these four add up to `chunks`. `chunksZero` is not a fifth
 * part: it counts the all-zero chunks among the chunks read from the source, each of which is also
 * counted in one of `chunksWritten` (the first zero chunk a datastore sees), `chunksDuplicate` or
 * `chunksKnown` (zero chunks taken unchanged from the previous index by a changed-block map are
 * `chunksReused` and not counted as zero).
 * @category Backup
 */
export interface ArchiveStats {
  /** Archive bytes. */
  bytes: number;
  /** Chunks in the index: `chunksWritten + chunksDuplicate + chunksKnown + chunksReused`. */
  chunks: number;
  /** Chunks written to the store (new: `bytesStored` is their size after compression). */
  chunksWritten: number;
  /** Chunks the store had already (touched, not written): from other groups, or repeated within the image. */
  chunksDuplicate: number;
  /** Chunks of the base snapshot (neither compressed nor written nor touched). */
  chunksKnown: number;
  /** Chunks taken from the previous index without reading the source (changed map). */
  chunksReused: number;
  /** All-zero chunks among those read (also counted as written, duplicate or known; see above). */
  chunksZero: number;
  /** Bytes read from the source. */
  bytesRead: number;
  /** Read calls made on the source. */
  reads: number;
  /** Bytes written to the store (after compression). */
  bytesStored: number;
  /** Seconds taken. */
  seconds: number;
}

/**
 * Counters of a tree archive's backup.
 * @category Backup
 */
export interface TreeArchiveStats extends TreeStats {
  /** Metadata stream bytes. */
  metaBytes: number;
  /** Payload stream bytes. */
  payloadBytes: number;
  /** Chunk counters of the metadata stream. */
  meta: ChunkStreamStats;
  /** Chunk counters of the payload stream. */
  payload: ChunkStreamStats;
  /** Seconds taken. */
  seconds: number;
}

/**
 * Largest share of reused-chunk padding in a base tree archive before reuse is dropped for a backup.
 * @category Backup
 */
export const MAX_PADDING = 0.1;

/**
 * Chunker sizes of tree metadata streams: small chunks, so a lookup reads little.
 * @category Backup
 */
export const TREE_META_CDC: Readonly<CdcParams> = Object.freeze({ min: 16 * 1024, avg: 64 * 1024, max: 256 * 1024 });

/**
 * Options of {@link BackupGroup.backup}.
 * @category Backup
 */
export interface BackupOptions {
  /** Snapshot time, RFC 3339 UTC (`2026-11-26T09:35:01Z`) or Unix seconds. @defaultValue now */
  readonly time?: string | number;
  /**
   * Cancels waiting for the group's lock and for the clock, with `ERR_ABORTED` (the archives take
   * their own signals).
   */
  readonly signal?: AbortSignal;
  /** Owner recorded on the group when the backup creates it. */
  readonly owner?: string;
}

type WriterState = 'open' | 'committing' | 'committed' | 'aborted';

/**
 * A snapshot being written. Add archives, then end in exactly one of {@link SnapshotWriter.commit}
 * or {@link SnapshotWriter.abort}; disposing an uncommitted writer aborts it. A snapshot has at
 * least one archive (committing none is refused).
 *
 * Archive names: each `add*` method stores its archive under the name given with the kind's
 * extension appended unless the name already ends with it: `.img` (addImage), `.tree` (addTree),
 * `.blob` (addBlob). `addImage('drive-scsi0')` makes `drive-scsi0.img`; `addBlob('x.img')` makes
 * `x.img.blob`. Readers accept the stored name, or the name without its extension when exactly
 * one archive has that stem ({@link SnapshotReader.file}).
 *
 * @example
 * ```ts
 * const w = await ds.group('vm/100').backup();
 * await w.addImage('drive-scsi0', '/dev/vg0/vm-100-disk-0');
 * await w.addBlob('qemu-server.conf', configText);
 * const snap = await w.commit();
 * ```
 * @category Backup
 */
export class SnapshotWriter {
  private state: WriterState = 'open';
  private readonly files: ManifestFile[] = [];
  private readonly stats: Record<string, ArchiveStats> = {};
  private readonly treeStats: Record<string, TreeArchiveStats> = {};
  private known: SharedArrayBuffer | null | undefined;
  private readonly baseIndexes = new Map<string, FixedIndex>();
  private busy = false;
  private readonly detach: () => void;
  private readonly dirKey: string;
  /** Bytes of the blob archives: raw, and as stored (envelope). */
  private readonly blobBytes = { bytes: 0, bytesStored: 0 };

  /** @internal */
  constructor(
    private readonly ctx: StoreContext,
    /** The snapshot being written. */
    readonly ref: SnapshotRef,
    /** The previous finished snapshot whose chunks are reused, if any. */
    readonly base: Snapshot | undefined,
    private readonly locks: { group: FileLock; base: FileLock | undefined; writer: WriterRegistration },
    /** This backup created the group's directory (its first backup): an abort removes it again. */
    private readonly createdGroup = false,
  ) {
    this.dirKey = snapshotKey(ref.nsParts, ref.group, ref.time);
    this.detach = ctx.attach({ close: () => this.abort() });
  }

  /** `type/id/time` of the snapshot being written. */
  get name(): string {
    return `${formatGroup(this.ref.group)}/${this.ref.time}`;
  }

  private details(archive?: string): ErrorDetails {
    const d = { datastore: this.ctx.root, ...snapshotDetails(this.ref) };
    return archive === undefined ? d : { ...d, archive };
  }

  private begin(archive: string): void {
    if (this.state !== 'open') {
      throw new CairnError('ERR_WRITER_STATE', `writer of ${this.name} is ${this.state}`, this.details(archive));
    }
    if (this.busy) throw new CairnError('ERR_WRITER_STATE', `writer of ${this.name} is already adding an archive`, this.details(archive));
    if (this.files.some((f) => f.name === archive)) {
      throw new CairnError('ERR_EXISTS', `snapshot ${this.name} already has an archive '${archive}'`, this.details(archive));
    }
    this.ctx.assertOpen();
    this.busy = true;
  }

  /** The digests of the base snapshot's images, shared with the workers. */
  private async knownSet(): Promise<SharedArrayBuffer | null> {
    if (this.known !== undefined) return this.known;
    if (this.base === undefined) return (this.known = null);
    const reader = await this.base.open();
    try {
      const all: Uint8Array[] = [];
      for (const f of reader.files) {
        if (f.kind === 'blob') continue;
        try {
          if (f.kind === 'image') {
            const idx = await reader.imageIndex(f.name);
            this.baseIndexes.set(f.name, idx);
            for (let i = 0; i < idx.count; i++) all.push(idx.digestAt(i));
          } else {
            const { meta, payload } = await reader.treeIndexes(f.name);
            for (const idx of [meta, payload]) for (let i = 0; i < idx.count; i++) all.push(idx.digestAt(i));
          }
        } catch (e) {
          // A damaged base index only costs deduplication; the backup goes on without it.
          if (!isCairnError(e, 'ERR_INDEX_CORRUPT')) throw e;
        }
      }
      this.known = all.length === 0 ? null : buildKnownSet(all);
    } finally {
      await reader.close();
    }
    return this.known;
  }

  /**
   * Backs up an image: a file, a block device or a stream, in fixed-size chunks. Chunks the base
   * snapshot has are not compressed or written again; all-zero chunks are stored once and restore
   * as holes.
   *
   * Archive names: the archive is stored as `name` with `.img` appended unless `name` already ends
   * with it (`drive-scsi0` and `drive-scsi0.img` both make `drive-scsi0.img`). Readers find it by
   * either name ({@link SnapshotReader.file}).
   * @returns the archive's counters (see {@link ArchiveStats} for how they add up)
   * @throws `ERR_INVALID_NAME`, `ERR_EXISTS` (the snapshot has that archive), `ERR_CHANGED_MAP`,
   *   `ERR_ABORTED`, `ERR_IO`
   */
  async addImage(name: string, source: ImageSource, options: AddImageOptions = {}): Promise<ArchiveStats> {
    const archive = archiveName(name, 'image');
    this.begin(archive);
    const t0 = performance.now();
    const stats: ArchiveStats = {
      bytes: 0,
      chunks: 0,
      chunksWritten: 0,
      chunksDuplicate: 0,
      chunksKnown: 0,
      chunksReused: 0,
      chunksZero: 0,
      bytesRead: 0,
      reads: 0,
      bytesStored: 0,
      seconds: 0,
    };
    let src: OpenedSource | undefined;
    try {
      const chunkSize = options.chunkSize ?? this.ctx.config.imageChunkSize;
      if (!Number.isInteger(chunkSize) || chunkSize < MIN_IMAGE_CHUNK || chunkSize > MAX_IMAGE_CHUNK || (chunkSize & (chunkSize - 1)) !== 0) {
        throw new CairnError('ERR_INVALID_ARGUMENT', `image chunk size ${chunkSize} must be a power of two from 64 KiB to 16 MiB`, this.details(archive));
      }
      const counters = { reads: 0, bytesRead: 0 };
      src = await openImageSource(source, counters, options.signal);
      const known = await this.knownSet();
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
        if (why !== undefined) throw new CairnError('ERR_CHANGED_MAP', `changed-block map refused for '${archive}': ${why}`, this.details(archive));
        flags = changedChunks(options.changed, src.size!, chunkSize);
      }
      const digests = await this.writeChunks(archive, src, chunkSize, known, prev, flags, stats, options);
      stats.reads = counters.reads;
      stats.bytesRead = counters.bytesRead;
      await initHash();
      const indexBytes = encodeFixedIndex({ uuid: randomBytes(16), ctime: Math.floor(this.ctx.clock.now() / 1000), size: stats.bytes, chunkSize }, digests);
      const key = archiveFileKey(this.dirKey, archive);
      await this.ctx.backend.put(key, indexBytes, { sync: this.ctx.config.syncLevel === 'file' });
      const checksum = toHex(fixedIndexChecksum(digests));
      this.files.push({ name: archive, kind: 'image', size: stats.bytes, checksum, crypt: 'none', chunkSize });
      stats.seconds = (performance.now() - t0) / 1000;
      this.stats[archive] = stats;
      return stats;
    } finally {
      await src?.close().catch(() => undefined);
      this.busy = false;
    }
  }

  private async writeChunks(
    archive: string,
    src: OpenedSource,
    chunkSize: number,
    known: SharedArrayBuffer | null,
    prev: FixedIndex | undefined,
    flags: Uint8Array | undefined,
    stats: ArchiveStats,
    options: AddImageOptions,
  ): Promise<Uint8Array> {
    const pool = this.ctx.pool();
    // The bytes in flight are bounded; the first failure (or the abort) stops the loop.
    const tasks = new TaskGroup({ limit: Math.max(16 * 1024 * 1024, 4 * (pool.threads + 1) * chunkSize), signal: options.signal, details: this.details(archive) });
    // Chunk buffers go to a worker and come back (as the payload, or spare): reuse them.
    const buffers = new BufferPool(chunkSize, Math.ceil(tasks.limit / chunkSize) + 2);
    let digests = new Uint8Array(32 * (src.size === undefined ? 64 : Math.ceil(src.size / chunkSize)));
    const pendingInserts = new Map<string, Promise<void>>();
    let done = 0;
    const store = async (i: number, data: Uint8Array): Promise<void> => {
      const size = data.byteLength;
      // The loop checks the signal between chunks; a per-task signal would add a listener per chunk.
      const r = await pool.encode(data, { compress: true, known, format: this.ctx.chunks.format });
      if (r.zero) stats.chunksZero++;
      if (r.known) {
        stats.chunksKnown++;
      } else {
        const hex = toHex(r.digest);
        let p = pendingInserts.get(hex);
        if (p === undefined) {
          // Identical chunks in flight at once (zeros, repeated blocks) share one insert; the entry
          // goes when it lands, so memory stays flat however large the image.
          p = this.ctx.chunks
            .insert(r.digest, r.header!, r.payload!)
            .then((outcome) => {
              if (outcome === 'written') {
                stats.chunksWritten++;
                stats.bytesStored += r.header!.byteLength + r.payload!.byteLength;
              } else {
                stats.chunksDuplicate++;
              }
            })
            .finally(() => pendingInserts.delete(hex));
          pendingInserts.set(hex, p);
        } else {
          stats.chunksDuplicate++;
        }
        await p;
      }
      buffers.give(r.spare?.buffer);
      buffers.give(r.payload?.buffer);
      digests.set(r.digest, i * 32);
      done += size;
      options.onProgress?.({ archive, bytesDone: done, bytesTotal: src.size });
    };
    try {
      if (flags !== undefined && prev !== undefined && src.readAt !== undefined) {
        for (let i = 0; i < flags.length; i++) {
          tasks.check();
          const { start, end } = prev.chunkRange(i);
          if (flags[i] === 0) {
            digests.set(prev.digestAt(i), i * 32);
            stats.chunksReused++;
            done += end - start;
            continue;
          }
          const data = await src.readAt(start, end - start, buffers.take());
          if (data.byteLength !== end - start) {
            throw new CairnError('ERR_IO', `image source shrank while reading '${archive}' (short read at ${start})`, this.details(archive));
          }
          await tasks.run(() => store(i, data), data.byteLength);
        }
        stats.bytes = prev.size;
        stats.chunks = flags.length;
      } else {
        let i = 0;
        for await (const data of fixedChunks(
          src.pieces(chunkSize, () => buffers.take()),
          chunkSize,
        )) {
          tasks.check();
          const size = data.byteLength; // read before the buffer is transferred to a worker
          if (flags !== undefined && flags[i] === 0 && prev !== undefined && i < prev.count) {
            // A stream must be read in full, but unchanged chunks are not processed.
            digests.set(prev.digestAt(i), i * 32);
            stats.chunksReused++;
          } else {
            if ((i + 1) * 32 > digests.byteLength) {
              const grown = new Uint8Array(digests.byteLength * 2);
              grown.set(digests);
              digests = grown;
            }
            const at = i;
            await tasks.run(() => store(at, data), size);
          }
          stats.bytes += size;
          i++;
        }
        stats.chunks = i;
      }
      await tasks.wait();
    } catch (e) {
      await tasks.fail(e); // waits for the chunks in flight, throws the first failure
    }
    return digests.subarray(0, stats.chunks * 32);
  }

  /**
   * Backs up a directory tree (a container's root filesystem, /etc, an application's data) as a
   * tree archive: every entry type, raw-byte names, modes, owners, nanosecond mtimes, symlinks,
   * hardlinks, devices and extended attributes. The walk never follows symlinks; files that cannot
   * be read are reported in the returned stats (and the snapshot's stats), never skipped silently.
   * @returns the walk's counters, with the problems found
   */
  async addTree(name: string, dir: string, options: AddTreeOptions = {}): Promise<TreeArchiveStats> {
    const archive = archiveName(name, 'tree');
    this.begin(archive);
    const t0 = performance.now();
    const details = this.details(archive);
    let meta: ChunkStream | undefined;
    let payload: ChunkStream | undefined;
    let prevReader: SnapshotReader | undefined;
    try {
      const known = await this.knownSet();
      meta = new ChunkStream(this.ctx, TREE_META_CDC, known, details, options.signal);
      payload = new ChunkStream(this.ctx, this.ctx.config.cdc, known, details, options.signal);
      // Metadata mode: unchanged files of the base's archive of the same name are not opened;
      // their chunks are reused. Unless reuse has piled up too much padding (more than 10 % of
      // the base's payload): then everything is read and chunked afresh, which resets it.
      let prev: TreeReader | undefined;
      const baseStats = this.base?.manifest.unprotected.stats;
      const padding = (baseStats?.['tree.paddingBytes'] ?? 0) / Math.max(1, baseStats?.['tree.payloadBytes'] ?? 0);
      if (this.base !== undefined && this.base.files.some((f) => f.name === archive && f.kind === 'tree') && padding <= MAX_PADDING) {
        prevReader = await this.base.open();
        prev = await prevReader.tree(archive);
      }
      const walker = new TreeWalker(archive, meta, payload, options, details, prev);
      await walker.run(dir);
      const ctime = Math.floor(this.ctx.clock.now() / 1000);
      const m = await meta.finish(ctime, randomBytes(16));
      const p = await payload.finish(ctime, randomBytes(16));
      const keys = treeIndexKeys(this.dirKey, archive);
      const sync = { sync: this.ctx.config.syncLevel === 'file' };
      await this.ctx.backend.put(keys.meta, m.index, sync);
      await this.ctx.backend.put(keys.payload, p.index, sync);
      this.files.push({ name: archive, kind: 'tree', size: p.size, checksum: treeChecksum(m.checksum, p.checksum), crypt: 'none' });
      const stats: TreeArchiveStats = {
        ...walker.stats,
        metaBytes: m.size,
        payloadBytes: p.size,
        meta: meta.stats,
        payload: payload.stats,
        seconds: (performance.now() - t0) / 1000,
      };
      this.treeStats[archive] = stats;
      return stats;
    } catch (e) {
      await meta?.discard();
      await payload?.discard();
      throw e;
    } finally {
      await prevReader?.close();
      this.busy = false;
    }
  }

  /**
   * Adds a small blob archive (a VM config, a log), at most 64 MiB.
   *
   * Archive names: stored as `name` with `.blob` appended unless it already ends with it
   * (`qemu-server.conf` makes `qemu-server.conf.blob`); readers find it by either name.
   * @throws `ERR_INVALID_NAME`, `ERR_EXISTS`, `ERR_INVALID_ARGUMENT` (too large)
   */
  async addBlob(name: string, data: Uint8Array | string): Promise<void> {
    const archive = archiveName(name, 'blob');
    this.begin(archive);
    try {
      const raw = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
      if (raw.byteLength > MAX_BLOB_SIZE) {
        throw new CairnError('ERR_INVALID_ARGUMENT', `blob '${archive}' has ${raw.byteLength} bytes; the limit is ${MAX_BLOB_SIZE}`, this.details(archive));
      }
      await initHash();
      const { header, payload, digest } = encodeBlob(this.ctx.chunks.format, raw);
      await this.ctx.backend.put(archiveFileKey(this.dirKey, archive), [header, payload], { sync: this.ctx.config.syncLevel === 'file' });
      this.files.push({ name: archive, kind: 'blob', size: raw.byteLength, checksum: toHex(digest), crypt: 'none' });
      this.blobBytes.bytes += raw.byteLength;
      this.blobBytes.bytesStored += header.byteLength + payload.byteLength;
    } finally {
      this.busy = false;
    }
  }

  /**
   * Writes the manifest: the snapshot becomes visible. Releases the locks.
   *
   * The manifest's `unprotected.stats` holds the snapshot's totals (lib/format/FORMAT.md §5): `bytes`
   * (logical: image sizes, tree file bytes, blob sizes), `bytesStored` (new bytes stored: chunks
   * written, after compression, and blob envelopes), the chunk counters summed over images and both
   * streams of every tree (`chunks` = `chunksWritten + chunksDuplicate + chunksKnown +
   * chunksReused`), and the trees' own counters as `tree.<counter>`.
   * @returns the new snapshot
   * @throws `ERR_INVALID_ARGUMENT` when no archive was added (nothing is written; the writer stays
   *   open, so an archive can still be added, or it can be aborted); `ERR_WRITER_STATE`
   */
  async commit(): Promise<Snapshot> {
    if (this.state !== 'open' || this.busy) {
      throw new CairnError('ERR_WRITER_STATE', `writer of ${this.name} cannot commit: it is ${this.busy ? 'adding an archive' : this.state}`, this.details());
    }
    if (this.files.length === 0) {
      throw new CairnError('ERR_INVALID_ARGUMENT', `snapshot ${this.name} has no archive: add one (addImage, addTree, addBlob) before commit, or abort`, this.details());
    }
    this.ctx.assertOpen();
    this.state = 'committing';
    try {
      const totals: Record<string, number> = {};
      const add = (k: string, v: number): void => {
        totals[k] = (totals[k] ?? 0) + v;
      };
      for (const s of Object.values(this.stats)) {
        for (const [k, v] of Object.entries(s)) add(k, v);
      }
      const problems: Record<string, TreeProblem[]> = {};
      for (const [archive, t] of Object.entries(this.treeStats)) {
        for (const [k, v] of Object.entries(t)) if (typeof v === 'number') add(`tree.${k}`, v);
        // Chunk counters and bytesStored of both streams; the logical bytes are the files' bytes.
        for (const s of [t.meta, t.payload]) for (const [k, v] of Object.entries(s)) add(k, v);
        add('bytes', t.bytes);
        if (t.problems.length > 0) problems[archive] = t.problems;
      }
      if (this.files.some((f) => f.kind === 'blob')) {
        add('bytes', this.blobBytes.bytes);
        add('bytesStored', this.blobBytes.bytesStored);
      }
      const manifest: Manifest = {
        format: 'cairn-manifest',
        version: 1,
        namespace: this.ref.namespace,
        type: this.ref.group.type,
        id: this.ref.group.id,
        time: this.ref.time,
        files: [...this.files].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)),
        unprotected: Object.keys(problems).length > 0 ? { stats: roundStats(totals), problems } : { stats: roundStats(totals) },
      };
      if (this.ctx.config.syncLevel === 'filesystem') await syncBackend(this.ctx.backend);
      await this.ctx.backend.put(`${this.dirKey}/${MANIFEST_FILE}`, encodeManifest(manifest), { sync: this.ctx.config.syncLevel !== 'none' });
      this.state = 'committed';
    } catch (e) {
      this.state = 'open';
      throw e;
    }
    await this.release();
    const snap = await loadSnapshot(this.ctx, this.ref);
    if (snap === undefined) throw new CairnError('ERR_IO', `snapshot ${this.name} vanished after commit`, this.details());
    return snap;
  }

  /**
   * Drops the snapshot being written (its directory is removed) and releases the locks. When this
   * was the group's first backup, the group directory it created goes too (if it holds nothing
   * else), so the group does not appear to exist. Idempotent.
   */
  async abort(): Promise<void> {
    if (this.state === 'aborted' || this.state === 'committed') return;
    this.state = 'aborted';
    try {
      await removeFolder(this.ctx.backend, this.dirKey);
      if (this.createdGroup) await removeNewGroupDir(this.ctx, groupKey(this.ref.nsParts, this.ref.group));
    } finally {
      await this.release();
    }
  }

  /** Aborts unless committed. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.abort();
  }

  private async release(): Promise<void> {
    this.detach();
    await this.locks.base?.release();
    await this.locks.writer.release();
    await this.locks.group.release();
  }
}

function roundStats(totals: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(totals)) out[k] = k === 'seconds' ? Math.round(v * 1000) / 1000 : v;
  return out;
}

/**
 * Removes the directory of a group that a first backup created and that holds nothing but what
 * that backup wrote there (the owner file): no snapshot directory, no notes. The caller holds the
 * group's lock, so no other backup of the group runs; emptiness is checked anyway, and the removal
 * works through directory descriptors on local files, following no symlink (keyspace.ts). Best effort:
 * a directory that cannot be removed stays, as before.
 * @returns true when removed
 * @internal
 */
export async function removeNewGroupDir(ctx: StoreContext, key: string): Promise<boolean> {
  try {
    const entries = await childNames(ctx.backend, key);
    if (entries.some((n) => n !== OWNER_FILE)) return false;
    return await removeFileFolder(ctx.backend, key, OWNER_FILE);
  } catch {
    return false;
  }
}

/** The time for a new snapshot: explicit (validated), or the clock's second. */
export function snapshotTimeOf(time: string | number | undefined, nowMs: number): string {
  if (time === undefined) return formatSnapshotTime(Math.floor(nowMs / 1000));
  return typeof time === 'number' ? formatSnapshotTime(time) : formatSnapshotTime(parseSnapshotTime(time));
}

/**
 * Reads a snapshot's archives (layer L4): random access (`readAt`), ordered streams with
 * read-ahead, and restores to files or block devices, where all-zero chunks become holes.
 */
import type { promises as fsp } from 'node:fs';
import { Readable } from 'node:stream';
import { CairnError, ioError, throwIfAborted, type ErrorCode, type ErrorDetails } from '../errors.js';
import type { Manifest, ManifestFile } from '../format/manifest.js';
import type { FixedIndex } from '../format/fixed-index.js';
import { decodeBlob, isZeroChunkDigest } from '../codec/envelope.js';
import { initHash } from '../codec/hash.js';
import { fromHex } from '../util/bytes.js';
import { TaskGroup } from '../util/task-group.js';
import { ARCHIVE_SUFFIX, formatGroup } from '../types.js';
import type { StoreContext } from './context.js';
import type { FileLock } from '../host/locks.js';
import { archiveFileKey, snapshotKey } from './layout.js';
import { envelopeMaxBytes } from '../format/limits.js';
import type { DynamicIndex } from '../format/dynamic-index.js';
import { loadArchiveIndexes, storedSnapshotFiles, type ArchiveIndexFile } from './snapshot-chunks.js';
import { TreeReader } from './tree-reader.js';
import { restoreTree, type RestoreTreeOptions, type RestoreTreeStats } from './tree-restore.js';
import { treeTarStream, type TreeTarOptions, type TreeTarStream } from './tree-tar.js';
import { openRestoreTarget } from './file-restore.js';
import type { SnapshotRef } from './snapshot.js';

/**
 * Shared all-zero buffers by size (a chunk size and an image's tail): a zero chunk is returned
 * without allocating. Like cached chunks, callers must not modify what they get.
 */
const zeroBuffers = new Map<number, Uint8Array>();
function zeros(size: number): Uint8Array {
  let z = zeroBuffers.get(size);
  if (z === undefined) {
    if (zeroBuffers.size >= 8) zeroBuffers.clear();
    zeroBuffers.set(size, (z = new Uint8Array(size)));
  }
  return z;
}
/**
 * Finds an archive of a snapshot by name, the one rule for every lookup: the stored name
 * (`drive-scsi0.img`), or the name as given to the writer without its extension (`drive-scsi0`)
 * when exactly one archive has that stem.
 * @param snapshot - `type/id/time`, for the messages
 * @throws `ERR_NOT_FOUND` (no such archive: the message lists the snapshot's archives);
 *   `ERR_INVALID_ARGUMENT` when several archives have that stem (`x.img` and `x.blob` for `x`): the
 *   message and `details.candidates` list them
 * @internal
 */
export function findArchive(files: readonly ManifestFile[], name: string, snapshot: string, details: ErrorDetails): ManifestFile {
  const exact = files.find((x) => x.name === name);
  if (exact !== undefined) return exact;
  const stem = files.filter((x) => x.name === `${name}${ARCHIVE_SUFFIX[x.kind]}`);
  if (stem.length === 1) return stem[0]!;
  const d = { ...details, archive: name };
  if (stem.length > 1) {
    const list = stem.map((x) => x.name).join(', ');
    throw new CairnError('ERR_INVALID_ARGUMENT', `archive name '${name}' of snapshot ${snapshot} is ambiguous: it could be ${list}; give the full name`, {
      ...d,
      candidates: list,
    });
  }
  throw new CairnError('ERR_NOT_FOUND', `snapshot ${snapshot} has no archive '${name}' (it has: ${files.map((x) => x.name).join(', ')})`, d);
}

/**
 * The two dynamic indexes of a tree archive.
 * @category Restore
 */
export interface TreeIndexes {
  /** The metadata stream's index. */
  readonly meta: DynamicIndex;
  /** The payload stream's index. */
  readonly payload: DynamicIndex;
}

/**
 * Options of {@link Snapshot.open}.
 * @category Restore
 */
export interface SnapshotReaderOptions {
  /**
   * Chunks fetched ahead of a sequential reader (and in parallel during restore).
   * @defaultValue 2 × the pool's threads + 2
   */
  readonly readAhead?: number;
  /** Ends the wait for the snapshot's lock ({@link Snapshot.open}) with `ERR_ABORTED`. */
  readonly signal?: AbortSignal;
}

/**
 * Progress of a restore.
 * @category Restore
 */
export interface RestoreProgress {
  /** Archive being restored. */
  readonly archive: string;
  /** Bytes done. */
  readonly bytesDone: number;
  /** Bytes in all. */
  readonly bytesTotal: number;
}

/**
 * Options of {@link SnapshotReader.restore}.
 * @category Restore
 */
export interface RestoreOptions {
  /**
   * Replace an existing regular file (atomically: by a rename, once the new file is complete).
   * Block devices are always written in place. @defaultValue false
   */
  readonly overwrite?: boolean;
  /** Cancels the restore; the temp file is removed and an existing target stays as it was (devices: partly written). */
  readonly signal?: AbortSignal;
  /** Called as chunks land. */
  readonly onProgress?: (p: RestoreProgress) => void;
  /**
   * fsync the target before resolving. Block devices are always synced, and so is a file that
   * replaces an existing one (before the rename); a new file only when asked, like cp and tar (a
   * restore can simply be repeated).
   * @defaultValue false
   */
  readonly sync?: boolean;
}

/**
 * What a restore did.
 * @category Restore
 */
export interface RestoreStats {
  /** Bytes of the archive. */
  readonly bytes: number;
  /** Chunks read from the store. */
  readonly chunksRead: number;
  /** All-zero chunks left as holes (or written as zeros on devices). */
  readonly zeroChunks: number;
  /** Seconds taken. */
  readonly seconds: number;
}

/**
 * An open snapshot. Holds a shared lock on it until {@link SnapshotReader.close}.
 *
 * @example
 * ```ts
 * await using r = await (await ds.snapshot('vm/100')).open();
 * const first = await r.readAt('drive-scsi0.img', 0, 512);   // the boot sector
 * ```
 * @category Restore
 */
export class SnapshotReader {
  private readonly indexes = new Map<string, Promise<readonly ArchiveIndexFile[]>>();
  private closed = false;
  private readonly detach: () => void;
  private readonly readAhead: number;

  /** @internal */
  constructor(
    private readonly ctx: StoreContext,
    /** The snapshot. */
    readonly ref: SnapshotRef,
    /** Its manifest. */
    readonly manifest: Manifest,
    private readonly lock: FileLock,
    options: SnapshotReaderOptions,
  ) {
    this.readAhead = options.readAhead ?? ctx.pool().threads * 2 + 2;
    this.detach = ctx.attach(this);
  }

  /** `type/id/time`. */
  get name(): string {
    return `${formatGroup(this.ref.group)}/${this.ref.time}`;
  }

  /** The archives. */
  get files(): readonly ManifestFile[] {
    return this.manifest.files;
  }

  private details(archive?: string): ErrorDetails {
    const d: ErrorDetails = { datastore: this.ctx.root, namespace: this.ref.namespace, snapshot: this.name };
    return archive === undefined ? d : { ...d, archive };
  }

  private assertOpen(): void {
    if (this.closed) throw new CairnError('ERR_NOT_OPEN', `reader of ${this.name} is closed`, this.details());
    this.ctx.assertOpen();
  }

  /**
   * The manifest entry of an archive. Every method of the reader that takes an archive name finds
   * it this way: by its stored name (`drive-scsi0.img`), or by the name the writer was given,
   * without the extension (`drive-scsi0`), when exactly one archive has that stem.
   * @throws `ERR_NOT_FOUND`; `ERR_INVALID_ARGUMENT` when the name without extension fits several
   *   archives (`x.img` and `x.blob`; both are listed)
   */
  file(name: string): ManifestFile {
    return findArchive(this.manifest.files, name, this.name, this.details());
  }

  private imageFile(name: string): ManifestFile {
    const f = this.file(name);
    if (f.kind !== 'image') throw new CairnError('ERR_INVALID_ARGUMENT', `archive '${f.name}' of ${this.name} is a ${f.kind}, not an image`, this.details(f.name));
    return f;
  }

  /**
   * The fixed index of an image archive, checked against the manifest (size and checksum).
   * @throws `ERR_INDEX_CORRUPT` naming the archive.
   */
  async imageIndex(name: string): Promise<FixedIndex> {
    this.assertOpen();
    const f = this.imageFile(name);
    const [x] = await this.archiveIndexes(f.name);
    if (x?.kind !== 'fixed') throw new TypeError(`archive ${f.name} has no fixed index`);
    return x.index;
  }

  /**
   * The index files of an archive (images one, trees two, blobs none), read once and checked
   * against the manifest (lib/datastore/snapshot-chunks.ts).
   * @throws `ERR_INDEX_CORRUPT` naming the archive
   * @internal
   */
  archiveIndexes(name: string): Promise<readonly ArchiveIndexFile[]> {
    this.assertOpen();
    const f = this.file(name);
    let p = this.indexes.get(f.name);
    if (p === undefined) {
      p = loadArchiveIndexes(f, storedSnapshotFiles(this.ctx, this.ref));
      this.indexes.set(f.name, p);
      p.catch(() => this.indexes.delete(f.name));
    }
    return p;
  }

  /**
   * Reads a file of the snapshot as stored (an index, a blob, the manifest), at most `maxBytes`.
   * For copies by digest (lib/datastore/snapshot-importer.ts).
   * @throws `ERR_NOT_FOUND`; `code` when too large or not a stored value
   * @internal
   */
  readStoredFile(name: string, maxBytes: number, code: ErrorCode): Promise<Uint8Array> {
    this.assertOpen();
    return storedSnapshotFiles(this.ctx, this.ref).read(name, maxBytes, code);
  }

  /**
   * A chunk's stored envelope (not decoded), for copies by digest.
   * @throws `ERR_CHUNK_MISSING`, `ERR_CHUNK_CORRUPT` naming the digest
   * @internal
   */
  readStoredChunk(digest: Uint8Array): Promise<Uint8Array> {
    this.assertOpen();
    return this.ctx.chunks.readRaw(digest);
  }

  private async chunk(idx: FixedIndex, i: number, archive: string, signal?: AbortSignal): Promise<Uint8Array> {
    const { start, end } = idx.chunkRange(i);
    const digest = idx.digestAt(i);
    if (isZeroChunkDigest(this.ctx.chunks.format, digest, end - start)) return zeros(end - start);
    const opts = signal === undefined ? { details: this.details(archive) } : { details: this.details(archive), signal };
    return this.ctx.chunkReader().get(digest, opts);
  }

  /**
   * Reads `length` bytes of an image archive at `offset` (fewer at the end of the image).
   * @throws `ERR_CHUNK_CORRUPT` / `ERR_CHUNK_MISSING` naming the chunk.
   */
  async readAt(archive: string, offset: number, length: number, options: { signal?: AbortSignal } = {}): Promise<Uint8Array> {
    this.assertOpen();
    const idx = await this.imageIndex(archive);
    this.checkRange(archive, offset, length);
    const out = new Uint8Array(Math.max(0, Math.min(idx.size, offset + length) - offset));
    await this.readInto(archive, offset, out, options);
    return out;
  }

  /**
   * Reads an image archive at `offset` into `target` (as many bytes as fit, fewer at the end of
   * the image) without allocating a result: for callers that own a buffer, such as the FUSE
   * adapter. On an error, part of `target` may have been written.
   * @returns the bytes read (0 at or past the end)
   * @throws `ERR_CHUNK_CORRUPT` / `ERR_CHUNK_MISSING` naming the chunk.
   */
  async readInto(archive: string, offset: number, target: Uint8Array, options: { signal?: AbortSignal } = {}): Promise<number> {
    this.assertOpen();
    const idx = await this.imageIndex(archive);
    this.checkRange(archive, offset, target.byteLength);
    const end = Math.min(idx.size, offset + target.byteLength);
    if (end <= offset) return 0;
    const first = Math.floor(offset / idx.chunkSize);
    const last = Math.floor((end - 1) / idx.chunkSize);
    const parts: Promise<void>[] = [];
    for (let i = first; i <= last; i++) {
      parts.push(
        this.chunk(idx, i, archive, options.signal).then((data) => {
          const cs = i * idx.chunkSize;
          const from = Math.max(offset, cs);
          const to = Math.min(end, cs + data.byteLength);
          target.set(data.subarray(from - cs, to - cs), from - offset);
        }),
      );
    }
    await Promise.all(parts);
    return end - offset;
  }

  private checkRange(archive: string, offset: number, length: number): void {
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
      throw new CairnError('ERR_INVALID_ARGUMENT', `readAt: bad range ${offset}+${length}`, this.details(archive));
    }
  }

  /**
   * The image's bytes in order, as chunk-sized pieces, fetching `readAhead` chunks ahead.
   * Pieces may be shared with the chunk cache: do not modify them.
   */
  async *stream(archive: string, options: { signal?: AbortSignal } = {}): AsyncGenerator<Uint8Array> {
    this.assertOpen();
    const idx = await this.imageIndex(archive);
    const window: Promise<Uint8Array>[] = [];
    let next = 0;
    try {
      while (next < idx.count || window.length > 0) {
        while (next < idx.count && window.length < this.readAhead) {
          const p = this.chunk(idx, next++, archive, options.signal);
          p.catch(() => undefined);
          window.push(p);
        }
        throwIfAborted(options.signal, this.details(archive));
        yield await window.shift()!;
      }
    } finally {
      await Promise.allSettled(window);
    }
  }

  /** A Node Readable over {@link SnapshotReader.stream}. */
  createReadStream(archive: string, options: { signal?: AbortSignal } = {}): Readable {
    return Readable.from(this.stream(archive, options), { objectMode: false });
  }

  /**
   * Restores an image archive into a file (sparse: zero chunks become holes) or onto a block
   * device (zero chunks are written as zeros), or a blob archive into a file.
   *
   * A file is written as a new temp file beside `target` and renamed over it only once complete
   * (see `file-restore.ts`): a restore that fails, is aborted or is killed leaves an existing
   * target exactly as it was. A device cannot be renamed over: it is written in place.
   * @throws `ERR_EXISTS` when `target` is an existing regular file and `overwrite` is not set;
   *   `ERR_CHUNK_CORRUPT`, `ERR_CHUNK_MISSING`, `ERR_BLOB_CORRUPT`, `ERR_IO` (target untouched)
   */
  async restore(archive: string, target: string, options: RestoreOptions = {}): Promise<RestoreStats> {
    this.assertOpen();
    const t0 = performance.now();
    const f = this.file(archive);
    archive = f.name;
    const targetOptions = { overwrite: options.overwrite === true, sync: options.sync === true };
    if (f.kind === 'blob') {
      // Read (and check) the whole blob first: a damaged one never touches the target.
      const data = await this.readBlob(archive);
      throwIfAborted(options.signal, this.details(archive));
      const out = await openRestoreTarget(target, targetOptions, this.details(archive));
      try {
        await writeFully(out.fh, data, 0);
        if (!out.device) await out.fh.truncate(data.byteLength);
        throwIfAborted(options.signal, this.details(archive));
      } catch (e) {
        await out.discard();
        throw e instanceof CairnError ? e : ioError(e, `cannot restore to ${target}`, { ...this.details(archive), path: target });
      }
      await out.commit();
      options.onProgress?.({ archive, bytesDone: data.byteLength, bytesTotal: data.byteLength });
      return { bytes: data.byteLength, chunksRead: 0, zeroChunks: 0, seconds: (performance.now() - t0) / 1000 };
    }
    const idx = await this.imageIndex(archive);
    const out = await openRestoreTarget(target, targetOptions, this.details(archive));
    const { fh, device } = out;
    let chunksRead = 0;
    let zeroChunks = 0;
    let done = 0;
    // readAhead chunks at once (at least one); the first failure (or the abort) stops the loop.
    const signal = options.signal;
    const tasks = new TaskGroup({ limit: Math.max(1, this.readAhead), signal, details: this.details(archive) });
    const one = async (i: number): Promise<void> => {
      const { start, end } = idx.chunkRange(i);
      const size = end - start;
      let data: Uint8Array;
      if (isZeroChunkDigest(this.ctx.chunks.format, idx.digestAt(i), size)) {
        zeroChunks++;
        if (!device) {
          done += size;
          return;
        }
        data = new Uint8Array(size);
      } else {
        data = await this.ctx.chunkReader().get(idx.digestAt(i), { details: this.details(archive), cache: false });
        chunksRead++;
      }
      await writeFully(fh, data, start);
      done += size;
      options.onProgress?.({ archive, bytesDone: done, bytesTotal: idx.size });
    };
    try {
      for (let i = 0; i < idx.count; i++) await tasks.run(() => one(i));
      await tasks.wait();
      throwIfAborted(signal, this.details(archive));
      if (!device) await fh.truncate(idx.size);
    } catch (e) {
      await tasks.drain();
      await out.discard();
      throw e instanceof CairnError ? e : ioError(e, `cannot restore to ${target}`, { ...this.details(archive), path: target });
    }
    await out.commit();
    options.onProgress?.({ archive, bytesDone: idx.size, bytesTotal: idx.size });
    return { bytes: idx.size, chunksRead, zeroChunks, seconds: (performance.now() - t0) / 1000 };
  }

  /**
   * The two dynamic indexes of a tree archive, checked against the manifest's checksum.
   * @throws `ERR_INDEX_CORRUPT` naming the archive
   */
  async treeIndexes(name: string): Promise<TreeIndexes> {
    this.assertOpen();
    const f = this.file(name);
    if (f.kind !== 'tree') throw new CairnError('ERR_INVALID_ARGUMENT', `archive '${f.name}' of ${this.name} is a ${f.kind}, not a tree`, this.details(f.name));
    const [meta, payload] = await this.archiveIndexes(f.name);
    if (meta?.kind !== 'dynamic' || payload?.kind !== 'dynamic') throw new TypeError(`archive ${f.name} has no dynamic indexes`);
    return { meta: meta.index, payload: payload.index };
  }

  /**
   * Opens a tree archive for listing, lookups and reads.
   * @throws `ERR_INDEX_CORRUPT`, `ERR_TREE_CORRUPT`
   */
  async tree(name: string): Promise<TreeReader> {
    const { meta, payload } = await this.treeIndexes(name);
    return new TreeReader(this.ctx.chunkReader(), meta, payload, this.details(this.file(name).name)).init();
  }

  /**
   * Restores a tree archive (or the paths matching `include`) into `target`, with all metadata.
   * @throws `ERR_EXISTS` for a non-empty target without `overwrite`; `ERR_UNSAFE_PATH`,
   *   `ERR_TREE_CORRUPT` for a damaged or hostile archive (nothing is written outside `target`)
   */
  async restoreTree(name: string, target: string, options: RestoreTreeOptions = {}): Promise<RestoreTreeStats> {
    const tree = await this.tree(name);
    return restoreTree(tree, target, options, this.details(this.file(name).name));
  }

  /**
   * A tree archive as a tar stream (POSIX pax format: files, directories, symlinks, hardlinks,
   * devices, fifos; modes, owners, nanosecond mtimes, extended attributes), pulled as it is read.
   * Entries tar cannot carry (sockets, names that are not UTF-8) are left out and listed in the
   * stream's `stats` once it ends.
   *
   * @example
   * ```ts
   * await pipeline(reader.createTarStream('etc.tree', { include: ['ssh/**'] }), fs.createWriteStream('etc.tar'));
   * ```
   */
  createTarStream(name: string, options: TreeTarOptions = {}): TreeTarStream {
    // The archive is opened on the first read; its errors fail the stream.
    return treeTarStream(() => this.tree(name), options, this.details(name));
  }

  /**
   * The content of a blob archive, checked (CRC, and BLAKE3 against the manifest).
   * @throws `ERR_BLOB_CORRUPT`
   */
  async readBlob(name: string): Promise<Uint8Array> {
    this.assertOpen();
    const f = this.file(name);
    if (f.kind !== 'blob') throw new CairnError('ERR_INVALID_ARGUMENT', `archive '${f.name}' of ${this.name} is a ${f.kind}, not a blob`, this.details(f.name));
    name = f.name;
    const key = archiveFileKey(snapshotKey(this.ref.nsParts, this.ref.group, this.ref.time), name);
    const details = { ...this.details(name), path: this.ctx.backend.locate(key) };
    let bytes: Uint8Array;
    try {
      bytes = await this.ctx.backend.get(key, undefined, { maxBytes: envelopeMaxBytes(f.size), code: 'ERR_BLOB_CORRUPT' });
    } catch (e) {
      throw new CairnError('ERR_BLOB_CORRUPT', `blob '${name}' of ${this.name} cannot be read: ${(e as Error).message}`, details, e);
    }
    await initHash();
    return decodeBlob(this.ctx.chunks.format, bytes, { details, subject: `blob '${name}' of ${this.name}`, expectSize: f.size, expectDigest: fromHex(f.checksum) });
  }

  /** Releases the snapshot lock. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.detach();
    await this.lock.release();
  }

  /** Alias of {@link SnapshotReader.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

async function writeFully(fh: fsp.FileHandle, data: Uint8Array, position: number): Promise<void> {
  let off = 0;
  while (off < data.byteLength) {
    const { bytesWritten } = await fh.write(data, off, data.byteLength - off, position + off);
    off += bytesWritten;
  }
}

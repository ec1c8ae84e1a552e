/**
 * Snapshot import by digest (layer L4, DESIGN.md §9): the one path by which a snapshot arrives
 * from elsewhere (sync between datastores, a client uploading to a server, a restore from tape).
 *
 * The importer builds a snapshot in this datastore from chunks and index files that already exist
 * elsewhere, never decoding and re-encoding a chunk into another form: chunk envelopes, index
 * files, blobs and the manifest are stored as received, after they are checked.
 *
 * Order and safety (DESIGN.md §5), like a backup:
 * - the manifest is read and checked first (it must name the announced group and time), before
 *   anything is locked or written;
 * - the target group's lock is taken exclusively and the import registers as a live writer, so a
 *   concurrent GC's cutoff stays below every chunk it touches or writes;
 * - the index files are read from the source and checked against the manifest (the shared walk,
 *   snapshot-chunks.ts), still before anything is written;
 * - every chunk they reference is touched in this store (a dedup hit) or, when missing, copied:
 *   its envelope is read from the source, checked (CRC; with `verifyChunks` decoded and its BLAKE3
 *   compared with the digest) and stored under its digest;
 * - then the index files and the blobs are written into the snapshot directory, and the manifest
 *   last: the snapshot becomes visible only when whole.
 * A failed or aborted import removes its snapshot directory (and a group directory it created);
 * one killed leaves an unfinished directory, which the next backup or import of the group
 * removes. Chunks already copied stay: a re-run finds them and copies only the missing ones.
 */
import { CairnError, isCairnError, throwIfAborted, type ErrorCode, type ErrorDetails } from '../errors.js';
import { decodeManifest, manifestSignedPart, type ManifestFile } from '../format/manifest.js';
import { decodeBlob, parseEnvelope, type ChunkFormat } from '../codec/envelope.js';
import { initHash } from '../codec/hash.js';
import { ENVELOPE_MAX_BYTES, MANIFEST_MAX_BYTES, envelopeMaxBytes } from '../format/limits.js';
import { parseSnapshotTime } from '../types.js';
import { fromHex, toHex } from '../util/bytes.js';
import { registerWriter, type WriterRegistration } from '../host/writer-registry.js';
import type { StoreContext } from './context.js';
import type { Datastore } from './datastore.js';
import { makeFolder, removeFolder, syncBackend } from './keyspace.js';
import { MANIFEST_FILE, archiveFileNames, snapshotKey } from './layout.js';
import { loadSnapshot, type Snapshot, type SnapshotRef } from './snapshot.js';
import type { SnapshotReader } from './snapshot-reader.js';
import { removeNewGroupDir } from './snapshot-writer.js';
import { walkSnapshotFiles, type ArchiveChunks, type SnapshotFiles } from './snapshot-chunks.js';

/**
 * Where an imported snapshot comes from: its manifest, its files and its chunks, as stored.
 * {@link SnapshotImportSource} reads a snapshot of another open datastore; a server or a tape
 * reader implements the same three reads.
 * @category Import
 */
export interface ImportSource {
  /** The group of the snapshot, `type/id`, as the source announces it; the manifest must agree. */
  readonly group: string;
  /** The time of the snapshot (RFC 3339 UTC, second resolution); the manifest must agree. */
  readonly time: string;
  /** Where the snapshot comes from, for messages (`snapshot vm/100/… of /srv/a`). */
  readonly description: string;
  /** The manifest file as stored (an envelope around the canonical JSON). */
  manifest(): Promise<Uint8Array>;
  /**
   * A file of the snapshot as stored, by its name in the snapshot directory: an index
   * (`disk.img.fidx`, `root.tree.meta.didx`, `root.tree.payload.didx`) or a blob (`vm.conf.blob`).
   * @param maxBytes - the largest the file can be; the importer checks it again
   */
  file(name: string, maxBytes: number): Promise<Uint8Array>;
  /**
   * A chunk's stored envelope, by digest (the chunk file's bytes, not decoded).
   * @throws `ERR_CHUNK_MISSING` when the source does not have it
   */
  chunk(digest: Uint8Array): Promise<Uint8Array>;
}

/**
 * Progress of an import, reported after each chunk.
 * @category Import
 */
export interface ImportProgress {
  /** The snapshot, `type/id/time`. */
  readonly snapshot: string;
  /** The target namespace. */
  readonly namespace: string;
  /** Distinct chunks handled so far (present or copied). */
  readonly chunksDone: number;
  /** Distinct chunks the snapshot references. */
  readonly chunksTotal: number;
  /** Chunks copied so far. */
  readonly chunksCopied: number;
  /** Stored bytes copied so far (chunk envelopes). */
  readonly bytesCopied: number;
}

/**
 * Options of {@link SnapshotImporter.import}.
 * @category Import
 */
export interface ImportOptions {
  /**
   * The namespace of this datastore to import into; it must exist.
   * @defaultValue `''` (the root)
   */
  readonly namespace?: string;
  /**
   * Decode every chunk copied and check its BLAKE3 against its digest before storing it (the CRC
   * is always checked). A chunk that fails stops the import with `ERR_CHUNK_CORRUPT`.
   * @defaultValue true
   */
  readonly verifyChunks?: boolean;
  /**
   * Chunks handled at the same time.
   * @defaultValue 4
   */
  readonly concurrency?: number;
  /** Owner recorded on the group when the import creates it. */
  readonly owner?: string;
  /** Stops the import with `ERR_ABORTED`; nothing becomes visible. */
  readonly signal?: AbortSignal;
  /** Called with progress. */
  readonly onProgress?: (p: ImportProgress) => void;
  /**
   * **Test only**: interleaving hooks used by the test suite. Not part of the supported API.
   * @internal
   */
  readonly hooks?: {
    /** Called once every chunk is in this store, before the index files are written. */
    readonly afterChunks?: () => Promise<void>;
  };
}

/**
 * What {@link SnapshotImporter.import} did. Plain JSON.
 * @category Import
 */
export interface ImportReport {
  /** The target namespace. */
  readonly namespace: string;
  /** The snapshot, `type/id/time`. */
  readonly snapshot: string;
  /**
   * `imported`, or `exists` when this datastore already had the same snapshot (equal signed part
   * of the manifest): nothing was done.
   */
  readonly result: 'imported' | 'exists';
  /** Distinct chunks the snapshot references. */
  readonly chunks: number;
  /** Of which copied from the source. */
  readonly chunksCopied: number;
  /** Of which this datastore had already (touched, not copied). */
  readonly chunksPresent: number;
  /** Stored bytes of the chunks copied (envelopes). */
  readonly bytesCopied: number;
  /** Files written into the snapshot directory: index files and blobs, and the manifest. */
  readonly files: number;
  /** Seconds taken. */
  readonly seconds: number;
}

/**
 * Builds snapshots in a datastore from chunks and indexes that exist elsewhere, by digest: the
 * one path by which snapshots arrive from another datastore, a client or a tape. Chunks this
 * datastore has are only touched; the others are copied as stored; the manifest comes last.
 *
 * Rules: the snapshot's time must be newer than the newest snapshot of the target group
 * (`ERR_TIME_ORDER`), unless the same snapshot is already there (result `exists`); the manifest
 * must name the group and time the source announces (`ERR_MANIFEST_CORRUPT`). An import that
 * fails or is aborted leaves nothing visible, and a re-run copies only the chunks still missing.
 *
 * @example
 * ```ts
 * const snap = await source.snapshot('vm/100/2026-01-02T03:04:05Z');
 * await using from = await SnapshotImportSource.open(snap);
 * const report = await new SnapshotImporter(target).import(from, { namespace: 'offsite' });
 * console.log(`${report.chunksCopied} chunks copied, ${report.chunksPresent} already there`);
 * ```
 * @category Import
 */
export class SnapshotImporter {
  /** @param ds - the open datastore to import into */
  constructor(private readonly ds: Datastore) {}

  /**
   * Imports one snapshot from `source` into the target namespace, into the group the source
   * names.
   * @throws `ERR_MANIFEST_CORRUPT` (a damaged manifest, or one naming another snapshot),
   *   `ERR_TIME_ORDER`, `ERR_INDEX_CORRUPT`, `ERR_BLOB_CORRUPT`, `ERR_CHUNK_CORRUPT` and
   *   `ERR_CHUNK_MISSING` (naming the digest and the snapshot), `ERR_NOT_FOUND` (namespace),
   *   `ERR_LOCKED` (a backup or import of the group runs), `ERR_READ_ONLY`, `ERR_ABORTED`,
   *   `ERR_INVALID_NAME`, `ERR_INVALID_ARGUMENT`, `ERR_IO`
   */
  async import(source: ImportSource, options: ImportOptions = {}): Promise<ImportReport> {
    const ctx: StoreContext = this.ds;
    ctx.assertOpen();
    const t0 = performance.now();
    const concurrency = options.concurrency ?? 4;
    if (!Number.isInteger(concurrency) || concurrency < 1) throw new CairnError('ERR_INVALID_ARGUMENT', 'concurrency must be a positive integer', { datastore: ctx.root });
    const verifyChunks = options.verifyChunks ?? true;
    const signal = options.signal;
    const namespace = options.namespace ?? '';
    const group = this.ds.group(source.group, { namespace });
    parseSnapshotTime(source.time);
    const time = source.time;
    const name = `${group.name}/${time}`;
    const details: ErrorDetails = { datastore: ctx.root, namespace, group: group.name, snapshot: name, source: source.description };
    throwIfAborted(signal, details);

    // The manifest first: checked before anything is locked or written.
    const manifestBytes = checkSize(await source.manifest(), MANIFEST_MAX_BYTES, 'ERR_MANIFEST_CORRUPT', `manifest of ${name} from ${source.description}`, details);
    const manifest = decodeManifest(manifestBytes, details);
    if (manifest.type !== group.type || manifest.id !== group.id || manifest.time !== time) {
      throw new CairnError(
        'ERR_MANIFEST_CORRUPT',
        `manifest of ${name} from ${source.description} names another snapshot (${manifest.type}/${manifest.id}/${manifest.time})`,
        details,
      );
    }

    const ref: SnapshotRef = { namespace, nsParts: group.nsParts, group: group.group, time };
    const dirKey = snapshotKey(ref.nsParts, ref.group, time);
    const counts = { chunks: 0, chunksCopied: 0, chunksPresent: 0, bytesCopied: 0, files: 0 };
    const report = (result: ImportReport['result']): ImportReport => ({ namespace, snapshot: name, result, ...counts, seconds: Math.round(performance.now() - t0) / 1000 });

    const { lock, created, newest } = await group.lockForWrite({ ...(signal === undefined ? {} : { signal }), ...(options.owner === undefined ? {} : { owner: options.owner }) });
    let writer: WriterRegistration | undefined;
    let dirMade = false;
    let committed = false;
    try {
      const existing = await loadSnapshot(ctx, ref);
      if (existing !== undefined) {
        if (manifestSignedPart(existing.manifest) === manifestSignedPart(manifest)) return report('exists');
        throw new CairnError('ERR_TIME_ORDER', `a different snapshot ${name} exists in ${group.name}: a snapshot time is used once in a group`, details);
      }
      if (newest !== undefined && parseSnapshotTime(time) <= newest.epoch) {
        throw new CairnError('ERR_TIME_ORDER', `snapshot time ${time} is not after the newest snapshot of ${group.name} (${newest.time})`, details);
      }
      // Registered before the first touch: every chunk touched or written from here on is newer
      // than the cutoff of any GC that runs meanwhile (DESIGN.md §5).
      writer = await registerWriter(ctx.root, ctx.clock.now());
      await makeFolder(ctx.backend, dirKey);
      dirMade = true;

      // The index files, checked against the manifest, before any chunk is copied.
      const files: SnapshotFiles = {
        snapshot: name,
        details,
        read: async (file, maxBytes, code) => checkSize(await source.file(file, maxBytes), maxBytes, code, `file ${file} of ${name} from ${source.description}`, details),
      };
      const archives: ArchiveChunks[] = [];
      for await (const a of walkSnapshotFiles(manifest.files, files, signal === undefined ? {} : { signal })) archives.push(a);

      await this.copyChunks(source, archives, { name, namespace, details, verifyChunks, concurrency, counts }, options);
      await options.hooks?.afterChunks?.();

      const sync = { sync: ctx.config.syncLevel === 'file' };
      for (const a of archives) {
        throwIfAborted(signal, details);
        for (const x of a.indexes) {
          await ctx.backend.put(`${dirKey}/${x.name}`, x.bytes, sync);
          counts.files++;
        }
        if (a.file.kind === 'blob') {
          const blob = await readBlob(ctx.chunks.format, source, a.file, name, details);
          await ctx.backend.put(`${dirKey}/${archiveFileNames(a.file.name, 'blob')[0]!}`, blob, sync);
          counts.files++;
        }
      }

      // The manifest last: from here on the snapshot exists.
      throwIfAborted(signal, details);
      if (ctx.config.syncLevel === 'filesystem') await syncBackend(ctx.backend);
      await ctx.backend.put(`${dirKey}/${MANIFEST_FILE}`, manifestBytes, { sync: ctx.config.syncLevel !== 'none' });
      committed = true;
      counts.files++;
      return report('imported');
    } catch (e) {
      // Nothing of a failed import stays visible: its directory goes, and the group's when this
      // import made it. Chunks already copied stay for a re-run (or the next GC).
      if (dirMade && !committed) await removeFolder(ctx.backend, dirKey).catch(() => undefined);
      if (created && !committed) await removeNewGroupDir(ctx, group.key);
      throw e;
    } finally {
      await writer?.release();
      await lock.release();
    }
  }

  /** Touches every referenced chunk in this store, copying the missing ones from the source. */
  private async copyChunks(
    source: ImportSource,
    archives: readonly ArchiveChunks[],
    run: {
      name: string;
      namespace: string;
      details: ErrorDetails;
      verifyChunks: boolean;
      concurrency: number;
      counts: { chunks: number; chunksCopied: number; chunksPresent: number; bytesCopied: number };
    },
    options: ImportOptions,
  ): Promise<void> {
    const ctx: StoreContext = this.ds;
    const signal = options.signal;
    const { counts, details, name } = run;
    const todo = new Map<string, Uint8Array>();
    for (const a of archives) {
      for (const { index } of a.indexes) {
        for (let i = 0; i < index.count; i++) {
          const digest = index.digestAt(i);
          const hex = toHex(digest);
          if (!todo.has(hex)) todo.set(hex, digest);
        }
      }
    }
    counts.chunks = todo.size;
    if (run.verifyChunks) await initHash();
    const entries = [...todo];
    let next = 0;
    let done = 0;
    let failure: unknown;
    const one = async (hex: string, digest: Uint8Array): Promise<void> => {
      const chunkDetails = { ...details, digest: hex };
      if (await ctx.chunks.touch(digest)) {
        counts.chunksPresent++;
        return;
      }
      let envelope: Uint8Array;
      try {
        envelope = await source.chunk(digest);
      } catch (e) {
        if (e instanceof CairnError)
          throw new CairnError(e.code, `chunk ${hex} of ${name} cannot be read from ${source.description}: ${e.message}`, { ...e.details, ...chunkDetails }, e);
        throw e;
      }
      checkSize(envelope, ENVELOPE_MAX_BYTES, 'ERR_CHUNK_CORRUPT', `chunk ${hex} of ${name} from ${source.description}`, chunkDetails);
      try {
        if (run.verifyChunks) {
          // The pool takes its input: decode a copy and store the bytes as received.
          await ctx
            .pool()
            .decode(new Uint8Array(envelope), { format: ctx.chunks.format, digest, code: 'ERR_CHUNK_CORRUPT', details: chunkDetails, ...(signal === undefined ? {} : { signal }) });
        } else {
          parseEnvelope(envelope, { code: 'ERR_CHUNK_CORRUPT', details: chunkDetails });
        }
      } catch (e) {
        if (isCairnError(e, 'ERR_CHUNK_CORRUPT'))
          throw new CairnError('ERR_CHUNK_CORRUPT', `chunk ${hex} of ${name} from ${source.description} is corrupt: ${e.message}`, chunkDetails, e);
        throw e;
      }
      if ((await ctx.chunks.insertRaw(digest, envelope)) === 'written') {
        counts.chunksCopied++;
        counts.bytesCopied += envelope.byteLength;
      } else {
        counts.chunksPresent++; // written meanwhile by a backup of another group
      }
    };
    const worker = async (): Promise<void> => {
      while (failure === undefined && next < entries.length) {
        try {
          throwIfAborted(signal, details);
          const [hex, digest] = entries[next++]!;
          await one(hex, digest);
          done++;
          options.onProgress?.({
            snapshot: name,
            namespace: run.namespace,
            chunksDone: done,
            chunksTotal: entries.length,
            chunksCopied: counts.chunksCopied,
            bytesCopied: counts.bytesCopied,
          });
        } catch (e) {
          failure ??= e;
        }
      }
    };
    // Every worker ends before the caller cleans up: no chunk is written after the import failed.
    await Promise.all(Array.from({ length: Math.min(run.concurrency, Math.max(1, entries.length)) }, worker));
    if (failure !== undefined) throw failure;
  }
}

/** Reads a blob from the source and checks it (CRC, decoding, size and BLAKE3 against the manifest). */
async function readBlob(format: ChunkFormat, source: ImportSource, f: ManifestFile, snapshot: string, details: ErrorDetails): Promise<Uint8Array> {
  const file = archiveFileNames(f.name, 'blob')[0]!;
  const d = { ...details, archive: f.name };
  const maxBytes = envelopeMaxBytes(f.size);
  let bytes: Uint8Array;
  try {
    bytes = checkSize(await source.file(file, maxBytes), maxBytes, 'ERR_BLOB_CORRUPT', `blob '${f.name}' of ${snapshot} from ${source.description}`, d);
  } catch (e) {
    if (isCairnError(e, 'ERR_NOT_FOUND')) throw new CairnError('ERR_BLOB_CORRUPT', `blob '${f.name}' of ${snapshot} cannot be read from ${source.description}: ${e.message}`, d, e);
    throw e;
  }
  await initHash();
  decodeBlob(format, bytes, { details: d, subject: `blob '${f.name}' of ${snapshot} from ${source.description}`, expectSize: f.size, expectDigest: fromHex(f.checksum) });
  return bytes;
}

function checkSize(bytes: Uint8Array, maxBytes: number, code: ErrorCode, what: string, details: ErrorDetails): Uint8Array {
  if (bytes.byteLength > maxBytes) throw new CairnError(code, `${what} has ${bytes.byteLength} bytes, more than the ${maxBytes} it can have`, details);
  return bytes;
}

/**
 * An {@link ImportSource} over a finished snapshot of another open datastore. It holds a shared
 * lock on that snapshot (as a restore does) until closed, so the snapshot cannot be removed
 * while it is copied.
 *
 * @example
 * ```ts
 * await using from = await SnapshotImportSource.open(await source.snapshot('vm/100'));
 * await new SnapshotImporter(target).import(from);
 * ```
 * @category Import
 */
export class SnapshotImportSource implements ImportSource {
  /** @internal */
  private constructor(
    private readonly reader: SnapshotReader,
    private readonly snap: Snapshot,
  ) {}

  /**
   * Opens a source over `snapshot`, taking its shared lock.
   * @throws `ERR_LOCKED` when the snapshot is being removed; `ERR_NOT_FOUND` when it was removed;
   *   `ERR_ABORTED` when `options.signal` fires while waiting for the lock
   */
  static async open(snapshot: Snapshot, options: { readonly signal?: AbortSignal } = {}): Promise<SnapshotImportSource> {
    const reader = await snapshot.open(options.signal === undefined ? {} : { signal: options.signal });
    return new SnapshotImportSource(reader, snapshot);
  }

  /** The snapshot's group, `type/id`. */
  get group(): string {
    return `${this.snap.type}/${this.snap.id}`;
  }

  /** The snapshot's time. */
  get time(): string {
    return this.snap.time;
  }

  /** `snapshot <namespace>:type/id/time`. */
  get description(): string {
    return `snapshot ${this.snap.namespace === '' ? '' : `${this.snap.namespace}:`}${this.snap.name}`;
  }

  /** The manifest file as stored. */
  manifest(): Promise<Uint8Array> {
    return this.reader.readStoredFile(MANIFEST_FILE, MANIFEST_MAX_BYTES, 'ERR_MANIFEST_CORRUPT');
  }

  /** A file of the snapshot as stored (an index or a blob). */
  file(name: string, maxBytes: number): Promise<Uint8Array> {
    return this.reader.readStoredFile(name, maxBytes, /\.(fidx|didx)$/.test(name) ? 'ERR_INDEX_CORRUPT' : 'ERR_BLOB_CORRUPT');
  }

  /** A chunk's stored envelope. */
  chunk(digest: Uint8Array): Promise<Uint8Array> {
    return this.reader.readStoredChunk(digest);
  }

  /** Releases the snapshot's lock. Idempotent. */
  async close(): Promise<void> {
    await this.reader.close();
  }

  /** Alias of {@link SnapshotImportSource.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

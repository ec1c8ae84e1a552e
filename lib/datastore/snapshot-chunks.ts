/**
 * Every chunk a snapshot references (layer L4): the one walk over a snapshot's archives that the
 * garbage collector's mark, verify and the snapshot importer share.
 *
 * Per archive of the manifest, in manifest order, the walk yields the archive's index files,
 * decoded and checked against the manifest: an image has one fixed index, a tree two dynamic
 * indexes (metadata stream, then payload stream), a blob none (a blob is stored whole in its own
 * file and references no chunk). Index files are read through a {@link SnapshotFiles} (the
 * datastore's backend for a stored snapshot, an import source for one arriving from elsewhere)
 * with the size bounds of lib/format/limits.ts, and decoded by the format's decoders, which check
 * the header, the entries and the checksum; the walk then checks size and checksum against the
 * manifest entry. Every failure is `ERR_INDEX_CORRUPT` naming the archive and the snapshot.
 */
import { CairnError, throwIfAborted, type ErrorCode, type ErrorDetails } from '../errors.js';
import type { ManifestFile } from '../format/manifest.js';
import { decodeFixedIndex, type FixedIndex } from '../format/fixed-index.js';
import { decodeDynamicIndex, type DynamicIndex } from '../format/dynamic-index.js';
import { dynamicIndexMaxBytes, fixedIndexMaxBytes } from '../format/limits.js';
import { initHash } from '../codec/hash.js';
import { toHex } from '../util/bytes.js';
import { archiveFileNames, snapshotKey } from './layout.js';
import type { StoreContext } from './context.js';
import type { SnapshotRef } from './snapshot.js';
import { treeChecksum } from './chunk-stream.js';

/**
 * Read access to the files of one snapshot, by name inside its directory.
 */
export interface SnapshotFiles {
  /** `type/id/time`, for messages. */
  readonly snapshot: string;
  /** The ids every error carries (datastore, namespace, snapshot). */
  readonly details: ErrorDetails;
  /**
   * The stored bytes of a file of the snapshot.
   * @param maxBytes - fail with `code` when the file is larger, before reading it
   * @param code - the corrupt code of the file kind read
   * @throws `ERR_NOT_FOUND` when missing; `code` when too large or not a stored value
   */
  read(name: string, maxBytes: number, code: ErrorCode): Promise<Uint8Array>;
  /** A human-readable location of a file, for messages (a path on the local backend). */
  locate?(name: string): string;
}

/** The files of a snapshot stored in a datastore, read through its backend. */
export function storedSnapshotFiles(ctx: StoreContext, ref: SnapshotRef): SnapshotFiles {
  const dir = snapshotKey(ref.nsParts, ref.group, ref.time);
  const snapshot = `${ref.group.type}/${ref.group.id}/${ref.time}`;
  return {
    snapshot,
    details: { datastore: ctx.root, namespace: ref.namespace, snapshot },
    read: (name, maxBytes, code) => ctx.backend.get(`${dir}/${name}`, undefined, { maxBytes, code }),
    locate: (name) => ctx.backend.locate(`${dir}/${name}`),
  };
}

/** A decoded index file of an archive. */
export type ArchiveIndexFile =
  | { readonly kind: 'fixed'; readonly stream: 'image'; readonly name: string; readonly bytes: Uint8Array; readonly index: FixedIndex }
  | { readonly kind: 'dynamic'; readonly stream: 'meta' | 'payload'; readonly name: string; readonly bytes: Uint8Array; readonly index: DynamicIndex };

/** One archive of a snapshot with its index files (none for a blob). */
export interface ArchiveChunks {
  /** The archive's manifest entry. */
  readonly file: ManifestFile;
  /** Its index files: images one (fixed), trees two (meta, then payload), blobs none. */
  readonly indexes: readonly ArchiveIndexFile[];
  /** With `continueOnError`: why the indexes could not be loaded (`indexes` is then empty). */
  readonly error?: unknown;
}

/** Options of {@link snapshotChunks} and {@link walkSnapshotFiles}. */
export interface SnapshotChunksOptions {
  /** Checked before each archive: the walk stops with `ERR_ABORTED`. */
  readonly signal?: AbortSignal;
  /**
   * Yield an archive whose indexes cannot be loaded with its `error` and go on (verify reports
   * every damaged archive); otherwise the walk throws at the first one (GC must not miss a chunk).
   * `ERR_ABORTED` always throws.
   * @defaultValue false
   */
  readonly continueOnError?: boolean;
}

/**
 * Reads, decodes and checks the index files of one archive against its manifest entry.
 * @throws `ERR_INDEX_CORRUPT` naming the archive (also for a missing or unreadable file)
 */
export async function loadArchiveIndexes(f: ManifestFile, files: SnapshotFiles): Promise<ArchiveIndexFile[]> {
  if (f.kind === 'blob') return [];
  const archiveDetails = { ...files.details, archive: f.name };
  const read = async (name: string, maxBytes: number): Promise<{ bytes: Uint8Array; details: ErrorDetails }> => {
    const location = files.locate?.(name);
    const details = location === undefined ? archiveDetails : { ...archiveDetails, path: location };
    try {
      return { bytes: await files.read(name, maxBytes, 'ERR_INDEX_CORRUPT'), details };
    } catch (e) {
      throw new CairnError('ERR_INDEX_CORRUPT', `index of archive '${f.name}' in ${files.snapshot} cannot be read: ${(e as Error).message}`, details, e);
    }
  };
  await initHash();
  if (f.kind === 'image') {
    const [name] = archiveFileNames(f.name, 'image') as [string];
    const { bytes, details } = await read(name, fixedIndexMaxBytes(f.size));
    const index = decodeFixedIndex(bytes, details);
    if (index.size !== f.size || toHex(index.checksum) !== f.checksum) {
      throw new CairnError('ERR_INDEX_CORRUPT', `index of archive '${f.name}' in ${files.snapshot} does not match the manifest (size or checksum)`, details);
    }
    return [{ kind: 'fixed', stream: 'image', name, bytes, index }];
  }
  const [metaName, payloadName] = archiveFileNames(f.name, 'tree') as [string, string];
  const m = await read(metaName, dynamicIndexMaxBytes(undefined));
  const meta = decodeDynamicIndex(m.bytes, m.details);
  const p = await read(payloadName, dynamicIndexMaxBytes(f.size));
  const payload = decodeDynamicIndex(p.bytes, p.details);
  if (payload.size !== f.size || treeChecksum(meta.checksum, payload.checksum) !== f.checksum) {
    throw new CairnError('ERR_INDEX_CORRUPT', `indexes of tree archive '${f.name}' in ${files.snapshot} do not match the manifest`, archiveDetails);
  }
  return [
    { kind: 'dynamic', stream: 'meta', name: metaName, bytes: m.bytes, index: meta },
    { kind: 'dynamic', stream: 'payload', name: payloadName, bytes: p.bytes, index: payload },
  ];
}

/** What the walk needs of an open snapshot: its archives and their (cached) indexes. */
export interface IndexedSnapshot {
  /** The archives, in manifest order. */
  readonly files: readonly ManifestFile[];
  /** The index files of an archive, loaded as by {@link loadArchiveIndexes}. */
  archiveIndexes(name: string): Promise<readonly ArchiveIndexFile[]>;
}

/**
 * Every archive of an open snapshot (a `SnapshotReader`, whose shared lock keeps the
 * snapshot from being removed meanwhile) with the indexes that reference its chunks.
 */
export function snapshotChunks(reader: IndexedSnapshot, options: SnapshotChunksOptions = {}): AsyncGenerator<ArchiveChunks> {
  return walk(reader.files, (f) => reader.archiveIndexes(f.name), options);
}

/**
 * Every archive of a manifest with its indexes, read from `files` (a snapshot that is not, or
 * not yet, stored in this datastore: an import source).
 */
export function walkSnapshotFiles(manifestFiles: readonly ManifestFile[], files: SnapshotFiles, options: SnapshotChunksOptions = {}): AsyncGenerator<ArchiveChunks> {
  return walk(manifestFiles, (f) => loadArchiveIndexes(f, files), options);
}

async function* walk(
  manifestFiles: readonly ManifestFile[],
  load: (f: ManifestFile) => Promise<readonly ArchiveIndexFile[]>,
  options: SnapshotChunksOptions,
): AsyncGenerator<ArchiveChunks> {
  for (const file of manifestFiles) {
    throwIfAborted(options.signal);
    let indexes: readonly ArchiveIndexFile[];
    try {
      indexes = file.kind === 'blob' ? [] : await load(file);
    } catch (e) {
      if (options.continueOnError !== true || (e instanceof CairnError && e.code === 'ERR_ABORTED')) throw e;
      yield { file, indexes: [], error: e };
      continue;
    }
    yield { file, indexes };
  }
}

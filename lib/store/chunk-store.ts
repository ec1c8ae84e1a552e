/**
 * The chunk store (layer L3): content-addressed chunk files under `.chunks/<2 hex>/<64 hex>`.
 *
 * 256 shard directories, created with the datastore: creating a directory per new chunk (as lazy
 * sharding over 65,536 directories does on a first backup) halved write throughput in bench/, and
 * pre-creating 65,536 costs 2 s and 256 MiB of directory blocks. At 1 MiB chunks, 10 TB is about
 * 40,000 files per shard, which ext4's hashed directories handle well.
 *
 * Invariants this layer keeps (DESIGN.md §5):
 * - A chunk file is written atomically (temp file, fsync when the sync level is `file`, rename),
 *   so a chunk file that exists is whole.
 * - Inserting a chunk that exists *touches its mtime* and writes nothing: a successful touch is the
 *   dedup hit, and ENOENT on the touch means "write it". The garbage collector relies on this: a
 *   chunk a writer reused after the GC started has a fresh mtime and is not swept.
 * - Chunk files are never modified in place; damaged ones are renamed aside (`<digest>.N.bad`) by
 *   verify, never deleted by the store.
 */
import { toHex } from '../util/bytes.js';
import { localFilesOf, renamingOf, type Backend } from '../backend/backend.js';
import { CairnError, isCairnError } from '../errors.js';
import type { Clock } from '../util/clock.js';
import type { SyncLevel } from '../types.js';
import { ENVELOPE_MAX_BYTES } from '../format/limits.js';

/** Folder of the chunk files inside a datastore. */
export const CHUNK_DIR = '.chunks';

/** The backend key of a chunk. */
export function chunkKey(digestHex: string): string {
  return `${CHUNK_DIR}/${digestHex.slice(0, 2)}/${digestHex}`;
}

/** The shard directories (`.chunks/00` … `.chunks/ff`). */
export function shardKeys(): string[] {
  return Array.from({ length: 256 }, (_, i) => `${CHUNK_DIR}/${i.toString(16).padStart(2, '0')}`);
}

/** How many renamed-aside copies of one digest are kept (`<digest>.0.bad` … `<digest>.9.bad`). */
export const MAX_BAD_COPIES = 10;

/** What {@link ChunkStore.insert} did. */
export type InsertOutcome = 'written' | 'duplicate';

/** Insert, touch and read chunk files. */
export class ChunkStore {
  /**
   * @param backend - where the chunk files live
   * @param syncLevel - `file` fsyncs every chunk file and its directory
   * @param clock - source of the touch time
   */
  constructor(
    readonly backend: Backend,
    readonly syncLevel: SyncLevel,
    private readonly clock: Clock,
  ) {}

  /**
   * Prepares a new datastore's chunk area: on a backend with local files, the `.chunks` directory
   * and its 256 shard directories (see the module comment); nothing elsewhere.
   */
  static async prepare(backend: Backend): Promise<void> {
    const local = localFilesOf(backend);
    if (local === undefined) return;
    await local.mkdir(CHUNK_DIR);
    await Promise.all(shardKeys().map((k) => local.mkdir(k)));
  }

  /**
   * Stores a chunk unless it exists, in which case its mtime is touched.
   * @param digest - BLAKE3 of the plaintext
   * @param header - envelope header
   * @param payload - stored payload
   */
  async insert(digest: Uint8Array, header: Uint8Array, payload: Uint8Array): Promise<InsertOutcome> {
    const key = chunkKey(toHex(digest));
    if (await this.backend.touch(key, this.clock.now())) return 'duplicate';
    await this.backend.put(key, [header, payload], { sync: this.syncLevel === 'file' });
    return 'written';
  }

  /**
   * Stores a chunk's envelope as received (a copy by digest from another datastore), unless the
   * chunk exists, in which case its mtime is touched: the same dedup protocol as
   * {@link ChunkStore.insert}. The caller has checked the envelope (at least its CRC; its digest
   * when it can): this layer stores the bytes as they are.
   * @param digest - BLAKE3 of the plaintext
   * @param envelope - the stored form: envelope header and payload
   */
  async insertRaw(digest: Uint8Array, envelope: Uint8Array): Promise<InsertOutcome> {
    const key = chunkKey(toHex(digest));
    if (await this.backend.touch(key, this.clock.now())) return 'duplicate';
    await this.backend.put(key, envelope, { sync: this.syncLevel === 'file' });
    return 'written';
  }

  /**
   * A chunk's stored envelope, not decoded (for a copy by digest to another datastore): the same
   * bytes and checks as {@link ChunkStore.read}.
   * @throws `ERR_CHUNK_MISSING` naming the digest; `ERR_CHUNK_CORRUPT` when the file is not a
   *   regular file or is too large
   */
  async readRaw(digest: Uint8Array): Promise<Uint8Array> {
    return this.read(digest);
  }

  /** Touches a chunk's mtime; false when the chunk file does not exist. */
  async touch(digest: Uint8Array): Promise<boolean> {
    return this.backend.touch(chunkKey(toHex(digest)), this.clock.now());
  }

  /** True when the chunk file exists. */
  async has(digest: Uint8Array): Promise<boolean> {
    return (await this.backend.stat(chunkKey(toHex(digest)))) !== undefined;
  }

  /**
   * Renames a damaged chunk file aside to `<digest>.N.bad` (N = the first free number from 0 to 9;
   * when all ten exist, `.9.bad` is replaced). Nothing is deleted except, at most, an older
   * `.9.bad`. A fresh upload of the digest can then write a good copy.
   * @returns the backend key of the renamed file, or undefined when the chunk file does not exist.
   */
  async quarantine(digest: Uint8Array): Promise<string | undefined> {
    const key = chunkKey(toHex(digest));
    let target = `${key}.${MAX_BAD_COPIES - 1}.bad`;
    for (let n = 0; n < MAX_BAD_COPIES; n++) {
      const candidate = `${key}.${n}.bad`;
      if ((await this.backend.stat(candidate)) === undefined) {
        target = candidate;
        break;
      }
    }
    const renaming = renamingOf(this.backend);
    try {
      if (renaming !== undefined) {
        await renaming.rename(key, target);
      } else {
        // Without renames: a copy aside, then the chunk goes (a reader meanwhile sees it or nothing).
        await this.backend.put(target, await this.backend.get(key));
        await this.backend.delete(key);
      }
    } catch (e) {
      if (isCairnError(e, 'ERR_NOT_FOUND')) return undefined;
      throw e;
    }
    return target;
  }

  /** The local path of a chunk file, when the backend keeps files (for reading it on a worker). */
  localPathOf(digest: Uint8Array): string | undefined {
    return localFilesOf(this.backend)?.pathOf(chunkKey(toHex(digest)));
  }

  /**
   * Reads a chunk file's stored bytes (not decoded), at most the largest envelope.
   * @throws `ERR_CHUNK_MISSING` naming the digest when the file does not exist; `ERR_CHUNK_CORRUPT`
   *   when it is not a regular file (a symlink, FIFO, directory) or is too large.
   */
  async read(digest: Uint8Array): Promise<Uint8Array> {
    const hex = toHex(digest);
    try {
      return await this.backend.get(chunkKey(hex), undefined, { maxBytes: ENVELOPE_MAX_BYTES, code: 'ERR_CHUNK_CORRUPT' });
    } catch (e) {
      if (isCairnError(e, 'ERR_NOT_FOUND')) {
        throw new CairnError('ERR_CHUNK_MISSING', `chunk ${hex} is missing`, { digest: hex }, e);
      }
      throw e;
    }
  }
}

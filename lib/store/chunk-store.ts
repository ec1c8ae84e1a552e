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
 *   verify, and deleted only by the sweep, once a good copy exists or no snapshot needs the digest.
 *
 * The store owns the chunk lifecycle (DESIGN.md §8): insert, touch, has, read, raw read and insert
 * for copies between datastores, quarantine, and the garbage collector's sweep
 * ({@link ChunkStore.sweep}, chunk-sweep.ts), whose way is chosen by the backend's capabilities.
 */
import { toHex } from '../util/bytes.js';
import { localFilesOf, renamingOf, type Backend } from '../backend/backend.js';
import { CairnError, isCairnError } from '../errors.js';
import type { Clock } from '../util/clock.js';
import type { SyncLevel } from '../types.js';
import { ENVELOPE_MAX_BYTES } from '../format/limits.js';
import { parseEnvelope } from '../codec/envelope.js';
import { chunkKey, shardKeys, CHUNK_DIR } from './chunk-keys.js';
import { sweepChunks, type SweepOptions, type SweepReport } from './chunk-sweep.js';
import { type ChunkFormat, PLAIN_CHUNK_FORMAT } from '../codec/envelope.js';

export { CHUNK_DIR, chunkKey, shardKeys } from './chunk-keys.js';
export type { SweepOptions, SweepProgress, SweepReport } from './chunk-sweep.js';

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
   * @param format - digest kind and crypt mode of the chunks (from the datastore config, see
   *   `chunkFormatOf` in lib/codec/envelope.ts): everything that encodes, decodes or digests this
   *   store's chunks passes it on
   */
  constructor(
    readonly backend: Backend,
    readonly syncLevel: SyncLevel,
    private readonly clock: Clock,
    readonly format: ChunkFormat = PLAIN_CHUNK_FORMAT,
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
   * @param digest - the chunk's digest in the store's {@link ChunkStore.format}
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
   * Stores an already-encoded envelope as-is (a chunk copied from another datastore without
   * decoding it: sync, remote uploads) unless the digest exists, in which case its mtime is touched.
   * The protocol is {@link ChunkStore.insert}'s: touch first (a successful touch is the dedup hit),
   * else one atomic put.
   *
   * The envelope is checked before anything is touched or stored: its header is parsed and the
   * CRC-32 of its payload compared (a damaged copy is refused, never stored), and it may be no
   * larger than what {@link ChunkStore.readRaw} reads back. What is **not** checked is that the
   * envelope decodes to plaintext whose BLAKE3 is `digest`: that needs decompressing and hashing the
   * whole chunk, and it is the importer's choice (decode and hash before calling this, or trust the
   * source datastore, which wrote the chunk under that digest). A verify run of this datastore
   * checks it later either way.
   * @param digest - BLAKE3 of the plaintext (the chunk's name)
   * @param envelope - the stored bytes, as {@link ChunkStore.readRaw} returns them
   * @throws `ERR_CHUNK_CORRUPT` (with the digest) for a damaged or oversized envelope;
   *   `ERR_FORMAT_VERSION` for an envelope version newer than this code reads.
   */
  async insertRaw(digest: Uint8Array, envelope: Uint8Array): Promise<InsertOutcome> {
    const hex = toHex(digest);
    if (envelope.byteLength > ENVELOPE_MAX_BYTES) {
      throw new CairnError('ERR_CHUNK_CORRUPT', `chunk ${hex} is corrupt: an envelope of ${envelope.byteLength} bytes is more than the ${ENVELOPE_MAX_BYTES} its format allows`, {
        digest: hex,
      });
    }
    parseEnvelope(envelope, { code: 'ERR_CHUNK_CORRUPT', details: { digest: hex } });
    const key = chunkKey(hex);
    if (await this.backend.touch(key, this.clock.now())) return 'duplicate';
    await this.backend.put(key, envelope, { sync: this.syncLevel === 'file' });
    return 'written';
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

  /**
   * The garbage collector's sweep: removes the chunks `isMarked` does not claim whose mtime is older
   * than the cutoff, with the backend's safe protocol (chunk-sweep.ts: rename aside, re-check, delete
   * or link back on local files; re-stat then delete elsewhere, with the window documented there),
   * and the `.bad` copies, aside files and stale temp files that are no longer needed. The caller
   * (../maintenance/gc.ts) holds the GC lock and owns the argument that the mark and the cutoff are
   * safe.
   * @throws `ERR_ABORTED`; `ERR_UNSAFE_PATH` for a shard that is not a real directory; I/O errors
   */
  async sweep(options: SweepOptions): Promise<SweepReport> {
    return sweepChunks(this.backend, options);
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
    return this.readRaw(digest);
  }

  /**
   * The stored envelope of a chunk, byte for byte, not decoded nor checked (for copying it to
   * another datastore with {@link ChunkStore.insertRaw}, which checks it); bounded as
   * {@link ChunkStore.read} (the same call under the name that says what it returns).
   * @throws `ERR_CHUNK_MISSING` naming the digest when the chunk does not exist; `ERR_CHUNK_CORRUPT`
   *   when it is not a regular file (a symlink, FIFO, directory) or is too large.
   */
  async readRaw(digest: Uint8Array): Promise<Uint8Array> {
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

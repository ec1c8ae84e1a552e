/**
 * BLAKE3 (via @napi-rs/blake-hash) and CRC-32 (via node:zlib) (layer L1).
 *
 * BLAKE3 is the official Rust implementation (SIMD: SSE4.1, AVX2, AVX-512 or NEON, chosen at run
 * time) in prebuilt N-API binaries that npm installs as an optional dependency for the platform,
 * with no install script. Pinned to 1.3.4: 1.3.6 was published with binaries for linux-x64 only,
 * and its missing optional packages make `npm ci` fail. Until 0.1 it was blake3-wasm 3.0.0, which gives the same digests
 * (test/codec/blake3-vectors.test.ts pins them with the reference vectors) but cannot be
 * installed as a dependency (it names an internal package version that was never published), was
 * several times slower and gave wrong digests for single updates of 2 MiB or more.
 *
 * The binding is loaded by {@link initHash}, which must be awaited once in **every** thread (the
 * main thread and each worker) before {@link blake3} or {@link createBlake3} is used; a platform
 * without a binary fails there with `ERR_NATIVE`.
 */
import { crc32 as zlibCrc32 } from 'node:zlib';
import { CairnError } from '../errors.js';

/** Size of a BLAKE3 digest (and of every chunk digest) in bytes. */
export const DIGEST_SIZE = 32;

type Binding = typeof import('@napi-rs/blake-hash');

let loading: Promise<void> | undefined;
let binding: Binding | undefined;

/**
 * Loads the BLAKE3 binding. Memoized: cheap to call again, and concurrent callers share one load.
 * Must be awaited in each thread (main and every worker) before hashing. A failed load is
 * forgotten, so a later call tries again.
 * @throws `ERR_NATIVE` when no BLAKE3 binary fits this platform (the message says what to do).
 */
export function initHash(): Promise<void> {
  if (loading === undefined) {
    loading = import('@napi-rs/blake-hash').then(
      (m) => {
        binding = m;
      },
      (e: unknown) => {
        loading = undefined;
        throw new CairnError(
          'ERR_NATIVE',
          `BLAKE3 could not be loaded (@napi-rs/blake-hash has no binary for ${process.platform}-${process.arch} here, or its optional dependency was not installed: run \`npm install\` without --omit=optional): ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`,
          {},
          e,
        );
      },
    );
  }
  return loading;
}

/** True once {@link initHash} has completed in this thread. */
export function isHashReady(): boolean {
  return binding !== undefined;
}

/** A Buffer view of the same bytes (no copy): the binding's types ask for Buffers. */
function asBuffer(data: Uint8Array): Buffer {
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

function assertReady(): Binding {
  if (binding === undefined) throw new Error('BLAKE3 is not initialised in this thread: await initHash() first');
  return binding;
}

/**
 * The 32-byte BLAKE3 digest of `data`, in a fresh (unpooled, transferable) Uint8Array. The
 * primitive: library code digests chunks with `chunkDigest` (lib/codec/envelope.ts) and other
 * structures with {@link indexChecksum}.
 * @throws Error when {@link initHash} has not completed in this thread.
 */
export function blake3(data: Uint8Array): Uint8Array {
  const b = assertReady();
  const out = new Uint8Array(DIGEST_SIZE);
  out.set(b.blake3(asBuffer(data)));
  return out;
}

/**
 * The checksum of bytes that are not chunk content: an index body (lib/format/FORMAT.md §2), the
 * checksum of a tree archive over its two index checksums. Unkeyed BLAKE3, whatever the datastore's
 * chunk format: it protects structure that holds only digests. Never use it for a chunk's id;
 * chunk digests come from `chunkDigest` (lib/codec/envelope.ts), which takes the chunk format.
 * @throws Error when {@link initHash} has not completed in this thread.
 */
export function indexChecksum(data: Uint8Array): Uint8Array {
  return blake3(data);
}

/** An incremental BLAKE3 hasher. */
export interface Blake3Hasher {
  /** Feeds more data; returns the hasher for chaining. */
  update(data: Uint8Array): this;
  /** The 32-byte digest of everything fed so far (the hasher stays usable until disposed). */
  digest(): Uint8Array;
  /** Ends the hasher. Idempotent; any later update/digest throws. */
  dispose(): void;
}

/**
 * A new incremental BLAKE3 hasher. Call `dispose()` when done (use try/finally): a disposed
 * hasher refuses further use, which catches a hasher shared by mistake.
 * @throws Error when {@link initHash} has not completed in this thread.
 */
export function createBlake3(): Blake3Hasher {
  const b = assertReady();
  let h: InstanceType<Binding['Blake3Hasher']> | undefined = new b.Blake3Hasher();
  const live = (): InstanceType<Binding['Blake3Hasher']> => {
    if (h === undefined) throw new Error('BLAKE3 hasher used after dispose()');
    return h;
  };
  const hasher: Blake3Hasher = {
    update(data: Uint8Array) {
      live().update(asBuffer(data));
      return this;
    },
    digest() {
      const out = new Uint8Array(DIGEST_SIZE);
      out.set(live().digestBuffer());
      return out;
    },
    dispose() {
      h = undefined;
    },
  };
  return hasher;
}

/**
 * CRC-32 (ISO-HDLC, the zlib/PNG polynomial) of `data`, as an unsigned 32-bit number.
 * @param initial - the CRC of preceding data, to continue a running checksum (default 0)
 */
export function crc32(data: Uint8Array, initial = 0): number {
  return zlibCrc32(data, initial);
}

/**
 * BLAKE3 (via blake3-wasm) and CRC-32 (via node:zlib) (layer L1).
 *
 * blake3-wasm has no synchronous initialisation: {@link initHash} must be awaited once in **every**
 * thread (the main thread and each worker) before {@link blake3} or {@link createBlake3} is used.
 */
import { createHash, hash, load } from 'blake3-wasm';
import { crc32 as zlibCrc32 } from 'node:zlib';

/** Size of a BLAKE3 digest (and of every chunk digest) in bytes. */
export const DIGEST_SIZE = 32;

let loading: Promise<void> | undefined;
let ready = false;

/**
 * Loads the BLAKE3 WebAssembly module. Memoized: cheap to call again, and concurrent callers share
 * one load. Must be awaited in each thread (main and every worker) before hashing. A failed load is
 * forgotten, so a later call tries again.
 */
export function initHash(): Promise<void> {
  if (loading === undefined) {
    loading = load().then(
      () => {
        ready = true;
      },
      (e: unknown) => {
        loading = undefined;
        throw e;
      },
    );
  }
  return loading;
}

/** True once {@link initHash} has completed in this thread. */
export function isHashReady(): boolean {
  return ready;
}

function assertReady(): void {
  if (!ready) throw new Error('BLAKE3 is not initialised in this thread: await initHash() first');
}

/**
 * The 32-byte BLAKE3 digest of `data`, in a fresh (unpooled, transferable) Uint8Array.
 * @throws Error when {@link initHash} has not completed in this thread.
 */
export function blake3(data: Uint8Array): Uint8Array {
  assertReady();
  const out = new Uint8Array(DIGEST_SIZE);
  out.set(hash(data));
  return out;
}

/** An incremental BLAKE3 hasher. It holds WebAssembly memory: **`dispose()` is required.** */
export interface Blake3Hasher {
  /** Feeds more data; returns the hasher for chaining. */
  update(data: Uint8Array): this;
  /** The 32-byte digest of everything fed so far (the hasher stays usable until disposed). */
  digest(): Uint8Array;
  /** Frees the WebAssembly state. Idempotent; any later update/digest throws. */
  dispose(): void;
}

/**
 * A new incremental BLAKE3 hasher.
 *
 * **Call `dispose()` when done, also on error paths** (use try/finally). The WebAssembly heap is
 * fixed in size and the finalizer does not run in time: a few thousand undisposed hashers abort
 * the thread with an out-of-memory error.
 * @throws Error when {@link initHash} has not completed in this thread.
 */
export function createBlake3(): Blake3Hasher {
  assertReady();
  let h: ReturnType<typeof createHash> | undefined = createHash();
  const live = (): ReturnType<typeof createHash> => {
    if (h === undefined) throw new Error('BLAKE3 hasher used after dispose()');
    return h;
  };
  const hasher: Blake3Hasher = {
    update(data: Uint8Array) {
      live().update(data);
      return this;
    },
    digest() {
      const out = new Uint8Array(DIGEST_SIZE);
      out.set(live().digest());
      return out;
    },
    dispose() {
      if (h !== undefined) {
        h.dispose();
        h = undefined;
      }
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

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
  if (data.byteLength <= ONE_SHOT_LIMIT) {
    out.set(hash(data));
    return out;
  }
  // blake3-wasm's one-shot hash copies the input into a fixed WebAssembly heap and aborts with OOM
  // above about 10 MB: feed large inputs in slices instead.
  const h = createBlake3();
  try {
    out.set(h.update(data).digest());
  } finally {
    h.dispose();
  }
  return out;
}

/** Largest input hashed in one call into blake3-wasm's one-shot hash (its heap holds about 10 MB). */
const ONE_SHOT_LIMIT = 4 * 1024 * 1024;

/**
 * Largest slice passed to one `update()` of a blake3-wasm hasher. Measured with blake3-wasm 3.0.0:
 * updates of 2 MiB or more give a WRONG digest, silently (64 KiB and 1 MiB slices agree with the
 * one-shot hash; 2 MiB and 4 MiB slices each give another value). test/codec/hash.test.ts pins it.
 */
export const MAX_UPDATE_SLICE = 1024 * 1024;

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
      const x = live();
      for (let off = 0; off < data.byteLength; off += MAX_UPDATE_SLICE) x.update(data.subarray(off, off + MAX_UPDATE_SLICE));
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

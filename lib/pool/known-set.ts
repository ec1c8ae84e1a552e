/**
 * A compact, shareable set of chunk digests (layer L3): sorted 32-byte digests in a
 * SharedArrayBuffer, so every worker can test membership without a copy of the set: 32 bytes per
 * digest, no other overhead.
 */
import { DIGEST_SIZE } from '../codec/hash.js';

/** Builds a sorted, de-duplicated digest table in shared memory. */
export function buildKnownSet(digests: Iterable<Uint8Array>): SharedArrayBuffer {
  const list: Buffer[] = [];
  for (const d of digests) list.push(Buffer.from(d.buffer, d.byteOffset, d.byteLength));
  list.sort(Buffer.compare);
  const sab = new SharedArrayBuffer(list.length * DIGEST_SIZE);
  const out = new Uint8Array(sab);
  let n = 0;
  for (let i = 0; i < list.length; i++) {
    const d = list[i]!;
    if (n > 0 && Buffer.compare(d, Buffer.from(sab, (n - 1) * DIGEST_SIZE, DIGEST_SIZE)) === 0) continue;
    out.set(d, n * DIGEST_SIZE);
    n++;
  }
  return n * DIGEST_SIZE === sab.byteLength ? sab : copyPrefix(sab, n * DIGEST_SIZE);
}

function copyPrefix(sab: SharedArrayBuffer, len: number): SharedArrayBuffer {
  const out = new SharedArrayBuffer(len);
  new Uint8Array(out).set(new Uint8Array(sab, 0, len));
  return out;
}

/** Number of digests in a known set. */
export function knownSize(set: SharedArrayBuffer): number {
  return set.byteLength / DIGEST_SIZE;
}

/** Binary search for a digest in a known set. */
export function knownHas(set: SharedArrayBuffer, digest: Uint8Array): boolean {
  const table = Buffer.from(set);
  const d = Buffer.from(digest.buffer, digest.byteOffset, digest.byteLength);
  let lo = 0;
  let hi = set.byteLength / DIGEST_SIZE - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const c = table.compare(d, 0, DIGEST_SIZE, mid * DIGEST_SIZE, (mid + 1) * DIGEST_SIZE);
    if (c === 0) return true;
    if (c < 0) lo = mid + 1;
    else hi = mid - 1;
  }
  return false;
}

const ZEROS = Buffer.alloc(1 << 20);

/** True when every byte is zero (memcmp against a zero page, 1 MiB at a time). */
export function isAllZero(data: Uint8Array): boolean {
  const b = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  for (let off = 0; off < b.byteLength; off += ZEROS.byteLength) {
    const len = Math.min(ZEROS.byteLength, b.byteLength - off);
    if (b.compare(ZEROS, 0, len, off, off + len) !== 0) return false;
  }
  return true;
}

/**
 * The gear hash behind content-defined chunking (layer L1): the gear table, the cut masks and the
 * TypeScript reference of the boundary scan.
 *
 * Everything here is part of the on-disk format in effect: the same input must always cut at the
 * same places, or deduplication against older snapshots is lost. The native scan in
 * `native/src/cairn_native.c` implements exactly the same function and is tested against this one.
 *
 * **Gear table.** 256 `u32` values from splitmix32 seeded with {@link GEAR_SEED}: for `i = 0..255`,
 * `s = s + 0x9E3779B9`, then `z = s`, `z = (z ^ z >>> 16) * 0x85EBCA6B`,
 * `z = (z ^ z >>> 13) * 0xC2B2AE35`, `z ^= z >>> 16` (all mod 2^32), and `GEAR[i] = z`.
 *
 * **Hash.** Per byte `b`: `hash = (hash << 1) + GEAR[b]` mod 2^32, starting from 0 at each chunk
 * start. A byte's contribution is shifted out of the 32-bit word after 32 more bytes, so the hash at
 * chunk length `L` depends only on the last 32 bytes. Both scans therefore skip hashing the bytes at
 * chunk length `L <= min - 32`: this is an optimisation, not a change of the function.
 *
 * **Cut rule** (normalised chunking, level 2), with `L` the chunk length after adding a byte:
 * no cut while `L < min`; for `min <= L < avg` cut when `(hash & maskS) === 0`; for
 * `avg <= L < max` cut when `(hash & maskL) === 0`; always cut at `L === max`.
 *
 * **Masks** ({@link cdcMasks}): `maskS` has `log2(avg) + 2` one-bits (harder to hit, so fewer
 * small chunks) and `maskL` has `log2(avg) - 2` one-bits (easier, so fewer chunks near `max`), both
 * spread over the upper bits of the word by {@link spreadMask}. The high bits of a gear hash depend
 * on more input bytes than the low bits, which is why the masks use them.
 *
 * @module
 */

/** Seed of the gear table generator: the ASCII bytes `"CAIR"`. Frozen: changing it moves every cut. */
export const GEAR_SEED = 0x43414952;

/** The splitmix32 Weyl-sequence increment (the 32-bit golden ratio). */
const GOLDEN = 0x9e3779b9;

function makeGear(seed: number): Uint32Array {
  const table = new Uint32Array(256);
  let s = seed >>> 0;
  for (let i = 0; i < 256; i++) {
    s = (s + GOLDEN) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    table[i] = (z ^ (z >>> 16)) >>> 0;
  }
  return table;
}

const GEAR: Uint32Array = makeGear(GEAR_SEED);

/**
 * A copy of the 256-entry gear table (see the module notes for the generator).
 *
 * @returns a fresh `Uint32Array(256)`; changing it has no effect on chunking
 */
export function gearTable(): Uint32Array {
  return GEAR.slice();
}

/**
 * A 32-bit mask with `bits` one-bits spread over the upper part of the word.
 *
 * The bits are placed at positions `31 - floor(i * span / bits)` for `i = 0 .. bits-1`, where
 * `span = min(32, 2 * bits)`: up to 16 bits take every other position from bit 31 down; more
 * bits spread evenly over the whole word. Examples: 4 bits `0xAA000000`, 16 bits `0xAAAAAAAA`,
 * 20 bits `0xDADADADA`, 22 bits `0xEDB6EDB6` (pinned by the tests).
 *
 * @param bits - number of one-bits, 1 to 32
 * @returns the mask as an unsigned 32-bit number
 */
export function spreadMask(bits: number): number {
  if (!Number.isInteger(bits) || bits < 1 || bits > 32) throw new TypeError(`spreadMask: bits must be 1..32, got ${bits}`);
  const span = Math.min(32, 2 * bits);
  let mask = 0;
  for (let i = 0; i < bits; i++) mask |= 1 << (31 - Math.floor((i * span) / bits));
  return mask >>> 0;
}

/** The two cut masks of normalised chunking for one average size (see {@link cdcMasks}). */
export interface CdcMasks {
  /** Used for chunk lengths in `[min, avg)`: `log2(avg) + 2` one-bits. */
  readonly maskS: number;
  /** Used for chunk lengths in `[avg, max)`: `log2(avg) - 2` one-bits (at least 1). */
  readonly maskL: number;
}

/**
 * The masks of normalised chunking (level 2) for an average chunk size.
 *
 * @param avg - the target average chunk size, a power of two from 64 to 16 MiB
 * @returns `maskS = spreadMask(log2(avg) + 2)`, `maskL = spreadMask(log2(avg) - 2)`
 */
export function cdcMasks(avg: number): CdcMasks {
  const bits = Math.log2(avg);
  if (!Number.isInteger(bits) || bits < 6 || bits > 24) throw new TypeError(`cdcMasks: avg must be a power of two from 64 to 16 MiB, got ${avg}`);
  return { maskS: spreadMask(bits + 2), maskL: spreadMask(bits - 2) };
}

/**
 * The TypeScript reference of the boundary scan, identical to the native `cdcScan`.
 *
 * Feeds `data` into the current chunk. `state` is `[chunkLen, hash]` and is updated in place;
 * `params` is `[min, avg, max, maskS, maskL]` (the masks from {@link cdcMasks}). The caller
 * guarantees `1 <= min <= avg <= max` and `chunkLen < max`.
 *
 * @param data - the next bytes of the stream
 * @param state - `[chunkLen, hash]`, in/out
 * @param params - `[min, avg, max, maskS, maskL]`
 * @returns the number of bytes of `data` that end the current chunk (1 to `data.length`), after
 *   which `state` is `[0, 0]`; or -1 when the chunk continues past the end of `data`
 */
export function jsCdcScan(data: Uint8Array, state: Uint32Array, params: Uint32Array): number {
  const g = GEAR;
  const n = data.length;
  const min = params[0] ?? 0;
  const avg = params[1] ?? 0;
  const max = params[2] ?? 0;
  const ms = params[3] ?? 0;
  const ml = params[4] ?? 0;
  let len = state[0] ?? 0;
  let h = state[1] ?? 0;
  let i = 0;
  let end: number;

  const skipEnd = min > 32 ? min - 32 : 0;
  if (len < skipEnd) {
    i = Math.min(skipEnd - len, n);
    len += i;
  }
  if (len + 1 < min) {
    end = i + Math.min(min - 1 - len, n - i);
    len += end - i;
    for (; i < end; i++) h = ((h << 1) + g[data[i]!]!) | 0;
  }
  if (len + 1 < avg) {
    end = i + Math.min(avg - 1 - len, n - i);
    len += end - i;
    for (; i < end; i++) {
      h = ((h << 1) + g[data[i]!]!) | 0;
      if ((h & ms) === 0) return cut(state, i + 1);
    }
  }
  if (len + 1 < max) {
    end = i + Math.min(max - 1 - len, n - i);
    len += end - i;
    for (; i < end; i++) {
      h = ((h << 1) + g[data[i]!]!) | 0;
      if ((h & ml) === 0) return cut(state, i + 1);
    }
  }
  if (i < n) return cut(state, i + 1);
  state[0] = len;
  state[1] = h;
  return -1;
}

function cut(state: Uint32Array, at: number): number {
  state[0] = 0;
  state[1] = 0;
  return at;
}

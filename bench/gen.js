/**
 * Seeded test data for the benchmark: a disk-image-like file and the 1 % block rewrites.
 *
 * Layout, per 64 MiB region: ~50 % random bytes, ~25 % compressible text, ~25 % zeros, in that
 * order, with the boundaries moved by a seeded jitter (4 KiB aligned, up to ±1 MiB) so chunk
 * boundaries do not always coincide with content boundaries. Every region has its own content (no
 * region repeats another), so deduplication inside one image only finds the zero chunks.
 *
 * - random: AES-256-CTR keystream, the key derived from the seed (seeded, ~GB/s with AES-NI);
 * - text: pseudo log lines (timestamp, level, component, key=value pairs, a few words of
 *   pseudo-English from a fixed word list) driven by xorshift128+; LZ4 keeps ~35-45 % of it;
 * - zeros: holes in the file (the file is written sparse where a region is zero).
 *
 * Everything is a pure function of (seed, size): the same arguments give the same bytes.
 */
import { createCipheriv, createHash } from 'node:crypto';
import { openSync, writeSync, closeSync, ftruncateSync, readSync } from 'node:fs';

export const REGION = 64 * 1024 * 1024;
export const BLOCK = 4096;

/** xorshift128+ over two 64-bit lanes held in BigInt-free 32-bit halves (fast, seeded). */
export class Rng {
  constructor(seed) {
    const h = createHash('sha256').update(`cairn-bench-rng:${seed}`).digest();
    this.s = new Uint32Array(4);
    for (let i = 0; i < 4; i++) this.s[i] = h.readUInt32LE(i * 4) || 0x9e3779b9;
  }
  /** A uint32 (xorshift128, Marsaglia). */
  u32() {
    const s = this.s;
    let t = s[3];
    const x = s[0];
    s[3] = s[2];
    s[2] = s[1];
    s[1] = x;
    t ^= t << 11;
    t ^= t >>> 8;
    s[0] = t ^ x ^ (x >>> 19);
    return s[0] >>> 0;
  }
  /** An integer in [0, n). */
  below(n) {
    return n <= 0x1_0000_0000 ? Math.floor((this.u32() / 0x1_0000_0000) * n) : Math.floor(((this.u32() * 0x1_0000_0000 + this.u32()) / 2 ** 64) * n);
  }
}

/** A seeded keystream: `fill(buf)` overwrites `buf` with the next pseudo-random bytes. */
export class Keystream {
  constructor(seed, label) {
    const key = createHash('sha256').update(`cairn-bench-aes:${seed}:${label}`).digest();
    const iv = createHash('sha256').update(`cairn-bench-iv:${seed}:${label}`).digest().subarray(0, 16);
    this.cipher = createCipheriv('aes-256-ctr', key, iv);
    this.zeros = Buffer.alloc(1 << 20);
  }
  fill(buf) {
    let off = 0;
    while (off < buf.length) {
      const n = Math.min(this.zeros.length, buf.length - off);
      const out = this.cipher.update(n === this.zeros.length ? this.zeros : this.zeros.subarray(0, n));
      out.copy(buf, off);
      off += out.length;
    }
    return buf;
  }
}

// A fixed vocabulary: common English words plus some domain words. Zipf-like choice below.
const WORDS = (
  'the of and to a in is it you that he was for on are with as his they be at one have this from or had by ' +
  'hot word but what some we can out other were all there when up use your how said an each she which do ' +
  'their time if will way about many then them write would like so these her long make thing see him two ' +
  'has look more day could go come did number sound no most people my over know water than call first who ' +
  'may down side been now find any new work part take get place made live where after back little only round ' +
  'man year came show every good me give our under name very through just form sentence great think say help ' +
  'low line differ turn cause much mean before move right boy old too same tell does set three want air well ' +
  'also play small end put home read hand port large spell add even land here must big high such follow act ' +
  'why ask men change went light kind off need house picture try us again animal point mother world near ' +
  'build self earth father head stand own page should country found answer school grow study still learn ' +
  'plant cover food sun four between state keep eye never last let thought city tree cross farm hard start ' +
  'might story saw far sea draw left late run while press close night real life few north open seem together ' +
  'request response client server session token cache disk volume snapshot backup restore chunk index ' +
  'manifest worker thread queue retry timeout connection socket handler upstream downstream replica shard ' +
  'partition leader follower commit rollback transaction lock unlock flush sync write read mount device'
).split(' ');
const LEVELS = ['INFO ', 'INFO ', 'INFO ', 'INFO ', 'DEBUG', 'DEBUG', 'WARN ', 'ERROR'];
const COMPONENTS = ['http', 'db.pool', 'scheduler', 'auth', 'storage', 'cache', 'api.v1', 'api.v2', 'replication', 'gc', 'mailer', 'billing'];
const KEYS = ['user', 'req', 'path', 'status', 'latency_ms', 'bytes', 'host', 'pid', 'attempt', 'vm', 'disk'];
const PATHS = ['/api/v1/items', '/api/v1/users', '/api/v2/orders', '/healthz', '/static/app.js', '/login', '/api/v1/search', '/metrics'];
const USERS = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi', 'ivan', 'judy', 'mallory', 'oscar', 'peggy', 'trent', 'victor', 'walter'];

const enc = (s) => Buffer.from(s, 'latin1');
const W = WORDS.map(enc);
const LV = LEVELS.map(enc);
const CO = COMPONENTS.map(enc);
const KE = KEYS.map((k) => enc(` ${k}=`));
const PA = PATHS.map(enc);
const US = USERS.map(enc);
const HEX = enc('0123456789abcdef');
// Message templates (as in real logs: a fixed text with variable fields), made once from a fixed seed.
const MSG = (() => {
  const r = new Rng('templates');
  const out = [];
  for (let i = 0; i < 400; i++) {
    const n = 4 + r.below(9);
    const words = [];
    for (let k = 0; k < n; k++) words.push(WORDS[r.below(WORDS.length)]);
    out.push(enc(words.join(' ')));
  }
  return out;
})();

/** Fills `buf` with pseudo log lines. `state.ms` is advanced so timestamps increase across calls. */
export function fillText(buf, rng, state) {
  let p = 0;
  const end = buf.length;
  const put = (b) => {
    const n = Math.min(b.length, end - p);
    for (let i = 0; i < n; i++) buf[p + i] = b[i];
    p += n;
  };
  const putByte = (c) => {
    if (p < end) buf[p++] = c;
  };
  const putNum = (n) => {
    if (n === 0) return putByte(48);
    const start = p;
    while (n > 0 && p < end) {
      buf[p++] = 48 + (n % 10);
      n = Math.floor(n / 10);
    }
    for (let i = start, j = p - 1; i < j; i++, j--) {
      const t = buf[i];
      buf[i] = buf[j];
      buf[j] = t;
    }
  };
  const pad2 = (n) => {
    putByte(48 + Math.floor(n / 10));
    putByte(48 + (n % 10));
  };
  const zipf = (n) => {
    // Skewed choice: squares a uniform variate, so low indexes (common words) come up more often.
    const u = rng.u32() / 0x1_0000_0000;
    return Math.floor(u * u * u * n);
  };
  while (p < end) {
    state.ms += 1 + rng.below(40);
    const t = state.ms;
    const sec = Math.floor(t / 1000);
    if (sec !== state.sec) {
      // The "YYYY-MM-DDTHH:MM:SS." prefix changes once a second: build it then.
      state.sec = sec;
      state.prefix = enc(new Date(sec * 1000).toISOString().slice(0, 20));
    }
    put(state.prefix);
    const msec = t % 1000;
    putByte(48 + Math.floor(msec / 100));
    pad2(msec % 100);
    putByte(90);
    putByte(32);
    put(LV[rng.below(LV.length)]);
    putByte(32);
    putByte(91);
    put(CO[zipf(CO.length)]);
    putByte(93);
    const kv = 1 + rng.below(4);
    for (let k = 0; k < kv; k++) {
      const key = rng.below(KE.length);
      put(KE[key]);
      switch (key) {
        case 0:
          put(US[zipf(US.length)]);
          break;
        case 1:
          for (let h = 0; h < 6; h++) putByte(HEX[rng.u32() & 15]);
          break;
        case 2:
          put(PA[zipf(PA.length)]);
          putByte(47);
          putNum(rng.below(5000));
          break;
        case 3:
          putNum([200, 200, 200, 201, 204, 304, 404, 500][rng.below(8)]);
          break;
        default:
          putNum(zipf(10000));
      }
    }
    putByte(32);
    put(MSG[zipf(MSG.length)]);
    const nw = rng.below(3);
    for (let k = 0; k < nw; k++) {
      putByte(32);
      put(W[rng.below(W.length)]);
    }
    putByte(10);
  }
  return buf;
}

/** The layout of region `r` of an image: [start, end) of its random and text parts, the rest zero. */
function regionLayout(rng, start, len) {
  const jitter = () => (rng.below(513) - 256) * BLOCK; // ±1 MiB, 4 KiB aligned
  if (len < REGION) {
    const a = Math.floor((len * 0.5) / BLOCK) * BLOCK;
    const b = Math.floor((len * 0.75) / BLOCK) * BLOCK;
    return { random: [start, start + a], text: [start + a, start + b] };
  }
  const a = REGION / 2 + jitter();
  const b = (REGION * 3) / 4 + jitter();
  return { random: [start, start + a], text: [start + a, start + b] };
}

/**
 * Writes the image to `path` (created or truncated). Zero parts are left as holes.
 * @returns counts of bytes by kind
 */
export function generateImage(path, size, seed) {
  const rng = new Rng(`layout:${seed}`);
  const textRng = new Rng(`text:${seed}`);
  const ks = new Keystream(seed, 'image');
  const textState = { ms: Date.UTC(2026, 0, 1) };
  const piece = Buffer.allocUnsafe(4 * 1024 * 1024);
  const fd = openSync(path, 'w');
  const counts = { random: 0, text: 0, zero: 0 };
  try {
    ftruncateSync(fd, size);
    for (let start = 0; start < size; start += REGION) {
      const len = Math.min(REGION, size - start);
      const { random, text } = regionLayout(rng, start, len);
      for (const [kind, [s, e]] of [
        ['random', random],
        ['text', text],
      ]) {
        for (let off = s; off < e; off += piece.length) {
          const n = Math.min(piece.length, e - off);
          const b = piece.subarray(0, n);
          if (kind === 'random') ks.fill(b);
          else fillText(b, textRng, textState);
          let w = 0;
          while (w < n) w += writeSync(fd, b, w, n - w, off + w);
        }
        counts[kind] += e - s;
      }
      counts.zero += start + len - text[1];
    }
  } finally {
    closeSync(fd);
  }
  return counts;
}

/**
 * Rewrites `fraction` of the image's 4 KiB blocks, chosen at random positions (seeded, without
 * repetition), with fresh random bytes.
 * @returns the changed ranges `[offset, 4096]` in ascending order, and the blocks' old contents
 *   (for {@link undoRewrite})
 */
export function rewriteBlocks(path, size, seed, label, fraction = 0.01) {
  const blocks = Math.floor(size / BLOCK);
  const n = Math.max(1, Math.round(blocks * fraction));
  const rng = new Rng(`rewrite:${seed}:${label}`);
  const ks = new Keystream(seed, `rewrite:${label}`);
  const chosen = new Set();
  while (chosen.size < n) chosen.add(rng.below(blocks));
  const sorted = [...chosen].sort((a, b) => a - b);
  const fd = openSync(path, 'r+');
  const old = Buffer.allocUnsafe(n * BLOCK);
  const fresh = ks.fill(Buffer.allocUnsafe(n * BLOCK));
  try {
    sorted.forEach((blk, i) => {
      readSync(fd, old, i * BLOCK, BLOCK, blk * BLOCK);
      writeSync(fd, fresh, i * BLOCK, BLOCK, blk * BLOCK);
    });
  } finally {
    closeSync(fd);
  }
  return { ranges: sorted.map((blk) => [blk * BLOCK, BLOCK]), old };
}

/** Puts back the blocks {@link rewriteBlocks} changed. */
export function undoRewrite(path, { ranges, old }) {
  const fd = openSync(path, 'r+');
  try {
    ranges.forEach(([off], i) => writeSync(fd, old, i * BLOCK, BLOCK, off));
  } finally {
    closeSync(fd);
  }
}

/**
 * File contents for generated trees: seeded random bytes and pseudo log text, each a stream (two
 * instances with the same seed and label give the same bytes in the same order of calls).
 */
export class Content {
  constructor(seed, label) {
    this.keys = new Keystream(seed, `tree:${label}`);
    this.rng = new Rng(`tree-text:${seed}:${label}`);
    this.state = { ms: Date.UTC(2026, 0, 1) };
    this.text = Buffer.allocUnsafe(4 * 1024 * 1024);
    this.textPos = this.text.length;
  }
  random(n) {
    return this.keys.fill(Buffer.allocUnsafe(n));
  }
  textBytes(n) {
    const out = Buffer.allocUnsafe(n);
    let o = 0;
    while (o < n) {
      if (this.textPos === this.text.length) {
        fillText(this.text, this.rng, this.state);
        this.textPos = 0;
      }
      const k = Math.min(n - o, this.text.length - this.textPos);
      this.text.copy(out, o, this.textPos, this.textPos + k);
      this.textPos += k;
      o += k;
    }
    return out;
  }
}

/** A log-normal size: median × e^(σ·z), z standard normal (Box-Muller), clamped to [0, max]. */
export function lognormal(rng, median, sigma, max) {
  const u1 = (rng.u32() + 1) / 0x1_0000_0001;
  const u2 = rng.u32() / 0x1_0000_0000;
  const z = Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  return Math.min(max, Math.round(median * Math.exp(sigma * z)));
}

/** Writes `buf` to `file` (created or truncated), looping over short writes. */
export function writeFile(file, buf) {
  const fd = openSync(file, 'w');
  try {
    let o = 0;
    while (o < buf.length) o += writeSync(fd, buf, o, buf.length - o);
  } finally {
    closeSync(fd);
  }
}

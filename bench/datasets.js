/**
 * The data sets of the bench suite (bench/suite.js). Each lives in a directory `data/` that holds
 * either one image file `disk.img` or a directory tree, and goes through versions 1, 2, 3 in place:
 * `await ds.advance(v)` turns the directory into version v and describes it.
 *
 * - `vm-ext4`: a real ext4 filesystem image (`mkfs.ext4 -d`) with an OS-like mix of files (many small
 *   text and binary files, a database file of 8 KiB pages, a log, binaries, media); versions 2 and 3
 *   are made by mounting the image on a loop device (root) and changing it the way a running VM
 *   does: database pages rewritten in place, the log appended to, packages replaced (new file, rename
 *   over the old), files added and deleted. The kernel's ext4 writes the metadata and the journal.
 * - `random-image`: bench/gen.js's image (half random, a quarter text, a quarter zeros); version 2
 *   has 1 % of its 4 KiB blocks rewritten at random places; version 3 another 0.5 % and 64 KiB
 *   inserted a third of the way in (every later byte moves: fixed-size chunks lose, content-defined
 *   chunks do not).
 * - `source-tree`: a source-repository-like tree (modules of directories, mostly text files of
 *   log-normal sizes, some binaries, symlinks, a growing pack file); versions 2 and 3 are like
 *   commits: 2 % of the files edited (text: a part replaced by text of another length; binaries:
 *   rewritten), 1 % added, 0.5 % deleted, one module renamed, the pack appended to.
 *
 * Every version of an image is described by its SHA-256 and the SHA-1 of each 64 KiB block, from
 * which the changed-block map of the next version is computed (what a hypervisor's dirty bitmap of
 * 64 KiB granularity would give). Trees are described by a walk (bench/walk.js) for the comparison
 * of restores. Everything is a function of (seed, size), except the ext4 timestamps the kernel writes.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, ftruncateSync, mkdirSync, openSync, readFileSync, readSync, renameSync, rmSync, statSync, symlinkSync, unlinkSync, writeSync } from 'node:fs';
import path from 'node:path';
import { BLOCK, Content, Rng, generateImage, lognormal, rewriteBlocks, writeFile } from './gen.js';
import { walk } from './walk.js';

const KiB = 1024;
const MiB = 1024 * KiB;
/** Granularity of the computed changed-block maps. */
export const MAP_GRANULARITY = 64 * KiB;

/** SHA-256 of a file and the SHA-1 of each MAP_GRANULARITY block, in one read. */
export function scanImage(file) {
  const whole = createHash('sha256');
  const size = statSync(file).size;
  const blocks = Buffer.alloc(Math.ceil(size / MAP_GRANULARITY) * 20);
  const buf = Buffer.allocUnsafe(8 * MiB);
  const fd = openSync(file, 'r');
  try {
    let pos = 0;
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, pos);
      if (n === 0) break;
      whole.update(buf.subarray(0, n));
      for (let o = 0; o < n; o += MAP_GRANULARITY) {
        const b = (pos + o) / MAP_GRANULARITY;
        createHash('sha1')
          .update(buf.subarray(o, Math.min(n, o + MAP_GRANULARITY)))
          .digest()
          .copy(blocks, b * 20);
      }
      pos += n;
    }
  } finally {
    closeSync(fd);
  }
  return { size, sha256: whole.digest('hex'), blocks };
}

/** The changed byte ranges between two scans of the same size: `[offset, length]`, merged. */
export function changedRanges(prev, next) {
  if (prev.size !== next.size) return null;
  const ranges = [];
  const n = next.blocks.length / 20;
  for (let b = 0; b < n; b++) {
    if (prev.blocks.compare(next.blocks, b * 20, b * 20 + 20, b * 20, b * 20 + 20) === 0) continue;
    const off = b * MAP_GRANULARITY;
    const len = Math.min(MAP_GRANULARITY, next.size - off);
    const last = ranges[ranges.length - 1];
    if (last !== undefined && last[0] + last[1] === off) last[1] += len;
    else ranges.push([off, len]);
  }
  return ranges;
}

/** Inserts `n` seeded bytes at `at`, moving the rest (the file grows). */
function insertBytes(file, at, n, seed) {
  const data = readFileSync(file);
  const ins = new Content(seed, 'insert').random(n);
  const tmp = `${file}.tmp`;
  const fd = openSync(tmp, 'w');
  try {
    writeSync(fd, data, 0, at);
    writeSync(fd, ins);
    writeSync(fd, data, at, data.length - at);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
}

function run(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

/** Rewrites `len` bytes of `file` at `off` with `buf` (in place, size kept). */
function overwrite(file, off, buf) {
  const fd = openSync(file, 'r+');
  try {
    writeSync(fd, buf, 0, buf.length, off);
  } finally {
    closeSync(fd);
  }
}

function appendTo(file, buf) {
  const fd = openSync(file, 'a');
  try {
    writeSync(fd, buf);
  } finally {
    closeSync(fd);
  }
}

/** A file of `bytes` written in 1 MiB pieces of `kind` ('text' or 'random', or 'pages': alternating 8 KiB pages). */
function bigFile(file, bytes, content, kind) {
  const fd = openSync(file, 'w');
  try {
    for (let o = 0; o < bytes; o += MiB) {
      const n = Math.min(MiB, bytes - o);
      if (kind === 'pages') {
        const piece = Buffer.allocUnsafe(n);
        for (let p = 0; p < n; p += 8 * KiB) {
          const k = Math.min(8 * KiB, n - p);
          ((p / (8 * KiB)) % 2 === 0 ? content.textBytes(k) : content.random(k)).copy(piece, p);
        }
        writeSync(fd, piece);
      } else writeSync(fd, kind === 'text' ? content.textBytes(n) : content.random(n));
    }
  } finally {
    closeSync(fd);
  }
}

/**
 * Small files in `root/<a>/<b>/`: log-normal sizes around `median`, `textShare` of them text.
 * @returns the relative paths written and their total bytes
 */
function smallFiles(root, bytes, { rng, content, median, sigma, maxSize, textShare, prefix = 'f', perDir = 40 }) {
  const files = [];
  let total = 0;
  let i = 0;
  while (total < bytes) {
    const d = path.join(`m${Math.floor(i / perDir / 25)}`, `s${Math.floor(i / perDir) % 25}`);
    if (i % perDir === 0) mkdirSync(path.join(root, d), { recursive: true });
    const size = lognormal(rng, median, sigma, maxSize);
    const text = rng.u32() / 0x1_0000_0000 < textShare;
    const rel = path.join(d, `${prefix}${i}.${text ? 'txt' : 'bin'}`);
    writeFile(path.join(root, rel), text ? content.textBytes(size) : content.random(size));
    files.push(rel);
    total += size;
    i++;
  }
  return { files, bytes: total };
}

/** Picks `k` distinct indexes below `n` (seeded partial shuffle). */
function pick(rng, n, k) {
  const idx = Array.from({ length: n }, (_, i) => i);
  const out = [];
  for (let i = 0; i < Math.min(k, n); i++) {
    const j = i + rng.below(n - i);
    [idx[i], idx[j]] = [idx[j], idx[i]];
    out.push(idx[i]);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

/** The image data sets share the description of a version: size, hashes, and the map from the previous. */
class ImageDataset {
  constructor(name, dir, size, seed) {
    this.name = name;
    this.kind = 'image';
    this.dir = path.join(dir, 'data');
    this.file = path.join(this.dir, 'disk.img');
    this.size = size;
    this.seed = seed;
    this.prev = null;
    mkdirSync(this.dir, { recursive: true });
  }
  describeVersion(v, note, { mapAllowed = true } = {}) {
    const scan = scanImage(this.file);
    const ranges = this.prev === null ? null : changedRanges(this.prev, scan);
    this.prev = scan;
    return {
      version: v,
      note,
      logicalBytes: scan.size,
      sha256: scan.sha256,
      changed: mapAllowed ? ranges : null,
      changedBytes: ranges === null ? null : ranges.reduce((s, r) => s + r[1], 0),
    };
  }
}

class VmExt4 extends ImageDataset {
  constructor(dir, size, seed) {
    super('vm-ext4', dir, size, seed);
    this.description = `a ${fmtSize(size)} ext4 filesystem image (mkfs.ext4 -d) about half full: small files (70 % text), a database of 8 KiB pages, a log, binaries, media; versions 2 and 3 changed through a loop mount (database pages rewritten in place, log appended, 2 % of the small files replaced, 0.5 % deleted, 0.5 % added, a new media file)`;
    this.staging = path.join(dir, 'staging');
    this.mnt = path.join(dir, 'ext4-mnt');
    this.mounted = false;
  }
  /** Why this data set cannot run here, or null. */
  static unavailable() {
    if (process.getuid?.() !== 0) return 'needs root (the versions are made through a loop mount)';
    for (const c of ['mkfs.ext4', 'mount', 'umount']) if (spawnSync('sh', ['-c', `command -v ${c}`]).status !== 0) return `${c} is not installed`;
    return null;
  }
  async advance(v) {
    const S = this.size;
    if (v === 1) {
      const rng = new Rng(`ext4:${this.seed}`);
      const content = new Content(this.seed, 'ext4');
      const st = this.staging;
      mkdirSync(path.join(st, 'usr'), { recursive: true });
      const usr = smallFiles(path.join(st, 'usr'), Math.round(S * 0.15), { rng, content, median: 4 * KiB, sigma: 1.3, maxSize: 4 * MiB, textShare: 0.7 });
      mkdirSync(path.join(st, 'var/lib/db'), { recursive: true });
      mkdirSync(path.join(st, 'var/log'), { recursive: true });
      mkdirSync(path.join(st, 'opt/bin'), { recursive: true });
      mkdirSync(path.join(st, 'home/user/media'), { recursive: true });
      bigFile(path.join(st, 'var/lib/db/data.db'), align(S * 0.12, 8 * KiB), content, 'pages');
      bigFile(path.join(st, 'var/log/app.log'), align(S * 0.05, 4 * KiB), content, 'text');
      for (let i = 0; i < 4; i++) bigFile(path.join(st, `opt/bin/tool${i}`), align(S * 0.02, 4 * KiB), content, 'random');
      for (let i = 0; i < 5; i++) bigFile(path.join(st, `home/user/media/clip${i}.mp4`), align(S * 0.02, 4 * KiB), content, 'random');
      this.usrFiles = usr.files;
      const fd = openSync(this.file, 'w');
      ftruncateSync(fd, S);
      closeSync(fd);
      const uuid = '6a1f0c2e-5b7d-4c8e-9f10-2a3b4c5d6e7f';
      run('mkfs.ext4', ['-q', '-F', '-b', '4096', '-U', uuid, '-E', `hash_seed=${uuid},lazy_itable_init=0,lazy_journal_init=0,nodiscard`, '-d', st, this.file]);
      rmSync(st, { recursive: true, force: true });
      return this.describeVersion(1, 'mkfs.ext4 -d of the generated files');
    }
    const rng = new Rng(`ext4-v${v}:${this.seed}`);
    const content = new Content(this.seed, `ext4-v${v}`);
    mkdirSync(this.mnt, { recursive: true });
    run('mount', ['-o', 'loop', this.file, this.mnt]);
    this.mounted = true;
    try {
      const m = this.mnt;
      const db = path.join(m, 'var/lib/db/data.db');
      const pages = statSync(db).size / (8 * KiB);
      for (const p of pick(rng, pages, Math.round(pages * 0.02))) overwrite(db, p * 8 * KiB, p % 2 === 0 ? content.textBytes(8 * KiB) : content.random(8 * KiB));
      appendTo(path.join(m, 'var/log/app.log'), content.textBytes(align(S * 0.005, 1)));
      const usr = path.join(m, 'usr');
      const files = this.usrFiles;
      const chosen = pick(rng, files.length, Math.round(files.length * 0.025));
      const nReplace = Math.round(files.length * 0.02);
      for (const i of chosen.slice(0, nReplace)) {
        const f = path.join(usr, files[i]);
        const size = lognormal(rng, 4 * KiB, 1.3, 4 * MiB);
        writeFile(`${f}.dpkg-new`, f.endsWith('.txt') ? content.textBytes(size) : content.random(size));
        renameSync(`${f}.dpkg-new`, f);
      }
      const deleted = new Set(chosen.slice(nReplace));
      for (const i of deleted) unlinkSync(path.join(usr, files[i]));
      const added = smallFiles(path.join(usr, `pkg-v${v}`), Math.round(S * 0.0075), { rng, content, median: 4 * KiB, sigma: 1.3, maxSize: 4 * MiB, textShare: 0.7 });
      this.usrFiles = [...files.filter((_, i) => !deleted.has(i)), ...added.files.map((f) => path.join(`pkg-v${v}`, f))];
      bigFile(path.join(m, `home/user/media/new-v${v}.mp4`), align(S * 0.01, 4 * KiB), content, 'random');
    } finally {
      this.unmount();
    }
    return this.describeVersion(
      v,
      v === 2 ? 'changed through a loop mount; Cairn image backs it up with the changed-block map' : 'changed again; Cairn image backs it up without a map (reads every block)',
      { mapAllowed: v === 2 },
    );
  }
  unmount() {
    if (!this.mounted) return;
    spawnSync('umount', [this.mnt]);
    this.mounted = false;
  }
  cleanup() {
    this.unmount();
  }
}

class RandomImage extends ImageDataset {
  constructor(dir, size, seed) {
    super('random-image', dir, size, seed);
    this.description = `a ${fmtSize(size)} generated image (bench/gen.js: half random, a quarter log-like text, a quarter zeros); version 2: 1 % of the 4 KiB blocks rewritten at random places; version 3: another 0.5 % and 64 KiB inserted a third of the way in`;
  }
  static unavailable() {
    return null;
  }
  async advance(v) {
    if (v === 1) {
      generateImage(this.file, this.size, this.seed);
      return this.describeVersion(1, 'generated');
    }
    if (v === 2) {
      rewriteBlocks(this.file, this.size, this.seed, 'suite-v2', 0.01);
      return this.describeVersion(2, '1 % of the blocks rewritten; Cairn image backs it up with the changed-block map');
    }
    rewriteBlocks(this.file, this.size, this.seed, 'suite-v3', 0.005);
    insertBytes(this.file, Math.floor(this.size / 3 / BLOCK) * BLOCK + 123, 64 * KiB, this.seed);
    return this.describeVersion(3, '0.5 % rewritten and 64 KiB inserted (size changed: no map possible; fixed chunks after the insertion all differ)', { mapAllowed: false });
  }
  cleanup() {}
}

class SourceTree {
  constructor(dir, size, seed) {
    this.name = 'source-tree';
    this.kind = 'tree';
    this.dir = path.join(dir, 'data');
    this.bytes = Math.round(size / 8);
    this.seed = seed;
    this.description = `a source-repository-like tree of about ${fmtSize(this.bytes)} (modules of directories; log-normal file sizes around 3 KiB, 85 % text; symlinks; a pack file); versions 2 and 3 like commits: 2 % of the files edited, 1 % added, 0.5 % deleted, one module renamed, the pack appended to`;
    mkdirSync(this.dir, { recursive: true });
  }
  static unavailable() {
    return null;
  }
  async advance(v) {
    const d = this.dir;
    const rng = new Rng(`src-v${v}:${this.seed}`);
    const content = new Content(this.seed, `src-v${v}`);
    const opts = { rng, content, median: 3 * KiB, sigma: 1.2, maxSize: 2 * MiB, textShare: 0.85, perDir: 30 };
    let note;
    if (v === 1) {
      const packBytes = align(this.bytes * 0.1, 4 * KiB);
      smallFiles(path.join(d, 'src'), this.bytes - packBytes, opts);
      mkdirSync(path.join(d, '.git/objects/pack'), { recursive: true });
      bigFile(path.join(d, '.git/objects/pack/pack-1.pack'), packBytes, content, 'random');
      for (let i = 0; i < 20; i++) symlinkSync(`../src/m${i % 3}`, path.join(d, 'src', `link${i}`));
      note = 'generated';
    } else {
      const files = walk(d).regular.filter((f) => f.startsWith('src/'));
      const n = files.length;
      const chosen = pick(rng, n, Math.round(n * 0.025));
      const nEdit = Math.round(n * 0.02);
      for (const i of chosen.slice(0, nEdit)) {
        const f = path.join(d, files[i]);
        if (f.endsWith('.txt')) {
          // Replace a part by text of another length: what follows moves.
          const old = readFileSync(f);
          const at = rng.below(old.length + 1);
          const cut = Math.min(old.length - at, rng.below(512));
          writeFile(f, Buffer.concat([old.subarray(0, at), content.textBytes(rng.below(1024)), old.subarray(at + cut)]));
        } else writeFile(f, content.random(lognormal(rng, 3 * KiB, 1.2, 2 * MiB)));
      }
      for (const i of chosen.slice(nEdit)) unlinkSync(path.join(d, files[i]));
      smallFiles(path.join(d, 'src', `new-v${v}`), Math.round(this.bytes * 0.01), { ...opts, prefix: `n${v}-` });
      const mod = path.join(d, 'src', `m${v}`);
      if (existsSync(mod)) renameSync(mod, `${mod}-renamed`);
      appendTo(path.join(d, '.git/objects/pack/pack-1.pack'), content.random(align(this.bytes * 0.01, 4 * KiB)));
      note = `commit ${v}: ${nEdit} files edited, ${chosen.length - nEdit} deleted, a new module, m${v} renamed, pack appended`;
    }
    const w = walk(d, { records: true, hash: true });
    return { version: v, note, logicalBytes: w.bytes, files: w.files, records: w };
  }
  cleanup() {}
}

function align(x, a) {
  return Math.max(a, Math.round(x / a) * a);
}

export function fmtSize(n) {
  return n >= 1024 ** 3 ? `${+(n / 1024 ** 3).toFixed(2)} GiB` : `${+(n / MiB).toFixed(1)} MiB`;
}

/** The data set classes by name, in the order the suite runs them. */
export const DATASETS = { 'vm-ext4': VmExt4, 'random-image': RandomImage, 'source-tree': SourceTree };

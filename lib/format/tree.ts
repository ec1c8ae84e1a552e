/**
 * Tree archive metadata stream (layer L1): the byte layout of directory records, the root entry
 * record, the stream header and the trailer. Pure code, no I/O. See `lib/format/FORMAT.md` §7.
 *
 * A tree archive is two content-defined streams: the payload stream (file contents, concatenated) and
 * the metadata stream encoded here:
 *
 * ```text
 * stream header (16) · directory records (post-order) · root entry record · trailer (48)
 * ```
 *
 * Encoding is deterministic: the same entries (in any input order) give the same bytes, so an
 * unchanged directory yields an unchanged record and deduplicates. Every decode problem is
 * `ERR_TREE_CORRUPT` (a newer stream version is `ERR_FORMAT_VERSION`); every bad encoder input is
 * `ERR_INVALID_ARGUMENT`.
 */
import { CairnError, type ErrorDetails } from '../errors.js';
import { crc32 } from '../codec/hash.js';
import { hasMagic, TREE_DIR_MAGIC, TREE_ROOT_MAGIC, TREE_STREAM_MAGIC, TREE_TRAILER_MAGIC, TREE_VERSION } from './magic.js';

/**
 * The kind of a tree entry.
 * @category Tree archives
 */
export type TreeEntryKind = 'file' | 'dir' | 'symlink' | 'hardlink' | 'chardev' | 'blockdev' | 'fifo' | 'socket';

/**
 * One entry of a directory (or the root directory's own metadata).
 * @category Tree archives
 */
export interface TreeEntry {
  /** Raw name bytes: 1–1024 bytes, no `/`, no NUL, not `.` or `..` (empty only for the root entry). */
  readonly name: Uint8Array;
  /** What the entry is. */
  readonly kind: TreeEntryKind;
  /** Permission bits including setuid, setgid and sticky (≤ 0o7777); no file-type bits. */
  readonly mode: number;
  /** Owner user id, 0 … 2^32 − 1. */
  readonly uid: number;
  /** Owner group id, 0 … 2^32 − 1. */
  readonly gid: number;
  /** Modification time in nanoseconds since the epoch, may be negative (seconds within ±2^52). */
  readonly mtimeNs: bigint;
  /** File size in bytes (files; 0 for every other kind). */
  readonly size: number;
  /** Files: offset of the contents relative to the directory's payload base; 0 for every other kind. */
  readonly payloadOffset: number;
  /** Symlink target, or the hardlink's archive-relative path (`/`-separated, no leading `/`). */
  readonly target?: Uint8Array;
  /** Device major number (chardev/blockdev only), 0 … 2^32 − 1. */
  readonly rdevMajor?: number;
  /** Device minor number (chardev/blockdev only), 0 … 2^32 − 1. */
  readonly rdevMinor?: number;
  /** Extended attributes `[name, value]`; decoded entries carry them sorted by name, and omit the property when there are none. */
  readonly xattrs?: readonly (readonly [name: Uint8Array, value: Uint8Array])[];
  /** Directories only: absolute positions of the child's directory record and of its payload base. */
  readonly child?: TreeChildRef;
}

/**
 * Where a directory's own record and its files' payload base are.
 * @category Tree archives
 */
export interface TreeChildRef {
  /** Offset of the directory's record in the metadata stream. */
  readonly metaOffset: number;
  /** Offset in the payload stream that its files' `payloadOffset`s are relative to. */
  readonly payloadBase: number;
}

/** Size of the metadata stream header. */
export const TREE_STREAM_HEADER_SIZE = 16;
/** Size of the metadata stream trailer (the stream's last bytes). */
export const TREE_TRAILER_SIZE = 48;
/** Size of a directory record's fixed header (magic, count, entriesLength, reserved). */
export const DIR_HEADER_SIZE = 16;

/** Most bytes in an entry name. */
export const MAX_NAME_LENGTH = 1024;
/** Most bytes in a symlink target or hardlink path. */
export const MAX_TARGET_LENGTH = 4096;
/** Most bytes in an extended attribute name. */
export const MAX_XATTR_NAME_LENGTH = 255;
/** Most bytes in an extended attribute value. */
export const MAX_XATTR_VALUE_LENGTH = 65536;
/** Most extended attributes on one entry. */
export const MAX_XATTRS = 1024;
/** Most entries in one directory record (2^24). */
export const MAX_DIR_ENTRIES = 16_777_216;

const MAX_U32 = 0xffff_ffff;
const MAX_MODE = 0o7777;
const NS_PER_S = 1_000_000_000n;
/** Zigzag of the seconds must fit 2^53 − 1: seconds ∈ [−2^52, 2^52 − 1]. */
const MIN_SECONDS = -(2n ** 52n);
const MAX_SECONDS = 2n ** 52n - 1n;
/** Smallest encoded entry, length prefix included (a fifo with a 1-byte name and small fields). */
const MIN_ENTRY_ENCODED = 10;
/** Size of the root entry record's magic. */
const ROOT_MAGIC_SIZE = 4;

const KIND_CODE: Readonly<Record<TreeEntryKind, number>> = Object.freeze({
  file: 1,
  dir: 2,
  symlink: 3,
  hardlink: 4,
  chardev: 5,
  blockdev: 6,
  fifo: 7,
  socket: 8,
});
const KIND_BY_CODE: readonly (TreeEntryKind | undefined)[] = [undefined, 'file', 'dir', 'symlink', 'hardlink', 'chardev', 'blockdev', 'fifo', 'socket'];

// ---------------------------------------------------------------------------------------------
// Names

/**
 * The entry name order: bytewise (memcmp), a proper prefix sorts first.
 * @returns negative when `a` sorts before `b`, 0 when equal, positive otherwise
 */
export function compareNames(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = a[i]! - b[i]!;
    if (d !== 0) return d;
  }
  return a.length - b.length;
}

/**
 * True when `name` is a valid entry name: 1–1024 bytes, no `/` (0x2f), no NUL, not `.` or `..`.
 * Shared with the restore code's path safety checks.
 */
export function validateEntryName(name: Uint8Array): boolean {
  const n = name.length;
  if (n < 1 || n > MAX_NAME_LENGTH) return false;
  if (name[0] === 0x2e && (n === 1 || (n === 2 && name[1] === 0x2e))) return false;
  for (let i = 0; i < n; i++) {
    const c = name[i]!;
    if (c === 0x2f || c === 0) return false;
  }
  return true;
}

/**
 * True when `path` is a valid archive-relative path (hardlink targets): 1–4096 bytes, components
 * separated by single `/`, no leading or trailing `/`, every component a valid entry name (so no
 * empty, `.` or `..` component and no NUL).
 */
export function validateArchivePath(path: Uint8Array): boolean {
  if (path.length < 1 || path.length > MAX_TARGET_LENGTH) return false;
  let start = 0;
  for (let i = 0; i <= path.length; i++) {
    if (i === path.length || path[i] === 0x2f) {
      if (!validateEntryName(path.subarray(start, i))) return false;
      start = i + 1;
    }
  }
  return true;
}

function validSymlinkTarget(t: Uint8Array): boolean {
  return t.length >= 1 && t.length <= MAX_TARGET_LENGTH && !t.includes(0);
}

function validXattrName(n: Uint8Array): boolean {
  return n.length >= 1 && n.length <= MAX_XATTR_NAME_LENGTH && !n.includes(0);
}

// ---------------------------------------------------------------------------------------------
// Errors

function label(details: ErrorDetails): string {
  const id = details.archive ?? details.path;
  return id === undefined ? 'tree archive' : `tree archive ${id}`;
}

/** Throws ERR_TREE_CORRUPT naming `what` and, when given, the byte offset in the caller's buffer. */
function corrupt(details: ErrorDetails, what: string, offset?: number): never {
  if (offset === undefined) throw new CairnError('ERR_TREE_CORRUPT', `${label(details)} metadata is corrupt: ${what}`, details);
  throw new CairnError('ERR_TREE_CORRUPT', `${label(details)} metadata is corrupt: ${what} at offset ${offset}`, { ...details, offset });
}

function invalid(what: string): never {
  throw new CairnError('ERR_INVALID_ARGUMENT', `tree: ${what}`);
}

function printable(name: Uint8Array): string {
  return JSON.stringify(Buffer.from(name.subarray(0, 64)).toString('latin1'));
}

// ---------------------------------------------------------------------------------------------
// Writer

class Writer {
  buf = new Uint8Array(256);
  len = 0;

  private ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const bigger = new Uint8Array(Math.max(this.len + n, this.buf.length * 2));
    bigger.set(this.buf.subarray(0, this.len));
    this.buf = bigger;
  }

  u8(v: number): void {
    this.ensure(1);
    this.buf[this.len++] = v;
  }

  /** Unsigned LEB128 of an integer in [0, 2^53 − 1] (checked by the caller). */
  varint(v: number): void {
    this.ensure(8);
    while (v >= 0x80) {
      this.buf[this.len++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.buf[this.len++] = v;
  }

  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }

  /** Length-prefixed bytes. */
  blob(b: Uint8Array): void {
    this.varint(b.length);
    this.bytes(b);
  }

  result(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

// ---------------------------------------------------------------------------------------------
// Encoder

function isUint(v: unknown, max: number): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= max;
}

function isBytes(v: unknown): v is Uint8Array {
  return v instanceof Uint8Array;
}

/** Checks an entry for encoding; returns its xattrs sorted by name. */
function checkEntry(e: TreeEntry, root: boolean): (readonly [Uint8Array, Uint8Array])[] {
  if (typeof e !== 'object' || e === null) invalid('entry must be an object');
  if (!isBytes(e.name)) invalid('entry name must be a Uint8Array');
  const where = root ? 'root entry' : `entry ${printable(e.name)}`;
  if (root) {
    if (e.name.length !== 0) invalid('the root entry must have an empty name');
    if (e.kind !== 'dir') invalid(`the root entry must be a directory, got ${String(e.kind)}`);
  } else if (!validateEntryName(e.name)) {
    invalid(`${where}: invalid name (1-${MAX_NAME_LENGTH} bytes, no '/', no NUL, not '.' or '..')`);
  }
  if (typeof e.kind !== 'string' || !Object.hasOwn(KIND_CODE, e.kind)) invalid(`${where}: unknown kind ${String(e.kind)}`);
  if (!isUint(e.mode, MAX_MODE)) invalid(`${where}: mode must be an integer in [0, 0o7777], got ${String(e.mode)}`);
  if (!isUint(e.uid, MAX_U32)) invalid(`${where}: uid must be an integer in [0, 2^32 - 1], got ${String(e.uid)}`);
  if (!isUint(e.gid, MAX_U32)) invalid(`${where}: gid must be an integer in [0, 2^32 - 1], got ${String(e.gid)}`);
  if (typeof e.mtimeNs !== 'bigint') invalid(`${where}: mtimeNs must be a bigint`);
  const s = floorSeconds(e.mtimeNs);
  if (s < MIN_SECONDS || s > MAX_SECONDS) invalid(`${where}: mtime ${e.mtimeNs} ns is out of range`);

  const file = e.kind === 'file';
  if (!isUint(e.size, Number.MAX_SAFE_INTEGER)) invalid(`${where}: size must be an integer in [0, 2^53 - 1], got ${String(e.size)}`);
  if (!isUint(e.payloadOffset, Number.MAX_SAFE_INTEGER)) {
    invalid(`${where}: payloadOffset must be an integer in [0, 2^53 - 1], got ${String(e.payloadOffset)}`);
  }
  if (!file && (e.size !== 0 || e.payloadOffset !== 0)) invalid(`${where}: size and payloadOffset must be 0 for a ${e.kind}`);
  if (file && !Number.isSafeInteger(e.size + e.payloadOffset)) invalid(`${where}: payloadOffset + size exceeds 2^53 - 1`);

  const linky = e.kind === 'symlink' || e.kind === 'hardlink';
  if (linky) {
    if (!isBytes(e.target)) invalid(`${where}: a ${e.kind} needs a target`);
    if (e.kind === 'symlink' && !validSymlinkTarget(e.target)) invalid(`${where}: symlink target must be 1-${MAX_TARGET_LENGTH} bytes without NUL`);
    if (e.kind === 'hardlink' && !validateArchivePath(e.target)) invalid(`${where}: invalid hardlink path`);
  } else if (e.target !== undefined) {
    invalid(`${where}: only symlinks and hardlinks have a target`);
  }

  const dev = e.kind === 'chardev' || e.kind === 'blockdev';
  if (dev) {
    if (!isUint(e.rdevMajor, MAX_U32) || !isUint(e.rdevMinor, MAX_U32)) invalid(`${where}: rdevMajor and rdevMinor must be integers in [0, 2^32 - 1]`);
  } else if (e.rdevMajor !== undefined || e.rdevMinor !== undefined) {
    invalid(`${where}: only devices have rdevMajor/rdevMinor`);
  }

  if (e.kind === 'dir') {
    const c = e.child;
    if (typeof c !== 'object' || c === null) invalid(`${where}: a directory needs child offsets`);
    if (!isUint(c.metaOffset, Number.MAX_SAFE_INTEGER) || c.metaOffset < TREE_STREAM_HEADER_SIZE) {
      invalid(`${where}: child.metaOffset must be an integer in [${TREE_STREAM_HEADER_SIZE}, 2^53 - 1]`);
    }
    if (!isUint(c.payloadBase, Number.MAX_SAFE_INTEGER)) invalid(`${where}: child.payloadBase must be an integer in [0, 2^53 - 1]`);
  } else if (e.child !== undefined) {
    invalid(`${where}: only directories have child offsets`);
  }

  const xs = e.xattrs ?? [];
  if (!Array.isArray(xs)) invalid(`${where}: xattrs must be an array`);
  if (xs.length > MAX_XATTRS) invalid(`${where}: more than ${MAX_XATTRS} xattrs`);
  for (const x of xs) {
    if (!Array.isArray(x) || x.length !== 2 || !isBytes(x[0]) || !isBytes(x[1])) invalid(`${where}: an xattr must be [name, value] Uint8Arrays`);
    if (!validXattrName(x[0])) invalid(`${where}: xattr name must be 1-${MAX_XATTR_NAME_LENGTH} bytes without NUL`);
    if (x[1].length > MAX_XATTR_VALUE_LENGTH) invalid(`${where}: xattr value exceeds ${MAX_XATTR_VALUE_LENGTH} bytes`);
  }
  const sorted = [...xs].sort((a, b) => compareNames(a[0], b[0]));
  for (let i = 1; i < sorted.length; i++) {
    if (compareNames(sorted[i - 1]![0], sorted[i]![0]) === 0) invalid(`${where}: duplicate xattr ${printable(sorted[i]![0])}`);
  }
  return sorted;
}

function floorSeconds(ns: bigint): bigint {
  const s = ns / NS_PER_S;
  return ns % NS_PER_S < 0n ? s - 1n : s;
}

/** Writes the entry bytes (without the length prefix) of an already checked entry. */
function writeEntry(w: Writer, e: TreeEntry, xattrs: readonly (readonly [Uint8Array, Uint8Array])[]): void {
  w.u8(KIND_CODE[e.kind]);
  w.blob(e.name);
  w.varint(e.mode);
  w.varint(e.uid);
  w.varint(e.gid);
  const s = floorSeconds(e.mtimeNs);
  const nanos = e.mtimeNs - s * NS_PER_S;
  w.varint(Number(s >= 0n ? 2n * s : -2n * s - 1n));
  w.varint(Number(nanos));
  switch (e.kind) {
    case 'file':
      w.varint(e.size);
      w.varint(e.payloadOffset);
      break;
    case 'dir':
      w.varint(e.child!.metaOffset);
      w.varint(e.child!.payloadBase);
      break;
    case 'symlink':
    case 'hardlink':
      w.blob(e.target!);
      break;
    case 'chardev':
    case 'blockdev':
      w.varint(e.rdevMajor!);
      w.varint(e.rdevMinor!);
      break;
    default:
      break;
  }
  w.varint(xattrs.length);
  for (const [n, v] of xattrs) {
    w.blob(n);
    w.blob(v);
  }
}

function entryBytes(e: TreeEntry, root: boolean): Uint8Array {
  const xattrs = checkEntry(e, root);
  const w = new Writer();
  writeEntry(w, e, xattrs);
  return w.result();
}

function setU32(b: Uint8Array, o: number, v: number): void {
  b[o] = v & 0xff;
  b[o + 1] = (v >>> 8) & 0xff;
  b[o + 2] = (v >>> 16) & 0xff;
  b[o + 3] = (v >>> 24) & 0xff;
}

function getU32(b: Uint8Array, o: number): number {
  return (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
}

function setU64(b: Uint8Array, o: number, v: number): void {
  setU32(b, o, v % 0x1_0000_0000);
  setU32(b, o + 4, Math.floor(v / 0x1_0000_0000));
}

/**
 * Encodes one directory record. Sorts a copy of `entries` by name ({@link compareNames}); the input
 * order does not matter, and equal entry sets give equal bytes.
 * @throws `ERR_INVALID_ARGUMENT` for an invalid entry (name, kind, field out of range, a field that
 *   does not belong to the kind), duplicate names, more than 2^24 entries, or an entries region
 *   over 2^32 − 1 bytes.
 */
export function encodeDirRecord(entries: readonly TreeEntry[]): Uint8Array {
  if (!Array.isArray(entries)) invalid('entries must be an array');
  if (entries.length > MAX_DIR_ENTRIES) invalid(`a directory holds at most ${MAX_DIR_ENTRIES} entries, got ${entries.length}`);
  const sorted = [...entries];
  for (const e of sorted) if (typeof e !== 'object' || e === null || !isBytes(e.name)) invalid('entry must be an object with a Uint8Array name');
  sorted.sort((a, b) => compareNames(a.name, b.name));
  const count = sorted.length;
  const offsets = new Uint8Array(4 * count);
  const region = new Writer();
  for (let i = 0; i < count; i++) {
    const e = sorted[i]!;
    if (i > 0 && compareNames(sorted[i - 1]!.name, e.name) === 0) invalid(`duplicate entry name ${printable(e.name)}`);
    const body = entryBytes(e, false);
    setU32(offsets, 4 * i, region.len);
    region.blob(body);
  }
  // Every offset is below the final length, so this one check covers the offset table too.
  if (region.len > MAX_U32) invalid('directory record entries exceed 2^32 - 1 bytes');
  const out = new Uint8Array(DIR_HEADER_SIZE + offsets.length + region.len + 4);
  out.set(TREE_DIR_MAGIC, 0);
  setU32(out, 4, count);
  setU32(out, 8, region.len);
  // bytes 12..15: reserved, zero
  out.set(offsets, DIR_HEADER_SIZE);
  out.set(region.buf.subarray(0, region.len), DIR_HEADER_SIZE + offsets.length);
  const crcAt = out.length - 4;
  setU32(out, crcAt, crc32(out.subarray(0, crcAt)));
  return out;
}

/**
 * Encodes the root entry record (`CRE1`, the root directory's own metadata).
 * @param entry - kind `'dir'` with an EMPTY name; `child` locates the root directory's record and payload base
 * @throws `ERR_INVALID_ARGUMENT` for an invalid entry.
 */
export function encodeRootEntry(entry: TreeEntry): Uint8Array {
  const body = entryBytes(entry, true);
  const w = new Writer();
  w.bytes(Uint8Array.from(TREE_ROOT_MAGIC));
  w.blob(body);
  const crc = crc32(w.buf.subarray(0, w.len));
  const tail = new Uint8Array(4);
  setU32(tail, 0, crc);
  w.bytes(tail);
  return w.result();
}

/** Encodes the 16-byte metadata stream header (`CAIRNTRE`, version 1, flags 0). */
export function encodeTreeStreamHeader(): Uint8Array {
  const out = new Uint8Array(TREE_STREAM_HEADER_SIZE);
  out.set(TREE_STREAM_MAGIC, 0);
  setU32(out, 8, TREE_VERSION);
  return out;
}

/**
 * The trailer's fields.
 * @category Tree archives
 */
export interface TreeTrailer {
  /** Position of the root entry record in the metadata stream (≥ 16). */
  readonly rootEntryOffset: number;
  /** Total size of the payload stream in bytes. */
  readonly payloadSize: number;
  /** Entries in the archive: every entry of every directory record plus 1 for the root entry (≥ 1). */
  readonly entryCount: number;
}

/**
 * Encodes the 48-byte trailer (layout in `FORMAT.md` §7).
 * @throws `ERR_INVALID_ARGUMENT` unless `rootEntryOffset ≥ 16`, `entryCount ≥ 1` and all three are
 *   integers ≤ 2^53 − 1.
 */
export function encodeTreeTrailer(t: TreeTrailer): Uint8Array {
  if (typeof t !== 'object' || t === null) invalid('trailer must be an object');
  if (!isUint(t.rootEntryOffset, Number.MAX_SAFE_INTEGER) || t.rootEntryOffset < TREE_STREAM_HEADER_SIZE) {
    invalid(`trailer rootEntryOffset must be an integer in [${TREE_STREAM_HEADER_SIZE}, 2^53 - 1], got ${String(t.rootEntryOffset)}`);
  }
  if (!isUint(t.payloadSize, Number.MAX_SAFE_INTEGER)) invalid(`trailer payloadSize must be an integer in [0, 2^53 - 1], got ${String(t.payloadSize)}`);
  if (!isUint(t.entryCount, Number.MAX_SAFE_INTEGER) || t.entryCount < 1) {
    invalid(`trailer entryCount must be an integer in [1, 2^53 - 1], got ${String(t.entryCount)}`);
  }
  const out = new Uint8Array(TREE_TRAILER_SIZE);
  out.set(TREE_TRAILER_MAGIC, 0);
  setU32(out, 8, TREE_VERSION);
  // 12..15 flags = 0
  setU64(out, 16, t.rootEntryOffset);
  setU64(out, 24, t.payloadSize);
  setU64(out, 32, t.entryCount);
  // 40..43 reserved = 0
  setU32(out, 44, crc32(out.subarray(0, 44)));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Decoder

/** A bounded cursor; every read past `end` is corruption. */
class Reader {
  constructor(
    readonly bytes: Uint8Array,
    public pos: number,
    readonly end: number,
    readonly details: ErrorDetails,
    readonly where: string,
  ) {}

  fail(what: string, at: number = this.pos): never {
    return corrupt(this.details, `${this.where}: ${what}`, at);
  }

  u8(what: string): number {
    if (this.pos >= this.end) this.fail(`truncated ${what}`);
    return this.bytes[this.pos++]!;
  }

  /** Unsigned LEB128, at most 8 bytes, ≤ 2^53 − 1, minimal. */
  varint(what: string): number {
    const start = this.pos;
    let value = 0;
    let scale = 1;
    let b: number;
    do {
      if (this.pos >= this.end) this.fail(`truncated ${what}`, start);
      b = this.bytes[this.pos++]!;
      // The 8th byte holds bits 49..55: only 4 may be set, and it must be the last byte.
      if (this.pos - start === 8 && b > 0x0f) this.fail(`${what} exceeds 2^53 - 1`, start);
      value += (b & 0x7f) * scale;
      scale *= 0x80;
    } while (b >= 0x80);
    if (b === 0 && this.pos - start > 1) this.fail(`non-minimal varint in ${what}`, start);
    return value;
  }

  /** A varint checked against `max`. */
  bounded(what: string, max: number, min = 0): number {
    const start = this.pos;
    const v = this.varint(what);
    if (v > max || v < min) this.fail(`${what} ${v} is out of range [${min}, ${max}]`, start);
    return v;
  }

  /** Length-prefixed bytes (a copy), length in [min, max]. */
  blob(what: string, min: number, max: number): Uint8Array {
    const start = this.pos;
    const n = this.bounded(`${what} length`, max, min);
    if (n > this.end - this.pos) this.fail(`truncated ${what}`, start);
    const out = this.bytes.slice(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
}

/** Decodes one entry's bytes, `[r.pos, r.end)` exactly. */
function readEntryBody(r: Reader, root: boolean): TreeEntry {
  const kindAt = r.pos;
  const code = r.u8('kind');
  const kind = KIND_BY_CODE[code];
  if (kind === undefined) r.fail(`unknown kind ${code}`, kindAt);
  const nameAt = r.pos;
  const name = r.blob('name', root ? 0 : 1, root ? 0 : MAX_NAME_LENGTH);
  if (root) {
    if (kind !== 'dir') r.fail(`the root entry is a ${kind}, not a dir`, kindAt);
  } else if (!validateEntryName(name)) {
    r.fail(`invalid name ${printable(name)}`, nameAt);
  }
  const mode = r.bounded('mode', MAX_MODE);
  const uid = r.bounded('uid', MAX_U32);
  const gid = r.bounded('gid', MAX_U32);
  const zz = r.varint('mtime seconds');
  const seconds = zz % 2 === 0 ? zz / 2 : -(zz + 1) / 2;
  const nanos = r.bounded('mtime nanoseconds', 999_999_999);
  const mtimeNs = BigInt(seconds) * NS_PER_S + BigInt(nanos);
  let size = 0;
  let payloadOffset = 0;
  let target: Uint8Array | undefined;
  let rdev: [number, number] | undefined;
  let child: { metaOffset: number; payloadBase: number } | undefined;
  switch (kind) {
    case 'file': {
      size = r.varint('size');
      const at = r.pos;
      payloadOffset = r.varint('payload offset');
      if (!Number.isSafeInteger(size + payloadOffset)) r.fail('payload offset + size exceeds 2^53 - 1', at);
      break;
    }
    case 'dir': {
      const metaOffset = r.bounded('child metadata offset', Number.MAX_SAFE_INTEGER, TREE_STREAM_HEADER_SIZE);
      const payloadBase = r.varint('child payload base');
      child = { metaOffset, payloadBase };
      break;
    }
    case 'symlink': {
      const at = r.pos;
      target = r.blob('symlink target', 1, MAX_TARGET_LENGTH);
      if (!validSymlinkTarget(target)) r.fail('symlink target contains NUL', at);
      break;
    }
    case 'hardlink': {
      const at = r.pos;
      target = r.blob('hardlink path', 1, MAX_TARGET_LENGTH);
      if (!validateArchivePath(target)) r.fail(`invalid hardlink path ${printable(target)}`, at);
      break;
    }
    case 'chardev':
    case 'blockdev':
      rdev = [r.bounded('device major', MAX_U32), r.bounded('device minor', MAX_U32)];
      break;
    default:
      break;
  }
  const xcount = r.bounded('xattr count', MAX_XATTRS);
  const xattrs: (readonly [Uint8Array, Uint8Array])[] = [];
  for (let i = 0; i < xcount; i++) {
    const at = r.pos;
    const xn = r.blob('xattr name', 1, MAX_XATTR_NAME_LENGTH);
    if (!validXattrName(xn)) r.fail('xattr name contains NUL', at);
    if (i > 0 && compareNames(xattrs[i - 1]![0], xn) >= 0) r.fail(`xattr ${printable(xn)} is out of order or duplicate`, at);
    xattrs.push([xn, r.blob('xattr value', 0, MAX_XATTR_VALUE_LENGTH)]);
  }
  if (r.pos !== r.end) r.fail(`${r.end - r.pos} unexpected bytes after the entry`);
  const entry: {
    -readonly [K in keyof TreeEntry]: TreeEntry[K];
  } = { name, kind, mode, uid, gid, mtimeNs, size, payloadOffset };
  if (target !== undefined) entry.target = target;
  if (rdev !== undefined) {
    entry.rdevMajor = rdev[0];
    entry.rdevMinor = rdev[1];
  }
  if (xattrs.length > 0) entry.xattrs = xattrs;
  if (child !== undefined) entry.child = child;
  return entry;
}

/** Reads a length-prefixed entry at `offset`, bounded by `end`. */
function readEntryAt(bytes: Uint8Array, offset: number, end: number, details: ErrorDetails, where: string, root: boolean): { entry: TreeEntry; next: number } {
  const lr = new Reader(bytes, offset, end, details, where);
  const n = lr.varint('entry length');
  if (n > end - lr.pos) lr.fail('truncated entry', offset);
  const r = new Reader(bytes, lr.pos, lr.pos + n, details, where);
  const entry = readEntryBody(r, root);
  return { entry, next: lr.pos + n };
}

/**
 * Decodes one length-prefixed entry (`varint byteLength · entry bytes`) starting at `offset`,
 * bounded by the end of `bytes`: the way to read single entries through a record's offset table.
 * @returns the entry (names and byte fields are copies) and the offset just past it
 * @throws `ERR_TREE_CORRUPT` (details + `offset`) for anything invalid or truncated;
 *   `ERR_INVALID_ARGUMENT` when `offset` is not a non-negative integer.
 */
export function decodeEntry(bytes: Uint8Array, offset: number, details: ErrorDetails): { entry: TreeEntry; next: number } {
  if (!Number.isSafeInteger(offset) || offset < 0) invalid(`entry offset must be a non-negative integer, got ${offset}`);
  return readEntryAt(bytes, offset, bytes.length, details, 'entry', false);
}

/** The fixed header of a directory record, decoded. */
export interface DirHeader {
  /** Number of entries. */
  readonly count: number;
  /** Length of the entries region in bytes. */
  readonly entriesLength: number;
  /** Length of the whole record: `16 + 4 × count + entriesLength + 4`. */
  readonly recordLength: number;
  /** Position of the offset table in the record (16). */
  readonly tableOffset: number;
  /** Position of the entries region in the record (`16 + 4 × count`). */
  readonly entriesOffset: number;
}

/**
 * Decodes a directory record's first 16 bytes (magic, count, entriesLength, reserved). Longer input
 * is fine; only the header is read.
 * @throws `ERR_TREE_CORRUPT` for fewer than 16 bytes, a wrong magic, a non-zero reserved field, more
 *   than 2^24 entries, or a count that cannot fit the entries region.
 */
export function decodeDirHeader(bytes: Uint8Array, details: ErrorDetails): DirHeader {
  if (bytes.length < DIR_HEADER_SIZE) corrupt(details, `directory record header is truncated (${bytes.length} of ${DIR_HEADER_SIZE} bytes)`, 0);
  if (!hasMagic(bytes, TREE_DIR_MAGIC)) corrupt(details, 'directory record has a wrong magic', 0);
  const count = getU32(bytes, 4);
  const entriesLength = getU32(bytes, 8);
  if (getU32(bytes, 12) !== 0) corrupt(details, 'directory record reserved field is not zero', 12);
  if (count > MAX_DIR_ENTRIES) corrupt(details, `directory record has ${count} entries, more than ${MAX_DIR_ENTRIES}`, 4);
  if (count * MIN_ENTRY_ENCODED > entriesLength || (count === 0 && entriesLength !== 0)) {
    corrupt(details, `directory record entries region of ${entriesLength} bytes cannot hold ${count} entries`, 8);
  }
  const entriesOffset = DIR_HEADER_SIZE + 4 * count;
  return { count, entriesLength, recordLength: entriesOffset + entriesLength + 4, tableOffset: DIR_HEADER_SIZE, entriesOffset };
}

/** Header + exact length check shared by the record readers. */
function checkRecordShape(bytes: Uint8Array, details: ErrorDetails): DirHeader {
  const h = decodeDirHeader(bytes, details);
  if (bytes.length !== h.recordLength) corrupt(details, `directory record is ${bytes.length} bytes, its header implies ${h.recordLength}`, 0);
  return h;
}

/**
 * Decodes and fully checks a whole directory record (exactly `recordLength` bytes): header, CRC,
 * offset table (first 0, strictly increasing, each entry starting where the previous ended), every
 * entry, and the name order (strictly increasing, so unique).
 * @returns the entries in name order (names and byte fields are copies)
 * @throws `ERR_TREE_CORRUPT` (details + `offset` within `bytes` where useful) for any inconsistency.
 */
export function decodeDirRecord(bytes: Uint8Array, details: ErrorDetails): TreeEntry[] {
  const h = checkRecordShape(bytes, details);
  const crcAt = h.recordLength - 4;
  const stored = getU32(bytes, crcAt);
  const actual = crc32(bytes.subarray(0, crcAt));
  if (stored !== actual) corrupt(details, `directory record CRC is ${actual.toString(16)}, record says ${stored.toString(16)}`, crcAt);
  const out: TreeEntry[] = [];
  let pos = h.entriesOffset;
  for (let i = 0; i < h.count; i++) {
    const rel = getU32(bytes, h.tableOffset + 4 * i);
    if (rel !== pos - h.entriesOffset) {
      corrupt(details, `directory record offset table entry ${i} is ${rel}, entry starts at ${pos - h.entriesOffset}`, h.tableOffset + 4 * i);
    }
    const { entry, next } = readEntryAt(bytes, pos, crcAt, details, `directory record entry ${i}`, false);
    const prev = out[i - 1];
    if (prev !== undefined && compareNames(prev.name, entry.name) >= 0) {
      corrupt(details, `directory record entry ${i} ${printable(entry.name)} is out of order or duplicate`, pos);
    }
    out.push(entry);
    pos = next;
  }
  if (pos !== crcAt) corrupt(details, `directory record has ${crcAt - pos} bytes after its last entry`, pos);
  return out;
}

/**
 * Looks a name up in a whole directory record by binary search over its offset table, decoding only
 * O(log n) names and the matching entry. Checks the header, the record length and everything it
 * reads, but **not the CRC** (the chunk digests already protect the stream; use
 * {@link decodeDirRecord} to check a record fully).
 * @returns the entry, or undefined when the record has no such name
 * @throws `ERR_TREE_CORRUPT` for damage met on the way.
 */
export function findInRecord(record: Uint8Array, name: Uint8Array, details: ErrorDetails): TreeEntry | undefined {
  const h = checkRecordShape(record, details);
  const end = h.recordLength - 4;
  let lo = 0;
  let hi = h.count - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const tableAt = h.tableOffset + 4 * mid;
    const rel = getU32(record, tableAt);
    if (rel >= h.entriesLength || (mid === 0 && rel !== 0)) corrupt(details, `directory record offset table entry ${mid} is ${rel}`, tableAt);
    const at = h.entriesOffset + rel;
    const where = `directory record entry ${mid}`;
    // Read just the name: varint length · kind · varint nameLength · name.
    const r = new Reader(record, at, end, details, where);
    const n = r.varint('entry length');
    if (n > end - r.pos) r.fail('truncated entry', at);
    const er = new Reader(record, r.pos, r.pos + n, details, where);
    er.u8('kind');
    const nameAt = er.pos;
    const nl = er.bounded('name length', MAX_NAME_LENGTH, 1);
    if (nl > er.end - er.pos) er.fail('truncated name', nameAt);
    const c = compareNames(record.subarray(er.pos, er.pos + nl), name);
    if (c === 0) return readEntryAt(record, at, end, details, where, false).entry;
    if (c < 0) lo = mid + 1;
    else hi = mid - 1;
  }
  return undefined;
}

/**
 * Decodes the root entry record (`CRE1 · varint length · entry · crc32`) at the start of `bytes`;
 * bytes after the record (for example the trailer) are ignored.
 * @returns the root entry (kind `'dir'`, empty name) and the record's length in bytes
 * @throws `ERR_TREE_CORRUPT` for a wrong magic, truncation, a bad CRC or an invalid entry.
 */
export function decodeRootEntry(bytes: Uint8Array, details: ErrorDetails): { entry: TreeEntry; length: number } {
  if (!hasMagic(bytes, TREE_ROOT_MAGIC)) {
    corrupt(details, bytes.length < ROOT_MAGIC_SIZE ? 'root entry record is truncated' : 'root entry record has a wrong magic', 0);
  }
  const r = new Reader(bytes, ROOT_MAGIC_SIZE, bytes.length, details, 'root entry record');
  const n = r.varint('entry length');
  const bodyAt = r.pos;
  if (n > bytes.length - bodyAt || bytes.length - bodyAt - n < 4) r.fail('truncated record', 0);
  const crcAt = bodyAt + n;
  const stored = getU32(bytes, crcAt);
  const actual = crc32(bytes.subarray(0, crcAt));
  if (stored !== actual) r.fail(`CRC is ${actual.toString(16)}, record says ${stored.toString(16)}`, crcAt);
  const entry = readEntryBody(new Reader(bytes, bodyAt, crcAt, details, 'root entry'), true);
  return { entry, length: crcAt + 4 };
}

/**
 * Checks the 16-byte metadata stream header at the start of `bytes` (longer input is fine).
 * @throws `ERR_FORMAT_VERSION` for a version newer than 1; `ERR_TREE_CORRUPT` for truncation, a
 *   wrong magic, version 0 or non-zero flags.
 */
export function checkTreeStreamHeader(bytes: Uint8Array, details: ErrorDetails): void {
  if (bytes.length < TREE_STREAM_HEADER_SIZE) corrupt(details, `stream header is truncated (${bytes.length} of ${TREE_STREAM_HEADER_SIZE} bytes)`, 0);
  if (!hasMagic(bytes, TREE_STREAM_MAGIC)) corrupt(details, 'not a tree metadata stream (wrong magic)', 0);
  checkVersion(getU32(bytes, 8), details, 8);
  if (getU32(bytes, 12) !== 0) corrupt(details, 'stream header flags are not zero', 12);
}

function checkVersion(ver: number, details: ErrorDetails, at: number): void {
  if (ver > TREE_VERSION) {
    throw new CairnError('ERR_FORMAT_VERSION', `${label(details)}: format version ${ver} is newer than this Cairn reads (${TREE_VERSION})`, details);
  }
  if (ver !== TREE_VERSION) corrupt(details, `format version ${ver} is invalid`, at);
}

function getU64(bytes: Uint8Array, o: number, what: string, details: ErrorDetails): number {
  const lo = getU32(bytes, o);
  const hi = getU32(bytes, o + 4);
  if (hi > 0x1f_ffff) corrupt(details, `trailer ${what} exceeds 2^53 - 1`, o);
  return hi * 0x1_0000_0000 + lo;
}

/**
 * Decodes the 48-byte trailer. `bytes` must be exactly the trailer (the last 48 bytes of the stream).
 * Check order: length, magic, version, CRC, flags and reserved, fields.
 * @throws `ERR_FORMAT_VERSION` for a version newer than 1; `ERR_TREE_CORRUPT` for anything else.
 */
export function decodeTreeTrailer(bytes: Uint8Array, details: ErrorDetails): TreeTrailer {
  if (bytes.length !== TREE_TRAILER_SIZE) corrupt(details, `trailer is ${bytes.length} bytes, expected ${TREE_TRAILER_SIZE}`);
  if (!hasMagic(bytes, TREE_TRAILER_MAGIC)) corrupt(details, 'trailer has a wrong magic', 0);
  checkVersion(getU32(bytes, 8), details, 8);
  const stored = getU32(bytes, 44);
  const actual = crc32(bytes.subarray(0, 44));
  if (stored !== actual) corrupt(details, `trailer CRC is ${actual.toString(16)}, trailer says ${stored.toString(16)}`, 44);
  if (getU32(bytes, 12) !== 0) corrupt(details, 'trailer flags are not zero', 12);
  if (getU32(bytes, 40) !== 0) corrupt(details, 'trailer reserved field is not zero', 40);
  const rootEntryOffset = getU64(bytes, 16, 'root entry offset', details);
  const payloadSize = getU64(bytes, 24, 'payload size', details);
  const entryCount = getU64(bytes, 32, 'entry count', details);
  if (rootEntryOffset < TREE_STREAM_HEADER_SIZE) corrupt(details, `trailer root entry offset ${rootEntryOffset} lies inside the stream header`, 16);
  if (entryCount < 1) corrupt(details, 'trailer entry count is 0 (the root entry counts)', 32);
  return { rootEntryOffset, payloadSize, entryCount };
}

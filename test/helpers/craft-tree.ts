/**
 * Test helper: hand-crafted (hostile or damaged) tree archives.
 *
 * {@link craftTreeSnapshot} writes a real snapshot (directory, locks, manifest) whose tree archive
 * `root.tree` has a metadata stream built by the caller with a {@link TreeCrafter}: directory
 * records made of raw entries (no name check, no sorting, no duplicate check, CRC always correct, so
 * the damage is semantic), a root entry and a trailer. The streams are stored as real chunks behind
 * real dynamic indexes, and the manifest's checksum matches them, so only the tree layer can object.
 */
import { crc32, initHash } from '../../lib/codec/hash.js';
import { encodeChunk } from '../../lib/codec/chunk-codec.js';
import { DynamicIndexBuilder, decodeDynamicIndex } from '../../lib/format/dynamic-index.js';
import { decodeManifest, encodeManifest } from '../../lib/format/manifest.js';
import { DIR_HEADER_SIZE, encodeRootEntry, encodeTreeStreamHeader, encodeTreeTrailer, type TreeEntryKind, type TreeTrailer } from '../../lib/format/tree.js';
import { treeChecksum } from '../../lib/datastore/chunk-stream.js';
import { MANIFEST_FILE, snapshotKey, treeIndexKeys } from '../../lib/datastore/layout.js';
import type { Datastore, Snapshot } from '../../lib/index.js';

const KIND: Readonly<Record<TreeEntryKind, number>> = { file: 1, dir: 2, symlink: 3, hardlink: 4, chardev: 5, blockdev: 6, fifo: 7, socket: 8 };

/** An entry encoded as given: nothing is checked, so any name or field can be written. */
export interface RawEntry {
  readonly name: string | Uint8Array;
  /** A kind, or a raw kind code (an unknown code gets no kind-specific fields). */
  readonly kind: TreeEntryKind | number;
  readonly mode?: number;
  readonly uid?: number;
  readonly gid?: number;
  /** Non-negative mtime seconds (written zigzag). */
  readonly mtimeS?: number;
  readonly nanos?: number;
  /** Files. */
  readonly size?: number;
  /** Files. */
  readonly payloadOffset?: number;
  /** Directories: absolute positions of the child record and payload base. */
  readonly child?: { readonly metaOffset: number; readonly payloadBase?: number };
  /** Symlinks and hardlinks. */
  readonly target?: string | Uint8Array;
  /** Devices. */
  readonly rdev?: readonly [number, number];
  readonly xattrs?: readonly (readonly [string | Uint8Array, string | Uint8Array])[];
  /** Bytes appended to the entry after its xattrs (garbage). */
  readonly extra?: Uint8Array;
}

const bytesOf = (s: string | Uint8Array): Uint8Array => (typeof s === 'string' ? Buffer.from(s, 'utf8') : s);

class Bytes {
  private parts: number[] = [];
  u8(v: number): void {
    this.parts.push(v & 0xff);
  }
  varint(v: number): void {
    while (v >= 0x80) {
      this.parts.push((v % 0x80) | 0x80);
      v = Math.floor(v / 0x80);
    }
    this.parts.push(v);
  }
  raw(b: Uint8Array): void {
    for (const x of b) this.parts.push(x);
  }
  blob(b: Uint8Array): void {
    this.varint(b.length);
    this.raw(b);
  }
  done(): Uint8Array {
    return Uint8Array.from(this.parts);
  }
}

/** The entry bytes (without the length prefix) of a raw entry. */
export function encodeRawEntry(e: RawEntry): Uint8Array {
  const w = new Bytes();
  const code = typeof e.kind === 'number' ? e.kind : KIND[e.kind];
  w.u8(code);
  w.blob(bytesOf(e.name));
  w.varint(e.mode ?? 0o644);
  w.varint(e.uid ?? 0);
  w.varint(e.gid ?? 0);
  w.varint(2 * (e.mtimeS ?? 1_700_000_000));
  w.varint(e.nanos ?? 0);
  switch (code) {
    case 1:
      w.varint(e.size ?? 0);
      w.varint(e.payloadOffset ?? 0);
      break;
    case 2:
      w.varint(e.child?.metaOffset ?? 16);
      w.varint(e.child?.payloadBase ?? 0);
      break;
    case 3:
    case 4:
      w.blob(bytesOf(e.target ?? 'x'));
      break;
    case 5:
    case 6:
      w.varint(e.rdev?.[0] ?? 0);
      w.varint(e.rdev?.[1] ?? 0);
      break;
    default:
      break;
  }
  const xs = e.xattrs ?? [];
  w.varint(xs.length);
  for (const [n, v] of xs) {
    w.blob(bytesOf(n));
    w.blob(bytesOf(v));
  }
  if (e.extra !== undefined) w.raw(e.extra);
  return w.done();
}

function setU32(b: Uint8Array, o: number, v: number): void {
  new DataView(b.buffer, b.byteOffset, b.byteLength).setUint32(o, v >>> 0, true);
}

/** Recomputes the CRC in the last 4 bytes of a record (directory or root entry) in place. */
export function fixCrc(record: Uint8Array): Uint8Array {
  setU32(record, record.length - 4, crc32(record.subarray(0, record.length - 4)));
  return record;
}

/**
 * A directory record of `entries` IN THE ORDER GIVEN (raw entries, or ready entry bytes), with a
 * correct offset table and CRC, and nothing else checked.
 */
export function rawDirRecord(entries: readonly (RawEntry | Uint8Array)[]): Uint8Array {
  const bodies = entries.map((e) => (e instanceof Uint8Array ? e : encodeRawEntry(e)));
  const region = new Bytes();
  const offsets: number[] = [];
  let len = 0;
  for (const b of bodies) {
    offsets.push(len);
    const before = new Bytes();
    before.varint(b.length);
    len += before.done().length + b.length;
    region.blob(b);
  }
  const reg = region.done();
  const out = new Uint8Array(DIR_HEADER_SIZE + 4 * bodies.length + reg.length + 4);
  out.set([0x43, 0x52, 0x44, 0x31], 0); // CRD1
  setU32(out, 4, bodies.length);
  setU32(out, 8, reg.length);
  offsets.forEach((o, i) => setU32(out, DIR_HEADER_SIZE + 4 * i, o));
  out.set(reg, DIR_HEADER_SIZE + 4 * bodies.length);
  return fixCrc(out);
}

/** Builds a metadata stream piece by piece; every method returns the absolute offset of what it appended. */
export class TreeCrafter {
  private parts: Uint8Array[] = [encodeTreeStreamHeader()];
  private length = 16;
  private entries = 0;
  private rootAt: number | undefined;
  private trailerDone = false;
  /** The payload stream (file contents). */
  payload: Uint8Array = new Uint8Array(0);

  /** Current end of the stream. */
  get pos(): number {
    return this.length;
  }

  /** Appends raw bytes. */
  raw(b: Uint8Array): number {
    const at = this.length;
    this.parts.push(b);
    this.length += b.length;
    return at;
  }

  /** Appends a directory record of raw entries, in the order given. */
  dir(entries: readonly (RawEntry | Uint8Array)[]): number {
    this.entries += entries.length;
    return this.raw(rawDirRecord(entries));
  }

  /** Appends the root entry record (real encoder) pointing at `metaOffset`. */
  root(metaOffset: number, payloadBase = 0): number {
    this.rootAt = this.raw(
      encodeRootEntry({
        name: new Uint8Array(0),
        kind: 'dir',
        mode: 0o755,
        uid: 0,
        gid: 0,
        mtimeNs: 1_700_000_000_000_000_000n,
        size: 0,
        payloadOffset: 0,
        child: { metaOffset, payloadBase },
      }),
    );
    return this.rootAt;
  }

  /** Appends the trailer (real encoder); fields default to what was built. */
  trailer(t: Partial<TreeTrailer> = {}): number {
    this.trailerDone = true;
    return this.raw(
      encodeTreeTrailer({
        rootEntryOffset: t.rootEntryOffset ?? this.rootAt ?? 16,
        payloadSize: t.payloadSize ?? this.payload.length,
        entryCount: t.entryCount ?? this.entries + 1,
      }),
    );
  }

  /** The whole stream (the trailer is appended when not written yet). */
  finish(): Uint8Array {
    if (!this.trailerDone) this.trailer();
    return Buffer.concat(this.parts);
  }
}

/** How a stream is stored: cut into chunks, and the lengths the index claims for them. */
export interface CraftStreamOptions {
  /** Chunk lengths (the rest is one last chunk), or a function giving them after `build` ran. Default: one chunk. */
  readonly cuts?: readonly number[] | (() => readonly number[]);
  /** The length the index claims for chunk `i` (default: its real length). */
  readonly claim?: (i: number, real: number) => number;
}

async function storeStream(ds: Datastore, bytes: Uint8Array, o: CraftStreamOptions = {}): Promise<Uint8Array> {
  const b = new DynamicIndexBuilder();
  let pos = 0;
  const pieces: Uint8Array[] = [];
  const cuts = typeof o.cuts === 'function' ? o.cuts() : (o.cuts ?? []);
  for (const c of cuts) {
    pieces.push(bytes.subarray(pos, pos + c));
    pos += c;
  }
  if (pos < bytes.length) pieces.push(bytes.subarray(pos));
  for (const [i, p] of pieces.entries()) {
    const enc = encodeChunk(p, { compress: false });
    await ds.chunks.insert(enc.digest, enc.header, enc.payload);
    b.append(o.claim?.(i, p.length) ?? p.length, enc.digest);
  }
  return b.finish({ uuid: new Uint8Array(16).fill(7), ctime: 1_700_000_000 });
}

/** Options of {@link craftTreeSnapshot}. */
export interface CraftOptions {
  readonly meta?: CraftStreamOptions;
  readonly payload?: CraftStreamOptions;
}

/**
 * Writes snapshot `group` at `time` (a real, empty, committed backup, then overwritten) whose only
 * archive `root.tree` has the metadata stream `build` makes: the crafter's stream (trailer added
 * when missing), or the bytes `build` returns. The payload stream is `crafter.payload`.
 * @returns the snapshot, freshly loaded
 */
export async function craftTreeSnapshot(
  ds: Datastore,
  group: string,
  time: number,
  build: (c: TreeCrafter) => void | Uint8Array | Promise<void | Uint8Array>,
  options: CraftOptions = {},
): Promise<Snapshot> {
  await initHash();
  const w = await ds.group(group).backup({ time });
  await w.addBlob('placeholder', ''); // a snapshot has an archive; the manifest is rewritten below
  const snap = await w.commit();
  const c = new TreeCrafter();
  const out = await build(c);
  const meta = out instanceof Uint8Array ? out : c.finish();
  const metaFile = await storeStream(ds, meta, options.meta);
  const payloadFile = await storeStream(ds, c.payload, options.payload);
  const metaIdx = decodeDynamicIndex(metaFile);
  const payloadIdx = decodeDynamicIndex(payloadFile);
  const key = snapshotKey(snap.ref.nsParts, snap.ref.group, snap.ref.time);
  const keys = treeIndexKeys(key, 'root.tree');
  await ds.backend.put(keys.meta, metaFile);
  await ds.backend.put(keys.payload, payloadFile);
  const m = decodeManifest(await ds.backend.get(`${key}/${MANIFEST_FILE}`));
  m.files = [{ name: 'root.tree', kind: 'tree', size: payloadIdx.size, checksum: treeChecksum(metaIdx.checksum, payloadIdx.checksum), crypt: 'none' }];
  m.unprotected = {};
  await ds.backend.put(`${key}/${MANIFEST_FILE}`, encodeManifest(m));
  await ds.backend.delete(`${key}/placeholder.blob`);
  return ds.snapshot(`${group}/${snap.time}`);
}

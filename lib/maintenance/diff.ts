/**
 * Differences between two snapshots (layer L5), archive by archive, like `restic diff`.
 *
 * - **Tree archives**: the entries added, removed, modified (content differs: a file's bytes, a
 *   symlink's target, a device's numbers), changed in metadata only (mode, owner, mtime, extended
 *   attributes, which file a hardlink shares its content with) or changed in type (a file that
 *   became a directory, ...; the entries below a directory that appeared or went are listed as
 *   added or removed). Both trees are walked together in name order, depth first, one directory
 *   record per level of the current path at a time: memory follows the widest directories on the
 *   path, not the number of entries (changes go to {@link DiffOptions.onChange} instead of the
 *   result when it is given).
 *
 *   File contents are compared without reading them wherever the payload indexes decide it: two
 *   files of the same size whose bytes lie at the same offsets of chunks with the same digests are
 *   equal (a digest names the chunk's content). Only where that does not hold (different chunk
 *   boundaries, a chunk shared with changed neighbours) are the bytes read and compared, chunk by
 *   chunk, through the chunk cache. Hardlinks are compared by the content of the file they link
 *   to.
 * - **Image archives**: the byte ranges that differ. With the same chunk size on both sides the
 *   fixed indexes' digests are compared (nothing is read): one range per run of differing chunks,
 *   in whole chunks, the smallest unit an index records. With different chunk sizes the bytes are
 *   read and compared in pieces of the smaller chunk size, which is then the ranges' unit. A size
 *   change is a change at the tail: the last range reaches the larger of the two sizes.
 * - **Blob archives**: changed or not, by size and checksum.
 *
 * Archives with the same manifest checksum (and size) are unchanged without reading anything.
 */
import { CairnError, throwIfAborted, type ErrorDetails } from '../errors.js';
import { compareNames, type TreeEntry, type TreeEntryKind } from '../format/tree.js';
import type { DynamicIndex } from '../format/dynamic-index.js';
import type { ManifestFile } from '../format/manifest.js';
import type { ArchiveKind } from '../types.js';
import type { Snapshot } from '../datastore/snapshot.js';
import type { SnapshotReader } from '../datastore/snapshot-reader.js';
import type { TreeItem, TreeReader } from '../datastore/tree-reader.js';

/**
 * A snapshot as named in a diff.
 * @category Inspect
 */
export interface DiffSnapshotId {
  /** Namespace path (`''` for the root). */
  readonly namespace: string;
  /** The group, `type/id`. */
  readonly group: string;
  /** RFC 3339 UTC time. */
  readonly time: string;
  /** `type/id/time`. */
  readonly snapshot: string;
}

/**
 * What happened to a tree entry.
 * @category Inspect
 */
export type TreeChangeKind = 'added' | 'removed' | 'modified' | 'metadata' | 'type';

/**
 * What differs in an entry present on both sides. `content`, `target` (symlink) and `rdev`
 * (device numbers) make the change `modified`; the others alone make it `metadata`. `link`: a
 * hardlink now shares its content with another path, or a file became a hardlink or the other way
 * round (the content itself is compared separately).
 * @category Inspect
 */
export type TreeChangeField = 'content' | 'target' | 'rdev' | 'mode' | 'uid' | 'gid' | 'mtime' | 'xattrs' | 'link';

/**
 * One difference between two tree archives.
 * @category Inspect
 */
export interface TreeChange {
  /** What happened. */
  readonly change: TreeChangeKind;
  /** Archive-relative path, raw bytes, `/`-separated (empty for the root directory). */
  readonly path: Buffer;
  /** The entry's kind: in the newer snapshot, or in the older one for a removal. */
  readonly kind: TreeEntryKind;
  /** For `type` changes: the kind in the older snapshot. */
  readonly previousKind?: TreeEntryKind;
  /** For `modified` and `metadata`: what differs. */
  readonly fields: readonly TreeChangeField[];
  /** The entry in the older snapshot (absent for `added`). */
  readonly before?: TreeItem;
  /** The entry in the newer snapshot (absent for `removed`). */
  readonly after?: TreeItem;
}

/**
 * Counts of a tree archive diff.
 * @category Inspect
 */
export interface TreeDiffCounts {
  /** Entries only in the newer archive. */
  added: number;
  /** Entries only in the older archive. */
  removed: number;
  /** Entries whose content differs (file bytes, symlink target, device numbers). */
  modified: number;
  /** Entries whose metadata alone differs. */
  metadata: number;
  /** Entries whose type changed (file ↔ directory, ...). */
  typeChanged: number;
  /** File content bytes of the newer side that are new: added files, and the new content of modified (or retyped) files. Hardlinks count 0. */
  bytesAdded: number;
  /** File content bytes of the older side that went: removed files, and the old content of modified (or retyped) files. */
  bytesRemoved: number;
  /** Entries looked at (both sides, each once). */
  entriesCompared: number;
  /** Payload bytes that had to be read (on each side) because the chunk digests could not decide. */
  bytesRead: number;
}

/**
 * A byte range of an image.
 * @category Inspect
 */
export interface DiffRange {
  /** First byte. */
  readonly offset: number;
  /** Bytes. */
  readonly length: number;
}

interface ArchiveDiffBase {
  /** The archive's name. */
  readonly name: string;
  /** The archive's kind (in the newer snapshot; the older one's for `removed`). */
  readonly kind: ArchiveKind;
}

/**
 * An archive present in one snapshot only, or whose kind changed.
 * @category Inspect
 */
export interface ArchiveDiffPresence extends ArchiveDiffBase {
  /** `added`: only in the newer snapshot; `removed`: only in the older; `replaced`: in both, of different kinds. */
  readonly status: 'added' | 'removed' | 'replaced';
  /** For `replaced`: the kind in the older snapshot. */
  readonly previousKind?: ArchiveKind;
  /** Size in the older snapshot (not for `added`). */
  readonly sizeBefore?: number;
  /** Size in the newer snapshot (not for `removed`). */
  readonly sizeAfter?: number;
}

/**
 * A tree archive in both snapshots.
 * @category Inspect
 */
export interface TreeArchiveDiff extends ArchiveDiffBase {
  /** Always `tree`. */
  readonly kind: 'tree';
  /** Whether anything differs. */
  readonly status: 'changed' | 'unchanged';
  /** The changes in walk order (name order, depth first); empty when {@link DiffOptions.onChange} took them. */
  readonly changes: readonly TreeChange[];
  /** The counts. */
  readonly counts: TreeDiffCounts;
}

/**
 * An image archive in both snapshots.
 * @category Inspect
 */
export interface ImageArchiveDiff extends ArchiveDiffBase {
  /** Always `image`. */
  readonly kind: 'image';
  /** Whether anything differs. */
  readonly status: 'changed' | 'unchanged';
  /** Image size in the older snapshot. */
  readonly sizeBefore: number;
  /** Image size in the newer snapshot. */
  readonly sizeAfter: number;
  /** Chunk size in the older snapshot. */
  readonly chunkSizeBefore: number;
  /** Chunk size in the newer snapshot. */
  readonly chunkSizeAfter: number;
  /**
   * How it was compared: `digests` (same chunk size: the indexes' digests, nothing read; ranges
   * in whole chunks) or `bytes` (different chunk sizes: both images read; ranges in pieces of the
   * smaller chunk size). `checksum`: the indexes are identical.
   */
  readonly compared: 'checksum' | 'digests' | 'bytes';
  /** The differing ranges, in order, not overlapping, not adjacent; the last reaches the larger size when the size changed. */
  readonly ranges: readonly DiffRange[];
  /** Bytes in the ranges. */
  readonly changedBytes: number;
}

/**
 * A blob archive in both snapshots.
 * @category Inspect
 */
export interface BlobArchiveDiff extends ArchiveDiffBase {
  /** Always `blob`. */
  readonly kind: 'blob';
  /** Whether the content differs (size or BLAKE3 checksum). */
  readonly status: 'changed' | 'unchanged';
  /** Size in the older snapshot. */
  readonly sizeBefore: number;
  /** Size in the newer snapshot. */
  readonly sizeAfter: number;
}

/**
 * The difference of one archive name between two snapshots.
 * @category Inspect
 */
export type ArchiveDiff = ArchiveDiffPresence | TreeArchiveDiff | ImageArchiveDiff | BlobArchiveDiff;

/**
 * The result of {@link diffSnapshots}.
 * @category Inspect
 */
export interface SnapshotDiff {
  /** The older side (the first argument). */
  readonly from: DiffSnapshotId;
  /** The newer side (the second argument). */
  readonly to: DiffSnapshotId;
  /** One entry per archive name of either snapshot (or of {@link DiffOptions.archives}), in name order. */
  readonly archives: readonly ArchiveDiff[];
}

/**
 * Progress of {@link diffSnapshots}: after every 256 tree entries, every image piece read, and at each archive's end.
 * @category Inspect
 */
export interface DiffProgress {
  /** The archive being compared. */
  readonly archive: string;
  /** Its kind. */
  readonly kind: ArchiveKind;
  /** Tree entries compared so far in this archive. */
  readonly entries: number;
  /** Images: bytes of the larger image compared so far; trees: payload bytes read so far. */
  readonly bytesDone: number;
  /** Images: the larger image size. */
  readonly bytesTotal?: number;
}

/**
 * Options of {@link diffSnapshots}.
 * @category Inspect
 */
export interface DiffOptions {
  /** Only these archive names (each must be in at least one of the snapshots: else `ERR_NOT_FOUND`). */
  readonly archives?: readonly string[];
  /** Cancels the diff (`ERR_ABORTED`). */
  readonly signal?: AbortSignal;
  /** Called as the work goes on. */
  readonly onProgress?: (p: DiffProgress) => void;
  /**
   * Receives each tree change as it is found, in order; the result's `changes` then stay empty, so
   * memory does not grow with the number of changes.
   */
  readonly onChange?: (archive: string, change: TreeChange) => void;
  /** Called with each archive's result as soon as it is complete (before the next archive starts). */
  readonly onArchive?: (diff: ArchiveDiff) => void;
}

/**
 * How a snapshot is named in a diff.
 * @category Inspect
 */
export function diffSnapshotId(s: Snapshot): DiffSnapshotId {
  return { namespace: s.namespace, group: `${s.type}/${s.id}`, time: s.time, snapshot: s.name };
}

/**
 * Compares two snapshots archive by archive (see the module comment for what is compared how).
 * Both are opened (shared locks: prune skips them) for the time of the diff. They may belong to
 * different groups and namespaces of the datastore.
 *
 * @example
 * ```ts
 * const d = await diffSnapshots(await ds.snapshot('host/web/2026-01-01T00:00:00Z'), await ds.snapshot('host/web'));
 * for (const a of d.archives) if (a.kind === 'tree' && 'changes' in a) for (const c of a.changes) console.log(c.change, c.path.toString());
 * ```
 * @param a - the older snapshot
 * @param b - the newer snapshot
 * @throws `ERR_NOT_FOUND` for an archive of `options.archives` in neither snapshot, or a snapshot
 *   removed meanwhile; `ERR_ABORTED`; the read errors of a damaged archive
 *   (`ERR_INDEX_CORRUPT`, `ERR_TREE_CORRUPT`, `ERR_CHUNK_CORRUPT`, ...)
 * @category Inspect
 */
export async function diffSnapshots(a: Snapshot, b: Snapshot, options: DiffOptions = {}): Promise<SnapshotDiff> {
  const names = archiveNames(a, b, options.archives);
  throwIfAborted(options.signal, { snapshot: b.name });
  const lockOptions = options.signal === undefined ? {} : { signal: options.signal };
  const ra = await a.open(lockOptions);
  try {
    const rb = await b.open(lockOptions);
    try {
      const archives: ArchiveDiff[] = [];
      for (const name of names) {
        throwIfAborted(options.signal, { snapshot: b.name, archive: name });
        const d = await diffArchive(ra, rb, name, options);
        options.onArchive?.(d);
        archives.push(d);
      }
      return { from: diffSnapshotId(a), to: diffSnapshotId(b), archives };
    } finally {
      await rb.close();
    }
  } finally {
    await ra.close();
  }
}

function archiveNames(a: Snapshot, b: Snapshot, only: readonly string[] | undefined): string[] {
  const all = new Set([...a.files.map((f) => f.name), ...b.files.map((f) => f.name)]);
  if (only === undefined) return [...all].sort(byCodeUnit);
  for (const n of only) {
    if (!all.has(n)) {
      const list = [...all].sort(byCodeUnit).join(', ');
      throw new CairnError('ERR_NOT_FOUND', `neither ${a.name} nor ${b.name} has an archive '${n}' (they have: ${list})`, { namespace: b.namespace, snapshot: b.name, archive: n });
    }
  }
  return [...new Set(only)].sort(byCodeUnit);
}

const byCodeUnit = (x: string, y: string): number => (x < y ? -1 : x > y ? 1 : 0);

async function diffArchive(ra: SnapshotReader, rb: SnapshotReader, name: string, options: DiffOptions): Promise<ArchiveDiff> {
  const fa = ra.files.find((f) => f.name === name);
  const fb = rb.files.find((f) => f.name === name);
  if (fa === undefined) return { name, kind: fb!.kind, status: 'added', sizeAfter: fb!.size };
  if (fb === undefined) return { name, kind: fa.kind, status: 'removed', sizeBefore: fa.size };
  if (fa.kind !== fb.kind) return { name, kind: fb.kind, status: 'replaced', previousKind: fa.kind, sizeBefore: fa.size, sizeAfter: fb.size };
  if (fb.kind === 'blob') {
    const changed = fa.size !== fb.size || fa.checksum !== fb.checksum;
    options.onProgress?.({ archive: name, kind: 'blob', entries: 0, bytesDone: 0 });
    return { name, kind: 'blob', status: changed ? 'changed' : 'unchanged', sizeBefore: fa.size, sizeAfter: fb.size };
  }
  if (fb.kind === 'image') return diffImage(ra, rb, fa, fb, options);
  return diffTree(ra, rb, fa, fb, options);
}

// ---------------------------------------------------------------------------------------------
// Images

/** Collects ranges, merging adjacent ones. */
class Ranges {
  readonly list: DiffRange[] = [];
  bytes = 0;
  add(offset: number, end: number): void {
    if (end <= offset) return;
    this.bytes += end - offset;
    const last = this.list[this.list.length - 1];
    if (last !== undefined && last.offset + last.length === offset) this.list[this.list.length - 1] = { offset: last.offset, length: end - last.offset };
    else this.list.push({ offset, length: end - offset });
  }
}

async function diffImage(ra: SnapshotReader, rb: SnapshotReader, fa: ManifestFile, fb: ManifestFile, options: DiffOptions): Promise<ImageArchiveDiff> {
  const name = fb.name;
  const [ia, ib] = await Promise.all([ra.imageIndex(name), rb.imageIndex(name)]);
  const total = Math.max(ia.size, ib.size);
  const base = { name, kind: 'image' as const, sizeBefore: ia.size, sizeAfter: ib.size, chunkSizeBefore: ia.chunkSize, chunkSizeAfter: ib.chunkSize };
  const ranges = new Ranges();
  const progress = (done: number): void => options.onProgress?.({ archive: name, kind: 'image', entries: 0, bytesDone: done, bytesTotal: total });
  if (fa.checksum === fb.checksum && ia.size === ib.size && ia.chunkSize === ib.chunkSize) {
    progress(total);
    return { ...base, status: 'unchanged', compared: 'checksum', ranges: [], changedBytes: 0 };
  }
  let compared: 'digests' | 'bytes';
  const details: ErrorDetails = { snapshot: rb.name, archive: name };
  if (ia.chunkSize === ib.chunkSize) {
    compared = 'digests';
    const cs = ia.chunkSize;
    const count = Math.max(ia.count, ib.count);
    for (let i = 0; i < count; i++) {
      if ((i & 0xffff) === 0) throwIfAborted(options.signal, details);
      const same = i < ia.count && i < ib.count && equalBytes(ia.digestAt(i), ib.digestAt(i));
      if (!same) ranges.add(i * cs, Math.min(total, (i + 1) * cs));
    }
    progress(total);
  } else {
    compared = 'bytes';
    // Chunk sizes are powers of two: the larger is a whole number of the smaller.
    const big = Math.max(ia.chunkSize, ib.chunkSize);
    const small = Math.min(ia.chunkSize, ib.chunkSize);
    for (let at = 0; at < total; at += big) {
      throwIfAborted(options.signal, details);
      const [x, y] = await Promise.all([readImage(ra, name, ia.size, at, big, options.signal), readImage(rb, name, ib.size, at, big, options.signal)]);
      for (let p = 0; p < big && at + p < total; p += small) {
        const px = x.subarray(Math.min(p, x.length), Math.min(p + small, x.length));
        const py = y.subarray(Math.min(p, y.length), Math.min(p + small, y.length));
        if (!equalBytes(px, py)) ranges.add(at + p, Math.min(total, at + p + small));
      }
      progress(Math.min(total, at + big));
    }
  }
  return { ...base, status: ranges.list.length === 0 ? 'unchanged' : 'changed', compared, ranges: ranges.list, changedBytes: ranges.bytes };
}

function readImage(r: SnapshotReader, name: string, size: number, offset: number, length: number, signal: AbortSignal | undefined): Promise<Uint8Array> {
  if (offset >= size) return Promise.resolve(new Uint8Array(0));
  return r.readAt(name, offset, length, signal === undefined ? {} : { signal });
}

// ---------------------------------------------------------------------------------------------
// Trees

/** One directory pair being merged: the remaining entries of each side. */
interface Frame {
  readonly a: readonly TreeItem[];
  readonly b: readonly TreeItem[];
  i: number;
  j: number;
}

const CONTENT_FIELDS: ReadonlySet<TreeChangeField> = new Set(['content', 'target', 'rdev']);

async function diffTree(ra: SnapshotReader, rb: SnapshotReader, fa: ManifestFile, fb: ManifestFile, options: DiffOptions): Promise<TreeArchiveDiff> {
  const name = fb.name;
  const counts: TreeDiffCounts = { added: 0, removed: 0, modified: 0, metadata: 0, typeChanged: 0, bytesAdded: 0, bytesRemoved: 0, entriesCompared: 0, bytesRead: 0 };
  const changes: TreeChange[] = [];
  const progress = (): void => options.onProgress?.({ archive: name, kind: 'tree', entries: counts.entriesCompared, bytesDone: counts.bytesRead });
  if (fa.checksum === fb.checksum && fa.size === fb.size) {
    progress();
    return { name, kind: 'tree', status: 'unchanged', changes, counts };
  }
  const [ta, tb] = await Promise.all([ra.tree(name), rb.tree(name)]);
  const details: ErrorDetails = { snapshot: rb.name, archive: name };
  const cmp = new TreeComparer(ta, tb, counts, details);

  const emit = (c: TreeChange): void => {
    switch (c.change) {
      case 'added':
        counts.added++;
        break;
      case 'removed':
        counts.removed++;
        break;
      case 'modified':
        counts.modified++;
        break;
      case 'metadata':
        counts.metadata++;
        break;
      case 'type':
        counts.typeChanged++;
        break;
    }
    if (options.onChange !== undefined) options.onChange(name, c);
    else changes.push(c);
  };
  const tick = (n: number): void => {
    const before = counts.entriesCompared;
    counts.entriesCompared += n;
    if (before >>> 8 !== counts.entriesCompared >>> 8) {
      throwIfAborted(options.signal, details);
      progress();
    }
  };

  const added = async (item: TreeItem, stack: Frame[]): Promise<void> => {
    emit({ change: 'added', path: item.path, kind: item.entry.kind, fields: [], after: item });
    counts.bytesAdded += item.entry.kind === 'file' ? item.entry.size : 0;
    if (item.entry.kind === 'dir') stack.push({ a: [], b: await tb.readDir(item), i: 0, j: 0 });
  };
  const removed = async (item: TreeItem, stack: Frame[]): Promise<void> => {
    emit({ change: 'removed', path: item.path, kind: item.entry.kind, fields: [], before: item });
    counts.bytesRemoved += item.entry.kind === 'file' ? item.entry.size : 0;
    if (item.entry.kind === 'dir') stack.push({ a: await ta.readDir(item), b: [], i: 0, j: 0 });
  };
  const both = async (x: TreeItem, y: TreeItem, stack: Frame[]): Promise<void> => {
    const kx = family(x.entry.kind);
    const ky = family(y.entry.kind);
    if (kx !== ky) {
      emit({ change: 'type', path: y.path, kind: y.entry.kind, previousKind: x.entry.kind, fields: [], before: x, after: y });
      counts.bytesRemoved += x.entry.kind === 'file' ? x.entry.size : 0;
      counts.bytesAdded += y.entry.kind === 'file' ? y.entry.size : 0;
      // What was below a directory went, what is below the new one came.
      if (x.entry.kind === 'dir') stack.push({ a: await ta.readDir(x), b: [], i: 0, j: 0 });
      if (y.entry.kind === 'dir') stack.push({ a: [], b: await tb.readDir(y), i: 0, j: 0 });
      return;
    }
    const fields = await cmp.fields(x, y);
    if (fields.length > 0) {
      const modified = fields.some((f) => CONTENT_FIELDS.has(f));
      emit({ change: modified ? 'modified' : 'metadata', path: y.path, kind: y.entry.kind, fields, before: x, after: y });
      if (modified && fields.includes('content')) {
        counts.bytesRemoved += x.entry.kind === 'file' ? x.entry.size : 0;
        counts.bytesAdded += y.entry.kind === 'file' ? y.entry.size : 0;
      }
    }
    if (x.entry.kind === 'dir') stack.push({ a: await ta.readDir(x), b: await tb.readDir(y), i: 0, j: 0 });
  };

  // Depth first, in name order: an entry, then (for a directory) everything below it, then the
  // next name. The stack holds one frame per directory level of the current path.
  const stack: Frame[] = [];
  tick(2);
  await both(ta.root, tb.root, stack);
  while (stack.length > 0) {
    const f = stack[stack.length - 1]!;
    const x = f.a[f.i];
    const y = f.b[f.j];
    if (x === undefined && y === undefined) {
      stack.pop();
      continue;
    }
    const c = x === undefined ? 1 : y === undefined ? -1 : compareNames(x.entry.name, y.entry.name);
    if (c < 0) {
      f.i++;
      tick(1);
      await removed(x!, stack);
    } else if (c > 0) {
      f.j++;
      tick(1);
      await added(y!, stack);
    } else {
      f.i++;
      f.j++;
      tick(2);
      await both(x!, y!, stack);
    }
  }
  progress();
  const status = counts.added + counts.removed + counts.modified + counts.metadata + counts.typeChanged === 0 ? 'unchanged' : 'changed';
  return { name, kind: 'tree', status, changes, counts };
}

/** Files and hardlinks are one family: a change between them is a `link` change, not a type change. */
function family(k: TreeEntryKind): TreeEntryKind {
  return k === 'hardlink' ? 'file' : k;
}

/** Compares entries of two tree archives. */
class TreeComparer {
  constructor(
    private readonly ta: TreeReader,
    private readonly tb: TreeReader,
    private readonly counts: TreeDiffCounts,
    private readonly details: ErrorDetails,
  ) {}

  /** What differs between two entries of the same family. */
  async fields(x: TreeItem, y: TreeItem): Promise<TreeChangeField[]> {
    const ex = x.entry;
    const ey = y.entry;
    const out: TreeChangeField[] = [];
    if (family(ex.kind) === 'file') {
      const fx = await this.resolve(this.ta, x);
      const fy = await this.resolve(this.tb, y);
      if (!(await this.sameContent(fx, fy))) out.push('content');
    }
    if (ex.kind === 'symlink' && !equalBytes(ex.target!, ey.target!)) out.push('target');
    if ((ex.kind === 'chardev' || ex.kind === 'blockdev') && (ex.rdevMajor !== ey.rdevMajor || ex.rdevMinor !== ey.rdevMinor)) out.push('rdev');
    if (ex.mode !== ey.mode) out.push('mode');
    if (ex.uid !== ey.uid) out.push('uid');
    if (ex.gid !== ey.gid) out.push('gid');
    if (ex.mtimeNs !== ey.mtimeNs) out.push('mtime');
    if (!sameXattrs(ex, ey)) out.push('xattrs');
    if (ex.kind !== ey.kind || (ex.kind === 'hardlink' && !equalBytes(ex.target!, ey.target!))) out.push('link');
    return out;
  }

  /** The file a hardlink shares its content with (the item itself for a file). */
  private async resolve(tree: TreeReader, item: TreeItem): Promise<TreeItem> {
    if (item.entry.kind !== 'hardlink') return item;
    const target = await tree.lookup(item.entry.target!);
    if (target === undefined || target.entry.kind !== 'file') {
      const path = Buffer.from(item.path).toString('utf8');
      throw new CairnError(
        'ERR_TREE_CORRUPT',
        `tree archive ${this.details.archive ?? ''}: hardlink ${path} points at ${Buffer.from(item.entry.target!).toString('utf8')}, which is not a file of the archive`,
        { ...this.details, path },
      );
    }
    return target;
  }

  /**
   * Whether two files hold the same bytes. The range is walked in segments where neither side
   * crosses a chunk boundary: a segment at the same offset of two chunks with the same digest is
   * equal without reading; any other segment is read from both sides and compared.
   */
  private async sameContent(x: TreeItem, y: TreeItem): Promise<boolean> {
    const size = x.entry.size;
    if (size !== y.entry.size) return false;
    if (size === 0) return true;
    const pa: DynamicIndex = this.ta.payload;
    const pb: DynamicIndex = this.tb.payload;
    let ia = pa.find(x.payloadStart);
    let ib = pb.find(y.payloadStart);
    let off = 0;
    while (off < size) {
      const ca = pa.chunkRange(ia);
      const cb = pb.chunkRange(ib);
      const posA = x.payloadStart + off;
      const posB = y.payloadStart + off;
      const n = Math.min(ca.end - posA, cb.end - posB, size - off);
      if (!(posA - ca.start === posB - cb.start && equalBytes(pa.digestAt(ia), pb.digestAt(ib)))) {
        const [bx, by] = await Promise.all([this.ta.readPayload(posA, n), this.tb.readPayload(posB, n)]);
        this.counts.bytesRead += n;
        if (!equalBytes(bx, by)) return false;
      }
      off += n;
      if (posA + n === ca.end) ia++;
      if (posB + n === cb.end) ib++;
    }
    return true;
  }
}

function sameXattrs(x: TreeEntry, y: TreeEntry): boolean {
  const a = x.xattrs ?? [];
  const b = y.xattrs ?? [];
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    if (!equalBytes(a[i]![0], b[i]![0]) || !equalBytes(a[i]![1], b[i]![1])) return false;
  }
  return true;
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

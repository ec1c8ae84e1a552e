/**
 * Reads a tree archive (layer L4) through its two dynamic indexes, chunk by chunk: listing a
 * directory or looking up a path reads only the chunks that hold the records involved, never the
 * whole archive.
 *
 * Everything read is checked before it is trusted: record CRCs and limits (lib/format/tree.ts), a
 * child record must lie before its parent's (records are written children first, so a malicious
 * archive cannot make a cycle), and every file's payload range must lie inside the payload stream.
 */
import { Readable } from 'node:stream';
import picomatch from 'picomatch';
import { CairnError, throwIfAborted, type ErrorDetails } from '../errors.js';
import type { DynamicIndex } from '../format/dynamic-index.js';
import {
  DIR_HEADER_SIZE,
  TREE_STREAM_HEADER_SIZE,
  TREE_TRAILER_SIZE,
  checkTreeStreamHeader,
  compareNames,
  decodeDirHeader,
  decodeDirRecord,
  decodeEntry,
  decodeRootEntry,
  decodeTreeTrailer,
  type TreeEntry,
  type TreeTrailer,
} from '../format/tree.js';
import type { ChunkReader } from '../store/chunk-reader.js';

/**
 * An entry with where it is.
 * @category Tree archives
 */
export interface TreeItem {
  /** Archive-relative path, raw bytes, `/`-separated (empty for the root). */
  readonly path: Buffer;
  /** The entry. */
  readonly entry: TreeEntry;
  /** Absolute payload offset of a file's content (0 for other kinds). */
  readonly payloadStart: number;
}

/** Largest directory record accepted (a sanity bound against absurd lengths). */
const MAX_RECORD = 1024 * 1024 * 1024;
/** Largest root entry record: an entry with the most and largest extended attributes the format allows. */
const MAX_ROOT_RECORD = 80 * 1024 * 1024;
/** Largest single read; callers read larger files in ranges. */
const MAX_READ = 1024 * 1024 * 1024;

/**
 * Random access to one tree archive.
 *
 * @example
 * ```ts
 * const tree = await reader.tree('etc.tree');
 * for (const item of await tree.list('ssh')) console.log(item.path.toString(), item.entry.size);
 * const conf = await tree.readFile('ssh/sshd_config');
 * ```
 * @category Tree archives
 */
export class TreeReader {
  private trailer!: TreeTrailer;
  private rootItem!: TreeItem;
  private metaEnd = 0;

  /** @internal */
  constructor(
    private readonly chunks: ChunkReader,
    /** The metadata stream's index. */
    readonly meta: DynamicIndex,
    /** The payload stream's index. */
    readonly payload: DynamicIndex,
    private readonly details: ErrorDetails,
  ) {}

  /** Reads the stream header, trailer and root entry. @internal */
  async init(): Promise<this> {
    if (this.meta.size < TREE_STREAM_HEADER_SIZE + TREE_TRAILER_SIZE) this.corrupt('metadata stream is too short');
    checkTreeStreamHeader(await this.readMeta(0, TREE_STREAM_HEADER_SIZE), this.details);
    this.trailer = decodeTreeTrailer(await this.readMeta(this.meta.size - TREE_TRAILER_SIZE, TREE_TRAILER_SIZE), this.details);
    this.metaEnd = this.meta.size - TREE_TRAILER_SIZE;
    if (this.trailer.payloadSize !== this.payload.size) this.corrupt(`trailer says ${this.trailer.payloadSize} payload bytes, the payload index ${this.payload.size}`);
    const at = this.trailer.rootEntryOffset;
    if (at < TREE_STREAM_HEADER_SIZE || at >= this.metaEnd) this.corrupt(`root entry offset ${at} is outside the metadata`);
    // The root entry record ends where the trailer starts; bound it before reading (an index that
    // lies about chunk sizes must not make us allocate for it).
    if (this.metaEnd - at > MAX_ROOT_RECORD) this.corrupt(`root entry record of ${this.metaEnd - at} bytes is too large`);
    const { entry, length } = decodeRootEntry(await this.readMeta(at, this.metaEnd - at), this.details);
    if (at + length !== this.metaEnd) this.corrupt(`${this.metaEnd - at - length} stray bytes between the root entry and the trailer`);
    if (entry.kind !== 'dir' || entry.child === undefined || entry.child.metaOffset >= at) this.corrupt('bad root entry');
    this.rootItem = { path: Buffer.alloc(0), entry, payloadStart: 0 };
    return this;
  }

  private corrupt(what: string): never {
    throw new CairnError('ERR_TREE_CORRUPT', `tree archive ${this.details.archive ?? ''}: ${what}`, this.details);
  }

  /** Entries in the archive, the root included (from the trailer). */
  get entryCount(): number {
    return this.trailer.entryCount;
  }

  /** Bytes of file content in the archive's payload stream. */
  get payloadSize(): number {
    return this.trailer.payloadSize;
  }

  /** The root directory. */
  get root(): TreeItem {
    return this.rootItem;
  }

  private async readStream(idx: DynamicIndex, offset: number, length: number): Promise<Uint8Array> {
    if (length === 0) return new Uint8Array(0);
    if (offset < 0 || length < 0 || offset + length > idx.size) this.corrupt(`range ${offset}+${length} is outside a ${idx.size}-byte stream`);
    if (length > MAX_READ) throw new CairnError('ERR_INVALID_ARGUMENT', `a read of ${length} bytes is too large: read in ranges of at most ${MAX_READ}`, this.details);
    const out = new Uint8Array(length);
    let i = idx.find(offset);
    let done = 0;
    while (done < length) {
      const { start, end } = idx.chunkRange(i);
      const data = await this.chunks.get(idx.digestAt(i), { details: this.details });
      if (data.byteLength !== end - start) this.corrupt(`chunk ${i} has ${data.byteLength} bytes, the index says ${end - start}`);
      const from = offset + done - start;
      const n = Math.min(end - start - from, length - done);
      out.set(data.subarray(from, from + n), done);
      done += n;
      i++;
    }
    return out;
  }

  private readMeta(offset: number, length: number): Promise<Uint8Array> {
    return this.readStream(this.meta, offset, length);
  }

  /** Reads `length` bytes of the payload stream at `offset`. */
  readPayload(offset: number, length: number): Promise<Uint8Array> {
    return this.readStream(this.payload, offset, length);
  }

  private async dirRecord(dir: TreeItem): Promise<{ entries: TreeEntry[]; base: number }> {
    const child = dir.entry.child;
    if (dir.entry.kind !== 'dir' || child === undefined) throw new CairnError('ERR_INVALID_ARGUMENT', `${show(dir.path)} is not a directory`, this.details);
    const at = child.metaOffset;
    if (at < TREE_STREAM_HEADER_SIZE || at + DIR_HEADER_SIZE > this.metaEnd) this.corrupt(`directory record offset ${at} is outside the metadata`);
    const head = decodeDirHeader(await this.readMeta(at, DIR_HEADER_SIZE), this.details);
    if (head.recordLength > MAX_RECORD || at + head.recordLength > this.metaEnd) this.corrupt(`directory record at ${at} runs past the metadata`);
    const entries = decodeDirRecord(await this.readMeta(at, head.recordLength), this.details);
    if (child.payloadBase > this.payload.size) this.corrupt(`payload base ${child.payloadBase} is past the payload`);
    for (const e of entries) {
      if (e.kind === 'dir' && (e.child === undefined || e.child.metaOffset >= at)) {
        this.corrupt(`directory ${show(joinPath(dir.path, e.name))} points at a record that is not before its parent's`);
      }
      if (e.kind === 'file' && child.payloadBase + e.payloadOffset + e.size > this.payload.size) {
        this.corrupt(`file ${show(joinPath(dir.path, e.name))}: ${e.size} bytes at ${child.payloadBase + e.payloadOffset} lie past the payload`);
      }
    }
    return { entries, base: child.payloadBase };
  }

  /** The entries of a directory item, in name order. */
  async readDir(dir: TreeItem): Promise<TreeItem[]> {
    const { entries, base } = await this.dirRecord(dir);
    return entries.map((entry) => ({ path: joinPath(dir.path, entry.name), entry, payloadStart: entry.kind === 'file' ? base + entry.payloadOffset : 0 }));
  }

  /**
   * Looks up one name in a directory by binary search over its offset table, reading only the
   * table and the entries it probes.
   */
  async lookupIn(dir: TreeItem, name: Uint8Array): Promise<TreeItem | undefined> {
    const child = dir.entry.child;
    if (dir.entry.kind !== 'dir' || child === undefined) return undefined;
    const at = child.metaOffset;
    if (at < TREE_STREAM_HEADER_SIZE || at + DIR_HEADER_SIZE > this.metaEnd) this.corrupt(`directory record offset ${at} is outside the metadata`);
    const head = decodeDirHeader(await this.readMeta(at, DIR_HEADER_SIZE), this.details);
    if (head.recordLength > MAX_RECORD || at + head.recordLength > this.metaEnd) this.corrupt(`directory record at ${at} runs past the metadata`);
    if (head.count === 0) return undefined;
    const table = await this.readMeta(at + head.tableOffset, 4 * head.count);
    const view = new DataView(table.buffer, table.byteOffset, table.byteLength);
    let lo = 0;
    let hi = head.count - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const rel = view.getUint32(mid * 4, true);
      if (rel >= head.entriesLength) this.corrupt(`entry offset ${rel} is outside its record`);
      const start = at + head.entriesOffset + rel;
      const room = head.entriesLength - rel;
      // Each entry is `varint length · bytes`: read the prefix, then exactly the entry.
      const prefix = await this.readMeta(start, Math.min(room, 8));
      let len = 0;
      let k = 0;
      for (let mul = 1; k < prefix.length; k++, mul *= 128) {
        len += (prefix[k]! & 0x7f) * mul;
        if ((prefix[k]! & 0x80) === 0) break;
      }
      if (k >= prefix.length || k + 1 + len > room) this.corrupt(`entry at ${start} runs past its record`);
      const { entry } = decodeEntry(await this.readMeta(start, k + 1 + len), 0, this.details);
      const c = compareNames(entry.name, name);
      if (c === 0) {
        const path = joinPath(dir.path, entry.name);
        if (entry.kind === 'dir' && (entry.child === undefined || entry.child.metaOffset >= at))
          this.corrupt(`directory ${show(path)} points at a record that is not before its parent's`);
        const payloadStart = entry.kind === 'file' ? child.payloadBase + entry.payloadOffset : 0;
        if (entry.kind === 'file' && payloadStart + entry.size > this.payload.size) this.corrupt(`file ${show(path)} lies past the payload`);
        return { path, entry, payloadStart };
      }
      if (c < 0) lo = mid + 1;
      else hi = mid - 1;
    }
    return undefined;
  }

  /** Looks up an archive path (`a/b/c`, raw bytes or a string); undefined when absent. */
  async lookup(path: string | Uint8Array): Promise<TreeItem | undefined> {
    const parts = splitPath(path);
    let cur: TreeItem | undefined = this.rootItem;
    for (const p of parts) {
      if (cur === undefined || cur.entry.kind !== 'dir') return undefined;
      cur = await this.lookupIn(cur, p);
    }
    return cur;
  }

  /** The entries of the directory at `path`. @throws `ERR_NOT_FOUND`, `ERR_INVALID_ARGUMENT` (not a directory) */
  async list(path: string | Uint8Array = ''): Promise<TreeItem[]> {
    const item = await this.lookup(path);
    if (item === undefined) throw new CairnError('ERR_NOT_FOUND', `no '${show(Buffer.from(path))}' in the archive`, { ...this.details, path: show(Buffer.from(path)) });
    return this.readDir(item);
  }

  /**
   * Reads a file's content, or a range of it.
   * @throws `ERR_NOT_FOUND`; `ERR_INVALID_ARGUMENT` when the path is not a regular file
   */
  async readFile(path: string | Uint8Array | TreeItem, offset = 0, length?: number): Promise<Uint8Array> {
    const item = isItem(path) ? path : await this.lookup(path);
    if (item === undefined) throw new CairnError('ERR_NOT_FOUND', `no '${show(Buffer.from(path as Uint8Array))}' in the archive`, this.details);
    if (item.entry.kind !== 'file') throw new CairnError('ERR_INVALID_ARGUMENT', `'${show(item.path)}' is a ${item.entry.kind}, not a file`, this.details);
    const size = item.entry.size;
    const from = Math.min(Math.max(0, offset), size);
    const n = Math.min(length ?? size - from, size - from);
    return this.readPayload(item.payloadStart + from, n);
  }

  /**
   * A regular file's content as a stream, read from the archive in ranges of 1 MiB as the consumer
   * reads. A hardlink reads the file it links to.
   * @throws `ERR_NOT_FOUND`; `ERR_INVALID_ARGUMENT` when the path is not a regular file or hardlink
   */
  async createReadStream(path: string | Uint8Array | TreeItem, options: { signal?: AbortSignal } = {}): Promise<Readable> {
    let item = isItem(path) ? path : await this.lookup(path);
    const name = isItem(path) ? show(path.path) : show(typeof path === 'string' ? Buffer.from(path) : path);
    if (item === undefined) throw new CairnError('ERR_NOT_FOUND', `no '${name}' in the archive`, { ...this.details, path: name });
    if (item.entry.kind === 'hardlink') {
      const first = item.entry.target === undefined ? undefined : await this.lookup(item.entry.target);
      if (first === undefined || first.entry.kind !== 'file')
        this.corrupt(`hardlink ${name} points at '${show(item.entry.target ?? new Uint8Array(0))}', which is not a file of this archive`);
      item = first;
    }
    if (item.entry.kind !== 'file') {
      const what =
        item.entry.kind === 'dir' ? 'a directory' : item.entry.kind === 'symlink' ? `a symlink to '${show(item.entry.target ?? new Uint8Array(0))}'` : `a ${item.entry.kind}`;
      throw new CairnError('ERR_INVALID_ARGUMENT', `'${name}' is ${what}, not a file`, { ...this.details, path: name });
    }
    const file = item;
    const size = file.entry.size;
    let off = 0;
    const signal = options.signal;
    const details = this.details;
    const self = this;
    async function* ranges(): AsyncGenerator<Uint8Array> {
      while (off < size) {
        throwIfAborted(signal, details);
        const n = Math.min(1024 * 1024, size - off);
        const data = await self.readPayload(file.payloadStart + off, n);
        off += n;
        yield data;
      }
    }
    return Readable.from(ranges(), { objectMode: false });
  }

  /**
   * The entries whose archive path matches a glob (`**\/*.conf`, `etc/ssh/*`), in walk order.
   * Paths are matched as UTF-8 (invalid bytes as U+FFFD); dot files match.
   */
  find(pattern: string | readonly string[]): AsyncGenerator<TreeItem> {
    return findInTree(this, pattern);
  }

  /**
   * Every entry below `start` (default the root), in the order the backup wrote them: a
   * directory's entries in name order, then each of its subdirectories in turn. A hardlink thus
   * always comes after the entry it links to. Memory: the pending directories' entries.
   */
  async *walk(start?: TreeItem): AsyncGenerator<TreeItem> {
    const top = start ?? this.rootItem;
    yield top;
    if (top.entry.kind !== 'dir') return;
    const seen = new Set<number>([top.entry.child!.metaOffset]);
    const pending: TreeItem[] = [top];
    while (pending.length > 0) {
      const dir = pending.pop()!;
      const items = await this.readDir(dir);
      const subdirs: TreeItem[] = [];
      for (const item of items) {
        yield item;
        if (item.entry.kind === 'dir') {
          const at = item.entry.child!.metaOffset;
          if (seen.has(at)) this.corrupt(`directory record at ${at} is referenced twice`);
          seen.add(at);
          subdirs.push(item);
        }
      }
      for (let i = subdirs.length - 1; i >= 0; i--) pending.push(subdirs[i]!);
    }
  }

  /**
   * Every entry below `start` (default the root), each directory right before its contents, as a
   * tar archive needs them: the root, its entries other than directories in name order, then each
   * subdirectory followed by everything below it. Entries other than directories come in the same
   * order as in {@link TreeReader.walk}, so a hardlink still comes after the entry it links to.
   */
  async *walkNested(start?: TreeItem): AsyncGenerator<TreeItem> {
    const top = start ?? this.rootItem;
    yield top;
    if (top.entry.kind !== 'dir') return;
    const seen = new Set<number>([top.entry.child!.metaOffset]);
    const pending: TreeItem[] = [top];
    while (pending.length > 0) {
      const dir = pending.pop()!;
      if (dir !== top) yield dir;
      const subdirs: TreeItem[] = [];
      for (const item of await this.readDir(dir)) {
        if (item.entry.kind !== 'dir') {
          yield item;
          continue;
        }
        const at = item.entry.child!.metaOffset;
        if (seen.has(at)) this.corrupt(`directory record at ${at} is referenced twice`);
        seen.add(at);
        subdirs.push(item);
      }
      for (let i = subdirs.length - 1; i >= 0; i--) pending.push(subdirs[i]!);
    }
  }
}

/**
 * The entries whose archive path matches a glob (`**\/*.conf`, `etc/ssh/*`), in walk order.
 * Paths are matched as UTF-8 (invalid bytes as U+FFFD); dot files match.
 */
export async function* findInTree(tree: TreeReader, pattern: string | readonly string[]): AsyncGenerator<TreeItem> {
  const match = picomatch(typeof pattern === 'string' ? pattern : [...pattern], { dot: true });
  for await (const item of tree.walk()) {
    if (item.path.length > 0 && match(show(item.path))) yield item;
  }
}

function isItem(x: unknown): x is TreeItem {
  return typeof x === 'object' && x !== null && 'entry' in x && 'path' in x;
}

/** `a/b` + `c`. */
export function joinPath(parent: Buffer, name: Uint8Array): Buffer {
  return parent.length === 0 ? Buffer.from(name) : Buffer.concat([parent, Buffer.from('/'), name]);
}

/** Splits an archive path into names, ignoring empty components and a leading `/`. */
export function splitPath(path: string | Uint8Array): Buffer[] {
  const b = typeof path === 'string' ? Buffer.from(path, 'utf8') : Buffer.from(path);
  const out: Buffer[] = [];
  let s = 0;
  for (let i = 0; i <= b.length; i++) {
    if (i === b.length || b[i] === 0x2f) {
      if (i > s) out.push(b.subarray(s, i));
      s = i + 1;
    }
  }
  return out;
}

/** A path for messages (invalid UTF-8 shown with replacement characters). */
export function show(path: Uint8Array): string {
  return Buffer.from(path).toString('utf8');
}

/**
 * A tree archive as a tar stream (layer L4): POSIX pax format (`tar-stream` frames the records),
 * for `cairn restore <snapshot> <name>.tree -` and {@link SnapshotReader.createTarStream}.
 *
 * Every entry keeps what tar can hold: regular files, directories, symlinks, hardlinks (a link
 * record naming the first path of the inode; one whose first path is filtered out carries the
 * content itself), character and block devices, FIFOs; modes with setuid/setgid/sticky, uid and
 * gid, mtimes with nanoseconds (pax `mtime`), extended attributes (pax `SCHILY.xattr.<name>`, as
 * GNU tar and bsdtar write them). Names, link targets and sizes too long or too large for the
 * ustar header go into pax records. The archive's root is the entry `./` (so extracting sets the
 * target directory's mode and time, as `tar -C dir -cf - .` would).
 *
 * What tar cannot carry is left out and reported as a problem (never silently): sockets (`SOCKET`);
 * entries whose name or link target is not valid UTF-8 (`NAME`: pax records are UTF-8 text here);
 * extended attributes whose name or value is not valid UTF-8 (`XATTR`). The archive stores no user
 * or group names, so none are written: `tar -x` as root restores the numeric owners.
 *
 * The stream is pulled: file contents are read from the archive in ranges as the consumer reads,
 * so a slow pipe holds memory to a few ranges. The signal stops it (the stream errors with
 * `ERR_ABORTED`).
 */
import { Readable } from 'node:stream';
import { pack as tarPack, type Pack } from 'tar-stream';
import { CairnError, throwIfAborted, type ErrorDetails } from '../errors.js';
import type { TreeEntry } from '../format/tree.js';
import { show, type TreeItem, type TreeReader } from './tree-reader.js';
import { treeFilter } from './tree-restore.js';
import type { TreeProblem, TreeProgress } from './tree-writer.js';

/**
 * Options of {@link SnapshotReader.createTarStream}.
 * @category Tree archives
 */
export interface TreeTarOptions {
  /** Only paths matching one of these globs (the directories leading to them are not written; `tar -x` makes them). */
  readonly include?: readonly string[];
  /** Leave out paths matching these globs. */
  readonly exclude?: readonly string[];
  /** Stops the stream (it errors with `ERR_ABORTED`). */
  readonly signal?: AbortSignal;
  /** Called after each entry, at most every few milliseconds' worth of work. */
  readonly onProgress?: (p: TreeProgress) => void;
}

/**
 * What a tar stream of a tree held once it ended.
 * @category Tree archives
 */
export interface TreeTarStats {
  /** Entries written (the root included). */
  entries: number;
  /** File content bytes written. */
  bytes: number;
  /** Entries or attributes tar cannot carry, left out (at most 1000 listed; `problemCount` has them all). */
  problems: TreeProblem[];
  /** Number of problems. */
  problemCount: number;
  /** Seconds from the first read to the end. */
  seconds: number;
}

/**
 * A tar stream of a tree archive: a Readable, and its counters once it has ended (`stats` resolves
 * when the last byte was produced, and rejects when the stream failed).
 * @category Tree archives
 */
export type TreeTarStream = Readable & {
  /** Resolves when the last byte was produced (rejects when the stream failed). */
  readonly stats: Promise<TreeTarStats>;
};

const READ_RANGE = 1024 * 1024;
const MAX_LISTED = 1000;
const MAX_OCTAL_7 = 0o7777777;
const MAX_OCTAL_11 = 0o77777777777;
/** The type bits added to every mode: tar-stream replaces a mode of 0 by its default otherwise. */
const TYPE_BIT = 0o100000;

/** Valid UTF-8 as a string; undefined when the bytes are not valid UTF-8. */
const decoder = new TextDecoder('utf-8', { fatal: true });
function utf8(bytes: Uint8Array): string | undefined {
  try {
    return decoder.decode(bytes);
  } catch {
    return undefined;
  }
}

/** A pax time: seconds with nine decimals, negative before the epoch. */
export function paxTime(ns: bigint): string {
  const neg = ns < 0n;
  const a = neg ? -ns : ns;
  const s = a / 1_000_000_000n;
  const f = a % 1_000_000_000n;
  return `${neg ? '-' : ''}${s}${f === 0n ? '' : `.${f.toString().padStart(9, '0')}`}`;
}

/**
 * Writes the tar stream of `tree` into a new Readable. The stream starts reading the archive when
 * the consumer first reads.
 *
 * @param source - the open tree archive, or a function opening it (called on the first read)
 * @param options - filters, signal, progress
 * @param details - ids for errors (snapshot, archive)
 */
export function treeTarStream(source: TreeReader | (() => Promise<TreeReader>), options: TreeTarOptions, details: ErrorDetails): TreeTarStream {
  const archive = details.archive ?? '';
  const pack = tarPack();
  const stats: TreeTarStats = { entries: 0, bytes: 0, problems: [], problemCount: 0, seconds: 0 };
  const t0 = performance.now();
  let settle!: { resolve: (s: TreeTarStats) => void; reject: (e: unknown) => void };
  const done = new Promise<TreeTarStats>((resolve, reject) => (settle = { resolve, reject }));
  done.catch(() => undefined);
  async function* bytes(): AsyncGenerator<Uint8Array> {
    // Started by the first read; the pack is pulled as the consumer reads (backpressure down to
    // the reads of the archive).
    (async () => produce(typeof source === 'function' ? await source() : source, pack, options, stats, archive, details))().then(
      () => {
        stats.seconds = (performance.now() - t0) / 1000;
        pack.finalize();
      },
      (e: unknown) => pack.destroy(e instanceof Error ? e : new Error(String(e))),
    );
    try {
      for await (const b of pack as AsyncIterable<Uint8Array>) yield b;
      settle.resolve(stats);
    } catch (e) {
      settle.reject(e);
      throw e;
    } finally {
      // The reader went away early (or an error): stop the producer.
      if (!pack.destroyed) pack.destroy(new Error('tar stream closed by its reader'));
    }
  }
  const out = Readable.from(bytes(), { objectMode: false, highWaterMark: 1024 * 1024 }) as Readable & { stats: Promise<TreeTarStats> };
  out.stats = done;
  return out;
}

/** Waits for a tar entry's sink to take more (drain), or fails when the stream went away. */
function drained(sink: NodeJS.EventEmitter): Promise<void> {
  return new Promise((resolve, reject) => {
    const off = (): void => {
      sink.off('drain', ok);
      sink.off('error', bad);
      sink.off('close', closed);
    };
    const ok = (): void => {
      off();
      resolve();
    };
    const bad = (e: Error): void => {
      off();
      reject(e);
    };
    const closed = (): void => {
      off();
      reject(new Error('tar stream closed'));
    };
    sink.on('drain', ok);
    sink.on('error', bad);
    sink.on('close', closed);
  });
}

async function produce(tree: TreeReader, pack: Pack, options: TreeTarOptions, stats: TreeTarStats, archive: string, details: ErrorDetails): Promise<void> {
  const problem = (rel: Uint8Array, code: string, message: string): void => {
    stats.problemCount++;
    if (stats.problems.length < MAX_LISTED) stats.problems.push({ path: show(rel) || '.', code, message });
  };
  const wanted = treeFilter(options);
  const filtered = (options.include?.length ?? 0) > 0 || (options.exclude?.length ?? 0) > 0;
  // With a filter, a hardlink's first path may not be in the stream: the files written are kept
  // (by path) so such a link carries the content instead.
  const written = filtered ? new Set<string>() : undefined;
  const entriesTotal = filtered ? undefined : tree.entryCount;
  const bytesTotal = filtered ? undefined : tree.payloadSize;
  let lastReport = 0;
  const report = (force: boolean): void => {
    if (options.onProgress === undefined) return;
    const now = performance.now();
    if (!force && now - lastReport < 50) return;
    lastReport = now;
    options.onProgress({
      archive,
      entries: stats.entries,
      bytes: stats.bytes,
      ...(entriesTotal === undefined ? {} : { entriesTotal }),
      ...(bytesTotal === undefined ? {} : { bytesTotal }),
    });
  };

  /** Writes one entry and waits until tar-stream has taken it whole. */
  const entry = async (header: Parameters<Pack['entry']>[0], body?: TreeItem): Promise<void> => {
    let taken!: { resolve: () => void; reject: (e: Error) => void };
    const finished = new Promise<void>((resolve, reject) => (taken = { resolve, reject }));
    finished.catch(() => undefined);
    const sink = pack.entry(header, (err) => (err ? taken.reject(err) : taken.resolve()));
    // Its errors reach us through the callback (and fail the pack): no unhandled 'error' event.
    sink.on('error', () => undefined);
    if (body !== undefined) {
      const size = body.entry.size;
      for (let off = 0; off < size;) {
        throwIfAborted(options.signal, details);
        const n = Math.min(READ_RANGE, size - off);
        const data = await tree.readPayload(body.payloadStart + off, n);
        off += n;
        stats.bytes += n;
        if (!sink.write(Buffer.from(data.buffer, data.byteOffset, data.byteLength))) await drained(sink);
        report(false);
      }
    }
    sink.end(undefined);
    await finished;
  };

  for await (const item of tree.walkNested()) {
    throwIfAborted(options.signal, details);
    const rel = item.path;
    const e = item.entry;
    if (rel.length > 0 && !wanted(rel)) continue;
    const name = rel.length === 0 ? '.' : utf8(rel);
    if (name === undefined) {
      problem(rel, 'NAME', 'left out: the name is not valid UTF-8, which a pax tar header cannot carry here');
      continue;
    }
    const header = baseHeader(name, e, (what) => problem(rel, 'XATTR', `extended attribute left out: its ${what} is not valid UTF-8`));
    switch (e.kind) {
      case 'dir':
        await entry({ ...header, name: `${name}/`, type: 'directory', mode: e.mode | TYPE_BIT });
        break;
      case 'file':
        if (e.size > MAX_OCTAL_11) header.pax = { ...header.pax, size: String(e.size) };
        await entry({ ...header, type: 'file', size: e.size }, item);
        written?.add(Buffer.from(rel).toString('binary'));
        break;
      case 'symlink': {
        const target = utf8(e.target ?? new Uint8Array(0));
        if (target === undefined) {
          problem(rel, 'NAME', 'left out: the symlink target is not valid UTF-8');
          continue;
        }
        await entry({ ...header, type: 'symlink', linkname: target });
        break;
      }
      case 'hardlink': {
        const targetBytes = e.target ?? new Uint8Array(0);
        const target = utf8(targetBytes);
        if (target === undefined) {
          problem(rel, 'NAME', 'left out: the hardlink target is not valid UTF-8');
          continue;
        }
        if (written === undefined || written.has(Buffer.from(targetBytes).toString('binary'))) {
          await entry({ ...header, type: 'link', linkname: target });
          break;
        }
        // The first path was filtered out: this one carries the content.
        const first = await tree.lookup(targetBytes);
        if (first === undefined || first.entry.kind !== 'file') {
          throw new CairnError('ERR_TREE_CORRUPT', `hardlink ${show(rel)} points at '${show(targetBytes)}', which is not a file of this archive`, { ...details, path: show(rel) });
        }
        const fh = baseHeader(name, first.entry, () => undefined);
        if (first.entry.size > MAX_OCTAL_11) fh.pax = { ...fh.pax, size: String(first.entry.size) };
        await entry({ ...fh, type: 'file', size: first.entry.size }, first);
        written.add(Buffer.from(rel).toString('binary'));
        break;
      }
      case 'chardev':
      case 'blockdev':
      case 'fifo': {
        const major = e.rdevMajor ?? 0;
        const minor = e.rdevMinor ?? 0;
        const pax: Record<string, string> = { ...header.pax };
        if (major > MAX_OCTAL_7) pax['SCHILY.devmajor'] = String(major);
        if (minor > MAX_OCTAL_7) pax['SCHILY.devminor'] = String(minor);
        await entry({
          ...header,
          ...(Object.keys(pax).length > 0 ? { pax } : {}),
          type: e.kind === 'chardev' ? 'character-device' : e.kind === 'blockdev' ? 'block-device' : 'fifo',
          devmajor: Math.min(major, MAX_OCTAL_7),
          devminor: Math.min(minor, MAX_OCTAL_7),
        });
        break;
      }
      case 'socket':
        problem(rel, 'SOCKET', 'left out: tar has no record for a socket');
        continue;
    }
    stats.entries++;
    report(false);
  }
  report(true);
}

/** The header fields every kind shares: mode, owner, time (pax for what ustar cannot hold), xattrs. */
function baseHeader(
  name: string,
  e: TreeEntry,
  badXattr: (what: string) => void,
): { name: string; mode: number; uid: number; gid: number; mtime: Date; pax?: Record<string, string> } {
  const pax: Record<string, string> = {};
  const secs = e.mtimeNs / 1_000_000_000n;
  // The ustar field: clamped (tar-stream writes it as a 32-bit number); pax has the exact time.
  const clamped = secs < 0n ? 0 : secs > 0x7fffffffn ? 0x7fffffff : Number(secs);
  if (e.mtimeNs % 1_000_000_000n !== 0n || secs !== BigInt(clamped)) pax['mtime'] = paxTime(e.mtimeNs);
  if (e.uid > MAX_OCTAL_7) pax['uid'] = String(e.uid);
  if (e.gid > MAX_OCTAL_7) pax['gid'] = String(e.gid);
  for (const [n, v] of e.xattrs ?? []) {
    const ns = utf8(n);
    const vs = utf8(v);
    if (ns === undefined) badXattr('name');
    else if (vs === undefined) badXattr(`value (of ${ns})`);
    else pax[`SCHILY.xattr.${ns}`] = vs;
  }
  return {
    name,
    mode: e.mode | TYPE_BIT,
    uid: Math.min(e.uid, MAX_OCTAL_7),
    gid: Math.min(e.gid, MAX_OCTAL_7),
    mtime: new Date(clamped * 1000),
    ...(Object.keys(pax).length > 0 ? { pax } : {}),
  };
}

/**
 * Restores a tree archive into a directory (layer L4), exactly: contents (sparse where zero),
 * modes with setuid/setgid/sticky, owners (as root), nanosecond mtimes, symlinks (never followed),
 * hardlinks (re-linked), devices, fifos, sockets and extended attributes.
 *
 * Nothing is ever written outside the target. Every path is the target joined with names that
 * passed the format's name check (no `/`, `.`, `..`, NUL); directories are created here or
 * checked with lstat (an existing symlink where a directory belongs is an error, or is replaced
 * with `overwrite`, never followed); files are opened with O_NOFOLLOW|O_EXCL; a hardlink may only
 * point at a file this restore already wrote.
 */
import { promises as fsp, constants as fsc, closeSync, fchmodSync, fchownSync, openSync, readFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import picomatch from 'picomatch';
import { CairnError, ioError, syscallCode, throwIfAborted, type ErrorDetails } from '../errors.js';
import { validateArchivePath, type TreeEntry } from '../format/tree.js';
import { nativeMknod, nativeSetXattr, nativeUtimes } from '../codec/native.js';
import { show, type TreeItem, type TreeReader } from './tree-reader.js';
import type { TreeProblem } from './tree-writer.js';

/** Options of {@link SnapshotReader.restoreTree}. */
export interface RestoreTreeOptions {
  /** Restore only paths matching one of these globs (and the directories leading to them). */
  readonly include?: readonly string[];
  /** Leave out paths matching these globs. */
  readonly exclude?: readonly string[];
  /** Allow a non-empty target; existing entries in the way are replaced. @defaultValue false */
  readonly overwrite?: boolean;
  /** Cancels the restore. */
  readonly signal?: AbortSignal;
  /** Called after each file. */
  readonly onProgress?: (p: { readonly entries: number; readonly bytes: number }) => void;
}

/** What a tree restore did. */
export interface RestoreTreeStats {
  /** Entries restored. */
  entries: number;
  /** File bytes written. */
  bytes: number;
  /** Things that could not be restored as they were (owners when not root, xattrs the target refuses). */
  problems: TreeProblem[];
  /** Seconds taken. */
  seconds: number;
}

const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;
const S_IFIFO = 0o010000;
const S_IFSOCK = 0o140000;
const BLOCK = 64 * 1024;
const ZERO = new Uint8Array(BLOCK);
/** Entries restored at once. */
const CONCURRENCY = 16;
/** Files up to this size are written in one go, synchronously. */
const SMALL_FILE = 256 * 1024;

/**
 * The process umask, read from /proc (changing it to read it would race with other threads
 * creating files). When it cannot be read, 0o777: every file then gets an explicit chmod.
 */
function currentUmask(): number {
  try {
    const m = /^Umask:\s*([0-7]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    return m === null ? 0o777 : parseInt(m[1]!, 8);
  } catch {
    return 0o777;
  }
}

/** Restores `tree` into `target`. */
export async function restoreTree(tree: TreeReader, target: string, options: RestoreTreeOptions, details: ErrorDetails): Promise<RestoreTreeStats> {
  try {
    return await restoreTreeInto(tree, target, options, details);
  } catch (e) {
    // File-system errors on the target (ENOSPC, EIO, EACCES, ...) become ERR_IO naming it.
    throw ioError(e, `restore into ${target}`, { ...details, path: target });
  }
}

async function restoreTreeInto(tree: TreeReader, target: string, options: RestoreTreeOptions, details: ErrorDetails): Promise<RestoreTreeStats> {
  const t0 = performance.now();
  const root = Buffer.from(path.resolve(target));
  const stats: RestoreTreeStats = { entries: 0, bytes: 0, problems: [], seconds: 0 };
  const problem = (p: Buffer, code: string, message: string): void => {
    if (stats.problems.length < 1000) stats.problems.push({ path: show(p) || '.', code, message });
  };
  const existing = await fsp.readdir(root).catch((e: unknown) => {
    if (syscallCode(e) === 'ENOENT') return undefined;
    throw new CairnError('ERR_IO', `cannot read restore target ${target}: ${(e as Error).message}`, { ...details, path: target }, e);
  });
  if (existing !== undefined && existing.length > 0 && options.overwrite !== true) {
    throw new CairnError('ERR_EXISTS', `restore target ${target} is not empty (pass overwrite / --overwrite)`, { ...details, path: target });
  }
  const fresh = existing === undefined || existing.length === 0;
  await fsp.mkdir(root, { recursive: true });
  const include = options.include !== undefined && options.include.length > 0 ? picomatch([...options.include], { dot: true }) : undefined;
  const exclude = options.exclude !== undefined && options.exclude.length > 0 ? picomatch([...options.exclude], { dot: true }) : undefined;
  const wanted = (rel: Buffer): boolean => {
    const s = show(rel);
    if (exclude?.(s) === true) return false;
    return include === undefined || include(s);
  };
  const isRoot = process.getuid?.() === 0;
  const myUid = process.geteuid?.() ?? -1;
  const myGid = process.getegid?.() ?? -1;
  const umask = currentUmask();
  const madeDirs = new Set<string>(['']);
  const dirsToFinish: { abs: Buffer; entry: TreeEntry }[] = [];

  const abs = (rel: Buffer): Buffer => (rel.length === 0 ? root : Buffer.concat([root, Buffer.from('/'), rel]));

  /** Makes way for a new entry at `p`: nothing may be there, unless overwriting. */
  const clear = async (p: Buffer, rel: Buffer): Promise<void> => {
    // A fresh target holds only what this restore made: nothing is in the way (and O_EXCL, mkdir
    // and symlink would fail rather than follow anything that appeared meanwhile).
    if (fresh) return;
    const st = await fsp.lstat(p).catch(() => undefined);
    if (st === undefined) return;
    if (options.overwrite !== true) throw new CairnError('ERR_EXISTS', `${show(rel)} exists in the restore target`, { ...details, path: show(rel) });
    if (st.isDirectory()) await fsp.rm(p, { recursive: true, force: true });
    else await fsp.unlink(p);
  };

  /** Makes sure the directory for `rel` exists as a real directory (created here or checked). */
  const ensureDir = async (rel: Buffer): Promise<void> => {
    const key = rel.toString('binary');
    if (madeDirs.has(key)) return;
    const slash = rel.lastIndexOf(0x2f);
    if (slash > 0) await ensureDir(rel.subarray(0, slash));
    const p = abs(rel);
    const st = await fsp.lstat(p).catch(() => undefined);
    if (st !== undefined && !st.isDirectory()) {
      if (options.overwrite !== true) throw new CairnError('ERR_EXISTS', `${show(rel)} exists in the restore target and is not a directory`, { ...details, path: show(rel) });
      await fsp.unlink(p);
    }
    if (st === undefined || !st.isDirectory()) await fsp.mkdir(p, { mode: 0o700 });
    madeDirs.add(key);
  };

  let notOwned = 0;
  const finishMeta = async (p: Buffer, rel: Buffer, e: TreeEntry, isLink: boolean, skipOwnerMode = false): Promise<void> => {
    if (!isRoot && (e.uid !== myUid || e.gid !== myGid)) notOwned++;
    if (!skipOwnerMode) {
      if (isRoot) {
        try {
          await fsp.lchown(p, e.uid, e.gid);
        } catch (err) {
          problem(rel, syscallCode(err) ?? 'EIO', `cannot set owner ${e.uid}:${e.gid}: ${(err as Error).message}`);
        }
      }
      if (!isLink) await fsp.chmod(p, e.mode);
    }
    for (const [name, value] of e.xattrs ?? []) {
      try {
        nativeSetXattr(p, name, value);
      } catch (err) {
        problem(rel, 'XATTR', `cannot set extended attribute ${show(name)}: ${(err as Error).message}`);
      }
    }
    nativeUtimes(p, e.mtimeNs, e.mtimeNs);
  };

  /** Writes a file with its content, owner and mode (through the open handle: fewer calls). */
  const setOwnerAndMode = (rel: Buffer, e: TreeEntry, chown: (uid: number, gid: number) => void, chmod: (mode: number) => void): void => {
    let chowned = false;
    if (isRoot && (e.uid !== myUid || e.gid !== myGid)) {
      try {
        chown(e.uid, e.gid);
        chowned = true;
      } catch (err) {
        problem(rel, syscallCode(err) ?? 'EIO', `cannot set owner ${e.uid}:${e.gid}: ${(err as Error).message}`);
      }
    }
    // chown clears setuid/setgid, and the umask may have cleared bits at create: set the mode
    // unless the file already has it.
    if (chowned || (e.mode & 0o777 & ~umask) !== e.mode) chmod(e.mode);
  };

  /**
   * A small file in one go, with synchronous calls: its bytes come from the chunk cache, and four
   * system calls on the calling thread cost microseconds where libuv round trips cost tens
   * (measured on a 100k-file tree).
   */
  const writeSmallFile = async (p: Buffer, item: TreeItem, rel: Buffer): Promise<void> => {
    const e = item.entry;
    const data = await tree.readPayload(item.payloadStart, e.size);
    const fd = openSync(p, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, e.mode & 0o777);
    try {
      let w = 0;
      while (w < data.byteLength) w += writeSync(fd, data, w, data.byteLength - w, w);
      stats.bytes += e.size;
      setOwnerAndMode(rel, e, (u, g) => fchownSync(fd, u, g), (m) => fchmodSync(fd, m));
    } finally {
      closeSync(fd);
    }
  };

  const writeFile = async (p: Buffer, item: TreeItem, rel: Buffer): Promise<void> => {
    const e = item.entry;
    if (e.size <= SMALL_FILE) return writeSmallFile(p, item, rel);
    const fh = await fsp.open(p, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, e.mode & 0o777);
    try {
      const size = item.entry.size;
      let end = 0;
      for (let off = 0; off < size; ) {
        throwIfAborted(options.signal, details);
        const n = Math.min(4 * 1024 * 1024, size - off);
        const data = await tree.readPayload(item.payloadStart + off, n);
        // Zero blocks become holes: sparse files restore sparse.
        for (let b = 0; b < data.byteLength; b += BLOCK) {
          const block = data.subarray(b, Math.min(b + BLOCK, data.byteLength));
          if (Buffer.compare(block, ZERO.subarray(0, block.byteLength)) === 0) continue;
          let w = 0;
          while (w < block.byteLength) w += (await fh.write(block, w, block.byteLength - w, off + b + w)).bytesWritten;
          end = off + b + block.byteLength;
        }
        off += n;
      }
      if (end < size) await fh.truncate(size); // a trailing hole
      stats.bytes += size;
      setOwnerAndMode(rel, e, (u, g) => fchownSync(fh.fd, u, g), (m) => fchmodSync(fh.fd, m));
    } finally {
      await fh.close();
    }
  };

  // Entries are restored several at a time (restoring is latency-bound: a small file costs half a
  // dozen system calls); directories are made in walk order before their contents, and a hardlink
  // waits for the file it links to.
  const pendingFiles = new Map<string, Promise<Buffer>>();
  const inFlight = new Set<Promise<void>>();
  let failure: unknown;
  const launch = (work: Promise<void>): void => {
    const p: Promise<void> = work.then(
      () => void inFlight.delete(p),
      (err: unknown) => {
        inFlight.delete(p);
        failure ??= err;
      },
    );
    inFlight.add(p);
  };
  const restoreEntry = async (item: TreeItem, p: Buffer): Promise<void> => {
    const rel = item.path;
    const e = item.entry;
    await clear(p, rel);
    switch (e.kind) {
      case 'file':
        await writeFile(p, item, rel);
        await finishMeta(p, rel, e, false, true);
        stats.entries++;
        options.onProgress?.({ entries: stats.entries, bytes: stats.bytes });
        return;
      case 'symlink':
        await fsp.symlink(Buffer.from(e.target!), p);
        break;
      case 'hardlink': {
        const valid = e.target !== undefined && validateArchivePath(e.target);
        const to = valid ? await pendingFiles.get(Buffer.from(e.target!).toString('binary')) : undefined;
        if (to !== undefined) {
          await fsp.link(to, p);
          stats.entries++;
          return; // the inode's metadata was set with its first name
        }
        // The first name was filtered out of this restore: this name gets the content. It must be a
        // regular file of this archive; anything else is a hostile or damaged archive.
        const first = valid ? await tree.lookup(e.target!) : undefined;
        if (first === undefined || first.entry.kind !== 'file') {
          throw new CairnError('ERR_UNSAFE_PATH', `hardlink ${show(rel)} points at '${show(e.target ?? new Uint8Array(0))}', which is not a file of this archive`, { ...details, path: show(rel) });
        }
        await writeFile(p, first, rel);
        await finishMeta(p, rel, first.entry, false, true);
        stats.entries++;
        return;
      }
      case 'chardev':
      case 'blockdev':
      case 'fifo':
      case 'socket': {
        const type = e.kind === 'chardev' ? S_IFCHR : e.kind === 'blockdev' ? S_IFBLK : e.kind === 'fifo' ? S_IFIFO : S_IFSOCK;
        try {
          nativeMknod(p, type | e.mode, e.rdevMajor ?? 0, e.rdevMinor ?? 0);
        } catch (err) {
          problem(rel, syscallCode((err as { details?: unknown }).details ?? err) ?? 'EPERM', `cannot create ${e.kind}: ${(err as Error).message}`);
          return;
        }
        break;
      }
      case 'dir':
        return;
    }
    await finishMeta(p, rel, e, e.kind === 'symlink');
    stats.entries++;
    options.onProgress?.({ entries: stats.entries, bytes: stats.bytes });
  };

  try {
    for await (const item of tree.walk()) {
      if (failure !== undefined) break;
      throwIfAborted(options.signal, details);
      const rel = item.path;
      const e = item.entry;
      if (rel.length === 0) {
        dirsToFinish.push({ abs: root, entry: e });
        continue;
      }
      if (!wanted(rel)) continue;
      const slash = rel.lastIndexOf(0x2f);
      if (slash > 0) await ensureDir(rel.subarray(0, slash));
      const p = abs(rel);
      if (e.kind === 'dir') {
        await ensureDir(rel);
        dirsToFinish.push({ abs: p, entry: e });
        stats.entries++;
        continue;
      }
      const work = restoreEntry(item, p);
      if (e.kind === 'file') {
        const done = work.then(() => p);
        done.catch(() => undefined);
        pendingFiles.set(rel.toString('binary'), done);
      }
      launch(work);
      if (inFlight.size >= CONCURRENCY) await Promise.race(inFlight);
    }
    await Promise.all(inFlight);
  } finally {
    await Promise.allSettled(inFlight);
  }
  if (failure !== undefined) throw failure;
  // Directories last, deepest first: creating their contents changed their mtimes.
  for (const d of dirsToFinish.reverse()) {
    const rel = d.abs.length > root.length ? d.abs.subarray(root.length + 1) : Buffer.alloc(0);
    if (rel.length > 0 && !madeDirs.has(rel.toString('binary'))) continue;
    await finishMeta(d.abs, rel, d.entry, false);
  }
  if (!isRoot && notOwned > 0) {
    problem(Buffer.alloc(0), 'EPERM', `owners not restored: not running as root (${notOwned} entries belong to other users)`);
  }
  stats.seconds = (performance.now() - t0) / 1000;
  return stats;
}

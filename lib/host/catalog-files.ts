/**
 * The catalog's files (lib/host, layer L3: host-local state over a local directory, never through
 * a backend). The catalog (lib/maintenance/catalog.ts) is a LevelDB index derived from the
 * datastore, rebuilt from it when missing: it is not datastore content, so it lives in the
 * datastore's local directory (`.catalog/`), or in a private temporary copy for a read-only
 * datastore. This module does the file work for it: the directories and their modes, the process
 * umask while LevelDB creates files, the temporary copies and their removal at exit.
 */
import { constants as fsc, readFileSync, rmSync } from 'node:fs';
import { chmod, lstat, mkdir, mkdtemp, open as openFile, readdir, realpath, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ioError, type ErrorDetails } from '../errors.js';
import { DIR_MODE } from '../backend/local.js';

/** The process umask while a catalog is open, shared across copies of this module like the registry. */
interface UmaskState {
  holders: number;
  /** The umask to put back, when this module changed it. */
  restore: number | undefined;
  /** The umask this module set. */
  set: number | undefined;
}
const UMASK_KEY = Symbol.for('cairn.catalog.umask');
const umaskState: UmaskState =
  ((globalThis as Record<symbol, unknown>)[UMASK_KEY] as UmaskState | undefined) ??
  ((globalThis as Record<symbol, unknown>)[UMASK_KEY] = { holders: 0, restore: undefined, set: undefined } satisfies UmaskState);

/** The temporary copies of this process, removed at exit (shared across copies of this module). */
interface TemporaryState {
  readonly dirs: Set<string>;
  hooked: boolean;
}
const TEMPORARY_KEY = Symbol.for('cairn.catalog.temporary');
const temporaryState: TemporaryState =
  ((globalThis as Record<symbol, unknown>)[TEMPORARY_KEY] as TemporaryState | undefined) ??
  ((globalThis as Record<symbol, unknown>)[TEMPORARY_KEY] = { dirs: new Set(), hooked: false } satisfies TemporaryState);

/** Remembers a temporary copy so that it is removed at process exit even when it is never closed. */
export function trackTemporary(dir: string): void {
  temporaryState.dirs.add(dir);
  if (temporaryState.hooked) return;
  temporaryState.hooked = true;
  process.on('exit', () => {
    for (const d of temporaryState.dirs) {
      try {
        rmSync(d, { recursive: true, force: true });
      } catch {
        // best effort at exit
      }
    }
    temporaryState.dirs.clear();
  });
}

export async function removeTemporary(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  temporaryState.dirs.delete(dir);
}

/** Name prefix of the temporary copies in `os.tmpdir()`. */
export const TEMPORARY_PREFIX = 'cairn-catalog-';
/** Directory mode of a temporary copy. */
export const TEMPORARY_DIR_MODE = 0o700;
/** The most a file of a temporary copy may grant. */
export const TEMPORARY_FILE_MODE_MAX = 0o600;
/** Attempts at a copy that no concurrent write of the source changed. */
const COPY_ATTEMPTS = 3;
/** LevelDB files not copied: the lock (held by whoever writes the source) and the info logs. */
const NOT_COPIED = new Set(['LOCK', 'LOG', 'LOG.old']);

/** Write bits for group and others: never set on a file LevelDB creates while a catalog is open. */
const CATALOG_UMASK_BITS = 0o022;
/** The most a catalog file may grant (as the datastore's other files). */
export const CATALOG_FILE_MODE_MAX = 0o640;

/** The process umask, read without changing it where the system tells it (Linux). */
function currentUmask(): number {
  try {
    const m = /^Umask:\s*([0-7]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (m !== null) return parseInt(m[1]!, 8);
  } catch {
    // no /proc: fall through
  }
  return process.umask();
}

export function tightenUmask(): void {
  if (umaskState.holders++ > 0) return;
  try {
    const cur = currentUmask();
    if ((cur & CATALOG_UMASK_BITS) === CATALOG_UMASK_BITS) return;
    const want = cur | CATALOG_UMASK_BITS;
    process.umask(want);
    umaskState.restore = cur;
    umaskState.set = want;
  } catch {
    // Worker threads cannot set the umask: the chmod passes cover it.
  }
}

export function relaxUmask(): void {
  if (--umaskState.holders > 0) return;
  const { restore, set } = umaskState;
  umaskState.restore = undefined;
  umaskState.set = undefined;
  if (restore === undefined) return;
  try {
    if (currentUmask() === set) process.umask(restore);
  } catch {
    // as above
  }
}

/** Takes group write and every bit for others (or, with `max` 0o600, every bit but the owner's) off the catalog's files. */
export async function tightenModes(dir: string, max = CATALOG_FILE_MODE_MAX): Promise<void> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return;
  }
  for (const name of names) {
    const p = path.join(dir, name);
    const st = await lstat(p).catch(() => undefined);
    if (st === undefined || !st.isFile()) continue;
    const mode = st.mode & 0o7777;
    if ((mode & ~max) !== 0) await chmod(p, mode & max).catch(() => undefined);
  }
}

/** The copied files of a catalog directory, each with its size and mtime; undefined when it cannot be listed. */
async function catalogFiles(src: string): Promise<Map<string, string> | undefined> {
  let names: string[];
  try {
    names = await readdir(src);
  } catch {
    return undefined;
  }
  const out = new Map<string, string>();
  for (const name of names.sort()) {
    if (NOT_COPIED.has(name)) continue;
    const st = await lstat(path.join(src, name), { bigint: true }).catch(() => undefined);
    if (st === undefined) return undefined;
    if (st.isFile()) out.set(name, `${st.size}:${st.mtimeNs}:${st.ino}`);
  }
  return out;
}

const sameFiles = (a: Map<string, string>, b: Map<string, string>): boolean => a.size === b.size && [...a].every(([k, v]) => b.get(k) === v);

/**
 * Copies the regular files of the catalog directory `src` into the empty `dst` (mode 0600), so that
 * no file of `src` changed meanwhile. False (and `dst` empty) when there is no catalog, it cannot be
 * read, it kept changing, or `signal` aborted (the caller then throws `ERR_ABORTED`).
 */
export async function copyCatalog(src: string, dst: string, signal: AbortSignal | undefined): Promise<boolean> {
  for (let attempt = 0; attempt < COPY_ATTEMPTS; attempt++) {
    const before = await catalogFiles(src);
    if (before === undefined || before.size === 0) return false;
    try {
      for (const name of before.keys()) await copyRegularFile(path.join(src, name), path.join(dst, name), signal);
    } catch {
      await emptyDir(dst);
      return false;
    }
    const after = await catalogFiles(src);
    if (after !== undefined && sameFiles(before, after)) return true;
    await emptyDir(dst);
  }
  return false;
}

/** Copies one regular file, opened without following a symbolic link, to a new file of mode 0600. */
async function copyRegularFile(from: string, to: string, signal: AbortSignal | undefined): Promise<void> {
  const input = await openFile(from, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
  try {
    if (!(await input.stat()).isFile()) throw new Error(`${from} is not a regular file`);
    const output = await openFile(to, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, TEMPORARY_FILE_MODE_MAX);
    try {
      const buf = Buffer.allocUnsafe(1 << 20);
      for (;;) {
        if (signal?.aborted === true) throw new Error('aborted');
        const { bytesRead } = await input.read(buf, 0, buf.length, null);
        if (bytesRead === 0) break;
        for (let at = 0; at < bytesRead;) at += (await output.write(buf, at, bytesRead - at)).bytesWritten;
      }
    } finally {
      await output.close();
    }
  } finally {
    await input.close();
  }
}

/** Removes everything in `dir` (a temporary copy), keeping the directory. */
export async function emptyDir(dir: string): Promise<void> {
  for (const name of await readdir(dir).catch(() => [] as string[])) await rm(path.join(dir, name), { recursive: true, force: true });
}

/** The real path of a directory (the catalog registry's key), or the path itself when it cannot be resolved. */
export async function realDir(dir: string): Promise<string> {
  return realpath(dir).catch(() => dir);
}

/** Makes the catalog directory (mode 0750, also when it was made 0755 before). */
export async function prepareCatalogDir(dir: string, details: ErrorDetails): Promise<void> {
  try {
    await mkdir(dir, { recursive: true, mode: DIR_MODE });
    await chmod(dir, DIR_MODE);
  } catch (e) {
    throw ioError(e, `cannot create the catalog ${dir}`, details);
  }
}

/**
 * Makes a private directory (0700) under `os.tmpdir()` for a temporary copy of a catalog, tracked
 * for removal at process exit.
 */
export async function makeTemporaryDir(what: string, details: ErrorDetails): Promise<string> {
  let dir: string;
  try {
    dir = await mkdtemp(path.join(tmpdir(), TEMPORARY_PREFIX));
  } catch (e) {
    throw ioError(e, `cannot make a temporary copy of ${what} in ${tmpdir()}`, { ...details, path: tmpdir() });
  }
  trackTemporary(dir);
  try {
    await chmod(dir, TEMPORARY_DIR_MODE);
  } catch (e) {
    await removeTemporary(dir);
    throw ioError(e, `cannot make a temporary copy of ${what} in ${dir}`, { ...details, path: dir });
  }
  return dir;
}

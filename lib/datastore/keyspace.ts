/**
 * Prefix operations of the datastore's layout over any backend (layer L4).
 *
 * The layout (layout.ts, FORMAT.md "Datastore layout") names folders: namespaces, groups,
 * snapshot directories. On the local backend they are real directories, made, listed, renamed and
 * removed as such, through its `localFiles` and `rename` capabilities (which keep their hardening:
 * descriptor-relative removals, no symlink followed). A backend without directories has only keys,
 * so here each operation has its second path:
 * - a folder exists when a key lies below it; an empty namespace is kept by a marker key
 *   ({@link NAMESPACE_MARKER}), written only on such backends;
 * - making a folder writes nothing (its first key makes it);
 * - listing a folder's children reads the keys below it;
 * - removing a folder deletes its keys (the `first` key before the others);
 * - moving a folder copies its keys (`last` after the others), then deletes the source (`last`
 *   first), so the copy is whole before it is visible and the source invisible before it goes.
 *
 * Nothing outside this module asks which path applies.
 */
import { localFilesOf, renamingOf, type Backend } from '../backend/backend.js';
import { unsafeEntry } from '../backend/local.js';
import type { ErrorDetails } from '../errors.js';

/**
 * Marker key of a namespace on a backend without directories (`<ns key>/.namespace`, empty): an
 * empty namespace is a directory on the local backend and this key elsewhere.
 */
export const NAMESPACE_MARKER = '.namespace';

/**
 * Whether a folder exists: a real directory on a backend with local files (anything else there is
 * planted: `ERR_UNSAFE_PATH`), any key below it elsewhere.
 */
export async function folderExists(backend: Backend, key: string, details: ErrorDetails = {}): Promise<boolean> {
  const local = localFilesOf(backend);
  if (local !== undefined) {
    const st = await local.stat(key);
    if (st !== undefined && st.type !== 'directory') throw unsafeEntry(local.pathOf(key), st.type === 'symlink' ? 'a symlink' : 'not a directory', details);
    return st !== undefined;
  }
  for await (const _ of backend.list(key)) return true;
  return false;
}

/** Makes a folder (and its parents): a directory on a backend with local files, nothing elsewhere. */
export async function makeFolder(backend: Backend, key: string): Promise<void> {
  await localFilesOf(backend)?.mkdir(key);
}

/** Makes a namespace folder: a directory on a backend with local files, its marker key elsewhere. */
export async function makeNamespaceFolder(backend: Backend, key: string): Promise<void> {
  const local = localFilesOf(backend);
  if (local !== undefined) await local.mkdir(key);
  else await backend.put(`${key}/${NAMESPACE_MARKER}`, new Uint8Array(0));
}

/** The names directly below a folder (a file or a child folder), sorted; empty when it does not exist. */
export async function childNames(backend: Backend, key: string): Promise<string[]> {
  const local = localFilesOf(backend);
  if (local !== undefined) return local.listNames(key);
  const base = key === '' ? '' : `${key}/`;
  const names = new Set<string>();
  for await (const e of backend.list(key)) names.add(e.key.slice(base.length).split('/', 1)[0]!);
  return [...names].sort();
}

/**
 * Removes a folder and everything below it (`first`, when given and present, goes before the
 * rest). On local files, through directory descriptors with nothing followed: a symlink, FIFO or
 * device below fails with `ERR_UNSAFE_PATH` before anything in its directory is removed.
 * @returns false when nothing was there
 */
export async function removeFolder(backend: Backend, key: string, first?: string): Promise<boolean> {
  const local = localFilesOf(backend);
  if (local !== undefined) return local.removeTree(key);
  return deleteKeys(backend, key, first);
}

/**
 * Removes a folder that holds only files (a snapshot directory), `first` first. On local files,
 * anything but a regular file in it fails with `ERR_UNSAFE_PATH` before anything is removed.
 * @returns false when the folder did not exist, or (local files) something appeared in it meanwhile
 */
export async function removeFileFolder(backend: Backend, key: string, first?: string): Promise<boolean> {
  const local = localFilesOf(backend);
  if (local !== undefined) return local.removeFileDir(key, first);
  return deleteKeys(backend, key, first);
}

/**
 * Removes an empty folder: `rmdir` on local files; elsewhere the marker of a namespace goes when
 * nothing else is below it.
 * @returns true when the folder is gone
 */
export async function removeEmptyFolder(backend: Backend, key: string): Promise<boolean> {
  const local = localFilesOf(backend);
  if (local !== undefined) return local.rmdir(key);
  let marker = false;
  for await (const e of backend.list(key)) {
    if (e.key !== `${key}/${NAMESPACE_MARKER}`) return false;
    marker = true;
  }
  if (marker) await backend.delete(`${key}/${NAMESPACE_MARKER}`);
  return true;
}

/**
 * Moves a folder to a new key that does not exist yet. With renames, one rename. Elsewhere every
 * key is copied, `last` after the others; then the source goes, `last` first. A move cut short
 * leaves the source whole (and at most a copy without `last`), or the target whole and part of the
 * source without its `last`: both are what an interrupted snapshot move may leave and resume from.
 */
export async function moveFolder(backend: Backend, from: string, to: string, options: { last?: string; sync?: boolean } = {}): Promise<void> {
  const renaming = renamingOf(backend);
  if (renaming !== undefined) {
    await renaming.rename(from, to, options.sync === undefined ? {} : { sync: options.sync });
    return;
  }
  const keys: string[] = [];
  for await (const e of backend.list(from)) keys.push(e.key);
  const lastKey = options.last === undefined ? undefined : `${from}/${options.last}`;
  const ordered = [...keys.filter((k) => k !== lastKey), ...keys.filter((k) => k === lastKey)];
  const sync = options.sync === true ? { sync: true } : {};
  for (const k of ordered) await backend.put(`${to}${k.slice(from.length)}`, await backend.get(k), sync);
  for (const k of ordered.reverse()) await backend.delete(k);
}

/** Pushes what was written to stable storage where the backend buffers it (one syncfs on local files). */
export async function syncBackend(backend: Backend): Promise<void> {
  await localFilesOf(backend)?.syncAll();
}

async function deleteKeys(backend: Backend, key: string, first?: string): Promise<boolean> {
  const keys: string[] = [];
  for await (const e of backend.list(key)) keys.push(e.key);
  if (keys.length === 0) return false;
  const firstKey = first === undefined ? undefined : `${key}/${first}`;
  if (firstKey !== undefined && keys.includes(firstKey)) await backend.delete(firstKey);
  for (const k of keys) if (k !== firstKey) await backend.delete(k);
  return true;
}

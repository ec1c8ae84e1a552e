/**
 * The datastore's local directory (lib/host, layer L3: host-local coordination, never through a
 * backend). Every datastore has one: on the local backend it is the datastore root itself; a
 * datastore on another backend keeps it as its local state directory. It holds the `.locks/` tree
 * (locks.ts, writer-registry.ts, the move journal) and nothing of the datastore's content.
 */
import { promises as fsp, constants as fsc } from 'node:fs';
import path from 'node:path';
import { ioError, syscallCode } from '../errors.js';
import { DIR_MODE, readRegularFile } from '../backend/local.js';
import { LOCK_DIR } from './locks.js';

/**
 * The names in a local directory; undefined when it does not exist.
 * @throws `ERR_IO` when it cannot be read
 */
export async function localDirEntries(dir: string): Promise<string[] | undefined> {
  return fsp.readdir(dir).catch((e: unknown) => {
    if (syscallCode(e) === 'ENOENT') return undefined;
    throw ioError(e, `cannot read ${dir}`, { path: dir });
  });
}

/** Makes the local directory and its `.locks/` tree (mode 0750). */
export async function prepareLocalDir(root: string): Promise<void> {
  try {
    await fsp.mkdir(root, { recursive: true, mode: DIR_MODE });
    await fsp.mkdir(path.join(root, LOCK_DIR), { recursive: true, mode: DIR_MODE });
  } catch (e) {
    throw ioError(e, `cannot create datastore at ${root}`, { path: root });
  }
}

/**
 * Why this process cannot write the local directory at `root`, or undefined when it can: `EROFS`
 * (read-only media or mount) or `EACCES` (this user may read but not write the lock tree, or the
 * root when the lock tree is missing). access(2) reports both without writing anything.
 */
export async function unwritable(root: string): Promise<string | undefined> {
  for (const dir of [path.join(root, LOCK_DIR), root]) {
    try {
      await fsp.access(dir, fsc.W_OK);
      return undefined;
    } catch (e) {
      const c = syscallCode(e);
      if (c === 'EROFS' || c === 'EACCES' || c === 'EPERM') return c;
      if (c !== 'ENOENT') return undefined; // let the operation itself report it
    }
  }
  return undefined;
}

/**
 * The nearest directory at or above `dir` that holds a Cairn datastore config named `configFile`,
 * if any (a datastore is never made inside another).
 */
export async function findEnclosingDatastore(dir: string, configFile: string, maxBytes: number): Promise<string | undefined> {
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    const text = await readRegularFile(path.join(d, configFile), { maxBytes }).then(
      (b) => Buffer.from(b).toString('utf8'),
      () => '',
    );
    if (text.includes('"cairn-datastore"')) return d;
    if (path.dirname(d) === d) return undefined;
  }
}

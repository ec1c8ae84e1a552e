/**
 * Test-only preload: with `CAIRN_TEST_BACKEND=memory`, every datastore a test creates or opens by
 * path keeps its content (config, chunks, namespaces, groups, snapshots) in a {@link MemoryBackend}
 * instead of the directory; the directory then holds only the host-local state (`.locks/`), as for
 * any datastore opened with `{ backend }`.
 *
 * Loaded with `--import` before the test file (test/backend/memory-datastore.test.ts does it through
 * tap's `--node-arg`), it replaces `Datastore.create` and `Datastore.open` with wrappers that pass
 * `{ backend }`: one MemoryBackend per root path, kept for the process, so reopening the same root
 * finds the same data. A root's content lives as long as its directory: creating a datastore where
 * no directory exists starts an empty backend, opening one whose directory is gone finds nothing, and
 * backends of removed directories are dropped (the tests' temp directories), which bounds memory.
 * Calls that already pass a backend are left alone.
 *
 * It also skips this file's subtests listed in memory-skips.ts (with their reasons), through tap's
 * own filter: `TAP_GREP` (one pattern matching exactly those names) with `TAP_INVERT=1`, set
 * before the test file imports tap.
 *
 * Without the variable this module does nothing. A memory backend does not outlive its process:
 * child processes (the CLI) see only the directory.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { MemoryBackend } from '../../lib/backend/memory.js';
import { Datastore, type DatastoreCreateOptions, type DatastoreOpenOptions } from '../../lib/datastore/datastore.js';
import { SKIPPED_SUBTESTS, exactNames } from './memory-skips.js';

/** The environment variable that turns the hook on, and its value. */
export const BACKEND_ENV = 'CAIRN_TEST_BACKEND';

/** Root path → the backend holding that datastore's content. */
const stores = new Map<string, MemoryBackend>();

/** Drops the backends whose directory is gone. */
function prune(): void {
  for (const root of stores.keys()) if (!existsSync(root)) stores.delete(root);
}

/** The backend for a root: the kept one while its directory exists; else a new one (kept when `keep`). */
function backendFor(dir: string, keep: boolean): MemoryBackend {
  const root = path.resolve(dir);
  prune();
  const found = stores.get(root);
  if (found !== undefined) return found;
  const b = new MemoryBackend({ name: `memory:${root}` });
  if (keep) stores.set(root, b);
  return b;
}

if (process.env[BACKEND_ENV] === 'memory') {
  const create = Datastore.create.bind(Datastore);
  const open = Datastore.open.bind(Datastore);
  Datastore.create = (dir: string, options: DatastoreCreateOptions = {}): Promise<Datastore> =>
    create(dir, options.backend === undefined ? { ...options, backend: backendFor(dir, true) } : options);
  Datastore.open = (dir: string, options: DatastoreOpenOptions = {}): Promise<Datastore> =>
    open(dir, options.backend === undefined ? { ...options, backend: backendFor(dir, false) } : options);
  const file = process.argv[1] === undefined ? '' : path.relative(process.cwd(), path.resolve(process.argv[1])).split(path.sep).join('/');
  const skipped = Object.keys(SKIPPED_SUBTESTS[file] ?? {});
  if (skipped.length > 0) {
    process.env.TAP_GREP = `/${exactNames(skipped).source}/`;
    process.env.TAP_INVERT = '1';
  }
} else if (process.env[BACKEND_ENV] !== undefined && process.env[BACKEND_ENV] !== 'local') {
  throw new Error(`${BACKEND_ENV}=${process.env[BACKEND_ENV]}: only 'memory' (or 'local') is known`);
}

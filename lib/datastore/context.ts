/**
 * What the datastore's parts share (layer L4): the open datastore's backend, config, chunk store,
 * worker pool and clock. {@link Datastore} implements it; groups, snapshots, readers and writers
 * receive it, so they never import the Datastore class (no import cycles).
 */
import path from 'node:path';
import type { Backend } from '../backend/backend.js';
import type { DatastoreConfig } from '../format/config.js';
import type { ChunkStore } from '../store/chunk-store.js';
import type { ChunkReader } from '../store/chunk-reader.js';
import type { WorkerPool } from '../pool/worker-pool.js';
import type { Clock } from '../util/clock.js';
import { acquireLock, FileLock, type LockMode } from '../host/locks.js';
import { CairnError, type ErrorDetails } from '../errors.js';

/** The shared state of an open datastore. */
export interface StoreContext {
  /**
   * Absolute path of the datastore's local directory: host-local state (locks, writer registry,
   * move journal) lives below it; on the local backend it is also where the content is.
   */
  readonly root: string;
  /** The storage of everything the datastore holds: every read and write of its content goes through it. */
  readonly backend: Backend;
  /** The datastore's config. */
  readonly config: DatastoreConfig;
  /** The chunk files. */
  readonly chunks: ChunkStore;
  /** Source of time. */
  readonly clock: Clock;
  /** How long lock waits last, ms (0: fail at once). */
  readonly lockTimeoutMs: number;
  /** True when the datastore (or its lock tree) cannot be written: readers run without locks, writers fail. */
  readonly readOnly: boolean;
  /** The worker pool (started on first use). */
  pool(): WorkerPool;
  /** The shared decoded-chunk reader. */
  chunkReader(): ChunkReader;
  /** Throws `ERR_NOT_OPEN` after close. */
  assertOpen(): void;
  /** Registers a child (reader, writer) that close() must close first; returns the unregister function. */
  attach(child: { close(): Promise<void> }): () => void;
  /**
   * Registers a hook that close() runs before anything else, while the datastore is still open (a
   * FUSE mount unmounts there); a hook that throws makes close() fail with its error and leaves the
   * datastore open. Returns the unregister function.
   */
  onClose(hook: () => Promise<void>): () => void;
}

/**
 * Takes a lock whose file is at `key` below the datastore's local directory, waiting up to `timeoutMs`; `signal` ends the
 * wait with `ERR_ABORTED`. On a read-only datastore a shared lock is a stand-in that holds nothing
 * (readers run without locks), and an exclusive one, which only writers take, fails with
 * `ERR_READ_ONLY`.
 */
export function lockAt(
  ctx: StoreContext,
  key: string,
  mode: LockMode,
  what: string,
  details: ErrorDetails,
  timeoutMs = ctx.lockTimeoutMs,
  signal?: AbortSignal,
): Promise<FileLock> {
  const file = path.join(ctx.root, key);
  if (ctx.readOnly) {
    if (mode === 'shared') return Promise.resolve(FileLock.none(file, mode));
    return Promise.reject(readOnlyError(ctx, what, details));
  }
  return acquireLock(file, mode, { timeoutMs, what, details: { datastore: ctx.root, ...details }, ...(signal === undefined ? {} : { signal }) });
}

/** The `ERR_READ_ONLY` error of an operation that would write to a read-only datastore. */
export function readOnlyError(ctx: Pick<StoreContext, 'root'>, what: string, details: ErrorDetails = {}): CairnError {
  return new CairnError('ERR_READ_ONLY', `datastore ${ctx.root} is read-only: ${what} cannot be locked for writing`, { datastore: ctx.root, ...details });
}

/**
 * What the datastore's parts share (layer L4): the open datastore's backend, config, chunk store,
 * worker pool and clock. {@link Datastore} implements it; groups, snapshots, readers and writers
 * receive it, so they never import the Datastore class (no import cycles).
 */
import path from 'node:path';
import type { LocalBackend } from '../backend/local.js';
import type { DatastoreConfig } from '../format/config.js';
import type { ChunkStore } from '../store/chunk-store.js';
import type { ChunkReader } from '../store/chunk-reader.js';
import type { WorkerPool } from '../pool/worker-pool.js';
import type { Clock } from '../util/clock.js';
import { acquireLock, type FileLock, type LockMode } from './locks.js';
import type { ErrorDetails } from '../errors.js';

/** The shared state of an open datastore. */
export interface StoreContext {
  /** Absolute path of the datastore root. */
  readonly root: string;
  /** The storage. */
  readonly backend: LocalBackend;
  /** The datastore's config. */
  readonly config: DatastoreConfig;
  /** The chunk files. */
  readonly chunks: ChunkStore;
  /** Source of time. */
  readonly clock: Clock;
  /** How long lock waits last, ms (0: fail at once). */
  readonly lockTimeoutMs: number;
  /** The worker pool (started on first use). */
  pool(): WorkerPool;
  /** The shared decoded-chunk reader. */
  chunkReader(): ChunkReader;
  /** Throws `ERR_NOT_OPEN` after close. */
  assertOpen(): void;
  /** Registers a child (reader, writer) that close() must close first; returns the unregister function. */
  attach(child: { close(): Promise<void> }): () => void;
}

/** Takes a lock whose file is at backend key `key`. */
export function lockAt(ctx: StoreContext, key: string, mode: LockMode, what: string, details: ErrorDetails, timeoutMs = ctx.lockTimeoutMs): Promise<FileLock> {
  return acquireLock(path.join(ctx.root, key), mode, { timeoutMs, what, details: { datastore: ctx.root, ...details } });
}

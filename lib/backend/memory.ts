/**
 * The memory backend (layer L2): keys in a `Map`, for tests and for short-lived datastores that
 * need no disk. It is the plainest object store: atomic puts and touch, no local files, no renames,
 * no directories (a prefix exists only through the keys below it). Code that works on it works on
 * any backend that keeps the contract; test/backend/conformance.ts runs against it and the local one.
 *
 * Values are copied in on `put` and out on `get`, so a caller that reuses its buffers (the chunk
 * pipeline does) cannot change what is stored.
 */
import { CairnError, throwIfAborted } from '../errors.js';
import { systemClock, type Clock } from '../util/clock.js';
import {
  assertKey,
  type Backend,
  type BackendCapabilities,
  type BackendStat,
  type ByteRange,
  type GetOptions,
  type ListEntry,
  type ListOptions,
  type PutOptions,
} from './backend.js';

interface Stored {
  readonly data: Uint8Array;
  mtimeMs: number;
}

/**
 * Options of {@link MemoryBackend}.
 * @category Backends
 */
export interface MemoryBackendOptions {
  /** Source of the modification times. @defaultValue the system clock */
  readonly clock?: Clock;
  /** The name shown as its location. @defaultValue `memory:<n>` */
  readonly name?: string;
}

let instances = 0;

/**
 * A {@link Backend} that keeps every key in memory.
 *
 * @example
 * ```ts
 * import { Datastore, MemoryBackend } from 'cairn';
 * // locks and other host-local state go to ./state; chunks and metadata stay in memory
 * await using ds = await Datastore.create('./state', { backend: new MemoryBackend() });
 * ```
 * @category Backends
 */
export class MemoryBackend implements Backend {
  readonly location: string;
  /** Atomic puts and touch; no local files, no renames. */
  readonly capabilities: BackendCapabilities = { atomicPut: true, touch: true, localFiles: false, rename: false };
  private readonly keys = new Map<string, Stored>();
  private readonly clock: Clock;
  private closed = false;

  /** @param options - clock and name */
  constructor(options: MemoryBackendOptions = {}) {
    this.clock = options.clock ?? systemClock;
    this.location = options.name ?? `memory:${++instances}`;
  }

  /** Number of keys stored (tests). */
  get size(): number {
    return this.keys.size;
  }

  locate(key: string): string {
    return `${this.location}/${key}`;
  }

  async put(key: string, data: Uint8Array | readonly Uint8Array[], _options: PutOptions = {}): Promise<void> {
    this.check(key);
    const parts = data instanceof Uint8Array ? [data] : data;
    const out = new Uint8Array(parts.reduce((n, b) => n + b.byteLength, 0));
    let at = 0;
    for (const b of parts) {
      out.set(b, at);
      at += b.byteLength;
    }
    await Promise.resolve();
    this.keys.set(key, { data: out, mtimeMs: this.clock.now() });
  }

  async get(key: string, range?: ByteRange, options: GetOptions = {}): Promise<Uint8Array> {
    this.check(key);
    await Promise.resolve();
    const v = this.keys.get(key);
    if (v === undefined) throw new CairnError('ERR_NOT_FOUND', `${this.locate(key)} does not exist`, { path: this.locate(key) });
    const max = options.maxBytes ?? Number.MAX_SAFE_INTEGER;
    const want = range === undefined ? v.data.byteLength : range.length;
    if (want > max) {
      const code = options.code ?? 'ERR_IO';
      throw new CairnError(
        code,
        `${range === undefined ? `${this.locate(key)} is ${want} bytes` : `a read of ${want} bytes from ${this.locate(key)} is`}, more than the ${max} its format allows`,
        { path: this.locate(key) },
      );
    }
    if (range === undefined) return v.data.slice();
    const start = Math.min(range.offset, v.data.byteLength);
    return v.data.slice(start, Math.min(v.data.byteLength, start + range.length));
  }

  async stat(key: string): Promise<BackendStat | undefined> {
    this.check(key);
    await Promise.resolve();
    const v = this.keys.get(key);
    return v === undefined ? undefined : { size: v.data.byteLength, mtimeMs: v.mtimeMs, isDirectory: false, type: 'file' };
  }

  async touch(key: string, timeMs: number): Promise<boolean> {
    this.check(key);
    await Promise.resolve();
    const v = this.keys.get(key);
    if (v === undefined) return false;
    v.mtimeMs = timeMs;
    return true;
  }

  async delete(key: string): Promise<boolean> {
    this.check(key);
    await Promise.resolve();
    return this.keys.delete(key);
  }

  async *list(prefix: string, options: ListOptions = {}): AsyncGenerator<ListEntry> {
    this.check(prefix, true);
    const base = prefix === '' ? '' : `${prefix}/`;
    // A snapshot of the matching keys: puts and deletes during the walk do not disturb it.
    const found: ListEntry[] = [];
    for (const [key, v] of this.keys) if (key.startsWith(base)) found.push({ key, size: v.data.byteLength, mtimeMs: v.mtimeMs });
    for (const e of found) {
      throwIfAborted(options.signal);
      await Promise.resolve();
      yield e;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  private check(key: string, allowEmpty = false): void {
    if (this.closed) throw new CairnError('ERR_NOT_OPEN', `backend ${this.location} is closed`, { path: this.location });
    assertKey(key, allowEmpty);
  }
}

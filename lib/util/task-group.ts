/**
 * A bounded group of concurrent tasks (layer L0): the loop that keeps several chunks, files or
 * entries in flight at once, written once.
 *
 * A producer calls {@link TaskGroup.run} for each task in its order; `run` waits while the task's
 * cost would pass the limit, then starts it. Costs bound a count (each task costs 1, the default)
 * or bytes (each task costs its size). The first failure wins: the group refuses to start more
 * tasks, {@link TaskGroup.run} and {@link TaskGroup.check} throw it, and {@link TaskGroup.wait}
 * throws it once every task in flight has settled, so nothing is left running when the caller
 * reports it. Later failures are swallowed (never unhandled rejections).
 *
 * @example
 * ```ts
 * const tasks = new TaskGroup({ limit: 16, signal, details });
 * try {
 *   for (const item of items) await tasks.run(() => restoreOne(item));
 *   await tasks.wait();
 * } catch (e) {
 *   await tasks.fail(e); // waits for the tasks in flight, throws the first failure
 * }
 * ```
 */
import { abortError, type ErrorDetails } from '../errors.js';

/** The options of a {@link TaskGroup}. */
export interface TaskGroupOptions {
  /**
   * The most cost in flight at once: tasks, when each costs 1, or bytes, when each costs its size.
   * A task costlier than the limit starts when nothing else is in flight, so progress never stalls.
   */
  readonly limit: number;
  /** Stops the group: checked before each task starts; the group then fails with `ERR_ABORTED`. */
  readonly signal?: AbortSignal | undefined;
  /** The ids the `ERR_ABORTED` error names. */
  readonly details?: ErrorDetails | undefined;
}

/** A task waiting for room. */
interface Waiter {
  readonly fn: () => Promise<void>;
  readonly cost: number;
  readonly resolve: () => void;
  readonly reject: (e: unknown) => void;
}

const STARTED: Promise<void> = Promise.resolve();

/**
 * Runs tasks concurrently, at most {@link TaskGroupOptions.limit} cost at once, in the order they
 * are given; stops at the first failure. See the module comment.
 */
export class TaskGroup {
  /** The most cost in flight at once. */
  readonly limit: number;
  private readonly signal: AbortSignal | undefined;
  private readonly details: ErrorDetails | undefined;
  private readonly queue: Waiter[] = [];
  private readonly idle: (() => void)[] = [];
  private active = 0;
  private cost = 0;
  private hasFailed = false;
  private failure: unknown;

  /** @param options - the limit, and a signal that stops the group */
  constructor(options: TaskGroupOptions) {
    if (!(options.limit > 0)) throw new TypeError(`TaskGroup: limit must be positive, got ${options.limit}`);
    this.limit = options.limit;
    this.signal = options.signal;
    this.details = options.details;
  }

  /** Tasks started and not yet settled. */
  get running(): number {
    return this.active;
  }

  /** Cost of the tasks in flight (limited by {@link TaskGroup.limit}, but for one costlier task). */
  get costInFlight(): number {
    return this.cost;
  }

  /** True once a task has failed, the signal stopped the group, or {@link TaskGroup.fail} was called. */
  get failed(): boolean {
    return this.hasFailed;
  }

  /**
   * Waits until there is room for `cost` more, then starts `fn` (synchronously, in the order of
   * the calls) and resolves: it does not wait for the task. A task's failure is the group's.
   * @param fn - the task
   * @param cost - its share of the limit: 1 for a count, its size for bytes
   * @throws (rejects with) the group's first failure instead of starting `fn` once the group has
   *   failed, and `ERR_ABORTED` when the signal is aborted
   */
  run(fn: () => Promise<void>, cost = 1): Promise<void> {
    if (this.queue.length === 0 && this.fits(cost)) {
      if (this.stopped()) return Promise.reject(this.failure);
      this.start(fn, cost);
      return STARTED;
    }
    if (this.stopped()) return Promise.reject(this.failure);
    return new Promise<void>((resolve, reject) => this.queue.push({ fn, cost, resolve, reject }));
  }

  /**
   * Starts `fn` now, outside the limit and whatever the group's state (a helper task such as a
   * single worker draining a queue); its failure is the group's and {@link TaskGroup.wait} waits
   * for it.
   * @returns a promise that settles with the task and never rejects
   */
  spawn(fn: () => Promise<void>): Promise<void> {
    return this.start(fn, 0);
  }

  /** Throws the group's first failure, or `ERR_ABORTED` (which becomes the failure) when the signal is aborted. */
  check(): void {
    if (this.stopped()) throw this.failure;
  }

  /**
   * Records `error` as the group's failure unless there already is one (the first wins), waits
   * for every task in flight, and throws the first failure: for the producer's own errors.
   * @returns never: it always throws
   */
  async fail(error: unknown): Promise<never> {
    this.record(error);
    await this.drain();
    throw this.failure;
  }

  /** Waits for every task in flight; throws the first failure, if any. */
  async wait(): Promise<void> {
    await this.drain();
    if (this.hasFailed) throw this.failure;
  }

  /** Waits for every task in flight, whatever their outcome; never throws (to drop the work). */
  drain(): Promise<void> {
    if (this.active === 0) return STARTED;
    return new Promise<void>((resolve) => this.idle.push(resolve));
  }

  /** True when the group has failed or the signal stopped it (recorded as the failure). */
  private stopped(): boolean {
    if (!this.hasFailed && this.signal?.aborted === true) this.record(abortError(this.signal, this.details));
    return this.hasFailed;
  }

  private record(error: unknown): void {
    if (this.hasFailed) return;
    this.hasFailed = true;
    this.failure = error;
    // Tasks waiting for room will not start.
    for (const w of this.queue.splice(0)) w.reject(error);
  }

  private fits(cost: number): boolean {
    return this.cost === 0 || this.cost + cost <= this.limit;
  }

  private start(fn: () => Promise<void>, cost: number): Promise<void> {
    this.active++;
    this.cost += cost;
    let p: Promise<void>;
    try {
      p = fn();
    } catch (e) {
      p = Promise.reject(e);
    }
    return this.settle(p, cost);
  }

  private async settle(p: Promise<void>, cost: number): Promise<void> {
    try {
      await p;
    } catch (e) {
      this.record(e);
    } finally {
      this.active--;
      this.cost -= cost;
      this.admit();
    }
  }

  /** Starts the waiting tasks that now fit, in order; wakes {@link TaskGroup.drain} when all are done. */
  private admit(): void {
    while (this.queue.length > 0 && this.fits(this.queue[0]!.cost)) {
      if (this.stopped()) break; // record() rejected the queue
      const w = this.queue.shift()!;
      this.start(w.fn, w.cost);
      w.resolve();
    }
    if (this.active === 0) for (const r of this.idle.splice(0)) r();
  }
}

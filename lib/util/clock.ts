/**
 * The clock (layer L0): the only place in lib/ that reads the wall clock, so tests can inject time.
 */

/**
 * A source of the current time.
 * @category Building blocks
 */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
}

/**
 * The system clock: the one reader of the wall clock in lib/.
 * @category Building blocks
 */
export const systemClock: Clock = { now: () => Date.now() };

/** Sleeps `ms` milliseconds; rejects with the signal's reason when aborted. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted === true) {
      reject(signal.reason as Error);
      return;
    }
    const onAbort = (): void => {
      clearTimeout(t);
      reject(signal?.reason as Error);
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** The progress line of long-running commands (backup, restore). */
import { humanBytes } from './format.js';

/** A progress line on stderr (`label done / total pct rate`), redrawn at most every 200 ms. */
export class Progress {
  private last = 0;
  private readonly t0 = performance.now();
  /** @param enabled false: print nothing (not a TTY, or `--json`). */
  constructor(private readonly enabled: boolean) {}

  /** Shows `done` of `total` bytes (total unknown: undefined). */
  update(label: string, done: number, total: number | undefined): void {
    if (!this.enabled) return;
    const now = performance.now();
    if (now - this.last < 200 && done !== total) return;
    this.last = now;
    const secs = (now - this.t0) / 1000;
    const rate = secs > 0 ? done / secs : 0;
    const pct = total ? ` ${((100 * done) / total).toFixed(1)}%` : '';
    process.stderr.write(`\r\x1b[K${label} ${humanBytes(done)}${total ? ` / ${humanBytes(total)}` : ''}${pct}  ${humanBytes(rate)}/s`);
  }

  /** Clears the line. */
  end(): void {
    if (this.enabled) process.stderr.write('\r\x1b[K');
  }
}

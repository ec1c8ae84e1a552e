/**
 * Progress of long-running commands (backup, restore, verify, gc, catalog): a bar with rate and
 * ETA on a terminal (cli-progress), one line per second with `--verbose` (logs, CI), nothing
 * otherwise or with `--json`. Always on stderr, so stdout stays the command's output.
 */
import { SingleBar } from 'cli-progress';
import { humanBytes } from './format.js';

/** How progress shows. */
export type ProgressMode = 'bar' | 'lines' | 'off';

/** The mode for these global options and this stderr: a bar on a TTY, lines with `--verbose`. */
export function progressMode(g: { json?: boolean; verbose?: boolean }, stream: { isTTY?: boolean } = process.stderr): ProgressMode {
  if (g.json === true) return 'off';
  if (g.verbose === true) return 'lines';
  return stream.isTTY === true ? 'bar' : 'off';
}

/** What is counted: bytes (shown as KiB, MiB...) or plain items (snapshots, shards). */
export type ProgressUnit = 'bytes' | 'items';

function show(n: number, unit: ProgressUnit): string {
  return unit === 'bytes' ? humanBytes(n) : String(Math.round(n));
}

function eta(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  if (seconds < 60) return `${Math.ceil(seconds)}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m${String(Math.ceil(seconds % 60)).padStart(2, '0')}s`;
  return `${Math.floor(seconds / 3600)}h${String(Math.floor((seconds % 3600) / 60)).padStart(2, '0')}m`;
}

/** One progress display; call {@link Progress.update} as work is done and {@link Progress.end} once. */
export class Progress {
  private bar: SingleBar | undefined;
  private label = '';
  private t0 = performance.now();
  private lastLine = Number.NEGATIVE_INFINITY;

  /**
   * @param mode - see {@link progressMode}
   * @param stream - where it goes (stderr)
   */
  constructor(
    private readonly mode: ProgressMode,
    private readonly stream: NodeJS.WritableStream & { isTTY?: boolean } = process.stderr,
  ) {}

  /** Shows `done` of `total` (undefined: unknown) for `label`; a new label starts a new count. */
  update(label: string, done: number, total: number | undefined, unit: ProgressUnit = 'bytes'): void {
    if (this.mode === 'off') return;
    const now = performance.now();
    if (label !== this.label) {
      this.stopBar();
      this.label = label;
      this.t0 = now;
      this.lastLine = Number.NEGATIVE_INFINITY;
    }
    const secs = (now - this.t0) / 1000;
    const rate = secs > 0 ? done / secs : 0;
    const left = total === undefined || rate <= 0 ? NaN : (total - done) / rate;
    const payload = { label, doneH: show(done, unit), totalH: total === undefined ? '?' : show(total, unit), rateH: `${show(rate, unit)}/s`, etaH: eta(left) };
    if (this.mode === 'lines') {
      if (now - this.lastLine < 1000 && done !== total) return;
      this.lastLine = now;
      const pct = total ? ` (${((100 * done) / total).toFixed(1)} %)` : '';
      this.stream.write(`${label}: ${payload.doneH} / ${payload.totalH}${pct}, ${payload.rateH}, ETA ${payload.etaH}\n`);
      return;
    }
    if (this.bar === undefined) {
      this.bar = new SingleBar({
        stream: this.stream,
        format: total === undefined ? '{label} {doneH} {rateH}' : '{label} [{bar}] {percentage}% {doneH}/{totalH} {rateH} ETA {etaH}',
        barsize: 24,
        hideCursor: false,
        clearOnComplete: true,
        fps: 5,
        etaBuffer: 50,
      });
      this.bar.start(total ?? 1, Math.min(done, total ?? 0), payload);
    } else {
      this.bar.update(total === undefined ? 0 : Math.min(done, total), payload);
    }
  }

  private stopBar(): void {
    if (this.bar !== undefined) {
      this.bar.stop();
      this.bar = undefined;
    }
  }

  /** Ends the display (the bar is cleared from the terminal). */
  end(): void {
    this.stopBar();
  }
}

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

/** A second count shown beside the main one: the entries of a tree beside its bytes. */
export interface ProgressCount {
  /** Done so far. */
  readonly done: number;
  /** Expected in all, when known. */
  readonly total?: number;
  /** What is counted (`entries`). */
  readonly what: string;
}

function countText(c: ProgressCount | undefined): string {
  if (c === undefined) return '';
  return c.total === undefined ? `${c.done} ${c.what}` : `${c.done} / ${c.total} ${c.what}`;
}

/**
 * One progress display; call {@link Progress.update} as work is done and {@link Progress.end} once.
 *
 * The label names the thing being worked on (an image, a tree archive, "snapshots"): a new label
 * starts a new count, rate and throttle, so what changes as work goes on (bytes, entries) is passed
 * as values, never in the label. With `--verbose` one line a second, plus the last state at the
 * end when that was not the line just printed.
 */
export class Progress {
  private bar: SingleBar | undefined;
  private label = '';
  private t0 = performance.now();
  private lastLine = Number.NEGATIVE_INFINITY;
  /** The line of the last update when it was not printed (throttled): printed by {@link Progress.end}. */
  private unprinted: string | undefined;

  /**
   * @param mode - see {@link progressMode}
   * @param stream - where it goes (stderr)
   */
  constructor(
    private readonly mode: ProgressMode,
    private readonly stream: NodeJS.WritableStream & { isTTY?: boolean } = process.stderr,
  ) {}

  /**
   * Shows `done` of `total` (undefined: unknown) for `label`; a new label starts a new count.
   * `count`: a second count shown beside it (a tree's entries beside its bytes).
   */
  update(label: string, done: number, total: number | undefined, unit: ProgressUnit = 'bytes', count?: ProgressCount): void {
    if (this.mode === 'off') return;
    const now = performance.now();
    if (label !== this.label) {
      this.flush();
      this.stopBar();
      this.label = label;
      this.t0 = now;
      this.lastLine = Number.NEGATIVE_INFINITY;
    }
    // An estimate that turned out short (a tree larger than its base) is no total any more.
    const tot = total !== undefined && done > total ? undefined : total;
    const secs = (now - this.t0) / 1000;
    const rate = secs > 0 ? done / secs : 0;
    const left = tot === undefined || rate <= 0 ? NaN : (tot - done) / rate;
    const counted = countText(count);
    const payload = { label, count: counted, doneH: show(done, unit), totalH: tot === undefined ? '?' : show(tot, unit), rateH: `${show(rate, unit)}/s`, etaH: eta(left) };
    if (this.mode === 'lines') {
      const pct = tot ? ` (${((100 * done) / tot).toFixed(1)} %)` : '';
      const line = `${label}: ${counted === '' ? '' : `${counted}, `}${payload.doneH} / ${payload.totalH}${pct}, ${payload.rateH}, ETA ${payload.etaH}\n`;
      if (now - this.lastLine < 1000 && done !== tot) {
        this.unprinted = line;
        return;
      }
      this.lastLine = now;
      this.unprinted = undefined;
      this.stream.write(line);
      return;
    }
    const withCount = counted === '' ? '' : ' {count}';
    if (this.bar === undefined) {
      this.bar = new SingleBar({
        stream: this.stream,
        format: tot === undefined ? `{label}${withCount} {doneH} {rateH}` : `{label} [{bar}] {percentage}%${withCount} {doneH}/{totalH} {rateH} ETA {etaH}`,
        barsize: 24,
        hideCursor: false,
        clearOnComplete: true,
        fps: 5,
        etaBuffer: 50,
      });
      this.bar.start(tot ?? 1, Math.min(done, tot ?? 0), payload);
    } else {
      this.bar.update(tot === undefined ? 0 : Math.min(done, tot), payload);
    }
  }

  /** Prints the last state if the throttle held it back. */
  private flush(): void {
    if (this.unprinted !== undefined) this.stream.write(this.unprinted);
    this.unprinted = undefined;
  }

  private stopBar(): void {
    if (this.bar !== undefined) {
      this.bar.stop();
      this.bar = undefined;
    }
  }

  /** Ends the display (the bar is cleared from the terminal; with lines, the last state is printed if it was not). */
  end(): void {
    this.flush();
    this.stopBar();
    // A later update with the same label starts afresh.
    this.label = '';
  }
}

/** Tree progress on a {@link Progress}: the archive as the label, bytes as the count, entries beside them. */
export function treeProgress(
  progress: Progress,
): (p: { readonly archive: string; readonly entries: number; readonly bytes: number; readonly entriesTotal?: number; readonly bytesTotal?: number }) => void {
  return (p) =>
    progress.update(p.archive, p.bytes, p.bytesTotal, 'bytes', { done: p.entries, ...(p.entriesTotal === undefined ? {} : { total: p.entriesTotal }), what: 'entries' });
}

/**
 * What every command of the `cairn` command line shares: the global options, the datastore they
 * name, and printing a result as text or JSON.
 */
import { constants } from 'node:os';
import { CairnError, Datastore, isCairnError } from '../index.js';

/** The global options of `cairn` (given before the command). */
export interface GlobalOptions {
  /** `--store <path>`: the datastore directory (else CAIRN_STORE). */
  store?: string;
  /** `--ns <namespace>`: the namespace (default: the root namespace). */
  ns?: string;
  /** `--json`: print JSON. */
  json?: boolean;
  /** `--verbose`: progress as lines on stderr even when it is not a terminal. */
  verbose?: boolean;
  /** `--lock-wait <seconds>`: how long to wait for a lock held by another operation (default 0: fail at once). */
  lockWait?: number;
}

/** Handed to every command's register function: reads the global options when a command runs. */
export interface CliContext {
  /** The global options, as parsed. */
  globals(): GlobalOptions;
  /** The namespace of `--ns`, `''` for the root. */
  ns(): string;
  /**
   * The signal of the command line: aborted by the first SIGINT or SIGTERM (with an `ERR_ABORTED`
   * {@link CairnError} naming the signal); a second signal ends the process at once. Pass it to
   * every long operation. See {@link interruptSignal}.
   */
  signal(): AbortSignal;
}

/** The signals that stop a command, and the exit code each gives (128 + the signal number, as shells report). */
export const INTERRUPT_EXIT: Readonly<Record<'SIGINT' | 'SIGTERM', number>> = {
  SIGINT: 128 + constants.signals.SIGINT,
  SIGTERM: 128 + constants.signals.SIGTERM,
};

let interrupt: { controller: AbortController; received?: 'SIGINT' | 'SIGTERM' } | undefined;

/**
 * The one AbortSignal of this process, aborted by the first SIGINT or SIGTERM. The handlers are
 * installed on the first call and stay for the life of the process: the first signal aborts with an
 * `ERR_ABORTED` CairnError whose `details.signal` names it; a second one (of either kind) prints one
 * line and exits at once with 128 + its number.
 */
export function interruptSignal(): AbortSignal {
  if (interrupt !== undefined) return interrupt.controller.signal;
  const state: { controller: AbortController; received?: 'SIGINT' | 'SIGTERM' } = { controller: new AbortController() };
  interrupt = state;
  const onSignal = (sig: 'SIGINT' | 'SIGTERM'): void => {
    if (state.received !== undefined) {
      process.stderr.write(`cairn: interrupted again (${sig}): exiting at once\n`);
      process.exit(INTERRUPT_EXIT[sig]);
    }
    state.received = sig;
    state.controller.abort(new CairnError('ERR_ABORTED', `interrupted (${sig})`, { signal: sig }));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return state.controller.signal;
}

/** The signal that interrupted this process (see {@link interruptSignal}), if one arrived. */
export function interruptedBy(): 'SIGINT' | 'SIGTERM' | undefined {
  return interrupt?.received;
}

/**
 * The `ERR_ABORTED` error to report for `e` when a signal interrupted the command (whatever `e`
 * is: an operation stopped by the signal may fail in its own way), else undefined.
 */
export function interruptError(e: unknown): CairnError | undefined {
  const sig = interruptedBy();
  if (sig === undefined) return undefined;
  if (isCairnError(e, 'ERR_ABORTED') && e.details['signal'] === sig) return e;
  return new CairnError('ERR_ABORTED', `interrupted (${sig})`, { signal: sig }, e);
}

/** The datastore directory: `--store`, else CAIRN_STORE; ERR_INVALID_ARGUMENT when neither is given. */
export function storePath(g: GlobalOptions): string {
  const p = g.store ?? process.env['CAIRN_STORE'];
  if (p === undefined || p === '') {
    throw new CairnError('ERR_INVALID_ARGUMENT', 'no datastore given: pass --store <path> or set CAIRN_STORE');
  }
  return p;
}

/** Prints `json` (with `--json`) or `text` to stdout, adding a final newline to non-empty text. */
export function print(g: GlobalOptions, json: unknown, text: string): void {
  process.stdout.write(g.json === true ? `${JSON.stringify(json, null, 2)}\n` : text.endsWith('\n') || text === '' ? text : `${text}\n`);
}

let warnedReadOnly = false;

/**
 * Says once per process, on stderr, that the datastore is read-only and is read without locks.
 */
export function warnReadOnly(ds: Datastore): void {
  if (!ds.readOnly || warnedReadOnly) return;
  warnedReadOnly = true;
  process.stderr.write(`cairn: warning: datastore ${ds.root} is read-only (${ds.readOnlyReason}): reading without locks, so a prune or GC run elsewhere could remove what is being read; commands that write fail\n`);
}

/**
 * Opens the datastore of the global options (waiting `--lock-wait` seconds for locks), runs `fn`
 * on it and closes it (warning when it is read-only).
 */
export async function withStore<T>(g: GlobalOptions, fn: (ds: Datastore) => Promise<T>): Promise<T> {
  const ds = await Datastore.open(storePath(g), g.lockWait === undefined ? {} : { lockTimeoutMs: Math.round(g.lockWait * 1000) });
  warnReadOnly(ds);
  try {
    return await fn(ds);
  } finally {
    await ds.close();
  }
}

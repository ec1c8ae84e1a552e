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

interface InterruptState {
  /** Made when a command asks for the signal ({@link interruptSignal}). */
  controller?: AbortController;
  received?: 'SIGINT' | 'SIGTERM';
  /** Whether errors go out as JSON. */
  json: () => boolean;
}

let interrupt: InterruptState | undefined;

/** The one line said when a signal ends the process, as text or JSON. */
function interruptLine(state: InterruptState, sig: 'SIGINT' | 'SIGTERM', extra = ''): string {
  const message = `interrupted (${sig})${extra}`;
  return state.json() ? `${JSON.stringify({ error: { code: 'ERR_ABORTED', message, details: { signal: sig } } })}\n` : `cairn: ${message}\n`;
}

/**
 * Installs the SIGINT/SIGTERM handlers of the command line (once; later calls do nothing). The
 * first signal aborts {@link interruptSignal} when the command asked for it, so that it stops
 * cleanly; a command that did not ask has no clean stop, and the process ends at once. Either
 * way the exit code is 128 + the signal number (130, 143) with one line on stderr; a second signal
 * ends the process at once.
 * @param json - whether the line is to be JSON (`--json`)
 */
export function installInterruptHandlers(json: () => boolean = () => false): void {
  if (interrupt !== undefined) return;
  const state: InterruptState = { json };
  interrupt = state;
  const onSignal = (sig: 'SIGINT' | 'SIGTERM'): void => {
    if (state.received !== undefined || state.controller === undefined) {
      process.stderr.write(interruptLine(state, sig, state.received === undefined ? '' : ' again: exiting at once'));
      process.exit(INTERRUPT_EXIT[sig]);
    }
    state.received = sig;
    state.controller.abort(new CairnError('ERR_ABORTED', `interrupted (${sig})`, { signal: sig }));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}

/**
 * The one AbortSignal of this process, aborted by the first SIGINT or SIGTERM with an
 * `ERR_ABORTED` CairnError whose `details.signal` names it (see {@link installInterruptHandlers},
 * installed here when that has not been done).
 */
export function interruptSignal(): AbortSignal {
  installInterruptHandlers();
  const state = interrupt!;
  state.controller ??= new AbortController();
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
  process.stderr.write(
    `cairn: warning: datastore ${ds.root} is read-only (${ds.readOnlyReason}): reading without locks, so a prune or GC run elsewhere could remove what is being read; commands that write fail\n`,
  );
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

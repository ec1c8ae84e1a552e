/**
 * What every command of the `cairn` command line shares: the global options, the datastore they
 * name, and printing a result as text or JSON.
 */
import { CairnError, Datastore } from '../index.js';

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
}

/** Handed to every command's register function: reads the global options when a command runs. */
export interface CliContext {
  /** The global options, as parsed. */
  globals(): GlobalOptions;
  /** The namespace of `--ns`, `''` for the root. */
  ns(): string;
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

/** Opens the datastore of the global options, runs `fn` on it and closes it (warning when it is read-only). */
export async function withStore<T>(g: GlobalOptions, fn: (ds: Datastore) => Promise<T>): Promise<T> {
  const ds = await Datastore.open(storePath(g));
  warnReadOnly(ds);
  try {
    return await fn(ds);
  } finally {
    await ds.close();
  }
}

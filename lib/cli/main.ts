#!/usr/bin/env node
/**
 * The `cairn` command line (layer L6). Uses the public API only (../index.js).
 *
 * Grammar modelled on proxmox-backup-client. Exit codes: 0 success, 1 other error, 2 usage or
 * invalid input, 3 not found, 4 locked or in use, 5 corrupt data, 6 I/O error, 7 a backup that
 * committed its snapshot with tree entries left out or changed.
 *
 * This file builds the program (global options, then one register function per command from
 * ./commands/, in the order `cairn --help` lists them), runs it and maps errors to exit codes.
 */
import { readFileSync, realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { Command, CommanderError, Option } from 'commander';
import { CairnError, isCairnError, setLockHolderName } from '../index.js';
import { INTERRUPT_EXIT, installInterruptHandlers, interruptError, interruptSignal, type CliContext, type GlobalOptions } from './context.js';
import { exitCodeOf } from './exit-codes.js';
import { registerBackup } from './commands/backup.js';
import { registerBenchmark } from './commands/benchmark.js';
import { registerCatalog } from './commands/catalog.js';
import { registerFind } from './commands/find.js';
import { registerForget } from './commands/forget.js';
import { registerGc } from './commands/gc.js';
import { registerGroup } from './commands/group.js';
import { registerInit } from './commands/init.js';
import { registerLs } from './commands/ls.js';
import { registerMount, registerUmount } from './commands/mount.js';
import { registerNotes } from './commands/notes.js';
import { registerNs } from './commands/ns.js';
import { registerProtect, registerUnprotect } from './commands/protect.js';
import { registerPrune } from './commands/prune.js';
import { registerRestore } from './commands/restore.js';
import { registerCat } from './commands/cat.js';
import { registerShow } from './commands/show.js';
import { registerDiff } from './commands/diff.js';
import { registerSnapshots } from './commands/snapshots.js';
import { registerStats } from './commands/stats.js';
import { registerVerify } from './commands/verify.js';

export { exitCodeOf } from './exit-codes.js';
export { humanBytes } from './format.js';
export { parseRangesFile } from './commands/backup.js';

/** The package's version, from the package.json two levels up (`lib/cli/` and `dist/cli/` alike). */
export const VERSION: string = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/** `--json` given (before a `--`): usage errors are then printed as JSON too. */
let jsonErrors = false;

/** True when `argv` holds `--json` before any `--`. */
function wantsJson(argv: readonly string[]): boolean {
  for (const a of argv) {
    if (a === '--') return false;
    if (a === '--json') return true;
  }
  return false;
}

/** `--lock-wait <seconds>`: a number of seconds, 0 or more. */
function parseLockWait(v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n < 0 || n > 86_400) {
    throw new CairnError('ERR_INVALID_ARGUMENT', `--lock-wait must be a number of seconds from 0 to 86400, not '${v}'`);
  }
  return n;
}

/** The full name of a command (`ns create`), without the program's. */
function commandPath(c: Command): string {
  const names: string[] = [];
  for (let x: Command | null = c; x !== null && x.parent !== null; x = x.parent) names.unshift(x.name());
  return names.join(' ');
}

/** Builds the program (exported for tests). */
export function buildProgram(): Command {
  const program = new Command();
  program
    // In JSON mode commander's own error text goes away: main prints the error as JSON instead.
    // Settings are copied to subcommands as they are made, so this comes first. Help asked for
    // (--help) goes to stdout and stays.
    .configureOutput({
      writeErr: (str) => {
        if (!jsonErrors) process.stderr.write(str);
      },
      outputError: (str, write) => {
        if (!jsonErrors) write(str);
      },
    })
    .name('cairn')
    .description('Deduplicating backup store: datastores, namespaces, snapshots of images and files')
    .version(VERSION, '-V, --version', 'print the version')
    .addOption(new Option('--store <path>', 'datastore directory').env('CAIRN_STORE'))
    .option('--ns <namespace>', 'namespace (default: the root namespace)')
    .option('--json', 'print JSON')
    .option('--verbose', 'progress as one line per second on stderr (also when it is not a terminal)')
    .option('--lock-wait <seconds>', 'wait up to this long for a lock held by another operation (default 0: fail at once)', parseLockWait)
    .showHelpAfterError()
    .exitOverride()
    .addHelpText(
      'after',
      '\nExamples:\n  cairn init ./cairn-store\n  CAIRN_STORE=./cairn-store cairn backup vm/100 disk.img:./disk.raw\n  cairn --store ./cairn-store snapshots --json\n\nExit codes: 0 ok, 1 other, 2 usage/invalid input, 3 not found, 4 locked/protected, 5 corrupt, 6 I/O,\n7 backup committed with entries left out or changed (see cairn backup --help).',
    );

  // Whoever finds a lock this process holds is told which command holds it.
  program.hook('preAction', (_program, action) => setLockHolderName(`cairn ${commandPath(action)}`));

  const globals = (): GlobalOptions => program.opts<GlobalOptions>();
  const cli: CliContext = { globals, ns: (): string => globals().ns ?? '', signal: interruptSignal };

  registerInit(program, cli);
  registerBackup(program, cli);
  registerSnapshots(program, cli);
  registerShow(program, cli);
  registerDiff(program, cli);
  registerRestore(program, cli);
  registerCat(program, cli);
  registerLs(program, cli);
  registerFind(program, cli);
  registerCatalog(program, cli);
  registerPrune(program, cli);
  registerVerify(program, cli);
  registerProtect(program, cli);
  registerUnprotect(program, cli);
  registerNotes(program, cli);
  registerForget(program, cli);
  registerGc(program, cli);
  registerStats(program, cli);
  registerGroup(program, cli);
  registerMount(program, cli);
  registerUmount(program, cli);
  registerNs(program, cli);
  registerBenchmark(program, cli);

  return program;
}

/** Runs the command line; returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  jsonErrors = wantsJson(argv);
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: 'user' });
    // A command that finished but found problems (verify) sets its own code.
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.help' || e.code === 'commander.version') return 0;
      if (jsonErrors) process.stderr.write(`${JSON.stringify({ error: { code: 'ERR_USAGE', message: e.message.replace(/^error: /, '') } })}\n`);
      return 2;
    }
    const json = program.opts<GlobalOptions>().json === true;
    const stopped = interruptError(e);
    if (stopped !== undefined) {
      // Stopped by SIGINT/SIGTERM: one line, and the exit code a shell reports for the signal.
      const sig = stopped.details['signal'] as keyof typeof INTERRUPT_EXIT;
      process.stderr.write(json ? `${JSON.stringify({ error: { code: stopped.code, message: stopped.message, details: { signal: sig } } })}\n` : `cairn: ${stopped.message}\n`);
      return INTERRUPT_EXIT[sig];
    }
    if (isCairnError(e)) {
      process.stderr.write(json ? `${JSON.stringify({ error: e.toJSON() })}\n` : `cairn: ${e.code}: ${e.message}\n`);
    } else {
      const message = e instanceof Error ? e.message : String(e);
      const debug = process.env['CAIRN_DEBUG'] === '1' && e instanceof Error && e.stack !== undefined ? `\n${e.stack}` : '';
      process.stderr.write(json ? `${JSON.stringify({ error: { code: 'ERR_INTERNAL', message } })}\n` : `cairn: ${message}${debug}\n`);
    }
    return exitCodeOf(e);
  }
}

/** True when this module is the program node was started with (directly, or through a bin link). */
function isEntryPoint(): boolean {
  const argv1 = process.argv[1];
  if (argv1 === undefined) return false;
  try {
    return import.meta.url === pathToFileURL(realpathSync(argv1)).href;
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  // A reader that goes away (`cairn ... | head`) is not an error of the command: stop quietly, as
  // other command-line tools do, instead of an unhandled EPIPE with a stack trace.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });
  // Ctrl-C: exit 130 (SIGTERM 143) with one line, after a clean stop where the command has one.
  installInterruptHandlers(() => wantsJson(process.argv.slice(2)));
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      process.stderr.write(`cairn: ${String(e)}\n`);
      process.exitCode = 1;
    },
  );
}

/** `cairn protect` and `cairn unprotect`: protect a snapshot from prune and removal, or lift it. */
import type { Command } from 'commander';
import { print, withStore, type CliContext } from '../context.js';

/** Adds `protect` to the program. */
export function registerProtect(program: Command, cli: CliContext): void {
  program
    .command('protect')
    .description('protect a snapshot from prune and removal')
    .argument('<snapshot>', 'type/id/time, or type/id for the newest')
    .addHelpText('after', '\nExample:\n  cairn --store ./cairn-store protect vm/100/2026-11-26T09:35:01Z')
    .action(async (ref: string) => {
      const g = cli.globals();
      await withStore(g, async (ds) => {
        const s = await (await ds.snapshot(ref, { namespace: cli.ns() })).setProtected(true);
        print(g, s.toJSON(), `protected ${s.name}`);
      });
    });
}

/** Adds `unprotect` to the program. */
export function registerUnprotect(program: Command, cli: CliContext): void {
  program
    .command('unprotect')
    .description('lift the protection of a snapshot')
    .argument('<snapshot>', 'type/id/time, or type/id for the newest')
    .addHelpText('after', '\nExample:\n  cairn --store ./cairn-store unprotect vm/100/2026-11-26T09:35:01Z')
    .action(async (ref: string) => {
      const g = cli.globals();
      await withStore(g, async (ds) => {
        const s = await (await ds.snapshot(ref, { namespace: cli.ns() })).setProtected(false);
        print(g, s.toJSON(), `unprotected ${s.name}`);
      });
    });
}

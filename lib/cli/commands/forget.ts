/** `cairn forget`: remove one snapshot. */
import type { Command } from 'commander';
import { CairnError, isCairnError, snapshotIdentity } from '../../index.js';
import { print, withStore, type CliContext } from '../context.js';

/** Adds `forget` to the program. */
export function registerForget(program: Command, cli: CliContext): void {
  program
    .command('forget')
    .description('remove one snapshot (its chunks are freed by the next garbage collection)')
    .argument('<snapshot>', 'type/id/time')
    .addHelpText('after', '\nExample:\n  cairn --store ./cairn-store forget vm/100/2026-11-26T09:35:01Z')
    .action(async (ref: string) => {
      const g = cli.globals();
      if (ref.split('/').length !== 3) throw new CairnError('ERR_INVALID_ARGUMENT', 'forget needs a full snapshot name type/id/time');
      await withStore(g, async (ds) => {
        const s = await ds.snapshot(ref, { namespace: cli.ns() }).catch(async (e: unknown) => {
          // A snapshot whose manifest is damaged cannot load; forget removes it all the same.
          if (!isCairnError(e, 'ERR_MANIFEST_CORRUPT')) throw e;
          const [type, id, time] = ref.split('/') as [string, string, string];
          await ds.group(`${type}/${id}`, { namespace: cli.ns() }).removeDamaged(time);
          return undefined;
        });
        if (s === undefined) {
          print(g, { ...snapshotIdentity(cli.ns(), ref), removed: true, damaged: true }, `removed ${ref} (its manifest was damaged)`);
          return;
        }
        await s.remove();
        print(g, { ...snapshotIdentity(s.namespace, s.name), removed: true }, `removed ${s.name}`);
      });
    });
}

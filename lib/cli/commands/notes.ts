/** `cairn notes`: show or set the notes of a snapshot or of a group. */
import type { Command } from 'commander';
import { snapshotIdentity } from '../../index.js';
import { print, withStore, type CliContext } from '../context.js';

/** Adds `notes` to the program. */
export function registerNotes(program: Command, cli: CliContext): void {
  program
    .command('notes')
    .description('show or set the notes of a snapshot (type/id/time) or of a group (type/id)')
    .argument('<target>', 'type/id/time for a snapshot, type/id for a group')
    .argument('[text]', 'new notes; omit to show them')
    .addHelpText(
      'after',
      '\nExamples:\n  cairn --store ./cairn-store notes vm/100 "production database"\n  cairn --store ./cairn-store notes vm/100/2026-11-26T09:35:01Z "before the upgrade"',
    )
    .action(async (target: string, text: string | undefined) => {
      const g = cli.globals();
      await withStore(g, async (ds) => {
        if (target.split('/').length === 3) {
          let s = await ds.snapshot(target, { namespace: cli.ns() });
          if (text !== undefined) s = await s.setNotes(text);
          print(g, { ...snapshotIdentity(s.namespace, s.name), notes: s.notes }, s.notes);
        } else {
          const group = ds.group(target, { namespace: cli.ns() });
          if (text !== undefined) await group.setNotes(text);
          const notes = await group.notes();
          print(g, { namespace: cli.ns(), group: group.name, notes }, notes);
        }
      });
    });
}

/** `cairn group move` and `cairn group remove`: manage backup groups. */
import type { Command } from 'commander';
import { CairnError } from '../../index.js';
import { print, withStore, type CliContext } from '../context.js';
import { count, moveGroupJson, removeGroupJson } from '../format.js';
import { moveGroupLines } from '../move-lines.js';

/** Adds `group` and its subcommands to the program. */
export function registerGroup(program: Command, cli: CliContext): void {
  const groupCmd = program
    .command('group')
    .description('manage backup groups: move one to another namespace, or remove one')
    .addHelpText('after', '\nExamples:\n  cairn --store ./cairn-store --ns site-a group move vm/100 --target-ns archive\n  cairn --store ./cairn-store group remove vm/100');
  groupCmd
    .command('move')
    .description('move a group (from --ns) to another namespace; merges into an existing group only with the same owner and when every moved snapshot is newer')
    .argument('<group>', 'type/id')
    .argument('[target]', 'target namespace (or use --target-ns)')
    .option('--target-ns <namespace>', 'target namespace ("" for the root)')
    .addHelpText('after', '\nExamples:\n  cairn --store ./cairn-store --ns site-a group move vm/100 --target-ns archive\n  cairn --store ./cairn-store group move vm/100 site-b')
    .action(async (group: string, target: string | undefined, o: { targetNs?: string }) => {
      const g = cli.globals();
      const to = o.targetNs ?? target;
      if (to === undefined) throw new CairnError('ERR_INVALID_ARGUMENT', 'group move needs a target namespace (--target-ns <namespace>)');
      await withStore(g, async (ds) => {
        // SIGINT and SIGTERM stop the move between snapshots (what moved stays moved; run it again).
        const r = await ds.moveGroup(group, { from: cli.ns(), to }, { signal: cli.signal() });
        print(g, moveGroupJson(r), moveGroupLines(r).join('\n'));
        if (r.skipped.length > 0) process.exitCode = 4;
      });
    });
  groupCmd
    .command('remove')
    .description('remove a group and its snapshots; protected snapshots and snapshots in use are kept (and with them the group)')
    .argument('<group>', 'type/id')
    .addHelpText('after', '\nExample:\n  cairn --store ./cairn-store --ns site-a group remove vm/100')
    .action(async (group: string) => {
      const g = cli.globals();
      await withStore(g, async (ds) => {
        const r = await ds.group(group, { namespace: cli.ns() }).remove();
        const lines = [`${r.removed ? 'removed group' : 'kept group'} ${group}: ${count(r.removedSnapshots.length, 'snapshot')} removed`];
        for (const t of r.keptProtected) lines.push(`kept protected ${group}/${t}`);
        for (const t of r.keptLocked) lines.push(`kept in-use ${group}/${t}`);
        print(g, removeGroupJson(cli.ns(), group, r), lines.join('\n'));
      });
    });
}

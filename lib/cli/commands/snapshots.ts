/** `cairn snapshots`: list snapshots, of one group or of the whole namespace, as a table. */
import type { Command } from 'commander';
import { CairnError, snapshotIdentity, type DamagedSnapshot, type Snapshot } from '../../index.js';
import { print, withStore, type CliContext } from '../context.js';
import { firstLine, humanBytes, logicalBytes, storedNewBytes, table } from '../format.js';

/** The `--json` form of a listed snapshot: its identity, its manifest summary and the table's columns. */
function snapshotRow(s: Snapshot): Record<string, unknown> {
  return {
    ...s.toJSON(),
    logicalBytes: logicalBytes(s),
    storedBytes: storedNewBytes(s) ?? null,
    verifyState: s.verifyState ?? null,
    notes: s.notes,
  };
}

/** Adds `snapshots` to the program. */
export function registerSnapshots(program: Command, cli: CliContext): void {
  program
    .command('snapshots')
    .description('list snapshots, of one group or of the whole namespace')
    .argument('[group]', 'backup group type/id')
    .addHelpText(
      'after',
      '\nExamples:\n  cairn --store ./cairn-store snapshots vm/100\n  cairn --store ./cairn-store --ns site-a snapshots --json\n\nColumns: snapshot (type/id/time), size (logical: the sum of its archives), stored (bytes of new\nchunks its backup wrote, - when not recorded), verify state, protected, the first line of its notes.\nA group that does not exist is ERR_NOT_FOUND (exit 3); an empty group or namespace lists nothing.',
    )
    .action(async (group: string | undefined) => {
      const g = cli.globals();
      await withStore(g, async (ds) => {
        let groups;
        if (group === undefined) {
          groups = await ds.namespace(cli.ns()).groups();
        } else {
          const gr = ds.group(group, { namespace: cli.ns() });
          if (!(await gr.exists())) {
            throw new CairnError('ERR_NOT_FOUND', `backup group ${gr.name} does not exist${cli.ns() === '' ? '' : ` in namespace ${cli.ns()}`}`, {
              namespace: cli.ns(),
              group: gr.name,
            });
          }
          groups = [gr];
        }
        const snaps: Snapshot[] = [];
        const damaged: DamagedSnapshot[] = [];
        for (const gr of groups) {
          const found = await gr.scan();
          snaps.push(...found.snapshots);
          damaged.push(...found.damaged);
        }
        // Damaged manifests do not hide the other snapshots: they are listed, then the exit code says so.
        const rows = snaps.map((s) => [
          s.name,
          humanBytes(logicalBytes(s)),
          ((n) => (n === undefined ? '-' : humanBytes(n)))(storedNewBytes(s)),
          s.verifyState ?? '-',
          s.isProtected ? 'yes' : 'no',
          firstLine(s.notes),
        ]);
        for (const d of damaged) rows.push([d.name, '-', '-', 'DAMAGED', '-', `${d.error.code}: ${firstLine(d.error.message)}`]);
        const json = [...snaps.map(snapshotRow), ...damaged.map((d) => ({ ...snapshotIdentity(d.namespace, d.name), damaged: d.error.toJSON() }))];
        const text = rows.length === 0 ? 'no snapshots' : table(['snapshot', 'size', 'stored', 'verify', 'protected', 'notes'], rows, [false, true, true, false, false, false]);
        print(g, json, text);
        if (damaged.length > 0) {
          throw new CairnError(
            'ERR_MANIFEST_CORRUPT',
            `${damaged.length} snapshot${damaged.length === 1 ? ' has' : 's have'} a damaged manifest: ${damaged.map((d) => d.name).join(', ')} (run cairn verify; cairn forget removes one)`,
            {
              snapshot: damaged[0]!.name,
            },
          );
        }
      });
    });
}

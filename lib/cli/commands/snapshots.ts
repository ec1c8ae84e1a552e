/** `cairn snapshots`: list snapshots, of one group or of the whole namespace. */
import type { Command } from 'commander';
import type { Snapshot } from '../../index.js';
import { print, withStore, type CliContext } from '../context.js';
import { humanBytes } from '../format.js';

/** One line of `snapshots` output: name, archives with sizes, flags. */
function describeSnapshot(s: Snapshot): string {
  const files = s.files.map((f) => `${f.name} (${humanBytes(f.size)})`).join(', ');
  const flags = [s.isProtected ? 'protected' : '', s.verifyState ? `verify ${s.verifyState}` : ''].filter(Boolean).join(', ');
  return `${s.name}  ${files}${flags ? `  [${flags}]` : ''}`;
}

/** Adds `snapshots` to the program. */
export function registerSnapshots(program: Command, cli: CliContext): void {
  program
    .command('snapshots')
    .description('list snapshots, of one group or of the whole namespace')
    .argument('[group]', 'backup group type/id')
    .addHelpText('after', '\nExample:\n  cairn --store ./cairn-store snapshots vm/100')
    .action(async (group: string | undefined) => {
      const g = cli.globals();
      await withStore(g, async (ds) => {
        const groups = group === undefined ? await ds.namespace(cli.ns()).groups() : [ds.group(group, { namespace: cli.ns() })];
        const snaps: Snapshot[] = [];
        for (const gr of groups) snaps.push(...(await gr.snapshots()));
        print(g, snaps.map((s) => s.toJSON()), snaps.length === 0 ? 'no snapshots' : snaps.map(describeSnapshot).join('\n'));
      });
    });
}

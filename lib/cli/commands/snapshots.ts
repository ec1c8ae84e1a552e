/** `cairn snapshots`: list snapshots, of one group or of the whole namespace. */
import type { Command } from 'commander';
import { CairnError, type DamagedSnapshot, type Snapshot } from '../../index.js';
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
        const damaged: DamagedSnapshot[] = [];
        for (const gr of groups) {
          const found = await gr.scan();
          snaps.push(...found.snapshots);
          damaged.push(...found.damaged);
        }
        // Damaged manifests do not hide the other snapshots: they are listed, then the exit code says so.
        const lines = [...snaps.map(describeSnapshot), ...damaged.map((d) => `${d.name}  DAMAGED: ${d.error.code}: ${d.error.message}`)];
        const json = [...snaps.map((s) => s.toJSON()), ...damaged.map((d) => {
            const [type, id] = d.name.split('/');
            return { namespace: d.namespace, type, id, time: d.time, damaged: d.error.toJSON() };
          })];
        print(g, json, lines.length === 0 ? 'no snapshots' : lines.join('\n'));
        if (damaged.length > 0) {
          throw new CairnError('ERR_MANIFEST_CORRUPT', `${damaged.length} snapshot${damaged.length === 1 ? ' has' : 's have'} a damaged manifest: ${damaged.map((d) => d.name).join(', ')} (run cairn verify; cairn forget removes one)`, {
            snapshot: damaged[0]!.name,
          });
        }
      });
    });
}

/** `cairn find`: find the paths of a tree archive that match a glob. */
import type { Command } from 'commander';
import { snapshotIdentity, type TreeItem } from '../../index.js';
import { print, withStore, type CliContext } from '../context.js';
import { itemJson } from '../format.js';
import { openTree } from '../open-tree.js';

/** Adds `find` to the program. */
export function registerFind(program: Command, cli: CliContext): void {
  program
    .command('find')
    .description('find the paths of a tree archive that match a glob')
    .argument('<snapshot>', 'type/id/time, or type/id for the newest')
    .argument('<archive>', '<name>.tree')
    .argument('<glob>', "a glob over archive paths, e.g. '**/*.conf'")
    .addHelpText('after', "\nExample:\n  cairn --store ./cairn-store find host/web etc.tree '**/sshd_config'")
    .action(async (ref: string, spec: string, glob: string) => {
      const g = cli.globals();
      await withStore(g, async (ds) => {
        // Resolved once (type/id names the newest), so the identity printed is the snapshot searched.
        const s = await ds.snapshot(ref, { namespace: cli.ns() });
        const { tree, close } = await openTree(cli, ds, s.name, spec);
        try {
          const found: TreeItem[] = [];
          for await (const item of tree.find(glob)) {
            if (g.json === true) found.push(item);
            else process.stdout.write(`${item.path.toString('utf8')}${item.entry.kind === 'dir' ? '/' : ''}\n`);
          }
          if (g.json === true) print(g, { ...snapshotIdentity(s.namespace, s.name), archive: spec, glob, entries: found.map(itemJson) }, '');
        } finally {
          await close();
        }
      });
    });
}

/** `cairn init`: create a datastore. */
import type { Command } from 'commander';
import { Datastore, type SyncLevel } from '../../index.js';
import { print, type CliContext } from '../context.js';

/** Adds `init` to the program. */
export function registerInit(program: Command, cli: CliContext): void {
  program
    .command('init')
    .description('create a datastore')
    .argument('<path>', 'directory for the new datastore (must not exist or be empty)')
    .option('--image-chunk-size <bytes>', 'default image chunk size (power of two, 64 KiB to 16 MiB)', (v) => Number(v))
    .option('--sync-level <level>', 'none | file | filesystem (default filesystem)')
    .addHelpText('after', '\nExample:\n  cairn init ./cairn-store')
    .action(async (p: string, o: { imageChunkSize?: number; syncLevel?: SyncLevel }) => {
      const ds = await Datastore.create(p, {
        ...(o.imageChunkSize === undefined ? {} : { imageChunkSize: o.imageChunkSize }),
        ...(o.syncLevel === undefined ? {} : { syncLevel: o.syncLevel }),
        threads: 0,
      });
      await ds.close();
      print(cli.globals(), { path: ds.root, uuid: ds.uuid, config: ds.config }, `created datastore ${ds.root} (${ds.uuid})`);
    });
}

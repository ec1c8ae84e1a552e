/**
 * `cairn cat`: write one file of a tree archive, a blob, or an image to stdout.
 */
import { pipeline } from 'node:stream/promises';
import type { Command } from 'commander';
import { CairnError } from '../../index.js';
import { withStore, type CliContext } from '../context.js';

/** Adds `cat` to the program. */
export function registerCat(program: Command, cli: CliContext): void {
  program
    .command('cat')
    .description('write a file of a tree archive, a blob or an image to stdout')
    .argument('<snapshot>', 'type/id/time, or type/id for the newest')
    .argument('<what>', '<name>.tree:<path> (a file of a tree archive), <name>.blob or <name>.img')
    .addHelpText(
      'after',
      '\nA hardlink gives the file it links to; a directory, symlink or special file is refused (ERR_INVALID_ARGUMENT, exit 2),\na path the archive does not hold is ERR_NOT_FOUND (exit 3).\n\nExamples:\n  cairn --store ./cairn-store cat host/web etc.tree:ssh/sshd_config\n  cairn --store ./cairn-store cat vm/100 qemu-server.conf.blob\n  cairn --store ./cairn-store cat vm/100 drive-scsi0.img | qemu-img convert -f raw -O qcow2 /dev/stdin disk.qcow2',
    )
    .action(async (ref: string, what: string) => {
      const g = cli.globals();
      const signal = cli.signal();
      const colon = what.indexOf(':');
      const archive = colon < 0 ? what : what.slice(0, colon);
      const inner = colon < 0 ? undefined : what.slice(colon + 1);
      if (archive.endsWith('.tree') ? inner === undefined || inner.replace(/\/+/g, '') === '' : inner !== undefined) {
        throw new CairnError(
          'ERR_INVALID_ARGUMENT',
          archive.endsWith('.tree')
            ? `'${what}': name a file in the tree archive, <name>.tree:<path>`
            : `'${what}': a path inside applies to tree archives only (<name>.tree:<path>)`,
          { archive },
        );
      }
      await withStore(g, async (ds) => {
        const r = await (await ds.snapshot(ref, { namespace: cli.ns() })).open({ signal });
        try {
          const f = r.file(archive);
          if (f.kind === 'tree') {
            const tree = await r.tree(archive);
            await pipeline(await tree.createReadStream(inner!, { signal }), process.stdout, { signal });
          } else if (f.kind === 'blob') {
            const data = await r.readBlob(archive);
            await new Promise<void>((resolve, reject) => process.stdout.write(data, (e) => (e ? reject(e) : resolve())));
          } else {
            await pipeline(r.createReadStream(archive, { signal }), process.stdout, { signal });
          }
        } finally {
          await r.close();
        }
      });
    });
}

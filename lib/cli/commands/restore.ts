/** `cairn restore`: restore an archive of a snapshot to a file or block device, or to stdout. */
import { pipeline } from 'node:stream/promises';
import type { Command } from 'commander';
import type { RestoreProgress } from '../../index.js';
import { print, withStore, type CliContext } from '../context.js';
import { humanBytes } from '../format.js';
import { Progress, progressMode } from '../progress.js';

/** Adds `restore` to the program. */
export function registerRestore(program: Command, cli: CliContext): void {
  program
    .command('restore')
    .description('restore an archive of a snapshot to a file or block device, or - for stdout')
    .argument('<snapshot>', 'type/id/time, or type/id for the newest')
    .argument('<archive>', 'archive name, e.g. drive-scsi0.img or etc.tree')
    .argument('<target>', 'target file or block device (- for stdout); for a tree, a directory')
    .option('--overwrite', 'replace an existing target file (by a rename once the restored copy is complete: a failed restore leaves it as it was; a block device is written in place); for a tree, restore into a non-empty directory')
    .option('--include <glob>', 'tree archives: restore only paths matching this glob (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--exclude <glob>', 'tree archives: leave out paths matching this glob (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .addHelpText('after', "\nExamples:\n  cairn --store ./cairn-store restore vm/100 drive-scsi0.img ./disk.raw\n  cairn --store ./cairn-store restore host/web etc.tree ./etc-restored --include 'ssh/**'")
    .action(async (ref: string, archive: string, target: string, o: { overwrite?: boolean; include: string[]; exclude: string[] }) => {
      const g = cli.globals();
      await withStore(g, async (ds) => {
        const s = await ds.snapshot(ref, { namespace: cli.ns() });
        const r = await s.open();
        // SIGINT and SIGTERM stop a restore cleanly: the temp file of an image or blob goes, an
        // existing target stays as it was (a tree keeps what was restored so far).
        const ac = new AbortController();
        const stop = (): void => ac.abort(new Error('interrupted'));
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
        try {
          const f = r.file(archive);
          if (f.kind === 'tree') {
            const rs = await r.restoreTree(archive, target, { overwrite: o.overwrite === true, include: o.include, exclude: o.exclude, signal: ac.signal });
            const lines = [`restored ${archive}: ${rs.entries} entries, ${humanBytes(rs.bytes)} to ${target} in ${rs.seconds.toFixed(2)} s`];
            for (const pr of rs.problems) lines.push(`warning: ${pr.path}: ${pr.code}: ${pr.message}`);
            print(g, { archive, target, ...rs }, lines.join('\n'));
            return;
          }
          if (target === '-') {
            if (f.kind === 'blob') process.stdout.write(await r.readBlob(archive));
            // An image to stdout, in order (for a pipe into dd, ssh, a hypervisor's import).
            else await pipeline(r.createReadStream(archive, { signal: ac.signal }), process.stdout);
            return;
          }
          // A file: into a temp file beside the target, renamed over it once complete; a device:
          // in place.
          const progress = new Progress(progressMode(g));
          try {
            const stats = await r.restore(archive, target, {
              overwrite: o.overwrite === true,
              signal: ac.signal,
              onProgress: (p: RestoreProgress) => progress.update(p.archive, p.bytesDone, p.bytesTotal),
            });
            progress.end();
            if (f.kind === 'blob') {
              print(g, { archive, target, bytes: stats.bytes }, `restored ${archive} (${humanBytes(stats.bytes)}) to ${target}`);
              return;
            }
            const rate = stats.seconds > 0 ? `${humanBytes(stats.bytes / stats.seconds)}/s` : '';
            print(g, { archive, target, ...stats }, `restored ${archive} (${humanBytes(stats.bytes)}) to ${target} in ${stats.seconds.toFixed(2)} s ${rate}`);
          } finally {
            progress.end();
          }
        } finally {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          await r.close();
        }
      });
    });
}

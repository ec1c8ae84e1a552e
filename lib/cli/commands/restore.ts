/** `cairn restore`: restore an archive of a snapshot to a file or block device, or to stdout. */
import { pipeline } from 'node:stream/promises';
import type { Command } from 'commander';
import { CairnError, type RestoreProgress } from '../../index.js';
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
    .option('--overwrite', 'replace an existing target file; for a tree, restore into a non-empty directory')
    .option('--include <glob>', 'tree archives: restore only paths matching this glob (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--exclude <glob>', 'tree archives: leave out paths matching this glob (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .addHelpText('after', "\nExamples:\n  cairn --store ./cairn-store restore vm/100 drive-scsi0.img ./disk.raw\n  cairn --store ./cairn-store restore host/web etc.tree ./etc-restored --include 'ssh/**'")
    .action(async (ref: string, archive: string, target: string, o: { overwrite?: boolean; include: string[]; exclude: string[] }) => {
      const g = cli.globals();
      await withStore(g, async (ds) => {
        const s = await ds.snapshot(ref, { namespace: cli.ns() });
        const r = await s.open();
        try {
          const f = r.file(archive);
          if (f.kind === 'blob') {
            const data = await r.readBlob(archive);
            if (target === '-') process.stdout.write(data);
            else {
              const { writeFile } = await import('node:fs/promises');
              await writeFile(target, data, { flag: o.overwrite === true ? 'w' : 'wx' }).catch((e: unknown) => {
                if ((e as { code?: string }).code === 'EEXIST') throw new CairnError('ERR_EXISTS', `restore target ${target} exists (pass --overwrite to replace it)`, { path: target });
                throw e;
              });
              print(g, { archive, target, bytes: data.byteLength }, `restored ${archive} (${humanBytes(data.byteLength)}) to ${target}`);
            }
            return;
          }
          if (f.kind === 'tree') {
            const rs = await r.restoreTree(archive, target, { overwrite: o.overwrite === true, include: o.include, exclude: o.exclude });
            const lines = [`restored ${archive}: ${rs.entries} entries, ${humanBytes(rs.bytes)} to ${target} in ${rs.seconds.toFixed(2)} s`];
            for (const pr of rs.problems) lines.push(`warning: ${pr.path}: ${pr.code}: ${pr.message}`);
            print(g, { archive, target, ...rs }, lines.join('\n'));
            return;
          }
          if (target === '-') {
            // An image to stdout, in order (for a pipe into dd, ssh, a hypervisor's import).
            await pipeline(r.createReadStream(archive), process.stdout);
            return;
          }
          const ac = new AbortController();
          const stop = (): void => ac.abort(new Error('interrupted'));
          process.once('SIGINT', stop);
          const progress = new Progress(progressMode(g));
          try {
            const stats = await r.restore(archive, target, {
              overwrite: o.overwrite === true,
              signal: ac.signal,
              onProgress: (p: RestoreProgress) => progress.update(p.archive, p.bytesDone, p.bytesTotal),
            });
            progress.end();
            const rate = stats.seconds > 0 ? `${humanBytes(stats.bytes / stats.seconds)}/s` : '';
            print(g, { archive, target, ...stats }, `restored ${archive} (${humanBytes(stats.bytes)}) to ${target} in ${stats.seconds.toFixed(2)} s ${rate}`);
          } finally {
            progress.end();
            process.off('SIGINT', stop);
          }
        } finally {
          await r.close();
        }
      });
    });
}

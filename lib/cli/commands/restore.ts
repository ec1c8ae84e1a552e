/**
 * `cairn restore`: restore an archive of a snapshot to a file or block device, a tree to a
 * directory, or any of them to stdout (a tree as a tar stream).
 */
import { pipeline } from 'node:stream/promises';
import type { Command } from 'commander';
import type { RestoreProgress, TreeProblem } from '../../index.js';
import { print, withStore, type CliContext } from '../context.js';
import { count, humanBytes } from '../format.js';
import { Progress, progressMode, treeProgress } from '../progress.js';

/** Warning lines for problems (on stderr when stdout carries data). */
function warnings(problems: readonly TreeProblem[], more = 0): string[] {
  const lines = problems.map((pr) => `warning: ${pr.path}: ${pr.code}: ${pr.message}`);
  if (more > 0) lines.push(`warning: ${more} more problems`);
  return lines;
}

/** Adds `restore` to the program. */
export function registerRestore(program: Command, cli: CliContext): void {
  program
    .command('restore')
    .description('restore an archive of a snapshot to a file or block device, a tree to a directory, or - for stdout (a tree as a tar stream)')
    .argument('<snapshot>', 'type/id/time, or type/id for the newest')
    .argument('<archive>', 'archive name, e.g. drive-scsi0.img or etc.tree')
    .argument('<target>', 'target file or block device; for a tree, a directory; - for stdout (a tree: POSIX pax tar)')
    .option(
      '--overwrite',
      'replace an existing target file (by a rename once the restored copy is complete: a failed restore leaves it as it was; a block device is written in place); for a tree, restore into a non-empty directory',
    )
    .option('--include <glob>', 'tree archives: restore only paths matching this glob (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--exclude <glob>', 'tree archives: leave out paths matching this glob (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .addHelpText(
      'after',
      "\nA tree restored to - is a tar stream (POSIX pax: files, directories, symlinks, hardlinks, devices, fifos, modes,\nowners, nanosecond mtimes, extended attributes as SCHILY.xattr); sockets and names that are not UTF-8 are left out\nwith a warning on stderr. A tree restore into a directory keeps what was restored when SIGINT or SIGTERM stops it.\n\nExamples:\n  cairn --store ./cairn-store restore vm/100 drive-scsi0.img ./disk.raw\n  cairn --store ./cairn-store restore host/web etc.tree ./etc-restored --include 'ssh/**'\n  cairn --store ./cairn-store restore host/web etc.tree - | tar -x -C /srv/etc-copy",
    )
    .action(async (ref: string, archive: string, target: string, o: { overwrite?: boolean; include: string[]; exclude: string[] }) => {
      const g = cli.globals();
      // SIGINT and SIGTERM stop a restore cleanly: the temp file of an image or blob goes, an
      // existing target stays as it was (a tree keeps what was restored so far).
      const signal = cli.signal();
      await withStore(g, async (ds) => {
        const s = await ds.snapshot(ref, { namespace: cli.ns() });
        const r = await s.open({ signal });
        const progress = new Progress(progressMode(g));
        try {
          const f = r.file(archive);
          if (f.kind === 'tree' && target === '-') {
            const tar = r.createTarStream(archive, { include: o.include, exclude: o.exclude, signal, onProgress: treeProgress(progress) });
            await pipeline(tar, process.stdout, { signal });
            progress.end();
            const st = await tar.stats;
            const lines = warnings(st.problems, st.problemCount - st.problems.length);
            // stdout is the tar: the summary (and warnings) go to stderr.
            if (g.json === true) process.stderr.write(`${JSON.stringify({ archive, target, ...st })}\n`);
            else {
              if (g.verbose === true) lines.push(`restored ${archive} as tar: ${count(st.entries, 'entry', 'entries')}, ${humanBytes(st.bytes)} in ${st.seconds.toFixed(2)} s`);
              if (lines.length > 0) process.stderr.write(`${lines.map((l) => `cairn: ${l}`).join('\n')}\n`);
            }
            return;
          }
          if (f.kind === 'tree') {
            const rs = await r.restoreTree(archive, target, {
              overwrite: o.overwrite === true,
              include: o.include,
              exclude: o.exclude,
              signal,
              onProgress: treeProgress(progress),
            });
            progress.end();
            const rate = rs.seconds > 0 ? ` (${humanBytes(Math.round(rs.bytes / rs.seconds))}/s)` : '';
            const lines = [
              `restored ${archive}: ${count(rs.entries, 'entry', 'entries')}, ${humanBytes(rs.bytes)} to ${target} in ${rs.seconds.toFixed(2)} s${rate}`,
              ...warnings(rs.problems),
            ];
            print(g, { archive, target, ...rs }, lines.join('\n'));
            return;
          }
          if (target === '-') {
            if (f.kind === 'blob') process.stdout.write(await r.readBlob(archive));
            // An image to stdout, in order (for a pipe into dd, ssh, a hypervisor's import).
            else await pipeline(r.createReadStream(archive, { signal }), process.stdout, { signal });
            return;
          }
          // A file: into a temp file beside the target, renamed over it once complete; a device:
          // in place.
          const stats = await r.restore(archive, target, {
            overwrite: o.overwrite === true,
            signal,
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
          await r.close();
        }
      });
    });
}

/**
 * `cairn backup`: back up images, directory trees and blobs as a new snapshot of a group.
 *
 * Exit status 7 ({@link EXIT_INCOMPLETE}): the snapshot was committed, but entries of a tree
 * archive could not be read as they were (unreadable, replaced while the walk ran, changed while
 * read); they are listed as warnings (and under `problems` with `--json`).
 */
import type { Command } from 'commander';
import { CairnError, MAX_BLOB_SIZE, readBlobSource, type BackupProgress, type ChangedMap, type ImageSource, type TreeArchiveStats, type TreeProgress } from '../../index.js';
import { print, withStore, type CliContext } from '../context.js';
import { humanBytes } from '../format.js';
import { Progress, progressMode } from '../progress.js';

/** Parses a changed-ranges file: one `<offset> <length>` per line (decimal or 0x hex), `#` comments. */
export function parseRangesFile(text: string, file: string): ChangedMap {
  const ranges: [number, number][] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/#.*/, '').trim();
    if (line === '') return;
    const m = /^(0x[0-9a-fA-F]+|\d+)[\s,]+(0x[0-9a-fA-F]+|\d+)$/.exec(line);
    if (m === null) {
      throw new CairnError('ERR_INVALID_ARGUMENT', `${file}:${i + 1}: expected "<offset> <length>", got "${line}"`, { path: file });
    }
    ranges.push([Number(m[1]), Number(m[2])]);
  });
  return { ranges };
}

/** Exit status of a backup that committed its snapshot with entries left out or changed while read. */
export const EXIT_INCOMPLETE = 7;

/** True when a tree archive's problems mean something is missing or not as it was (`BASE` only costs reuse). */
function incomplete(t: TreeArchiveStats): boolean {
  const listed = t.problems.filter((p) => p.code !== 'BASE').length;
  return listed > 0 || t.problemCount > t.problems.length;
}

/** Parses a byte count option. */
function byteCount(v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isSafeInteger(n) || n < 0) throw new CairnError('ERR_INVALID_ARGUMENT', `'${v}' is not a byte count`);
  return n;
}

/** Adds `backup` to the program. */
export function registerBackup(program: Command, cli: CliContext): void {
  program
    .command('backup')
    .description('back up images, directory trees and blobs as a new snapshot of a group')
    .argument('<group>', 'backup group: vm/<id>, ct/<id> or host/<id>')
    .argument('<archives...>', '<name>.img:<file-or-device>, <name>.tree:<directory> or <name>.blob:<file>; an image or blob may be a FIFO or pipe (/dev/stdin), and an image - for stdin')
    .option('--exclude <glob>', 'leave out paths of tree archives matching this gitignore-style pattern (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--one-file-system', 'do not descend into other filesystems in tree archives')
    .option('--changed <ranges-file>', 'changed byte ranges of the image since the previous backup ("<offset> <length>" per line)')
    .option('--time <rfc3339>', 'snapshot time, e.g. 2026-11-26T09:35:01Z (default: now)')
    .option('--chunk-size <bytes>', 'image chunk size (default: the datastore\'s)', (v) => Number(v))
    .option('--source-size <bytes>', 'bytes to read from the one image source: required for a character device (which may never end), checked for a pipe', byteCount)
    .addHelpText(
      'after',
      '\nA file is read up to its size when it is opened. Entries of a tree that cannot be read, or that are replaced or\nchange while the backup reads them, are listed as warnings; the snapshot is committed and the exit status is 7.\nSIGINT or SIGTERM stops the backup (nothing of it is kept); a second one ends the process at once.\n\nExamples:\n  cairn --store ./cairn-store backup vm/100 drive-scsi0.img:/dev/vg0/vm-100-disk-0 qemu-server.conf.blob:/etc/pve/qemu-server/100.conf\n  cairn --store ./cairn-store backup host/web etc.tree:/etc home.tree:/home --exclude "*.cache" --one-file-system',
    )
    .action(async (group: string, specs: string[], o: { changed?: string; time?: string; chunkSize?: number; sourceSize?: number; exclude: string[]; oneFileSystem?: boolean }) => {
      const g = cli.globals();
      const parsed = specs.map((spec) => {
        const colon = spec.indexOf(':');
        const name = colon < 0 ? '' : spec.slice(0, colon);
        const file = colon < 0 ? '' : spec.slice(colon + 1);
        if (name === '' || file === '' || !(name.endsWith('.img') || name.endsWith('.blob') || name.endsWith('.tree'))) {
          throw new CairnError('ERR_INVALID_ARGUMENT', `archive '${spec}' must be <name>.img:<file>, <name>.tree:<directory> or <name>.blob:<file>`, { archive: spec });
        }
        return { name, file };
      });
      const images = parsed.filter((p) => p.name.endsWith('.img'));
      if (o.changed !== undefined && images.length !== 1) {
        throw new CairnError('ERR_INVALID_ARGUMENT', '--changed applies to exactly one image archive');
      }
      if (o.sourceSize !== undefined && images.length !== 1) {
        throw new CairnError('ERR_INVALID_ARGUMENT', '--source-size applies to exactly one image archive');
      }
      const imageSource = (file: string): ImageSource =>
        file === '-' ? { stream: process.stdin, ...(o.sourceSize === undefined ? {} : { size: o.sourceSize }) } : o.sourceSize === undefined ? file : { path: file, size: o.sourceSize };
      // Read like a blob: bounded, a FIFO or device cannot make it endless.
      const changed = o.changed === undefined ? undefined : parseRangesFile(Buffer.from(await readBlobSource(o.changed)).toString('utf8'), o.changed);
      await withStore(g, async (ds) => {
        const ac = new AbortController();
        // The first signal stops the backup (every source read observes the signal); `once`: a
        // second one finds no handler and ends the process at once.
        const stop = (sig: NodeJS.Signals): void => ac.abort(new Error(`interrupted by ${sig}`));
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
        const progress = new Progress(progressMode(g));
        const w = await ds.group(group, { namespace: cli.ns() }).backup(o.time === undefined ? { signal: ac.signal } : { time: o.time, signal: ac.signal });
        try {
          const stats: Record<string, unknown> = {};
          const trees: Record<string, TreeArchiveStats> = {};
          for (const p of parsed) {
            if (p.name.endsWith('.img')) {
              stats[p.name] = await w.addImage(p.name, imageSource(p.file), {
                signal: ac.signal,
                onProgress: (x: BackupProgress) => progress.update(x.archive, x.bytesDone, x.bytesTotal),
                ...(changed === undefined ? {} : { changed }),
                ...(o.chunkSize === undefined ? {} : { chunkSize: o.chunkSize }),
              });
              progress.end();
            } else if (p.name.endsWith('.tree')) {
              const t = await w.addTree(p.name, p.file, {
                signal: ac.signal,
                exclude: o.exclude,
                oneFileSystem: o.oneFileSystem === true,
                onProgress: (x: TreeProgress) => progress.update(`${x.archive} ${x.entries} entries`, x.bytes, undefined),
              });
              progress.end();
              trees[p.name] = t;
            } else {
              await w.addBlob(p.name, await readBlobSource(p.file, { maxSize: MAX_BLOB_SIZE, signal: ac.signal }));
            }
          }
          const snap = await w.commit();
          const lines = [`created snapshot ${snap.name}${snap.namespace ? ` in namespace ${snap.namespace}` : ''}`];
          for (const [name, t] of Object.entries(trees)) {
            lines.push(
              `  ${name}: ${t.entries} entries, ${humanBytes(t.bytes)} in ${t.seconds.toFixed(2)} s; ${t.filesRead} files read, ${t.filesReused} unchanged (not opened); ${t.payload.chunksWritten + t.meta.chunksWritten} new chunks (${humanBytes(t.payload.bytesStored + t.meta.bytesStored)} stored)`,
            );
            for (const pr of t.problems) lines.push(`  warning: ${name}: ${pr.path}: ${pr.code}: ${pr.message}`);
            if (t.problemCount > t.problems.length) lines.push(`  warning: ${name}: ${t.problemCount - t.problems.length} more problems`);
          }
          for (const [name, s] of Object.entries(stats) as [string, { bytes: number; seconds: number; chunks: number; chunksWritten: number; chunksKnown: number; chunksReused: number; bytesStored: number }][]) {
            const rate = s.seconds > 0 ? `${humanBytes(s.bytes / s.seconds)}/s` : '';
            lines.push(`  ${name}: ${humanBytes(s.bytes)} in ${s.seconds.toFixed(2)} s ${rate}; ${s.chunks} chunks, ${s.chunksWritten} new (${humanBytes(s.bytesStored)} stored), ${s.chunksKnown + s.chunksReused} from the previous snapshot`);
          }
          print(g, { snapshot: snap.toJSON(), stats: { ...stats, ...trees } }, lines.join('\n'));
          if (Object.values(trees).some(incomplete)) process.exitCode = EXIT_INCOMPLETE;
        } catch (e) {
          progress.end();
          await w.abort();
          throw e;
        } finally {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
        }
      });
    });
}

/**
 * `cairn backup`: back up images, directory trees and blobs as a new snapshot of a group.
 *
 * Exit status 7 ({@link EXIT_INCOMPLETE}): the snapshot was committed, but entries of a tree
 * archive could not be read as they were (unreadable, replaced while the walk ran, changed while
 * read); they are listed as warnings (and under `problems` with `--json`).
 */
import type { Command } from 'commander';
import { promises as fsp } from 'node:fs';
import {
  BackupDryRun,
  CairnError,
  MAX_BLOB_SIZE,
  isCairnError,
  readBlobSource,
  type BackupProgress,
  type ChangedMap,
  Datastore,
  type DryRunChunks,
  type ImageSource,
  type TreeArchiveStats,
  type TreeDryRunStats,
} from '../../index.js';
import { print, storePath, withStore, type CliContext } from '../context.js';
import { count, humanBytes } from '../format.js';
import { Progress, progressMode, treeProgress } from '../progress.js';

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

/**
 * Reads gitignore-style patterns from exclude files (one per line; blank lines and `#` comments
 * skipped; `\#` for a leading `#`), as restic's `--exclude-file`. A missing file is `ERR_NOT_FOUND`.
 */
export async function readExcludeFiles(files: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = Buffer.from(await readBlobSource(file, { maxSize: 16 * 1024 * 1024 })).toString('utf8');
    } catch (e) {
      if (isCairnError(e, 'ERR_NOT_FOUND')) throw new CairnError('ERR_NOT_FOUND', `exclude file ${file} does not exist`, { path: file }, e);
      throw e;
    }
    for (const raw of text.split(/\r?\n/)) {
      const line = raw.replace(/\s+$/, '');
      if (line === '' || line.startsWith('#')) continue;
      out.push(line);
    }
  }
  return out;
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

/** `N chunks, K new (X uncompressed)`: a dry run's count of an archive's chunks. */
function chunkLine(c: DryRunChunks): string {
  return `${c.chunks} chunks, ${c.newChunks} new (${humanBytes(c.newBytes)})`;
}

/**
 * `backup --dry-run`: reads the sources as the backup would (walks the trees with their excludes,
 * reads images and blobs; unchanged files of the base are not read), cuts and hashes the chunks as
 * the backup would, and asks the datastore, opened read-only, which of them it has: prints per
 * archive what would be backed up and how much of it is new, and the total.
 */
async function dryRun(
  ds: Datastore,
  cli: CliContext,
  group: string,
  parsed: readonly { name: string; file: string }[],
  o: { exclude: string[]; oneFileSystem: boolean; signal: AbortSignal; progress: Progress; imageSource: (file: string) => ImageSource; changed?: ChangedMap; chunkSize?: number },
): Promise<void> {
  const g = cli.globals();
  const dry = await BackupDryRun.start(ds, group, { namespace: cli.ns() });
  const base = dry.base;
  try {
    const archives: Record<string, unknown> = {};
    const lines = [
      `dry run: would create a snapshot of ${group}${cli.ns() ? ` in namespace ${cli.ns()}` : ''}${base === undefined ? '' : ` (base ${base.name})`}; nothing was written`,
    ];
    let incompleteTrees = false;
    for (const p of parsed) {
      if (p.name.endsWith('.tree')) {
        const t: TreeDryRunStats = await dry.addTree(p.name, p.file, {
          exclude: o.exclude,
          oneFileSystem: o.oneFileSystem,
          signal: o.signal,
          onProgress: treeProgress(o.progress),
        });
        o.progress.end();
        archives[p.name] = { kind: 'tree', source: p.file, ...t };
        lines.push(
          `  ${p.name}: ${t.entries} entries (${t.files} files, ${t.dirs} directories, ${t.symlinks} symlinks, ${t.hardlinks} hardlinks, ${t.specials} special), ${humanBytes(t.bytes)}; ${t.filesRead} files read, ${t.filesReused} unchanged (not read); ${chunkLine(t)}`,
        );
        for (const pr of t.problems) lines.push(`  warning: ${p.name}: ${pr.path}: ${pr.code}: ${pr.message}`);
        if (t.problemCount > t.problems.length) lines.push(`  warning: ${p.name}: ${t.problemCount - t.problems.length} more problems`);
        if (t.problems.some((x) => x.code !== 'BASE') || t.problemCount > t.problems.length) incompleteTrees = true;
        continue;
      }
      const kind = p.name.endsWith('.img') ? 'image' : 'blob';
      let what = 'stdin';
      if (p.file !== '-') {
        let st;
        try {
          st = await fsp.stat(p.file);
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code;
          if (code === 'ENOENT') throw new CairnError('ERR_NOT_FOUND', `${kind} source ${p.file} does not exist`, { archive: p.name, path: p.file }, e);
          throw new CairnError(
            'ERR_IO',
            `cannot stat ${kind} source ${p.file}: ${(e as Error).message}`,
            { archive: p.name, path: p.file, ...(code === undefined ? {} : { syscallCode: code }) },
            e,
          );
        }
        if (st.isDirectory())
          throw new CairnError('ERR_INVALID_ARGUMENT', `${kind} source ${p.file} is a directory (a tree is <name>.tree:<directory>)`, { archive: p.name, path: p.file });
        if (kind === 'blob' && st.isFile() && st.size > MAX_BLOB_SIZE)
          throw new CairnError('ERR_INVALID_ARGUMENT', `blob source ${p.file} has ${st.size} bytes, more than ${MAX_BLOB_SIZE}`, { archive: p.name, path: p.file });
        what = `${st.isFile() ? 'file' : st.isBlockDevice() ? 'block device' : st.isCharacterDevice() ? 'character device' : st.isFIFO() ? 'pipe' : 'special file'} ${p.file}`;
      }
      if (kind === 'image') {
        const s = await dry.addImage(p.name, o.imageSource(p.file), {
          signal: o.signal,
          onProgress: (x: BackupProgress) => o.progress.update(x.archive, x.bytesDone, x.bytesTotal),
          ...(o.changed === undefined ? {} : { changed: o.changed }),
          ...(o.chunkSize === undefined ? {} : { chunkSize: o.chunkSize }),
        });
        o.progress.end();
        archives[p.name] = { kind, source: p.file, ...s };
        lines.push(
          `  ${p.name}: image from ${what}, ${humanBytes(s.bytes)}; ${chunkLine(s)}${s.chunksKnown + s.chunksReused > 0 ? `, ${s.chunksKnown + s.chunksReused} from the previous snapshot` : ''}`,
        );
      } else {
        const data = await readBlobSource(p.file, { maxSize: MAX_BLOB_SIZE, signal: o.signal });
        const s = dry.addBlob(p.name, data);
        archives[p.name] = { kind, source: p.file, ...s };
        lines.push(`  ${p.name}: blob from ${what}, ${humanBytes(s.bytes)}; stored whole with the snapshot (1 new chunk)`);
      }
    }
    const total = dry.totals;
    lines.push(
      `would store about ${humanBytes(total.newBytes)} new bytes in ${total.newChunks} chunks (uncompressed; LZ4 may store less), of ${total.chunks} chunks, ${humanBytes(total.bytes)}`,
    );
    print(g, { dryRun: true, group, namespace: cli.ns(), base: base?.name ?? null, archives, total }, lines.join('\n'));
    if (incompleteTrees) process.exitCode = EXIT_INCOMPLETE;
  } finally {
    await dry.close();
  }
}

/** Adds `backup` to the program. */
export function registerBackup(program: Command, cli: CliContext): void {
  program
    .command('backup')
    .description('back up images, directory trees and blobs as a new snapshot of a group')
    .argument('<group>', 'backup group: vm/<id>, ct/<id> or host/<id>')
    .argument(
      '<archives...>',
      '<name>.img:<file-or-device>, <name>.tree:<directory> or <name>.blob:<file>; an image or blob may be a FIFO or pipe (/dev/stdin), and an image - for stdin',
    )
    .option('--exclude <glob>', 'leave out paths of tree archives matching this gitignore-style pattern (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--exclude-file <file>', 'read --exclude patterns from this file, one per line (# comments; repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option(
      '--dry-run',
      'read, chunk and hash the sources as a backup would and print what would be backed up and how much of it the datastore does not have yet; writes nothing and takes no lock',
    )
    .option('--one-file-system', 'do not descend into other filesystems in tree archives')
    .option('--changed <ranges-file>', 'changed byte ranges of the image since the previous backup ("<offset> <length>" per line)')
    .option('--time <rfc3339>', 'snapshot time, e.g. 2026-11-26T09:35:01Z (default: now)')
    .option('--chunk-size <bytes>', "image chunk size (default: the datastore's)", (v) => Number(v))
    .option('--source-size <bytes>', 'bytes to read from the one image source: required for a character device (which may never end), checked for a pipe', byteCount)
    .addHelpText(
      'after',
      '\nA file is read up to its size when it is opened. Entries of a tree that cannot be read, or that are replaced or\nchange while the backup reads them, are listed as warnings; the snapshot is committed and the exit status is 7.\nSIGINT or SIGTERM stops the backup (nothing of it is kept); a second one ends the process at once.\n--dry-run reads the sources as the backup would (unchanged files of the newest snapshot are not read, --changed\nand --chunk-size apply), cuts them into the same chunks, hashes them and asks the datastore which it has; per\narchive it prints entries and bytes, chunks, new chunks and their bytes, then "would store about N new bytes in K\nchunks". New bytes are uncompressed: what LZ4 stores may be smaller. A blob is stored whole with each snapshot\n(one new chunk). It writes nothing, touches no chunk and takes no lock.\n\nExamples:\n  cairn --store ./cairn-store backup vm/100 drive-scsi0.img:/dev/vg0/vm-100-disk-0 qemu-server.conf.blob:/etc/pve/qemu-server/100.conf\n  cairn --store ./cairn-store backup host/web etc.tree:/etc home.tree:/home --exclude "*.cache" --one-file-system',
    )
    .action(
      async (
        group: string,
        specs: string[],
        o: { changed?: string; time?: string; chunkSize?: number; sourceSize?: number; exclude: string[]; excludeFile: string[]; dryRun?: boolean; oneFileSystem?: boolean },
      ) => {
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
          file === '-'
            ? { stream: process.stdin, ...(o.sourceSize === undefined ? {} : { size: o.sourceSize }) }
            : o.sourceSize === undefined
              ? file
              : { path: file, size: o.sourceSize };
        // Read like a blob: bounded, a FIFO or device cannot make it endless.
        let changed: ChangedMap | undefined;
        if (o.changed !== undefined) {
          let text: string;
          try {
            text = Buffer.from(await readBlobSource(o.changed)).toString('utf8');
          } catch (e) {
            if (isCairnError(e, 'ERR_NOT_FOUND')) throw new CairnError('ERR_NOT_FOUND', `changed-ranges file ${o.changed} does not exist`, { path: o.changed }, e);
            throw e;
          }
          changed = parseRangesFile(text, o.changed);
        }
        const exclude = [...o.exclude, ...(await readExcludeFiles(o.excludeFile))];
        // The first signal stops the backup (every source read observes it; nothing of it is kept); a
        // second one ends the process at once.
        const signal = cli.signal();
        if (o.dryRun === true) {
          // Read-only: nothing can be written, no lock is taken (not even on the base it reads).
          const ds = await Datastore.open(storePath(g), { readOnly: true });
          const progress = new Progress(progressMode(g));
          try {
            await dryRun(ds, cli, group, parsed, {
              exclude,
              oneFileSystem: o.oneFileSystem === true,
              signal,
              progress,
              imageSource,
              ...(changed === undefined ? {} : { changed }),
              ...(o.chunkSize === undefined ? {} : { chunkSize: o.chunkSize }),
            });
          } finally {
            progress.end();
            await ds.close();
          }
          return;
        }
        await withStore(g, async (ds) => {
          const progress = new Progress(progressMode(g));
          const w = await ds.group(group, { namespace: cli.ns() }).backup(o.time === undefined ? { signal } : { time: o.time, signal });
          try {
            const stats: Record<string, unknown> = {};
            const trees: Record<string, TreeArchiveStats> = {};
            for (const p of parsed) {
              if (p.name.endsWith('.img')) {
                stats[p.name] = await w.addImage(p.name, imageSource(p.file), {
                  signal,
                  onProgress: (x: BackupProgress) => progress.update(x.archive, x.bytesDone, x.bytesTotal),
                  ...(changed === undefined ? {} : { changed }),
                  ...(o.chunkSize === undefined ? {} : { chunkSize: o.chunkSize }),
                });
                progress.end();
              } else if (p.name.endsWith('.tree')) {
                const t = await w.addTree(p.name, p.file, {
                  signal,
                  exclude,
                  oneFileSystem: o.oneFileSystem === true,
                  onProgress: treeProgress(progress),
                });
                progress.end();
                trees[p.name] = t;
              } else {
                await w.addBlob(p.name, await readBlobSource(p.file, { maxSize: MAX_BLOB_SIZE, signal }));
              }
            }
            const snap = await w.commit();
            const lines = [`created snapshot ${snap.name}${snap.namespace ? ` in namespace ${snap.namespace}` : ''}`];
            for (const [name, t] of Object.entries(trees)) {
              lines.push(
                `  ${name}: ${count(t.entries, 'entry', 'entries')}, ${humanBytes(t.bytes)} in ${t.seconds.toFixed(2)} s; ${count(t.filesRead, 'file')} read, ${t.filesReused} unchanged (not opened); ${count(t.payload.chunksWritten + t.meta.chunksWritten, 'new chunk')} (${humanBytes(t.payload.bytesStored + t.meta.bytesStored)} stored)`,
              );
              for (const pr of t.problems) lines.push(`  warning: ${name}: ${pr.path}: ${pr.code}: ${pr.message}`);
              if (t.problemCount > t.problems.length) lines.push(`  warning: ${name}: ${t.problemCount - t.problems.length} more problems`);
            }
            for (const [name, s] of Object.entries(stats) as [
              string,
              { bytes: number; seconds: number; chunks: number; chunksWritten: number; chunksKnown: number; chunksReused: number; bytesStored: number },
            ][]) {
              const rate = s.seconds > 0 ? `${humanBytes(s.bytes / s.seconds)}/s` : '';
              // The parts add up to the chunks (ArchiveStats); zero chunks are counted within them.
              const { chunksDuplicate, chunksZero } = s as unknown as { chunksDuplicate: number; chunksZero: number };
              lines.push(
                `  ${name}: ${humanBytes(s.bytes)} in ${s.seconds.toFixed(2)} s ${rate}; ${count(s.chunks, 'chunk')}, ${s.chunksWritten} new (${humanBytes(s.bytesStored)} stored), ${chunksDuplicate} already stored, ${s.chunksKnown + s.chunksReused} from the previous snapshot${chunksZero > 0 ? ` (${chunksZero} of them all-zero)` : ''}`,
              );
            }
            print(g, { ...snap.toJSON(), stats: { ...stats, ...trees } }, lines.join('\n'));
            if (Object.values(trees).some(incomplete)) process.exitCode = EXIT_INCOMPLETE;
          } catch (e) {
            progress.end();
            await w.abort();
            throw e;
          }
        });
      },
    );
}

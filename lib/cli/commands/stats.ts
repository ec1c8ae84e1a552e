/** `cairn stats`: logical and stored bytes and the deduplication factor, per group, namespace and in total. */
import type { Command } from 'commander';
import { datastoreStats, type SpaceStats } from '../../index.js';
import { print, withStore, type CliContext } from '../context.js';
import { count, humanBytes, table } from '../format.js';
import { Progress, progressMode } from '../progress.js';

/** The table cells of one line: logical, stored, dedup factor, chunks, snapshots. */
function cells(s: SpaceStats): string[] {
  return [humanBytes(s.logicalBytes), humanBytes(s.storedBytes), `${s.dedupFactor.toFixed(2)}x`, String(s.chunks), String(s.snapshots)];
}

/** Adds `stats` to the program. */
export function registerStats(program: Command, cli: CliContext): void {
  program
    .command('stats')
    .description('space used: logical bytes, stored bytes and deduplication, per group, per namespace and in total')
    .argument('[group]', 'only this backup group type/id (of --ns)')
    .option('--max-depth <n>', 'namespace levels below --ns to include (default 7)', (v) => Number(v))
    .addHelpText(
      'after',
      '\nExamples:\n  cairn --store ./cairn-store stats\n  cairn --store ./cairn-store --ns site-a stats vm/100 --json\n\n' +
        'logical: the sizes of the image and tree archives of every snapshot, summed over snapshots (what\n' +
        'restoring them all would write). stored: the on-disk size of the distinct chunks they reference.\n' +
        "dedup: logical / stored. Chunks are shared between snapshots and groups: a group's stored counts\n" +
        "every chunk it references once, also when other groups reference it too (so the groups' stored\n" +
        'may add up to more than the total); a namespace and the total count each chunk once. Blobs are\n' +
        'kept whole in the snapshot directories and are counted in neither. Chunks no snapshot references\n' +
        '(garbage for cairn gc) are not counted. Missing chunks are counted as 0 bytes and reported.',
    )
    .action(async (group: string | undefined, o: { maxDepth?: number }) => {
      const g = cli.globals();
      await withStore(g, async (ds) => {
        const progress = new Progress(progressMode(g));
        const r = await datastoreStats(
          ds,
          { namespace: cli.ns(), ...(group === undefined ? {} : { group }), ...(o.maxDepth === undefined ? {} : { maxDepth: o.maxDepth }) },
          { signal: cli.signal(), onProgress: (p) => progress.update('stats: snapshots', p.snapshotsDone, p.snapshotsTotal, 'items') },
        );
        progress.end();
        const nsName = (n: string): string => (n === '' ? '(root)' : n);
        const rows: string[][] = [];
        for (const x of r.groups) rows.push([`${x.namespace === '' ? '' : `${x.namespace}:`}${x.group}`, ...cells(x)]);
        for (const x of r.namespaces) rows.push([`namespace ${nsName(x.namespace)}`, ...cells(x)]);
        rows.push(['total', ...cells(r.total)]);
        const lines = [table(['', 'logical', 'stored', 'dedup', 'chunks', 'snapshots'], rows, [false, true, true, true, true, true])];
        if (r.total.missingChunks > 0)
          lines.push(`warning: ${count(r.total.missingChunks, 'referenced chunk')} ${r.total.missingChunks === 1 ? 'is' : 'are'} missing (counted as 0 bytes); run cairn verify`);
        for (const s of r.skipped) lines.push(`skipped ${s.namespace === '' ? '' : `${s.namespace}:`}${s.snapshot}: ${s.reason}`);
        print(g, r, lines.join('\n'));
      });
    });
}

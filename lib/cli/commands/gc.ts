/** `cairn gc`: garbage collection, remove chunks no snapshot needs. */
import type { Command } from 'commander';
import { GarbageCollector } from '../../index.js';
import { print, withStore, type CliContext } from '../context.js';
import { count, humanBytes } from '../format.js';
import { Progress, progressMode } from '../progress.js';

/** Adds `gc` to the program. */
export function registerGc(program: Command, cli: CliContext): void {
  program
    .command('gc')
    .description('garbage collection: remove chunks no snapshot needs (those freed by prune or forget), without a 24-hour wait')
    .option('--dry-run', 'count what would be removed, change nothing')
    .option('--skew <seconds>', 'safety margin under the cutoff, in seconds (default: measured, about 0.1 s on a local filesystem; see --network-skew)', (v) => Number(v))
    .option('--network-skew <seconds>', 'the margin on a network filesystem (NFS, SMB, FUSE, 9p, ...) or one whose type cannot be told, in seconds (default 60)', (v) => Number(v))
    .addHelpText('after', '\nExamples:\n  cairn --store ./cairn-store gc\n  cairn --store ./cairn-store gc --dry-run --json')
    .action(async (o: { dryRun?: boolean; skew?: number; networkSkew?: number }) => {
      const g = cli.globals();
      await withStore(g, async (ds) => {
        const progress = new Progress(progressMode(g));
        const r = await new GarbageCollector(ds).run({
          signal: cli.signal(),
          onProgress: (p) => progress.update(p.phase === 'mark' ? 'gc: marking, snapshots' : 'gc: sweeping, chunk directories', p.done, p.total, 'items'),
          ...(o.dryRun === true ? { dryRun: true } : {}),
          ...(o.skew === undefined ? {} : { skewMs: o.skew * 1000 }),
          ...(o.networkSkew === undefined ? {} : { networkSkewMs: o.networkSkew * 1000 }),
        });
        progress.end();
        const lines = [
          `${r.dryRun ? 'would remove' : 'removed'} ${count(r.removedChunks, 'chunk')} (${humanBytes(r.removedBytes)}); ${r.pendingChunks} pending (${humanBytes(r.pendingBytes)}, newer than the cutoff)`,
          `kept ${count(r.diskChunks, 'chunk')} (${humanBytes(r.diskBytes)}) for ${count(r.snapshots, 'snapshot')}; deduplication ${r.dedupFactor.toFixed(2)}x; ${r.badChunks} bad`,
          r.skew.summary,
        ];
        print(g, r, lines.join('\n'));
      });
    });
}

/** `cairn verify`: check snapshots and the chunks they reference. */
import type { Command } from 'commander';
import { CairnError, Verifier, snapshotIdentity } from '../../index.js';
import { print, withStore, type CliContext } from '../context.js';
import { count, humanBytes } from '../format.js';
import { Progress, progressMode } from '../progress.js';

/** Adds `verify` to the program. */
export function registerVerify(program: Command, cli: CliContext): void {
  program
    .command('verify')
    .description('check snapshots: index checksums, then every referenced chunk once (CRC, decode, digest, size); corrupt chunks are renamed aside')
    .argument('[target]', 'a group type/id or a snapshot type/id/time (default: every snapshot below --ns)')
    .option('--max-depth <n>', 'namespace levels to descend (default 7)', (v) => Number(v))
    .option('--ignore-verified', 'skip snapshots already verified ok')
    .option('--outdated-after <days>', 'with --ignore-verified: verify again when older than this', (v) => Number(v))
    .option('--sample <fraction>', 'check only this fraction of the chunks (0 < f <= 1), for a quick partial check', (v) => Number(v))
    .addHelpText('after', '\nExamples:\n  cairn --store ./cairn-store verify\n  cairn --store ./cairn-store verify vm/100 --ignore-verified --outdated-after 30')
    .action(async (target: string | undefined, o: { maxDepth?: number; ignoreVerified?: boolean; outdatedAfter?: number; sample?: number }) => {
      const g = cli.globals();
      await withStore(g, async (ds) => {
        const parts = target === undefined ? [] : target.split('/');
        const scope = {
          namespace: cli.ns(),
          ...(o.maxDepth === undefined ? {} : { maxDepth: o.maxDepth }),
          ...(parts.length === 2 ? { group: target! } : {}),
          ...(parts.length === 3 ? { snapshot: target! } : {}),
        };
        if (target !== undefined && parts.length !== 2 && parts.length !== 3) {
          throw new CairnError('ERR_INVALID_ARGUMENT', `verify target '${target}' must be type/id or type/id/time`);
        }
        const progress = new Progress(progressMode(g));
        const report = await new Verifier(ds).verify(scope, {
          signal: cli.signal(),
          onProgress: (p) => progress.update('verify: snapshots', p.snapshotsDone, p.snapshotsTotal, 'items'),
          ...(o.ignoreVerified === true ? { ignoreVerified: true } : {}),
          ...(o.outdatedAfter === undefined ? {} : { outdatedAfter: o.outdatedAfter }),
          ...(o.sample === undefined ? {} : { sample: o.sample }),
        });
        progress.end();
        const lines = [
          `verified ${count(report.ok.length + report.failed.length, 'snapshot')}: ${report.ok.length} ok, ${report.failed.length} failed${report.skipped.length > 0 ? `, ${report.skipped.length} skipped` : ''}; ${count(report.chunksChecked, 'chunk')}, ${humanBytes(report.bytesChecked)} in ${report.seconds.toFixed(2)} s (${report.mbPerSecond.toFixed(0)} MB/s)`,
        ];
        if (report.readOnly) lines.push('read-only datastore: everything was checked, but no verify state was recorded and no damaged chunk was moved aside');
        for (const f of report.failed) lines.push(`failed: ${f}`);
        for (const c of report.failedChunks)
          lines.push(`chunk ${c.digest}: ${c.code}: ${c.message}${c.quarantined ? ` (moved to ${c.quarantined})` : ''}; needed by ${c.snapshots.join(', ')}`);
        print(g, { ...report, snapshots: report.snapshots.map((x) => ({ ...snapshotIdentity(x.namespace, x.snapshot), ...x })) }, lines.join('\n'));
        if (report.failed.length > 0) process.exitCode = 5;
      });
    });
}

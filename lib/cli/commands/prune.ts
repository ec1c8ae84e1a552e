/** `cairn prune`: remove the snapshots a retention policy does not keep. */
import type { Command } from 'commander';
import { snapshotIdentity } from '../../index.js';
import { print, withStore, type CliContext } from '../context.js';
import { count } from '../format.js';

/** Adds `prune` to the program. */
export function registerPrune(program: Command, cli: CliContext): void {
  program
    .command('prune')
    .description('remove the snapshots a retention policy does not keep (PBS rules; chunks stay until gc)')
    .argument('[group]', 'backup group type/id (default: every group of --ns and the namespaces below it)')
    .option('--dry-run', 'only show what would be removed')
    .option('--keep-last <n>', 'keep the newest N snapshots', (v) => Number(v))
    .option('--keep-hourly <n>', 'keep the newest snapshot of the last N hours that have one', (v) => Number(v))
    .option('--keep-daily <n>', 'keep the newest snapshot of the last N days that have one', (v) => Number(v))
    .option('--keep-weekly <n>', 'keep the newest snapshot of the last N ISO weeks that have one', (v) => Number(v))
    .option('--keep-monthly <n>', 'keep the newest snapshot of the last N months that have one', (v) => Number(v))
    .option('--keep-yearly <n>', 'keep the newest snapshot of the last N years that have one', (v) => Number(v))
    .option('--max-depth <n>', 'without a group: levels of namespaces below --ns (default 7)', (v) => Number(v))
    .option('--time-zone <zone>', 'IANA time zone of the hour/day/week/month/year periods (default: local)')
    .addHelpText(
      'after',
      '\nExamples:\n  cairn --store ./cairn-store prune vm/100 --keep-last 3 --keep-daily 13 --keep-weekly 8 --keep-monthly 11 --keep-yearly 9 --dry-run\n  cairn --store ./cairn-store --ns site-a prune --keep-daily 7 --time-zone Europe/Berlin\n\nOne line per snapshot: <type>/<id>/<time> <keep|keep-partial|protected|remove> (prefixed <namespace>:\noutside the root namespace). Without any --keep-* option nothing is removed. Locked snapshots\n(being read, or the base of a running backup) are skipped and reported.',
    )
    .action(
      async (
        group: string | undefined,
        o: {
          dryRun?: boolean;
          keepLast?: number;
          keepHourly?: number;
          keepDaily?: number;
          keepWeekly?: number;
          keepMonthly?: number;
          keepYearly?: number;
          maxDepth?: number;
          timeZone?: string;
        },
      ) => {
        const g = cli.globals();
        const { Pruner } = await import('../../index.js');
        await withStore(g, async (ds) => {
          const keep: Record<string, number | string> = {};
          for (const k of ['keepLast', 'keepHourly', 'keepDaily', 'keepWeekly', 'keepMonthly', 'keepYearly', 'timeZone'] as const) {
            const v = o[k];
            if (v !== undefined) keep[k] = v;
          }
          const scope = { namespace: cli.ns(), ...(group === undefined ? {} : { group }), ...(o.maxDepth === undefined ? {} : { maxDepth: o.maxDepth }) };
          {
            const pruner = new Pruner(ds);
            const report = await pruner.apply(await pruner.plan(scope, keep), { dryRun: o.dryRun === true, signal: cli.signal() });
            const lines = report.entries.map(
              (e) => `${e.namespace === '' ? '' : `${e.namespace}:`}${e.group}/${e.time} ${e.mark}${e.skipped === undefined ? '' : ` (skipped: ${e.skipped})`}`,
            );
            const t = report.totals;
            lines.push(
              `${report.dryRun ? 'dry run: would remove' : 'removed'} ${report.dryRun ? t.remove : t.removed} of ${count(t.snapshots, 'snapshot')}${t.skipped > 0 ? `, skipped ${t.skipped}` : ''}`,
            );
            print(g, { ...report, entries: report.entries.map((e) => ({ ...snapshotIdentity(e.namespace, e.group, e.time), ...e })) }, lines.join('\n'));
          }
        });
      },
    );
}

/**
 * Short versions of the concurrency run in bench/chaos.js: several processes back up, restore,
 * prune, forget, protect, move, verify and collect garbage at the same time on a seeded schedule
 * (and, in the second test, are killed with SIGKILL at random moments). Afterwards every snapshot
 * restores byte-identical and verify passes, before and after a final GC, the chunk store holds
 * nothing but chunks, and the datastore agrees with the model of acknowledged backups and removals.
 * Longer runs: `node bench/chaos.js --seconds 3600 [--kill]`.
 */
import t, { type Test } from 'tap';
import path from 'node:path';
import { REPO, requireBuilt, runScript } from '../cli/run-cli.js';
import { tempDir } from '../helpers/fixtures.js';

const CHAOS = path.join(REPO, 'bench', 'chaos.js');

interface ChaosReport {
  kills: number;
  ops: Record<string, number>;
  expected: Record<string, number>;
  failures: string[];
  snapshots: number;
  checked: number;
  final: { leftovers?: number; gc?: { removedChunks: number } } & Record<string, unknown>;
  model: { backupsBegun: number; mustExist: number; removed: number; uncertain: number; exist: number };
  sabotaged?: string;
}

async function chaos(t: Test, args: string[]): Promise<ChaosReport | undefined> {
  const dir = tempDir(t, 'cairn-chaos-');
  const run = await runScript(CHAOS, [...args, '--json', '--dir', dir]);
  let report: ChaosReport;
  try {
    report = JSON.parse(run.out) as ChaosReport;
  } catch {
    t.fail(`chaos run printed no report (exit ${run.code}): ${run.err.slice(0, 4000)}`);
    return undefined;
  }
  t.same(report.failures, [], 'no failures');
  t.equal(run.code, 0, 'exit 0');
  for (const op of ['backup', 'restore', 'prune', 'verify', 'gc', 'forget', 'move', 'protect']) {
    const refused = Object.entries(report.expected)
      .filter(([k]) => k.startsWith(`${op}:`))
      .reduce((a, [, v]) => a + v, 0);
    t.ok((report.ops[op] ?? 0) + refused > 0, `${op} was tried (${report.ops[op] ?? 0} done, ${refused} refused)`);
  }
  for (const op of ['backup', 'gc']) t.ok((report.ops[op] ?? 0) > 0, `${op} succeeded at least once`);
  t.ok(report.snapshots > 0, `${report.snapshots} snapshots at the end, all checked`);
  t.equal(report.final.leftovers, 0, 'only chunk files in the chunk store after the final GC');
  t.ok(report.model.mustExist > 0, `the model: ${report.model.mustExist} snapshots must exist (${report.model.removed} removed, ${report.model.uncertain} uncertain)`);
  t.ok(report.model.exist >= report.model.mustExist, 'and they do');
  return report;
}

if (requireBuilt(t)) {
  t.test('backups, restores, prunes, forgets, moves, verifies and GCs in 4 processes at once', async (t) => {
    const r = await chaos(t, ['--seconds', '25', '--workers', '4', '--seed', '11']);
    if (r !== undefined)
      t.ok(
        Object.keys(r.expected).some((k) => k.endsWith('ERR_LOCKED')),
        'the processes did meet each other (some ERR_LOCKED)',
      );
  });

  t.test('the same with processes killed by SIGKILL at random moments', async (t) => {
    const r = await chaos(t, ['--seconds', '25', '--workers', '4', '--seed', '12', '--kill']);
    if (r !== undefined) t.ok(r.kills >= 5, `${r.kills} processes killed`);
  });

  t.test("the model notices a snapshot lost behind everyone's back (the checks can fail)", async (t) => {
    const dir = tempDir(t, 'cairn-chaos-');
    const run = await runScript(CHAOS, ['--seconds', '6', '--workers', '2', '--seed', '13', '--sabotage', '--json', '--dir', dir]);
    const report = JSON.parse(run.out) as ChaosReport;
    t.ok(report.sabotaged, `removed ${report.sabotaged}`);
    t.equal(run.code, 1, 'exit 1');
    t.ok(
      report.failures.some((f) => /was committed and never removed, but is found 0 times/.test(f)),
      'the model reports it',
      { failures: report.failures },
    );
  });
}

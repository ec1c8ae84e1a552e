/** `cairn benchmark`: the speed of the building blocks on this machine, against a reference machine. */
import type { Command } from 'commander';
import { runBenchmark, type BenchmarkResult } from '../../index.js';
import { print, type CliContext } from '../context.js';

function line(r: BenchmarkResult): string {
  return `${r.label.padEnd(62)} ${r.mbPerSecond.toFixed(0).padStart(6)} MB/s  ${r.percentOfReference.toFixed(0).padStart(4)} %`;
}

/** Adds `benchmark` to the program. */
export function registerBenchmark(program: Command, cli: CliContext): void {
  program
    .command('benchmark')
    .description('measure BLAKE3, LZ4, the chunker, chunk verify and the worker pool on this machine, in memory, against a reference machine')
    .option('--seconds <n>', 'seconds per measurement (default 1)', (v) => Number(v))
    .option('--threads <n>', 'worker threads for the pool test (default: the cores)', (v) => Number(v))
    .addHelpText('after', '\nExamples:\n  cairn benchmark\n  cairn benchmark --seconds 3 --json')
    .action(async (o: { seconds?: number; threads?: number }) => {
      const g = cli.globals();
      const tty = process.stderr.isTTY === true && g.json !== true;
      const report = await runBenchmark({
        ...(o.seconds === undefined ? {} : { seconds: o.seconds }),
        ...(o.threads === undefined ? {} : { threads: o.threads }),
        ...(tty ? { onResult: (r: BenchmarkResult) => process.stderr.write(`\r\x1b[Kmeasured: ${r.label}`) } : {}),
      });
      if (tty) process.stderr.write('\r\x1b[K');
      const ref = report.reference;
      const lines = [
        `this machine: ${report.cpu.model}, ${report.cpu.count} CPUs; pool threads ${report.threads}`,
        `reference (100 %): ${ref.cpu}, ${ref.cores} cores, Node ${ref.node}, ${ref.date}`,
        '',
        `${'step'.padEnd(62)} ${'speed'.padStart(11)}  ${'of ref.'.padStart(6)}`,
        ...report.results.map(line),
      ];
      print(g, report, lines.join('\n'));
    });
}

import t from 'tap';
import { runBenchmark, BENCHMARK_REFERENCE, type BenchmarkResult } from '../../lib/index.js';
import { cairn, requireBuilt } from '../cli/run-cli.js';

t.test('every building block is measured against the reference', async (t) => {
  const seen: BenchmarkResult[] = [];
  const r = await runBenchmark({ seconds: 0.05, threads: 1, onResult: (x) => seen.push(x) });
  t.same(
    r.results.map((x) => x.id),
    ['blake3', 'lz4-compress', 'lz4-decompress', 'chunker', 'verify', 'pool-encode'],
  );
  t.same(seen, r.results, 'progress for each');
  t.equal(r.threads, 1);
  for (const x of r.results) {
    t.ok(x.mbPerSecond > 0 && Number.isFinite(x.mbPerSecond), `${x.id}: ${x.mbPerSecond.toFixed(0)} MB/s`);
    t.equal(x.referenceMbPerSecond, BENCHMARK_REFERENCE.mbPerSecond[x.id]);
    t.ok(Math.abs(x.percentOfReference - (100 * x.mbPerSecond) / x.referenceMbPerSecond) < 1e-9);
  }
  t.ok(r.cpu.model.length > 0 && r.cpu.count > 0);
  t.match(r.reference, { cores: 2, date: '2026-11-26' });
});

t.test('abortable', async (t) => {
  const ac = new AbortController();
  await t.rejects(runBenchmark({ seconds: 0.02, threads: 1, signal: ac.signal, onResult: () => ac.abort() }), { code: 'ERR_ABORTED' });
});

if (requireBuilt(t)) {
  t.test('cairn benchmark', async (t) => {
    const j = await cairn(['--json', 'benchmark', '--seconds', '0.05', '--threads', '1']);
    t.equal(j.code, 0, j.err);
    t.equal((JSON.parse(j.out) as { results: unknown[] }).results.length, 6);
    const txt = await cairn(['benchmark', '--seconds', '0.05', '--threads', '1']);
    t.equal(txt.code, 0, txt.err);
    t.match(txt.out, /reference \(100 %\): AMD EPYC/);
    t.match(txt.out, /BLAKE3 digest .* MB\/s +\d+ %/);
  });
}

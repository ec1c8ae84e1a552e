/**
 * The datastore and maintenance tests again, with every datastore's content in a MemoryBackend
 * (the storage-seam issue: backup, restore, verify, prune and moves work on a backend without
 * directories or local files).
 *
 * How: this file runs tap over the files listed in test/helpers/memory-skips.ts with
 * `CAIRN_TEST_BACKEND=memory` and `--node-arg=--import=test/helpers/memory-backend-hook.ts`. That
 * preload wraps `Datastore.create`/`Datastore.open` so that every root path maps to one
 * MemoryBackend kept for the test process (reopening a root finds its data; the directory keeps only
 * the `.locks/` tree), and skips the subtests memory-skips.ts names in that file. The tests
 * themselves are unchanged. To run one file this way by hand:
 *
 *   CAIRN_TEST_BACKEND=memory npx tap --disable-coverage \
 *     --node-arg=--import=./test/helpers/memory-backend-hook.ts test/datastore/move.test.ts
 *
 * What is left out, and why (files touching the datastore's files on disk, child processes that
 * open the same datastore, GC sweeps that need the generic sweep), is listed with reasons in
 * memory-skips.ts. The nested run has no coverage (the outer run measures it) and runs one file at
 * a time, beside the outer run's own jobs.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MEMORY_RUN_FILES, SKIPPED_FILES } from '../helpers/memory-skips.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const HOOK = path.join(REPO, 'test', 'helpers', 'memory-backend-hook.ts');
/** Seconds: the whole nested run (about 4 min on an idle 2-core machine; much more when loaded). */
const RUN_TIMEOUT_S = 40 * 60;
/** Seconds per nested test file. */
const FILE_TIMEOUT_S = 600;

t.setTimeout(RUN_TIMEOUT_S * 1000);

t.test('the files listed and the files skipped cover the datastore and maintenance tests once', async (t) => {
  const all = ['test/datastore', 'test/maintenance', 'test/store'].flatMap((d) =>
    readdirSync(path.join(REPO, d))
      .filter((f) => f.endsWith('.test.ts'))
      .map((f) => `${d}/${f}`),
  );
  const listed = [...MEMORY_RUN_FILES, ...Object.keys(SKIPPED_FILES)].sort();
  t.same(listed, all.sort(), 'every test file is run or skipped with a reason, none twice');
});

t.test('datastore and maintenance tests on a MemoryBackend', async (t) => {
  const tapBin = path.join(REPO, 'node_modules', 'tap', 'dist', 'esm', 'run.mjs');
  const out = mkdtempSync(path.join(tmpdir(), 'cairn-memory-run-'));
  t.teardown(() => rmSync(out, { recursive: true, force: true }));
  // The outer tap's variables would make the nested run a child of it.
  const env: NodeJS.ProcessEnv = { CAIRN_TEST_BACKEND: 'memory' };
  for (const [k, v] of Object.entries(process.env)) if (!/^(TAP|_TAPJS|NODE_V8_COVERAGE)/.test(k) && k !== 'CAIRN_TEST_BACKEND') env[k] = v;
  const args = [
    tapBin,
    '--disable-coverage',
    // The nested run covers a subset of lib/: its coverage is the outer run's business, never a failure here.
    '--allow-incomplete-coverage',
    '--reporter=tap',
    '--jobs=1',
    `--timeout=${FILE_TIMEOUT_S}`,
    `--output-dir=${out}`,
    `--node-arg=--import=${HOOK}`,
    ...MEMORY_RUN_FILES,
  ];
  const started = Date.now();
  const { code, output } = await new Promise<{ code: number | null; output: string }>((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('error', reject);
    child.on('close', (c) => resolve({ code: c, output }));
  });
  const seconds = ((Date.now() - started) / 1000).toFixed(0);
  const failed = output.split('\n').filter((l) => /^\s*not ok /.test(l) && !/# (SKIP|TODO)/.test(l));
  t.comment(`memory run: ${MEMORY_RUN_FILES.length} files in ${seconds} s`);
  t.equal(code, 0, `every listed file passes on a MemoryBackend${failed.length > 0 ? `; failed:\n${failed.join('\n')}` : ''}`);
  if (code !== 0) t.comment(output.slice(-20_000));
  for (const f of MEMORY_RUN_FILES) t.match(output, new RegExp(`^ok \\d+ - ${f.replace(/\./g, '\\.')}`, 'm'), `${f} ran and passed`);
});

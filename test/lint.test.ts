// `npm run lint` and `npm run format:check` as part of `npm test`: eslint (eslint.config.js) on
// lib/ and test/, prettier (.prettierrc.json) on lib/, test/, bench/ and examples/.
import t from 'tap';
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { ESLint } from 'eslint';
import * as prettier from 'prettier';

const require = createRequire(import.meta.url);

// The same files as the package.json scripts `lint` and `format:check`.
const LINT_DIRS = ['lib', 'test'];
const FORMAT_GLOB = '{lib,test,bench,examples}/**/*.{ts,js,mjs,cjs}';

// Each tool takes about 15 s of CPU on this tree; both run at once, and a loaded machine is slower.
t.setTimeout(300_000);

interface Out {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a package's bin with node; never rejects (the exit code and output are checked by the caller). */
function runBin(pkg: string, bin: string, args: string[]): Promise<Out> {
  const file = path.join(path.dirname(require.resolve(`${pkg}/package.json`)), bin);
  const env: Record<string, string | undefined> = { ...process.env, NO_COLOR: '1' };
  // The test runner's loader and coverage options are not for these programs (coverage makes them slower).
  delete env['NODE_OPTIONS'];
  delete env['NODE_V8_COVERAGE'];
  return new Promise((resolve) => {
    execFile(process.execPath, [file, ...args], { env, maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1;
      resolve({ code, stdout, stderr });
    });
  });
}

const eslintRun = runBin('eslint', 'bin/eslint.js', ['--format', 'json', ...LINT_DIRS]);
const prettierRun = runBin('prettier', 'bin/prettier.cjs', ['--list-different', FORMAT_GLOB]);

t.test('eslint finds nothing in lib/ and test/ (npm run lint)', async (t) => {
  const r = await eslintRun;
  let results: ESLint.LintResult[] = [];
  try {
    results = JSON.parse(r.stdout) as ESLint.LintResult[];
  } catch {
    t.fail(`eslint printed no JSON (exit ${r.code})\n${r.stdout}${r.stderr}`);
  }
  t.ok(results.length > 100, `linted ${results.length} files`);
  const problems = results.flatMap((f) => f.messages.map((m) => `${path.relative(process.cwd(), f.filePath)}:${m.line}:${m.column} ${m.ruleId ?? ''} ${m.message}`));
  t.same(problems, [], 'no lint errors or warnings');
  t.equal(r.code, 0, `eslint exit ${r.code}\n${r.stderr}`);
});

t.test('prettier finds every file of lib/, test/, bench/ and examples/ formatted (npm run format:check)', async (t) => {
  const r = await prettierRun;
  const unformatted = r.stdout.split('\n').filter((l) => l !== '');
  t.same(unformatted, [], 'files that `npm run format` would change');
  t.equal(r.code, 0, `prettier exit ${r.code}\n${r.stderr}`);
});

t.test('the lint rules catch a violation', async (t) => {
  // Guard against a config that matches nothing: an unused variable in a lib/ file must be reported.
  const [r] = await new ESLint().lintText('const unused = 1;\nexport {};\n', { filePath: path.resolve('lib/probe.ts') });
  t.same(
    r?.messages.map((m) => m.ruleId),
    ['@typescript-eslint/no-unused-vars'],
  );
});

t.test('the prettier config is the code style of lib/', async (t) => {
  const options = await prettier.resolveConfig(path.resolve('lib/probe.ts'));
  t.equal(options?.printWidth, 180, 'the config is found for lib/');
  const opts = { ...options, filepath: 'lib/probe.ts' };
  t.ok(await prettier.check("export const a = ['x', f(1, 2)];\n", opts), 'single quotes, semicolons');
  t.notOk(await prettier.check('export const a = ["x", f(1,2)]\n', opts), 'double quotes and no semicolon are reported');
});

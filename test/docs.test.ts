import t from 'tap';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(import.meta.url);

t.test('typedoc builds the API docs with warnings as errors (every export documented)', async (t) => {
  const bin = path.join(path.dirname(require.resolve('typedoc/package.json')), 'bin', 'typedoc');
  const r = spawnSync(process.execPath, [bin, '--emit', 'none'], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
  t.equal(r.status, 0, `typedoc exit ${r.status}\n${r.stdout}${r.stderr}`);
});

t.test('the API docs are grouped by category, with the internals left out', async (t) => {
  const { mkdtempSync, readFileSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const dir = mkdtempSync(path.join(tmpdir(), 'cairn-docs-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const bin = path.join(path.dirname(require.resolve('typedoc/package.json')), 'bin', 'typedoc');
  const out = path.join(dir, 'api.json');
  const r = spawnSync(process.execPath, [bin, '--json', out, '--out', path.join(dir, 'html')], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
  t.equal(r.status, 0, `typedoc exit ${r.status}\n${r.stdout}${r.stderr}`);
  interface Refl {
    id: number;
    name: string;
    children?: Refl[];
    categories?: { title: string; children: number[] }[];
  }
  const api = JSON.parse(readFileSync(out, 'utf8')) as Refl;
  for (const mod of api.children ?? []) {
    const categorized = new Set((mod.categories ?? []).flatMap((c) => c.children));
    const titles = (mod.categories ?? []).map((c) => c.title);
    t.notOk(titles.includes('Other'), `${mod.name}: no export without a @category`);
    t.same(
      (mod.children ?? []).filter((c) => !categorized.has(c.id)).map((c) => c.name),
      [],
      `${mod.name}: every export is in a category`,
    );
  }
  const index = (api.children ?? []).find((m) => m.name === 'index');
  const names = new Set((index?.children ?? []).map((c) => c.name));
  for (const n of ['Datastore', 'SnapshotWriter', 'GarbageCollector', 'diffSnapshots']) t.ok(names.has(n), `${n} is documented`);
  for (const n of ['setLockHolderName', 'mountOf', 'parseMountInfo']) t.notOk(names.has(n), `${n} (internal) is not in the docs`);
  const gcOptions = index?.children?.find((c) => c.name === 'GcOptions');
  t.notOk(
    gcOptions?.children?.some((c) => c.name === 'hooks'),
    'GcOptions.hooks (test only) is not in the docs',
  );
});

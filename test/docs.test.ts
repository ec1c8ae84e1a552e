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

import t from 'tap';
import { spawn } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { oldestLiveWriter, registerWriter, WRITERS_DIR } from '../../lib/datastore/writer-registry.js';
import { tempDir } from '../helpers/fixtures.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

t.test('live writers are found; a dead writer\'s registration is removed', async (t) => {
  const dir = tempDir(t);
  t.equal(await oldestLiveWriter(dir, 0), undefined, 'no writers');
  const a = await registerWriter(dir, 5000);
  const b = await registerWriter(dir, 3000);
  t.equal(await oldestLiveWriter(dir, 0), 3000, 'the oldest start');
  await b.release();
  await b.release();
  t.equal(await oldestLiveWriter(dir, 0), 5000, 'released registrations are gone');

  // A writer in another process that dies without cleaning up.
  const script = `
    import { registerWriter } from ${JSON.stringify(path.join(root, 'dist/datastore/writer-registry.js'))};
    await registerWriter(${JSON.stringify(dir)}, 1000);
    process.stdout.write('ready\\n');
    setInterval(() => {}, 1000);
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`child exited ${code}`)));
  });
  t.equal(await oldestLiveWriter(dir, 0), 1000, 'a live writer in another process counts');
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  t.equal((await readdir(path.join(dir, WRITERS_DIR))).length, 2, 'its registration file is still there');
  t.equal(await oldestLiveWriter(dir, 0), 5000, 'after it died it no longer counts');
  t.equal((await readdir(path.join(dir, WRITERS_DIR))).length, 1, 'and its registration was removed');
  await a.release();
  t.equal(await oldestLiveWriter(dir, 0), undefined);
});

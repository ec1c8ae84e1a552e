import t from 'tap';
import { spawn } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { oldestLiveWriter, registerWriter, registrationHooks, WRITERS_DIR } from '../../lib/host/writer-registry.js';
import { Datastore, GarbageCollector, Verifier } from '../../lib/index.js';
import { isTempFileName } from '../../lib/util/temp-name.js';
import { seededBytes, tempDir, writeTemp } from '../helpers/fixtures.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

t.test("live writers are found; a dead writer's registration is removed", async (t) => {
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
    import { registerWriter } from ${JSON.stringify(path.join(root, 'dist/host/writer-registry.js'))};
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

// Issue 12: the registration used to be created, then locked. A GC probing in that gap took it
// for a dead writer's and unlinked it; the writer then re-created an unlocked file, and the next
// GC swept the chunks the backup had just written. Now every gap is covered: a GC runs in each one.
for (const step of ['created', 'locked', 'written', 'renamed'] as const) {
  t.test(`a GC in the registration's '${step}' gap keeps the running backup's chunks`, async (t) => {
    const dir = tempDir(t);
    const ds = await Datastore.create(path.join(dir, 'store'), { imageChunkSize: 64 * 1024, syncLevel: 'none', threads: 1 });
    t.teardown(() => ds.close());
    const gc = new GarbageCollector(ds);
    let ran = 0;
    registrationHooks.step = async (s) => {
      if (s !== step || ran > 0) return;
      ran++;
      await gc.run({ skewMs: 0 });
    };
    t.teardown(() => {
      delete registrationHooks.step;
    });
    const w = await ds.group('vm/1').backup();
    t.equal(ran, 1, 'a GC ran in the gap');
    delete registrationHooks.step;
    t.ok((await oldestLiveWriter(ds.root, 0)) !== undefined, 'the writer is registered, and a GC sees it');
    await w.addImage('disk', await writeTemp(dir, 'disk.raw', seededBytes(20 * 64 * 1024, 3)));
    await new Promise((r) => setTimeout(r, 20));
    const during = await gc.run({ skewMs: 0 });
    t.equal(during.removedChunks, 0, 'a GC while the backup runs removes none of its chunks');
    const snap = await w.commit();
    const report = await new Verifier(ds).verify();
    t.same(report.failed, [], 'the snapshot verifies');
    t.same(report.ok, [snap.name]);
    t.same((await readdir(path.join(ds.root, WRITERS_DIR))).length, 0, 'nothing left in the registry');
  });
}

// A writer killed at any step of its registration leaves nothing a GC keeps counting as live,
// and whatever it left is removed by the next probe.
for (const step of ['created', 'locked', 'written', 'renamed'] as const) {
  t.test(`a writer SIGKILLed after '${step}' blocks no GC and leaves no file`, async (t) => {
    const dir = tempDir(t);
    const script = `
      import { registerWriter, registrationHooks } from ${JSON.stringify(path.join(root, 'dist/host/writer-registry.js'))};
      registrationHooks.step = async (s) => {
        if (s !== ${JSON.stringify(step)}) return;
        process.stdout.write('at ' + s + '\\n');
        await new Promise(() => setInterval(() => {}, 1000));
      };
      await registerWriter(${JSON.stringify(dir)}, 1000);
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      child.stdout.once('data', () => resolve());
      child.once('exit', (code) => reject(new Error(`child exited ${code}`)));
    });
    const names = await readdir(path.join(dir, WRITERS_DIR));
    t.equal(names.length, 1);
    t.equal(isTempFileName(names[0]!), step !== 'renamed', 'before the rename it is a temp file by the one temp-name rule');
    const live = await oldestLiveWriter(dir, 7);
    if (step === 'created') t.equal(live, undefined, 'an unlocked temp registration is not a writer');
    else t.equal(live, step === 'locked' ? 7 : 1000, 'a locked registration counts while its writer lives');
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    t.equal(await oldestLiveWriter(dir, 7), undefined, 'after the kill no writer counts');
    t.same(await readdir(path.join(dir, WRITERS_DIR)), [], 'and its files are gone');
    const again = await registerWriter(dir, 2000);
    t.equal(await oldestLiveWriter(dir, 7), 2000, 'a new writer registers');
    await again.release();
  });
}

/**
 * A FUSE mount ends with its datastore: `ds.close()` unmounts the mounts made on it (plainly), a
 * busy one refuses the close with ERR_LOCKED naming its mountpoint. Mountpoints are never created:
 * a missing one is ERR_NOT_FOUND, a file ERR_INVALID_ARGUMENT (library and CLI). Every access to a
 * mount happens in a child process (a process that reads its own mount can starve itself).
 */
import t, { type Test } from 'tap';
import { promises as fsp, existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Datastore, isCairnError, type Snapshot } from '../../lib/index.js';
import { mountDatastore, mountSnapshot } from '../../lib/fuse/index.js';
import { REPO, cairn, requireBuilt, runScript } from '../cli/run-cli.js';
import { Holder, canMount, sha } from '../helpers/fuse-cli.js';
import { seededBytes, tempDir, writeTemp } from '../helpers/fixtures.js';

const WALK = path.join(REPO, 'test', 'helpers', 'fs-walk.mjs');
const CS = 64 * 1024;
const J = path.join;

/** True while `dir` is a mount point of this process's mount namespace (/proc/self/mountinfo). */
function isMountPoint(dir: string): boolean {
  const unescape = (s: string): string => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[4] !== undefined && unescape(l.split(' ')[4]!) === dir);
}

/** sha256 of `[offset, length]` of a file, read by a child process. */
async function readInChild(file: string, offset: number, length: number): Promise<string> {
  const r = await runScript(WALK, ['reads', file, JSON.stringify([[offset, length]])]);
  if (r.code !== 0) throw new Error(`fs-walk exited ${r.code}: ${r.err}`);
  return (JSON.parse(r.out) as { sha: string }[])[0]!.sha;
}

interface Env {
  dir: string;
  ds: Datastore;
  snap: Snapshot;
  image: Uint8Array;
}

async function setup(t: Test): Promise<Env> {
  const dir = tempDir(t, 'cairn-close-');
  const ds = await Datastore.create(J(dir, 'store'), { imageChunkSize: CS, syncLevel: 'none', threads: 1 });
  t.teardown(() => ds.close().catch(() => undefined));
  const image = seededBytes(6 * CS + 11, 21);
  const w = await ds.group('vm/100').backup();
  await w.addImage('disk', await writeTemp(dir, 'disk.raw', image));
  const snap = await w.commit();
  return { dir, ds, snap, image };
}

if (!canMount) {
  t.comment('FUSE tests need root and /dev/fuse');
} else if (requireBuilt(t)) {
  t.test('ds.close() unmounts a snapshot mount and a datastore mount made on it', async (t) => {
    const env = await setup(t);
    const m1 = J(env.dir, 'snap-mnt');
    const m2 = J(env.dir, 'ds-mnt');
    await fsp.mkdir(m1);
    await fsp.mkdir(m2);
    const a = await mountSnapshot(env.snap, m1);
    const b = await mountDatastore(env.ds, m2);
    t.teardown(() => Promise.all([a.unmount(), b.unmount()]));
    t.ok(isMountPoint(m1) && isMountPoint(m2), 'both mounted');
    t.equal(await readInChild(J(m1, 'disk.img'), 0, 4096), sha(env.image.subarray(0, 4096)), 'a child reads the snapshot mount');
    t.equal(await readInChild(J(m2, 'vm', '100', env.snap.time, 'disk.img'), CS, 100), sha(env.image.subarray(CS, CS + 100)), 'and the datastore mount');

    await env.ds.close();
    t.notOk(isMountPoint(m1), 'the snapshot mount is gone');
    t.notOk(isMountPoint(m2), 'the datastore mount is gone');
    await a.unmount(); // idempotent after the close
    await b.unmount();
    t.ok(existsSync(m1), 'the mountpoint directory stays');
    t.throws(() => env.ds.group('vm/100'), { code: 'ERR_NOT_OPEN' }, 'the datastore is closed');
  });

  t.test('a busy mount refuses ds.close() with ERR_LOCKED naming it; the datastore stays open', async (t) => {
    const env = await setup(t);
    const busy = J(env.dir, 'busy');
    const free = J(env.dir, 'free');
    await fsp.mkdir(busy);
    await fsp.mkdir(free);
    const mb = await mountSnapshot(env.snap, busy);
    const mf = await mountSnapshot(env.snap, free);
    t.teardown(() => Promise.all([mb.unmount(), mf.unmount()]));
    const holder = new Holder(J(busy, 'disk.img'));
    t.teardown(() => holder.end());
    t.equal(await holder.send('read 0 100'), sha(env.image.subarray(0, 100)), 'a child holds the image open');

    const err = await env.ds.close().then(
      () => undefined,
      (e: unknown) => e,
    );
    t.ok(isCairnError(err, 'ERR_LOCKED'), 'ERR_LOCKED');
    t.match(err, { details: { path: busy }, message: /busy/ }, 'naming the busy mountpoint');
    t.ok(isMountPoint(busy), 'the busy mount stays');
    t.notOk(isMountPoint(free), 'the free one went');
    t.equal(await holder.send(`read ${CS} 100`), sha(env.image.subarray(CS, CS + 100)), 'the busy mount is still served');
    t.equal((await env.ds.group('vm/100').snapshots()).length, 1, 'the datastore is still open');

    t.equal(await holder.send('close'), 'closed');
    holder.end();
    await env.ds.close();
    t.notOk(isMountPoint(busy), 'once free, a second close unmounts it');
  });

  t.test('Mount.unmount() before close detaches a busy mount lazily; the close then succeeds', async (t) => {
    const env = await setup(t);
    const mnt = J(env.dir, 'mnt');
    await fsp.mkdir(mnt);
    const m = await mountSnapshot(env.snap, mnt);
    const holder = new Holder(J(mnt, 'disk.img'));
    t.teardown(() => holder.end());
    t.equal(await holder.send('read 0 10'), sha(env.image.subarray(0, 10)));
    await m.unmount();
    t.notOk(isMountPoint(mnt), 'detached');
    await env.ds.close();
  });

  t.test('mountpoints are never created: missing is ERR_NOT_FOUND, a file ERR_INVALID_ARGUMENT', async (t) => {
    const env = await setup(t);
    const missing = J(env.dir, 'no', 'such', 'mnt');
    for (const [what, mount] of [
      ['mountSnapshot', (p: string) => mountSnapshot(env.snap, p)],
      ['mountDatastore', (p: string) => mountDatastore(env.ds, p)],
    ] as const) {
      await t.rejects(mount(missing), { code: 'ERR_NOT_FOUND', details: { path: missing } }, `${what}: a missing mountpoint`);
      t.notOk(existsSync(J(env.dir, 'no')), `${what}: nothing was created`);
      const file = J(env.dir, 'a-file');
      await fsp.writeFile(file, 'x');
      await t.rejects(mount(file), { code: 'ERR_INVALID_ARGUMENT', details: { path: file } }, `${what}: a file`);
      await t.rejects(mount(J(file, 'below')), { code: 'ERR_INVALID_ARGUMENT' }, `${what}: below a file`);
    }
    await env.snap.remove(); // nothing holds the snapshot after the refusals

    await env.ds.close();
    const store = env.ds.root;
    for (const daemon of [[], ['--daemon']]) {
      const r = await cairn(['--store', store, 'mount', 'vm/100', missing, ...daemon]);
      t.equal(r.code, 3, `cairn mount ${daemon.join(' ')} at a missing mountpoint: exit 3`);
      t.match(r.err, /ERR_NOT_FOUND.*does not exist/);
      t.notOk(existsSync(J(env.dir, 'no')), 'nothing was created');
    }
    const d = await cairn(['--store', store, 'mount', J(env.dir, 'a-file')]);
    t.equal(d.code, 2, 'cairn mount (datastore) on a file: exit 2');
    t.match(d.err, /ERR_INVALID_ARGUMENT.*not a directory/);
  });
}

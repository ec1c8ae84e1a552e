/**
 * The GC's skew is measured for the datastore's filesystem (lib/maintenance/gc-skew.ts): the
 * granularity and lag found on the tmp filesystem agree with coreutils' touch/stat; a datastore clock
 * ahead of the filesystem is compensated (a fresh chunk never looks old); a real 1-second-timestamp
 * filesystem (ext4 with 128-byte inodes, loop-mounted; root only) gets a skew over a second, and
 * there a skew of 0 would sweep the chunks a running backup has just touched; network types get the
 * large skew; stale temp files get a minute.
 */
import t, { type Test } from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  chooseGcSkew,
  Datastore,
  DEFAULT_GC_SKEW_MS,
  GarbageCollector,
  gcSkewFor,
  isNetworkFilesystem,
  LOCAL_SKEW_MARGIN_MS,
  measureTimestampSkew,
  mountOf,
  parseMountInfo,
  type Snapshot,
  type TimestampMeasurement,
} from '../../lib/index.js';
import { tempFileName } from '../../lib/util/temp-name.js';
import { seededBytes, tempDir, writeTemp } from '../helpers/fixtures.js';
import { imageDigests as digestsOf } from '../helpers/snapshots.js';

const CS = 64 * 1024;

async function store(t: Test, root: string, now?: () => number): Promise<Datastore> {
  const ds = await Datastore.create(root, { imageChunkSize: CS, syncLevel: 'none', threads: 1, ...(now === undefined ? {} : { clock: { now } }) });
  t.teardown(() => ds.close());
  return ds;
}

async function backup(ds: Datastore, dir: string, group: string, time: number, data: Uint8Array): Promise<Snapshot> {
  const src = await writeTemp(dir, `src-${group.replace('/', '_')}-${time}.raw`, data);
  const w = await ds.group(group).backup({ time });
  await w.addImage('disk', src);
  return w.commit();
}

function chunkFiles(ds: Datastore): string[] {
  const dir = ds.backend.locate('.chunks');
  return fs.readdirSync(dir).flatMap((shard) => fs.readdirSync(path.join(dir, shard)));
}

const have = (tool: string): boolean => spawnSync(tool, ['--version'], { stdio: 'ignore' }).error === undefined;

t.test('the tmp filesystem: granularity as coreutils sees it, lag within a tick, the probe gone, in milliseconds', async (t) => {
  const dir = tempDir(t);
  const ds = await store(t, path.join(dir, 'store'));
  const shard = ds.backend.locate('.chunks/00');
  const before = fs.readdirSync(shard);
  const m = measureTimestampSkew(ds);
  t.equal(m.directory, shard, 'probed where the chunks live');
  t.same(fs.readdirSync(shard), before, 'the probe file is removed');
  t.equal(m.rounds, 3);
  t.ok(m.elapsedMs < 50, `cheap: ${m.elapsedMs} ms`);
  t.ok(m.writeLagMs > -5 && m.writeLagMs < 50, `a write is stamped within a tick of the clock: ${m.writeLagMs} ms`);
  t.ok(m.touchLagMs >= -0.01 && m.touchLagMs < 1, `a touch keeps its time: ${m.touchLagMs} ms`);

  // The oracle: coreutils sets a time just below an odd second's end, stat prints what was kept.
  if (have('touch') && have('stat')) {
    const p = path.join(dir, 'oracle');
    fs.writeFileSync(p, 'x');
    execFileSync('touch', ['-m', '-d', '@1700000001.999999999', p]);
    const [sec, frac] = execFileSync('stat', ['-c', '%.9Y', p], { encoding: 'utf8' }).trim().split('.');
    const kept = BigInt(sec!) * 1_000_000_000n + BigInt((frac ?? '0').padEnd(9, '0'));
    t.equal(m.granularityNs, Number(1_700_000_001_999_999_999n - kept) + 1, `granularity ${m.granularityNs} ns, as touch/stat find it`);
  }
  const mount = mountOf(shard);
  t.ok(mount !== undefined, 'the mount table names the filesystem');
  if (have('findmnt')) {
    const type = execFileSync('findmnt', ['-n', '-o', 'FSTYPE', '--target', shard], { encoding: 'utf8' }).trim();
    t.equal(mount?.fsType, type, `filesystem type ${type}, as findmnt says`);
  }
  const skew = gcSkewFor(ds);
  if (mount !== undefined && !isNetworkFilesystem(mount.fsType)) {
    t.equal(skew.reason, 'local');
    t.equal(skew.ms, Math.ceil(m.granularityNs / 1e6 + Math.max(0, skew.measurement!.writeLagMs, skew.measurement!.touchLagMs) + LOCAL_SKEW_MARGIN_MS));
    if (m.granularityNs <= 1000) t.ok(skew.ms < 200, `a fine-grained local filesystem gets about 0.1 s: ${skew.ms} ms`);
    t.match(skew.summary, new RegExp(`^skew [0-9.]+ s: local ${mount.fsType} at `));
  }
  t.throws(() => measureTimestampSkew(ds, { rounds: 0 }), { code: 'ERR_INVALID_ARGUMENT' });
  t.equal(measureTimestampSkew(ds, { rounds: 7 }).rounds, 7);
});

t.test('a datastore clock ahead of the filesystem is compensated: a fresh chunk is never old', async (t) => {
  const dir = tempDir(t);
  const ahead = 5000;
  const ds = await store(t, path.join(dir, 'store'), () => Date.now() + ahead);
  const m = measureTimestampSkew(ds);
  t.ok(m.writeLagMs > ahead - 10 && m.writeLagMs < ahead + 100, `writes lag the clock by its offset: ${m.writeLagMs} ms`);
  // A backup still running: its chunks are written after it registered, so however long this
  // takes on a loaded machine, they are newer than the cutoff (its registration less the skew).
  const src = await writeTemp(dir, 'running.raw', seededBytes(4 * CS, 3));
  const w = await ds.group('vm/1').backup({ time: 1000 });
  await w.addImage('disk', src);
  const r = await new GarbageCollector(ds).run();
  t.equal(r.skew.reason, 'local');
  t.ok(r.skewMs >= ahead + LOCAL_SKEW_MARGIN_MS, `skew covers the offset: ${r.skewMs} ms`);
  t.equal(r.removedChunks, 0, "a running backup's fresh chunks are not taken for old");
  t.equal(r.pendingChunks, 4);
  // What a fixed skew below the offset would do: the clock's 5 s lead makes them look old.
  const fixed = await new GarbageCollector(ds).run({ dryRun: true, skewMs: 1000 });
  t.equal(fixed.removedChunks, 4, 'a skew of 1 s would take them (dry run)');
  t.equal(fixed.skew.reason, 'option');
  await w.abort();

  const behind = await Datastore.open(path.join(dir, 'store'), { clock: { now: () => Date.now() - ahead } });
  t.teardown(() => behind.close());
  const mb = measureTimestampSkew(behind);
  t.ok(mb.writeLagMs < -ahead + 100, `a clock behind the filesystem: ${mb.writeLagMs} ms`);
  t.ok(gcSkewFor(behind).ms < 1000, 'no compensation needed when the files look newer');
});

t.test('network filesystems and unknown ones get the large skew (chosen from the type)', async (t) => {
  const m: TimestampMeasurement = { directory: '/x', granularityNs: 1, writeLagMs: 2, touchLagMs: 0, rounds: 3, elapsedMs: 0.2 };
  for (const type of ['ext4', 'xfs', 'btrfs', 'tmpfs', 'zfs', 'overlay', 'vfat']) {
    const c = chooseGcSkew({ fsType: type, mountPoint: '/srv', measurement: m });
    t.same([c.reason, c.ms], ['local', 103], `${type}: local, 1 ns + 2 ms + margin`);
  }
  t.equal(chooseGcSkew({ fsType: 'vfat', measurement: { ...m, granularityNs: 2e9 } }).ms, 2102, 'FAT: 2 s steps');
  for (const type of ['nfs', 'nfs4', 'cifs', 'smb3', '9p', 'virtiofs', 'fuse', 'fuse.sshfs', 'fuseblk', 'ceph', 'glusterfs']) {
    const c = chooseGcSkew({ fsType: type, mountPoint: '/srv', measurement: m });
    t.same([c.reason, c.ms], ['network', DEFAULT_GC_SKEW_MS], `${type}: network, 60 s`);
    t.match(c.summary, new RegExp(`^skew 60 s: network filesystem ${type.replace('.', '\\.')} at /srv`));
  }
  t.equal(chooseGcSkew({ fsType: 'nfs4', measurement: m, networkSkewMs: 300_000 }).ms, 300_000, 'configurable');
  t.equal(chooseGcSkew({ fsType: 'nfs4', measurement: { ...m, writeLagMs: 90_000 } }).ms, 90_101, 'a server far behind: its lag counts');
  t.same([chooseGcSkew({ measurement: m }).reason, chooseGcSkew({ measurement: m }).ms], ['unknown', DEFAULT_GC_SKEW_MS], 'no mount table: the large skew');
  const failed = chooseGcSkew({ fsType: 'ext4', failure: 'ENOSPC' });
  t.same([failed.reason, failed.ms, failed.failure], ['unknown', DEFAULT_GC_SKEW_MS, 'ENOSPC'], 'no measurement: the large skew');

  // A real GC with the detected type replaced: the large skew keeps what the local one frees.
  const dir = tempDir(t);
  const ds = await store(t, path.join(dir, 'store'));
  const s = await backup(ds, dir, 'vm/1', 1000, seededBytes(3 * CS, 5));
  await s.remove();
  const gc = new GarbageCollector(ds);
  const nfs = await gc.run({ hooks: { fsType: 'nfs4' } });
  t.same([nfs.skew.reason, nfs.skewMs, nfs.skew.fsType], ['network', DEFAULT_GC_SKEW_MS, 'nfs4']);
  t.equal(nfs.cutoffMs, nfs.startMs - DEFAULT_GC_SKEW_MS);
  t.same([nfs.removedChunks, nfs.pendingChunks], [0, 3], 'network: pending');
  const unknown = await gc.run({ hooks: { fsType: '' }, networkSkewMs: 120_000 });
  t.same([unknown.skew.reason, unknown.skewMs], ['unknown', 120_000]);
  t.equal(unknown.pendingChunks, 3);
  const local = gcSkewFor(ds);
  await sleep(local.ms + 20); // the chunks are older than the local skew now
  const r = await gc.run();
  t.equal(r.skew.reason, 'local');
  t.same([r.removedChunks, r.pendingChunks], [3, 0], 'local: removed');
  t.same(JSON.parse(fs.readFileSync(path.join(ds.root, '.gc-status.json'), 'utf8')).skew, JSON.parse(JSON.stringify(r.skew)), 'the status file names the skew');
  await t.rejects(gc.run({ networkSkewMs: -1 }), { code: 'ERR_INVALID_ARGUMENT' });
});

t.test('mount table: the longest mount point wins, escapes decoded', async (t) => {
  const text = [
    '22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/sda1 rw',
    '30 22 0:40 / /mnt/my\\040disk rw,relatime shared:9 master:2 - nfs4 srv:/export rw,vers=4.2',
    '31 30 0:41 / /mnt/my\\040disk/inner rw - tmpfs tmpfs rw',
    '32 22 0:42 / /mnt/my rw - fuse.sshfs me@host:/ rw',
    'garbage line',
  ].join('\n');
  t.equal(parseMountInfo(text).length, 4);
  t.same(mountOf('/mnt/my disk/x/y', text), { mountPoint: '/mnt/my disk', fsType: 'nfs4', source: 'srv:/export' });
  t.equal(mountOf('/mnt/my disk/inner/z', text)?.fsType, 'tmpfs');
  t.equal(mountOf('/mnt/my/z', text)?.fsType, 'fuse.sshfs');
  t.equal(mountOf('/mnt/mydisk', text)?.fsType, 'ext4', 'a prefix that is not a path component does not count');
  t.equal(mountOf('/srv', `${text}\n33 22 0:43 / / rw - xfs /dev/sdb rw`)?.fsType, 'xfs', 'a later mount on the same point hides the earlier');
});

t.test('stale temp files: a minute old with the measured skew, the cutoff with an explicit one', async (t) => {
  const dir = tempDir(t);
  const ds = await store(t, path.join(dir, 'store'));
  const now = Date.now() / 1000;
  const recent = path.join(ds.root, tempFileName('notes'));
  const old = path.join(ds.root, tempFileName('notes'));
  for (const [p, age] of [
    [recent, 10],
    [old, 120],
  ] as const) {
    fs.writeFileSync(p, 'partial');
    fs.utimesSync(p, now - age, now - age);
  }
  const r = await new GarbageCollector(ds).run();
  t.equal(r.tempCutoffMs, r.startMs - 60_000);
  t.equal(r.removedTemp, 1);
  t.ok(fs.existsSync(recent), 'a temp file 10 s old stays (its writer may be in a slow fsync)');
  t.notOk(fs.existsSync(old), 'one 2 minutes old goes');
  const r2 = await new GarbageCollector(ds).run({ skewMs: 0 });
  t.equal(r2.tempCutoffMs, r2.cutoffMs);
  t.notOk(fs.existsSync(recent), 'an explicit skew applies to temp files too');
});

// A real filesystem with 1-second timestamps: ext4 with 128-byte inodes on a loop device.
const canLoop = process.getuid?.() === 0 && have('mkfs.ext4') && fs.existsSync('/dev/loop-control');
t.test(
  'a 1-second filesystem: skew over a second; a skew of 0 would sweep what a running backup touched',
  { skip: canLoop ? false : 'needs root, mkfs.ext4 and loop devices' },
  async (t) => {
    const dir = tempDir(t);
    const img = path.join(dir, 'fs.img');
    const mnt = path.join(dir, 'mnt');
    fs.mkdirSync(mnt);
    fs.writeFileSync(img, '');
    fs.truncateSync(img, 16 << 20);
    execFileSync('mkfs.ext4', ['-q', '-F', '-I', '128', img], { stdio: 'ignore' });
    const mounted = spawnSync('mount', ['-o', 'loop', img, mnt], { encoding: 'utf8' });
    if (mounted.status !== 0) {
      t.comment(`skipped: loop mount refused here: ${mounted.stderr.trim()}`);
      return;
    }
    t.teardown(() => {
      if (spawnSync('umount', [mnt]).status !== 0) spawnSync('umount', ['-l', mnt]);
    });
    const ds = await Datastore.create(path.join(mnt, 'store'), { imageChunkSize: CS, syncLevel: 'none', threads: 1 });
    t.teardown(() => ds.close());
    const m = measureTimestampSkew(ds);
    t.equal(m.granularityNs, 1e9, 'timestamps in whole seconds');
    const skew = gcSkewFor(ds);
    t.same([skew.reason, skew.fsType], ['local', 'ext4']);
    t.ok(skew.ms >= 1000 + LOCAL_SKEW_MARGIN_MS, `skew ${skew.ms} ms`);
    t.match(skew.summary, /steps of 1 s/);

    // The first backup's chunks, freed, then re-used by a second backup in mid-second: the touches
    // are recorded at the start of the second, before the writer's start.
    const data = seededBytes(4 * CS, 9);
    const first = await backup(ds, dir, 'vm/1', 1000, data);
    const digests = await digestsOf(first);
    await first.remove();
    while (Date.now() % 1000 < 300 || Date.now() % 1000 > 600) await sleep(20);
    const src = await writeTemp(dir, 'again.raw', data);
    const w = await ds.group('vm/2').backup({ time: 2000 });
    await w.addImage('disk', src); // dedup hits: every chunk touched
    const dry0 = await new GarbageCollector(ds).run({ dryRun: true, skewMs: 0 });
    t.equal(dry0.removedChunks, 4, 'with a skew of 0 the just-touched chunks would be swept (dry run)');
    const r = await new GarbageCollector(ds).run();
    t.same([r.removedChunks, r.pendingChunks], [0, 4], 'the measured skew sweeps none of them');
    const snap = await w.commit();
    t.same(new Set(chunkFiles(ds)), digests, 'every chunk is there');
    const rd = await snap.open();
    const out = path.join(dir, 'restored');
    await rd.restore('disk.img', out);
    await rd.close();
    t.same(fs.readFileSync(out), Buffer.from(data), 'the second backup restores');
  },
);

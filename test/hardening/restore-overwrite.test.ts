// A failed `restore --overwrite` must not destroy the file it was to replace (issue 12): a roll-back
// of a VM disk from a damaged snapshot, a restore that runs out of space, a restore killed half-way
// or interrupted all leave the target byte-identical to before and no temp file beside it.
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, chmodSync } from 'node:fs';
import path from 'node:path';
import { Datastore } from '../../lib/index.js';
import { chunkKey } from '../../lib/store/chunk-store.js';
import { toHex } from '../../lib/util/bytes.js';
import { seededBytes, tempDir } from '../helpers/fixtures.js';
import { CLI, cairn, requireBuilt } from '../cli/run-cli.js';
import { PRELOAD, cairnWithFault, countCalls } from '../helpers/faults.js';

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const CS = 64 * 1024;
const T1 = '2026-01-01T00:00:00Z';
const T2 = '2026-01-01T01:00:00Z';

if (requireBuilt(t)) {
  const dir = tempDir(t, 'cairn-overwrite-');
  const store = path.join(dir, 'store');
  const img1 = Buffer.from(seededBytes(16 * CS + 100, 1));
  const img2 = Buffer.from(img1);
  seededBytes(CS, 2).forEach((b, i) => (img2[9 * CS + i] = b)); // chunk 9 differs
  img2.fill(0, 3 * CS, 5 * CS); // and two chunks became zero
  const blob1 = Buffer.from(seededBytes(300_000, 3));
  const blob2 = Buffer.from(seededBytes(3 << 20, 4)); // random: does not compress
  let unique = '';
  {
    const ds = await Datastore.create(store, { imageChunkSize: CS, syncLevel: 'none', threads: 1 });
    try {
      for (const [time, img, blob] of [
        [T1, img1, blob1],
        [T2, img2, blob2],
      ] as const) {
        writeFileSync(path.join(dir, 'src.img'), img);
        const w = await ds.group('vm/1').backup({ time: Date.parse(time) / 1000 });
        await w.addImage('disk', path.join(dir, 'src.img'));
        await w.addBlob('conf', blob);
        const s = await w.commit();
        if (time === T2) {
          const r = await s.open();
          unique = toHex((await r.imageIndex('disk.img')).digestAt(9));
          await r.close();
        }
      }
    } finally {
      await ds.close();
    }
  }
  const S = ['--store', store];

  /** A directory holding `name` with `content`, mode 0604 (to see that the mode survives too). */
  const place = (sub: string, name: string, content: Uint8Array): string => {
    const d = path.join(dir, sub);
    mkdirSync(d, { recursive: true });
    const f = path.join(d, name);
    writeFileSync(f, content);
    chmodSync(f, 0o604);
    return f;
  };
  const intact = (t: Tap.Test, f: string, content: Uint8Array, what: string): void => {
    t.equal(sha(readFileSync(f)), sha(content), `${what}: the target is byte-identical to before`);
    t.equal(statSync(f).mode & 0o7777, 0o604, `${what}: its mode too`);
    t.same(readdirSync(path.dirname(f)), [path.basename(f)], `${what}: nothing else beside it (no temp file)`);
  };

  t.test('overwrite from a snapshot with a damaged chunk keeps the current file', async (t) => {
    const damaged = path.join(dir, 'damaged-store');
    spawnSync('cp', ['-a', store, damaged]);
    const cf = path.join(damaged, chunkKey(unique));
    const b = readFileSync(cf);
    b[b.length - 5]! ^= 0x40;
    writeFileSync(cf, b);
    const f = place('damaged', 'disk.raw', img1);
    const r = await cairn(['--store', damaged, 'restore', `vm/1/${T2}`, 'disk.img', f, '--overwrite']);
    t.equal(r.code, 5, 'exit 5 (damaged data)');
    t.match(r.err, /^cairn: ERR_CHUNK_CORRUPT: .*/m, 'ERR_CHUNK_CORRUPT');
    intact(t, f, img1, 'damaged chunk');
    // And a good snapshot replaces it, keeping its mode.
    const ok = await cairn([...S, 'restore', `vm/1/${T2}`, 'disk.img', f, '--overwrite']);
    t.equal(ok.code, 0, 'a good snapshot restores over it', { stderr: ok.err });
    t.equal(sha(readFileSync(f)), sha(img2), 'now the second snapshot');
    t.equal(statSync(f).mode & 0o7777, 0o604, 'the mode of the file replaced is kept');
    t.same(readdirSync(path.dirname(f)), ['disk.raw'], 'no temp file');
  });

  t.test('without --overwrite an existing file is refused and untouched', async (t) => {
    const f = place('exists', 'disk.raw', img1);
    for (const archive of ['disk.img', 'conf.blob']) {
      const r = await cairn([...S, 'restore', `vm/1/${T2}`, archive, f]);
      t.equal(r.code, 2, `${archive}: exit 2`);
      t.match(r.err, /^cairn: ERR_EXISTS: /m, 'ERR_EXISTS');
      intact(t, f, img1, archive);
    }
  });

  t.test('blob overwrite works and keeps the mode', async (t) => {
    const f = place('blob', 'conf', blob1);
    const r = await cairn([...S, 'restore', `vm/1/${T2}`, 'conf.blob', f, '--overwrite']);
    t.equal(r.code, 0, 'restored', { stderr: r.err });
    t.equal(sha(readFileSync(f)), sha(blob2), 'the new content');
    t.equal(statSync(f).mode & 0o7777, 0o604, 'the mode kept');
    t.same(readdirSync(path.dirname(f)), ['conf'], 'no temp file');
  });

  t.test('a fault or a SIGKILL at any call that writes the target leaves it intact', async (t) => {
    for (const archive of ['disk.img', 'conf.blob']) {
      const f = place(`count-${archive}`, 'target', img1);
      const calls = await countCalls([...S, 'restore', `vm/1/${T2}`, archive, f, '--overwrite'], path.join(dir, 'calls.log'));
      // The calls on the target's directory (the temp file, the target, the rename).
      const all = calls.map((l, i) => [l, i + 1] as const).filter(([l]) => l.includes(path.dirname(f)) || /^\d+ \S+ fd\d+$/.test(l));
      t.ok(all.length >= 3, `${archive}: ${all.length} calls on the target's directory`, { calls });
      // Every call but the writes of content after the first (one more in the middle).
      const writes = all.filter(([l]) => /^\d+ (handle\.)?write /.test(l));
      const sites = all.filter((s) => (!writes.includes(s) || s === writes[0] || s === writes[writes.length >> 1]) && !/ fd1$/.test(s[0]));
      // SIGKILL at the first write, the chmod and the rename; a failure everywhere.
      const kills = new Set([writes[0]?.[1], ...sites.filter(([l]) => / (handle\.chmod|promises\.rename|renameSync) /.test(l)).map(([, at]) => at)]);
      for (const [line, at] of sites) {
        for (const plan of [{ mode: 'fail' as const, errno: 'ENOSPC', at }, ...(kills.has(at) ? [{ mode: 'kill' as const, at }] : [])]) {
          const g = place(`fault-${archive}-${plan.mode}-${at}`, 'target', img1);
          const r = await cairnWithFault([...S, 'restore', `vm/1/${T2}`, archive, g, '--overwrite'], plan);
          const what = `${archive}: ${plan.mode} at ${line.replace(dir, '')}`;
          const finished = r.code === 0 && r.signal === null;
          if (finished) {
            // The fault came after the rename (e.g. a directory fsync that failed quietly): the new content.
            t.equal(sha(readFileSync(g)), sha(archive === 'disk.img' ? img2 : blob2), `${what}: finished with the new content`);
            continue;
          }
          if (plan.mode === 'fail') t.match(r.err, /^cairn: ERR_[A-Z_]+: /m, `${what}: a coded error`);
          const now = sha(readFileSync(g));
          if (now === sha(archive === 'disk.img' ? img2 : blob2)) {
            t.pass(`${what}: the rename had happened: the new content`);
            continue;
          }
          t.equal(now, sha(img1), `${what}: the target is byte-identical to before`);
          t.equal(statSync(g).mode & 0o7777, 0o604, `${what}: its mode too`);
          const left = readdirSync(path.dirname(g)).filter((n) => n !== 'target');
          if (plan.mode === 'fail') t.same(left, [], `${what}: no temp file`);
          else
            t.ok(
              left.every((n) => n.startsWith('.cairn-restore-')),
              `${what}: at most a recognisable temp file`,
              { left },
            );
        }
      }
    }
  });

  t.test('SIGINT half-way through a restore leaves the target intact', async (t) => {
    for (const archive of ['disk.img', 'conf.blob']) {
      const f0 = place(`count-int-${archive}`, 'target', img1);
      const calls = await countCalls([...S, 'restore', `vm/1/${T2}`, archive, f0, '--overwrite'], path.join(dir, 'calls.log'));
      // The first write of content: held up 3 s, so that the interrupt comes in the middle.
      const at = calls.findIndex((l) => /^\d+ (handle\.)?write/.test(l) && l.includes(path.dirname(f0))) + 1;
      t.ok(at > 0, `${archive}: the first write is call ${at}`, { calls });
      const f = place(`sigint-${archive}`, 'target', img1);
      const env: NodeJS.ProcessEnv = { ...process.env, CAIRN_FAULT_PLAN: JSON.stringify({ mode: 'delay', at, delayMs: 3000 }) };
      delete env['NODE_OPTIONS'];
      const child = spawn(process.execPath, ['--import', PRELOAD, CLI, ...S, 'restore', `vm/1/${T2}`, archive, f, '--overwrite'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      let err = '';
      child.stderr.on('data', (d: Buffer) => (err += d));
      const closed = new Promise<number | null>((r) => child.on('close', (c) => r(c)));
      // Until the temp file is there (or, for a restore that writes in place, 1.5 s).
      const deadline = Date.now() + 1500;
      while (Date.now() < deadline && readdirSync(path.dirname(f)).length < 2) await new Promise((r) => setTimeout(r, 5));
      await new Promise((r) => setTimeout(r, 100));
      child.kill('SIGINT');
      const code = await closed;
      t.equal(code, 130, `${archive}: interrupted (exit ${code}: 128 + SIGINT)`);
      t.match(err, /^cairn: interrupted \(SIGINT\)$/m, `${archive}: says it was interrupted`, { err });
      intact(t, f, img1, `${archive}, SIGINT`);
    }
  });

  const why = process.getuid?.() !== 0 ? 'needs root (mount -t tmpfs)' : false;
  t.test('a restore that runs out of space keeps the current file', { skip: why }, async (t) => {
    const mnt = path.join(dir, 'small');
    mkdirSync(mnt);
    const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=2m,mode=0700', 'tmpfs', mnt], { encoding: 'utf8' });
    if (m.status !== 0) {
      t.skip(`mount -t tmpfs failed: ${m.stderr.trim()}`, () => undefined);
      return;
    }
    t.teardown(() => void spawnSync('umount', [mnt]));
    // The blob of the second snapshot (3 MiB) does not fit on the 2 MiB file system.
    const f = path.join(mnt, 'conf');
    writeFileSync(f, blob1);
    chmodSync(f, 0o604);
    const r = await cairn([...S, 'restore', `vm/1/${T2}`, 'conf.blob', f, '--overwrite']);
    t.equal(r.code, 6, 'exit 6');
    t.match(r.err, /^cairn: ERR_IO: .*ENOSPC/m, 'ERR_IO naming ENOSPC');
    intact(t, f, blob1, 'blob, disk full');
    // An image (1 MiB + a 1 MiB file already there: the copy beside it does not fit).
    rmSync(f);
    writeFileSync(path.join(mnt, 'filler'), seededBytes(1_200_000, 9));
    const g = path.join(mnt, 'disk.raw');
    writeFileSync(g, img1.subarray(0, 600_000));
    chmodSync(g, 0o604);
    const ri = await cairn([...S, 'restore', `vm/1/${T2}`, 'disk.img', g, '--overwrite']);
    t.equal(ri.code, 6, 'image: exit 6');
    t.match(ri.err, /^cairn: ERR_IO: .*ENOSPC/m, 'image: ERR_IO naming ENOSPC');
    t.equal(sha(readFileSync(g)), sha(img1.subarray(0, 600_000)), 'image: the target is byte-identical to before');
    t.same(readdirSync(mnt).sort(), ['disk.raw', 'filler'], 'image: no temp file');
  });
}

declare namespace Tap {
  type Test = import('tap').Test;
}

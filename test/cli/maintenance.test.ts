import t from 'tap';
import { readdir, writeFile, readFile } from 'node:fs/promises';
import path from 'node:path';
import { seededBytes, tempDir, writeTemp } from '../helpers/fixtures.js';
import { cairn, requireBuilt } from './run-cli.js';

if (requireBuilt(t)) {
  t.test('verify, protect, notes, forget and prune from the command line', async (t) => {
    const dir = tempDir(t, 'cairn-cli-');
    const store = path.join(dir, 'store');
    const S = ['--store', store];
    t.equal((await cairn(['init', store, '--sync-level', 'none', '--image-chunk-size', '65536'])).code, 0);
    const img = await writeTemp(dir, 'disk.raw', seededBytes(5 * 65536, 1));
    for (const [i, time] of ['2026-01-01T00:00:00Z', '2026-01-02T00:00:00Z', '2026-01-03T00:00:00Z'].entries()) {
      const b = await cairn([...S, 'backup', 'vm/1', `disk.img:${img}`, '--time', time]);
      t.equal(b.code, 0, `backup ${i}: ${b.err}`);
    }
    const v = await cairn([...S, '--json', 'verify']);
    t.equal(v.code, 0, v.err);
    const rep = JSON.parse(v.out) as { ok: string[]; failed: string[] };
    t.equal(rep.ok.length, 3);
    t.same(rep.failed, []);

    // Damage one chunk: verify fails (exit 5) and names it.
    let victim = '';
    for (const s of await readdir(path.join(store, '.chunks'))) {
      const files = await readdir(path.join(store, '.chunks', s));
      if (files.length > 0) {
        victim = path.join(store, '.chunks', s, files[0]!);
        break;
      }
    }
    t.ok(victim !== '', 'a chunk file');
    const bytes = await readFile(victim);
    bytes[bytes.length - 1]! ^= 1;
    await writeFile(victim, bytes);
    const bad = await cairn([...S, 'verify', 'vm/1']);
    t.equal(bad.code, 5, 'a failed verify exits 5');
    t.match(bad.out, /failed: vm\/1\//);
    t.match(bad.out, /\.0\.bad/);

    const notes = await cairn([...S, 'notes', 'vm/1/2026-01-01T00:00:00Z', 'first of the year']);
    t.equal(notes.out.trim(), 'first of the year');
    t.equal((await cairn([...S, 'notes', 'vm/1/2026-01-01T00:00:00Z'])).out.trim(), 'first of the year');
    t.equal((await cairn([...S, 'notes', 'vm/1', 'the group'])).out.trim(), 'the group');

    t.equal((await cairn([...S, 'protect', 'vm/1/2026-01-01T00:00:00Z'])).code, 0);
    const f = await cairn([...S, 'forget', 'vm/1/2026-01-01T00:00:00Z']);
    t.equal(f.code, 4, 'a protected snapshot cannot be forgotten');
    t.match(f.err, /ERR_PROTECTED/);
    t.equal((await cairn([...S, 'unprotect', 'vm/1/2026-01-01T00:00:00Z'])).code, 0);

    const dry = await cairn([...S, '--json', 'prune', 'vm/1', '--keep-last', '1', '--dry-run']);
    t.equal(dry.code, 0, dry.err);
    t.equal((JSON.parse(dry.out) as { totals: { remove: number } }).totals.remove, 2);
    t.equal((await cairn([...S, 'forget', 'vm/1/2026-01-01T00:00:00Z'])).code, 0);
    const list = await cairn([...S, '--json', 'snapshots', 'vm/1']);
    t.equal((JSON.parse(list.out) as unknown[]).length, 2);
    const before = JSON.parse((await cairn([...S, '--json', 'verify'])).out) as { ok: string[]; failed: string[] };
    const gcDry = await cairn([...S, '--json', 'gc', '--dry-run']);
    t.equal(gcDry.code, 0, gcDry.err);
    t.equal((JSON.parse(gcDry.out) as { dryRun: boolean; snapshots: number }).snapshots, 2);
    const gc = await cairn([...S, 'gc']);
    t.equal(gc.code, 0, gc.err);
    t.match(gc.out, /removed \d+ chunks?\b/);
    const again = await cairn([...S, '--json', 'verify']);
    const after = JSON.parse(again.out) as { ok: string[]; failed: string[] };
    t.same([after.ok.sort(), after.failed.sort()], [before.ok.sort(), before.failed.sort()], 'gc changed no verify result (the damaged chunk stays missing, nothing else is lost)');
  });

  t.test('group move, ns move and group remove from the command line', async (t) => {
    const dir = tempDir(t, 'cairn-cli-');
    const store = path.join(dir, 'store');
    const S = ['--store', store];
    t.equal((await cairn(['init', store, '--sync-level', 'none', '--image-chunk-size', '65536'])).code, 0);
    const img = await writeTemp(dir, 'disk.raw', seededBytes(3 * 65536, 2));
    t.equal((await cairn([...S, 'ns', 'create', 'a'])).code, 0);
    for (const [group, time] of [
      ['vm/1', '2026-01-01T00:00:00Z'],
      ['vm/1', '2026-01-02T00:00:00Z'],
      ['vm/2', '2026-01-01T00:00:00Z'],
    ] as const) {
      t.equal((await cairn([...S, 'backup', group, `disk.img:${img}`, '--time', time])).code, 0);
    }
    t.equal((await cairn([...S, 'group', 'move', 'vm/1'])).code, 2, 'a target is required');
    const mv = await cairn([...S, '--json', 'group', 'move', 'vm/1', '--target-ns', 'a']);
    t.equal(mv.code, 0, mv.err);
    t.same((JSON.parse(mv.out) as { moved: string[] }).moved, ['2026-01-01T00:00:00Z', '2026-01-02T00:00:00Z']);
    const back = await cairn([...S, '--ns', 'a', 'group', 'move', 'vm/1', '']);
    t.equal(back.code, 0, back.err);
    t.match(back.out, /vm\/1: a -> \(root\): moved 2 snapshots/);
    t.equal((await cairn([...S, 'group', 'move', 'vm/1', 'nope'])).code, 3, 'missing target namespace: not found');

    const ns = await cairn([...S, 'ns', 'move', 'a', '--target-ns', 'b']);
    t.equal(ns.code, 0, ns.err);
    t.match(ns.out, /created namespace b/);
    t.match(ns.out, /removed namespace a/);
    t.equal((await cairn([...S, 'ns', 'move', 'b'])).code, 2, 'a target is required');
    t.equal((await cairn([...S, 'group', 'move', 'vm/2', 'b'])).code, 0);
    t.equal((await cairn([...S, 'ns', 'create', 'c'])).code, 0);
    t.equal((await cairn([...S, '--ns', 'c', 'backup', 'vm/2', `disk.img:${img}`, '--time', '2026-02-01T00:00:00Z'])).code, 0);
    const clash = await cairn([...S, '--json', 'ns', 'move', 'b', 'c']);
    t.equal(clash.code, 4, 'a group that cannot move: exit 4');
    t.match(JSON.parse(clash.out), { failedGroups: [{ group: 'vm/2', code: 'ERR_TIME_ORDER' }] });

    t.equal((await cairn([...S, 'protect', '--ns', 'c', 'vm/2'])).code, 0);
    const rm = await cairn([...S, '--ns', 'c', 'group', 'remove', 'vm/2']);
    t.equal(rm.code, 0, rm.err);
    t.match(rm.out, /kept group vm\/2: 0 snapshots removed/);
    t.match(rm.out, /kept protected vm\/2\/2026-02-01T00:00:00Z/);
    const rm2 = await cairn([...S, '--json', 'group', 'remove', 'vm/1']);
    t.match(JSON.parse(rm2.out), { removed: true, removedSnapshots: ['2026-01-01T00:00:00Z', '2026-01-02T00:00:00Z'] });
  });
}

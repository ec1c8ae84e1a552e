// A table of damage to a real datastore (issue 7): for each kind of damage, what `cairn restore`,
// `cairn verify`, `cairn snapshots`, `cairn gc` and a FUSE mount report, and that every undamaged
// snapshot still restores byte-identical afterwards (also after the GC). The observed table is
// test/hardening/DAMAGE.md; the test fails when it differs (CAIRN_UPDATE_DAMAGE_DOC=1 rewrites it).
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Datastore } from '../../lib/index.js';
import { chunkKey } from '../../lib/store/chunk-store.js';
import { decodeFixedIndex, encodeFixedIndex } from '../../lib/format/fixed-index.js';
import { toHex } from '../../lib/util/bytes.js';
import { seededBytes, tempDir } from '../helpers/fixtures.js';
import { REPO, cairn, requireBuilt } from '../cli/run-cli.js';

const CS = 64 * 1024;
const T1 = 1_767_225_600;
const T2 = T1 + 3600;
const rfc = (s: number): string => new Date(s * 1000).toISOString().replace('.000Z', 'Z');
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const DOC = path.join(REPO, 'test', 'hardening', 'DAMAGE.md');
const FS_WALK = path.join(REPO, 'test', 'helpers', 'fs-walk.mjs');

t.setTimeout(600_000);

interface Fixture {
  store: string;
  /** vm/100 at T1 and T2 (T2 = T1 with chunk 5 changed), vm/200 at T1: image sha by snapshot. */
  images: Map<string, string>;
  /** A chunk only vm/100 at T2 uses, one every snapshot uses, and the T2 snapshot directory. */
  onlyT2: string;
  shared: string;
  snapDir: string;
}

async function makeFixture(dir: string): Promise<Fixture> {
  const store = path.join(dir, 'template');
  const ds = await Datastore.create(store, { imageChunkSize: CS, syncLevel: 'none', threads: 1 });
  const images = new Map<string, string>();
  let onlyT2 = '';
  let shared = '';
  try {
    const base = Buffer.from(seededBytes(8 * CS, 3));
    const tree = path.join(dir, 'tree');
    mkdirSync(path.join(tree, 'sub'), { recursive: true });
    writeFileSync(path.join(tree, 'sub', 'f.bin'), seededBytes(50_000, 9));
    writeFileSync(path.join(tree, 'a.txt'), 'alpha\n');
    for (const [group, time, img] of [
      ['vm/100', T1, base],
      ['vm/100', T2, Buffer.concat([base.subarray(0, 5 * CS), Buffer.from(seededBytes(CS, 77)), base.subarray(6 * CS)])],
      ['vm/200', T1, Buffer.from(seededBytes(3 * CS, 11))],
    ] as const) {
      const file = path.join(dir, 'img');
      writeFileSync(file, img);
      const w = await ds.group(group).backup({ time });
      await w.addImage('disk', file);
      await w.addBlob('conf', `conf of ${group} at ${time}\n`);
      await w.addTree('root', tree);
      const snap = await w.commit();
      images.set(`${group}/${rfc(time)}`, sha(img));
      if (group === 'vm/100' && time === T2) {
        const r = await snap.open();
        const idx = await r.imageIndex('disk.img');
        onlyT2 = toHex(idx.digestAt(5));
        shared = toHex(idx.digestAt(0));
        await r.close();
      }
    }
  } finally {
    await ds.close();
  }
  return { store, images, onlyT2, shared, snapDir: path.join(store, 'vm', '100', rfc(T2)) };
}

function flip(file: string, at: number): void {
  const b = readFileSync(file);
  const i = at < 0 ? b.length + at : at;
  b[i]! ^= 0x40;
  writeFileSync(file, b);
}

/** One kind of damage, applied to a fresh copy of the template. */
interface Damage {
  name: string;
  apply(f: Fixture): void;
  /** Other snapshots the damage reaches (not checked for an identical restore). */
  alsoDamaged?: string[];
}

const DAMAGE: Damage[] = [
  { name: 'a bit flipped in a chunk file', apply: (f) => flip(path.join(f.store, chunkKey(f.onlyT2)), 200) },
  { name: 'a chunk file truncated', apply: (f) => truncateSync(path.join(f.store, chunkKey(f.onlyT2)), 100) },
  { name: 'a chunk file of zero length', apply: (f) => truncateSync(path.join(f.store, chunkKey(f.onlyT2)), 0) },
  { name: 'a chunk file missing', apply: (f) => unlinkSync(path.join(f.store, chunkKey(f.onlyT2))) },
  {
    name: 'two chunk files swapped',
    apply: (f) => {
      const a = path.join(f.store, chunkKey(f.onlyT2));
      const b = path.join(f.store, chunkKey(f.shared));
      renameSync(a, `${a}.x`);
      renameSync(b, a);
      renameSync(`${a}.x`, b);
    },
    alsoDamaged: [`vm/100/${rfc(T1)}`],
  },
  {
    name: 'an index pointing at another (valid) chunk, its own checksum redone',
    apply: (f) => {
      const file = path.join(f.snapDir, 'disk.img.fidx');
      const idx = decodeFixedIndex(readFileSync(file));
      const digests = Buffer.from(idx.digests);
      Buffer.from(idx.digestAt(0)).copy(digests, 5 * 32);
      writeFileSync(file, encodeFixedIndex({ uuid: idx.uuid, ctime: idx.ctime, size: idx.size, chunkSize: idx.chunkSize }, digests));
    },
  },
  { name: 'an index with a bit flipped in a digest', apply: (f) => flip(path.join(f.snapDir, 'disk.img.fidx'), -40) },
  { name: 'an index truncated', apply: (f) => truncateSync(path.join(f.snapDir, 'disk.img.fidx'), 100) },
  { name: 'a tree metadata index of zero length', apply: (f) => truncateSync(path.join(f.snapDir, 'root.tree.meta.didx'), 0) },
  { name: 'a blob with a bit flipped', apply: (f) => flip(path.join(f.snapDir, 'conf.blob'), -5) },
  { name: 'a manifest whose checksum does not match (a bit flipped)', apply: (f) => flip(path.join(f.snapDir, 'manifest.blob'), -20) },
  { name: 'a snapshot directory without its manifest', apply: (f) => unlinkSync(path.join(f.snapDir, 'manifest.blob')) },
];

/** The first `cairn: ERR_X` code of a run, or `ok`. */
const outcome = (r: { code: number | null; err: string }): string =>
  r.code === 0 ? 'ok' : `${/cairn: (ERR_[A-Z_]+)/.exec(r.err)?.[1] ?? /"code":\s*"(ERR_[A-Z_]+)"/.exec(r.err)?.[1] ?? 'no error code'} (exit ${r.code})`;

if (requireBuilt(t)) {
  const dir = tempDir(t, 'cairn-damage-');
  const f0 = await makeFixture(dir);
  const canMount = process.getuid?.() === 0 && existsSync('/dev/fuse');
  const rows: string[] = [];

  for (const d of DAMAGE) {
    await t.test(d.name, async (t) => {
      const store = path.join(dir, 'store');
      rmSync(store, { recursive: true, force: true });
      cpSync(f0.store, store, { recursive: true, preserveTimestamps: true });
      const f: Fixture = { ...f0, store, snapDir: path.join(store, 'vm', '100', rfc(T2)) };
      d.apply(f);
      const S = ['--store', store];
      const out = path.join(dir, 'out');
      rmSync(out, { recursive: true, force: true });
      mkdirSync(out);
      const target = `vm/100/${rfc(T2)}`;
      const restoreImg = outcome(await cairn([...S, 'restore', target, 'disk.img', path.join(out, 'disk.img')]));
      const restoreTree = outcome(await cairn([...S, 'restore', target, 'root.tree', path.join(out, 'tree')]));
      const restoreBlob = outcome(await cairn([...S, 'restore', target, 'conf.blob', path.join(out, 'conf')]));
      const list = outcome(await cairn([...S, 'snapshots', 'vm/100']));
      const v = await cairn([...S, '--json', 'verify']);
      let verify = outcome(v);
      try {
        const j = JSON.parse(v.out) as { failed: string[] };
        verify = j.failed.length === 0 ? 'all ok' : `failed: ${j.failed.join(', ')}`;
      } catch {
        /* a coded error: keep it */
      }
      let mount = 'not run (needs root and /dev/fuse)';
      if (canMount) {
        const mnt = path.join(dir, 'mnt');
        mkdirSync(mnt, { recursive: true });
        const m = await cairn([...S, '--json', 'mount', target, mnt, '--daemon']);
        if (m.code !== 0) mount = `mount: ${outcome(m)}`;
        else {
          t.teardown(() => cairn(['umount', mnt]).then(() => undefined));
          const r = spawnSync(process.execPath, [FS_WALK, 'reads', path.join(mnt, 'disk.img'), JSON.stringify([[0, 8 * CS]])], { encoding: 'utf8' });
          const res = (r.status === 0 ? JSON.parse(r.stdout) : { error: `exit ${r.status}` }) as { sha: string }[] | { error: string };
          if (!Array.isArray(res)) mount = `read fails: ${res.error}`;
          else mount = res[0]!.sha === f.images.get(target) ? 'reads ok, identical' : '**reads wrong data**';
          await cairn(['umount', mnt]);
        }
      }
      const gc = outcome(await cairn([...S, 'gc', '--skew', '0']));
      // The way out: forget the damaged snapshot, then a GC runs clean.
      const forget = outcome(await cairn([...S, 'forget', target]));
      const gcAfter = outcome(await cairn([...S, 'gc', '--skew', '0']));
      // Every undamaged snapshot restores byte-identical, after the GC too.
      for (const [snap, want] of f.images) {
        if (snap === target || d.alsoDamaged?.includes(snap)) continue;
        const file = path.join(out, `${snap.replaceAll('/', '_')}.img`);
        const r = await cairn([...S, 'restore', snap, 'disk.img', file]);
        t.equal(r.code, 0, `${snap} restores`, { stderr: r.err });
        if (r.code === 0) t.equal(sha(readFileSync(file)), want, `${snap} identical`);
      }
      t.not(restoreImg === 'ok' && restoreTree === 'ok' && restoreBlob === 'ok' && verify === 'all ok', true, 'the damage is noticed');
      rows.push(`| ${d.name} | ${restoreImg} | ${restoreTree} | ${restoreBlob} | ${verify} | ${list} | ${mount} | ${gc} | ${forget}, then gc: ${gcAfter} |`);
    });
  }

  t.test('the table in DAMAGE.md is what was observed', async (t) => {
    const doc = `# What damage does to a datastore, and what Cairn reports

Generated by \`test/hardening/damage.test.ts\` (\`CAIRN_UPDATE_DAMAGE_DOC=1 npx tap test/hardening/damage.test.ts\`
rewrites it; the test fails when the observed outcomes differ from this page).

The datastore holds \`vm/100\` at ${rfc(T1)} and ${rfc(T2)} (the second changes one 64 KiB chunk of the
image) and \`vm/200\` at ${rfc(T1)}; each snapshot has an image (\`disk.img\`), a tree (\`root.tree\`) and a
blob (\`conf.blob\`). The damage is done to \`vm/100/${rfc(T2)}\` or to a chunk only it uses (the swap
also damages a chunk every snapshot of \`vm/100\` uses). The columns are what the command line reports
for that snapshot; in every case the undamaged snapshots (\`vm/100/${rfc(T1)}\` unless the damage is
shared, \`vm/200\`) still restore byte-identical at the end (after the GC, the \`forget\` and another GC).
A GC refuses to run while an index it must read is damaged (it cannot know which chunks that
snapshot needs); \`cairn forget\` removes the damaged snapshot (also one whose manifest does not
read), and the next GC runs.

| damage | restore image | restore tree | restore blob | verify (whole datastore) | \`snapshots vm/100\` | FUSE mount, read the image | \`gc --skew 0\` | \`forget\` the snapshot |
|---|---|---|---|---|---|---|---|---|
${rows.join('\n')}
`;
    if (process.env['CAIRN_UPDATE_DAMAGE_DOC'] === '1') writeFileSync(DOC, doc);
    t.equal(existsSync(DOC) ? readFileSync(DOC, 'utf8') : '', doc, 'DAMAGE.md is current');
  });
}

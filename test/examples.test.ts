/**
 * Every script in examples/ runs to completion (exit 0) against a fresh datastore, as a user would
 * run it: `node examples/<name>.js`, importing the package by name.
 */
import t, { type Test } from 'tap';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { Datastore } from '../lib/index.js';
import { chunkKey } from '../lib/store/chunk-store.js';
import { toHex } from '../lib/util/bytes.js';
import { REPO, requireBuilt, runScript } from './cli/run-cli.js';
import { tempDir } from './helpers/fixtures.js';

const EXPECT: Record<string, RegExp> = {
  'quickstart.js': /scattered change:[\s\S]*contiguous change:[\s\S]*identical to the source/,
  'backup-directory.js': /again backup .* 0 files read, \d+ unchanged \(not opened\)[\s\S]*identical to the source/,
  // How many keep-weekly keeps depends on the weekday of the run: the real prune must do what the dry run said.
  'retention.js': /dry run: would remove ([1-9]) of 10\npruned: removed \1, kept \d+\n[\s\S]*garbage collection: removed \d+ chunks/,
  'mount-and-copy.js': /copied examples\.tree\/mount-and-copy\.js .*: identical/,
};

if (requireBuilt(t)) {
  const scripts = readdirSync(path.join(REPO, 'examples'))
    .filter((f) => f.endsWith('.js'))
    .sort();
  t.same(scripts, Object.keys(EXPECT).sort(), 'every example is run here');
  for (const name of scripts) {
    const skip = name === 'mount-and-copy.js' && (process.getuid?.() !== 0 || !existsSync('/dev/fuse')) ? 'needs root and /dev/fuse' : false;
    t.test(name, { skip }, async (t) => {
      const dir = tempDir(t, 'cairn-example-');
      const r = await runScript(path.join(REPO, 'examples', name), [], { CAIRN_STORE: path.join(dir, 'store') }, dir);
      t.equal(r.code, 0, `exit 0 (stderr: ${r.err.slice(0, 2000)})`);
      t.match(r.out, EXPECT[name]!);
      if (name === 'quickstart.js') await checkQuickstart(t, r.out, path.join(dir, 'store'), dir);
    });
  }
}

const MiB = 1048576;
const mib = (n: number): string => (n / MiB).toFixed(1);
const pct = (a: number, b: number): string => String(Math.round((100 * a) / b));

/** The one match of `re` in `out`, its groups. */
function grab(t: Test, out: string, re: RegExp): string[] {
  const m = re.exec(out);
  t.ok(m, `printed: ${re.source}`);
  return m === null ? [] : m.slice(1);
}

/**
 * The quickstart's numbers are the ones measured: its three snapshots are read back from the
 * datastore, the changed 4 KiB blocks found by comparing the restored images, the chunks hit by
 * comparing the indexes, and the bytes stored by the sizes of the new chunk files.
 */
async function checkQuickstart(t: Test, out: string, store: string, cwd: string): Promise<void> {
  const ds = await Datastore.open(store);
  try {
    const snaps = await ds.group('vm/100').snapshots();
    t.equal(snaps.length, 3, 'a full backup and two incrementals');
    const images: Buffer[] = [];
    const digests: string[][] = [];
    for (const [i, snap] of snaps.entries()) {
      const r = await snap.open();
      const idx = await r.imageIndex('drive-scsi0.img');
      digests.push(Array.from({ length: idx.count }, (_, k) => toHex(idx.digestAt(k))));
      const target = path.join(cwd, `check-${i}.img`);
      await r.restore('drive-scsi0.img', target);
      await r.close();
      images.push(readFileSync(target));
    }
    const cs = ds.config.imageChunkSize;
    const n = digests[0]!.length;
    const size = images[0]!.length;
    const changedBlocks = (a: Buffer, b: Buffer): number[] => {
      const out: number[] = [];
      for (let o = 0; o < a.length; o += 4096) if (!a.subarray(o, o + 4096).equals(b.subarray(o, o + 4096))) out.push(o / 4096);
      return out;
    };
    const chunksOf = (blocks: number[], c: number): number => new Set(blocks.map((b) => Math.floor((b * 4096) / c))).size;
    const differing = (a: string[], b: string[]): number => a.filter((d, i) => b[i] !== d).length;
    const storedNew = (prev: string[], next: string[]): { count: number; bytes: number } => {
      const before = new Set(prev);
      const fresh = new Set(next.filter((d) => !before.has(d)));
      let bytes = 0;
      for (const d of fresh) bytes += statSync(ds.backend.locate(chunkKey(d))).size;
      return { count: fresh.size, bytes };
    };

    const [chunks0, csText] = grab(t, out, /as (\d+) chunks of ([0-9.]+) MiB/);
    t.same([Number(chunks0), csText], [n, mib(cs)], 'chunk count and size of the full backup');

    // Scattered: the blocks that differ between the full backup and the first incremental.
    const b1 = changedBlocks(images[0]!, images[1]!);
    const [blocks1, hit1, total1, pct1] = grab(
      t,
      out,
      /scattered change: (\d+) blocks of 4 KiB rewritten at random places \(1 % of the image, [0-9.]+ MiB\) fell in (\d+) of the (\d+) chunks \((\d+) %\)/,
    );
    t.equal(Number(blocks1), b1.length, `${b1.length} blocks changed`);
    t.equal(Math.round((b1.length / (size / 4096)) * 100), 1, 'which is 1 % of the blocks');
    t.equal(Number(hit1), chunksOf(b1, cs), 'chunks hit, from the changed blocks');
    t.equal(Number(hit1), differing(digests[0]!, digests[1]!), 'chunks hit, from the indexes');
    t.same([Number(total1), pct1], [n, pct(Number(hit1), n)]);
    const [read1, stored1, written1, reused1] = grab(
      t,
      out,
      /incremental \S+: read ([0-9.]+) MiB and stored ([0-9.]+) MiB \((\d+) chunks?\) of [0-9.]+ MiB \(the full backup stored [0-9.]+ MiB\); (\d+) chunks? taken unread/,
    );
    t.equal(read1, mib(Number(hit1) * cs), 'read: the chunks hit');
    const new1 = storedNew(digests[0]!, digests[1]!);
    t.equal(Number(written1), new1.count, 'chunks written: the new chunk files');
    t.ok(Math.abs(Number(stored1) - new1.bytes / MiB) <= 0.1, `stored ${stored1} MiB: the new chunk files hold ${mib(new1.bytes)} MiB`);
    t.equal(Number(reused1), n - Number(hit1), 'the others taken from the previous index');
    const [small] = grab(t, out, /With 64 KiB chunks \(imageChunkSize\) the same writes would fall in (\d+) of (?:\d+) chunks/);
    t.equal(Number(small), chunksOf(b1, 65536), '64 KiB chunks hit, from the changed blocks');
    const [escape] = grab(t, out, /\(1 - 1\/\d+\)\^\d+ = (\d+) %/);
    t.equal(escape, pct((1 - 1 / n) ** b1.length, 1), 'the escape probability');

    // Contiguous: one run of the same length.
    const b2 = changedBlocks(images[1]!, images[2]!);
    const [blocks2, at2, hit2] = grab(t, out, /contiguous change: the same (\d+) blocks \([0-9.]+ MiB\) written in one run at ([0-9.]+) MiB fell in (\d+) of the \d+ chunks/);
    t.equal(Number(blocks2), b2.length, `${b2.length} blocks changed`);
    t.equal(b2.length, b1.length, 'as many as the scattered change');
    t.equal(b2[b2.length - 1]! - b2[0]! + 1, b2.length, 'in one run');
    t.equal(at2, mib(b2[0]! * 4096), 'where');
    t.equal(Number(hit2), differing(digests[1]!, digests[2]!), 'chunks hit, from the indexes');
    t.ok(Number(hit2) <= 2, 'one or two chunks');
    const contiguous = out.slice(out.indexOf('contiguous change:'));
    const [read2, stored2, written2, reused2] = grab(
      t,
      contiguous,
      /incremental \S+: read ([0-9.]+) MiB and stored ([0-9.]+) MiB \((\d+) chunks?\) of [0-9.]+ MiB; (\d+) chunks? taken unread/,
    );
    t.equal(read2, mib(Number(hit2) * cs));
    const new2 = storedNew(digests[1]!, digests[2]!);
    t.equal(Number(written2), new2.count);
    t.ok(Math.abs(Number(stored2) - new2.bytes / MiB) <= 0.1, `stored ${stored2} MiB: the new chunk files hold ${mib(new2.bytes)} MiB`);
    t.equal(Number(reused2), n - Number(hit2));
    t.ok(Number(stored2) < Number(stored1) / 10, 'the contiguous change stores a small part of what the scattered one did');
  } finally {
    await ds.close();
  }
}

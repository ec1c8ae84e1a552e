/**
 * `cairn backup --dry-run` writes nothing (the datastore directory, mtimes included, is unchanged)
 * and prints what it would back up, with the chunks that would be new: equal to what the real
 * backup then writes (first, unchanged, one file and one image block changed); `--exclude-file`; coded one-line errors for missing sources,
 * exclude files and `--changed` files, with no snapshot left behind.
 */
import t from 'tap';
import { promises as fsp, writeFileSync } from 'node:fs';
import path from 'node:path';
import { cairn, requireBuilt } from './run-cli.js';
import { seededBytes, tempDir } from '../helpers/fixtures.js';
import { parseEnvelope } from '../../lib/codec/envelope.js';

/** The chunk files of a datastore: digest -> raw (uncompressed) size from the envelope. */
async function chunkFiles(store: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const root = path.join(store, '.chunks');
  for (const shard of await fsp.readdir(root)) {
    for (const name of await fsp.readdir(path.join(root, shard))) {
      out.set(name, parseEnvelope(await fsp.readFile(path.join(root, shard, name)), { code: 'ERR_CHUNK_CORRUPT', details: {} }).rawSize);
    }
  }
  return out;
}

interface DryChunks {
  chunks: number;
  newChunks: number;
  newBytes: number;
}
interface DryJson {
  archives: Record<string, DryChunks & { bytes: number; chunkSize?: number }>;
  total: DryChunks & { bytes: number };
}
interface StreamStats {
  chunks: number;
  chunksWritten: number;
  bytesStored: number;
}
interface BackupJson {
  stats: Record<string, { chunks: number; chunksWritten: number; bytesStored: number; meta: StreamStats; payload: StreamStats }>;
}

/** Every path below `root` with its type, size and mtime (ns). */
async function listing(root: string): Promise<string[]> {
  const out: string[] = [];
  const visit = async (abs: string, rel: string): Promise<void> => {
    const st = await fsp.lstat(abs, { bigint: true });
    out.push(`${rel} ${st.isDirectory() ? 'd' : 'f'} ${st.size} ${st.mtimeNs}`);
    if (st.isDirectory()) for (const n of (await fsp.readdir(abs)).sort()) await visit(path.join(abs, n), `${rel}/${n}`);
  };
  await visit(root, '');
  return out;
}

if (requireBuilt(t)) {
  t.test('--dry-run prints entries and bytes per archive and writes nothing', async (t) => {
    const dir = tempDir(t, 'cairn-dry-');
    const store = path.join(dir, 'store');
    t.equal((await cairn(['init', store, '--sync-level', 'none'])).code, 0);
    const src = path.join(dir, 'src');
    await fsp.mkdir(path.join(src, 'cache'), { recursive: true });
    writeFileSync(path.join(src, 'a.txt'), 'hello');
    writeFileSync(path.join(src, 'b.log'), seededBytes(10_000, 1));
    writeFileSync(path.join(src, 'cache', 'big'), seededBytes(50_000, 2));
    writeFileSync(path.join(dir, 'disk.raw'), seededBytes(70_000, 3));
    const excl = path.join(dir, 'excludes');
    writeFileSync(excl, '# build output\n\ncache/\n*.log\n');

    // Before any snapshot (and again once there is a base).
    for (const round of [1, 2]) {
      const before = await listing(store);
      const r = await cairn(['--store', store, 'backup', 'host/a', `t.tree:${src}`, `d.img:${path.join(dir, 'disk.raw')}`, '--exclude-file', excl, '--dry-run']);
      t.equal(r.code, 0, r.err);
      t.match(r.out, /^dry run: would create a snapshot of host\/a/);
      t.match(r.out, /t\.tree: 2 entries \(1 files, 1 directories.*\), 5 B/, `round ${round}: excludes from the file apply`);
      t.match(r.out, /d\.img: image from file .*disk\.raw, 68\.4 KiB/);
      t.same(await listing(store), before, `round ${round}: the datastore directory is unchanged, mtimes included`);
      const snaps = await cairn(['--store', store, '--json', 'snapshots']);
      t.equal((JSON.parse(snaps.out) as unknown[]).length, round - 1, 'no snapshot made');
      if (round === 1) t.equal((await cairn(['--store', store, 'backup', 'host/a', `t.tree:${src}`])).code, 0, 'a real backup');
    }
    const j = await cairn(['--store', store, '--json', 'backup', 'host/a', `t.tree:${src}`, '--exclude', 'cache/', '--dry-run']);
    const parsed = JSON.parse(j.out) as { dryRun: boolean; base: string; archives: Record<string, { entries: number; bytes: number; filesReused: number }> };
    t.equal(parsed.dryRun, true);
    t.equal(parsed.archives['t.tree']!.entries, 3);
    t.equal(parsed.archives['t.tree']!.bytes, 10_005);
    t.equal(parsed.archives['t.tree']!.filesReused, 2, 'unchanged files of the base are not read');
  });

  t.test('--dry-run says how much would be stored: what the backup then writes', async (t) => {
    const dir = tempDir(t, 'cairn-dry-');
    const store = path.join(dir, 'store');
    t.equal((await cairn(['init', store, '--sync-level', 'none', '--image-chunk-size', String(128 * 1024)])).code, 0);
    const src = path.join(dir, 'src');
    await fsp.mkdir(path.join(src, 'sub'), { recursive: true });
    writeFileSync(path.join(src, 'big.bin'), seededBytes(2 * 1024 * 1024 + 5, 11));
    writeFileSync(path.join(src, 'notes.txt'), 'line of text\n'.repeat(4000));
    writeFileSync(path.join(src, 'sub', 'small'), seededBytes(3000, 12));
    const disk = path.join(dir, 'disk.raw');
    writeFileSync(disk, seededBytes(20 * 65536, 13));
    // The image at 64 KiB chunks (not the datastore's 128 KiB): the dry run uses --chunk-size as the backup does.
    const args = ['backup', 'host/a', `t.tree:${src}`, `d.img:${disk}`, '--chunk-size', '65536'];

    const dry = async (label: string): Promise<DryJson> => {
      const before = await listing(store);
      const r = await cairn(['--store', store, '--json', ...args, '--dry-run']);
      t.equal(r.code, 0, r.err);
      t.same(await listing(store), before, `${label}: the dry run left the datastore as it was, mtimes included`);
      const text = await cairn(['--store', store, ...args, '--dry-run']);
      const j = JSON.parse(r.out) as DryJson;
      t.match(text.out, new RegExp(`t\\.tree: .*; ${j.archives['t.tree']!.chunks} chunks, ${j.archives['t.tree']!.newChunks} new \\(`), `${label}: the tree line counts chunks`);
      t.match(
        text.out,
        new RegExp(`d\\.img: image from file .*; ${j.archives['d.img']!.chunks} chunks, ${j.archives['d.img']!.newChunks} new \\(`),
        `${label}: the image line counts chunks`,
      );
      t.match(text.out, new RegExp(`\\nwould store about .* new bytes in ${j.total.newChunks} chunks \\(uncompressed`), `${label}: the total line`);
      return j;
    };
    const real = async (): Promise<{ j: BackupJson; count: number; raw: number }> => {
      const before = await chunkFiles(store);
      const r = await cairn(['--store', store, '--json', ...args]);
      t.equal(r.code, 0, r.err);
      let count = 0;
      let raw = 0;
      for (const [d, n] of await chunkFiles(store)) {
        if (before.has(d)) continue;
        count++;
        raw += n;
      }
      return { j: JSON.parse(r.out) as BackupJson, count, raw };
    };
    const agree = (label: string, d: DryJson, r: Awaited<ReturnType<typeof real>>): void => {
      const tree = r.j.stats['t.tree']!;
      const img = r.j.stats['d.img']!;
      t.equal(d.archives['t.tree']!.newChunks, tree.payload.chunksWritten + tree.meta.chunksWritten, `${label}: tree new chunks = the backup's chunksWritten (payload + meta)`);
      t.equal(d.archives['t.tree']!.chunks, tree.payload.chunks + tree.meta.chunks, `${label}: tree chunks`);
      t.equal(d.archives['d.img']!.newChunks, img.chunksWritten, `${label}: image new chunks = chunksWritten`);
      t.equal(d.archives['d.img']!.chunks, img.chunks, `${label}: image chunks`);
      t.equal(d.total.newChunks, r.count, `${label}: new chunks = chunk files the backup added`);
      t.equal(d.total.newBytes, r.raw, `${label}: new bytes = their uncompressed bytes`);
      t.equal(d.total.newBytes, d.archives['t.tree']!.newBytes + d.archives['d.img']!.newBytes, `${label}: the total sums the archives`);
    };

    const d1 = await dry('first');
    t.equal(d1.archives['d.img']!.chunkSize, 65536);
    t.equal(d1.archives['d.img']!.newChunks, 20, 'first: every image chunk is new');
    const r1 = await real();
    agree('first', d1, r1);
    const stored = r1.j.stats['t.tree']!.payload.bytesStored + r1.j.stats['t.tree']!.meta.bytesStored;
    t.ok(stored < d1.archives['t.tree']!.newBytes, `LZ4 stores less than the raw new bytes of compressible files (${stored} < ${d1.archives['t.tree']!.newBytes})`);

    const d2 = await dry('unchanged');
    t.equal(d2.total.newChunks, 0, 'after a backup of the same sources: 0 new chunks');
    t.equal(d2.total.newBytes, 0);
    agree('unchanged', d2, await real());

    const f = await fsp.open(path.join(src, 'big.bin'), 'r+');
    await f.write(Buffer.from('edited'), 0, 6, 1_000_000);
    await f.close();
    const g = await fsp.open(disk, 'r+');
    await g.write(Buffer.from('edited'), 0, 6, 7 * 65536 + 3);
    await g.close();
    const d3 = await dry('changed');
    t.equal(d3.archives['d.img']!.newChunks, 1, 'one changed block: one new image chunk');
    t.ok(d3.archives['t.tree']!.newChunks >= 2, 'one changed file: new payload and metadata chunks');
    agree('changed', d3, await real());

    // A blob is stored whole with every snapshot: one new chunk of its size, in the total too.
    writeFileSync(path.join(dir, 'vm.conf'), 'memory: 2048\n');
    const b = await cairn(['--store', store, '--json', ...args, `c.blob:${path.join(dir, 'vm.conf')}`, '--dry-run']);
    t.equal(b.code, 0, b.err);
    const bj = JSON.parse(b.out) as DryJson;
    t.match(bj.archives['c.blob'], { kind: 'blob', bytes: 13, chunks: 1, newChunks: 1, newBytes: 13 });
    t.match(bj.total, { newChunks: 1, newBytes: 13 }, 'unchanged tree and image: only the blob is new');
  });

  t.test('bad input: one coded line, the right exit code, no snapshot', async (t) => {
    const dir = tempDir(t, 'cairn-dry-');
    const store = path.join(dir, 'store');
    t.equal((await cairn(['init', store, '--sync-level', 'none'])).code, 0);
    writeFileSync(path.join(dir, 'file'), 'x');
    writeFileSync(path.join(dir, 'disk.raw'), seededBytes(1000, 1));
    const cases: [string[], number, RegExp][] = [
      [['backup', 'host/a', 'etc.tree:/nonexistent-cairn-source'], 3, /^cairn: ERR_NOT_FOUND: tree source \/nonexistent-cairn-source does not exist\n$/],
      [['backup', 'host/a', `etc.tree:${path.join(dir, 'file')}`], 2, /^cairn: ERR_INVALID_ARGUMENT: tree source .*file is not a directory\n$/],
      [['backup', 'host/a', 'etc.tree:/nonexistent-cairn-source', '--dry-run'], 3, /^cairn: ERR_NOT_FOUND: tree source/],
      [['backup', 'host/a', `etc.tree:${dir}`, '--exclude-file', path.join(dir, 'nope')], 3, /^cairn: ERR_NOT_FOUND: exclude file .*nope does not exist\n$/],
      [['backup', 'host/a', `d.img:${path.join(dir, 'disk.raw')}`, '--changed', path.join(dir, 'nope')], 3, /^cairn: ERR_NOT_FOUND: changed-ranges file .*nope does not exist\n$/],
    ];
    for (const [args, code, msg] of cases) {
      const r = await cairn(['--store', store, ...args]);
      t.equal(r.code, code, `${args.join(' ')}: ${r.err}`);
      t.match(r.err, msg);
      t.notMatch(r.err, /\n\s+at /, 'no stack trace');
    }
    const snaps = await cairn(['--store', store, '--json', 'snapshots']);
    t.same(JSON.parse(snaps.out), [], 'no snapshot left');
  });
}

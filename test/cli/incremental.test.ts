import t from 'tap';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { seededBytes, tempDir, writeTemp } from '../helpers/fixtures.js';
import { cairn, requireBuilt } from './run-cli.js';

if (requireBuilt(t)) {
  t.test('incremental backup with --changed', async (t) => {
    const dir = tempDir(t, 'cairn-cli-');
    const store = path.join(dir, 'store');
    const S = ['--store', store];
    t.equal((await cairn(['init', store, '--image-chunk-size', '65536', '--sync-level', 'none'])).code, 0);
    const image = seededBytes(1024 * 1024 + 123, 2);
    const imgFile = await writeTemp(dir, 'disk.raw', image);
    t.equal((await cairn([...S, 'backup', 'vm/100', `disk.img:${imgFile}`, '--time', '2026-01-01T00:00:00Z'])).code, 0);

    const changed = Buffer.from(image);
    changed.fill(0xab, 200_000, 200_100); // inside chunk 3
    changed.fill(0xcd, 1024 * 1024, 1024 * 1024 + 123); // the short last chunk
    await writeFile(imgFile, changed);
    const ranges = await writeTemp(dir, 'ranges.txt', new TextEncoder().encode('# offset length\n200000 100\n\n0x100000, 0x7b  # the tail\n'));
    const inc = await cairn([...S, '--json', 'backup', 'vm/100', `disk.img:${imgFile}`, '--changed', ranges, '--time', '2026-01-02T00:00:00Z']);
    t.equal(inc.code, 0, `incremental: ${inc.err}`);
    const stats = (JSON.parse(inc.out) as { stats: Record<string, { chunks: number; chunksReused: number; chunksWritten: number; bytesRead: number }> }).stats['disk.img']!;
    t.ok(stats.chunksReused > 0, `chunks reused: ${stats.chunksReused}`);
    t.equal(stats.chunksReused, 15, 'all but the two changed chunks were reused');
    t.equal(stats.chunksWritten, 2, 'the two changed chunks are new');
    t.ok(stats.bytesRead < 200_000, `only the changed chunks were read (${stats.bytesRead} bytes)`);
    const out = path.join(dir, 'out.img');
    t.equal((await cairn([...S, 'restore', 'vm/100', 'disk.img', out])).code, 0);
    t.equal(Buffer.compare(await readFile(out), changed), 0, 'the incremental snapshot restores the changed image');

    const malformed = await writeTemp(dir, 'bad.txt', new TextEncoder().encode('200000 100\nthis is not a range\n'));
    const bad = await cairn([...S, 'backup', 'vm/100', `disk.img:${imgFile}`, '--changed', malformed, '--time', '2026-01-03T00:00:00Z']);
    t.equal(bad.code, 2, 'malformed ranges file: exit 2');
    t.match(bad.err, /ERR_INVALID_ARGUMENT/);
    t.match(bad.err, /bad\.txt:2/, 'names the file and line');

    const outside = await writeTemp(dir, 'outside.txt', new TextEncoder().encode('1048000 10000\n'));
    const out2 = await cairn([...S, 'backup', 'vm/100', `disk.img:${imgFile}`, '--changed', outside, '--time', '2026-01-03T00:00:00Z']);
    t.equal(out2.code, 2, 'a range outside the image: exit 2');
    t.match(out2.err, /ERR_CHANGED_MAP/);

    const noBase = await cairn([...S, 'backup', 'vm/200', `disk.img:${imgFile}`, '--changed', ranges, '--time', '2026-01-03T00:00:00Z']);
    t.equal(noBase.code, 2, 'no previous backup to apply the map to: exit 2');
    t.match(noBase.err, /ERR_CHANGED_MAP/);

    const two = await cairn([...S, 'backup', 'vm/100', `a.img:${imgFile}`, `b.img:${imgFile}`, '--changed', ranges]);
    t.equal(two.code, 2, '--changed with two images: exit 2');

    const missingRanges = await cairn([...S, 'backup', 'vm/100', `disk.img:${imgFile}`, '--changed', path.join(dir, 'none.txt')]);
    t.not(missingRanges.code, 0, 'a missing ranges file fails');
  });
}

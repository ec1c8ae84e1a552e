import t from 'tap';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { seededBytes, tempDir, writeTemp } from '../helpers/fixtures.js';
import { cairn, requireBuilt } from './run-cli.js';

if (requireBuilt(t)) {
  t.test('backup, list, show, restore: the main workflow', async (t) => {
    const dir = tempDir(t, 'cairn-cli-');
    const store = path.join(dir, 'store');
    const S = ['--store', store];
    const image = seededBytes(1024 * 1024 + 123, 1); // 17 chunks of 64 KiB
    const imgFile = await writeTemp(dir, 'disk.raw', image);
    const conf = new TextEncoder().encode('memory: 2048\nscsi0: local:vm-100-disk-0\n');
    const confFile = await writeTemp(dir, '100.conf', conf);

    const init = await cairn(['init', store, '--image-chunk-size', '65536', '--sync-level', 'none']);
    t.equal(init.code, 0, `init: ${init.err}`);
    t.match(init.out, /created datastore/);
    t.ok(existsSync(path.join(store, '.chunks')), 'the store exists on disk');

    const again = await cairn(['init', store]);
    t.equal(again.code, 2, 'init on an existing datastore: exit 2');
    t.match(again.err, /ERR_DATASTORE_EXISTS/);

    const T1 = '2026-01-01T00:00:00Z';
    const T2 = '2026-01-02T00:00:00Z';
    const b1 = await cairn([...S, 'backup', 'vm/100', `disk.img:${imgFile}`, `conf.blob:${confFile}`, '--time', T1]);
    t.equal(b1.code, 0, `first backup: ${b1.err}`);
    t.match(b1.out, `created snapshot vm/100/${T1}`);
    t.match(b1.out, /disk\.img: .*17 chunks, 17 new/);

    // The second backup with CAIRN_STORE instead of --store, and JSON output.
    const b2 = await cairn(['--json', 'backup', 'vm/100', `disk.img:${imgFile}`, '--time', T2], { CAIRN_STORE: store });
    t.equal(b2.code, 0, `second backup: ${b2.err}`);
    const j2 = JSON.parse(b2.out) as {
      namespace: string;
      group: string;
      time: string;
      snapshot: string;
      type: string;
      id: string;
      files: { name: string }[];
      stats: Record<string, { chunks: number; chunksWritten: number; chunksKnown: number }>;
    };
    t.same([j2.namespace, j2.group, j2.time, j2.snapshot], ['', 'vm/100', T2, `vm/100/${T2}`], 'the snapshot identity leads, as in every --json output');
    t.equal(j2.type, 'vm');
    t.equal(j2.id, '100');
    t.equal(j2.stats['disk.img']?.chunks, 17);
    t.equal(j2.stats['disk.img']?.chunksWritten, 0, 'nothing new stored');
    t.equal(j2.stats['disk.img']?.chunksKnown, 17, 'all chunks known from the first snapshot');

    const list = await cairn([...S, 'snapshots']);
    t.equal(list.code, 0);
    const lines = list.out.trim().split('\n');
    t.equal(lines.length, 3, 'a header and two snapshots');
    t.match(lines[0], /^SNAPSHOT\s+SIZE\s+STORED/);
    t.match(lines[1], `vm/100/${T1}`);
    t.match(lines[2], `vm/100/${T2}`);

    const listJson = await cairn([...S, '--json', 'snapshots', 'vm/100']);
    t.equal(listJson.code, 0);
    const snaps = JSON.parse(listJson.out) as { time: string; files: { name: string; size: number; kind: string }[] }[];
    t.same(
      snaps.map((s) => s.time),
      [T1, T2],
    );
    t.same(snaps[0]!.files.map((f) => f.name).sort(), ['conf.blob', 'disk.img']);
    t.equal(snaps[0]!.files.find((f) => f.name === 'disk.img')?.size, image.byteLength);
    t.equal(snaps[0]!.files.find((f) => f.name === 'conf.blob')?.kind, 'blob');

    const none = await cairn([...S, 'snapshots', 'ct/1']);
    t.equal(none.code, 3, 'a group that does not exist is not an empty list');
    t.match(none.err, /ERR_NOT_FOUND: backup group ct\/1 does not exist/);

    const showNewest = await cairn([...S, 'show', 'vm/100']);
    t.equal(showNewest.code, 0);
    t.match(showNewest.out, `snapshot vm/100/${T2}`);
    t.match(showNewest.out, /protected: no/);
    t.notMatch(showNewest.out, /conf\.blob/, 'the newest has no blob');
    const showT1 = await cairn([...S, '--json', 'show', `vm/100/${T1}`]);
    t.equal(showT1.code, 0);
    const m1 = JSON.parse(showT1.out) as { time: string; files: { name: string; chunkSize?: number }[] };
    t.equal(m1.time, T1);
    t.equal(m1.files.find((f) => f.name === 'disk.img')?.chunkSize, 65536);

    // Restore the image and the blob.
    const outImg = path.join(dir, 'restored.img');
    const r1 = await cairn([...S, 'restore', `vm/100/${T1}`, 'disk.img', outImg]);
    t.equal(r1.code, 0, `restore image: ${r1.err}`);
    t.match(r1.out, /restored disk\.img/);
    t.equal(Buffer.compare(await readFile(outImg), Buffer.from(image)), 0, 'image byte-identical');
    const outConf = path.join(dir, 'restored.conf');
    const r2 = await cairn([...S, '--json', 'restore', `vm/100/${T1}`, 'conf.blob', outConf]);
    t.equal(r2.code, 0);
    t.same(JSON.parse(r2.out), { archive: 'conf.blob', target: outConf, bytes: conf.byteLength });
    t.equal(Buffer.compare(await readFile(outConf), Buffer.from(conf)), 0, 'blob byte-identical');
    const r3 = await cairn([...S, 'restore', `vm/100/${T1}`, 'conf.blob', '-']);
    t.equal(r3.code, 0);
    t.equal(Buffer.compare(r3.stdout, Buffer.from(conf)), 0, '- writes the blob to stdout, nothing else');
    const r4 = await cairn([...S, 'restore', `vm/100/${T1}`, 'disk.img', '-']);
    t.equal(r4.code, 0);
    t.equal(Buffer.compare(r4.stdout, Buffer.from(image)), 0, '- writes the image to stdout, in order');

    // Existing targets.
    const e1 = await cairn([...S, 'restore', 'vm/100', 'disk.img', outImg]);
    t.equal(e1.code, 2, 'image onto an existing file: exit 2');
    t.match(e1.err, /ERR_EXISTS/);
    const e2 = await cairn([...S, 'restore', `vm/100/${T1}`, 'conf.blob', outConf]);
    t.equal(e2.code, 2, 'blob onto an existing file: exit 2');
    t.match(e2.err, /ERR_EXISTS/);
    await writeFile(outImg, 'junk');
    await writeFile(outConf, 'junk that is longer than the config file itself, to check truncation'.repeat(3));
    const o1 = await cairn([...S, 'restore', 'vm/100', 'disk.img', outImg, '--overwrite']);
    t.equal(o1.code, 0, `--overwrite image: ${o1.err}`);
    t.equal(Buffer.compare(await readFile(outImg), Buffer.from(image)), 0);
    const o2 = await cairn([...S, 'restore', `vm/100/${T1}`, 'conf.blob', outConf, '--overwrite']);
    t.equal(o2.code, 0);
    t.equal(Buffer.compare(await readFile(outConf), Buffer.from(conf)), 0, 'blob replaced (and truncated)');

    // Snapshot time order.
    const past = await cairn([...S, 'backup', 'vm/100', `disk.img:${imgFile}`, '--time', '2025-12-31T00:00:00Z']);
    t.equal(past.code, 2, 'a time before the newest: exit 2');
    t.match(past.err, /ERR_TIME_ORDER/);
    const same = await cairn([...S, 'backup', 'vm/100', `disk.img:${imgFile}`, '--time', T2]);
    t.equal(same.code, 2, 'the newest time again: exit 2');
    t.match(same.err, /ERR_TIME_ORDER/);
    const badTime = await cairn([...S, 'backup', 'vm/100', `disk.img:${imgFile}`, '--time', '2026-02-30T00:00:00Z']);
    t.equal(badTime.code, 2, 'an impossible date: exit 2');
    t.match(badTime.err, /ERR_INVALID_ARGUMENT/);
    const still = await cairn([...S, '--json', 'snapshots', 'vm/100']);
    t.equal((JSON.parse(still.out) as unknown[]).length, 2, 'failed backups left no snapshot');

    // Unknown things.
    const unknownSnap = await cairn([...S, 'show', 'vm/100/2020-01-01T00:00:00Z']);
    t.equal(unknownSnap.code, 3, 'unknown snapshot: exit 3');
    t.match(unknownSnap.err, /ERR_NOT_FOUND/);
    const unknownGroup = await cairn([...S, '--json', 'show', 'vm/999']);
    t.equal(unknownGroup.code, 3, 'unknown group: exit 3');
    const je = JSON.parse(unknownGroup.err) as { error: { code: string; details: { group?: string } } };
    t.equal(je.error.code, 'ERR_NOT_FOUND', '--json errors are JSON on stderr');
    t.equal(je.error.details.group, 'vm/999');
    const unknownArchive = await cairn([...S, 'restore', 'vm/100', 'nope.img', path.join(dir, 'x')]);
    t.equal(unknownArchive.code, 3, 'unknown archive: exit 3');
    const missingSrc = await cairn([...S, 'backup', 'vm/101', `disk.img:${path.join(dir, 'no-such-file')}`, '--time', T1]);
    t.equal(missingSrc.code, 3, 'missing source file: exit 3');
    const badGroup = await cairn([...S, 'backup', 'xx/1', `disk.img:${imgFile}`]);
    t.equal(badGroup.code, 2, 'invalid group: exit 2');
    t.match(badGroup.err, /ERR_INVALID_NAME/);
    const badSpec = await cairn([...S, 'backup', 'vm/1', `disk.raw:${imgFile}`]);
    t.equal(badSpec.code, 2, 'an archive without .img/.blob: exit 2');
    const noColon = await cairn([...S, 'backup', 'vm/1', 'disk.img']);
    t.equal(noColon.code, 2);
  });
}

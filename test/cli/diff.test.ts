import t from 'tap';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { cairn, requireBuilt } from './run-cli.js';
import { seededBytes, tempDir } from '../helpers/fixtures.js';

const FIXED = 1_700_000_000;
const T1 = '2026-03-01T00:00:00Z';
const T2 = '2026-03-02T00:00:00Z';
const T3 = '2026-03-03T00:00:00Z';
const CS = 65_536;

async function put(p: string, data: string | Uint8Array, mtime = FIXED): Promise<void> {
  await fsp.mkdir(path.dirname(p), { recursive: true });
  await fsp.writeFile(p, data);
  await fsp.utimes(p, mtime, mtime);
}

/** Every directory's mtime (the root's included) to one fixed value, deepest first. */
async function pinDirTimes(root: string): Promise<void> {
  const dirs: string[] = [root];
  for (let i = 0; i < dirs.length; i++) {
    for (const e of await fsp.readdir(dirs[i]!, { withFileTypes: true })) if (e.isDirectory()) dirs.push(path.join(dirs[i]!, e.name));
  }
  for (const d of dirs.reverse()) await fsp.utimes(d, FIXED, FIXED);
}

t.test('cairn diff: trees, images and blobs; text and --json; refs, --ns and errors', async (t) => {
  if (!requireBuilt(t)) return;
  const dir = tempDir(t);
  const s = path.join(dir, 'store');
  t.equal((await cairn(['init', s, '--image-chunk-size', String(CS), '--sync-level', 'none'])).code, 0, 'init');
  t.equal((await cairn(['--store', s, 'ns', 'create', 'site-a'])).code, 0, 'ns create');
  const src = path.join(dir, 'src');
  const disk = path.join(dir, 'disk.raw');
  const conf = path.join(dir, 'vm.conf');
  const image = seededBytes(5 * CS + 1000, 4);

  await put(path.join(src, 'keep'), 'same');
  await put(path.join(src, 'gone'), 'gone');
  await put(path.join(src, 'edit'), 'edit-1');
  await put(path.join(src, 'mode'), 'mode');
  await put(path.join(src, 'time'), 'time');
  await fsp.symlink('old-target', path.join(src, 'ln'));
  await fsp.lutimes(path.join(src, 'ln'), FIXED, FIXED);
  await put(path.join(src, 'swap'), 'file first');
  await put(path.join(src, 'hard'), 'linked');
  await fsp.link(path.join(src, 'hard'), path.join(src, 'hard2'));
  await put(path.join(src, 'a', 'b', 'c'), 'deep');
  await pinDirTimes(src);
  await fsp.writeFile(disk, image);
  await fsp.writeFile(conf, 'cores: 2\n');
  const backup = async (group: string, time: string, ns?: string): Promise<void> => {
    const r = await cairn(['--store', s, ...(ns === undefined ? [] : ['--ns', ns]), 'backup', group, 'root.tree:' + src, 'disk.img:' + disk, 'vm.blob:' + conf, '--time', time]);
    t.equal(r.code, 0, `backup ${group} ${time}: ${r.err}`);
  };
  await backup('host/web', T1);
  await backup('host/web', T1, 'site-a');

  await fsp.unlink(path.join(src, 'gone'));
  await put(path.join(src, 'new'), 'new!');
  await put(path.join(src, 'edit'), 'edit-2', FIXED + 1);
  await fsp.chmod(path.join(src, 'mode'), 0o640);
  await fsp.utimes(path.join(src, 'time'), FIXED + 2, FIXED + 2);
  await fsp.unlink(path.join(src, 'ln'));
  await fsp.symlink('new-target', path.join(src, 'ln'));
  await fsp.lutimes(path.join(src, 'ln'), FIXED, FIXED);
  await fsp.unlink(path.join(src, 'swap'));
  await put(path.join(src, 'swap', 'inside'), 'now a directory');
  // A third name for the inode: listed after hard, so a hardlink to it (no new content).
  await fsp.link(path.join(src, 'hard'), path.join(src, 'hard0'));
  await put(path.join(src, 'a', 'b', 'c'), 'deeper', FIXED + 3);
  await pinDirTimes(src);
  const changed = new Uint8Array(6 * CS + 10);
  changed.set(image);
  changed[CS + 5] = changed[CS + 5]! ^ 0xff; // chunk 1
  changed.fill(9, 5 * CS + 1000); // the tail grows: chunk 5 changes, chunk 6 is new
  await fsp.writeFile(disk, changed);
  await backup('host/web', T2);
  await backup('host/db', T3, 'site-a');

  const text = await cairn(['--store', s, 'diff', `host/web/${T1}`, 'host/web']);
  t.equal(text.code, 0, text.err);
  t.equal(text.err, '');
  t.equal(
    text.out,
    [
      `comparing host/web/${T1} to host/web/${T2}`,
      'disk.img:',
      `  changed ${CS}+${CS}`,
      `  changed ${5 * CS}+${CS + 10}`,
      `  2 ranges, 128.0 KiB changed (image 321.0 KiB -> 384.0 KiB)`,
      'root.tree:',
      'M a/b/c',
      'M edit',
      '- gone',
      '+ hard0',
      'M ln',
      'U mode',
      '+ new',
      'T swap/',
      '+ swap/inside',
      'U time',
      '  3 added, 1 removed, 3 modified, 2 metadata only, 1 type changed; 31 B added, 24 B removed',
      'vm.blob:',
      '  unchanged (blob 9 B)',
      '3 archives: 2 changed, 1 unchanged, 0 added, 0 removed',
      '',
    ].join('\n'),
  );

  // --json: one object; per archive the lists and counts; the snapshots by namespace, group, time.
  const js = await cairn(['--store', s, '--json', 'diff', `host/web/${T1}`, `host/web/${T2}`, 'root.tree']);
  t.equal(js.code, 0, js.err);
  const j = JSON.parse(js.out) as Record<string, unknown>;
  t.same(j['from'], { namespace: '', group: 'host/web', time: T1, snapshot: `host/web/${T1}` });
  t.same(j['to'], { namespace: '', group: 'host/web', time: T2, snapshot: `host/web/${T2}` });
  t.same(j['summary'], { added: 0, removed: 0, changed: 1, unchanged: 0, replaced: 0 });
  const archives = j['archives'] as Record<string, unknown>[];
  t.equal(archives.length, 1);
  t.match(archives[0], {
    name: 'root.tree',
    kind: 'tree',
    status: 'changed',
    added: [
      { path: 'hard0', kind: 'hardlink' },
      { path: 'new', kind: 'file' },
      { path: 'swap/inside', kind: 'file' },
    ],
    removed: [{ path: 'gone', kind: 'file' }],
    modified: [
      { path: 'a/b/c', kind: 'file', fields: ['content', 'mtime'] },
      { path: 'edit', kind: 'file', fields: ['content', 'mtime'] },
      { path: 'ln', kind: 'symlink', fields: ['target'] },
    ],
    metadata: [
      { path: 'mode', kind: 'file', fields: ['mode'] },
      { path: 'time', kind: 'file', fields: ['mtime'] },
    ],
    typeChanged: [{ path: 'swap', kind: 'dir', previousKind: 'file' }],
    counts: { added: 3, removed: 1, modified: 3, metadata: 2, typeChanged: 1, bytesAdded: 31, bytesRemoved: 24 },
  });
  t.same((archives[0]!['metadata'] as unknown[]).length, 2, 'nothing else');

  // The image alone, as JSON.
  const ji = JSON.parse((await cairn(['--store', s, '--json', 'diff', `host/web/${T1}`, 'host/web', 'disk.img'])).out) as { archives: Record<string, unknown>[] };
  t.same(ji.archives, [
    {
      name: 'disk.img',
      kind: 'image',
      sizeBefore: 5 * CS + 1000,
      sizeAfter: 6 * CS + 10,
      chunkSizeBefore: CS,
      chunkSizeAfter: CS,
      status: 'changed',
      compared: 'digests',
      ranges: [
        { offset: CS, length: CS },
        { offset: 5 * CS, length: CS + 10 },
      ],
      changedBytes: 2 * CS + 10,
    },
  ]);

  // --ns applies to both; the snapshots may be of different groups; type/id is the newest.
  const ns = await cairn(['--store', s, '--ns', 'site-a', 'diff', 'host/web', 'host/db', 'vm.blob']);
  t.equal(ns.code, 0, ns.err);
  t.equal(
    ns.out,
    [`comparing site-a:host/web/${T1} to site-a:host/db/${T3}`, 'vm.blob:', '  unchanged (blob 9 B)', '1 archive: 0 changed, 1 unchanged, 0 added, 0 removed', ''].join('\n'),
  );
  const nsj = JSON.parse((await cairn(['--store', s, '--ns', 'site-a', '--json', 'diff', 'host/web', 'host/db', 'vm.blob'])).out) as Record<string, unknown>;
  t.same(nsj['to'], { namespace: 'site-a', group: 'host/db', time: T3, snapshot: `host/db/${T3}` });

  // --verbose: progress lines on stderr, the same output on stdout.
  const verbose = await cairn(['--store', s, '--verbose', 'diff', `host/web/${T1}`, 'host/web']);
  t.equal(verbose.code, 0);
  t.equal(verbose.out, text.out);
  t.match(verbose.err, /comparing root\.tree/);

  // No differences: still exit 0.
  const none = await cairn(['--store', s, 'diff', 'host/web', 'host/web']);
  t.equal(none.code, 0);
  t.match(none.out, /3 archives: 0 changed, 3 unchanged, 0 added, 0 removed\n$/);

  // Not found: exit 3, one coded line, nothing on stdout.
  for (const args of [
    ['diff', `host/web/${T1}`, 'host/web', 'nope.img'],
    ['diff', 'host/web/2020-01-01T00:00:00Z', 'host/web'],
    ['diff', 'host/web', 'host/none'],
    ['--ns', 'site-a', 'diff', `host/web/${T2}`, 'host/db'],
  ]) {
    const r = await cairn(['--store', s, ...args]);
    t.equal(r.code, 3, `${args.join(' ')}: exit 3`);
    t.equal(r.out, '', 'nothing on stdout');
    t.match(r.err, /^cairn: ERR_NOT_FOUND: [^\n]+\n$/, 'one line');
  }
  const bad = await cairn(['--store', s, 'diff', 'host']);
  t.equal(bad.code, 2, 'a missing argument is a usage error');
});

t.test('cairn diff: images of different chunk sizes are compared by bytes', async (t) => {
  if (!requireBuilt(t)) return;
  const dir = tempDir(t);
  const s = path.join(dir, 'store');
  t.equal((await cairn(['init', s, '--image-chunk-size', String(CS), '--sync-level', 'none'])).code, 0, 'init');
  const disk = path.join(dir, 'disk.raw');
  const data = seededBytes(4 * CS, 8);
  await fsp.writeFile(disk, data);
  t.equal((await cairn(['--store', s, 'backup', 'vm/1', `disk.img:${disk}`, '--time', T1])).code, 0);
  data[3 * CS + 7] = data[3 * CS + 7]! ^ 1;
  await fsp.writeFile(disk, data);
  t.equal((await cairn(['--store', s, 'backup', 'vm/1', `disk.img:${disk}`, '--time', T2, '--chunk-size', String(4 * CS)])).code, 0);
  const r = await cairn(['--store', s, 'diff', `vm/1/${T1}`, `vm/1/${T2}`]);
  t.equal(r.code, 0, r.err);
  t.equal(
    r.out,
    [
      `comparing vm/1/${T1} to vm/1/${T2}`,
      'disk.img:',
      `  changed ${3 * CS}+${CS}`,
      '  1 range, 64.0 KiB changed (image 256.0 KiB, compared by bytes (chunk size 64.0 KiB -> 256.0 KiB))',
      '1 archive: 1 changed, 0 unchanged, 0 added, 0 removed',
      '',
    ].join('\n'),
  );
});

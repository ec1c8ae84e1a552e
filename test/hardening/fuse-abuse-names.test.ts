// The FUSE view attacked (issue 12): names that are not UTF-8. A tree with names that differ only in
// invalid bytes, a real U+FFFD, a name holding the escape code points, valid non-ASCII names, a
// directory, a symlink and an xattr name with invalid bytes is backed up and mounted by `cairn
// mount`; a child lists it with raw-byte names: every name is distinct, opens to its own content,
// valid names show exactly as they are, invalid bytes show as U+F700 + the byte (CLI.md).
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdirSync, promises as fsp } from 'node:fs';
import path from 'node:path';
import { Datastore } from '../../lib/index.js';
import { nativeSetXattr } from '../../lib/codec/native.js';
import { ACCESS, canMount, mountCli as mount, openDir, probe } from '../helpers/fuse-cli.js';
import { REPO, requireBuilt } from '../cli/run-cli.js';

const J = path.join;

t.test('names that are not UTF-8: every one listed distinctly, each opens to its own content', { skip: canMount ? false : 'needs root and /dev/fuse' }, async (t) => {
  if (!requireBuilt(t)) return;
  const dir = openDir(t, 'cairn-fuse-names-');
  const src = J(dir, 'src');
  mkdirSync(src);
  const esc = (b: number): string => String.fromCodePoint(0xf700 + b);
  // name bytes, what the mount shows (CLI.md, cairn mount)
  const cases: [Buffer, string][] = [
    [Buffer.from([0x61, 0xff]), `a${esc(0xff)}`],
    [Buffer.from([0x61, 0xfe]), `a${esc(0xfe)}`],
    [Buffer.from([0x61, 0xff, 0xfe]), `a${esc(0xff)}${esc(0xfe)}`],
    [Buffer.from('a\u{FFFD}'), 'a\u{FFFD}'],
    [Buffer.from('a\u{F7FF}'), `a${esc(0xef)}${esc(0x9f)}${esc(0xbf)}`],
    [Buffer.from('é'), 'é'],
    [Buffer.from([0x63, 0xc3]), `c${esc(0xc3)}`], // a truncated sequence
    [Buffer.from([0x64, 0xed, 0xa0, 0x80]), `d${esc(0xed)}${esc(0xa0)}${esc(0x80)}`], // an encoded surrogate
    [Buffer.alloc(255, 0xff), esc(0xff).repeat(255)], // the longest name: 765 bytes shown (FUSE allows 1024)
  ];
  const content = (i: number): string => `content of name ${i}\n`;
  for (let i = 0; i < cases.length; i++) await fsp.writeFile(Buffer.concat([Buffer.from(`${src}/`), cases[i]![0]]), content(i));
  mkdirSync(Buffer.concat([Buffer.from(`${src}/`), Buffer.from([0x64, 0x69, 0x72, 0xff])]));
  await fsp.writeFile(Buffer.concat([Buffer.from(`${src}/`), Buffer.from([0x64, 0x69, 0x72, 0xff]), Buffer.from('/inner')]), 'inner\n');
  await fsp.symlink(Buffer.from([0x61, 0xff]), Buffer.concat([Buffer.from(`${src}/`), Buffer.from('link')]));
  const xname = Buffer.concat([Buffer.from('user.x'), Buffer.from([0xff])]);
  nativeSetXattr(J(src, 'é'), xname, Buffer.from('xattr value'));
  nativeSetXattr(J(src, 'é'), 'user.plain', Buffer.from('plain'));

  const store = J(dir, 'store');
  const ds = await Datastore.create(store, { syncLevel: 'none', threads: 1 });
  let time: string;
  try {
    const w = await ds.group('host/h').backup();
    await w.addTree('root', src);
    time = (await w.commit()).time;
  } finally {
    await ds.close();
  }
  const mnt = J(dir, 'mnt');
  await mount(t, ['--store', store, 'mount', `host/h/${time}`, mnt], mnt);
  const LIST = `
    const fs = require('fs'); const root = process.argv[1]; const out = {};
    for (const n of fs.readdirSync(root, { encoding: 'buffer' })) {
      const p = Buffer.concat([Buffer.from(root + '/'), n]); const st = fs.lstatSync(p);
      const e = {};
      if (st.isFile()) e.content = fs.readFileSync(p, 'utf8');
      if (st.isSymbolicLink()) { e.target = fs.readlinkSync(p, { encoding: 'buffer' }).toString('hex'); e.content = fs.readFileSync(p, 'utf8'); }
      if (st.isDirectory()) e.list = fs.readdirSync(p, { encoding: 'buffer' }).map((x) => x.toString('hex'));
      out[n.toString('hex')] = e;
    }
    process.stdout.write(JSON.stringify(out));`;
  const seen = probe<Record<string, { content?: string; target?: string; list?: string[] }>>(LIST, [J(mnt, 'root.tree')]);
  t.equal(Object.keys(seen).length, cases.length + 2, `every name is listed (${cases.length} files, a directory, a symlink)`);
  const contents = Object.values(seen)
    .filter((e) => e.target === undefined && e.content !== undefined)
    .map((e) => e.content);
  t.equal(new Set(contents).size, cases.length, 'no two names open to the same content');
  for (let i = 0; i < cases.length; i++) {
    const [bytes, shown] = cases[i]!;
    const hex = Buffer.from(shown).toString('hex');
    t.ok(seen[hex] !== undefined, `${bytes.toString('hex')} is listed as ${JSON.stringify(shown)}`);
    t.equal(seen[hex]?.content, content(i), `${bytes.toString('hex')} opens to its own content`);
  }
  t.equal(seen[Buffer.from('é').toString('hex')]?.content, content(5), 'a valid non-ASCII name shows exactly as it is');
  t.equal(seen[Buffer.from('a\u{FFFD}').toString('hex')]?.content, content(3), 'a real U+FFFD shows as it is');
  const dirShown = Buffer.from(`dir${esc(0xff)}`).toString('hex');
  t.same(seen[dirShown]?.list, [Buffer.from('inner').toString('hex')], 'a directory with such a name is listed and entered');
  t.equal(seen[Buffer.from('link').toString('hex')]?.target, Buffer.from(`a${esc(0xff)}`).toString('hex'), 'a symlink target is shown the same way');
  t.equal(seen[Buffer.from('link').toString('hex')]?.content, content(0), 'and leads to its entry inside the mount');

  const XATTR = `
    const native = await import(process.argv[2]);
    const p = process.argv[1];
    const names = native.nativeListXattrs(p).map((x) => x.toString('hex')).sort();
    const values = Object.fromEntries(native.nativeListXattrs(p).map((x) => [x.toString('hex'), native.nativeGetXattr(p, x).toString()]));
    process.stdout.write(JSON.stringify({ names, values }));`;
  const x = spawnSync(process.execPath, ['--input-type=module', '-e', XATTR, J(mnt, 'root.tree', 'é'), J(REPO, 'dist', 'codec', 'native.js')], {
    encoding: 'utf8',
    timeout: 30_000,
  });
  t.equal(x.status, 0, 'xattrs listed', { stderr: x.stderr });
  const xs = JSON.parse(x.stdout || '{}') as { names?: string[]; values?: Record<string, string> };
  const xShown = Buffer.from(`user.x${esc(0xff)}`).toString('hex');
  t.same(xs.names, [Buffer.from('user.plain').toString('hex'), xShown].sort(), 'an xattr name with an invalid byte is listed the same way');
  t.equal(xs.values?.[xShown], 'xattr value', 'and reads its own value');

  // A name that is not what the mount shows for any entry is not found (no second way in).
  const alias = probe<Record<string, unknown>>(ACCESS, [`read:${J(mnt, 'root.tree', `${esc(0x61)}${esc(0xff)}`)}`]);
  t.equal(Object.values(alias)[0], 'ENOENT', 'an escape of a valid byte is no alias of it');
});

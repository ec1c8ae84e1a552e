// Tree archives crafted to escape, mounted (issue 7): the FUSE view of each is walked from a child
// process (a process must not read a mount it serves). Whatever the archive claims, the mount shows
// no name that is empty, `.`, `..` or holds a `/`, follows no symlink, exposes no file from outside,
// answers damaged parts with EIO, and stays up. The restores of the same kinds of archive are in
// test/datastore/tree-hostile.test.ts.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Datastore } from '../../lib/index.js';
import { craftTreeSnapshot, type RawEntry, type TreeCrafter } from '../helpers/craft-tree.js';
import { tempDir } from '../helpers/fixtures.js';
import { cairn, requireBuilt } from '../cli/run-cli.js';

const SENTINEL = 'the secret outside the archive\n';

/** Walks a directory without following symlinks; every error is kept with its path. */
const WALKER = `
const fs = require('fs'); const path = require('path');
const root = process.argv[1]; const out = { entries: {}, errors: {} };
const visit = (rel) => {
  const p = rel === '' ? root : path.join(root, rel);
  let st;
  try { st = fs.lstatSync(p); } catch (e) { out.errors[rel] = e.code; return; }
  const e = { type: st.isDirectory() ? 'dir' : st.isFile() ? 'file' : st.isSymbolicLink() ? 'symlink' : 'other' };
  if (e.type === 'file') { try { e.content = fs.readFileSync(p, 'latin1'); } catch (x) { out.errors[rel + ' (read)'] = x.code; } }
  if (e.type === 'symlink') e.target = fs.readlinkSync(p);
  out.entries[rel] = e;
  if (e.type === 'dir') { let names; try { names = fs.readdirSync(p); } catch (x) { out.errors[rel + ' (readdir)'] = x.code; return; } for (const n of names.sort()) visit(rel === '' ? n : rel + '/' + n); }
};
visit('');
for (const probe of ['a/evil', 'evil', 'h']) { try { out.entries['probe:' + probe] = { content: fs.readFileSync(path.join(root, probe), 'latin1') }; } catch (x) { out.errors['probe:' + probe] = x.code; } }
process.stdout.write(JSON.stringify(out));`;

const file = (name: string | Uint8Array, size = 3, payloadOffset = 0): RawEntry => ({ name, kind: 'file', size, payloadOffset });
const flat =
  (entries: RawEntry[]) =>
  (c: TreeCrafter): void => {
    c.payload = Buffer.from('abc');
    c.root(c.dir(entries));
  };
const withSubdir =
  (name: string, siblings: RawEntry[] = [], after = false) =>
  (c: TreeCrafter): void => {
    c.payload = Buffer.from('abc');
    const sub = c.dir([file('evil')]);
    const d: RawEntry = { name, kind: 'dir', mode: 0o755, child: { metaOffset: sub } };
    c.root(c.dir(after ? [...siblings, d] : [d, ...siblings]));
  };

const canMount = process.getuid?.() === 0 && existsSync('/dev/fuse');
t.test('hostile tree archives through a FUSE mount', { skip: canMount ? false : 'needs root and /dev/fuse' }, async (t) => {
  if (!requireBuilt(t)) return;
  const dir = tempDir(t, 'cairn-hostile-mount-');
  const outside = path.join(dir, 'outside');
  mkdirSync(outside);
  writeFileSync(path.join(outside, 'file'), SENTINEL);
  const store = path.join(dir, 'store');
  const ds = await Datastore.create(store, { syncLevel: 'none', threads: 1 });
  const cases: [string, (c: TreeCrafter) => void][] = [
    ["a directory named '..' holding 'evil'", withSubdir('..', [file('a')])],
    ["a file named '..'", flat([file('..')])],
    ["an entry named '.'", flat([file('.')])],
    ['an empty name', flat([file(''), file('b')])],
    ["a name with a slash 'x/evil'", flat([file('x/evil')])],
    ["an absolute name '/etc/passwd'", flat([file('/etc/passwd')])],
    ['a symlink to outside, then a directory of the same name', withSubdir('a', [{ name: 'a', kind: 'symlink', mode: 0o777, target: outside }], true)],
    ['a symlink to a file outside', flat([{ name: 's', kind: 'symlink', mode: 0o777, target: path.join(outside, 'file') }])],
    ['a hardlink to a path outside', flat([file('f'), { name: 'h', kind: 'hardlink', target: '../../outside/file' }])],
    [
      'a hardlink through a symlink',
      flat([
        { name: 'a', kind: 'symlink', mode: 0o777, target: outside },
        { name: 'h', kind: 'hardlink', target: 'a/file' },
      ]),
    ],
    ['duplicate names', flat([file('a', 1, 0), file('a', 2, 1)])],
    ['a file past the end of the payload', flat([file('f', 1, 2 ** 40)])],
    [
      'a directory record that contains itself',
      (c) => {
        c.payload = Buffer.from('abc');
        const at = c.pos;
        c.root(c.dir([{ name: 'loop', kind: 'dir', mode: 0o755, child: { metaOffset: at } }, file('z')]));
      },
    ],
  ];
  const times: number[] = [];
  try {
    for (let i = 0; i < cases.length; i++) {
      await craftTreeSnapshot(ds, 'host/1', 1000 + i, cases[i]![1]);
      times.push(1000 + i);
    }
  } finally {
    await ds.close();
  }
  const mnt = path.join(dir, 'mnt');
  mkdirSync(mnt);
  for (let i = 0; i < cases.length; i++) {
    const what = cases[i]![0];
    const snap = `host/1/${new Date(times[i]! * 1000).toISOString().replace('.000Z', 'Z')}`;
    const m = await cairn(['--store', store, '--json', 'mount', snap, mnt, '--daemon']);
    t.equal(m.code, 0, `${what}: mounted`, { stderr: m.err });
    if (m.code !== 0) continue;
    try {
      const w = spawnSync(process.execPath, ['-e', WALKER, path.join(mnt, 'root.tree')], { encoding: 'utf8', timeout: 60_000 });
      t.equal(w.status, 0, `${what}: the walk ends`, { stderr: w.stderr });
      const got = JSON.parse(w.stdout || '{"entries":{},"errors":{}}') as {
        entries: Record<string, { type?: string; content?: string; target?: string }>;
        errors: Record<string, string>;
      };
      const names = Object.keys(got.entries).filter((p) => !p.startsWith('probe:') && p !== '');
      const badNames = names.filter((p) => p.split('/').some((c) => c === '' || c === '.' || c === '..'));
      t.same(badNames, [], `${what}: no empty, '.' or '..' component is shown`);
      // (A symlink is shown as a symlink with its target; a reader that follows it reads whatever
      // that path names on the reader's side, as with any file system: the walk does not follow.)
      const leaked = Object.entries(got.entries)
        .filter(([, e]) => e.content === SENTINEL)
        .map(([p]) => p);
      t.same(leaked, [], `${what}: no content from outside the archive`);
      for (const [p, e] of Object.entries(got.entries)) if (e.type === 'symlink') t.ok(typeof e.target === 'string', `${what}: ${p} is shown as a symlink, not followed`);
      const codes = [...new Set(Object.values(got.errors))];
      t.ok(
        codes.every((c) => ['EIO', 'ENOENT', 'ENOTDIR'].includes(c)),
        `${what}: errors are EIO, ENOENT or ENOTDIR (${codes.join(', ') || 'none'})`,
      );
      t.comment(`${what}: shows ${JSON.stringify(names)}; errors ${JSON.stringify(got.errors)}`);
    } finally {
      const u = await cairn(['umount', mnt]);
      t.equal(u.code, 0, `${what}: the mount was still up and unmounts`, { stderr: u.err });
    }
  }
});

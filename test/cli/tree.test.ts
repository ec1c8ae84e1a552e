import t from 'tap';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { tempDir } from '../helpers/fixtures.js';
import { cairn, requireBuilt } from './run-cli.js';

if (requireBuilt(t)) {
  t.test('tree archives from the command line: backup, ls, find, restore', async (t) => {
    const dir = tempDir(t, 'cairn-cli-');
    const store = path.join(dir, 'store');
    const src = path.join(dir, 'etc');
    await fsp.mkdir(path.join(src, 'ssh'), { recursive: true });
    await fsp.writeFile(path.join(src, 'ssh', 'sshd_config'), 'Port 22\n');
    await fsp.writeFile(path.join(src, 'hosts'), '127.0.0.1 localhost\n');
    await fsp.writeFile(path.join(src, 'big.cache'), 'x'.repeat(1000));
    await fsp.symlink('hosts', path.join(src, 'hosts.link'));
    const S = ['--store', store];
    t.equal((await cairn(['init', store, '--sync-level', 'none'])).code, 0);
    const b1 = await cairn([...S, 'backup', 'host/web', `etc.tree:${src}`, '--exclude', '*.cache', '--time', '2026-01-01T00:00:00Z']);
    t.equal(b1.code, 0, b1.err);
    t.match(b1.out, /etc\.tree: 5 entries/);
    const b2 = await cairn([...S, '--json', 'backup', 'host/web', `etc.tree:${src}`, '--exclude', '*.cache', '--time', '2026-01-02T00:00:00Z']);
    t.equal(b2.code, 0, b2.err);
    const j = JSON.parse(b2.out) as { stats: Record<string, { filesRead: number; filesReused: number }> };
    t.equal(j.stats['etc.tree']?.filesRead, 0, 'unchanged: no file read');
    t.equal(j.stats['etc.tree']?.filesReused, 2);

    const ls = await cairn([...S, 'ls', 'host/web', 'etc.tree']);
    t.equal(ls.code, 0, ls.err);
    t.match(ls.out, /hosts\.link -> hosts/);
    t.match(ls.out, /^d.* ssh\/$/m);
    t.notMatch(ls.out, /big\.cache/, 'excluded');
    const lsSub = await cairn([...S, '--json', 'ls', 'host/web', 'etc.tree:ssh']);
    t.same(
      (JSON.parse(lsSub.out) as { entries: { path: string }[] }).entries.map((x) => x.path),
      ['ssh/sshd_config'],
    );
    t.equal((await cairn([...S, 'ls', 'host/web', 'etc.tree:nope'])).code, 3, 'unknown path: exit 3');

    const find = await cairn([...S, 'find', 'host/web', 'etc.tree', '**/sshd*']);
    t.equal(find.out, 'ssh/sshd_config\n');

    const out = path.join(dir, 'restored');
    const r = await cairn([...S, 'restore', 'host/web', 'etc.tree', out]);
    t.equal(r.code, 0, r.err);
    t.equal(await fsp.readFile(path.join(out, 'ssh', 'sshd_config'), 'utf8'), 'Port 22\n');
    t.equal(await fsp.readlink(path.join(out, 'hosts.link')), 'hosts');
    const again = await cairn([...S, 'restore', 'host/web', 'etc.tree', out]);
    t.equal(again.code, 2, 'a non-empty target needs --overwrite');
    t.match(again.err, /ERR_EXISTS/);
    const part = path.join(dir, 'part');
    const rp = await cairn([...S, 'restore', 'host/web', 'etc.tree', part, '--include', 'ssh/**']);
    t.equal(rp.code, 0, rp.err);
    t.same(await fsp.readdir(part), ['ssh']);
  });
}

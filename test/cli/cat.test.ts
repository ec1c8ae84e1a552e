/** `cairn cat`: a file of a tree archive, a blob or an image to stdout; coded errors otherwise. */
import t from 'tap';
import { promises as fsp, writeFileSync } from 'node:fs';
import path from 'node:path';
import { cairn, requireBuilt } from './run-cli.js';
import { seededBytes, tempDir } from '../helpers/fixtures.js';

if (requireBuilt(t)) {
  t.test('cat writes a tree file, a hardlink, a blob and an image; refuses what is not a file', async (t) => {
    const dir = tempDir(t, 'cairn-cat-');
    const store = path.join(dir, 'store');
    t.equal((await cairn(['init', store, '--sync-level', 'none', '--image-chunk-size', '65536'])).code, 0);
    const src = path.join(dir, 'src');
    await fsp.mkdir(path.join(src, 'etc', 'ssh'), { recursive: true });
    const big = seededBytes(2_500_000, 4);
    writeFileSync(path.join(src, 'etc', 'ssh', 'sshd_config'), big);
    await fsp.link(path.join(src, 'etc', 'ssh', 'sshd_config'), path.join(src, 'etc', 'hard'));
    await fsp.symlink('ssh/sshd_config', path.join(src, 'etc', 'link'));
    const img = seededBytes(300_000, 5);
    writeFileSync(path.join(dir, 'disk.raw'), img);
    writeFileSync(path.join(dir, 'vm.conf'), 'cores: 2\n');
    const b = await cairn(['--store', store, 'backup', 'vm/1', `root.tree:${src}`, `disk.img:${path.join(dir, 'disk.raw')}`, `conf.blob:${path.join(dir, 'vm.conf')}`]);
    t.equal(b.code, 0, b.err);

    const f = await cairn(['--store', store, 'cat', 'vm/1', 'root.tree:etc/ssh/sshd_config']);
    t.equal(f.code, 0, f.err);
    t.ok(f.stdout.equals(Buffer.from(big)), 'the file, byte for byte');
    const h = await cairn(['--store', store, 'cat', 'vm/1', 'root.tree:/etc/hard']);
    t.equal(h.code, 0, h.err);
    t.ok(h.stdout.equals(Buffer.from(big)), 'a hardlink gives its file');
    const blob = await cairn(['--store', store, 'cat', 'vm/1', 'conf.blob']);
    t.equal(blob.out, 'cores: 2\n');
    const image = await cairn(['--store', store, 'cat', 'vm/1', 'disk.img']);
    t.ok(image.stdout.equals(Buffer.from(img)), 'the image');

    const cases: [string, number, RegExp][] = [
      ['root.tree:etc/nope', 3, /^cairn: ERR_NOT_FOUND: no 'etc\/nope' in the archive\n$/],
      ['root.tree:etc/ssh', 2, /^cairn: ERR_INVALID_ARGUMENT: 'etc\/ssh' is a directory, not a file\n$/],
      ['root.tree:etc/link', 2, /^cairn: ERR_INVALID_ARGUMENT: 'etc\/link' is a symlink to 'ssh\/sshd_config', not a file\n$/],
      ['root.tree', 2, /^cairn: ERR_INVALID_ARGUMENT: .*<name>\.tree:<path>\n$/],
      ['conf.blob:x', 2, /^cairn: ERR_INVALID_ARGUMENT: /],
      ['nope.blob', 3, /^cairn: ERR_NOT_FOUND: /],
    ];
    for (const [what, code, msg] of cases) {
      const r = await cairn(['--store', store, 'cat', 'vm/1', what]);
      t.equal(r.code, code, `${what}: ${r.err}`);
      t.match(r.err, msg, what);
      t.equal(r.stdout.length, 0, `${what}: nothing on stdout`);
    }
  });
}

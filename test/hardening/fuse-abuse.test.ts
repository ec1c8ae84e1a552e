// The FUSE view attacked (issue 12), through real mounts made by `cairn mount` (a daemon process)
// and reached only from child processes (a process must not read a mount it serves):
// - permissions: a mount with --allow-other, read by a second user (nobody, uid 65534): the
//   archive's modes and owners apply (default_permissions), images and blobs are the mounting
//   user's, 0400 unless --image-mode opens them up; a datastore mount's own directories are
//   owner-only unless --dir-mode opens them up;
// - names that are not UTF-8: every name of a tree is listed distinctly (as raw bytes) and opens
//   to its own content; valid names show exactly as they are; symlink targets and xattr names too;
// - a file held open on a whole-datastore mount keeps its snapshot locked past the idle timeout:
//   forget fails with ERR_LOCKED, gc takes nothing of it, the next read returns the right bytes;
//   after the file is closed and the timeout passed, forget works.
import t, { type Test } from 'tap';
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, promises as fsp } from 'node:fs';
import path from 'node:path';
import { Datastore } from '../../lib/index.js';
import { nativeSetXattr } from '../../lib/codec/native.js';
import { seededBytes, tempDir } from '../helpers/fixtures.js';
import { REPO, cairn, requireBuilt } from '../cli/run-cli.js';

const J = path.join;
const NOBODY = 65534;
const CS = 64 * 1024;
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const canMount = process.getuid?.() === 0 && existsSync('/dev/fuse');

/** A directory every user can traverse (mkdtemp makes 0700 ones). */
function openDir(t: Test, prefix: string): string {
  const dir = tempDir(t, prefix);
  chmodSync(dir, 0o755);
  return dir;
}

/** Mounts with the CLI as a daemon; unmounted in a teardown. */
async function mount(t: Test, args: string[], mnt: string): Promise<void> {
  mkdirSync(mnt, { recursive: true });
  const m = await cairn([...args, '--daemon']);
  t.equal(m.code, 0, `cairn ${args.join(' ')}: mounted`, { stderr: m.err });
  if (m.code !== 0) throw new Error(`mount failed: ${m.err}`);
  t.teardown(async () => {
    await cairn(['umount', mnt]);
  });
}

/** Runs a CommonJS script in a child process (as `uid`), returns its JSON output. */
function probe<T>(script: string, args: string[], uid = 0): T {
  const r = spawnSync(process.execPath, ['-e', script, ...args], { encoding: 'utf8', timeout: 60_000, cwd: '/', uid, gid: uid, env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin' } });
  if (r.status !== 0) throw new Error(`probe exited ${r.status}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

// Each argument is `op:path`; the result is the error code or what was read.
const ACCESS = `
const fs = require('fs'); const crypto = require('crypto'); const out = {};
for (const a of process.argv.slice(1)) {
  const [op, p] = [a.slice(0, a.indexOf(':')), a.slice(a.indexOf(':') + 1)];
  try {
    if (op === 'read') out[a] = crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex');
    else if (op === 'list') out[a] = fs.readdirSync(p).sort();
    else if (op === 'stat') { const s = fs.statSync(p); out[a] = { mode: s.mode & 0o7777, uid: s.uid, gid: s.gid }; }
  } catch (e) { out[a] = e.code; }
}
process.stdout.write(JSON.stringify(out));`;

t.test('the FUSE view attacked', { skip: canMount ? false : 'needs root and /dev/fuse' }, async (t) => {
  if (!requireBuilt(t)) return;

  t.test('--allow-other: a second user sees only what the archive lets it see', async (t) => {
    const dir = openDir(t, 'cairn-fuse-perm-');
    const src = J(dir, 'src');
    mkdirSync(J(src, 'private'), { recursive: true });
    mkdirSync(J(src, 'pubdir'));
    await fsp.writeFile(J(src, 'secret'), 'root only\n');
    await fsp.chmod(J(src, 'secret'), 0o600);
    await fsp.writeFile(J(src, 'public'), 'for everyone\n');
    await fsp.chmod(J(src, 'public'), 0o644);
    await fsp.writeFile(J(src, 'private', 'inner'), 'inside a 0700 directory\n');
    await fsp.chmod(J(src, 'private', 'inner'), 0o644);
    await fsp.chmod(J(src, 'private'), 0o700);
    await fsp.writeFile(J(src, 'pubdir', 'x'), 'x');
    await fsp.chmod(J(src, 'pubdir'), 0o755);
    await fsp.writeFile(J(src, 'nobodys'), 'owned by nobody, 0600\n');
    await fsp.chmod(J(src, 'nobodys'), 0o600);
    await fsp.chown(J(src, 'nobodys'), NOBODY, NOBODY);
    const image = seededBytes(8 * CS + 5, 3);
    await fsp.writeFile(J(dir, 'disk.raw'), image);
    const store = J(dir, 'store');
    const ds = await Datastore.create(store, { imageChunkSize: CS, syncLevel: 'none', threads: 1 });
    let time: string;
    try {
      const w = await ds.group('vm/100').backup();
      await w.addTree('root', src);
      await w.addImage('disk', J(dir, 'disk.raw'));
      await w.addBlob('conf', 'password: hunter2\n');
      time = (await w.commit()).time;
    } finally {
      await ds.close();
    }

    const mnt = J(dir, 'mnt');
    await mount(t, ['--store', store, 'mount', `vm/100/${time}`, mnt, '--allow-other'], mnt);
    const r = J(mnt, 'root.tree');
    const probes = [
      `read:${J(r, 'secret')}`,
      `read:${J(r, 'public')}`,
      `list:${J(r, 'private')}`,
      `read:${J(r, 'private', 'inner')}`,
      `list:${J(r, 'pubdir')}`,
      `read:${J(r, 'nobodys')}`,
      `read:${J(mnt, 'disk.img')}`,
      `read:${J(mnt, 'conf.blob')}`,
      `stat:${J(mnt, 'disk.img')}`,
      `stat:${J(mnt, 'conf.blob')}`,
      `list:${mnt}`,
    ];
    const asNobody = probe<Record<string, unknown>>(ACCESS, probes, NOBODY);
    t.equal(asNobody[probes[0]!], 'EACCES', 'a 0600 root file of the tree is EACCES for nobody');
    t.equal(asNobody[probes[1]!], sha(Buffer.from('for everyone\n')), 'a 0644 file is readable');
    t.equal(asNobody[probes[2]!], 'EACCES', 'a 0700 root directory is not listable');
    t.equal(asNobody[probes[3]!], 'EACCES', 'nor can a file below it be read');
    t.same(asNobody[probes[4]!], ['x'], 'a 0755 directory is listable');
    t.equal(asNobody[probes[5]!], sha(Buffer.from('owned by nobody, 0600\n')), "a 0600 file owned by nobody is nobody's to read");
    t.equal(asNobody[probes[6]!], 'EACCES', 'an image is not readable by others by default');
    t.equal(asNobody[probes[7]!], 'EACCES', 'nor is a blob');
    t.same(asNobody[probes[8]!], { mode: 0o400, uid: 0, gid: 0 }, 'an image belongs to the mounting user, mode 0400');
    t.same(asNobody[probes[9]!], { mode: 0o400, uid: 0, gid: 0 }, 'a blob too');
    t.same(asNobody[probes[10]!], ['conf.blob', 'disk.img', 'root.tree'], 'the archive names are listed');
    const asRoot = probe<Record<string, unknown>>(ACCESS, probes.slice(0, 8), 0);
    t.equal(asRoot[probes[0]!], sha(Buffer.from('root only\n')), 'root still reads everything');
    t.equal(asRoot[probes[6]!], sha(image));

    const mnt2 = J(dir, 'mnt-open');
    await mount(t, ['--store', store, 'mount', `vm/100/${time}`, mnt2, '--allow-other', '--image-mode', '0444'], mnt2);
    const open = probe<Record<string, unknown>>(ACCESS, [`read:${J(mnt2, 'disk.img')}`, `stat:${J(mnt2, 'disk.img')}`, `read:${J(mnt2, 'root.tree', 'secret')}`], NOBODY);
    t.equal(open[`read:${J(mnt2, 'disk.img')}`], sha(image), 'with --image-mode 0444 nobody reads the image');
    t.same(open[`stat:${J(mnt2, 'disk.img')}`], { mode: 0o444, uid: 0, gid: 0 });
    t.equal(open[`read:${J(mnt2, 'root.tree', 'secret')}`], 'EACCES', 'the tree keeps its own modes');

    const badMnt = J(dir, 'mnt-bad');
    mkdirSync(badMnt);
    const bad = await cairn(['--store', store, 'mount', `vm/100/${time}`, badMnt, '--image-mode', '0666', '--daemon']);
    if (bad.code === 0) await cairn(['umount', badMnt]);
    t.equal(bad.code, 2, '--image-mode with write bits is refused');
    t.match(bad.err, /ERR_INVALID_ARGUMENT/);

    // A whole-datastore mount: its own directories (namespaces, types, groups, snapshots) are the
    // mounting user's, 0500 unless --dir-mode opens them.
    const mnt3 = J(dir, 'mnt-ds');
    await mount(t, ['--store', store, 'mount', mnt3, '--allow-other'], mnt3);
    const snapDir = J(mnt3, 'vm', '100', time);
    const ds1 = probe<Record<string, unknown>>(ACCESS, [`list:${mnt3}`, `stat:${mnt3}`, `read:${J(snapDir, 'root.tree', 'public')}`], NOBODY);
    t.equal(ds1[`list:${mnt3}`], 'EACCES', 'nobody cannot list the datastore mount');
    t.same(ds1[`stat:${mnt3}`], { mode: 0o500, uid: 0, gid: 0 });
    t.equal(ds1[`read:${J(snapDir, 'root.tree', 'public')}`], 'EACCES', 'nor reach into it');
    const dsRoot = probe<Record<string, unknown>>(ACCESS, [`list:${J(mnt3, 'vm', '100')}`], 0);
    t.same(dsRoot[`list:${J(mnt3, 'vm', '100')}`], [time, 'latest'].sort(), 'the mounting user lists it');
    const mnt4 = J(dir, 'mnt-ds-open');
    await mount(t, ['--store', store, 'mount', mnt4, '--allow-other', '--dir-mode', '0555'], mnt4);
    const snapDir4 = J(mnt4, 'vm', '100', time);
    const ds2 = probe<Record<string, unknown>>(
      ACCESS,
      [`list:${J(mnt4, 'vm', '100')}`, `read:${J(snapDir4, 'root.tree', 'public')}`, `read:${J(snapDir4, 'root.tree', 'secret')}`, `read:${J(snapDir4, 'disk.img')}`, `read:${J(mnt4, 'vm', '100', 'latest', 'root.tree', 'public')}`],
      NOBODY,
    );
    t.same(ds2[`list:${J(mnt4, 'vm', '100')}`], [time, 'latest'].sort(), 'with --dir-mode 0555 nobody lists the groups and snapshots');
    t.equal(ds2[`read:${J(snapDir4, 'root.tree', 'public')}`], sha(Buffer.from('for everyone\n')));
    t.equal(ds2[`read:${J(snapDir4, 'root.tree', 'secret')}`], 'EACCES', 'the tree keeps its own modes');
    t.equal(ds2[`read:${J(snapDir4, 'disk.img')}`], 'EACCES', 'and images their own (0400 without --image-mode)');
    t.equal(ds2[`read:${J(mnt4, 'vm', '100', 'latest', 'root.tree', 'public')}`], sha(Buffer.from('for everyone\n')), 'latest leads there too');
  });

  t.test('names that are not UTF-8: every one listed distinctly, each opens to its own content', async (t) => {
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
    const contents = Object.values(seen).filter((e) => e.target === undefined && e.content !== undefined).map((e) => e.content);
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
    const x = spawnSync(process.execPath, ['--input-type=module', '-e', XATTR, J(mnt, 'root.tree', 'é'), J(REPO, 'dist', 'codec', 'native.js')], { encoding: 'utf8', timeout: 30_000 });
    t.equal(x.status, 0, 'xattrs listed', { stderr: x.stderr });
    const xs = JSON.parse(x.stdout || '{}') as { names?: string[]; values?: Record<string, string> };
    const xShown = Buffer.from(`user.x${esc(0xff)}`).toString('hex');
    t.same(xs.names, [Buffer.from('user.plain').toString('hex'), xShown].sort(), 'an xattr name with an invalid byte is listed the same way');
    t.equal(xs.values?.[xShown], 'xattr value', 'and reads its own value');

    // A name that is not what the mount shows for any entry is not found (no second way in).
    const alias = probe<Record<string, unknown>>(ACCESS, [`read:${J(mnt, 'root.tree', `${esc(0x61)}${esc(0xff)}`)}`]);
    t.equal(Object.values(alias)[0], 'ENOENT', 'an escape of a valid byte is no alias of it');
  });

  t.test('a file held open on a datastore mount keeps its snapshot locked past the idle timeout', async (t) => {
    const dir = openDir(t, 'cairn-fuse-hold-');
    const image = seededBytes(64 * CS + 77, 11);
    await fsp.writeFile(J(dir, 'disk.raw'), image);
    const store = J(dir, 'store');
    const ds = await Datastore.create(store, { imageChunkSize: CS, syncLevel: 'none', threads: 1 });
    let time: string;
    try {
      const w = await ds.group('vm/300').backup();
      await w.addImage('disk', J(dir, 'disk.raw'));
      time = (await w.commit()).time;
    } finally {
      await ds.close();
    }
    const mnt = J(dir, 'mnt');
    await mount(t, ['--store', store, 'mount', mnt, '--idle-close', '0.3'], mnt);
    const file = J(mnt, 'vm', '300', time, 'disk.img');
    const holder = new Holder(file);
    t.teardown(() => holder.end());
    t.equal(await holder.send('read 0 4096'), sha(image.subarray(0, 4096)), 'the child opened the image and read its start');
    await new Promise((r) => setTimeout(r, 1500));
    const f = await cairn(['--store', store, '--json', 'forget', `vm/300/${time}`]);
    t.equal(f.code, 4, 'forget of the snapshot with an open file fails (exit 4)', { stdout: f.out, stderr: f.err });
    t.match(f.err, /ERR_LOCKED/);
    // Age every chunk past GC's cutoff, so that a GC would take them if the snapshot were gone.
    const old = new Date(Date.now() - 3600_000);
    let chunks = 0;
    for (const shard of await fsp.readdir(J(store, '.chunks'))) {
      for (const c of await fsp.readdir(J(store, '.chunks', shard))) {
        await fsp.utimes(J(store, '.chunks', shard, c), old, old);
        chunks++;
      }
    }
    t.ok(chunks > 60, `${chunks} chunks aged`);
    const g = await cairn(['--store', store, '--json', 'gc']);
    t.equal(g.code, 0, 'gc runs', { stderr: g.err });
    t.equal((JSON.parse(g.out || '{}') as { removedChunks?: number }).removedChunks, 0, 'gc removes nothing of it');
    for (const [off, len] of [
      [40 * CS + 3, 3 * CS],
      [image.byteLength - 1000, 1000],
      [17 * CS, 5],
    ] as const) {
      t.equal(await holder.send(`read ${off} ${len}`), sha(image.subarray(off, off + len)), `the next read at ${off} returns the right bytes`);
    }
    t.equal(await holder.send('close'), 'closed');
    await new Promise((r) => setTimeout(r, 1500));
    const f2 = await cairn(['--store', store, '--json', 'forget', `vm/300/${time}`]);
    t.equal(f2.code, 0, 'once closed and idle, forget works', { stderr: f2.err });
  });
});

/** A child process that holds a file open and reads from it on request (one line per command). */
class Holder {
  private readonly child: ChildProcessWithoutNullStreams;
  private buf = '';
  private waiting: ((line: string) => void)[] = [];

  constructor(file: string) {
    const script = `
      const fs = require('fs'); const crypto = require('crypto'); const rl = require('readline').createInterface({ input: process.stdin });
      let fd = fs.openSync(process.argv[1], 'r');
      rl.on('line', (l) => {
        const [cmd, a, b] = l.split(' ');
        try {
          if (cmd === 'read') { const buf = Buffer.alloc(Number(b)); let n = 0; while (n < buf.length) { const r = fs.readSync(fd, buf, n, buf.length - n, Number(a) + n); if (r === 0) break; n += r; }
            process.stdout.write(crypto.createHash('sha256').update(buf.subarray(0, n)).digest('hex') + '\\n'); }
          else if (cmd === 'close') { fs.closeSync(fd); process.stdout.write('closed\\n'); }
        } catch (e) { process.stdout.write('error ' + e.code + '\\n'); }
      });`;
    this.child = spawn(process.execPath, ['-e', script, file], { stdio: ['pipe', 'pipe', 'pipe'], cwd: '/' });
    this.child.stdout.on('data', (d: Buffer) => {
      this.buf += d.toString();
      let i: number;
      while ((i = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, i);
        this.buf = this.buf.slice(i + 1);
        this.waiting.shift()?.(line);
      }
    });
  }

  send(cmd: string): Promise<string> {
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      this.child.stdin.write(`${cmd}\n`);
    });
  }

  end(): void {
    this.child.stdin.end();
    this.child.kill();
  }
}

// Sources that never end (issue 12): a backup reads what was there when it opened each source and
// then stops. A file swapped for a FIFO after the walk stat it is skipped (reported), not waited
// for; a file that keeps growing is read up to its size at open (reported); /dev/zero is refused
// as an image without an explicit size and as a blob; an image arrives from a pipe; SIGTERM stops
// a backup that waits on a source, and nothing of it is visible afterwards.
import t from 'tap';
import { randomBytes, createHash } from 'node:crypto';
import {
  closeSync,
  constants,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  renameSync,
  symlinkSync,
  truncateSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import type { ChildProcess } from 'node:child_process';
import { Datastore, isCairnError, readBlobSource } from '../../lib/index.js';
import { nativeMknod } from '../../lib/codec/native.js';
import { tempDir } from '../helpers/fixtures.js';
import { requireBuilt } from '../cli/run-cli.js';
import { cairnTimed } from '../helpers/timed-cli.js';

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const MiB = 1024 * 1024;

/** Calls `then` once the child has `file` open (polled through /proc/<pid>/fd). */
function whenOpened(child: ChildProcess, file: string, then: () => void): void {
  const timer = setInterval(() => {
    let links: string[];
    try {
      links = readdirSync(`/proc/${child.pid}/fd`).map((fd) => {
        try {
          return readlinkSync(`/proc/${child.pid}/fd/${fd}`);
        } catch {
          return '';
        }
      });
    } catch {
      clearInterval(timer); // the child is gone
      return;
    }
    if (links.includes(file)) {
      clearInterval(timer);
      then();
    }
  }, 1);
  child.on('exit', () => clearInterval(timer));
}

/** The snapshots of a group, newest last, with their archives' sizes. */
async function archives(store: string, group: string): Promise<{ name: string; size: number }[][]> {
  const ds = await Datastore.open(store);
  try {
    const snaps = await ds.group(group).snapshots();
    return snaps.map((s) => s.files.map((f) => ({ name: f.name, size: f.size })));
  } finally {
    await ds.close();
  }
}

t.setTimeout(120_000);
if (requireBuilt(t)) {
  const dir = tempDir(t, 'cairn-sources-');
  const store = path.join(dir, 'store');
  let serial = 0;

  t.before(async () => {
    const r = await cairnTimed(['init', store, '--sync-level', 'none']);
    if (r.code !== 0) throw new Error(r.err);
  });

  t.test('a file swapped for a FIFO after it was stat-ed is skipped and reported, not waited for', async (t) => {
    const src = path.join(dir, `fifo-src-${++serial}`);
    mkdirSync(src);
    const big = randomBytes(32 * MiB);
    writeFileSync(path.join(src, 'a-big'), big);
    writeFileSync(path.join(src, 'b-small'), 'small');
    let swapped = false;
    const r = await cairnTimed(['--store', store, 'backup', 'host/fifo', `root.tree:${src}`], {
      timeoutMs: 20_000,
      // The walk stats a directory's entries before it reads any of them: once a-big is open,
      // b-small has been stat-ed as a regular file. Swap it for a FIFO nobody writes.
      during: (child) =>
        whenOpened(child, path.join(src, 'a-big'), () => {
          unlinkSync(path.join(src, 'b-small'));
          nativeMknod(path.join(src, 'b-small'), constants.S_IFIFO | 0o644, 0, 0);
          swapped = true;
        }),
    });
    t.ok(swapped, 'the swap happened while the backup ran');
    t.notOk(r.timedOut, `the backup ended (${r.ms} ms)`);
    t.equal(r.code, 7, `exit 7: the snapshot is incomplete\n${r.out}${r.err}`);
    t.match(r.out, /warning: root\.tree: b-small: CHANGED: /, 'the swapped file is reported');
    const snaps = await archives(store, 'host/fifo');
    t.equal(snaps.length, 1, 'the snapshot is committed');
    const restored = await cairnTimed(['--store', store, 'restore', 'host/fifo', 'root.tree', path.join(dir, `fifo-out-${serial}`)], { timeoutMs: 20_000 });
    t.equal(restored.code, 0, restored.err);
    t.equal(sha(readFileSync(path.join(dir, `fifo-out-${serial}`, 'a-big'))), sha(big), 'what was read restores');
    t.notOk(existsSync(path.join(dir, `fifo-out-${serial}`, 'b-small')), 'the swapped entry is not in the archive');
  });

  t.test('a directory swapped for a symlink after it was stat-ed is not followed', async (t) => {
    const src = path.join(dir, `dirswap-src-${++serial}`);
    const outside = path.join(dir, `outside-${serial}`);
    mkdirSync(path.join(src, 'sub'), { recursive: true });
    mkdirSync(outside);
    writeFileSync(path.join(outside, 'secret'), 'not part of the tree');
    writeFileSync(path.join(src, 'sub', 'mine'), 'mine');
    writeFileSync(path.join(src, 'a-big'), randomBytes(32 * MiB));
    let swapped = false;
    // Files are read before subdirectories are entered: once a-big is open, sub was stat-ed.
    const r = await cairnTimed(['--store', store, 'backup', 'host/dirswap', `root.tree:${src}`], {
      timeoutMs: 20_000,
      during: (child) =>
        whenOpened(child, path.join(src, 'a-big'), () => {
          renameSync(path.join(src, 'sub'), path.join(src, 'sub-moved'));
          symlinkSync(outside, path.join(src, 'sub'));
          swapped = true;
        }),
    });
    t.ok(swapped, 'swapped while the backup ran');
    t.equal(r.code, 7, `exit 7\n${r.out}${r.err}`);
    t.match(r.out, /warning: root\.tree: sub: CHANGED: /);
    const out = path.join(dir, `dirswap-out-${serial}`);
    const restored = await cairnTimed(['--store', store, 'restore', 'host/dirswap', 'root.tree', out], { timeoutMs: 20_000 });
    t.equal(restored.code, 0, restored.err);
    t.notOk(existsSync(path.join(out, 'sub', 'secret')), 'nothing from outside the tree was backed up');
  });

  t.test('the library: path sources with a size, streams with a size, abortable waits, blob sources', async (t) => {
    const ds = await Datastore.open(store);
    t.teardown(() => ds.close());
    const codeOf = async (p: Promise<unknown>): Promise<string | undefined> => {
      try {
        await p;
        return undefined;
      } catch (e) {
        return isCairnError(e) ? e.code : String(e);
      }
    };
    const w = await ds.group('host/lib').backup();
    t.equal(await codeOf(w.addImage('z', '/dev/zero')), 'ERR_INVALID_ARGUMENT', 'a character device without a size');
    t.equal((await w.addImage('z', { path: '/dev/zero', size: 200_000 })).bytes, 200_000, 'with a size: exactly that much');
    async function* endless(): AsyncGenerator<Uint8Array> {
      for (;;) yield new Uint8Array(65536).fill(7);
    }
    t.equal((await w.addImage('s', { stream: endless(), size: 300_001 })).bytes, 300_001, 'a stream is not read past its declared size');
    t.equal(await codeOf(w.addImage('short', { stream: Readable.from([Buffer.alloc(10)]), size: 11 })), 'ERR_IO', 'a stream shorter than declared');
    async function* silent(): AsyncGenerator<Uint8Array> {
      await new Promise(() => undefined); // never yields, never ends
      yield new Uint8Array(0);
    }
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 200);
    const t0 = Date.now();
    t.equal(await codeOf(w.addImage('silent', { stream: silent() }, { signal: ac.signal })), 'ERR_ABORTED', 'a stream that never yields is abortable');
    t.ok(Date.now() - t0 < 5000);
    await w.abort();

    t.equal(await codeOf(readBlobSource('/dev/zero')), 'ERR_INVALID_ARGUMENT');
    t.equal(await codeOf(readBlobSource(dir)), 'ERR_INVALID_ARGUMENT', 'a directory');
    t.equal(await codeOf(readBlobSource(path.join(dir, 'nope'))), 'ERR_NOT_FOUND');
    const big = path.join(dir, 'lib-big.conf');
    writeFileSync(big, '');
    truncateSync(big, 64 * MiB + 1);
    t.equal(await codeOf(readBlobSource(big)), 'ERR_INVALID_ARGUMENT', 'larger than the limit: refused before reading');
    writeFileSync(path.join(dir, 'ok.conf'), 'conf');
    t.equal(Buffer.from(await readBlobSource(path.join(dir, 'ok.conf'))).toString(), 'conf');
    t.equal(await codeOf(readBlobSource(path.join(dir, 'ok.conf'), { maxSize: 3 })), 'ERR_INVALID_ARGUMENT');
    const fifo = path.join(dir, `lib-${++serial}.fifo`);
    nativeMknod(fifo, constants.S_IFIFO | 0o600, 0, 0);
    const wr = openSync(fifo, constants.O_RDWR | constants.O_NONBLOCK);
    t.teardown(() => closeSync(wr));
    const ac2 = new AbortController();
    setTimeout(() => ac2.abort(), 200);
    t.equal(await codeOf(readBlobSource(fifo, { signal: ac2.signal })), 'ERR_ABORTED', 'a FIFO whose writer never writes: abortable');

    // The walk's own reads: a .cairnignore that is a FIFO (nobody writes) or a huge file.
    const src = path.join(dir, `ignore-src-${++serial}`);
    mkdirSync(path.join(src, 'a'), { recursive: true });
    mkdirSync(path.join(src, 'b'));
    nativeMknod(path.join(src, 'a', '.cairnignore'), constants.S_IFIFO | 0o644, 0, 0);
    writeFileSync(path.join(src, 'b', '.cairnignore'), '');
    truncateSync(path.join(src, 'b', '.cairnignore'), 2 * MiB);
    writeFileSync(path.join(src, 'a', 'kept'), 'kept');
    const w2 = await ds.group('host/lib').backup();
    const walk = w2.addTree('root', src);
    const stats = await Promise.race([walk, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('the walk hangs')), 10_000))]);
    t.same(
      stats.problems.map((p) => `${p.path} ${p.code}`),
      ['a/.cairnignore ETYPE', 'b/.cairnignore ETYPE'],
      'both reported, neither read',
    );
    t.equal(stats.files, 2, 'the files are backed up (the huge ignore file as a file)');
    await w2.abort();
  });

  for (const kind of ['tree', 'img'] as const) {
    t.test(`a sparse file grown while it is backed up (${kind}) is read up to its size at open`, async (t) => {
      const src = path.join(dir, `grow-src-${++serial}`);
      mkdirSync(src);
      const file = path.join(src, 'grow.raw');
      writeFileSync(file, 'head');
      truncateSync(file, 32 * MiB);
      let size = 32 * MiB;
      let grower: NodeJS.Timeout | undefined;
      t.teardown(() => clearInterval(grower));
      const spec = kind === 'tree' ? `root.tree:${src}` : `disk.img:${file}`;
      const r = await cairnTimed(['--store', store, 'backup', `host/grow-${kind}`, spec], {
        timeoutMs: 20_000,
        // Once the backup has the file open, it grows by 1 GiB every 5 ms: far faster than it
        // can be read, so a reader that goes to the end never ends.
        during: (child) =>
          whenOpened(child, file, () => {
            grower = setInterval(() => {
              size += 1024 * MiB;
              truncateSync(file, size);
            }, 5);
            child.on('exit', () => clearInterval(grower));
          }),
      });
      clearInterval(grower);
      t.notOk(r.timedOut, `the backup ended (${r.ms} ms)`);
      t.ok(size > 32 * MiB, 'the file grew during the backup');
      const snaps = await archives(store, `host/grow-${kind}`);
      if (kind === 'tree') {
        t.equal(r.code, 7, `exit 7: committed, a source changed\n${r.out}${r.err}`);
        t.match(r.out, /warning: root\.tree: grow\.raw: CHANGED: changed while being read \(33554432 bytes at open, 33554432 read/, 'the change is reported');
        t.equal(snaps.length, 1, 'committed');
        t.equal(snaps[0]!.find((f) => f.name === 'root.tree')!.size, 32 * MiB, 'the payload holds the size seen at open');
      } else {
        // An image whose size changes while it is read is not an image of anything: a coded error.
        t.equal(r.code, 6, `exit 6 (ERR_IO)\n${r.out}${r.err}`);
        t.match(r.err, /ERR_IO: image source .*grow\.raw changed while it was read: its size changed \(33554432 bytes at open/);
        t.same(snaps, [], 'nothing committed');
      }
    });
  }

  t.test('/dev/zero: refused as an image without a size and as a blob; with --source-size it is read that far', async (t) => {
    const img = await cairnTimed(['--store', store, 'backup', 'host/zero', 'd.img:/dev/zero'], { timeoutMs: 15_000 });
    t.notOk(img.timedOut, `ended (${img.ms} ms)`);
    t.equal(img.code, 2, img.err);
    t.match(img.err, /ERR_INVALID_ARGUMENT: .*\/dev\/zero.*character device.*--source-size/);
    const blob = await cairnTimed(['--store', store, 'backup', 'host/zero', 'x.blob:/dev/zero'], { timeoutMs: 15_000 });
    t.notOk(blob.timedOut, `ended (${blob.ms} ms)`);
    t.equal(blob.code, 2, blob.err);
    t.match(blob.err, /ERR_INVALID_ARGUMENT: .*\/dev\/zero/);
    t.ok(blob.ms < 10_000, 'at once, not after reading gigabytes');
    const big = path.join(dir, 'too-big.conf');
    writeFileSync(big, '');
    truncateSync(big, 64 * MiB + 1);
    const tooBig = await cairnTimed(['--store', store, 'backup', 'host/zero', `x.blob:${big}`], { timeoutMs: 15_000 });
    t.equal(tooBig.code, 2, tooBig.err);
    t.match(tooBig.err, /67108865 bytes; the limit is 67108864/);
    t.same(await archives(store, 'host/zero'), [], 'nothing committed');

    const sized = await cairnTimed(['--store', store, 'backup', 'host/zero', 'd.img:/dev/zero', '--source-size', String(3 * MiB + 5)], { timeoutMs: 15_000 });
    t.equal(sized.code, 0, sized.err);
    const out = path.join(dir, 'zero.out');
    t.equal((await cairnTimed(['--store', store, 'restore', 'host/zero', 'd.img', out])).code, 0);
    t.same(readFileSync(out), Buffer.alloc(3 * MiB + 5), 'exactly the size given, all zeros');
  });

  t.test('an image from a pipe (cat file | cairn backup ... d.img:/dev/stdin), and from stdin as -', async (t) => {
    const data = randomBytes(5 * MiB + 123);
    const file = path.join(dir, 'piped.raw');
    writeFileSync(file, data);
    const r = await cairnTimed(['--store', store, 'backup', 'host/pipe', 'd.img:/dev/stdin'], { timeoutMs: 20_000, catFile: file });
    t.equal(r.code, 0, r.err);
    const out = path.join(dir, 'pipe.out');
    t.equal((await cairnTimed(['--store', store, 'restore', 'host/pipe', 'd.img', out])).code, 0);
    t.equal(sha(readFileSync(out)), sha(data), 'restores byte for byte');
    // Node's own stdin pipe is a socket, which /dev/stdin cannot reopen: '-' reads stdin itself.
    const dash2 = await cairnTimed(['--store', store, 'backup', 'host/pipe', 'e.img:-'], { timeoutMs: 20_000, input: Readable.from([data.subarray(0, MiB), data.subarray(MiB)]) });
    t.equal(dash2.code, 0, dash2.err);
    t.equal((await cairnTimed(['--store', store, 'restore', 'host/pipe', 'e.img', out + '2'])).code, 0);
    t.equal(sha(readFileSync(out + '2')), sha(data), 'restores byte for byte');
    const blob = await cairnTimed(['--store', store, 'backup', 'host/pipe', 'c.blob:/dev/stdin'], { timeoutMs: 20_000, catFile: file });
    t.equal(blob.code, 0, `a blob from a pipe: ${blob.err}`);
  });

  t.test('SIGTERM stops a backup that waits on a source, promptly, leaving nothing visible', async (t) => {
    const fifo = path.join(dir, 'never.fifo');
    nativeMknod(fifo, constants.S_IFIFO | 0o600, 0, 0);
    // A writer that holds the FIFO open and never writes: a reader waits for ever.
    const writer = openSync(fifo, constants.O_RDWR | constants.O_NONBLOCK);
    t.teardown(() => closeSync(writer));
    const cases: [string, string[]][] = [
      ['a blob from a FIFO that never ends', ['x.blob:' + fifo]],
      ['an image from a FIFO that never ends', ['d.img:' + fifo]],
      ['a 1 TiB image of /dev/zero', ['d.img:/dev/zero', '--source-size', String(2 ** 40)]],
    ];
    for (const [what, args] of cases) {
      let sentAt = 0;
      const r = await cairnTimed(['--store', store, 'backup', 'host/term', ...args], {
        timeoutMs: 20_000,
        during: (child) =>
          setTimeout(() => {
            sentAt = Date.now();
            child.kill('SIGTERM');
          }, 1500),
      });
      t.notOk(r.timedOut, `${what}: ended`);
      t.ok(sentAt > 0, `${what}: still running when SIGTERM came`);
      t.ok(Date.now() - sentAt < 5000, `${what}: ended within 5 s of SIGTERM`);
      t.equal(r.code, 143, `${what}: exit 143 (128 + SIGTERM)`);
      t.match(r.err, /^cairn: interrupted \(SIGTERM\)$/m, `${what}: says it was interrupted: ${r.err}`);
    }
    t.same(await archives(store, 'host/term'), [], 'no snapshot is visible');
    writeFileSync(path.join(dir, 'small.conf'), 'x');
    const again = await cairnTimed(['--store', store, 'backup', 'host/term', 'c.blob:' + path.join(dir, 'small.conf')], { timeoutMs: 15_000 });
    t.equal(again.code, 0, `the group is not left locked: ${again.err}`);
  });
}

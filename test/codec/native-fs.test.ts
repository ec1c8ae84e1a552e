import t from 'tap';
import { closeSync, constants, existsSync, lstatSync, openSync, readFileSync, statSync, symlinkSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { isCairnError } from '../../lib/errors.js';
import {
  nativeAddonPath,
  nativeAvailable,
  nativeGetXattr,
  nativeListXattrs,
  nativeMknod,
  nativeSeekData,
  nativeSeekHole,
  nativeSetXattr,
  nativeUtimes,
} from '../../lib/codec/native.js';
import {
  AT_EMPTY_PATH,
  AT_FDCWD,
  AT_REMOVEDIR,
  AT_SYMLINK_NOFOLLOW,
  O_PATH,
  RENAME_NOREPLACE,
  nativeDirentKind,
  nativeFchmod,
  nativeFchown,
  nativeFchownat,
  nativeFgetxattr,
  nativeFlistxattr,
  nativeFsetxattr,
  nativeFstat,
  nativeFstatat,
  nativeFutimens,
  nativeLinkat,
  nativeMkdirat,
  nativeMknodat,
  nativeOpenat,
  nativeReaddir,
  nativeReadlinkat,
  nativeRenameat,
  nativeSymlinkat,
  nativeUnlinkat,
  nativeUtimensat,
} from '../../lib/codec/native.js';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

interface Raw {
  listXattrs(path?: unknown): Buffer[];
  getXattr(path?: unknown, name?: unknown): Buffer;
  setXattr(path?: unknown, name?: unknown, value?: unknown): void;
  mknod(path?: unknown, mode?: unknown, major?: unknown, minor?: unknown): void;
  utimes(path?: unknown, atimeNs?: unknown, mtimeNs?: unknown): void;
  seekData(fd?: unknown, offset?: unknown): number;
  seekHole(fd?: unknown, offset?: unknown): number;
}

const { S_IFCHR, S_IFBLK, S_IFIFO, S_IFSOCK } = constants;

/** The xattr names of a file as sorted hex strings (the kernel's order is not a contract). */
const names = (bufs: readonly Buffer[]): string[] => bufs.map((b) => b.toString('hex')).sort();
const hex = (...names: (string | Buffer)[]): string[] => names.map((n) => Buffer.from(n).toString('hex')).sort();
/** Only the `user.*` names: the kernel may add `security.*` ones (SELinux) on its own. */
const userOnly = (bufs: readonly Buffer[]): Buffer[] => bufs.filter((b) => b.subarray(0, 5).toString('latin1') === 'user.');

/** glibc's major()/minor() on a 64-bit dev_t. */
const major = (dev: bigint): number => Number(((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn));
const minor = (dev: bigint): number => Number((dev & 0xffn) | ((dev >> 12n) & ~0xffn));

const syscallCodeOf = (e: unknown): string | undefined => (e as { details?: { syscallCode?: string } }).details?.syscallCode;

if (!nativeAvailable()) {
  t.fail('native addon not built: run `npm run build:native` first');
  t.end();
} else {
  const raw = createRequire(import.meta.url)(nativeAddonPath()) as Raw;
  const dir = t.testdir({});
  let serial = 0;
  /** A fresh empty regular file. */
  const file = (content = ''): string => {
    const p = join(dir, `f${++serial}`);
    writeFileSync(p, content);
    return p;
  };
  const fresh = (): string => join(dir, `n${++serial}`);

  t.test('xattr round trip: binary values and a non-UTF-8 name', async (t) => {
    const p = file();
    t.same(nativeListXattrs(p), [], 'no xattrs yet');
    const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const oddName = Buffer.concat([Buffer.from('user.'), Buffer.from([0xc3, 0x28, 0xff, 0x80, 0x41])]);
    const oddValue = Buffer.from([0, 0, 0xff, 0, 0xfe]);
    nativeSetXattr(p, 'user.bytes', all);
    nativeSetXattr(p, oddName, oddValue);
    nativeSetXattr(p, Buffer.from('user.empty'), new Uint8Array(0));
    nativeSetXattr(p, 'user.ünïcödé', new TextEncoder().encode('text'));

    const listed = nativeListXattrs(p);
    t.ok(
      listed.every((b) => Buffer.isBuffer(b)),
      'names are Buffers',
    );
    t.ok(
      listed.every((b) => !b.includes(0)),
      'names carry no NULs',
    );
    t.same(names(userOnly(listed)), hex('user.bytes', oddName, 'user.empty', 'user.ünïcödé'));

    t.same(nativeGetXattr(p, 'user.bytes'), all);
    t.same(nativeGetXattr(p, Buffer.from('user.bytes')), all, 'a name as bytes');
    t.same(nativeGetXattr(p, oddName), oddValue);
    const empty = nativeGetXattr(p, 'user.empty');
    t.ok(Buffer.isBuffer(empty));
    t.equal(empty.length, 0);
    t.equal(nativeGetXattr(p, 'user.ünïcödé').toString(), 'text', 'string names are UTF-8');

    // A view into a larger buffer is taken at its offset.
    const big = Buffer.from('xxxuser.sliceyyy');
    nativeSetXattr(p, big.subarray(3, 13), big.subarray(13));
    t.equal(nativeGetXattr(p, 'user.slice').toString(), 'yyy');
  });

  t.test('several xattrs, replace and grow', async (t) => {
    // ext4 keeps all xattrs of a file in the inode plus one block (4 KiB): stay well below that.
    const p = file('content');
    const want = new Map<string, Buffer>();
    for (let i = 0; i < 24; i++) {
      const v = Buffer.alloc(i * 5, i);
      nativeSetXattr(p, `user.k${i}`, v);
      want.set(`user.k${i}`, v);
    }
    t.same(names(userOnly(nativeListXattrs(p))), hex(...want.keys()));
    for (const [k, v] of want) t.same(nativeGetXattr(p, k), v, k);

    const grown = Buffer.alloc(1500, 0xab);
    nativeSetXattr(p, 'user.k1', grown);
    t.same(nativeGetXattr(p, 'user.k1'), grown, 'replaced by a longer value');
    nativeSetXattr(p, 'user.k1', Buffer.of(7));
    t.same(nativeGetXattr(p, 'user.k1'), Buffer.of(7), 'replaced by a shorter value');
    t.equal(userOnly(nativeListXattrs(p)).length, 24, 'replacing adds no name');
    t.equal(readFileSync(p, 'utf8'), 'content', 'the data is untouched');
  });

  t.test('xattr errors', async (t) => {
    const p = file();
    nativeSetXattr(p, 'user.there', Buffer.from('x'));
    t.throws(() => nativeGetXattr(p, 'user.missing'), {
      name: 'CairnError',
      code: 'ERR_IO',
      details: { syscallCode: 'ENODATA', path: p, xattr: 'user.missing' },
    });
    t.throws(() => raw.getXattr(p, 'user.missing'), {
      code: 'ENODATA',
      errno: -61,
      syscall: 'lgetxattr',
      message: /^ENODATA: no data available, lgetxattr$/,
    });
    const gone = join(dir, 'no-such-file');
    t.throws(() => nativeListXattrs(gone), { code: 'ERR_IO', details: { syscallCode: 'ENOENT', path: gone } });
    t.throws(() => nativeGetXattr(gone, 'user.x'), { code: 'ERR_IO', details: { syscallCode: 'ENOENT' } });
    t.throws(() => nativeSetXattr(gone, 'user.x', Buffer.of(1)), { code: 'ERR_IO', details: { syscallCode: 'ENOENT' } });
    t.throws(() => raw.listXattrs(gone), { code: 'ENOENT', syscall: 'llistxattr' });
    t.throws(() => nativeSetXattr(p, 'nonamespace', Buffer.of(1)), { code: 'ERR_IO', details: { syscallCode: 'ENOTSUP' } });
    t.throws(() => nativeSetXattr(p, 'user.big', Buffer.alloc(70 * 1024)), { code: 'ERR_IO' }, 'a value above XATTR_SIZE_MAX');
    t.same(names(userOnly(nativeListXattrs(p))), hex('user.there'), 'failed calls changed nothing');
    const inProc = nativeListXattrs('/proc/self/status');
    t.ok(Array.isArray(inProc), '/proc (no xattr support) lists without throwing');
  });

  t.test('a file whose name is not UTF-8 (Buffer path)', async (t) => {
    const p = Buffer.concat([Buffer.from(`${dir}/bad-`), Buffer.from([0xff, 0xfe, 0xc0, 0x80, 0x66])]);
    writeFileSync(p, 'raw name');
    t.notOk(existsSync(p.toString('utf8')), 'the lossy UTF-8 decoding names another file');
    nativeSetXattr(p, 'user.tag', Buffer.from([1, 2, 3]));
    t.same(names(userOnly(nativeListXattrs(p))), hex('user.tag'));
    t.same(nativeGetXattr(p, 'user.tag'), Buffer.from([1, 2, 3]));
    nativeUtimes(p, 111111111222222222n, 1234567890123456789n);
    const st = lstatSync(p, { bigint: true });
    t.equal(st.mtimeNs, 1234567890123456789n);
    t.equal(st.atimeNs, 111111111222222222n);
    const u8 = new Uint8Array(p); // a plain Uint8Array, not a Buffer
    t.same(nativeGetXattr(u8, 'user.tag'), Buffer.from([1, 2, 3]), 'a plain Uint8Array path');
    try {
      nativeGetXattr(p, 'user.none');
      t.fail('a missing xattr should throw');
    } catch (e) {
      t.ok(isCairnError(e, 'ERR_IO'));
      t.equal(syscallCodeOf(e), 'ENODATA');
    }
  });

  t.test('user.* xattrs on a symlink fail with EPERM and do not reach the target', async (t) => {
    const target = file('target');
    const link = fresh();
    symlinkSync(target, link);
    nativeSetXattr(target, 'user.on-target', Buffer.from('t'));
    t.throws(() => nativeSetXattr(link, 'user.x', Buffer.from('v')), {
      name: 'CairnError',
      code: 'ERR_IO',
      details: { syscallCode: 'EPERM', path: link, xattr: 'user.x' },
    });
    t.throws(() => raw.setXattr(link, 'user.x', Buffer.from('v')), { code: 'EPERM', errno: -1, syscall: 'lsetxattr' });
    t.same(names(userOnly(nativeListXattrs(target))), hex('user.on-target'), 'the target did not get user.x');
    t.same(userOnly(nativeListXattrs(link)), [], 'the link is listed itself, not its target');
    t.throws(() => nativeGetXattr(link, 'user.on-target'), { code: 'ERR_IO', details: { syscallCode: 'ENODATA' } }, 'get does not follow');

    // A dangling link: every call works on the link itself, never ENOENT from the missing target.
    const dangling = fresh();
    symlinkSync(join(dir, 'nowhere'), dangling);
    t.same(userOnly(nativeListXattrs(dangling)), []);
    t.throws(() => nativeSetXattr(dangling, 'user.x', Buffer.of(1)), { code: 'ERR_IO', details: { syscallCode: 'EPERM' } });
  });

  t.test('mknod: fifo, socket, character and block devices', async (t) => {
    const fifo = fresh();
    nativeMknod(fifo, S_IFIFO | 0o600, 0, 0);
    const fs = lstatSync(fifo);
    t.ok(fs.isFIFO());
    t.equal(fs.mode & 0o7777, 0o600);

    const sock = fresh();
    nativeMknod(Buffer.from(sock), S_IFSOCK | 0o600, 0, 0);
    t.ok(lstatSync(sock).isSocket());

    t.throws(() => nativeMknod(fifo, S_IFIFO | 0o600, 0, 0), { code: 'ERR_IO', details: { syscallCode: 'EEXIST', path: fifo } });
    t.throws(() => raw.mknod(fifo, S_IFIFO | 0o600, 0, 0), { code: 'EEXIST', syscall: 'mknod' });
    t.throws(() => nativeMknod(join(dir, 'no-dir', 'x'), S_IFIFO | 0o600, 0, 0), { code: 'ERR_IO', details: { syscallCode: 'ENOENT' } });

    t.test('devices (root only)', { skip: process.getuid?.() !== 0 ? 'mknod of devices needs root (CAP_MKNOD)' : false }, async (t) => {
      const nul = fresh();
      nativeMknod(nul, S_IFCHR | 0o600, 1, 3);
      const st = lstatSync(nul, { bigint: true });
      t.ok(st.isCharacterDevice());
      t.equal(major(st.rdev), 1);
      t.equal(minor(st.rdev), 3);
      t.same(st.rdev, lstatSync('/dev/null', { bigint: true }).rdev, 'same numbers as /dev/null');
      t.equal(Number(st.mode) & 0o7777, 0o600);

      const wide = fresh();
      nativeMknod(wide, S_IFCHR | 0o600, 4095, 0xfffff); // the largest numbers Linux encodes
      const ws = lstatSync(wide, { bigint: true });
      t.equal(major(ws.rdev), 4095);
      t.equal(minor(ws.rdev), 0xfffff);

      const blk = fresh();
      nativeMknod(blk, S_IFBLK | 0o600, 7, 130);
      const bs = lstatSync(blk, { bigint: true });
      t.ok(bs.isBlockDevice());
      t.equal(major(bs.rdev), 7);
      t.equal(minor(bs.rdev), 130);

      t.throws(() => nativeMknod(fresh(), S_IFCHR | 0o600, 4096, 0), { code: 'ERR_IO', details: { syscallCode: 'EINVAL' } });
    });
  });

  t.test('utimes: exact nanoseconds, no symlink following, times before 1970', async (t) => {
    const p = file('x');
    nativeUtimes(p, 987654321987654321n, 1234567890123456789n);
    let st = lstatSync(p, { bigint: true });
    t.equal(st.mtimeNs, 1234567890123456789n);
    t.equal(st.atimeNs, 987654321987654321n);

    nativeUtimes(p, 1n, 999999999n);
    st = lstatSync(p, { bigint: true });
    t.equal(st.atimeNs, 1n);
    t.equal(st.mtimeNs, 999999999n);

    for (const ns of [-1n, -999999999n, -1000000000n, -1234567890123456789n]) {
      nativeUtimes(p, ns, ns);
      st = lstatSync(p, { bigint: true });
      t.equal(st.mtimeNs, ns, `mtime ${ns}`);
      t.equal(st.atimeNs, ns, `atime ${ns}`);
    }

    const target = file('target');
    nativeUtimes(target, 500000000000000001n, 600000000000000003n);
    const link = fresh();
    symlinkSync(target, link);
    nativeUtimes(link, 700000000000000007n, 800000000000000009n);
    const ls = lstatSync(link, { bigint: true });
    t.ok(ls.isSymbolicLink());
    t.equal(ls.mtimeNs, 800000000000000009n, "the link's own mtime changed");
    t.equal(ls.atimeNs, 700000000000000007n);
    const ts = statSync(target, { bigint: true });
    t.equal(ts.mtimeNs, 600000000000000003n, "the target's mtime did not");
    t.equal(ts.atimeNs, 500000000000000001n);

    t.throws(() => nativeUtimes(join(dir, 'missing'), 0n, 0n), { code: 'ERR_IO', details: { syscallCode: 'ENOENT' } });
    t.throws(() => raw.utimes(join(dir, 'missing'), 0n, 0n), { code: 'ENOENT', syscall: 'utimensat' });
  });

  t.test('seekData / seekHole on a sparse file', async (t) => {
    const MiB = 1024 * 1024;
    const size = 8 * MiB;
    const p = file();
    truncateSync(p, size);
    const fd = openSync(p, 'r+');
    t.teardown(() => closeSync(fd));
    writeSync(fd, Buffer.alloc(8192, 0x5a), 0, 8192, 4 * MiB);
    t.equal(statSync(p).size, size);

    const data0 = nativeSeekData(fd, 0);
    const hole0 = nativeSeekHole(fd, 0);
    if (hole0 === size) {
      t.comment('this filesystem reports no holes');
      t.equal(data0, 0, 'all data');
      t.equal(nativeSeekHole(fd, 4 * MiB), size);
    } else {
      t.equal(hole0, 0, 'the file starts with a hole');
      t.ok(data0 > 0 && data0 <= 4 * MiB, `data starts at or before the write (${data0})`);
      t.equal(nativeSeekData(fd, 4 * MiB), 4 * MiB, 'inside the data region');
      const hole1 = nativeSeekHole(fd, data0);
      t.ok(hole1 >= 4 * MiB + 8192 && hole1 < size, `the data ends after the write (${hole1})`);
      t.equal(nativeSeekData(fd, hole1), -1, 'only a hole up to the end: -1 (ENXIO)');
      t.equal(nativeSeekHole(fd, hole1), hole1);
    }
    t.equal(nativeSeekData(fd, size), -1, 'at the end: -1');
    t.equal(nativeSeekData(fd, size + 12345), -1, 'past the end: -1');
    t.throws(() => nativeSeekHole(fd, size), { code: 'ERR_IO', details: { syscallCode: 'ENXIO', fd, offset: size } });
    t.throws(() => raw.seekHole(fd, size), { code: 'ENXIO', syscall: 'lseek' });

    const empty = openSync(file(), 'r');
    t.equal(nativeSeekData(empty, 0), -1, 'an empty file has no data');
    closeSync(empty);
    t.throws(() => nativeSeekData(empty, 0), { code: 'ERR_IO', details: { syscallCode: 'EBADF', fd: empty } });
    t.throws(() => nativeSeekHole(empty, 0), { code: 'ERR_IO', details: { syscallCode: 'EBADF' } });
  });

  t.test('bad arguments throw TypeError', async (t) => {
    const p = file();
    const fd = openSync(p, 'r');
    t.teardown(() => closeSync(fd));
    const v = Buffer.of(1);
    const bad: [string, () => unknown][] = [
      ['listXattrs()', () => raw.listXattrs()],
      ['listXattrs(1)', () => raw.listXattrs(1)],
      ['listXattrs({})', () => raw.listXattrs({})],
      ['listXattrs(["a"])', () => raw.listXattrs(['a'])],
      ['listXattrs(Uint16Array)', () => raw.listXattrs(new Uint16Array(2))],
      ['listXattrs(ArrayBuffer)', () => raw.listXattrs(new ArrayBuffer(2))],
      ['listXattrs("a\\0b")', () => raw.listXattrs(`${p}\0x`)],
      ['listXattrs(Buffer with NUL)', () => raw.listXattrs(Buffer.from(`${p}\0x`))],
      ['getXattr(p)', () => raw.getXattr(p)],
      ['getXattr(p, 5)', () => raw.getXattr(p, 5)],
      ['getXattr(p, "user.a\\0")', () => raw.getXattr(p, 'user.a\0')],
      ['getXattr(null, "user.a")', () => raw.getXattr(null, 'user.a')],
      ['setXattr(p, "user.a")', () => raw.setXattr(p, 'user.a')],
      ['setXattr(p, "user.a", "str")', () => raw.setXattr(p, 'user.a', 'str')],
      ['setXattr(p, "user.a", [1])', () => raw.setXattr(p, 'user.a', [1])],
      ['setXattr(p, "user.a", Int8Array)', () => raw.setXattr(p, 'user.a', new Int8Array(1))],
      ['setXattr(p, 1, v)', () => raw.setXattr(p, 1, v)],
      ['setXattr(1, "user.a", v)', () => raw.setXattr(1, 'user.a', v)],
      ['mknod(p, mode, 0)', () => raw.mknod(fresh(), S_IFIFO, 0)],
      ['mknod(p, -1, 0, 0)', () => raw.mknod(fresh(), -1, 0, 0)],
      ['mknod(p, 0x10000, 0, 0)', () => raw.mknod(fresh(), 0x10000, 0, 0)],
      ['mknod(p, 1.5, 0, 0)', () => raw.mknod(fresh(), 1.5, 0, 0)],
      ['mknod(p, "4480", 0, 0)', () => raw.mknod(fresh(), '4480', 0, 0)],
      ['mknod(p, mode, -1, 0)', () => raw.mknod(fresh(), S_IFIFO, -1, 0)],
      ['mknod(p, mode, 0, 2**32)', () => raw.mknod(fresh(), S_IFIFO, 0, 2 ** 32)],
      ['mknod(p, mode, 0n, 0)', () => raw.mknod(fresh(), S_IFIFO, 0n, 0)],
      ['mknod(1, mode, 0, 0)', () => raw.mknod(1, S_IFIFO, 0, 0)],
      ['utimes(p, 0n)', () => raw.utimes(p, 0n)],
      ['utimes(p, 0, 0)', () => raw.utimes(p, 0, 0)],
      ['utimes(p, 0n, 1.5)', () => raw.utimes(p, 0n, 1.5)],
      ['utimes(p, 2n**63n, 0n)', () => raw.utimes(p, 2n ** 63n, 0n)],
      ['utimes(p, 0n, -(2n**63n)-1n)', () => raw.utimes(p, 0n, -(2n ** 63n) - 1n)],
      ['utimes(p, "0", 0n)', () => raw.utimes(p, '0', 0n)],
      ['utimes(undefined, 0n, 0n)', () => raw.utimes(undefined, 0n, 0n)],
      ['seekData()', () => raw.seekData()],
      ['seekData(fd)', () => raw.seekData(fd)],
      ['seekData(-1, 0)', () => raw.seekData(-1, 0)],
      ['seekData("3", 0)', () => raw.seekData('3', 0)],
      ['seekData(fd, -1)', () => raw.seekData(fd, -1)],
      ['seekData(fd, 0.5)', () => raw.seekData(fd, 0.5)],
      ['seekData(fd, NaN)', () => raw.seekData(fd, Number.NaN)],
      ['seekData(fd, 2**53)', () => raw.seekData(fd, 2 ** 53)],
      ['seekData(fd, 0n)', () => raw.seekData(fd, 0n)],
      ['seekHole(fd, Infinity)', () => raw.seekHole(fd, Number.POSITIVE_INFINITY)],
      ['seekHole(1.5, 0)', () => raw.seekHole(1.5, 0)],
      ['nativeListXattrs(5)', () => nativeListXattrs(5 as unknown as string)],
      ['nativeListXattrs(null-prototype object)', () => nativeListXattrs(Object.create(null) as string)],
      ['nativeGetXattr(p, undefined)', () => nativeGetXattr(p, undefined as unknown as string)],
      ['nativeSetXattr(p, "user.a", "v")', () => nativeSetXattr(p, 'user.a', 'v' as unknown as Uint8Array)],
      ['nativeMknod(p, S_IFIFO, 0.5, 0)', () => nativeMknod(fresh(), S_IFIFO, 0.5, 0)],
      ['nativeUtimes(p, 1, 1)', () => nativeUtimes(p, 1 as unknown as bigint, 1 as unknown as bigint)],
      ['nativeSeekData(fd, -5)', () => nativeSeekData(fd, -5)],
      ['nativeSeekHole(-1, 0)', () => nativeSeekHole(-1, 0)],
    ];
    for (const [name, fn] of bad) t.throws(fn, TypeError, name);
    t.throws(() => raw.getXattr(p, 5), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE', message: 'getXattr: name must be a string or a Buffer/Uint8Array' });
    t.same(userOnly(nativeListXattrs(p)), [], 'nothing was set');
  });
}

t.test('a missing addon gives ERR_NATIVE', async (t) => {
  const createRequire = (): ((id: string) => unknown) => () => {
    throw new Error('Cannot find module cairn_native.node');
  };
  const mocked = await t.mockImport<typeof import('../../lib/codec/native.js')>('../../lib/codec/native.js', {
    'node:module': { createRequire },
  });
  const expected = { name: 'CairnError', code: 'ERR_NATIVE', message: /^cairn's native addon is not built and no prebuilt binary fits .*`npm rebuild cairn --foreground-scripts`/ };
  t.throws(() => mocked.nativeListXattrs('/'), expected);
  t.throws(() => mocked.nativeGetXattr('/', 'user.a'), expected);
  t.throws(() => mocked.nativeSetXattr('/', 'user.a', new Uint8Array(0)), expected);
  t.throws(() => mocked.nativeMknod('/x', S_IFIFO, 0, 0), expected);
  t.throws(() => mocked.nativeUtimes('/', 0n, 0n), expected);
  t.throws(() => mocked.nativeSeekData(0, 0), expected);
  t.throws(() => mocked.nativeSeekHole(0, 0), expected);
});

t.test('addon errors are converted with the path in the details', async (t) => {
  const sysErr = (code: string): Error => Object.assign(new Error(`${code}: boom`), { code });
  const fake = {
    listXattrs: () => {
      throw sysErr('EIO');
    },
    getXattr: () => {
      throw new Error('weird');
    },
    setXattr: () => {
      throw sysErr('EDQUOT');
    },
    mknod: () => {
      throw sysErr('EPERM');
    },
    utimes: () => {
      throw sysErr('EROFS');
    },
    seekData: () => {
      throw sysErr('EINVAL');
    },
    seekHole: () => {
      throw 'not an error';
    },
  };
  const mocked = await t.mockImport<typeof import('../../lib/codec/native.js')>('../../lib/codec/native.js', {
    'node:module': { createRequire: () => (id: string) => (id === 'node-gyp-build' ? { resolve: () => '/nowhere/cairn.node' } : fake) },
  });
  const bytes = Buffer.concat([Buffer.from('/tmp/a-'), Buffer.from([0xff])]);
  t.throws(() => mocked.nativeListXattrs(bytes), { code: 'ERR_IO', details: { syscallCode: 'EIO', path: '/tmp/a-\ufffd' } });
  t.throws(() => mocked.nativeGetXattr('/p', Buffer.from('user.n')), {
    code: 'ERR_NATIVE',
    message: 'lgetxattr /p user.n: weird',
    details: { path: '/p', xattr: 'user.n' },
  });
  t.throws(() => mocked.nativeSetXattr('/p', 'user.n', Buffer.of(1)), { code: 'ERR_IO', details: { syscallCode: 'EDQUOT', xattr: 'user.n' } });
  t.throws(() => mocked.nativeMknod('/p', S_IFCHR | 0o600, 1, 3), {
    code: 'ERR_IO',
    details: { syscallCode: 'EPERM', path: '/p', mode: S_IFCHR | 0o600, major: 1, minor: 3 },
  });
  t.throws(() => mocked.nativeUtimes('/p', 0n, 0n), { code: 'ERR_IO', message: 'utimensat /p: EROFS: boom', details: { syscallCode: 'EROFS' } });
  t.throws(() => mocked.nativeSeekData(3, 7), { code: 'ERR_IO', details: { syscallCode: 'EINVAL', fd: 3, offset: 7 } });
  t.throws(() => mocked.nativeSeekHole(3, 7), { code: 'ERR_NATIVE', message: 'lseek(SEEK_HOLE): not an error' });
});

// ---------------------------------------------------------------------------------------------
// Directory-fd calls (issue 12): trees of any depth, names that are not UTF-8, coded errors.

if (nativeAvailable()) {
  const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, O_DIRECTORY, O_NOFOLLOW, O_NONBLOCK } = constants;
  const atDir = t.testdir({});
  const codeOf = (fn: () => unknown): string | undefined => {
    try {
      fn();
    } catch (e) {
      if (!isCairnError(e, 'ERR_IO')) throw e;
      return e.details.syscallCode;
    }
    return undefined;
  };
  let n = 0;
  const freshDir = (): number => {
    const name = `at${++n}`;
    nativeMkdirat(AT_FDCWD, join(atDir, name), 0o755);
    return nativeOpenat(AT_FDCWD, join(atDir, name), O_RDONLY | O_DIRECTORY);
  };

  t.test('constants come from the addon', async (t) => {
    t.equal(AT_FDCWD, -100);
    t.equal(AT_SYMLINK_NOFOLLOW, 0x100);
    t.equal(AT_REMOVEDIR, 0x200);
    t.equal(AT_EMPTY_PATH, 0x1000);
    t.equal(O_PATH, 0o10000000);
    t.equal(RENAME_NOREPLACE, 1);
  });

  t.test('openat, fstat, fstatat on real files; errors carry the errno name', async (t) => {
    const d = freshDir();
    t.teardown(() => closeSync(d));
    const fd = nativeOpenat(d, 'f', O_WRONLY | O_CREAT | O_EXCL, 0o640);
    writeSync(fd, 'hello');
    const st = nativeFstat(fd);
    closeSync(fd);
    t.equal(st.kind, 'file');
    t.equal(st.size, 5);
    t.equal(st.mode & 0o7777, 0o640 & ~process.umask());
    t.equal(typeof st.mtimeNs, 'bigint');
    const byName = nativeFstatat(d, 'f', AT_SYMLINK_NOFOLLOW);
    t.equal(byName.ino, st.ino);
    t.equal(byName.dev, st.dev);
    t.equal(byName.mtimeNs, st.mtimeNs);
    t.equal(nativeFstatat(d, '', AT_EMPTY_PATH).kind, 'dir', 'AT_EMPTY_PATH stats the dirfd');

    t.equal(
      codeOf(() => nativeOpenat(d, 'f', O_WRONLY | O_CREAT | O_EXCL)),
      'EEXIST',
    );
    t.equal(
      codeOf(() => nativeOpenat(d, 'missing', O_RDONLY)),
      'ENOENT',
    );
    t.equal(
      codeOf(() => nativeFstatat(d, 'missing', 0)),
      'ENOENT',
    );
    t.equal(
      codeOf(() => nativeFstat(1_000_000)),
      'EBADF',
    );
    t.throws(() => nativeOpenat(d, 'missing', O_RDONLY), { code: 'ERR_IO', message: /^openat missing: ENOENT/, details: { path: 'missing', fd: d } });
    t.throws(() => nativeOpenat(-5, 'x', 0), TypeError, 'a negative fd other than AT_FDCWD');
    t.throws(() => nativeOpenat(d, 'a\0b', 0), TypeError, 'a NUL in the name');

    nativeSymlinkat('f', d, 'l');
    t.equal(nativeFstatat(d, 'l', AT_SYMLINK_NOFOLLOW).kind, 'symlink');
    t.equal(nativeFstatat(d, 'l', 0).kind, 'file', 'flags 0 follows');
    t.equal(
      codeOf(() => nativeOpenat(d, 'l', O_RDONLY | O_NOFOLLOW)),
      'ELOOP',
      'O_NOFOLLOW refuses the symlink',
    );
    t.equal(nativeReadlinkat(d, 'l').toString(), 'f');
    const p = nativeOpenat(d, 'l', O_PATH | O_NOFOLLOW);
    t.equal(nativeFstat(p).kind, 'symlink', 'O_PATH|O_NOFOLLOW holds the link itself');
    t.equal(nativeReadlinkat(p, '').toString(), 'f', 'readlinkat of an empty name reads the O_PATH link');
    closeSync(p);

    nativeMknodat(d, 'fifo', S_IFIFO | 0o600, 0, 0);
    t.equal(nativeFstatat(d, 'fifo', 0).kind, 'fifo');
    const start = Date.now();
    const ff = nativeOpenat(d, 'fifo', O_RDONLY | O_NONBLOCK | O_NOFOLLOW);
    t.ok(Date.now() - start < 1000, 'O_NONBLOCK opens a FIFO without a writer at once');
    t.equal(nativeFstat(ff).kind, 'fifo');
    closeSync(ff);
  });

  t.test('readdir: raw names, d_type, the caller fd stays usable', async (t) => {
    const d = freshDir();
    t.teardown(() => closeSync(d));
    const odd = Buffer.from([0x66, 0xff, 0xfe, 0x80]); // not UTF-8
    closeSync(nativeOpenat(d, odd, O_WRONLY | O_CREAT, 0o600));
    nativeMkdirat(d, 'sub', 0o700);
    nativeSymlinkat(Buffer.from([0xc3, 0x28]), d, 'link');
    const list = (fd: number): string[] =>
      nativeReaddir(fd)
        .map((e) => `${e.name.toString('hex')}:${nativeDirentKind(e.type)}`)
        .sort();
    const want = [`${odd.toString('hex')}:file`, `${Buffer.from('link').toString('hex')}:symlink`, `${Buffer.from('sub').toString('hex')}:dir`].sort();
    const kinds = nativeReaddir(d).map((e) => nativeDirentKind(e.type));
    if (kinds.includes('unknown')) t.comment('this filesystem gives DT_UNKNOWN');
    else t.same(list(d), want, 'names as raw bytes, with their types');
    t.same(
      nativeReaddir(d)
        .map((e) => e.name.toString('hex'))
        .sort(),
      want.map((w) => w.split(':')[0]).sort(),
      'read again from the start',
    );
    t.equal(nativeFstat(d).kind, 'dir', 'the dirfd is still open');
    t.ok(nativeReaddir(d).every((e) => Buffer.isBuffer(e.name)));
    t.same(nativeReadlinkat(d, 'link'), Buffer.from([0xc3, 0x28]), 'a non-UTF-8 symlink target, byte exact');
    t.equal(nativeFstatat(d, odd, AT_SYMLINK_NOFOLLOW).kind, 'file', 'a raw name reaches the file');

    const op = nativeOpenat(d, 'sub', O_PATH | O_DIRECTORY);
    t.same(nativeReaddir(op), [], 'an O_PATH dirfd can be listed; an empty directory');
    closeSync(op);
    const f = nativeOpenat(d, odd, O_RDONLY);
    t.equal(
      codeOf(() => nativeReaddir(f)),
      'ENOTDIR',
    );
    closeSync(f);
  });

  t.test('mkdirat, linkat, renameat (RENAME_NOREPLACE), unlinkat', async (t) => {
    const d = freshDir();
    t.teardown(() => closeSync(d));
    nativeMkdirat(d, 'a', 0o750);
    t.equal(
      codeOf(() => nativeMkdirat(d, 'a', 0o750)),
      'EEXIST',
    );
    const a = nativeOpenat(d, 'a', O_RDONLY | O_DIRECTORY);
    closeSync(nativeOpenat(a, 'x', O_WRONLY | O_CREAT, 0o600));
    nativeLinkat(a, 'x', d, 'hard', 0);
    t.equal(nativeFstatat(d, 'hard', 0).nlink, 2);
    t.equal(nativeFstatat(d, 'hard', 0).ino, nativeFstatat(a, 'x', 0).ino);
    t.equal(
      codeOf(() => nativeRenameat(d, 'hard', a, 'x', RENAME_NOREPLACE)),
      'EEXIST',
      'NOREPLACE keeps the target',
    );
    t.ok(existsSync(join(atDir, `at${n}`, 'hard')), 'and the source');
    nativeRenameat(d, 'hard', a, 'y', RENAME_NOREPLACE);
    t.equal(nativeFstatat(a, 'y', 0).nlink, 2);
    nativeUnlinkat(a, 'y');
    closeSync(nativeOpenat(a, 'z', O_WRONLY | O_CREAT, 0o600));
    const zIno = nativeFstatat(a, 'z', 0).ino;
    nativeRenameat(a, 'z', a, 'x');
    t.equal(nativeFstatat(a, 'x', 0).ino, zIno, 'plain renameat replaces');
    t.equal(
      codeOf(() => nativeFstatat(a, 'z', 0)),
      'ENOENT',
    );
    t.equal(
      codeOf(() => nativeUnlinkat(d, 'a', AT_REMOVEDIR)),
      'ENOTEMPTY',
    );
    t.equal(
      codeOf(() => nativeUnlinkat(d, 'a', 0)),
      'EISDIR',
    );
    nativeUnlinkat(a, 'x');
    closeSync(a);
    nativeUnlinkat(d, 'a', AT_REMOVEDIR);
    t.same(nativeReaddir(d), []);
    t.equal(
      codeOf(() => nativeUnlinkat(d, 'a', 0)),
      'ENOENT',
    );
  });

  t.test('ownership, times, mode and xattrs through fds and dirfds', async (t) => {
    const d = freshDir();
    t.teardown(() => closeSync(d));
    const fd = nativeOpenat(d, 'f', O_WRONLY | O_CREAT, 0o600);
    nativeFchmod(fd, 0o4751);
    t.equal(nativeFstat(fd).mode & 0o7777, 0o4751);
    nativeFchown(fd, 65534, 65534);
    t.equal(nativeFstat(fd).uid, 65534);
    nativeFchownat(d, 'f', 1234, 5678, AT_SYMLINK_NOFOLLOW);
    t.equal(nativeFstat(fd).gid, 5678);
    nativeFutimens(fd, 1_000_000_001n, -123_456_789_012n);
    t.equal(nativeFstat(fd).atimeNs, 1_000_000_001n);
    t.equal(nativeFstat(fd).mtimeNs, -123_456_789_012n, 'times before 1970, nanosecond exact');
    nativeSymlinkat('f', d, 'l');
    nativeUtimensat(d, 'l', 5n, 1_700_000_000_123_456_789n, AT_SYMLINK_NOFOLLOW);
    t.equal(lstatSync(join(atDir, `at${n}`, 'l'), { bigint: true }).mtimeNs, 1_700_000_000_123_456_789n, 'the link itself');
    t.equal(nativeFstat(fd).mtimeNs, -123_456_789_012n, 'not its target');
    t.throws(() => nativeFutimens(fd, 1 as unknown as bigint, 0n), TypeError);

    const name = Buffer.concat([Buffer.from('user.'), Buffer.from([0xff, 0x01])]);
    nativeFsetxattr(fd, name, Buffer.from([0, 1, 2]));
    nativeFsetxattr(fd, 'user.e', new Uint8Array(0));
    t.same(names(userOnly(nativeFlistxattr(fd))), hex(name, 'user.e'));
    t.same(nativeFgetxattr(fd, name), Buffer.from([0, 1, 2]));
    t.equal(nativeFgetxattr(fd, 'user.e').length, 0);
    t.equal(
      codeOf(() => nativeFgetxattr(fd, 'user.none')),
      'ENODATA',
    );
    const p = nativeOpenat(d, 'f', O_PATH);
    t.equal(
      codeOf(() => nativeFlistxattr(p)),
      'EBADF',
      'O_PATH descriptors cannot read xattrs',
    );
    closeSync(p);
    closeSync(fd);
    t.equal(
      codeOf(() => nativeFchmod(fd, 0o600)),
      'EBADF',
    );
    t.equal(
      codeOf(() => nativeFsetxattr(fd, 'user.x', Buffer.of(1))),
      'EBADF',
    );
  });

  t.test('a tree 5,000+ bytes deep, reached only through dirfds', async (t) => {
    const root = freshDir();
    const seg = Buffer.alloc(200, 0x61);
    seg[0] = 0xff; // not UTF-8 either
    const fds = [root];
    for (let i = 0; i < 26; i++) {
      const top = fds[fds.length - 1]!;
      nativeMkdirat(top, seg, 0o755);
      fds.push(nativeOpenat(top, seg, O_RDONLY | O_DIRECTORY | O_NOFOLLOW));
    }
    t.teardown(() => fds.forEach((fd) => closeSync(fd)));
    const bottom = fds[fds.length - 1]!;
    const f = nativeOpenat(bottom, 'leaf', O_WRONLY | O_CREAT, 0o644);
    writeSync(f, 'deep');
    closeSync(f);
    const depth = 26 * 201 + 'leaf'.length;
    t.ok(depth > 5000, `the leaf is ${depth} bytes below the root`);
    const abs = Buffer.concat([Buffer.from(join(atDir, `at${n}`)), ...Array.from({ length: 26 }, () => Buffer.concat([Buffer.from('/'), seg])), Buffer.from('/leaf')]);
    t.throws(() => statSync(abs), { code: 'ENAMETOOLONG' }, 'the absolute path is beyond PATH_MAX');
    t.equal(nativeFstatat(bottom, 'leaf', 0).size, 4);
    // Walk down again from the root with readdir only.
    let cur = root;
    const opened: number[] = [];
    for (let i = 0; i < 26; i++) {
      const ents = nativeReaddir(cur);
      t.equal(ents.length, 1);
      cur = nativeOpenat(cur, ents[0]!.name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
      opened.push(cur);
    }
    t.same(
      nativeReaddir(cur).map((e) => e.name.toString()),
      ['leaf'],
    );
    const r = nativeOpenat(cur, 'leaf', O_RDONLY);
    t.equal(readFileSync(r, 'utf8'), 'deep');
    closeSync(r);
    opened.forEach((fd) => closeSync(fd));
    // And remove it bottom-up.
    nativeUnlinkat(bottom, 'leaf');
    for (let i = 26; i > 0; i--) nativeUnlinkat(fds[i - 1]!, seg, AT_REMOVEDIR);
    t.same(nativeReaddir(root), []);
  });

  t.test('the fault-injection helper sees the mutating native calls', async (t) => {
    const repo = fileURLToPath(new URL('../../', import.meta.url));
    const dist = join(repo, 'dist', 'codec', 'native.js');
    if (!existsSync(dist)) {
      t.fail('dist is not built: run npm run build:ts');
      return;
    }
    const d = join(atDir, `fault${++n}`);
    const script = `
      import * as n from ${JSON.stringify(dist)};
      const d = n.nativeOpenat(n.AT_FDCWD, ${JSON.stringify(atDir)}, ${O_RDONLY | O_DIRECTORY});
      n.nativeFstatat(d, '.', 0);
      try { n.nativeMkdirat(d, ${JSON.stringify(`fault${n}`)}, 0o755); console.log('ok'); }
      catch (e) { console.log(e.code, e.details.syscallCode); }
    `;
    const env = { ...process.env };
    delete env['NODE_OPTIONS'];
    const log = join(atDir, `count${n}.log`);
    const fault = join(repo, 'test', 'helpers', 'fault-fs.mjs');
    const run = (plan: object) =>
      spawnSync(process.execPath, ['--import', fault, '--input-type=module', '-e', script], {
        env: { ...env, CAIRN_FAULT_PLAN: JSON.stringify(plan) },
        encoding: 'utf8',
      });
    const counted = run({ mode: 'count', log });
    t.equal(counted.stdout.trim(), 'ok', counted.stderr);
    t.match(readFileSync(log, 'utf8'), /^1 native\.mkdirat fault\d+$/m, 'counted, named; the read-only opens are not');
    t.ok(existsSync(d));
    const failed = run({ mode: 'fail', at: 1, errno: 'ENOSPC' });
    t.equal(failed.stdout.trim(), 'ERR_IO ENOSPC', 'the injected fault becomes a coded error');
  });
}

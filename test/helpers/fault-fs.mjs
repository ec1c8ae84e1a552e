/**
 * A fault-injecting file system layer for a child process: `node --import <this file> ...` with
 * `CAIRN_FAULT_PLAN` set to JSON `{ "mode": ..., "at": n, "errno": "ENOSPC", "log": "<file>" }`.
 *
 * Every call of the main thread that changes the file system is counted — opens for writing,
 * writes, fsyncs, renames, mkdirs, unlinks, rmdirs, truncates, utimes, links, symlinks, chmods,
 * chowns, copies — in the sync, callback and promise APIs of `node:fs` and on `FileHandle`s (named
 * ESM imports of `node:fs` are updated with `syncBuiltinESMExports`). Worker threads only read and
 * are left alone. At call number `at`:
 *
 * - `fail`: the call fails with `errno` (ENOSPC, EIO, EACCES, ...), as the OS would report it;
 * - `short`: a write writes only half of what it was asked (the call succeeds with the short count);
 *   for any other call this is `fail` with EIO;
 * - `delay`: the call waits `delayMs` (default 200) first;
 * - `kill`: the process kills itself with SIGKILL before the call;
 * - `count`: nothing is injected; at exit the calls are written to `log`, one per line
 *   (`<n> <call> <path>`), so that a test can pick the sites.
 *
 * The native addon's calls that change the file system (`openat` for writing, `mkdirat`,
 * `renameat`, `unlinkat`, `fsetxattr`, ...; see `NATIVE` below) are counted in the same sequence,
 * logged as `native.<name>`: `lib/codec/native.ts` passes its binding through the function this
 * file puts at `globalThis[Symbol.for('cairn.native.wrapBinding')]` when it first loads it.
 */
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import os from 'node:os';
import { isMainThread } from 'node:worker_threads';

const plan = process.env.CAIRN_FAULT_PLAN ? JSON.parse(process.env.CAIRN_FAULT_PLAN) : null;
if (plan !== null && isMainThread) await install(plan);

async function install(plan) {
  const C = fs.constants;
  const WRITE = C.O_WRONLY | C.O_RDWR | C.O_CREAT | C.O_TRUNC | C.O_APPEND;
  const writes = (flags) => (typeof flags === 'string' ? /[wa+]/.test(flags) : typeof flags === 'number' ? (flags & WRITE) !== 0 : false);
  const origWriteFileSync = fs.writeFileSync;
  const seen = [];
  let n = 0;
  const fds = new Map(); // fd -> path, to name fd calls in the log

  /** Counts a call; returns what to do: undefined (go on), 'fail', 'short' or 'delay'. */
  function hit(call, target) {
    n++;
    if (plan.mode === 'count') {
      seen.push(`${n} ${call} ${typeof target === 'number' ? (fds.get(target) ?? `fd${target}`) : String(target)}`);
      return undefined;
    }
    if (n !== plan.at) return undefined;
    if (plan.mode === 'kill') process.kill(process.pid, 'SIGKILL');
    return plan.mode;
  }
  function fault(call, target, errno = plan.errno ?? 'EIO') {
    const e = new Error(`${errno}: injected fault, ${call} '${target}'`);
    e.code = errno;
    e.errno = -(os.constants.errno[errno] ?? 5);
    e.syscall = call;
    if (typeof target === 'string') e.path = target;
    return e;
  }
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const halve = (len) => Math.max(1, Math.floor(len / 2));

  // Which argument decides whether a call mutates, and which names its target.
  const OPEN = new Set(['open', 'openSync']);
  const mutating = (name, args) => (OPEN.has(name) ? writes(args[1]) : true);

  // ---- sync ----
  const SYNC = [
    'openSync',
    'writeSync',
    'writevSync',
    'writeFileSync',
    'appendFileSync',
    'renameSync',
    'mkdirSync',
    'unlinkSync',
    'rmdirSync',
    'rmSync',
    'fsyncSync',
    'fdatasyncSync',
    'ftruncateSync',
    'truncateSync',
    'utimesSync',
    'futimesSync',
    'lutimesSync',
    'linkSync',
    'symlinkSync',
    'chmodSync',
    'fchmodSync',
    'chownSync',
    'fchownSync',
    'lchownSync',
    'copyFileSync',
  ];
  for (const name of SYNC) {
    const orig = fs[name];
    if (typeof orig !== 'function') continue;
    fs[name] = function (...args) {
      if (!mutating(name, args)) {
        const r = orig.apply(this, args);
        if (name === 'openSync') fds.set(r, String(args[0]));
        return r;
      }
      const act = hit(name, args[0]);
      if (act === 'fail') throw fault(name, args[0]);
      if (act === 'short') {
        if (name !== 'writeSync' || typeof args[1] === 'string') throw fault(name, args[0], 'EIO');
        const [fd, buf, off = 0, len = buf.byteLength - off, pos] = args;
        return orig.call(this, fd, buf, off, halve(len), pos);
      }
      const r = orig.apply(this, args);
      if (name === 'openSync') fds.set(r, String(args[0]));
      return r;
    };
  }

  // ---- callbacks ----
  const CB = [
    'open',
    'write',
    'writev',
    'writeFile',
    'appendFile',
    'rename',
    'mkdir',
    'unlink',
    'rmdir',
    'rm',
    'fsync',
    'fdatasync',
    'ftruncate',
    'truncate',
    'utimes',
    'futimes',
    'lutimes',
    'link',
    'symlink',
    'chmod',
    'fchmod',
    'chown',
    'fchown',
    'lchown',
    'copyFile',
  ];
  for (const name of CB) {
    const orig = fs[name];
    if (typeof orig !== 'function') continue;
    fs[name] = function (...args) {
      const cb = args[args.length - 1];
      if (typeof cb !== 'function' || !mutating(name, args)) return orig.apply(this, args);
      const act = hit(name, args[0]);
      if (act === 'fail' || (act === 'short' && name !== 'write')) {
        process.nextTick(cb, fault(name, args[0], act === 'short' ? 'EIO' : undefined));
        return undefined;
      }
      if (act === 'short' && typeof args[1] !== 'string') {
        const [fd, buf, off, len, pos] = args;
        if (typeof off === 'number') return orig.call(this, fd, buf, off, halve(len ?? buf.byteLength - off), pos ?? null, cb);
        return orig.call(this, fd, buf, 0, halve(buf.byteLength), null, cb);
      }
      if (act === 'delay') {
        setTimeout(() => orig.apply(this, args), plan.delayMs ?? 200);
        return undefined;
      }
      return orig.apply(this, args);
    };
  }

  // ---- promises ----
  const P = fs.promises;
  const PROM = [
    'open',
    'writeFile',
    'appendFile',
    'rename',
    'mkdir',
    'unlink',
    'rmdir',
    'rm',
    'truncate',
    'utimes',
    'lutimes',
    'link',
    'symlink',
    'chmod',
    'chown',
    'lchown',
    'copyFile',
  ];
  for (const name of PROM) {
    const orig = P[name];
    if (typeof orig !== 'function') continue;
    P[name] = async function (...args) {
      if (!mutating(name, args)) {
        const r = await orig.apply(this, args);
        if (name === 'open') fds.set(r.fd, String(args[0]));
        return r;
      }
      const act = hit(`promises.${name}`, args[0]);
      if (act === 'fail' || act === 'short') throw fault(name, args[0], act === 'short' ? 'EIO' : undefined);
      if (act === 'delay') await sleep(plan.delayMs ?? 200);
      const r = await orig.apply(this, args);
      if (name === 'open') fds.set(r.fd, String(args[0]));
      return r;
    };
  }

  // ---- FileHandle ----
  const probe = await P.open(os.devNull, 'r');
  const FH = Object.getPrototypeOf(probe);
  await probe.close();
  const FHM = ['write', 'writev', 'writeFile', 'appendFile', 'sync', 'datasync', 'truncate', 'chmod', 'chown', 'utimes'];
  for (const name of FHM) {
    const orig = FH[name];
    if (typeof orig !== 'function') continue;
    FH[name] = async function (...args) {
      const act = hit(`handle.${name}`, this.fd);
      if (act === 'fail') throw fault(name, fds.get(this.fd) ?? this.fd);
      if (act === 'delay') await sleep(plan.delayMs ?? 200);
      if (act === 'short') {
        if (name === 'write' && typeof args[0] !== 'string') {
          const [buf, a1, a2, a3] = args;
          if (a1 !== null && typeof a1 === 'object') return orig.call(this, buf, { ...a1, length: halve(a1.length ?? buf.byteLength - (a1.offset ?? 0)) });
          const off = a1 ?? 0;
          return orig.call(this, buf, off, halve(a2 ?? buf.byteLength - off), a3);
        }
        if (name === 'writev' && args[0].length > 0) {
          const first = args[0][0];
          return orig.call(this, [first.subarray(0, halve(first.byteLength))], args[1]);
        }
        throw fault(name, fds.get(this.fd) ?? this.fd, 'EIO');
      }
      return orig.apply(this, args);
    };
  }

  // ---- native addon (lib/codec/native.ts loads it through this hook) ----
  // name -> [index of the argument that names the target, whether the call mutates for these args]
  const NATIVE = {
    openat: [1, (a) => writes(a[2])],
    mkdirat: [1],
    symlinkat: [2],
    linkat: [3],
    mknodat: [1],
    unlinkat: [1],
    renameat: [3],
    fchownat: [1],
    utimensat: [1],
    futimens: [0],
    fchmod: [0],
    fchown: [0],
    fsetxattr: [0],
    setXattr: [0],
    mknod: [0],
    utimes: [0],
  };
  const label = (v) => (typeof v === 'number' ? v : Buffer.isBuffer(v) || v instanceof Uint8Array ? Buffer.from(v).toString('utf8') : String(v));
  globalThis[Symbol.for('cairn.native.wrapBinding')] = (raw) => {
    const wrapped = { ...raw }; // the addon's own properties are read-only
    for (const [name, [at, when]] of Object.entries(NATIVE)) {
      const orig = raw[name];
      if (typeof orig !== 'function') continue;
      wrapped[name] = function (...args) {
        if (when !== undefined && !when(args)) return orig.apply(raw, args);
        const target = label(args[at]);
        const act = hit(`native.${name}`, target);
        if (act === 'fail' || act === 'short') throw fault(name, target, act === 'short' ? 'EIO' : undefined);
        const r = orig.apply(raw, args);
        if (name === 'openat') fds.set(r, String(target));
        return r;
      };
    }
    return wrapped;
  };

  syncBuiltinESMExports();
  if (plan.mode === 'count' && plan.log) process.on('exit', () => origWriteFileSync(plan.log, seen.join('\n') + '\n'));
}

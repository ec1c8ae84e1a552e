// Test helper, run as a child process (a process must not read a FUSE mount it serves):
//   node fs-walk.mjs walk <dir>                   -> JSON: every entry's metadata, content digest, xattrs
//   node fs-walk.mjs reads <file> <json ranges>   -> JSON: sha256 of each [offset, length] read
//   node fs-walk.mjs try-writes <dir> <file>      -> JSON: the error code of every mutating call
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const native = await import(path.join(path.dirname(fileURLToPath(import.meta.url)), '../../dist/codec/native.js'));
const [, , cmd, a, b] = process.argv;
const sha = (buf) => createHash('sha256').update(buf).digest('hex');

function xattrs(p) {
  try {
    const out = {};
    for (const n of native
      .nativeListXattrs(p)
      .map((x) => x.toString('utf8'))
      .sort())
      out[n] = native.nativeGetXattr(p, n).toString('hex');
    return out;
  } catch (e) {
    return { error: e.details?.syscallCode ?? e.code };
  }
}

function walk(root) {
  const out = {};
  const byIno = new Map();
  const visit = (rel) => {
    const p = path.join(root, rel);
    const st = fs.lstatSync(p);
    const type = st.isDirectory()
      ? 'dir'
      : st.isFile()
        ? 'file'
        : st.isSymbolicLink()
          ? 'symlink'
          : st.isFIFO()
            ? 'fifo'
            : st.isSocket()
              ? 'socket'
              : st.isCharacterDevice()
                ? 'chardev'
                : 'blockdev';
    const e = { type, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtimeMs: Math.floor(st.mtimeMs) };
    if (type === 'file') {
      e.size = st.size;
      e.sha = sha(fs.readFileSync(p));
      const first = byIno.get(st.ino);
      if (first === undefined) byIno.set(st.ino, rel);
      else e.sameInodeAs = first;
    }
    if (type === 'symlink') e.target = fs.readlinkSync(p);
    if (type === 'chardev' || type === 'blockdev') e.rdev = st.rdev;
    if (type !== 'symlink') e.xattrs = xattrs(p);
    out[rel] = e;
    if (type === 'dir') for (const n of fs.readdirSync(p).sort()) visit(rel === '' ? n : `${rel}/${n}`);
  };
  visit('');
  return out;
}

function reads(file, ranges) {
  const fd = fs.openSync(file, 'r');
  try {
    return ranges.map(([off, len]) => {
      const buf = Buffer.alloc(len);
      let n = 0;
      for (;;) {
        const r = fs.readSync(fd, buf, n, len - n, off + n);
        if (r === 0) break;
        n += r;
        if (n === len) break;
      }
      return { n, sha: sha(buf.subarray(0, n)) };
    });
  } catch (e) {
    return { error: e.code };
  } finally {
    fs.closeSync(fd);
  }
}

function tryWrites(dir, file) {
  const attempt = (fn) => {
    try {
      fn();
      return 'ok';
    } catch (e) {
      return e.details?.syscallCode ?? e.code ?? String(e);
    }
  };
  return {
    openWrite: attempt(() => fs.closeSync(fs.openSync(file, 'r+'))),
    create: attempt(() => fs.writeFileSync(path.join(dir, 'new-file'), 'x')),
    unlink: attempt(() => fs.unlinkSync(file)),
    mkdir: attempt(() => fs.mkdirSync(path.join(dir, 'new-dir'))),
    rmdir: attempt(() => fs.rmdirSync(dir)),
    rename: attempt(() => fs.renameSync(file, `${file}.renamed`)),
    chmod: attempt(() => fs.chmodSync(file, 0o600)),
    chown: attempt(() => fs.chownSync(file, 1, 1)),
    utimes: attempt(() => fs.utimesSync(file, 1, 1)),
    truncate: attempt(() => fs.truncateSync(file, 0)),
    symlink: attempt(() => fs.symlinkSync('x', path.join(dir, 'new-link'))),
    link: attempt(() => fs.linkSync(file, path.join(dir, 'new-hardlink'))),
    setxattr: attempt(() => native.nativeSetXattr(file, 'user.x', Buffer.from('y'))),
    mknod: attempt(() => native.nativeMknod(path.join(dir, 'new-fifo'), 0o010644, 0, 0)),
  };
}

const result = cmd === 'walk' ? walk(a) : cmd === 'reads' ? reads(a, JSON.parse(b)) : cmd === 'try-writes' ? tryWrites(a, b) : { error: `unknown command ${cmd}` };
process.stdout.write(JSON.stringify(result));

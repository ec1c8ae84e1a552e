/**
 * Helpers of the FUSE abuse tests (test/hardening/fuse-abuse-*.test.ts): mounts made by `cairn mount
 * --daemon` (unmounted in a teardown), probes run in child processes (as another user when asked),
 * never in the process of the test.
 */
import type { Test } from 'tap';
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync } from 'node:fs';
import { cairn } from '../cli/run-cli.js';
import { tempDir } from './fixtures.js';

/** uid and gid of the second, unprivileged user. */
export const NOBODY = 65534;

/** sha256 of bytes, hex. */
export const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** Whether this process can make FUSE mounts (root and /dev/fuse). */
export const canMount = process.getuid?.() === 0 && existsSync('/dev/fuse');

/** A temporary directory every user can traverse (mkdtemp makes 0700 ones). */
export function openDir(t: Test, prefix: string): string {
  const dir = tempDir(t, prefix);
  chmodSync(dir, 0o755);
  return dir;
}

/** Mounts with the CLI as a daemon; unmounted in a teardown. */
export async function mountCli(t: Test, args: string[], mnt: string): Promise<void> {
  mkdirSync(mnt, { recursive: true });
  const m = await cairn([...args, '--daemon']);
  t.equal(m.code, 0, `cairn ${args.join(' ')}: mounted`, { stderr: m.err });
  if (m.code !== 0) throw new Error(`mount failed: ${m.err}`);
  t.teardown(async () => {
    await cairn(['umount', mnt]);
  });
}

/** Runs a CommonJS script in a child process (as `uid`/`uid`), returns its JSON output. */
export function probe<T>(script: string, args: string[], uid = 0): T {
  const r = spawnSync(process.execPath, ['-e', script, ...args], {
    encoding: 'utf8',
    timeout: 60_000,
    cwd: '/',
    uid,
    gid: uid,
    env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin' },
  });
  if (r.status !== 0) throw new Error(`probe exited ${r.status}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

/**
 * A probe script: each argument is `read:<path>`, `list:<path>`, `stat:<path>` or `writable:<path>`
 * (access W_OK); the JSON result maps each to the sha256 read, the sorted names, {mode, uid, gid},
 * 'yes', or the error code.
 */
export const ACCESS = `
const fs = require('fs'); const crypto = require('crypto'); const out = {};
for (const a of process.argv.slice(1)) {
  const [op, p] = [a.slice(0, a.indexOf(':')), a.slice(a.indexOf(':') + 1)];
  try {
    if (op === 'read') out[a] = crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex');
    else if (op === 'list') out[a] = fs.readdirSync(p).sort();
    else if (op === 'stat') { const s = fs.statSync(p); out[a] = { mode: s.mode & 0o7777, uid: s.uid, gid: s.gid }; }
    else if (op === 'writable') { fs.accessSync(p, fs.constants.W_OK); out[a] = 'yes'; }
  } catch (e) { out[a] = e.code; }
}
process.stdout.write(JSON.stringify(out));`;

/** A child process that holds a file open and reads from it on request (one line per command). */
export class Holder {
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

  /** Sends one command (`read <offset> <length>`, `close`) and resolves with the answer line. */
  send(cmd: string): Promise<string> {
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      this.child.stdin.write(`${cmd}\n`);
    });
  }

  /** Ends the child. */
  end(): void {
    this.child.stdin.end();
    this.child.kill();
  }
}

/**
 * Runs the built command line in a child process with a time limit, optionally as another user,
 * with bytes or a stream on stdin, and with a callback that sees the child while it runs (to race
 * it, or to signal it). The child is SIGKILLed at the limit; `timedOut` then says so.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Readable } from 'node:stream';
import { CLI } from '../cli/run-cli.js';

export interface TimedRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  out: string;
  err: string;
  ms: number;
  timedOut: boolean;
}

export interface TimedOptions {
  /** Kill the child after this many milliseconds (default 30 s). */
  readonly timeoutMs?: number;
  /** Run as this user and group (e.g. 65534, `nobody`). */
  readonly uid?: number;
  readonly gid?: number;
  /** Bytes or a stream for stdin (default: none, stdin is /dev/null). */
  readonly input?: Uint8Array | Readable;
  /**
   * Working directory. The test runner's process tracking, which it adds to every child spawned,
   * writes `.tap/` there at exit: give another user a directory it can write.
   */
  readonly cwd?: string;
  /** Feed this file through a real pipe, as `cat file | cairn ...` does (not a socket, as Node's `pipe` stdio is). */
  readonly catFile?: string;
  /** Extra environment. */
  readonly env?: Record<string, string>;
  /** Called once the child is spawned. */
  readonly during?: (child: ChildProcess) => void;
}

/**
 * The command line under test: `dist/cli/main.js`, or `CAIRN_TEST_CLI` (to run a suite against
 * another build, e.g. the code before a fix, and see it fail).
 */
const cli = process.env['CAIRN_TEST_CLI'] ?? CLI;

/** Runs `node dist/cli/main.js ...args`. */
export function cairnTimed(args: string[], o: TimedOptions = {}): Promise<TimedRun> {
  const env: Record<string, string | undefined> = { ...process.env, ...o.env };
  delete env['CAIRN_STORE'];
  delete env['NODE_OPTIONS'];
  if (o.cwd !== undefined && env['_TAPJS_PROCESSINFO_CWD_'] !== undefined) env['_TAPJS_PROCESSINFO_CWD_'] = o.cwd;
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const [cmd, argv] = o.catFile === undefined ? [process.execPath, [cli, ...args]] : ['/bin/sh', ['-c', 'cat "$0" | exec "$@"', o.catFile, process.execPath, cli, ...args]];
    const child = spawn(cmd, argv, {
      env,
      ...(o.cwd === undefined ? {} : { cwd: o.cwd }),
      stdio: [o.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      ...(o.uid === undefined ? {} : { uid: o.uid }),
      ...(o.gid === undefined ? {} : { gid: o.gid }),
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, o.timeoutMs ?? 30_000);
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => err.push(b));
    if (o.input !== undefined) {
      child.stdin!.on('error', () => undefined); // EPIPE when the child stops reading
      if (o.input instanceof Uint8Array) child.stdin!.end(o.input);
      else o.input.pipe(child.stdin!);
    }
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, out: Buffer.concat(out).toString('utf8'), err: Buffer.concat(err).toString('utf8'), ms: Date.now() - t0, timedOut });
    });
    o.during?.(child);
  });
}

/** Runs the command line with a soft descriptor limit (`ulimit -n`) in a shell (`CAIRN_TEST_CLI` picks another build). */
export function cairnLimited(limit: number, args: string[]): Promise<{ code: number | null; out: string }> {
  const env: Record<string, string | undefined> = { ...process.env };
  delete env['CAIRN_STORE'];
  delete env['NODE_OPTIONS'];
  const cli = process.env['CAIRN_TEST_CLI'] ?? CLI;
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/sh', ['-c', `ulimit -n ${limit} && exec "$0" "$@"`, process.execPath, cli, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => out.push(b));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out: Buffer.concat(out).toString('utf8') }));
  });
}

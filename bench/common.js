// Helpers shared by the bench scripts (bench/run.js, bench/tree.js).
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

/** The library commit measured (`-dirty` when lib/ has uncommitted changes); CAIRN_BENCH_COMMIT overrides. */
export function libraryCommit() {
  if (process.env.CAIRN_BENCH_COMMIT) return process.env.CAIRN_BENCH_COMMIT;
  const root = path.join(here, '..');
  const head = spawnSync('git', ['-C', root, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' });
  if (head.status !== 0) return 'unknown';
  const dirty = spawnSync('git', ['-C', root, 'status', '--porcelain', '--', 'lib'], { encoding: 'utf8' });
  return `${head.stdout.trim()}${dirty.stdout.trim() === '' ? '' : '-dirty'}`;
}

/** The machine line: CPU model, cores, RAM, kernel, Node, host ('vm' for container ids). */
export function machine() {
  let cpu = 'unknown';
  try {
    const m = /^model name\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) cpu = m[1].trim();
  } catch {
    cpu = os.cpus()[0]?.model ?? 'unknown';
  }
  const host = os.hostname();
  return {
    cpu,
    cores: os.availableParallelism(),
    ramGiB: Math.round((os.totalmem() / GiB) * 10) / 10,
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    host: /^[0-9a-f]{12,}$/.test(host) || host === '' ? 'vm' : host,
  };
}

/** Parses `1G`, `512M`, `4096`, `1.5GiB` into bytes (binary units). */
export function parseSize(s) {
  const m = /^(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?$/i.exec(String(s).trim());
  if (m === null) throw new Error(`bad size: ${s}`);
  const mult = { '': 1, K: KiB, M: MiB, G: GiB, T: 1024 * GiB }[m[2].toUpperCase()];
  return Math.round(Number(m[1]) * mult);
}

/** True when `cmd` is on the PATH. */
export function onPath(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).status === 0;
}

/** Writes dirty pages back and drops the kernel's caches; false when not allowed (not root). */
export function dropCaches() {
  spawnSync('sync');
  try {
    writeFileSync('/proc/sys/vm/drop_caches', '3\n');
    return true;
  } catch {
    return false;
  }
}

/**
 * Runs a command under /usr/bin/time (Debian package `time`): wall seconds, peak RSS (MiB) and CPU
 * seconds of the command and its children. Throws with the end of its stderr when it fails.
 */
export function timed(cmd, args, { env = {}, cwd } = {}) {
  const r = spawnSync('/usr/bin/time', ['-f', 'TIME %e %M %U %S', cmd, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, cwd, maxBuffer: 1 << 28 });
  const m = /TIME ([\d.]+) (\d+) ([\d.]+) ([\d.]+)\s*$/.exec(r.stderr ?? '');
  if (r.status !== 0 || m === null) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status ?? r.error?.message}): ${(r.stderr ?? '').slice(-2000)}`);
  return { seconds: Number(m[1]), rssMiB: Number(m[2]) / 1024, cpuSeconds: Number(m[3]) + Number(m[4]), stdout: r.stdout };
}

/** Bytes under `dir` (`du -sb`: apparent sizes, as every tool's repository is measured). */
export function duBytes(dir) {
  return Number(spawnSync('du', ['-sb', dir], { encoding: 'utf8' }).stdout.split('\t')[0]);
}

/** Peak RSS (VmHWM) of a running process in MiB, NaN when it is gone. */
export function peakRssMiB(pid) {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** True when `dir` is a mount point (listed in /proc/self/mountinfo). */
export function isMountPoint(dir) {
  const abs = path.resolve(dir);
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[4] === abs);
}

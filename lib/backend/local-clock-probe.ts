/**
 * The file-system side of the GC's skew measurement on local files (layer L2): a probe temp file
 * whose times are set, written and touched (../maintenance/gc-skew.ts has the argument and decides
 * what the numbers mean), and the mount table that tells a local filesystem from a network one.
 */
import fs from 'node:fs';
import path from 'node:path';
import { nativeFutimens } from '../codec/native.js';
import { CairnError } from '../errors.js';
import { tempFileName } from '../util/temp-name.js';

/** What {@link probeLocalTimestamps} measured. */
export interface LocalTimestampProbe {
  /** Largest truncation of an explicit time set just below a 2-second boundary, ns. */
  readonly truncNs: bigint;
  /** Largest "clock before a write − the mtime the write got", ms. */
  readonly writeLagMs: number;
  /** Largest "time set by a touch (as LocalBackend.touch sets it) − the mtime read back", ms. */
  readonly touchLagMs: number;
}

/**
 * Measures, on a probe temp file in `dir` (`.gc-clock-probe.tmp-<pid>-<n>`, removed before this
 * returns; a killed process leaves it to the next GC's stale temp sweep), for `rounds` rounds: the
 * truncation of an exact time just below a 2-second boundary, the mtime a one-byte write gets against
 * `now()` read before it, and a touch as the local backend makes it.
 * @throws `ERR_IO` naming the probe when it cannot be written or read
 */
export function probeLocalTimestamps(dir: string, rounds: number, now: () => number): LocalTimestampProbe {
  const probe = path.join(dir, tempFileName('gc-clock-probe'));
  let fd: number;
  try {
    fd = fs.openSync(probe, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600);
  } catch (e) {
    throw probeError(e, probe);
  }
  let truncNs = 0n;
  let writeLag = -Infinity;
  let touchLag = -Infinity;
  const one = new Uint8Array([0x63]);
  try {
    for (let i = 0; i < rounds; i++) {
      // 1. Granularity: an odd second + 999 999 999 ns lies just below a boundary of every step of
      //    1 ns … 2 s; what the filesystem keeps of it shows the step. It also moves the mtime back,
      //    so the write below certainly stamps a new one.
      const sec = (BigInt(Math.floor(now() / 1000)) - 10n - 2n * BigInt(i)) | 1n;
      const set = sec * 1_000_000_000n + 999_999_999n;
      nativeFutimens(fd, set, set);
      const got = fs.fstatSync(fd, { bigint: true }).mtimeNs;
      if (set - got > truncNs) truncNs = set - got;
      // 2. A write, stamped by the filesystem's clock.
      const before = now();
      fs.writeSync(fd, one, 0, 1, i);
      writeLag = Math.max(writeLag, before - nsToMs(fs.fstatSync(fd, { bigint: true }).mtimeNs));
      // 3. A touch as LocalBackend.touch makes it: the clock's ms as float seconds.
      const t = now();
      fs.futimesSync(fd, t / 1000, t / 1000);
      touchLag = Math.max(touchLag, t - nsToMs(fs.fstatSync(fd, { bigint: true }).mtimeNs));
    }
  } catch (e) {
    throw probeError(e, probe);
  } finally {
    fs.closeSync(fd);
    try {
      fs.unlinkSync(probe);
    } catch {
      // Left to the next GC's stale temp sweep.
    }
  }
  return { truncNs, writeLagMs: writeLag, touchLagMs: touchLag };
}

/** True when `p` is a real directory (not a symlink to one). */
export function isRealDirectory(p: string): boolean {
  return fs.lstatSync(p, { throwIfNoEntry: false })?.isDirectory() === true;
}

function probeError(e: unknown, p: string): CairnError {
  if (e instanceof CairnError) return e;
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return new CairnError(
    'ERR_IO',
    `cannot measure the timestamps of ${p}: ${e instanceof Error ? e.message : String(e)}`,
    { path: p, ...(code === undefined ? {} : { syscallCode: code }) },
    e,
  );
}

function nsToMs(ns: bigint): number {
  return Number(ns / 1000n) / 1000;
}

/**
 * The mount a path is on, from `/proc/self/mountinfo`.
 * @category Garbage collection
 */
export interface MountEntry {
  /** Where it is mounted. */
  readonly mountPoint: string;
  /** Filesystem type (`ext4`, `nfs4`, `fuse.sshfs`, …). */
  readonly fsType: string;
  /** The mount source (`/dev/sda1`, `server:/export`, …). */
  readonly source: string;
}

/**
 * Parses `/proc/self/mountinfo` text: one entry per line, mount points unescaped (`\040` is a
 * space). Lines that do not parse are skipped.
 * @internal
 */
export function parseMountInfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    const fields = line.split(' ');
    const dash = fields.indexOf('-', 6);
    if (fields.length < 10 || dash < 0 || dash + 2 >= fields.length) continue;
    out.push({ mountPoint: unescapeMount(fields[4]!), fsType: fields[dash + 1]!, source: unescapeMount(fields[dash + 2]!) });
  }
  return out;
}

function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/**
 * The mount that holds `p` (an existing path; symlinks resolved): the entry with the longest mount
 * point that contains it, the last one listed when several share it (a later mount hides an earlier
 * one). Undefined when there is no mount table to read (not Linux) or no entry fits.
 * @param mountInfo - the text of `/proc/self/mountinfo` (read when omitted)
 * @internal
 */
export function mountOf(p: string, mountInfo?: string): MountEntry | undefined {
  let text = mountInfo;
  if (text === undefined) {
    try {
      text = fs.readFileSync('/proc/self/mountinfo', 'utf8');
    } catch {
      return undefined;
    }
  }
  let real: string;
  try {
    real = fs.realpathSync(p);
  } catch {
    real = path.resolve(p);
  }
  let best: MountEntry | undefined;
  for (const m of parseMountInfo(text)) {
    const inside = m.mountPoint === '/' || real === m.mountPoint || real.startsWith(`${m.mountPoint}/`);
    if (inside && (best === undefined || m.mountPoint.length >= best.mountPoint.length)) best = m;
  }
  return best;
}

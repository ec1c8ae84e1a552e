/**
 * Live writers (lib/host, layer L3: host-local coordination over a local directory, never through a
 * backend). Every backup registers itself for its whole life: a file
 * `.locks/writers/<pid>-<random>` holding its start time, locked exclusively. The garbage
 * collector's cutoff is the start of the oldest live writer (DESIGN.md §5); a registration whose
 * lock can be taken belongs to a dead process and is removed.
 *
 * A registration is visible under its final name only while it is locked. The writer creates it
 * under a temp name (`.<name>.tmp-<pid>-<n>`), takes the exclusive lock, writes and fsyncs its start
 * time, and renames it into place; the flock belongs to the open file, so it stays held across the
 * rename. A GC that probes in any gap therefore never finds an unlocked file under a final name
 * of a live writer. The probe itself never unlinks a file it did not prove dead: it opens the file
 * without creating it, takes the lock, and unlinks only when the name still refers to the inode it
 * locked. A temp registration it can lock is removed too (a writer killed before the rename, or
 * one that has not locked yet: that writer's rename then fails with ENOENT and it starts over
 * with a new temp name); a locked temp registration counts as a live writer.
 */
import { promises as fsp, constants as fsc } from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { LOCK_DIR } from './locks.js';
import { DIR_MODE, FILE_MODE } from '../backend/local.js';
import { tempFileName } from '../util/temp-name.js';
import { nativeFlock } from '../codec/native.js';
import { CairnError, ioError, syscallCode } from '../errors.js';

/** Folder of the writer registrations. */
export const WRITERS_DIR = `${LOCK_DIR}/writers`;

/** How often a writer starts over when a GC's probe removed its temp registration. */
const REGISTER_ATTEMPTS = 20;

/**
 * **Test only**: called between the steps of {@link registerWriter} (after the temp file is
 * created, after it is locked, after the start time is written and synced, after the rename).
 * Not part of the supported API.
 * @internal
 */
export const registrationHooks: {
  step?: (step: 'created' | 'locked' | 'written' | 'renamed', file: string) => Promise<void>;
} = {};

/** A live writer's registration; {@link WriterRegistration.release} removes it. */
export class WriterRegistration {
  /** @internal */
  constructor(
    private fh: fsp.FileHandle | undefined,
    /** Path of the registration file. */
    readonly path: string,
    /** When the writer started (ms since the epoch). */
    readonly startMs: number,
  ) {}

  /** True until released. */
  get held(): boolean {
    return this.fh !== undefined;
  }

  /** Removes the registration (unlink while still locked, then unlock). Idempotent. */
  async release(): Promise<void> {
    const fh = this.fh;
    if (fh === undefined) return;
    this.fh = undefined;
    await fsp.unlink(this.path).catch(() => undefined);
    await fh.close();
  }
}

/**
 * Registers a writer that started at `startMs`.
 * @throws `ERR_IO` when the registration cannot be written
 */
export async function registerWriter(root: string, startMs: number): Promise<WriterRegistration> {
  const dir = path.join(root, WRITERS_DIR);
  const name = `${process.pid}-${randomUUID()}`;
  const file = path.join(dir, name);
  for (let attempt = 0; ; attempt++) {
    const tmp = path.join(dir, tempFileName(name));
    let fh: fsp.FileHandle | undefined;
    try {
      fh = await createExclusive(tmp);
      await registrationHooks.step?.('created', tmp);
      if (!nativeFlock(fh.fd, 'exclusive')) {
        // A GC's probe holds it: it will remove this temp file. Start over.
        await fh.close();
        fh = undefined;
        if (attempt + 1 < REGISTER_ATTEMPTS) continue;
        throw new CairnError('ERR_LOCKED', `cannot register a writer in ${dir}: the registration keeps being probed`, { path: tmp });
      }
      await registrationHooks.step?.('locked', tmp);
      await fh.write(`${JSON.stringify({ pid: process.pid, start: startMs })}\n`, 0);
      await fh.sync();
      await registrationHooks.step?.('written', tmp);
      try {
        await fsp.rename(tmp, file);
      } catch (e) {
        if (syscallCode(e) === 'ENOENT' && attempt + 1 < REGISTER_ATTEMPTS) {
          // A GC's probe found the temp file before it was locked and removed it: start over.
          await fh.close();
          fh = undefined;
          continue;
        }
        throw e;
      }
      await registrationHooks.step?.('renamed', file);
      return new WriterRegistration(fh, file, startMs);
    } catch (e) {
      if (fh !== undefined) {
        await fsp.unlink(tmp).catch(() => undefined);
        await fh.close().catch(() => undefined);
      }
      if (e instanceof CairnError) throw e;
      throw ioError(e, `cannot register writer in ${file}`, { path: file });
    }
  }
}

async function createExclusive(file: string): Promise<fsp.FileHandle> {
  const flags = fsc.O_RDWR | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW;
  try {
    return await fsp.open(file, flags, FILE_MODE);
  } catch (e) {
    if (syscallCode(e) !== 'ENOENT') throw e;
    await fsp.mkdir(path.dirname(file), { recursive: true, mode: DIR_MODE });
    return await fsp.open(file, flags, FILE_MODE);
  }
}

/** What a probe of one registration found. */
type Probe = { live: true; start: number | undefined } | { live: false };

/**
 * Probes one registration: live (locked by its writer, with the start time it holds, if any yet)
 * or dead (then removed, when the name still refers to the file the probe locked). A file that
 * vanished meanwhile is dead and left alone.
 */
async function probe(file: string): Promise<Probe> {
  let fh: fsp.FileHandle;
  try {
    // Never create: a registration released meanwhile must not come back as an empty file.
    fh = await fsp.open(file, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
  } catch (e) {
    const c = syscallCode(e);
    if (c === 'ENOENT') return { live: false };
    if (c === 'ELOOP') return { live: false }; // a symlink is nobody's registration; not touched
    throw ioError(e, `cannot read the writer registration ${file}`, { path: file });
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) return { live: false };
    if (!nativeFlock(fh.fd, 'shared')) {
      // Held exclusively: a live writer. Its start time, once written (at most one short line).
      const buf = Buffer.alloc(256);
      const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
      return { live: true, start: parseStart(buf.subarray(0, bytesRead).toString('utf8')) };
    }
    // Nobody holds it: the writer died (or, for a temp name, has not locked it yet). Remove it,
    // but only if the name is still the inode we hold locked.
    const now = await fsp.lstat(file).catch(() => undefined);
    if (now !== undefined && now.ino === st.ino && now.dev === st.dev) await fsp.unlink(file).catch(() => undefined);
    return { live: false };
  } finally {
    await fh.close();
  }
}

function parseStart(text: string): number | undefined {
  try {
    const start = Number((JSON.parse(text) as { start?: unknown } | null)?.start);
    return Number.isFinite(start) ? start : undefined;
  } catch {
    return undefined; // not written yet, or cut short
  }
}

/**
 * The start time of the oldest live writer, or undefined when none runs. Registrations of dead
 * processes (and temp registrations nobody holds) are removed on the way. `nowMs` stands in for a
 * live writer whose start time cannot be read yet.
 */
export async function oldestLiveWriter(root: string, nowMs: number): Promise<number | undefined> {
  const dir = path.join(root, WRITERS_DIR);
  let names: string[];
  try {
    names = await fsp.readdir(dir);
  } catch (e) {
    if (syscallCode(e) === 'ENOENT') return undefined;
    throw ioError(e, `cannot list the writer registrations in ${dir}`, { path: dir });
  }
  let oldest: number | undefined;
  for (const name of names) {
    const p = await probe(path.join(dir, name));
    if (!p.live) continue;
    const t = p.start ?? nowMs;
    oldest = oldest === undefined ? t : Math.min(oldest, t);
  }
  return oldest;
}

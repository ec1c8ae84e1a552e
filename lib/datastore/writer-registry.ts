/**
 * Live writers (layer L4). Every backup registers itself for its whole life: a file
 * `.locks/writers/<pid>-<random>` holding its start time, locked exclusively. The garbage
 * collector's cutoff is the start of the oldest live writer (DESIGN.md §5); a registration whose
 * lock can be taken belongs to a dead process and is removed.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { acquireLock, LOCK_DIR, type FileLock } from './locks.js';
import { isCairnError, ioError } from '../errors.js';

/** Folder of the writer registrations. */
export const WRITERS_DIR = `${LOCK_DIR}/writers`;

/** A live writer's registration; {@link WriterRegistration.release} removes it. */
export class WriterRegistration {
  /** @internal */
  constructor(
    private readonly lock: FileLock,
    /** When the writer started (ms since the epoch). */
    readonly startMs: number,
  ) {}

  /** Removes the registration. Idempotent. */
  async release(): Promise<void> {
    if (!this.lock.held) return;
    await fsp.unlink(this.lock.path).catch(() => undefined);
    await this.lock.release();
  }
}

/** Registers a writer that started at `startMs`. */
export async function registerWriter(root: string, startMs: number): Promise<WriterRegistration> {
  const file = path.join(root, WRITERS_DIR, `${process.pid}-${randomUUID()}`);
  const lock = await acquireLock(file, 'exclusive');
  try {
    await fsp.writeFile(file, `${JSON.stringify({ pid: process.pid, start: startMs })}\n`);
  } catch (e) {
    await lock.release();
    throw ioError(e, `cannot register writer in ${file}`, { path: file });
  }
  return new WriterRegistration(lock, startMs);
}

/**
 * The start time of the oldest live writer, or undefined when none runs. Registrations of dead
 * processes are removed on the way. `nowMs` stands in for a writer that has not written its start
 * time yet.
 */
export async function oldestLiveWriter(root: string, nowMs: number): Promise<number | undefined> {
  const dir = path.join(root, WRITERS_DIR);
  let names: string[];
  try {
    names = await fsp.readdir(dir);
  } catch {
    return undefined;
  }
  let oldest: number | undefined;
  for (const name of names) {
    const file = path.join(dir, name);
    let probe: FileLock | undefined;
    try {
      probe = await acquireLock(file, 'shared');
    } catch (e) {
      if (!isCairnError(e, 'ERR_LOCKED')) throw e;
    }
    if (probe !== undefined) {
      // Nobody holds it: the writer died. Remove the registration.
      await fsp.unlink(file).catch(() => undefined);
      await probe.release();
      continue;
    }
    const text = await fsp.readFile(file, 'utf8').catch(() => '');
    const start = Number((JSON.parse(text || '{}') as { start?: unknown }).start);
    // A writer that registered but has not written its start time yet started just now.
    const t = Number.isFinite(start) ? start : nowMs;
    oldest = oldest === undefined ? t : Math.min(oldest, t);
  }
  return oldest;
}

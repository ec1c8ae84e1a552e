/**
 * Test helper: a fresh datastore (64 KiB image chunks, sync level none) whose clock the test moves
 * by hand, as the GC and move tests need ("the clock moved far past the skew").
 */
import path from 'node:path';
import type { Test } from 'tap';
import { Datastore } from '../../lib/index.js';
import { tempDir } from './fixtures.js';

/** Image chunk size of the store. */
export const CS = 64 * 1024;
/** ms: far past any skew. */
export const FAR = 1e9;

/** A store, its scratch directory and its clock (`clock.t`, ms). */
export interface ClockedStore {
  dir: string;
  ds: Datastore;
  clock: { t: number };
}

/** Creates the store in a temp dir closed at the end of the test. */
export async function clockedStore(t: Test, threads: number): Promise<ClockedStore> {
  const dir = tempDir(t);
  const clock = { t: Date.now() };
  const ds = await Datastore.create(path.join(dir, 'store'), { imageChunkSize: CS, syncLevel: 'none', threads, clock: { now: () => clock.t } });
  t.teardown(() => ds.close());
  return { dir, ds, clock };
}

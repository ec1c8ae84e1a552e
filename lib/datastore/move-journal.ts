/**
 * The move journal (layer L4): how a snapshot move and a running garbage collection stay safe
 * together (DESIGN.md §5; PBS-NOTES.md §6.3).
 *
 * The race: GC's mark phase walks namespaces one after another. A snapshot renamed from a namespace
 * the walk has not reached yet into one it has already passed is seen in neither place, and the
 * sweep would delete chunks that only it references (moved snapshots are old, so their chunks have
 * old mtimes).
 *
 * The protocol:
 * - A mover, per snapshot, takes the journal lock **shared**, then the snapshot's own locks, appends
 *   the snapshot's new location to the journal, renames the snapshot directory, and releases the
 *   locks.
 * - GC, after its walk, takes the journal lock **exclusive** (so no move is half done), marks every
 *   snapshot the journal names at its new location, empties the journal, and releases the lock.
 *
 * Why it is enough: a move whose rename happened before the walk reached either place is seen at its
 * new place by the walk; a move whose rename happened after the drain took the lock happened after
 * the walk had seen the snapshot at its old place (nothing else moves it meanwhile: the mover holds
 * the source group's lock, and a snapshot moved twice during the walk has two journal lines, the
 * later one naming where it is). Every other move completed its journal line before its rename,
 * and its rename before the drain took the lock, so the drain reads the line. A journaled snapshot
 * that is gone at drain time was removed (prune or forget): its chunks are garbage unless another
 * snapshot references them, and that one is marked on its own.
 *
 * The journal is a text file of JSON lines under `.locks/` in the datastore's local directory (its
 * file handling, with its refusal of planted symlinks and FIFOs, is lib/host/journal-file.ts). A
 * line cut short by a crash is skipped (its rename never happened: the line is written, in full,
 * before the rename).
 */
import path from 'node:path';
import { CairnError } from '../errors.js';
import { parseGroup, parseNamespace, parseSnapshotTime, type GroupId } from '../types.js';
import { appendJournalLine, consumeJournal, MOVE_JOURNAL_MAX_BYTES } from '../host/journal-file.js';
import { lockAt, type StoreContext } from './context.js';
import { LOCK_DIR } from '../host/locks.js';

export { MOVE_JOURNAL_MAX_BYTES };

/** Key of the journal below the datastore's local directory. */
export const MOVE_JOURNAL_KEY = `${LOCK_DIR}/move-journal`;
/** Key of the journal's lock file below the datastore's local directory. */
export const MOVE_JOURNAL_LOCK_KEY = `${LOCK_DIR}/move-journal.lock`;
/**
 * How long a mover waits for a GC that is reading the journal, ms (at least; the datastore's own
 * lock timeout applies when longer). A drain reads the indexes of the snapshots moved during one
 * GC's mark phase, which takes seconds.
 */
export const MOVE_JOURNAL_WAIT_MS = 120_000;

/** Where a moved snapshot now is. */
export interface MovedSnapshot {
  /** Namespace path (`''` for the root). */
  readonly namespace: string;
  /** The group. */
  readonly group: GroupId;
  /** The snapshot time. */
  readonly time: string;
}

/** Handed to the callback of {@link withMoveJournal}. */
export interface MoveJournal {
  /** Appends the new location of a snapshot; call it after taking the snapshot's locks, before the rename. */
  record(to: MovedSnapshot): Promise<void>;
}

/**
 * Runs `fn` under the shared journal lock. A mover takes this lock **before** the locks of the
 * snapshot it moves, so while GC drains the journal no snapshot is locked by a move (a drain that
 * finds a snapshot locked knows it is being removed, not moved).
 * @throws `ERR_LOCKED` when a GC holds the journal longer than the wait; `ERR_ABORTED` when
 *   `signal` fires during the wait; whatever `fn` throws.
 */
export async function withMoveJournal<T>(ctx: StoreContext, fn: (journal: MoveJournal) => Promise<T>, signal?: AbortSignal): Promise<T> {
  const lock = await lockAt(ctx, MOVE_JOURNAL_LOCK_KEY, 'shared', 'the move journal', {}, Math.max(ctx.lockTimeoutMs, MOVE_JOURNAL_WAIT_MS), signal);
  const file = path.join(ctx.root, MOVE_JOURNAL_KEY);
  const journal: MoveJournal = {
    async record(to) {
      await appendJournalLine(file, `${JSON.stringify({ ns: to.namespace, group: `${to.group.type}/${to.group.id}`, time: to.time })}\n`);
    },
  };
  try {
    return await fn(journal);
  } finally {
    await lock.release();
  }
}

/**
 * For garbage collection: under the exclusive journal lock, calls `visit` for every snapshot the
 * journal names (in order, duplicates included), then empties the journal.
 * @throws `ERR_LOCKED` when movers hold the lock longer than the wait; `ERR_ABORTED` when `signal`
 *   fires during the wait; whatever `visit` throws (the journal is then kept).
 */
export async function drainMoveJournal(ctx: StoreContext, visit: (moved: MovedSnapshot) => Promise<void>, signal?: AbortSignal): Promise<number> {
  const lock = await lockAt(ctx, MOVE_JOURNAL_LOCK_KEY, 'exclusive', 'the move journal', {}, Math.max(ctx.lockTimeoutMs, MOVE_JOURNAL_WAIT_MS), signal);
  try {
    const n = await consumeJournal(path.join(ctx.root, MOVE_JOURNAL_KEY), async (text) => {
      let count = 0;
      for (const line of text.split('\n')) {
        const moved = parseLine(line);
        if (moved === undefined) continue;
        await visit(moved);
        count++;
      }
      return count;
    });
    return n ?? 0;
  } finally {
    await lock.release();
  }
}

/** One journal line, or undefined for an empty, cut-short or foreign line. */
export function parseLine(line: string): MovedSnapshot | undefined {
  if (line.trim() === '') return undefined;
  try {
    const v = JSON.parse(line) as { ns?: unknown; group?: unknown; time?: unknown } | null;
    if (typeof v !== 'object' || v === null) return undefined;
    if (typeof v.ns !== 'string' || typeof v.group !== 'string' || typeof v.time !== 'string') return undefined;
    parseNamespace(v.ns);
    parseSnapshotTime(v.time);
    return { namespace: v.ns, group: parseGroup(v.group), time: v.time };
  } catch (e) {
    if (e instanceof SyntaxError || e instanceof CairnError) return undefined;
    throw e;
  }
}

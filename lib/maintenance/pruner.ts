/**
 * Prune (layer L5): applies a retention policy ({@link planPrune}) to the backup groups of a
 * group, or of a namespace and the namespaces below it, and removes what the plan marks `remove`.
 */
import { CairnError, throwIfAborted } from '../errors.js';
import type { Datastore } from '../datastore/datastore.js';
import type { BackupGroup } from '../datastore/group.js';
import { groupsInScope } from './scope.js';
import { checkPruneOptions, planPrune, type PruneMark, type ResolvedPruneOptions, type PrunePlanOptions } from './prune-plan.js';

/**
 * What {@link Pruner.plan} looks at.
 * @category Prune
 */
export interface PruneScope {
  /** One group, `type/id`, in `namespace`. Without it: every group of the namespace and below. */
  group?: string;
  /** Namespace path (default `''`, the root). */
  namespace?: string;
  /** Without `group`: levels of namespaces below `namespace` to include, 0 to 7 (default 7). */
  maxDepth?: number;
}

/**
 * One snapshot directory of a plan or report. Plain JSON.
 * @category Prune
 */
export interface PruneEntry {
  /** Namespace path (`''` for the root). */
  namespace: string;
  /** `type/id`. */
  group: string;
  /** RFC 3339 UTC time. */
  time: string;
  /** False for an unfinished directory (no manifest). */
  finished: boolean;
  /** What prune does with it. */
  mark: PruneMark;
  /** Set by {@link Pruner.apply} (not in a dry run) on `remove` entries: whether it was removed. */
  removed?: boolean;
  /** Why a `remove` entry was not removed (e.g. `ERR_LOCKED: …`). */
  skipped?: string;
}

/**
 * The marks for every snapshot directory in scope. Plain JSON.
 * @category Prune
 */
export interface PrunePlan {
  /** The keep options and the time zone used. */
  options: ResolvedPruneOptions;
  /** Per group (namespace depth first, groups by type and id), newest first within a group. */
  entries: PruneEntry[];
}

/**
 * Progress of {@link Pruner.apply}: after each `remove` entry was handled.
 * @category Prune
 */
export interface PruneProgress {
  /** The entry just handled. */
  entry: PruneEntry;
  /** `remove` entries handled so far. */
  done: number;
  /** `remove` entries in the plan. */
  total: number;
}

/**
 * Options of {@link Pruner.apply}.
 * @category Prune
 */
export interface PruneApplyOptions {
  /** Only report what would be removed. */
  dryRun?: boolean;
  /** Stops between removals with `ERR_ABORTED`. */
  signal?: AbortSignal;
  /** Called after each `remove` entry. */
  onProgress?: (p: PruneProgress) => void;
}

/**
 * Counts of a {@link PruneReport}.
 * @category Prune
 */
export interface PruneTotals {
  /** Snapshot directories in scope. */
  snapshots: number;
  /** Marked `keep`. */
  keep: number;
  /** Marked `keep-partial`. */
  keepPartial: number;
  /** Marked `protected`. */
  protected: number;
  /** Marked `remove`. */
  remove: number;
  /** Actually removed (0 in a dry run). */
  removed: number;
  /** Marked `remove` but skipped (locked, protected meanwhile, …). */
  skipped: number;
}

/**
 * The result of {@link Pruner.apply}. Plain JSON.
 * @category Prune
 */
export interface PruneReport {
  /** True for a dry run. */
  dryRun: boolean;
  /** The keep options and the time zone used. */
  options: ResolvedPruneOptions;
  /** The plan's entries, with `removed` / `skipped` set on `remove` entries after a real run. */
  entries: PruneEntry[];
  /** Counts. */
  totals: PruneTotals;
}

/** Errors that skip one snapshot instead of failing the run. */
const SKIP_CODES = new Set<string>(['ERR_LOCKED', 'ERR_PROTECTED', 'ERR_NOT_FOUND']);

/**
 * Prunes backup groups the way Proxmox Backup Server does: {@link planPrune} per group, then the
 * `remove` marks are removed oldest first. A snapshot that is being read, mounted or is the base of
 * a running backup is locked and is skipped (reported, not an error); unfinished directories are
 * removed only when the group lock can be taken (no backup runs). Chunks stay until garbage
 * collection.
 *
 * @example
 * ```ts
 * const pruner = new Pruner(ds);
 * const plan = await pruner.plan({ namespace: 'site-a' }, { keepLast: 3, keepDaily: 13 });
 * const report = await pruner.apply(plan);
 * console.log(report.totals.removed);
 * ```
 * @category Prune
 */
export class Pruner {
  /** A pruner for an open datastore. */
  constructor(private readonly ds: Datastore) {}

  /**
   * Marks every snapshot directory in scope. Reads only.
   * @throws `ERR_INVALID_ARGUMENT` (options, maxDepth), `ERR_INVALID_NAME`, `ERR_NOT_FOUND` (group
   *   or namespace missing).
   */
  async plan(scope: PruneScope, options: PrunePlanOptions): Promise<PrunePlan> {
    const timeZone = checkPruneOptions(options);
    const keep: ResolvedPruneOptions = { timeZone };
    for (const k of ['keepLast', 'keepHourly', 'keepDaily', 'keepWeekly', 'keepMonthly', 'keepYearly'] as const) {
      const v = options[k];
      if (v !== undefined) keep[k] = v;
    }
    const entries: PruneEntry[] = [];
    for (const g of await this.groups(scope)) {
      const dirs = await g.entries();
      const byTime = new Map(dirs.map((d) => [d.time, d]));
      const marks = planPrune(
        dirs.map((d) => ({ time: d.time, finished: d.snapshot !== undefined, protected: d.snapshot?.isProtected === true })),
        keep,
      );
      for (const m of marks) entries.push({ namespace: g.namespace, group: g.name, time: m.time, finished: byTime.get(m.time)?.snapshot !== undefined, mark: m.mark });
    }
    return { options: keep, entries };
  }

  /**
   * Removes the plan's `remove` entries, oldest first within each group (in a dry run: nothing).
   * Locked snapshots and unfinished directories of a group with a running backup are skipped and
   * reported. @throws `ERR_ABORTED`; `ERR_READ_ONLY` on a read-only datastore (unless a dry run)
   */
  async apply(plan: PrunePlan, options: PruneApplyOptions = {}): Promise<PruneReport> {
    const entries = plan.entries.map((e) => ({ ...e }));
    const dryRun = options.dryRun === true;
    if (!dryRun) this.ds.assertWritable('prune');
    // Oldest first within each group, groups in plan order.
    const order: PruneEntry[] = [];
    let i = 0;
    while (i < entries.length) {
      let j = i;
      while (j < entries.length && entries[j]!.namespace === entries[i]!.namespace && entries[j]!.group === entries[i]!.group) j++;
      const group = entries.slice(i, j).filter((e) => e.mark === 'remove');
      group.sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : 0));
      order.push(...group);
      i = j;
    }
    let done = 0;
    if (!dryRun) {
      for (const e of order) {
        throwIfAborted(options.signal);
        const g = this.ds.group(e.group, { namespace: e.namespace });
        try {
          if (e.finished) {
            const snap = await g.snapshot(e.time);
            await snap.remove(options.signal === undefined ? {} : { signal: options.signal });
            e.removed = true;
          } else {
            e.removed = await g.removeUnfinished(e.time);
            if (!e.removed) e.skipped = 'no longer an unfinished snapshot directory';
          }
        } catch (err) {
          if (!(err instanceof CairnError) || !SKIP_CODES.has(err.code)) throw err;
          e.removed = false;
          e.skipped = `${err.code}: ${err.message}`;
        }
        options.onProgress?.({ entry: { ...e }, done: ++done, total: order.length });
      }
    }
    const count = (m: PruneMark): number => entries.filter((e) => e.mark === m).length;
    return {
      dryRun,
      options: plan.options,
      entries,
      totals: {
        snapshots: entries.length,
        keep: count('keep'),
        keepPartial: count('keep-partial'),
        protected: count('protected'),
        remove: count('remove'),
        removed: entries.filter((e) => e.removed === true).length,
        skipped: entries.filter((e) => e.skipped !== undefined).length,
      },
    };
  }

  /** {@link plan} then {@link apply}. */
  async prune(scope: PruneScope, options: PrunePlanOptions, applyOptions: PruneApplyOptions = {}): Promise<PruneReport> {
    return this.apply(await this.plan(scope, options), applyOptions);
  }

  private groups(scope: PruneScope): Promise<BackupGroup[]> {
    return groupsInScope(this.ds, scope);
  }
}

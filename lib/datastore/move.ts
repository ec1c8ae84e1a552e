/**
 * Moving a backup group, or a namespace with everything below it, to another namespace (layer L4;
 * PBS 4.2 semantics, PBS-NOTES.md §6.3).
 *
 * A group move takes the source and target group locks (no backup runs in either), then moves the
 * snapshots oldest first, one rename of the snapshot directory each, under that snapshot's own
 * locks (a snapshot being read, mounted or used as a base stays where it is and is reported) and
 * through the move journal (move-journal.ts), which keeps a concurrent garbage collection from
 * missing a snapshot in transit. The manifest is not rewritten: its `namespace` names where the
 * snapshot was made (FORMAT.md §5), and a signature over it stays valid.
 *
 * Merging into an existing group requires the same owner and that every moved snapshot be newer
 * than the target's newest, so a group's history is never interleaved. A marker file in the source
 * group remembers the target and that bound, so a move that was interrupted (a crash, or snapshots
 * in use) can be run again and finish.
 */
import { CairnError, isCairnError, throwIfAborted, type ErrorDetails } from '../errors.js';
import { formatGroup, MAX_NAMESPACE_DEPTH, parseNamespace, type GroupId } from '../types.js';
import { lockAt, type StoreContext } from './context.js';
import { MANIFEST_FILE, MOVE_MARKER_FILE, NOTES_FILE, OWNER_FILE, groupKey, groupLockKey, manifestLockKey, snapshotKey, snapshotLockKey } from './layout.js';
import { withMoveJournal } from './move-journal.js';
import { Namespace } from './namespace.js';
import { folderExists, makeFolder, makeNamespaceFolder, moveFolder, removeEmptyFolder, removeFolder } from './keyspace.js';
import type { FileLock } from '../host/locks.js';

/**
 * Progress of a move: snapshots moved so far of the group being moved.
 * @category Datastore
 */
export interface MoveProgress {
  /** `type/id`. */
  readonly group: string;
  /** Source namespace. */
  readonly from: string;
  /** Target namespace. */
  readonly to: string;
  /** Snapshots of this group handled (moved or skipped). */
  readonly done: number;
  /** Snapshots of this group to handle. */
  readonly total: number;
}

/**
 * Options of {@link Datastore.moveGroup}.
 * @category Datastore
 */
export interface MoveGroupOptions {
  /** Stops between snapshots with `ERR_ABORTED` (what moved stays moved; run again to finish). */
  readonly signal?: AbortSignal;
  /** Called after each snapshot. */
  readonly onProgress?: (p: MoveProgress) => void;
  /**
   * **Test only**: called before each snapshot's rename, with its locks held. Not part of the
   * supported API.
   */
  readonly hooks?: {
    /** Called with the snapshot's time before it is renamed. */
    readonly beforeRename?: (time: string) => Promise<void>;
  };
}

/**
 * A snapshot a move left in place.
 * @category Datastore
 */
export interface MoveSkipped {
  /** Its time. */
  readonly time: string;
  /** Why (the `ERR_LOCKED` message). */
  readonly reason: string;
}

/**
 * A group a namespace move left in place.
 * @category Datastore
 */
export interface MoveFailedGroup {
  /** The namespace it stays in. */
  readonly namespace: string;
  /** `type/id`. */
  readonly group: string;
  /** The error code (`ERR_EXISTS` when merging is off, `ERR_LOCKED`, `ERR_CONFLICT`, `ERR_TIME_ORDER`). */
  readonly code: string;
  /** The error message. */
  readonly reason: string;
}

/**
 * What a group move did. Plain JSON.
 * @category Datastore
 */
export interface MoveGroupReport {
  /** `type/id`. */
  readonly group: string;
  /** Source namespace. */
  readonly from: string;
  /** Target namespace. */
  readonly to: string;
  /** The target group existed before (the snapshots were merged into it). */
  readonly merged: boolean;
  /** Times of the snapshots moved, oldest first. */
  readonly moved: string[];
  /** Snapshots left in the source because they were in use (read, mounted, a base). */
  readonly skipped: MoveSkipped[];
  /** Unfinished snapshot directories (of crashed backups) removed from the source. */
  readonly removedUnfinished: string[];
  /** The source group is gone (everything moved). */
  readonly sourceRemoved: boolean;
  /** Both groups had notes and they differ: the target's were kept. */
  readonly notesConflict: boolean;
}

/**
 * Options of {@link Datastore.moveNamespace}.
 * @category Datastore
 */
export interface MoveNamespaceOptions extends MoveGroupOptions {
  /**
   * Merge a group into an existing group of the same name in the target (same rules as
   * {@link Datastore.moveGroup}); when false such groups stay in the source and are reported.
   * @defaultValue true
   */
  readonly mergeGroups?: boolean;
  /**
   * Remove source namespaces that the move emptied.
   * @defaultValue true
   */
  readonly deleteSource?: boolean;
  /**
   * Levels of child namespaces to move along (0: only the namespace's own groups).
   * @defaultValue 7
   */
  readonly maxDepth?: number;
}

/**
 * What a namespace move did. Plain JSON.
 * @category Datastore
 */
export interface MoveNamespaceReport {
  /** Source namespace. */
  readonly from: string;
  /** Target namespace. */
  readonly to: string;
  /** One report per group moved (or partly moved). */
  readonly groups: MoveGroupReport[];
  /** Groups not moved. */
  readonly failedGroups: MoveFailedGroup[];
  /** Target namespaces created. */
  readonly createdNamespaces: string[];
  /** Source namespaces removed. */
  readonly removedNamespaces: string[];
}

interface Marker {
  target: string;
  after: string | null;
}

/** What the phases of one group move share. */
interface GroupMove {
  readonly ctx: StoreContext;
  readonly group: GroupId;
  readonly name: string;
  readonly fromNs: string;
  readonly toNs: string;
  readonly fromParts: readonly string[];
  readonly toParts: readonly string[];
  readonly srcKey: string;
  readonly dstKey: string;
  readonly details: ErrorDetails;
}

/** Moves one group; see {@link Datastore.moveGroup}. */
export async function moveGroup(ctx: StoreContext, fromNs: string, group: GroupId, toNs: string, options: MoveGroupOptions = {}): Promise<MoveGroupReport> {
  ctx.assertOpen();
  const fromParts = parseNamespace(fromNs);
  const toParts = parseNamespace(toNs);
  const name = formatGroup(group);
  const details: ErrorDetails = { datastore: ctx.root, namespace: fromNs, group: name, path: toNs };
  if (fromNs === toNs) throw new CairnError('ERR_INVALID_ARGUMENT', `backup group ${name} is already in namespace '${toNs}'`, details);
  if (!(await new Namespace(ctx, toNs).exists())) throw new CairnError('ERR_NOT_FOUND', `target namespace '${toNs}' does not exist`, { ...details, namespace: toNs });
  const m: GroupMove = { ctx, group, name, fromNs, toNs, fromParts, toParts, srcKey: groupKey(fromParts, group), dstKey: groupKey(toParts, group), details };
  if (!(await new Namespace(ctx, fromNs).group(group).exists())) throw new CairnError('ERR_NOT_FOUND', `backup group ${name} does not exist in namespace '${fromNs}'`, details);

  const held: FileLock[] = [];
  try {
    held.push(await lockAt(ctx, groupLockKey(fromParts, group), 'exclusive', `backup group ${name} in '${fromNs}'`, details, 0));
    held.push(await lockAt(ctx, groupLockKey(toParts, group), 'exclusive', `backup group ${name} in '${toNs}'`, { ...details, namespace: toNs }, 0));
    const { times, removedUnfinished } = await removeUnfinished(m);
    const { merged, notesConflict, after } = await prepareTarget(m, times);
    const markerText = `${JSON.stringify({ target: toNs, after } satisfies Marker)}\n`;
    await ctx.backend.put(`${m.srcKey}/${MOVE_MARKER_FILE}`, Buffer.from(markerText, 'utf8'), { sync: ctx.config.syncLevel !== 'none' });
    const { moved, skipped } = await moveSnapshots(m, times, options);
    let sourceRemoved = false;
    if (skipped.length === 0) {
      for (const f of [MOVE_MARKER_FILE, OWNER_FILE, NOTES_FILE]) await ctx.backend.delete(`${m.srcKey}/${f}`);
      sourceRemoved = await removeEmptyFolder(ctx.backend, m.srcKey);
    }
    return { group: name, from: fromNs, to: toNs, merged, moved, skipped, removedUnfinished, sourceRemoved, notesConflict };
  } finally {
    for (const l of held.reverse()) await l.release();
  }
}

/**
 * With both group locks held, snapshot folders without a manifest are what crashed backups (or, on
 * backends without renames, a move cut short while it copied a snapshot) left: they go, in the
 * source and in the target. @returns the finished source snapshots' times and the removed ones
 */
async function removeUnfinished(m: GroupMove): Promise<{ times: string[]; removedUnfinished: string[] }> {
  const { ctx } = m;
  const times: string[] = [];
  const removedUnfinished: string[] = [];
  for (const t of await new Namespace(ctx, m.fromNs).group(m.group).times()) {
    if ((await ctx.backend.stat(`${m.srcKey}/${t}/${MANIFEST_FILE}`)) === undefined) {
      await removeFolder(ctx.backend, `${m.srcKey}/${t}`);
      removedUnfinished.push(t);
    } else {
      times.push(t);
    }
  }
  for (const t of await new Namespace(ctx, m.toNs).group(m.group).times()) {
    if ((await ctx.backend.stat(`${m.dstKey}/${t}/${MANIFEST_FILE}`)) === undefined) await removeFolder(ctx.backend, `${m.dstKey}/${t}`);
  }
  return { times, removedUnfinished };
}

/**
 * Checks a merge into an existing target group (same owner, every moved snapshot newer than the
 * target's newest or the bound a resumed move recorded) and merges the notes; or creates the target
 * group with the source's owner and notes.
 * @throws `ERR_CONFLICT` (owners differ), `ERR_TIME_ORDER`
 */
async function prepareTarget(m: GroupMove, times: readonly string[]): Promise<{ merged: boolean; notesConflict: boolean; after: string | null }> {
  const { ctx, name, toNs, details } = m;
  const src = new Namespace(ctx, m.fromNs).group(m.group);
  const dst = new Namespace(ctx, toNs).group(m.group);
  const marker = await readMarker(ctx, m.srcKey);
  const srcOwner = await src.owner();
  const srcNotes = await src.notes();
  if (!(await dst.exists())) {
    await makeFolder(ctx.backend, m.dstKey);
    // Not setOwner/setNotes: on a backend without directories the new group has no key yet.
    if (srcOwner !== undefined) await dst.writeOwner(srcOwner, false);
    if (srcNotes !== '') await dst.writeNotes(srcNotes, false);
    return { merged: false, notesConflict: false, after: null };
  }
  const resuming = marker?.target === toNs;
  const dstOwner = await dst.owner();
  if (!resuming && srcOwner !== dstOwner) {
    throw new CairnError('ERR_CONFLICT', `cannot merge backup group ${name} into '${toNs}': the owners differ (${srcOwner ?? 'none'} vs ${dstOwner ?? 'none'})`, details);
  }
  const dstTimes = await dst.times();
  const after = resuming ? marker.after : (dstTimes.at(-1) ?? null);
  const taken = new Set(dstTimes);
  const clash = times.find((t) => taken.has(t) || (after !== null && t <= after));
  if (clash !== undefined) {
    throw new CairnError('ERR_TIME_ORDER', `cannot merge backup group ${name} into '${toNs}': snapshot ${clash} is not newer than the target's newest (${after ?? clash})`, {
      ...details,
      snapshot: `${name}/${clash}`,
    });
  }
  const dstNotes = await dst.notes();
  if (srcNotes !== '' && dstNotes === '') await dst.setNotes(srcNotes);
  return { merged: true, notesConflict: srcNotes !== '' && dstNotes !== '' && srcNotes !== dstNotes, after };
}

/**
 * Moves the snapshots oldest first, each under the shared journal lock and its own locks: journal
 * line first, then the folder (one rename, or copy then delete: keyspace.ts). A snapshot in use
 * (`ERR_LOCKED`) stays and is reported.
 */
async function moveSnapshots(m: GroupMove, times: readonly string[], options: MoveGroupOptions): Promise<{ moved: string[]; skipped: MoveSkipped[] }> {
  const { ctx, group, name, details } = m;
  const moved: string[] = [];
  const skipped: MoveSkipped[] = [];
  const sync = ctx.config.syncLevel !== 'none';
  for (const time of times) {
    throwIfAborted(options.signal);
    try {
      await withMoveJournal(
        ctx,
        async (journal) => {
          const snapLock = await lockAt(ctx, snapshotLockKey(m.fromParts, group, time), 'exclusive', `snapshot ${name}/${time}`, { ...details, snapshot: `${name}/${time}` }, 0);
          try {
            const manLock = await lockAt(
              ctx,
              manifestLockKey(m.fromParts, group, time),
              'exclusive',
              `manifest of ${name}/${time}`,
              { ...details, snapshot: `${name}/${time}` },
              Math.max(ctx.lockTimeoutMs, 5000),
              options.signal,
            );
            try {
              await options.hooks?.beforeRename?.(time);
              await journal.record({ namespace: m.toNs, group, time });
              await moveFolder(ctx.backend, snapshotKey(m.fromParts, group, time), snapshotKey(m.toParts, group, time), { sync, last: MANIFEST_FILE });
            } finally {
              await manLock.release();
            }
          } finally {
            await snapLock.release();
          }
        },
        options.signal,
      );
      moved.push(time);
    } catch (e) {
      if (!isCairnError(e, 'ERR_LOCKED')) throw e;
      skipped.push({ time, reason: e.message });
    }
    options.onProgress?.({ group: name, from: m.fromNs, to: m.toNs, done: moved.length + skipped.length, total: times.length });
  }
  return { moved, skipped };
}

/** Moves a namespace and what is below it; see {@link Datastore.moveNamespace}. */
export async function moveNamespace(ctx: StoreContext, fromNs: string, toNs: string, options: MoveNamespaceOptions = {}): Promise<MoveNamespaceReport> {
  ctx.assertOpen();
  const fromParts = parseNamespace(fromNs);
  const toParts = parseNamespace(toNs);
  const details: ErrorDetails = { datastore: ctx.root, namespace: fromNs, path: toNs };
  const maxDepth = options.maxDepth ?? MAX_NAMESPACE_DEPTH;
  if (!Number.isInteger(maxDepth) || maxDepth < 0 || maxDepth > MAX_NAMESPACE_DEPTH) {
    throw new CairnError('ERR_INVALID_ARGUMENT', `maxDepth must be an integer from 0 to ${MAX_NAMESPACE_DEPTH}`, details);
  }
  if (fromParts.length === 0) throw new CairnError('ERR_INVALID_ARGUMENT', 'the root namespace cannot be moved (move its groups instead)', details);
  if (toParts.length === 0) throw new CairnError('ERR_INVALID_ARGUMENT', 'a namespace cannot be moved onto the root (move its groups instead)', details);
  if (toNs === fromNs || toNs.startsWith(`${fromNs}/`)) throw new CairnError('ERR_INVALID_ARGUMENT', `namespace '${fromNs}' cannot be moved into itself ('${toNs}')`, details);
  const src = new Namespace(ctx, fromNs);
  await src.assertExists();
  const parent = new Namespace(ctx, toParts.slice(0, -1).join('/'));
  if (!(await parent.exists()))
    throw new CairnError('ERR_NOT_FOUND', `cannot move to '${toNs}': its parent namespace '${parent.path}' does not exist`, { ...details, namespace: parent.path });

  const sources = await src.descendants(maxDepth);
  const mapped = sources.map((ns) => ({ ns, target: [...toParts, ...ns.parts.slice(fromParts.length)].join('/') }));
  for (const m of mapped) {
    if (parseNamespaceDepth(m.target) > MAX_NAMESPACE_DEPTH) {
      throw new CairnError(
        'ERR_INVALID_ARGUMENT',
        `moving '${fromNs}' to '${toNs}' would put namespace '${m.ns.path}' at '${m.target}', deeper than ${MAX_NAMESPACE_DEPTH} levels`,
        details,
      );
    }
  }
  for (const m of mapped) parseNamespace(m.target); // length limits

  const report: MoveNamespaceReport = { from: fromNs, to: toNs, groups: [], failedGroups: [], createdNamespaces: [], removedNamespaces: [] };
  for (const { ns, target } of mapped) {
    throwIfAborted(options.signal);
    const t = new Namespace(ctx, target);
    if (!(await t.exists())) {
      await makeNamespaceFolder(ctx.backend, t.key);
      report.createdNamespaces.push(target);
    }
    for (const g of await ns.groups()) {
      if (options.mergeGroups === false && (await folderExists(ctx.backend, groupKey(t.parts, g.group)))) {
        report.failedGroups.push({ namespace: ns.path, group: g.name, code: 'ERR_EXISTS', reason: `backup group ${g.name} exists in '${target}' and merging is off` });
        continue;
      }
      try {
        report.groups.push(await moveGroup(ctx, ns.path, g.group, target, options));
      } catch (e) {
        if (isCairnError(e, 'ERR_ABORTED') || !(isCairnError(e, 'ERR_LOCKED') || isCairnError(e, 'ERR_CONFLICT') || isCairnError(e, 'ERR_TIME_ORDER'))) throw e;
        report.failedGroups.push({ namespace: ns.path, group: g.name, code: e.code, reason: e.message });
      }
    }
  }
  if (options.deleteSource !== false) {
    for (const { ns } of [...mapped].reverse()) {
      if ((await ns.groups()).length > 0 || (await ns.children()).length > 0) continue;
      if (await ns.removeDirsIfEmpty()) report.removedNamespaces.push(ns.path);
    }
  }
  return report;
}

function parseNamespaceDepth(ns: string): number {
  return ns === '' ? 0 : ns.split('/').length;
}

async function readMarker(ctx: StoreContext, srcKey: string): Promise<Marker | undefined> {
  let text: string;
  try {
    text = Buffer.from(await ctx.backend.get(`${srcKey}/${MOVE_MARKER_FILE}`)).toString('utf8');
  } catch (e) {
    if (isCairnError(e, 'ERR_NOT_FOUND')) return undefined;
    throw e;
  }
  try {
    const v = JSON.parse(text) as Partial<Marker>;
    if (typeof v.target === 'string' && (v.after === null || typeof v.after === 'string')) return { target: v.target, after: v.after };
  } catch {
    // A damaged marker only loses the resume bound: the move is checked like a new one.
  }
  return undefined;
}

/** Text and JSON formatting shared by several commands of the `cairn` command line. */
import { snapshotIdentity, type MoveGroupReport, type RemoveGroupReport, type RemoveNamespaceReport, type Snapshot, type SnapshotIdentity, type TreeItem } from '../index.js';

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** `1.5 GiB`. */
export function humanBytes(n: number): string {
  let v = n;
  let u = 0;
  while (v >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${v.toFixed(v < 10 ? 2 : 1)} ${UNITS[u]}`;
}

/** A time in nanoseconds since the epoch as `YYYY-MM-DD hh:mm:ss` (UTC). */
export function mtimeString(ns: bigint): string {
  return new Date(Number(ns / 1_000_000n)).toISOString().replace('T', ' ').slice(0, 19);
}

/** An entry of a tree archive as printed by `--json` (`ls`, `find`). */
export function itemJson(item: TreeItem): Record<string, unknown> {
  const e = item.entry;
  return {
    path: item.path.toString('utf8'),
    kind: e.kind,
    mode: e.mode,
    uid: e.uid,
    gid: e.gid,
    size: e.size,
    mtimeNs: e.mtimeNs.toString(),
    ...(e.target === undefined ? {} : { target: Buffer.from(e.target).toString('utf8') }),
    ...(e.rdevMajor === undefined ? {} : { rdev: [e.rdevMajor, e.rdevMinor] }),
    ...(e.xattrs === undefined ? {} : { xattrs: e.xattrs.map(([n]) => Buffer.from(n).toString('utf8')) }),
  };
}

/** The first line of a text (notes), without control characters, cut to `max` characters. */
export function firstLine(text: string, max = 60): string {
  const line = (text.split(/\r?\n/, 1)[0] ?? '').replace(/[\x00-\x1f\x7f]/g, ' ').trim();
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

/**
 * A table: a header line, then one line per row, columns aligned with two spaces between them;
 * `right[i]` aligns column i to the right (numbers). Trailing blanks are cut.
 */
export function table(header: readonly string[], rows: readonly (readonly string[])[], right: readonly boolean[] = []): string {
  const width = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (right[i] === true ? c.padStart(width[i]!) : c.padEnd(width[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header.map((h) => h.toUpperCase())), ...rows.map(line)].join('\n');
}

/** Logical bytes of a snapshot: the sum of its archives' sizes. */
export function logicalBytes(s: Snapshot): number {
  return s.files.reduce((n, f) => n + f.size, 0);
}

/** Bytes of the new chunks its backup stored (the manifest's stats), or undefined when not recorded. */
export function storedNewBytes(s: Snapshot): number | undefined {
  const v = s.manifest.unprotected.stats?.['bytesStored'];
  return typeof v === 'number' ? v : undefined;
}

/**
 * A count with its noun in the right number: `count(1, 'file')` is `1 file`, `count(2, 'file')`
 * and `count(0, 'file')` are `2 files` and `0 files`; `plural` for nouns that do not just take an
 * `s` (`count(n, 'entry', 'entries')`).
 */
export function count(n: number, noun: string, plural = `${noun}s`): string {
  return `${n} ${n === 1 ? noun : plural}`;
}

/**
 * A group move report as printed by `--json` (`group move`, `ns move`): the report, plus
 * `movedSnapshots`, the identity of each moved snapshot in the target namespace, and on each
 * skipped snapshot its identity in the source namespace, where it stays.
 */
export function moveGroupJson(r: MoveGroupReport): Record<string, unknown> {
  return {
    ...r,
    movedSnapshots: r.moved.map((time) => snapshotIdentity(r.to, r.group, time)),
    skipped: r.skipped.map((x) => ({ ...snapshotIdentity(r.from, r.group, x.time), ...x })),
  };
}

/** What a removal did to one snapshot, in `snapshots` of the `--json` of `group remove` and `ns remove`. */
export type RemovedSnapshotResult = 'removed' | 'kept-protected' | 'kept-in-use';

/**
 * A group removal report as printed by `--json` (`group remove`): the report, plus `snapshots`,
 * each snapshot's identity with what became of it.
 */
export function removeGroupJson(namespace: string, group: string, r: RemoveGroupReport): Record<string, unknown> {
  const one = (result: RemovedSnapshotResult) => (time: string) => ({ ...snapshotIdentity(namespace, group, time), result });
  return { ...r, snapshots: [...r.removedSnapshots.map(one('removed')), ...r.keptProtected.map(one('kept-protected')), ...r.keptLocked.map(one('kept-in-use'))] };
}

/**
 * A namespace removal report as printed by `--json` (`ns remove`): the report, plus `snapshots`,
 * each snapshot's identity with what became of it. The report names snapshots `ns:type/id/time`
 * (a namespace has no `:`).
 */
export function removeNamespaceJson(r: RemoveNamespaceReport): Record<string, unknown> {
  const one =
    (result: RemovedSnapshotResult) =>
    (label: string): SnapshotIdentity & { result: RemovedSnapshotResult } => {
      const cut = label.indexOf(':');
      return { ...snapshotIdentity(label.slice(0, cut), label.slice(cut + 1)), result };
    };
  return { ...r, snapshots: [...r.removedSnapshots.map(one('removed')), ...r.keptProtected.map(one('kept-protected')), ...r.keptLocked.map(one('kept-in-use'))] };
}

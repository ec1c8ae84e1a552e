/** Text and JSON formatting shared by several commands of the `cairn` command line. */
import type { Snapshot, TreeItem } from '../index.js';

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

/** Text and JSON formatting shared by several commands of the `cairn` command line. */
import type { TreeItem } from '../index.js';

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

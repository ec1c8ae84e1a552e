// Tree walks for the benches: counts, and per-entry records to compare a restored tree with its source.
import { createHash } from 'node:crypto';
import { lstatSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import path from 'node:path';

/**
 * Walks `root` (no symlinks followed). Returns the counts and, with `records`, one string per
 * entry (type, mode, owner, size, mtime in ns, and the MD5 of the content or the link target
 * with `hash`) keyed by the root-relative path; the root itself is left out.
 */
export function walk(root, { records = false, hash = false } = {}) {
  const c = { files: 0, dirs: 0, symlinks: 0, other: 0, bytes: 0, regular: [], map: records ? new Map() : undefined };
  const stack = [''];
  while (stack.length > 0) {
    const rel = stack.pop();
    const abs = rel === '' ? root : path.join(root, rel);
    for (const d of readdirSync(abs, { withFileTypes: true })) {
      const r = rel === '' ? d.name : `${rel}/${d.name}`;
      const p = path.join(root, r);
      let st;
      if (records || d.isFile()) st = lstatSync(p, { bigint: true });
      let kind;
      let extra = '';
      if (d.isDirectory()) {
        kind = 'd';
        c.dirs++;
        stack.push(r);
      } else if (d.isFile()) {
        kind = 'f';
        c.files++;
        c.bytes += Number(st.size);
        c.regular.push(r);
        if (hash) extra = createHash('md5').update(readFileSync(p)).digest('hex');
      } else if (d.isSymbolicLink()) {
        kind = 'l';
        c.symlinks++;
        if (records) extra = readlinkSync(p);
      } else {
        kind = 'o';
        c.other++;
      }
      if (records) {
        const size = kind === 'f' || kind === 'l' ? st.size : 0n;
        c.map.set(r, `${kind} ${st.mode.toString(8)} ${st.uid}:${st.gid} ${size} ${st.mtimeNs} ${extra}`);
      }
    }
  }
  return c;
}

/** Compares two walks' records: missing, extra and different entries (up to 5 examples each). */
export function compare(src, dst) {
  const out = { entries: src.map.size, missing: 0, extra: 0, differ: 0, examples: [] };
  for (const [p, rec] of src.map) {
    const got = dst.map.get(p);
    if (got === undefined) {
      out.missing++;
      if (out.examples.length < 5) out.examples.push(`missing ${p}`);
    } else if (got !== rec) {
      out.differ++;
      if (out.examples.length < 5) out.examples.push(`differs ${p}: ${rec} vs ${got}`);
    }
  }
  for (const p of dst.map.keys()) {
    if (!src.map.has(p)) {
      out.extra++;
      if (out.examples.length < 5) out.examples.push(`extra ${p}`);
    }
  }
  out.ok = out.missing === 0 && out.extra === 0 && out.differ === 0;
  return out;
}

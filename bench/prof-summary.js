#!/usr/bin/env node
/**
 * Summarises .cpuprofile files (from `node bench/run.js --cpu-prof <dir>`): self time per
 * function, per thread, top N.
 *
 *   node bench/prof-summary.js <dir-or-file>... [--top 15]
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';

const argv = process.argv.slice(2);
let top = 15;
const ti = argv.indexOf('--top');
if (ti >= 0) {
  top = Number(argv[ti + 1]);
  argv.splice(ti, 2);
}
const files = [];
for (const a of argv) {
  if (statSync(a).isDirectory()) {
    for (const f of readdirSync(a).sort()) if (f.endsWith('.cpuprofile')) files.push(path.join(a, f));
  } else files.push(a);
}
for (const file of files) {
  const prof = JSON.parse(readFileSync(file, 'utf8'));
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const self = new Map();
  const dt = prof.timeDeltas;
  let total = 0;
  for (let i = 0; i < prof.samples.length; i++) {
    const n = byId.get(prof.samples[i]);
    const d = dt[i] ?? 0;
    total += d;
    const cf = n.callFrame;
    const key = `${cf.functionName || '(anonymous)'} ${cf.url ? `${path.basename(cf.url)}:${cf.lineNumber + 1}` : ''}`.trim();
    self.set(key, (self.get(key) ?? 0) + d);
  }
  const rows = [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, top);
  console.log(`\n${file}: ${(total / 1e6).toFixed(2)} s sampled`);
  for (const [k, v] of rows) console.log(`  ${(v / 1e6).toFixed(3).padStart(7)} s ${((100 * v) / total).toFixed(1).padStart(5)} %  ${k}`);
}

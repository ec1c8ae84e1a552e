/**
 * `--verbose` tree backups and restores print about one progress line a second, each with a rate,
 * plus a final one (the entry count used to be in the label, and every new label printed a line).
 */
import t from 'tap';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { cairn, requireBuilt } from './run-cli.js';
import { seededBytes, tempDir } from '../helpers/fixtures.js';

if (requireBuilt(t)) {
  t.test('a tree backup and restore with --verbose: at most about a line a second, each with a rate', async (t) => {
    const dir = tempDir(t, 'cairn-progress-');
    const store = path.join(dir, 'store');
    t.equal((await cairn(['init', store, '--sync-level', 'none'])).code, 0);
    const src = path.join(dir, 'src');
    for (let d = 0; d < 20; d++) {
      mkdirSync(path.join(src, `d${d}`), { recursive: true });
      for (let f = 0; f < 150; f++) writeFileSync(path.join(src, `d${d}`, `f${f}`), `file ${d}/${f}\n`);
    }
    writeFileSync(path.join(src, 'big'), seededBytes(200 * 1024 * 1024, 8));
    for (const args of [
      ['backup', 'host/a', `t.tree:${src}`],
      ['restore', 'host/a', 't.tree', path.join(dir, 'out')],
    ]) {
      const t0 = performance.now();
      const r = await cairn(['--store', store, '--verbose', ...args]);
      const secs = (performance.now() - t0) / 1000;
      t.equal(r.code, 0, r.err);
      const lines = r.err.split('\n').filter((l) => l.startsWith('t.tree:'));
      t.ok(lines.length >= 1, `${args[0]}: progress shown`);
      t.ok(lines.length <= Math.ceil(secs) + 2, `${args[0]}: ${lines.length} lines in ${secs.toFixed(1)} s`);
      for (const l of lines) t.match(l, /^t\.tree: \d+( \/ \d+)? entries, [\d.]+ (B|KiB|MiB|GiB) \/ .*, [\d.]+ (B|KiB|MiB|GiB)\/s, ETA /, l);
      t.match(lines[lines.length - 1], /^t\.tree: 30[12]\d( \/ 3021)? entries, 200\.0 MiB/, `${args[0]}: the final state`);
    }
  });
}

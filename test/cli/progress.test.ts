import t from 'tap';
import { Writable } from 'node:stream';
import path from 'node:path';
import { Progress, progressMode } from '../../lib/cli/progress.js';
import { cairn, requireBuilt } from './run-cli.js';
import { seededBytes, tempDir, writeTemp } from '../helpers/fixtures.js';

function sink(isTTY: boolean): Writable & { isTTY: boolean; text: string; columns: number } {
  const w = new Writable({
    write(chunk: Buffer, _enc, cb) {
      w.text += chunk.toString();
      cb();
    },
  }) as Writable & { isTTY: boolean; text: string; columns: number; cursorTo?: unknown; clearLine?: unknown; moveCursor?: unknown };
  w.text = '';
  w.isTTY = isTTY;
  w.columns = 120;
  // What cli-progress calls on a terminal.
  w.cursorTo = (_x: number, _y?: number) => true;
  w.clearLine = () => true;
  w.moveCursor = () => true;
  return w;
}

t.test('the mode follows --json, --verbose and the terminal', async (t) => {
  t.equal(progressMode({ json: true, verbose: true }, { isTTY: true }), 'off');
  t.equal(progressMode({ verbose: true }, { isTTY: false }), 'lines');
  t.equal(progressMode({}, { isTTY: true }), 'bar');
  t.equal(progressMode({}, { isTTY: false }), 'off');
});

t.test('lines: at most one a second, and the last one', async (t) => {
  const s = sink(false);
  const p = new Progress('lines', s);
  p.update('disk.img', 0, 4 * 1048576);
  p.update('disk.img', 1048576, 4 * 1048576); // within the second: not printed
  p.update('disk.img', 4 * 1048576, 4 * 1048576); // the end: printed
  p.update('snapshots', 3, undefined, 'items');
  p.end();
  const lines = s.text.trim().split('\n');
  t.equal(lines.length, 3, s.text);
  t.match(lines[0], /^disk\.img: 0 B \/ 4\.00 MiB \(0\.0 %\), 0 B\/s, ETA \?$/);
  t.match(lines[1], /^disk\.img: 4\.00 MiB \/ 4\.00 MiB \(100\.0 %\), .*\/s, ETA 0s$/);
  t.match(lines[2], /^snapshots: 3 \/ \?, \d+\/s, ETA \?$/);
});

t.test('bar: drawn on a terminal with rate and ETA, cleared at the end', async (t) => {
  const s = sink(true);
  const p = new Progress('bar', s);
  p.update('disk.img', 0, 100 * 1048576);
  await new Promise((r) => setTimeout(r, 30));
  p.update('disk.img', 50 * 1048576, 100 * 1048576);
  p.update('tree', 10, undefined, 'items'); // a new label: a new bar, no total
  p.end();
  p.end();
  t.match(s.text, /disk\.img \[[=-]+\] \d+% .*\/100\.0 MiB .*\/s ETA/, JSON.stringify(s.text));
  t.match(s.text, /tree 10 \d+\/s/);
  const off = sink(true);
  new Progress('off', off).update('x', 1, 2);
  t.equal(off.text, '');
});

if (requireBuilt(t)) {
  t.test('cairn --verbose backup prints progress lines on stderr', async (t) => {
    const dir = tempDir(t, 'cairn-cli-');
    const store = path.join(dir, 'store');
    t.equal((await cairn(['init', store, '--sync-level', 'none'])).code, 0);
    const img = await writeTemp(dir, 'disk.raw', seededBytes(3 << 20, 4));
    const r = await cairn(['--store', store, '--verbose', 'backup', 'vm/1', `disk.img:${img}`]);
    t.equal(r.code, 0, r.err);
    t.match(r.err, /disk\.img: 3\.00 MiB \/ 3\.00 MiB \(100\.0 %\)/);
    const quiet = await cairn(['--store', store, 'backup', 'vm/1', `disk.img:${img}`]);
    t.equal(quiet.err, '', 'quiet when stderr is not a terminal');
  });
}

t.test('lines: a second count beside the bytes; the last state is printed at the end', async (t) => {
  const s = sink(false);
  const p = new Progress('lines', s);
  for (let i = 1; i <= 5000; i++) p.update('etc.tree', i * 100, undefined, 'bytes', { done: i, what: 'entries' });
  p.end();
  const lines = s.text.trim().split('\n');
  t.equal(lines.length, 2, s.text);
  t.match(lines[0], /^etc\.tree: 1 entries, 100 B \/ \?, .*\/s, ETA \?$/);
  t.match(lines[1], /^etc\.tree: 5000 entries, 488\.3 KiB \/ \?, .*\/s, ETA \?$/);
  const s2 = sink(false);
  const q = new Progress('lines', s2);
  q.update('x.tree', 10, 5, 'bytes', { done: 1, total: 2, what: 'entries' }); // past an estimate: no total
  t.match(s2.text, /^x\.tree: 1 \/ 2 entries, 10 B \/ \?, /);
});

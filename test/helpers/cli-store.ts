/**
 * A datastore made through the command line (64 KiB image chunks, sync level none) and a source
 * beside it: `disk.raw` (300,000 seeded bytes), `vm.conf`, and a tree `tree/sub/f`.
 */
import type { Test } from 'tap';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { cairn } from '../cli/run-cli.js';
import { seededBytes } from './fixtures.js';

/** Creates the store `<dir>/<name>` and its source `<dir>/<name>-src`. */
export async function cliStore(t: Test, dir: string, name: string): Promise<{ s: string; src: string }> {
  const s = path.join(dir, name);
  t.equal((await cairn(['init', s, '--image-chunk-size', '65536', '--sync-level', 'none'])).code, 0, 'init');
  const src = path.join(dir, `${name}-src`);
  mkdirSync(path.join(src, 'tree', 'sub'), { recursive: true });
  writeFileSync(path.join(src, 'disk.raw'), seededBytes(300_000, 7));
  writeFileSync(path.join(src, 'vm.conf'), 'cores: 2\n');
  writeFileSync(path.join(src, 'tree', 'sub', 'f'), seededBytes(5000, 3));
  return { s, src };
}

/**
 * Every script in examples/ runs to completion (exit 0) against a fresh datastore, as a user would
 * run it: `node examples/<name>.js`, importing the package by name.
 */
import t from 'tap';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { REPO, requireBuilt, runScript } from './cli/run-cli.js';
import { tempDir } from './helpers/fixtures.js';

const EXPECT: Record<string, RegExp> = {
  'quickstart.js': /identical/i,
  'backup-directory.js': /again backup .* 0 files read, \d+ unchanged \(not opened\)[\s\S]*identical to the source/,
  // How many keep-weekly keeps depends on the weekday of the run: the real prune must do what the dry run said.
  'retention.js': /dry run: would remove ([1-9]) of 10\npruned: removed \1, kept \d+\n[\s\S]*garbage collection: removed \d+ chunks/,
  'mount-and-copy.js': /copied examples\.tree\/mount-and-copy\.js .*: identical/,
};

if (requireBuilt(t)) {
  const scripts = readdirSync(path.join(REPO, 'examples')).filter((f) => f.endsWith('.js')).sort();
  t.same(scripts, Object.keys(EXPECT).sort(), 'every example is run here');
  for (const name of scripts) {
    const skip = name === 'mount-and-copy.js' && (process.getuid?.() !== 0 || !existsSync('/dev/fuse')) ? 'needs root and /dev/fuse' : false;
    t.test(name, { skip }, async (t) => {
      const dir = tempDir(t, 'cairn-example-');
      const r = await runScript(path.join(REPO, 'examples', name), [], { CAIRN_STORE: path.join(dir, 'store') }, dir);
      t.equal(r.code, 0, `exit 0 (stderr: ${r.err.slice(0, 2000)})`);
      t.match(r.out, EXPECT[name]!);
    });
  }
}

import t from 'tap';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { REPO, cairn, requireBuilt } from './run-cli.js';

if (requireBuilt(t)) {
  t.test('--help of every command exits 0 and shows an example', async (t) => {
    for (const cmd of [['init'], ['backup'], ['snapshots'], ['show'], ['restore'], ['ns', 'create'], ['ns', 'list'], ['ns', 'remove']]) {
      const r = await cairn([...cmd, '--help']);
      t.equal(r.code, 0, `${cmd.join(' ')} --help: exit 0`);
      t.match(r.out, /Usage: cairn/, `${cmd.join(' ')} --help: usage`);
      t.match(r.out, /Example/, `${cmd.join(' ')} --help: example`);
    }
    const helpCmd = await cairn(['help', 'backup']);
    t.equal(helpCmd.code, 0);
    t.match(helpCmd.out, /Example/);
    for (const cmd of [[], ['ns']]) {
      const r = await cairn([...cmd, '--help']);
      t.equal(r.code, 0, `cairn ${cmd.join(' ')} --help: exit 0`);
      t.match(r.out, /Usage: cairn/);
      t.match(r.out, /Example/, `cairn ${cmd.join(' ')} --help: example`);
    }
  });

  t.test('--version and -V print the package version', async (t) => {
    const { version } = JSON.parse(readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { version: string };
    for (const flag of ['--version', '-V']) {
      const r = await cairn([flag]);
      t.equal(r.code, 0, `${flag}: exit 0`);
      t.equal(r.out.trim(), version, `${flag}: the version`);
    }
  });
}

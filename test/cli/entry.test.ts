import t from 'tap';
import { existsSync } from 'node:fs';
import { copyFile, cp, mkdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { tempDir } from '../helpers/fixtures.js';
import { CLI, REPO, runScript, requireBuilt } from './run-cli.js';

if (requireBuilt(t)) {
  t.test('a reader that goes away (cairn --help | head) ends the command quietly', async (t) => {
    const env = { ...process.env };
    delete env['NODE_OPTIONS'];
    for (const args of [['--help'], ['mount', '--help']]) {
      const child = spawn(process.execPath, [CLI, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      child.stdout.destroy(); // closed before the command writes: every write gets EPIPE
      let err = '';
      child.stderr.on('data', (b: Buffer) => (err += b.toString('utf8')));
      const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
      t.equal(code, 0, `${args.join(' ')}: exit 0`);
      t.equal(err, '', `${args.join(' ')}: no stack trace`);
    }
  });

  t.test('the entry point runs only as a script', async (t) => {
    const dir = tempDir(t, 'cairn-cli-');
    // Importing the module (here from a script of our own, with CLI-like arguments) must not run it.
    const importer = path.join(dir, 'importer.mjs');
    await writeFile(importer, `const m = await import(${JSON.stringify(CLI)});\nconsole.log(typeof m.main, typeof m.buildProgram, String(process.exitCode));\n`);
    const target = path.join(dir, 'should-not-exist');
    const r = await runScript(importer, ['init', target]);
    t.equal(r.code, 0, r.err);
    t.equal(r.out.trim(), 'function function undefined', 'only the importer printed');
    t.equal(r.err, '');
    t.notOk(existsSync(target), 'init did not run');

    // A copy of the package at a path with a space: run as a script it must work.
    const spaced = path.join(dir, 'with space');
    await mkdir(spaced);
    await cp(path.join(REPO, 'dist'), path.join(spaced, 'dist'), { recursive: true });
    await copyFile(path.join(REPO, 'package.json'), path.join(spaced, 'package.json'));
    await symlink(path.join(REPO, 'node_modules'), path.join(spaced, 'node_modules'));
    await symlink(path.join(REPO, 'native'), path.join(spaced, 'native'));
    const h = await runScript(path.join(spaced, 'dist', 'cli', 'main.js'), ['--help']);
    t.equal(h.code, 0);
    t.match(h.out, /Usage: cairn/, 'runs from a directory whose path has a space');
  });
}

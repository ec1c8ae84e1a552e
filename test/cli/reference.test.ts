/**
 * lib/cli/CLI.md is the help of every command, as `cairn <command> --help` prints it. This test
 * renders it again and fails when the file is stale; `CAIRN_UPDATE_CLI_DOC=1 npx tap
 * test/cli/reference.test.ts` rewrites it.
 */
import t from 'tap';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { buildProgram } from '../../lib/cli/main.js';
import { REPO } from './run-cli.js';

const FILE = path.join(REPO, 'lib', 'cli', 'CLI.md');

function helpOf(cmd: Command): string {
  let text = '';
  cmd.configureOutput({ writeOut: (s) => (text += s), writeErr: (s) => (text += s) });
  cmd.outputHelp();
  return text.trimEnd();
}

function render(): string {
  const out = [
    '# The `cairn` command line',
    '',
    'Every command and its `--help`, generated from the program itself (test/cli/reference.test.ts checks',
    'that this file is current). Global options (`--store`, `--ns`, `--json`) go before or after the',
    'command; exit codes are in the README.',
    '',
  ];
  const walk = (cmd: Command, name: string): void => {
    out.push(`## ${name}`, '', '```', helpOf(cmd), '```', '');
    for (const c of cmd.commands) walk(c, `${name} ${c.name()}`);
  };
  walk(buildProgram(), 'cairn');
  return out.join('\n');
}

t.test('lib/cli/CLI.md is the current help of every command', async (t) => {
  const now = render();
  if (process.env['CAIRN_UPDATE_CLI_DOC'] === '1') writeFileSync(FILE, now);
  t.equal(readFileSync(FILE, 'utf8'), now, 'regenerate with CAIRN_UPDATE_CLI_DOC=1 npx tap test/cli/reference.test.ts');
});

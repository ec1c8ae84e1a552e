/**
 * Helpers for the end-to-end tests of the built command line (`node dist/cli/main.js`). `npm test`
 * builds dist first; while developing run `npm run build:ts`.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = fileURLToPath(new URL('../../', import.meta.url));
export const CLI = path.join(REPO, 'dist', 'cli', 'main.js');

export interface Run {
  code: number | null;
  stdout: Buffer;
  out: string;
  err: string;
}

/** Runs a script with node; CAIRN_STORE is removed from the environment unless given in `env`. */
export function runScript(script: string, args: string[], env: Record<string, string> = {}, cwd = REPO): Promise<Run> {
  const base = { ...process.env };
  delete base['CAIRN_STORE'];
  // The test runner's loader options are not for the child.
  delete base['NODE_OPTIONS'];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, ...args], { cwd, env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    child.on('close', (code) => {
      const stdout = Buffer.concat(out);
      resolve({ code, stdout, out: stdout.toString('utf8'), err: Buffer.concat(err).toString('utf8') });
    });
  });
}

export const cairn = (args: string[], env: Record<string, string> = {}): Promise<Run> => runScript(CLI, args, env);

/** Fails the file early when dist is not built. */
export function requireBuilt(t: { fail: (m: string) => void }): boolean {
  if (existsSync(CLI)) return true;
  t.fail(`${CLI} is missing: run npm run build:ts`);
  return false;
}

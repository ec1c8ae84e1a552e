// Things planted in a datastore, and names that look like temp files (issue 12).
//
// Symlinks to a directory outside the datastore, planted as a snapshot directory, as an entry of
// an unfinished snapshot directory, as a group directory, as a namespace directory and as a file
// of a group: no command deletes (or reads through) what they point to. Every command either
// works or fails with ERR_UNSAFE_PATH naming the planted path; the canary outside survives.
import t, { type Test } from 'tap';
import { existsSync, mkdirSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { tempDir } from '../helpers/fixtures.js';
import { cairn, requireBuilt, type Run } from '../cli/run-cli.js';
import { tempFileName } from '../../lib/util/temp-name.js';
import { cliStore } from '../helpers/cli-store.js';

t.setTimeout(120_000);

const T1 = '2026-01-01T00:00:00Z';
const T0 = '2025-01-01T00:00:00Z';

/** A directory outside the datastore holding a canary, a temp-looking file, a chunk-looking file and a group tree. */
const CANARY_TEMP = tempFileName('canary');

function makeOutside(dir: string): string {
  const out = path.join(dir, 'outside');
  mkdirSync(path.join(out, 'host', 'x', T0), { recursive: true });
  mkdirSync(path.join(out, 'ns', 'y'), { recursive: true });
  writeFileSync(path.join(out, 'canary'), 'alive');
  writeFileSync(path.join(out, 'host', 'x', T0, 'canary'), 'alive');
  writeFileSync(path.join(out, CANARY_TEMP), 'alive');
  writeFileSync(path.join(out, 'a'.repeat(64)), 'alive');
  const old = Date.now() / 1000 - 86_400;
  for (const f of ['canary', CANARY_TEMP, 'a'.repeat(64)]) utimesSync(path.join(out, f), old, old);
  return out;
}

function canaryAlive(t: Test, out: string, what: string): void {
  const files = ['canary', path.join('host', 'x', T0, 'canary'), CANARY_TEMP, 'a'.repeat(64)];
  const missing = files.filter((f) => !existsSync(path.join(out, f)));
  t.same(missing, [], `${what}: everything outside the datastore survives`);
}

function okOrUnsafe(t: Test, r: Run, what: string): void {
  if (r.code === 0) {
    t.pass(`${what}: exit 0`);
    return;
  }
  t.equal(r.code, 5, `${what}: exit 5 (ERR_UNSAFE_PATH), got ${r.code}: ${r.err.trim().slice(0, 300)}`);
  t.match(r.err, /ERR_UNSAFE_PATH|not what the datastore layout|symlink/i, `${what}: the error says what is wrong`);
}

if (requireBuilt(t)) {
  const dir = tempDir(t, 'cairn-planted-');

  /** Each planting, on a fresh store with two snapshots of host/g, then the commands. */
  const plantings: { name: string; plant: (s: string, out: string) => void; group?: string; ns?: string }[] = [
    { name: 'a snapshot directory', plant: (s, out) => symlinkSync(out, path.join(s, 'host', 'g', T0)) },
    {
      name: 'an entry inside an unfinished snapshot directory',
      plant: (s, out) => {
        mkdirSync(path.join(s, 'host', 'g', T0));
        symlinkSync(out, path.join(s, 'host', 'g', T0, 'link'));
      },
    },
    { name: 'a group directory', plant: (s, out) => symlinkSync(out, path.join(s, 'host', 'evil')), group: 'host/evil' },
    { name: 'a file inside a group', plant: (s, out) => symlinkSync(out, path.join(s, 'host', 'g', 'notes')) },
    {
      name: 'a namespace directory',
      plant: (s, out) => {
        mkdirSync(path.join(s, 'ns'), { recursive: true });
        symlinkSync(out, path.join(s, 'ns', 'evil'));
      },
      ns: 'evil',
    },
  ];

  for (const p of plantings) {
    t.test(`a symlink planted as ${p.name}`, async (t) => {
      const sub = path.join(dir, p.name.replace(/\W+/g, '-'));
      mkdirSync(sub);
      const out = makeOutside(sub);
      const { s, src } = await cliStore(t, sub, 'store');
      for (const time of [T1]) {
        const r = await cairn(['--store', s, 'backup', 'host/g', `d.img:${path.join(src, 'disk.raw')}`, `t.tree:${path.join(src, 'tree')}`, '--time', time]);
        t.equal(r.code, 0, `backup ${time}: ${r.err}`);
      }
      p.plant(s, out);
      const group = p.group ?? 'host/g';
      const nsArgs = p.ns === undefined ? [] : ['--ns', p.ns];
      const commands: [string, string[]][] = [
        ['snapshots', [...nsArgs, 'snapshots']],
        ['verify', [...nsArgs, 'verify']],
        ['gc', ['gc', '--skew', '0']],
        ['backup', [...nsArgs, 'backup', group, `d.img:${path.join(src, 'disk.raw')}`]],
        ['forget', [...nsArgs, 'forget', `${group}/${T1}`]],
        ['prune', [...nsArgs, 'prune', group, '--keep-last', '1']],
        ['group remove', [...nsArgs, 'group', 'remove', group]],
      ];
      if (p.ns !== undefined) commands.push(['ns remove --recursive', ['ns', 'remove', p.ns, '--recursive']]);
      for (const [what, args] of commands) {
        const r = await cairn(['--store', s, ...args]);
        okOrUnsafe(t, r, what);
        canaryAlive(t, out, what);
      }
    });
  }
}

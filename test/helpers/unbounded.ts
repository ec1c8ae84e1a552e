// Helper of test/hardening/unbounded-reads-*.test.ts. Datastore files that never end (issue 12): a config, manifest, index, blob or chunk replaced by a
// symlink to /dev/zero, a FIFO, a directory or a 100 GiB sparse file. Every command finishes within
// seconds with the file kind's coded error, and its memory stays small (reads used to go to EOF:
// several GiB in seconds; a FIFO chunk hung restore and verify).
import type { Test } from 'tap';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, truncateSync, writeFileSync, cpSync } from 'node:fs';
import path from 'node:path';
import { tempDir, seededBytes } from './fixtures.js';
import { decodeFixedIndex } from '../../lib/format/fixed-index.js';
import { toHex } from '../../lib/util/bytes.js';
import { initHash } from '../../lib/codec/hash.js';
import { chunkKey } from '../../lib/store/chunk-store.js';
import { CLI, requireBuilt } from '../cli/run-cli.js';

const T1 = '2026-01-01T00:00:00Z';
const TIME = '/usr/bin/time';
const LIMIT_MS = 20_000;

interface Outcome {
  code: number | null;
  err: string;
  ms: number;
  maxRssKiB: number | undefined;
}

/** Runs the CLI under a time limit (killed after LIMIT_MS), measuring its peak memory with time -v. */
function run(args: string[]): Promise<Outcome> {
  const env = { ...process.env };
  delete env['NODE_OPTIONS'];
  delete env['CAIRN_STORE'];
  const haveTime = existsSync(TIME);
  const [cmd, argv] = haveTime ? [TIME, ['-v', process.execPath, CLI, ...args]] : [process.execPath, [CLI, ...args]];
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, argv, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const err: Buffer[] = [];
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.stdout.on('data', (b: Buffer) => err.push(b));
    const timer = setTimeout(() => child.kill('SIGKILL'), LIMIT_MS);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      const text = Buffer.concat(err).toString('utf8');
      const m = /Maximum resident set size \(kbytes\): (\d+)/.exec(text);
      resolve({ code, err: text, ms: Date.now() - t0, maxRssKiB: m === null ? undefined : Number(m[1]) });
    });
  });
}

type Abuse = 'dev-zero' | 'fifo' | 'directory' | 'sparse';
const ABUSES: Abuse[] = ['dev-zero', 'fifo', 'directory', 'sparse'];

function plant(file: string, abuse: Abuse): void {
  rmSync(file, { force: true });
  if (abuse === 'dev-zero') symlinkSync('/dev/zero', file);
  else if (abuse === 'fifo') execFileSync('mkfifo', [file]);
  else if (abuse === 'directory') mkdirSync(file);
  else {
    writeFileSync(file, '');
    truncateSync(file, 100 * 1024 ** 3);
  }
}

function check(t: Test, r: Outcome, code: string, what: string): void {
  t.ok(r.code !== null && r.ms < LIMIT_MS, `${what}: finished (${r.ms} ms)`);
  t.not(r.code, 0, `${what}: fails`);
  t.match(r.err, code, `${what}: ${code} (${r.err.split('\n')[0]?.slice(0, 200)})`);
  if (r.maxRssKiB !== undefined) t.ok(r.maxRssKiB < 400 * 1024, `${what}: peak memory ${Math.round(r.maxRssKiB / 1024)} MiB`);
}

/** Plants every abuse in place of each file kind named in `only` and runs the commands that read it. */
export function unboundedReads(t: Test, only: readonly string[]): void {
  if (!requireBuilt(t)) return;
  const dir = tempDir(t, 'cairn-unbounded-');
  const tpl = path.join(dir, 'tpl');
  const src = path.join(dir, 'src');
  mkdirSync(path.join(src, 'tree'), { recursive: true });
  writeFileSync(path.join(src, 'disk.raw'), seededBytes(200_000, 5));
  writeFileSync(path.join(src, 'tree', 'f'), seededBytes(3000, 6));
  writeFileSync(path.join(src, 'vm.conf'), 'cores: 1\n');
  t.before(async () => {
    const init = await run(['init', tpl, '--image-chunk-size', '65536', '--sync-level', 'none']);
    if (init.code !== 0) throw new Error(`init: ${init.err}`);
    const b = await run([
      '--store',
      tpl,
      'backup',
      'vm/1',
      `d.img:${path.join(src, 'disk.raw')}`,
      `t.tree:${path.join(src, 'tree')}`,
      `c.blob:${path.join(src, 'vm.conf')}`,
      '--time',
      T1,
    ]);
    if (b.code !== 0) throw new Error(`backup: ${b.err}`);
    await initHash(); // decodeFixedIndex checks the index's BLAKE3 checksum
  });
  const snapRel = path.join('vm', '1', T1);
  // The image's first chunk (the restore below reads it for sure; the first chunk file in the
  // store may be one of the tree's, whose digests change with the source's mtimes).
  const firstChunk = (s: string): string => {
    const hex = toHex(decodeFixedIndex(readFileSync(path.join(s, snapRel, 'd.img.fidx'))).digestAt(0));
    return path.join(s, chunkKey(hex));
  };

  const kinds: { kind: string; file: (s: string) => string; code: string; commands: (s: string, out: string) => string[][] }[] = [
    { kind: 'config', file: (s) => path.join(s, 'cairn.json'), code: 'ERR_CONFIG_CORRUPT', commands: (s) => [['--store', s, 'snapshots']] },
    {
      kind: 'manifest',
      file: (s) => path.join(s, snapRel, 'manifest.blob'),
      code: 'ERR_MANIFEST_CORRUPT',
      commands: (s, out) => [
        ['--store', s, '--json', 'verify'],
        ['--store', s, 'restore', `vm/1/${T1}`, 'c.blob', path.join(out, 'c')],
        ['--store', s, 'gc'],
      ],
    },
    {
      kind: 'fixed index',
      file: (s) => path.join(s, snapRel, 'd.img.fidx'),
      code: 'ERR_INDEX_CORRUPT',
      commands: (s, out) => [
        ['--store', s, 'restore', 'vm/1', 'd.img', path.join(out, 'd')],
        ['--store', s, '--json', 'verify'],
        ['--store', s, 'gc'],
      ],
    },
    {
      kind: 'dynamic index',
      file: (s) => path.join(s, snapRel, 't.tree.meta.didx'),
      code: 'ERR_INDEX_CORRUPT',
      commands: (s, out) => [
        ['--store', s, 'restore', 'vm/1', 't.tree', path.join(out, 't')],
        ['--store', s, 'gc'],
      ],
    },
    {
      kind: 'blob',
      file: (s) => path.join(s, snapRel, 'c.blob'),
      code: 'ERR_BLOB_CORRUPT',
      commands: (s, out) => [['--store', s, 'restore', 'vm/1', 'c.blob', path.join(out, 'c')]],
    },
    {
      kind: 'chunk',
      file: firstChunk,
      code: 'ERR_CHUNK_CORRUPT',
      commands: (s, out) => [
        ['--store', s, 'restore', 'vm/1', 'd.img', path.join(out, 'd')],
        ['--store', s, '--json', 'verify'],
      ],
    },
  ];

  let n = 0;
  for (const k of kinds.filter((x) => only.includes(x.kind))) {
    t.test(`a ${k.kind} that never ends`, async (t) => {
      for (const abuse of ABUSES) {
        const s = path.join(dir, `s${++n}`);
        cpSync(tpl, s, { recursive: true });
        const out = path.join(dir, `out${n}`);
        mkdirSync(out);
        const file = k.file(s);
        plant(file, abuse);
        for (const args of k.commands(s, out)) check(t, await run(args), k.code, `${k.kind} as ${abuse}: ${args.slice(2).join(' ')}`);
        // The planted file is reported, not touched (verify renames a corrupt chunk aside: not a symlink or FIFO).
        if (abuse !== 'sparse' && abuse !== 'directory')
          t.ok(existsSync(file) || readdirSync(path.dirname(file)).some((x) => x.startsWith(path.basename(file))), `${k.kind} as ${abuse}: still there`);
        rmSync(s, { recursive: true, force: true });
      }
    });
  }
}

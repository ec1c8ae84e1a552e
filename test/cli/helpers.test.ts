/**
 * Unit tests of the CLI's exported helpers. Importing lib/cli/main.ts must not run the CLI.
 */
import t from 'tap';
import { CommanderError } from 'commander';
import { CairnError, ERROR_CODES, isCairnError } from '../../lib/errors.js';

const exitBefore = process.exitCode;
const argvBefore = [...process.argv];
const { buildProgram, exitCodeOf, humanBytes, main, parseRangesFile } = await import('../../lib/cli/main.js');

t.test('importing main.ts does not run the CLI', async (t) => {
  await new Promise<void>((r) => setTimeout(r, 50));
  t.equal(process.exitCode, exitBefore, 'process.exitCode untouched');
  t.same(process.argv, argvBefore);
  t.type(main, 'function');
  t.type(buildProgram, 'function');
});

t.test('exitCodeOf', async (t) => {
  const cases: [string, number][] = [
    ['ERR_INVALID_ARGUMENT', 2],
    ['ERR_INVALID_NAME', 2],
    ['ERR_CHANGED_MAP', 2],
    ['ERR_TIME_ORDER', 2],
    ['ERR_DATASTORE_EXISTS', 2],
    ['ERR_NESTED_DATASTORE', 2],
    ['ERR_EXISTS', 2],
    ['ERR_CONFLICT', 2],
    ['ERR_NOT_EMPTY', 2],
    ['ERR_NOT_FOUND', 3],
    ['ERR_NOT_A_DATASTORE', 3],
    ['ERR_LOCKED', 4],
    ['ERR_PROTECTED', 4],
    ['ERR_CHUNK_CORRUPT', 5],
    ['ERR_CHUNK_MISSING', 5],
    ['ERR_INDEX_CORRUPT', 5],
    ['ERR_MANIFEST_CORRUPT', 5],
    ['ERR_BLOB_CORRUPT', 5],
    ['ERR_TREE_CORRUPT', 5],
    ['ERR_UNSAFE_PATH', 5],
    ['ERR_CONFIG_CORRUPT', 5],
    ['ERR_FORMAT_VERSION', 5],
    ['ERR_IO', 6],
    ['ERR_READ_ONLY', 6],
    ['ERR_NOT_OPEN', 1],
    ['ERR_ABORTED', 1],
    ['ERR_WRITER_STATE', 1],
    ['ERR_NATIVE', 1],
    ['ERR_UNSUPPORTED', 1],
  ];
  for (const [code, exit] of cases) t.equal(exitCodeOf(new CairnError(code as never, 'x')), exit, `${code} -> ${exit}`);
  t.same(new Set(cases.map(([c]) => c)), new Set(ERROR_CODES), 'every code is covered by this table');
  for (const code of ERROR_CODES) {
    const n = exitCodeOf(new CairnError(code, 'x'));
    t.ok(n >= 1 && n <= 6, `${code}: exit ${n} in 1..6`);
  }
  t.equal(exitCodeOf(new CommanderError(1, 'commander.unknownOption', 'bad')), 2, 'usage errors: 2');
  t.equal(exitCodeOf(new Error('plain')), 1);
  t.equal(exitCodeOf('string'), 1);
  t.equal(exitCodeOf(undefined), 1);
  t.equal(exitCodeOf({ code: 'ERR_NOT_FOUND' }), 1, 'a look-alike is not a CairnError');
});

t.test('humanBytes', async (t) => {
  t.equal(humanBytes(0), '0 B');
  t.equal(humanBytes(1), '1 B');
  t.equal(humanBytes(1023), '1023 B');
  t.equal(humanBytes(1024), '1.00 KiB');
  t.equal(humanBytes(1536), '1.50 KiB');
  t.equal(humanBytes(10 * 1024), '10.0 KiB');
  t.equal(humanBytes(1000 * 1000), '976.6 KiB');
  t.equal(humanBytes(1024 * 1024), '1.00 MiB');
  t.equal(humanBytes(1.5 * 1024 ** 3), '1.50 GiB');
  t.equal(humanBytes(2 * 1024 ** 4), '2.00 TiB');
  t.equal(humanBytes(2048 * 1024 ** 4), '2048.0 TiB', 'TiB is the largest unit');
  t.equal(humanBytes(123.456 * 1024), '123.5 KiB');
});

t.test('parseRangesFile', async (t) => {
  t.same(parseRangesFile('', 'f'), { ranges: [] });
  t.same(parseRangesFile('\n\n# only comments\n   \n', 'f'), { ranges: [] });
  t.same(parseRangesFile('0 4096\n65536 10\n', 'f'), {
    ranges: [
      [0, 4096],
      [65536, 10],
    ],
  });
  t.same(
    parseRangesFile('0x10 0x20\n0xfF 1', 'f'),
    {
      ranges: [
        [16, 32],
        [255, 1],
      ],
    },
    'hex',
  );
  t.same(
    parseRangesFile('1,2\n3 , 4\n5\t6\n7  8 # trailing comment\r\n', 'f'),
    {
      ranges: [
        [1, 2],
        [3, 4],
        [5, 6],
        [7, 8],
      ],
    },
    'comma, tab, spaces, CRLF, comments',
  );
  t.same(parseRangesFile('  9 10  ', 'f'), { ranges: [[9, 10]] }, 'surrounding whitespace');
  t.same(parseRangesFile('0x1F 0xff', 'f'), { ranges: [[31, 255]] }, 'mixed-case hex digits');

  for (const bad of ['1', '1 2 3', 'a b', '-1 5', '1.5 2', '0x 5', '1 0xg', '1;2', '1e3 4']) {
    try {
      parseRangesFile(`0 1\n# c\n${bad}\n`, 'ranges.txt');
      t.fail(`accepted ${JSON.stringify(bad)}`);
    } catch (e) {
      t.ok(isCairnError(e, 'ERR_INVALID_ARGUMENT'), `refused ${JSON.stringify(bad)}`);
      t.match((e as Error).message, /^ranges\.txt:3: expected "<offset> <length>"/, 'names file and 1-based line');
      t.equal((e as CairnError).details.path, 'ranges.txt');
    }
  }
});

t.test('main() in process: help and usage errors', async (t) => {
  const writes: string[] = [];
  const orig = process.stdout.write.bind(process.stdout);
  const origErr = process.stderr.write.bind(process.stderr);
  process.stdout.write = ((s: string | Uint8Array) => (writes.push(String(s)), true)) as typeof process.stdout.write;
  process.stderr.write = ((s: string | Uint8Array) => (writes.push(String(s)), true)) as typeof process.stderr.write;
  let help: number;
  let unknown: number;
  let noStore: number;
  const saved = process.env['CAIRN_STORE'];
  delete process.env['CAIRN_STORE'];
  try {
    help = await main(['init', '--help']);
    unknown = await main(['nope']);
    noStore = await main(['--json', 'snapshots']);
  } finally {
    process.stdout.write = orig;
    process.stderr.write = origErr;
    if (saved !== undefined) process.env['CAIRN_STORE'] = saved;
  }
  t.equal(help, 0);
  t.equal(unknown, 2);
  t.equal(noStore, 2);
  const all = writes.join('');
  t.match(all, /Example:\n {2}cairn init/);
  t.match(all, /"code":"ERR_INVALID_ARGUMENT"/, 'a --json error is printed as JSON');
});

import t from 'tap';
import {
  ARCHIVE_SUFFIX,
  BACKUP_TYPES,
  MAX_NAME_LENGTH,
  MAX_NAMESPACE_DEPTH,
  MAX_NAMESPACE_LENGTH,
  archiveKind,
  archiveName,
  formatGroup,
  formatSnapshotTime,
  isBackupType,
  parseGroup,
  parseNamespace,
  parseSnapshotTime,
} from '../lib/types.js';
import { isCairnError } from '../lib/errors.js';

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return isCairnError(e) ? e.code : `not a CairnError: ${String(e)}`;
  }
  return undefined;
}

t.test('constants', async (t) => {
  t.equal(MAX_NAMESPACE_DEPTH, 7);
  t.equal(MAX_NAMESPACE_LENGTH, 256);
  t.equal(MAX_NAME_LENGTH, 128);
  t.same([...BACKUP_TYPES], ['vm', 'ct', 'host']);
});

t.test('parseNamespace: valid names', async (t) => {
  t.same(parseNamespace(''), [], 'the root namespace');
  t.same(parseNamespace('a'), ['a']);
  t.same(parseNamespace('site-a/rack_1/b.c'), ['site-a', 'rack_1', 'b.c']);
  t.same(parseNamespace('_x/0'), ['_x', '0']);
  const seven = ['a', 'b', 'c', 'd', 'e', 'f', 'g'].join('/');
  t.same(parseNamespace(seven), ['a', 'b', 'c', 'd', 'e', 'f', 'g'], 'depth 7 is allowed');
  const name256 = `${'a'.repeat(128)}/${'b'.repeat(127)}`;
  t.equal(name256.length, 256);
  t.same(parseNamespace(name256), ['a'.repeat(128), 'b'.repeat(127)], '256 characters are allowed');
  t.same(parseNamespace('x'.repeat(128)), ['x'.repeat(128)], 'a 128-character component is allowed');
});

t.test('parseNamespace: refused names', async (t) => {
  const eight = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'].join('/');
  t.equal(
    code(() => parseNamespace(eight)),
    'ERR_INVALID_NAME',
    'depth 8 is refused',
  );
  const name257 = `${'a'.repeat(128)}/${'b'.repeat(128)}`;
  t.equal(name257.length, 257);
  t.equal(
    code(() => parseNamespace(name257)),
    'ERR_INVALID_NAME',
    '257 characters are refused',
  );
  t.equal(
    code(() => parseNamespace('x'.repeat(129))),
    'ERR_INVALID_NAME',
    'a 129-character component is refused',
  );
  for (const bad of ['..', '.', '.x', 'a/..', '../a', 'a b', 'a//b', '/a', 'a/', '/', 'a/.hidden', 'a\\b', 'ä', 'a:b', '-a', 'a\0b', 'a\nb']) {
    t.equal(
      code(() => parseNamespace(bad)),
      'ERR_INVALID_NAME',
      `refused: ${JSON.stringify(bad)}`,
    );
  }
  try {
    parseNamespace('ok/a b');
  } catch (e) {
    t.ok(isCairnError(e));
    t.equal((e as { details: { namespace?: string } }).details.namespace, 'ok/a b', 'details name the namespace');
    t.match((e as Error).message, /a b/);
  }
  t.equal(
    code(() => parseNamespace(42 as unknown as string)),
    'ERR_INVALID_NAME',
    'a non-string is refused',
  );
});

t.test('parseGroup / formatGroup / isBackupType', async (t) => {
  t.same(parseGroup('vm/100'), { type: 'vm', id: '100' });
  t.same(parseGroup('ct/web-1.a_b'), { type: 'ct', id: 'web-1.a_b' });
  t.same(parseGroup('host/h'), { type: 'host', id: 'h' });
  t.equal(formatGroup(parseGroup('host/srv01')), 'host/srv01');
  t.same(parseGroup(`vm/${'9'.repeat(128)}`).id.length, 128);
  for (const bad of ['vm', 'vm/', '/100', 'xx/100', 'VM/100', 'vm/1/2', 'vm/..', 'vm/.x', 'vm/a b', 'vm//1', '', `vm/${'9'.repeat(129)}`, 'qemu/1']) {
    t.equal(
      code(() => parseGroup(bad)),
      'ERR_INVALID_NAME',
      `refused: ${JSON.stringify(bad)}`,
    );
  }
  try {
    parseGroup('xx/1');
  } catch (e) {
    t.same((e as { details: unknown }).details, { group: 'xx/1' });
  }
  t.equal(
    code(() => parseGroup(undefined as unknown as string)),
    'ERR_INVALID_NAME',
  );
  t.ok(isBackupType('vm'));
  t.ok(isBackupType('ct'));
  t.ok(isBackupType('host'));
  t.notOk(isBackupType('lxc'));
  t.notOk(isBackupType(''));
});

t.test('parseSnapshotTime / formatSnapshotTime', async (t) => {
  t.equal(parseSnapshotTime('1970-01-01T00:00:00Z'), 0);
  t.equal(parseSnapshotTime('2026-11-26T09:35:01Z'), Date.UTC(2026, 10, 26, 9, 35, 1) / 1000);
  t.equal(parseSnapshotTime('2024-02-29T23:59:59Z'), Date.UTC(2024, 1, 29, 23, 59, 59) / 1000, 'leap day');
  t.equal(parseSnapshotTime('9999-12-31T23:59:59Z'), 253402300799, 'the last representable second');
  t.equal(formatSnapshotTime(0), '1970-01-01T00:00:00Z');
  t.equal(formatSnapshotTime(1_764_149_701), '2025-11-26T09:35:01Z');
  t.equal(formatSnapshotTime(253402300799), '9999-12-31T23:59:59Z');

  // Round trips both ways.
  for (const secs of [0, 1, 59, 86_399, 951_782_400, 1_700_000_000, 2_000_000_000, 4_102_444_800, 253402300799]) {
    t.equal(parseSnapshotTime(formatSnapshotTime(secs)), secs, `round trip ${secs}`);
  }
  for (const s of ['2000-02-29T12:00:00Z', '2026-01-01T00:00:00Z', '2038-01-19T03:14:08Z']) {
    t.equal(formatSnapshotTime(parseSnapshotTime(s)), s, `round trip ${s}`);
  }

  const invalid = [
    '2026-02-30T00:00:00Z', // no such day
    '2025-02-29T00:00:00Z', // not a leap year
    '2026-13-01T00:00:00Z',
    '2026-00-10T00:00:00Z',
    '2026-04-31T00:00:00Z',
    '2026-01-01T24:00:00Z',
    '2026-01-01T23:60:00Z',
    '2026-01-01T23:59:60Z', // leap seconds are not representable
    '1969-12-31T23:59:59Z', // before the epoch
  ];
  for (const s of invalid)
    t.equal(
      code(() => parseSnapshotTime(s)),
      'ERR_INVALID_ARGUMENT',
      `impossible date ${s}`,
    );

  const wrongForm = [
    '2026-11-26T09:35:01+00:00',
    '2026-11-26T10:35:01+01:00',
    '2026-11-26T09:35:01.000Z',
    '2026-11-26T09:35:01z',
    '2026-11-26t09:35:01Z',
    '2026-11-26 09:35:01Z',
    '2026-11-26T09:35:01',
    '2026-11-26T09:35Z',
    '2026-11-26',
    '20261126T093501Z',
    ' 2026-11-26T09:35:01Z',
    '2026-11-26T09:35:01Z ',
    '+02026-11-26T09:35:01Z',
    '',
    '1764149701',
  ];
  for (const s of wrongForm)
    t.equal(
      code(() => parseSnapshotTime(s)),
      'ERR_INVALID_ARGUMENT',
      `non-UTC/other form ${JSON.stringify(s)}`,
    );
  t.equal(
    code(() => parseSnapshotTime(1764149701 as unknown as string)),
    'ERR_INVALID_ARGUMENT',
    'a number is refused',
  );

  for (const bad of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 253402300800]) {
    t.equal(
      code(() => formatSnapshotTime(bad)),
      'ERR_INVALID_ARGUMENT',
      `formatSnapshotTime(${bad}) refused`,
    );
  }
});

t.test('archiveName / archiveKind', async (t) => {
  t.same(ARCHIVE_SUFFIX, { image: '.img', blob: '.blob', tree: '.tree' });
  t.equal(archiveName('disk', 'image'), 'disk.img');
  t.equal(archiveName('disk.img', 'image'), 'disk.img', 'the suffix is not doubled');
  t.equal(archiveName('qemu-server.conf', 'blob'), 'qemu-server.conf.blob');
  t.equal(archiveName('root', 'tree'), 'root.tree');
  t.equal(archiveName('disk.blob', 'image'), 'disk.blob.img', "another kind's suffix is just part of the name");
  t.equal(archiveName(`${'a'.repeat(124)}`, 'image').length, 128, 'the full name may have 128 characters');
  t.equal(
    code(() => archiveName('a'.repeat(125), 'image')),
    'ERR_INVALID_NAME',
    'more than 128 with the suffix is refused',
  );
  for (const bad of ['', '.img', '..', '../x', 'a/b', '.hidden', 'a b', '-x', 'x\\y']) {
    t.equal(
      code(() => archiveName(bad, 'image')),
      'ERR_INVALID_NAME',
      `refused: ${JSON.stringify(bad)}`,
    );
  }
  try {
    archiveName('a/b', 'blob');
  } catch (e) {
    t.same((e as { details: unknown }).details, { archive: 'a/b' });
  }

  t.equal(archiveKind('disk.img'), 'image');
  t.equal(archiveKind('conf.blob'), 'blob');
  t.equal(archiveKind('root.tree'), 'tree');
  t.equal(archiveKind('x.blob.img'), 'image');
  t.equal(archiveKind('.img'), undefined, 'a bare suffix is no archive');
  t.equal(archiveKind('disk'), undefined);
  t.equal(archiveKind('disk.raw'), undefined);
  t.equal(archiveKind('disk.IMG'), undefined);
  for (const kind of ['image', 'blob', 'tree'] as const) {
    t.equal(archiveKind(archiveName('x', kind)), kind, `archiveKind(archiveName(x, ${kind}))`);
  }
});

import t from 'tap';
import fc from 'fast-check';
import { isCairnError, type ErrorCode } from '../../lib/errors.js';
import { crc32 } from '../../lib/codec/hash.js';
import * as M from '../../lib/format/magic.js';
import {
  checkTreeStreamHeader,
  compareNames,
  decodeDirHeader,
  decodeDirRecord,
  decodeEntry,
  decodeRootEntry,
  decodeTreeTrailer,
  DIR_HEADER_SIZE,
  encodeDirRecord,
  encodeRootEntry,
  encodeTreeStreamHeader,
  encodeTreeTrailer,
  findInRecord,
  MAX_DIR_ENTRIES,
  TREE_STREAM_HEADER_SIZE,
  TREE_TRAILER_SIZE,
  type TreeEntry,
  validateArchivePath,
  validateEntryName,
} from '../../lib/format/tree.js';
import { code } from '../helpers/codes.js';

const details = { archive: 'root.tree' };
const enc = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'latin1'));
const latin = (b: Uint8Array): string => Buffer.from(b).toString('latin1');

/** Full error for detail checks. */
function err(fn: () => unknown): { code: string; details: Record<string, unknown>; message: string } {
  try {
    fn();
  } catch (e) {
    if (isCairnError(e)) return { code: e.code, details: { ...e.details }, message: e.message };
    throw e;
  }
  throw new Error('did not throw');
}

const base = { mode: 0o644, uid: 1000, gid: 100, mtimeNs: 1_700_000_000_123_456_789n, size: 0, payloadOffset: 0 } as const;
const file = (name: string | Uint8Array, extra: Partial<TreeEntry> = {}): TreeEntry => ({
  ...base,
  name: typeof name === 'string' ? enc(name) : name,
  kind: 'file',
  size: 10,
  payloadOffset: 5,
  ...extra,
});

const allKinds: TreeEntry[] = [
  file('plain.txt'),
  { ...base, name: enc('dir'), kind: 'dir', mode: 0o1777, child: { metaOffset: 16, payloadBase: 123 } },
  { ...base, name: enc('link'), kind: 'symlink', target: enc('../some where/\xff\n') },
  { ...base, name: enc('hard'), kind: 'hardlink', target: enc('dir/sub/plain.txt') },
  { ...base, name: enc('tty'), kind: 'chardev', rdevMajor: 4, rdevMinor: 0xffff_ffff },
  { ...base, name: enc('sda'), kind: 'blockdev', rdevMajor: 0xffff_ffff, rdevMinor: 0 },
  { ...base, name: enc('pipe'), kind: 'fifo', mode: 0o7777, uid: 0xffff_ffff, gid: 0xffff_ffff },
  { ...base, name: enc('sock'), kind: 'socket', mode: 0, uid: 0, gid: 0, mtimeNs: 0n },
  file(enc('caf\xe9 \xff\x80 with spaces\nnewline\ttab')),
  file(new Uint8Array(255).fill(0x61), { size: 2 ** 53 - 2, payloadOffset: 1 }),
  file(new Uint8Array(1024).fill(0xfe), { size: 0, payloadOffset: 2 ** 53 - 1 }),
  file('neg', { mtimeNs: -1n }),
  file('neg2', { mtimeNs: -1_500_000_000n }),
  file('negmax', { mtimeNs: -(2n ** 52n) * 1_000_000_000n }),
  file('posmax', { mtimeNs: (2n ** 52n - 1n) * 1_000_000_000n + 999_999_999n }),
  file('xattrs', {
    xattrs: [
      [enc('user.b'), Uint8Array.of(0, 1, 2, 255)],
      [enc('security.selinux'), enc('system_u:object_r:etc_t:s0\0')],
      [enc('user.empty'), new Uint8Array(0)],
      [new Uint8Array(255).fill(0x78), new Uint8Array(65536).fill(0xaa)],
    ],
  }),
];

/** What a decoder returns for `e`: xattrs sorted, omitted when empty. */
function normal(e: TreeEntry): TreeEntry {
  const { xattrs, ...rest } = e;
  const out: TreeEntry = xattrs === undefined || xattrs.length === 0 ? rest : { ...rest, xattrs: [...xattrs].sort((a, b) => compareNames(a[0], b[0])) };
  return out;
}
const sortEntries = (es: readonly TreeEntry[]): TreeEntry[] => [...es].sort((a, b) => compareNames(a.name, b.name));

// ---------------------------------------------------------------------------------------------
// Raw builders for damage tests

/** Unsigned LEB128 (test-side, independent of the module). */
function leb(v: number | bigint): number[] {
  let x = BigInt(v);
  const out: number[] = [];
  do {
    let b = Number(x & 0x7fn);
    x >>= 7n;
    if (x > 0n) b |= 0x80;
    out.push(b);
  } while (x > 0n);
  return out;
}
type Part = number | bigint | Uint8Array | { raw: number[] };
/** Entry bytes from parts: numbers are varints, Uint8Arrays are length-prefixed, {raw} is literal. */
function body(parts: Part[]): Uint8Array {
  const out: number[] = [];
  for (const p of parts) {
    if (p instanceof Uint8Array) out.push(...leb(p.length), ...p);
    else if (typeof p === 'object') out.push(...p.raw);
    else out.push(...leb(p));
  }
  return Uint8Array.from(out);
}
const u32 = (v: number): number[] => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];
/** A correctly framed (offsets, CRC) record around raw entry bodies. */
function record(bodies: Uint8Array[], opts: { reserved?: number; offsets?: number[]; extra?: number[] } = {}): Uint8Array {
  const region: number[] = [];
  const offs: number[] = [];
  for (const b of bodies) {
    offs.push(region.length);
    region.push(...leb(b.length), ...b);
  }
  region.push(...(opts.extra ?? []));
  const bytes = [0x43, 0x52, 0x44, 0x31, ...u32(bodies.length), ...u32(region.length), ...u32(opts.reserved ?? 0)];
  for (const o of opts.offsets ?? offs) bytes.push(...u32(o));
  bytes.push(...region);
  bytes.push(...u32(crc32(Uint8Array.from(bytes))));
  return Uint8Array.from(bytes);
}
/** Re-seals the CRC of a record copy after mutation. */
function reseal(rec: Uint8Array): Uint8Array {
  const b = Uint8Array.from(rec);
  new DataView(b.buffer).setUint32(b.length - 4, crc32(b.subarray(0, b.length - 4)), true);
  return b;
}
/** A valid fifo body with a name and overrides; field order per FORMAT.md §7. */
const fifo = (name: Uint8Array | string, o: { kind?: Part; mode?: Part; uid?: Part; gid?: Part; sec?: Part; ns?: Part; tail?: Part[] } = {}): Uint8Array =>
  body([
    { raw: [typeof o.kind === 'number' ? o.kind : 7] },
    typeof name === 'string' ? enc(name) : name,
    o.mode ?? 0o644,
    o.uid ?? 0,
    o.gid ?? 0,
    o.sec ?? 2,
    o.ns ?? 0,
    ...(o.tail ?? [0]),
  ]);
const corruptRec = (bodies: Uint8Array[]): ErrorCode | 'none' | 'other' => code(() => decodeDirRecord(record(bodies), details));

// ---------------------------------------------------------------------------------------------

t.test('pinned constants and magics', async (t) => {
  t.equal(TREE_STREAM_HEADER_SIZE, 16);
  t.equal(TREE_TRAILER_SIZE, 48);
  t.equal(DIR_HEADER_SIZE, 16);
  t.equal(MAX_DIR_ENTRIES, 16_777_216);
  t.equal(latin(Uint8Array.from(M.TREE_STREAM_MAGIC)), 'CAIRNTRE');
  t.equal(latin(Uint8Array.from(M.TREE_DIR_MAGIC)), 'CRD1');
  t.equal(latin(Uint8Array.from(M.TREE_ROOT_MAGIC)), 'CRE1');
  t.equal(latin(Uint8Array.from(M.TREE_TRAILER_MAGIC)), 'CAIRNEND');
  t.equal(M.TREE_VERSION, 1);
  for (const m of [M.TREE_STREAM_MAGIC, M.TREE_DIR_MAGIC, M.TREE_ROOT_MAGIC, M.TREE_TRAILER_MAGIC]) t.ok(Object.isFrozen(m));
});

t.test('pinned bytes of a small record (the layout of FORMAT.md §7)', async (t) => {
  const rec = encodeDirRecord([
    { name: enc('b'), kind: 'fifo', mode: 0o600, uid: 1, gid: 2, mtimeNs: -1n, size: 0, payloadOffset: 0 },
    { name: enc('a'), kind: 'file', mode: 0o644, uid: 0, gid: 0, mtimeNs: 1_000_000_005n, size: 300, payloadOffset: 7 },
  ]);
  // 'a': kind 1, name, mode 0o644 = 420 = a4 03, uid 0, gid 0, sec zz(1) = 2, nanos 5, size 300 = ac 02, off 7, xattrs 0
  const a = [0x01, 0x01, 0x61, 0xa4, 0x03, 0x00, 0x00, 0x02, 0x05, 0xac, 0x02, 0x07, 0x00];
  // 'b': -1 ns = second -1 (zz 1) + 999999999 ns (ff 93 eb dc 03)
  const b = [0x07, 0x01, 0x62, 0x80, 0x03, 0x01, 0x02, 0x01, 0xff, 0x93, 0xeb, 0xdc, 0x03, 0x00];
  const region = [a.length, ...a, b.length, ...b];
  const expect = [0x43, 0x52, 0x44, 0x31, ...u32(2), ...u32(region.length), ...u32(0), ...u32(0), ...u32(a.length + 1), ...region];
  expect.push(...u32(crc32(Uint8Array.from(expect))));
  t.same([...rec], expect);
  const h = decodeDirHeader(rec, details);
  t.same(h, { count: 2, entriesLength: region.length, recordLength: 16 + 8 + region.length + 4, tableOffset: 16, entriesOffset: 24 });
});

t.test('round trip of every kind, odd names, xattrs, mtimes, sizes near 2^53', async (t) => {
  const rec = encodeDirRecord(allKinds);
  const back = decodeDirRecord(rec, details);
  t.same(back, sortEntries(allKinds).map(normal));
  t.equal(back.length, allKinds.length);
  for (const e of back) {
    t.ok(e.name instanceof Uint8Array);
    t.equal(e.name.buffer === rec.buffer, false, 'names are copies');
  }
  const x = back.find((e) => latin(e.name) === 'xattrs')!;
  t.same(
    x.xattrs!.map(([n]) => latin(n)),
    ['security.selinux', 'user.b', 'user.empty', 'x'.repeat(255)],
    'xattrs sorted by name',
  );
  t.equal(back.find((e) => latin(e.name) === 'neg')!.mtimeNs, -1n);
  t.equal(back.find((e) => latin(e.name) === 'neg2')!.mtimeNs, -1_500_000_000n);
  t.same(decodeDirRecord(encodeDirRecord([]), details), [], 'empty directory');
  t.equal(encodeDirRecord([]).length, 20);
  // empty xattrs array encodes like no xattrs
  t.same([...encodeDirRecord([file('f', { xattrs: [] })])], [...encodeDirRecord([file('f')])]);
});

t.test('determinism', async (t) => {
  const a = encodeDirRecord(allKinds);
  t.same([...encodeDirRecord(allKinds)], [...a], 'encode twice');
  const shuffled = [...allKinds].reverse();
  [shuffled[1], shuffled[5]] = [shuffled[5]!, shuffled[1]!];
  t.same([...encodeDirRecord(shuffled)], [...a], 'input order does not matter');
  const reversedX = allKinds.map((e) => (e.xattrs === undefined ? e : { ...e, xattrs: [...e.xattrs].reverse() }));
  t.same([...encodeDirRecord(reversedX)], [...a], 'xattr order does not matter');
  t.same([...encodeDirRecord(decodeDirRecord(a, details))], [...a], 're-encoding a decoded record');
});

t.test('compareNames', async (t) => {
  t.ok(compareNames(enc('a'), enc('b')) < 0);
  t.ok(compareNames(enc('b'), enc('a')) > 0);
  t.ok(compareNames(enc('ab'), enc('abc')) < 0, 'prefix first');
  t.ok(compareNames(enc('abc'), enc('ab')) > 0);
  t.equal(compareNames(enc('abc'), enc('abc')), 0);
  t.ok(compareNames(enc('Z'), enc('a')) < 0, 'bytewise');
  t.ok(compareNames(enc('\x7f'), enc('\x80')) < 0, 'unsigned bytes');
  t.equal(compareNames(new Uint8Array(0), new Uint8Array(0)), 0);
});

t.test('validateEntryName / validateArchivePath', async (t) => {
  for (const ok of ['a', '...', '.a', 'a.', '..a', ' ', '\n', '\xff', 'x'.repeat(1024)]) t.ok(validateEntryName(enc(ok)), JSON.stringify(ok));
  for (const bad of ['', '.', '..', 'a/b', '/', 'a\0b', 'x'.repeat(1025)]) t.notOk(validateEntryName(enc(bad)), JSON.stringify(bad));
  for (const ok of ['a', 'a/b', 'a/b/c', '.a/..b/...', 'x'.repeat(1024) + '/' + 'y'.repeat(1024), 'a/'.repeat(2047) + 'a']) {
    t.ok(validateArchivePath(enc(ok)), JSON.stringify(ok.slice(0, 20)));
  }
  for (const bad of ['', '/', '/abs', 'trail/', 'a//b', '.', '..', '../x', 'a/./b', 'a/..', 'a/\0', 'x'.repeat(1025), 'a/'.repeat(2048) + 'a']) {
    t.notOk(validateArchivePath(enc(bad)), JSON.stringify(bad.slice(0, 20)));
  }
});

t.test('findInRecord and decodeEntry through the offset table (10,000 entries)', async (t) => {
  const names: Uint8Array[] = [];
  const entries: TreeEntry[] = [];
  for (let i = 0; i < 10_000; i++) {
    const name = enc(`f${(i * 7919) % 10_000}-${i % 3 === 0 ? '\xff' : ''}`);
    names.push(name);
    entries.push(i % 10 === 0 ? { ...base, name, kind: 'dir', child: { metaOffset: 16 + i, payloadBase: i } } : file(name, { size: i, payloadOffset: i * 10 }));
  }
  const rec = encodeDirRecord(entries);
  const all = decodeDirRecord(rec, details);
  t.equal(all.length, 10_000);
  const h = decodeDirHeader(rec.subarray(0, 16), details);
  const view = new DataView(rec.buffer, rec.byteOffset);
  let mismatches = 0;
  for (let i = 0; i < h.count; i++) {
    const off = view.getUint32(h.tableOffset + 4 * i, true);
    const { entry, next } = decodeEntry(rec, h.entriesOffset + off, details);
    const nextOff = i + 1 < h.count ? h.entriesOffset + view.getUint32(h.tableOffset + 4 * (i + 1), true) : h.recordLength - 4;
    if (next !== nextOff || compareNames(entry.name, all[i]!.name) !== 0 || entry.size !== all[i]!.size) mismatches++;
  }
  t.equal(mismatches, 0, 'decodeEntry via the table equals decodeDirRecord');
  // decodeEntry on a region-relative slice as a reader that reads only that entry would do
  const off5 = view.getUint32(h.tableOffset + 20, true);
  const off6 = view.getUint32(h.tableOffset + 24, true);
  t.same(decodeEntry(rec.slice(h.entriesOffset + off5, h.entriesOffset + off6), 0, details), { entry: all[5], next: off6 - off5 });

  let misses = 0;
  for (let i = 0; i < entries.length; i++) {
    const found = findInRecord(rec, names[i]!, details);
    if (found === undefined || compareNames(found.name, names[i]!) !== 0 || found.kind !== entries[i]!.kind || found.size !== entries[i]!.size) misses++;
  }
  t.equal(misses, 0, 'every name is found');
  for (const absent of ['', 'a', 'f', 'f1', 'f10000-', 'zzz', '\xff\xff', 'f0--']) t.equal(findInRecord(rec, enc(absent), details), undefined, `absent ${absent}`);
  t.equal(findInRecord(encodeDirRecord([]), enc('x'), details), undefined, 'empty record');
  const one = encodeDirRecord([file('only')]);
  t.equal(latin(findInRecord(one, enc('only'), details)!.name), 'only');
  t.equal(findInRecord(one, enc('onlz'), details), undefined);
});

t.test('findInRecord reports damage on its path', async (t) => {
  const rec = encodeDirRecord([file('a'), file('b'), file('c')]);
  t.equal(
    code(() => findInRecord(rec.subarray(0, rec.length - 1), enc('b'), details)),
    'ERR_TREE_CORRUPT',
    'length',
  );
  const badTable = Uint8Array.from(rec);
  new DataView(badTable.buffer).setUint32(16 + 4, 0xffff, true); // entry 1 (probed first)
  t.equal(
    code(() => findInRecord(badTable, enc('b'), details)),
    'ERR_TREE_CORRUPT',
    'offset beyond region',
  );
  const first = Uint8Array.from(rec);
  new DataView(first.buffer).setUint32(16, 1, true);
  t.equal(
    code(() => findInRecord(first, enc('a'), details)),
    'ERR_TREE_CORRUPT',
    'first offset not 0',
  );
  // entry length prefix pointing past the region
  const e = decodeDirHeader(rec, details).entriesOffset;
  const longLen = Uint8Array.from(rec);
  const off1 = new DataView(rec.buffer).getUint32(20, true);
  longLen[e + off1] = 0x7f;
  t.equal(
    code(() => findInRecord(longLen, enc('b'), details)),
    'ERR_TREE_CORRUPT',
    'entry length',
  );
  // name length past the entry
  const longName = Uint8Array.from(rec);
  longName[e + off1 + 2] = 0x7f;
  t.equal(
    code(() => findInRecord(longName, enc('b'), details)),
    'ERR_TREE_CORRUPT',
    'name length',
  );
  // a damaged field in the matching entry
  const badMode = Uint8Array.from(rec);
  badMode[e + off1 + 5] = 0x7f; // second byte of the mode varint (0o644 = a4 03): mode > 0o7777
  t.equal(
    code(() => findInRecord(badMode, enc('b'), details)),
    'ERR_TREE_CORRUPT',
    'entry body',
  );
  t.equal(
    code(() => findInRecord(rec, enc('b'), details)),
    'none',
  );
});

t.test('stream header', async (t) => {
  const h = encodeTreeStreamHeader();
  t.same([...h], [...enc('CAIRNTRE'), 1, 0, 0, 0, 0, 0, 0, 0]);
  t.equal(
    code(() => checkTreeStreamHeader(h, details)),
    'none',
  );
  const longer = new Uint8Array(100);
  longer.set(h);
  t.equal(
    code(() => checkTreeStreamHeader(longer, details)),
    'none',
    'longer input is fine',
  );
  t.equal(
    code(() => checkTreeStreamHeader(h.subarray(0, 15), details)),
    'ERR_TREE_CORRUPT',
  );
  const m = (i: number, v: number): Uint8Array => {
    const b = Uint8Array.from(h);
    b[i] = v;
    return b;
  };
  t.equal(
    code(() => checkTreeStreamHeader(m(0, 0x44), details)),
    'ERR_TREE_CORRUPT',
    'magic',
  );
  t.equal(
    code(() => checkTreeStreamHeader(m(8, 2), details)),
    'ERR_FORMAT_VERSION',
    'newer version',
  );
  t.equal(
    code(() => checkTreeStreamHeader(m(11, 1), details)),
    'ERR_FORMAT_VERSION',
    'much newer version',
  );
  t.equal(
    code(() => checkTreeStreamHeader(m(8, 0), details)),
    'ERR_TREE_CORRUPT',
    'version 0',
  );
  t.equal(
    code(() => checkTreeStreamHeader(m(12, 1), details)),
    'ERR_TREE_CORRUPT',
    'flags',
  );
  t.equal(err(() => checkTreeStreamHeader(m(8, 2), details)).details.archive, 'root.tree');
});

t.test('trailer', async (t) => {
  const tr = { rootEntryOffset: 2 ** 53 - 1, payloadSize: 2 ** 40 + 3, entryCount: 12345 };
  const b = encodeTreeTrailer(tr);
  t.equal(b.length, 48);
  const v = new DataView(b.buffer);
  t.equal(latin(b.subarray(0, 8)), 'CAIRNEND');
  t.equal(v.getUint32(8, true), 1);
  t.equal(v.getUint32(12, true), 0);
  t.equal(v.getBigUint64(16, true), 2n ** 53n - 1n);
  t.equal(v.getBigUint64(24, true), 2n ** 40n + 3n);
  t.equal(v.getBigUint64(32, true), 12345n);
  t.equal(v.getUint32(40, true), 0);
  t.equal(v.getUint32(44, true), crc32(b.subarray(0, 44)));
  t.same(decodeTreeTrailer(b, details), tr);
  t.same(decodeTreeTrailer(encodeTreeTrailer({ rootEntryOffset: 16, payloadSize: 0, entryCount: 1 }), details), { rootEntryOffset: 16, payloadSize: 0, entryCount: 1 });

  const m = (f: (v: DataView) => void, seal = true): Uint8Array => {
    const c = Uint8Array.from(b);
    const cv = new DataView(c.buffer);
    f(cv);
    if (seal) cv.setUint32(44, crc32(c.subarray(0, 44)), true);
    return c;
  };
  t.equal(
    code(() => decodeTreeTrailer(b.subarray(0, 47), details)),
    'ERR_TREE_CORRUPT',
    'short',
  );
  t.equal(
    code(() => decodeTreeTrailer(new Uint8Array(49), details)),
    'ERR_TREE_CORRUPT',
    'long',
  );
  t.equal(
    code(() =>
      decodeTreeTrailer(
        m((c) => c.setUint8(7, 0)),
        details,
      ),
    ),
    'ERR_TREE_CORRUPT',
    'magic',
  );
  t.equal(
    code(() =>
      decodeTreeTrailer(
        m((c) => c.setUint32(8, 2, true)),
        details,
      ),
    ),
    'ERR_FORMAT_VERSION',
    'newer',
  );
  t.equal(
    code(() =>
      decodeTreeTrailer(
        m((c) => c.setUint32(8, 2, true), false),
        details,
      ),
    ),
    'ERR_FORMAT_VERSION',
    'version before CRC',
  );
  t.equal(
    code(() =>
      decodeTreeTrailer(
        m((c) => c.setUint32(8, 0, true)),
        details,
      ),
    ),
    'ERR_TREE_CORRUPT',
    'version 0',
  );
  t.equal(
    code(() =>
      decodeTreeTrailer(
        m((c) => c.setUint8(30, 1), false),
        details,
      ),
    ),
    'ERR_TREE_CORRUPT',
    'CRC',
  );
  t.equal(
    code(() =>
      decodeTreeTrailer(
        m((c) => c.setUint32(12, 1, true)),
        details,
      ),
    ),
    'ERR_TREE_CORRUPT',
    'flags',
  );
  t.equal(
    code(() =>
      decodeTreeTrailer(
        m((c) => c.setUint32(40, 1, true)),
        details,
      ),
    ),
    'ERR_TREE_CORRUPT',
    'reserved',
  );
  t.equal(
    code(() =>
      decodeTreeTrailer(
        m((c) => c.setBigUint64(16, 2n ** 53n, true)),
        details,
      ),
    ),
    'ERR_TREE_CORRUPT',
    'root offset > 2^53-1',
  );
  t.equal(
    code(() =>
      decodeTreeTrailer(
        m((c) => c.setBigUint64(24, 2n ** 63n, true)),
        details,
      ),
    ),
    'ERR_TREE_CORRUPT',
    'payload size',
  );
  t.equal(
    code(() =>
      decodeTreeTrailer(
        m((c) => c.setBigUint64(32, 2n ** 60n, true)),
        details,
      ),
    ),
    'ERR_TREE_CORRUPT',
    'entry count',
  );
  t.equal(
    code(() =>
      decodeTreeTrailer(
        m((c) => c.setBigUint64(16, 15n, true)),
        details,
      ),
    ),
    'ERR_TREE_CORRUPT',
    'root offset in header',
  );
  t.equal(
    code(() =>
      decodeTreeTrailer(
        m((c) => c.setBigUint64(32, 0n, true)),
        details,
      ),
    ),
    'ERR_TREE_CORRUPT',
    'entry count 0',
  );
  const e = err(() =>
    decodeTreeTrailer(
      m((c) => c.setUint32(40, 1, true)),
      details,
    ),
  );
  t.equal(e.details.offset, 40);
  t.match(e.message, /root\.tree/);

  for (const bad of [
    { rootEntryOffset: 15, payloadSize: 0, entryCount: 1 },
    { rootEntryOffset: 16, payloadSize: -1, entryCount: 1 },
    { rootEntryOffset: 16, payloadSize: 0, entryCount: 0 },
    { rootEntryOffset: 2 ** 53, payloadSize: 0, entryCount: 1 },
    { rootEntryOffset: 16.5, payloadSize: 0, entryCount: 1 },
    { rootEntryOffset: 16, payloadSize: 0, entryCount: NaN },
  ]) {
    t.equal(
      code(() => encodeTreeTrailer(bad)),
      'ERR_INVALID_ARGUMENT',
      JSON.stringify(bad),
    );
  }
  t.equal(
    code(() => encodeTreeTrailer(null as never)),
    'ERR_INVALID_ARGUMENT',
  );
});

t.test('root entry record', async (t) => {
  const root: TreeEntry = {
    ...base,
    name: new Uint8Array(0),
    kind: 'dir',
    mode: 0o755,
    mtimeNs: -123n,
    child: { metaOffset: 9999, payloadBase: 0 },
    xattrs: [[enc('user.x'), Uint8Array.of(1)]],
  };
  const rec = encodeRootEntry(root);
  t.equal(latin(rec.subarray(0, 4)), 'CRE1');
  const v = new DataView(rec.buffer);
  t.equal(v.getUint32(rec.length - 4, true), crc32(rec.subarray(0, rec.length - 4)));
  t.same(decodeRootEntry(rec, details), { entry: root, length: rec.length });
  const withTrailer = new Uint8Array(rec.length + 48);
  withTrailer.set(rec);
  t.same(decodeRootEntry(withTrailer, details), { entry: root, length: rec.length }, 'trailing bytes ignored');
  t.same([...encodeRootEntry(root)], [...rec], 'deterministic');

  for (let n = 0; n < rec.length; n++)
    t.equal(
      code(() => decodeRootEntry(rec.subarray(0, n), details)),
      'ERR_TREE_CORRUPT',
      `truncated at ${n}`,
    );
  const flip = (i: number): Uint8Array => {
    const b = Uint8Array.from(rec);
    b[i]! ^= 0x01;
    return b;
  };
  t.equal(
    code(() => decodeRootEntry(flip(0), details)),
    'ERR_TREE_CORRUPT',
    'magic',
  );
  for (let i = 4; i < rec.length; i++)
    t.equal(
      code(() => decodeRootEntry(flip(i), details)),
      'ERR_TREE_CORRUPT',
      `flip ${i}`,
    );
  // A sealed record with a file entry, or a named dir
  const seal = (entryBody: Uint8Array): Uint8Array => {
    const b = [...enc('CRE1'), ...leb(entryBody.length), ...entryBody];
    return Uint8Array.from([...b, ...u32(crc32(Uint8Array.from(b)))]);
  };
  const okBody = body([{ raw: [2] }, new Uint8Array(0), 0o755, 0, 0, 0, 0, 16, 0, 0]);
  t.equal(
    code(() => decodeRootEntry(seal(okBody), details)),
    'none',
  );
  t.equal(
    code(() => decodeRootEntry(seal(body([{ raw: [1] }, new Uint8Array(0), 0o755, 0, 0, 0, 0, 0, 0, 0])), details)),
    'ERR_TREE_CORRUPT',
    'file root',
  );
  t.equal(
    code(() => decodeRootEntry(seal(body([{ raw: [2] }, enc('r'), 0o755, 0, 0, 0, 0, 16, 0, 0])), details)),
    'ERR_TREE_CORRUPT',
    'named root',
  );
  t.equal(
    code(() => decodeRootEntry(seal(body([{ raw: [2] }, new Uint8Array(0), 0o755, 0, 0, 0, 0, 16, 0, 0, 0])), details)),
    'ERR_TREE_CORRUPT',
    'extra byte',
  );

  t.equal(
    code(() => encodeRootEntry({ ...root, name: enc('x') })),
    'ERR_INVALID_ARGUMENT',
  );
  t.equal(
    code(() => encodeRootEntry({ ...root, kind: 'file', child: undefined } as never)),
    'ERR_INVALID_ARGUMENT',
  );
  t.equal(
    code(() => encodeDirRecord([{ ...root }])),
    'ERR_INVALID_ARGUMENT',
    'empty name in a record',
  );
});

t.test('decodeDirHeader', async (t) => {
  const hdr = (count: number, len: number, reserved = 0): Uint8Array => Uint8Array.from([0x43, 0x52, 0x44, 0x31, ...u32(count), ...u32(len), ...u32(reserved)]);
  t.same(decodeDirHeader(hdr(3, 30), details), { count: 3, entriesLength: 30, recordLength: 16 + 12 + 30 + 4, tableOffset: 16, entriesOffset: 28 });
  t.same(decodeDirHeader(hdr(MAX_DIR_ENTRIES, 0xffff_ffff), details).count, MAX_DIR_ENTRIES);
  t.equal(
    code(() => decodeDirHeader(hdr(3, 30).subarray(0, 15), details)),
    'ERR_TREE_CORRUPT',
    'short',
  );
  t.equal(
    code(() => decodeDirHeader(Uint8Array.from([0x43, 0x52, 0x44, 0x32, ...hdr(0, 0).subarray(4)]), details)),
    'ERR_TREE_CORRUPT',
    'CRD2',
  );
  t.equal(
    code(() => decodeDirHeader(hdr(0, 0, 1), details)),
    'ERR_TREE_CORRUPT',
    'reserved',
  );
  t.equal(
    code(() => decodeDirHeader(hdr(MAX_DIR_ENTRIES + 1, 0xffff_ffff), details)),
    'ERR_TREE_CORRUPT',
    'too many',
  );
  t.equal(
    code(() => decodeDirHeader(hdr(3, 29), details)),
    'ERR_TREE_CORRUPT',
    'region too small',
  );
  t.equal(
    code(() => decodeDirHeader(hdr(0, 1), details)),
    'ERR_TREE_CORRUPT',
    'bytes without entries',
  );
  t.equal(err(() => decodeDirHeader(hdr(0, 0, 1), details)).details.offset, 12);
});

t.test('record framing damage', async (t) => {
  const good = [fifo('a'), fifo('b'), fifo('c')];
  t.equal(corruptRec(good), 'none');
  const rec = record(good);
  for (let n = 0; n < rec.length; n++)
    t.equal(
      code(() => decodeDirRecord(rec.subarray(0, n), details)),
      'ERR_TREE_CORRUPT',
      `truncated at ${n}`,
    );
  const big = encodeDirRecord(allKinds);
  let notCorrupt = 0;
  for (let n = 0; n < big.length; n += 97) if (code(() => decodeDirRecord(big.subarray(0, n), details)) !== 'ERR_TREE_CORRUPT') notCorrupt++;
  t.equal(notCorrupt, 0, 'truncations of a big record');
  t.equal(
    code(() => decodeDirRecord(Uint8Array.from([...rec, 0]), details)),
    'ERR_TREE_CORRUPT',
    'trailing byte',
  );
  let undetected = 0;
  for (let i = 0; i < rec.length; i++) {
    for (const bit of [0x01, 0x80]) {
      const b = Uint8Array.from(rec);
      b[i]! ^= bit;
      if (code(() => decodeDirRecord(b, details)) !== 'ERR_TREE_CORRUPT') undetected++;
    }
  }
  t.equal(undetected, 0, 'every bit flip');
  const crcErr = err(() => {
    const b = Uint8Array.from(rec);
    b[b.length - 1]! ^= 1;
    decodeDirRecord(b, details);
  });
  t.equal(crcErr.details.offset, rec.length - 4);
  t.equal(crcErr.details.archive, 'root.tree');
  t.equal(
    code(() => decodeDirRecord(record(good, { reserved: 1 }), details)),
    'ERR_TREE_CORRUPT',
    'reserved',
  );
  t.equal(
    code(() => decodeDirRecord(record(good, { offsets: [0, 10, 21] }), details)),
    'ERR_TREE_CORRUPT',
    'offset table',
  );
  t.equal(
    code(() => decodeDirRecord(record(good, { offsets: [1, 10, 20] }), details)),
    'ERR_TREE_CORRUPT',
    'first offset',
  );
  t.equal(
    code(() => decodeDirRecord(record(good, { offsets: [0, 20, 10] }), details)),
    'ERR_TREE_CORRUPT',
    'decreasing',
  );
  t.equal(
    code(() => decodeDirRecord(record(good, { extra: [0] }), details)),
    'ERR_TREE_CORRUPT',
    'bytes after the last entry',
  );
  t.equal(corruptRec([fifo('b'), fifo('a')]), 'ERR_TREE_CORRUPT', 'unsorted');
  t.equal(corruptRec([fifo('a'), fifo('a')]), 'ERR_TREE_CORRUPT', 'duplicate');
  t.equal(corruptRec([fifo('ab'), fifo('a')]), 'ERR_TREE_CORRUPT', 'longer before its prefix');
  t.equal(corruptRec([fifo('a'), fifo('ab')]), 'none', 'prefix first');
  // entry length prefix too long / too short
  const lenLong = Uint8Array.from([...record([fifo('a')])]);
  lenLong[20]! += 1;
  t.equal(
    code(() => decodeDirRecord(reseal(lenLong), details)),
    'ERR_TREE_CORRUPT',
    'entry length past region',
  );
  const e = err(() => decodeDirRecord(record([fifo('a'), fifo('b', { mode: 0o10000 })]), details));
  t.equal(e.code, 'ERR_TREE_CORRUPT');
  t.type(e.details.offset, 'number');
  t.match(e.message, /mode/);
});

t.test('entry field damage', async (t) => {
  const cases: [string, Uint8Array][] = [
    ['kind 0', fifo('a', { kind: 0 })],
    ['kind 9', fifo('a', { kind: 9 })],
    ['kind 255', fifo('a', { kind: 255 })],
    ['name empty', fifo('')],
    ['name .', fifo('.')],
    ['name ..', fifo('..')],
    ['name a/b', fifo('a/b')],
    ['name NUL', fifo('a\0')],
    ['name too long', fifo('x'.repeat(1025))],
    ['name length past entry', body([{ raw: [7] }, { raw: [5, 0x61] }])],
    ['mode > 0o7777', fifo('a', { mode: 0o10000 })],
    ['uid > 2^32-1', fifo('a', { uid: 2 ** 32 })],
    ['gid > 2^32-1', fifo('a', { gid: 2 ** 32 })],
    ['nanos = 1e9', fifo('a', { ns: 1e9 })],
    ['non-minimal varint (mode)', fifo('a', { mode: { raw: [0x81, 0x00] } })],
    ['non-minimal varint (uid 0)', fifo('a', { uid: { raw: [0x80, 0x00] } })],
    ['varint of 9 bytes', fifo('a', { sec: { raw: [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01] } })],
    ['varint = 2^53', fifo('a', { sec: 2n ** 53n })],
    ['varint overflow 8th byte', fifo('a', { sec: { raw: [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f] } })],
    ['truncated varint', body([{ raw: [7] }, enc('a'), { raw: [0x80] }])],
    ['xattr count > 1024', fifo('a', { tail: [1025] })],
    ['xattr count beyond data', fifo('a', { tail: [3, enc('x'), enc('v')] })],
    ['xattr name empty', fifo('a', { tail: [1, new Uint8Array(0), enc('v')] })],
    ['xattr name NUL', fifo('a', { tail: [1, enc('x\0'), enc('v')] })],
    ['xattr name too long', fifo('a', { tail: [1, enc('x'.repeat(256)), enc('v')] })],
    ['xattr value too long', fifo('a', { tail: [1, enc('x'), new Uint8Array(65537)] })],
    ['xattrs unsorted', fifo('a', { tail: [2, enc('y'), enc('v'), enc('x'), enc('v')] })],
    ['xattrs duplicate', fifo('a', { tail: [2, enc('x'), enc('v'), enc('x'), enc('w')] })],
    ['trailing byte in entry', fifo('a', { tail: [0, 0] })],
    ['fifo with size fields', fifo('a', { tail: [10, 0, 0] })],
    ['file missing payload offset', body([{ raw: [1] }, enc('a'), 0, 0, 0, 0, 0, 10])],
    ['file size > 2^53-1', body([{ raw: [1] }, enc('a'), 0, 0, 0, 0, 0, 2n ** 53n, 0, 0])],
    ['file size + offset > 2^53-1', body([{ raw: [1] }, enc('a'), 0, 0, 0, 0, 0, 2 ** 52, 2 ** 52, 0])],
    ['dir child offset 0', body([{ raw: [2] }, enc('a'), 0, 0, 0, 0, 0, 0, 0, 0])],
    ['dir child offset 15', body([{ raw: [2] }, enc('a'), 0, 0, 0, 0, 0, 15, 0, 0])],
    ['dir missing payload base', body([{ raw: [2] }, enc('a'), 0, 0, 0, 0, 0, 16])],
    ['symlink empty', body([{ raw: [3] }, enc('a'), 0, 0, 0, 0, 0, new Uint8Array(0), 0])],
    ['symlink NUL', body([{ raw: [3] }, enc('a'), 0, 0, 0, 0, 0, enc('x\0y'), 0])],
    ['symlink too long', body([{ raw: [3] }, enc('a'), 0, 0, 0, 0, 0, new Uint8Array(4097).fill(0x61), 0])],
    ['symlink target past entry', body([{ raw: [3] }, enc('a'), 0, 0, 0, 0, 0, { raw: [9, 0x61] }])],
    ['major > 2^32-1', body([{ raw: [5] }, enc('a'), 0, 0, 0, 0, 0, 2 ** 32, 0, 0])],
    ['minor > 2^32-1', body([{ raw: [6] }, enc('a'), 0, 0, 0, 0, 0, 0, 2 ** 32, 0])],
    ['device missing minor', body([{ raw: [6] }, enc('a'), 0, 0, 0, 0, 0, 1])],
  ];
  for (const bad of ['../x', '/abs', 'a//b', 'a/', '.', '..', 'a/./b', 'a/../b', 'a\0b', '']) {
    cases.push([`hardlink ${JSON.stringify(bad)}`, body([{ raw: [4] }, enc('a'), 0, 0, 0, 0, 0, enc(bad), 0])]);
  }
  cases.push(['hardlink too long', body([{ raw: [4] }, enc('a'), 0, 0, 0, 0, 0, enc('a/'.repeat(2048) + 'a'), 0])]);
  for (const [what, b] of cases) {
    t.equal(corruptRec([b]), 'ERR_TREE_CORRUPT', what);
    t.equal(
      code(() => decodeEntry(Uint8Array.from([...leb(b.length), ...b]), 0, details)),
      'ERR_TREE_CORRUPT',
      `decodeEntry: ${what}`,
    );
  }
  // controls: the same builders give valid entries
  const ok: [string, Uint8Array][] = [
    ['fifo', fifo('a')],
    ['varint 2^53-1 (file size)', body([{ raw: [1] }, enc('a'), 0, 0, 0, 0, 0, 2 ** 53 - 1, 0, 0])],
    ['seconds zz 2^53-1', fifo('a', { sec: 2 ** 53 - 1 })],
    ['nanos 999999999', fifo('a', { ns: 999_999_999 })],
    ['mode 0o7777', fifo('a', { mode: 0o7777 })],
    ['hardlink', body([{ raw: [4] }, enc('a'), 0, 0, 0, 0, 0, enc('x/.y/z'), 0])],
    ['xattrs', fifo('a', { tail: [2, enc('x'), new Uint8Array(65536), enc('xy'), new Uint8Array(0)] })],
  ];
  for (const [what, b] of ok) t.equal(corruptRec([b]), 'none', `valid: ${what}`);
  const zzMax = decodeDirRecord(record([fifo('a', { sec: 2 ** 53 - 1 })]), details)[0]!;
  t.equal(zzMax.mtimeNs, -(2n ** 52n) * 1_000_000_000n);
  // decodeEntry itself
  t.equal(
    code(() => decodeEntry(new Uint8Array(0), 0, details)),
    'ERR_TREE_CORRUPT',
    'empty',
  );
  t.equal(
    code(() => decodeEntry(Uint8Array.of(5, 7), 0, details)),
    'ERR_TREE_CORRUPT',
    'length past end',
  );
  t.equal(
    code(() => decodeEntry(new Uint8Array(4), 9, details)),
    'ERR_TREE_CORRUPT',
    'offset past end',
  );
  t.equal(
    code(() => decodeEntry(new Uint8Array(4), -1, details)),
    'ERR_INVALID_ARGUMENT',
  );
  t.equal(
    code(() => decodeEntry(new Uint8Array(4), 0.5, details)),
    'ERR_INVALID_ARGUMENT',
  );
  const withOff = err(() => decodeEntry(Uint8Array.from([0, 0, 0, ...leb(fifo('a', { mode: 0o10000 }).length), ...fifo('a', { mode: 0o10000 })]), 3, details));
  t.equal(withOff.details.offset, 3 + 1 + 1 + 2, 'offset of the mode field in the caller buffer');
  t.equal(withOff.details.archive, 'root.tree');
  t.notMatch(err(() => decodeEntry(new Uint8Array(0), 0, {})).message, /undefined/);
  t.match(err(() => decodeEntry(new Uint8Array(0), 0, { path: '/ds/x' })).message, /\/ds\/x/);
});

t.test('encoder rejects bad input with ERR_INVALID_ARGUMENT', async (t) => {
  const dir: TreeEntry = { ...base, name: enc('d'), kind: 'dir', child: { metaOffset: 16, payloadBase: 0 } };
  const cases: [string, unknown][] = [
    ['not an object', 5],
    ['null', null],
    ['name not bytes', { ...file('a'), name: 'a' }],
    ['name empty', file('')],
    ['name .', file('.')],
    ['name ..', file('..')],
    ['name with /', file('a/b')],
    ['name NUL', file('a\0')],
    ['name too long', file('x'.repeat(1025))],
    ['kind', { ...file('a'), kind: 'door' }],
    ['kind not a string', { ...file('a'), kind: 1 }],
    ['kind from the prototype', { ...file('a'), kind: 'toString' }],
    ['mode', file('a', { mode: 0o10000 })],
    ['mode negative', file('a', { mode: -1 })],
    ['mode fractional', file('a', { mode: 1.5 })],
    ['uid', file('a', { uid: 2 ** 32 })],
    ['gid', file('a', { gid: -1 })],
    ['mtime number', { ...file('a'), mtimeNs: 5 }],
    ['mtime too late', file('a', { mtimeNs: 2n ** 52n * 1_000_000_000n })],
    ['mtime too early', file('a', { mtimeNs: -(2n ** 52n) * 1_000_000_000n - 1n })],
    ['size', file('a', { size: 2 ** 53 })],
    ['size negative', file('a', { size: -1 })],
    ['payloadOffset', file('a', { payloadOffset: 2 ** 53 })],
    ['size + offset', file('a', { size: 2 ** 52, payloadOffset: 2 ** 52 })],
    ['size on a dir', { ...dir, size: 1 }],
    ['payloadOffset on a fifo', { ...base, name: enc('p'), kind: 'fifo', payloadOffset: 1 }],
    ['symlink without target', { ...base, name: enc('l'), kind: 'symlink' }],
    ['symlink empty target', { ...base, name: enc('l'), kind: 'symlink', target: new Uint8Array(0) }],
    ['symlink NUL', { ...base, name: enc('l'), kind: 'symlink', target: enc('a\0') }],
    ['symlink too long', { ...base, name: enc('l'), kind: 'symlink', target: new Uint8Array(4097).fill(0x61) }],
    ['hardlink ../x', { ...base, name: enc('h'), kind: 'hardlink', target: enc('../x') }],
    ['hardlink /abs', { ...base, name: enc('h'), kind: 'hardlink', target: enc('/abs') }],
    ['hardlink a//b', { ...base, name: enc('h'), kind: 'hardlink', target: enc('a//b') }],
    ['target on a file', file('a', { target: enc('x') })],
    ['device without numbers', { ...base, name: enc('c'), kind: 'chardev' }],
    ['device major too big', { ...base, name: enc('c'), kind: 'blockdev', rdevMajor: 2 ** 32, rdevMinor: 0 }],
    ['rdev on a file', file('a', { rdevMajor: 1 })],
    ['rdev minor on a socket', { ...base, name: enc('s'), kind: 'socket', rdevMinor: 1 }],
    ['dir without child', { ...base, name: enc('d'), kind: 'dir' }],
    ['dir child null', { ...dir, child: null }],
    ['dir child offset < 16', { ...dir, child: { metaOffset: 15, payloadBase: 0 } }],
    ['dir payload base', { ...dir, child: { metaOffset: 16, payloadBase: -1 } }],
    ['child on a file', file('a', { child: { metaOffset: 16, payloadBase: 0 } })],
    ['xattrs not an array', file('a', { xattrs: 'x' as never })],
    ['xattr not a pair', file('a', { xattrs: [[enc('x')] as never] })],
    ['xattr value not bytes', file('a', { xattrs: [[enc('x'), 'v' as never]] })],
    ['xattr name empty', file('a', { xattrs: [[new Uint8Array(0), enc('v')]] })],
    ['xattr name NUL', file('a', { xattrs: [[enc('\0'), enc('v')]] })],
    ['xattr name too long', file('a', { xattrs: [[new Uint8Array(256).fill(0x61), enc('v')]] })],
    ['xattr value too long', file('a', { xattrs: [[enc('x'), new Uint8Array(65537)]] })],
    [
      'duplicate xattr',
      file('a', {
        xattrs: [
          [enc('x'), enc('1')],
          [enc('x'), enc('2')],
        ],
      }),
    ],
    ['too many xattrs', file('a', { xattrs: Array.from({ length: 1025 }, (_, i) => [enc(`x${i}`), new Uint8Array(0)] as const) })],
  ];
  for (const [what, e] of cases)
    t.equal(
      code(() => encodeDirRecord([e as TreeEntry])),
      'ERR_INVALID_ARGUMENT',
      what,
    );
  t.equal(
    code(() => encodeDirRecord([file('a'), file('b'), file('a', { size: 3 })])),
    'ERR_INVALID_ARGUMENT',
    'duplicate names',
  );
  t.equal(
    code(() => encodeDirRecord('x' as never)),
    'ERR_INVALID_ARGUMENT',
    'not an array',
  );
  t.equal(
    code(() => encodeDirRecord({ length: MAX_DIR_ENTRIES + 1 } as never)),
    'ERR_INVALID_ARGUMENT',
    'not an array (array-like)',
  );
  const tooMany = new Array<TreeEntry>(MAX_DIR_ENTRIES + 1);
  t.equal(
    code(() => encodeDirRecord(tooMany)),
    'ERR_INVALID_ARGUMENT',
    'more than 2^24 entries',
  );
  t.equal(
    code(() => encodeRootEntry(null as never)),
    'ERR_INVALID_ARGUMENT',
  );
  t.equal(
    code(() => encodeRootEntry({ ...dir, name: 'x' as never })),
    'ERR_INVALID_ARGUMENT',
    'root name not bytes',
  );
  // limits that are allowed
  t.equal(
    code(() => encodeDirRecord([file('a', { xattrs: Array.from({ length: 1024 }, (_, i) => [enc(`x${i}`), new Uint8Array(0)] as const) })])),
    'none',
  );
  t.equal(
    code(() => encodeDirRecord([{ ...base, name: enc('h'), kind: 'hardlink', target: enc('a/'.repeat(2047) + 'a') }])),
    'none',
  );
});

t.test('property: damaged input never throws anything but a CairnError', async (t) => {
  const valid = [encodeDirRecord(allKinds.slice(0, 9)), encodeDirRecord([file('a'), fifo0()]), encodeDirRecord([])];
  function fifo0(): TreeEntry {
    return { ...base, name: enc('b'), kind: 'fifo', xattrs: [[enc('k'), enc('v')]] };
  }
  const root = encodeRootEntry({ ...base, name: new Uint8Array(0), kind: 'dir', child: { metaOffset: 16, payloadBase: 0 } });
  const trailer = encodeTreeTrailer({ rootEntryOffset: 16, payloadSize: 1, entryCount: 2 });
  const stray: string[] = [];
  const tryAll = (b: Uint8Array, resealed: boolean): void => {
    const fns: (() => unknown)[] = [
      () => decodeDirRecord(b, details),
      () => decodeDirHeader(b, details),
      () => findInRecord(b, enc('a'), details),
      () => findInRecord(b, enc('sock'), details),
      () => decodeEntry(b, 0, details),
      () => decodeEntry(b, 16, details),
      () => decodeRootEntry(b, details),
      () => decodeTreeTrailer(b, details),
      () => checkTreeStreamHeader(b, details),
    ];
    for (const f of fns) {
      const c = code(f);
      if (c === 'other') stray.push(`${resealed}: ${Buffer.from(b).toString('hex').slice(0, 80)}`);
    }
  };
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), (b) => {
      tryAll(b, false);
      if (b.length >= 4) tryAll(reseal(b), true);
    }),
    { numRuns: 2000 },
  );
  const mutation = fc.record({
    which: fc.nat(valid.length + 1),
    edits: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }),
    cut: fc.option(fc.nat(), { nil: undefined }),
  });
  let decodedAfterReseal = 0;
  fc.assert(
    fc.property(mutation, ({ which, edits, cut }) => {
      const src = which < valid.length ? valid[which]! : which === valid.length ? root : trailer;
      let b = Uint8Array.from(src);
      for (const [i, v] of edits) b[i % b.length] = v;
      if (cut !== undefined) b = b.subarray(0, cut % (b.length + 1));
      tryAll(b, false);
      if (b.length >= 4) {
        const r = reseal(b);
        tryAll(r, true);
        if (code(() => decodeDirRecord(r, details)) === 'none') decodedAfterReseal++;
      }
    }),
    { numRuns: 3000 },
  );
  t.same(stray, [], 'only CairnErrors');
  t.ok(decodedAfterReseal >= 0, `${decodedAfterReseal} resealed mutants still decoded (valid by chance)`);
});

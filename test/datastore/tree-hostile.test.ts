/**
 * Hostile and damaged tree archives: restore never writes outside its target, and every case ends
 * with a clear coded error (listing, lookups and walks too: no crash, no hang).
 *
 * Each archive is hand-crafted (test/helpers/craft-tree.ts) with correct CRCs and matching index
 * checksums, so the damage is semantic and only the tree layer can object.
 */
import t from 'tap';
import type { Test } from 'tap';
import { createHash } from 'node:crypto';
import { existsSync, promises as fsp } from 'node:fs';
import path from 'node:path';
import { CairnError, Datastore, type Snapshot } from '../../lib/index.js';
import type { RestoreTreeOptions } from '../../lib/datastore/tree-restore.js';
import { craftTreeSnapshot, fixCrc, rawDirRecord, TreeCrafter, type CraftOptions, type RawEntry } from '../helpers/craft-tree.js';
import { seededBytes, tempDir } from '../helpers/fixtures.js';

const SENTINEL = 'sentinel: must never change\n';
const ETC_NAME = '/etc/cairn-hostile-test-x';

interface Env {
  dir: string;
  ds: Datastore;
  /** This test's backup group (one datastore serves every test: its worker pool is slow to start). */
  group: string;
  outside: string;
  target: string;
  baseline: Map<string, string>;
  time: number;
}

/** Every path under `dir` with its type, mode, mtime and content/target. */
async function scan(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const visit = async (abs: Buffer, rel: Buffer): Promise<void> => {
    const st = await fsp.lstat(abs, { bigint: true });
    let d = `${st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : st.isFile() ? 'file' : 'other'} ${(st.mode & 0o7777n).toString(8)} ${st.mtimeNs} ${st.nlink}`;
    if (st.isFile())
      d += ` ${createHash('sha256')
        .update(await fsp.readFile(abs))
        .digest('hex')}`;
    if (st.isSymbolicLink()) d += ` -> ${(await fsp.readlink(abs, { encoding: 'buffer' })).toString('hex')}`;
    out.set(rel.toString('latin1'), d);
    if (st.isDirectory()) {
      for (const n of (await fsp.readdir(abs, { encoding: 'buffer' })).sort(Buffer.compare)) {
        await visit(Buffer.concat([abs, Buffer.from('/'), n]), rel.length === 0 ? n : Buffer.concat([rel, Buffer.from('/'), n]));
      }
    }
  };
  await visit(Buffer.from(dir), Buffer.alloc(0));
  return out;
}

const storeDir = tempDir(t, 'cairn-hostile-store-');
const shared = Datastore.create(path.join(storeDir, 'store'), { syncLevel: 'none', threads: 2 });
t.teardown(async () => (await shared).close());
let groups = 0;

async function setup(t: Test): Promise<Env> {
  const dir = tempDir(t, 'cairn-hostile-');
  const ds = await shared;
  const outside = path.join(dir, 'outside');
  await fsp.mkdir(path.join(outside, 'sub'), { recursive: true });
  await fsp.writeFile(path.join(outside, 'file'), SENTINEL);
  await fsp.writeFile(path.join(outside, 'sub', 'deeper'), SENTINEL);
  const env: Env = { dir, ds, group: `ct/${++groups}`, outside, target: path.join(dir, 'target'), baseline: new Map(), time: 1000 };
  // The root's own entry changes when target/ appears; everything else outside target/ must not.
  env.baseline = await scan(dir);
  env.baseline.delete('');
  return env;
}

/** Nothing exists outside the target except the untouched baseline (outside/ and its files). */
async function assertContained(t: Test, env: Env, what: string): Promise<void> {
  const now = await scan(env.dir);
  now.delete('');
  const stray = [...now.keys()].filter((p) => p !== 'target' && !p.startsWith('target/') && !env.baseline.has(p));
  t.same(stray, [], `${what}: nothing was created outside the target`);
  const changed = [...env.baseline].filter(([p, d]) => now.get(p) !== d).map(([p]) => p);
  t.same(changed, [], `${what}: the sentinel directory is unchanged`);
  t.equal(await fsp.readFile(path.join(env.outside, 'file'), 'utf8'), SENTINEL, `${what}: the sentinel file keeps its content`);
  t.notOk(existsSync(ETC_NAME), `${what}: nothing landed at ${ETC_NAME}`);
}

/** The CairnError code a promise rejects with, 'ok' when it resolves; anything else is reported as `uncoded: …`. */
async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (e) {
    if (e instanceof CairnError) return e.code;
    return `uncoded: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`;
  }
}

async function craft(env: Env, build: (c: TreeCrafter) => void | Uint8Array, options?: CraftOptions): Promise<Snapshot> {
  return craftTreeSnapshot(env.ds, env.group, env.time++, build, options);
}

async function restore(snap: Snapshot, target: string, options: RestoreTreeOptions = {}): Promise<string> {
  const r = await snap.open();
  try {
    return await codeOf(r.restoreTree('root.tree', target, options));
  } finally {
    await r.close();
  }
}

interface ListingExpect {
  /** Code of opening the tree (init); when not 'ok', nothing else is tried. */
  open?: string;
  /** Code of `list('')`. */
  list?: string;
  /** Code of walking everything. */
  walk?: string;
  /** `[path, ...allowed codes]` for `lookup(path)`. */
  lookups?: readonly (readonly [string, ...string[]])[];
  /** `[path, ...allowed codes]` for `list(path)`. */
  lists?: readonly (readonly [string, ...string[]])[];
}

async function checkListing(t: Test, snap: Snapshot, x: ListingExpect, what: string, todo?: string): Promise<void> {
  const o = todo === undefined ? {} : { todo };
  const r = await snap.open();
  try {
    let tree: Awaited<ReturnType<typeof r.tree>> | undefined;
    const open = await codeOf(r.tree('root.tree').then((tr) => (tree = tr)));
    t.equal(open, x.open ?? 'ok', `${what}: open the tree`, o);
    if (tree === undefined) return;
    const tr = tree;
    if (x.list !== undefined) t.equal(await codeOf(tr.list('')), x.list, `${what}: list('')`, o);
    if (x.walk !== undefined) {
      const walk = async (): Promise<void> => {
        let n = 0;
        for await (const _ of tr.walk()) if (++n > 10_000) throw new Error('walk does not end');
      };
      t.equal(await codeOf(walk()), x.walk, `${what}: walk()`, o);
    }
    for (const [p, ...allowed] of x.lookups ?? []) {
      const c = await codeOf(tr.lookup(p));
      t.ok(allowed.includes(c), `${what}: lookup(${JSON.stringify(p)}) gives ${c}, one of ${allowed.join('|')}`, o);
    }
    for (const [p, ...allowed] of x.lists ?? []) {
      const c = await codeOf(tr.list(p));
      t.ok(allowed.includes(c), `${what}: list(${JSON.stringify(p)}) gives ${c}, one of ${allowed.join('|')}`, o);
    }
  } finally {
    await r.close();
  }
}

/**
 * One hostile archive: restore gives `code`, nothing escapes, listing behaves as `listing` says.
 * `todo` marks the code and listing assertions (never the containment ones) as a known lib bug.
 */
async function hostile(
  t: Test,
  env: Env,
  what: string,
  build: (c: TreeCrafter) => void | Uint8Array,
  code: string,
  listing: ListingExpect = {},
  options?: CraftOptions,
  todo?: string,
): Promise<string> {
  const snap = await craft(env, build, options);
  const target = path.join(env.target, `case-${env.time}`);
  const got = await restore(snap, target);
  t.equal(got, code, `${what}: restore fails with ${code}`, todo === undefined ? {} : { todo });
  await assertContained(t, env, what);
  await checkListing(t, snap, listing, what, todo);
  return got;
}

const CORRUPT = 'ERR_TREE_CORRUPT';
const bad = (...lookups: (readonly [string, ...string[]])[]): ListingExpect => ({ list: CORRUPT, walk: CORRUPT, lookups });
const B = (s: string): Buffer => Buffer.from(s);
const ABC = B('abc');
const file = (name: string | Uint8Array, size = 3, payloadOffset = 0): RawEntry => ({ name, kind: 'file', size, payloadOffset });

/** A root directory record of `entries` (in the order given), payload 'abc'. */
const flat =
  (entries: RawEntry[]) =>
  (c: TreeCrafter): void => {
    c.payload = ABC;
    c.root(c.dir(entries));
  };

/** A root holding a directory named `name` (in that order with `siblings`) whose record has a file 'evil'. */
const withSubdir =
  (name: string | Uint8Array, siblings: RawEntry[] = [], after = false) =>
  (c: TreeCrafter): void => {
    c.payload = ABC;
    const sub = c.dir([file('evil')]);
    const d: RawEntry = { name, kind: 'dir', mode: 0o755, child: { metaOffset: sub } };
    c.root(c.dir(after ? [...siblings, d] : [d, ...siblings]));
  };

t.test('crafted archives restore when they are honest (the helper works)', async (t) => {
  const env = await setup(t);
  const snap = await craft(env, (c) => {
    c.payload = B('hello world');
    const sub = c.dir([file('inner', 5, 6)]);
    c.root(
      c.dir([
        file('a', 5, 0),
        { name: 'd', kind: 'dir', mode: 0o755, child: { metaOffset: sub, payloadBase: 0 } },
        { name: 'h', kind: 'hardlink', target: 'a' },
        { name: 's', kind: 'symlink', target: '../outside/file' },
      ]),
    );
  });
  t.equal(await restore(snap, env.target), 'ok');
  t.equal(await fsp.readFile(path.join(env.target, 'a'), 'utf8'), 'hello');
  t.equal(await fsp.readFile(path.join(env.target, 'd', 'inner'), 'utf8'), 'world');
  t.equal((await fsp.stat(path.join(env.target, 'h'))).ino, (await fsp.stat(path.join(env.target, 'a'))).ino, 'hardlink restored');
  t.equal(await fsp.readlink(path.join(env.target, 's')), '../outside/file', 'symlink restored as is, not followed');
  await assertContained(t, env, 'honest');
  await checkListing(t, snap, { list: 'ok', walk: 'ok', lookups: [['d/inner', 'ok']] }, 'honest');
});

t.test('1. an entry named ..', async (t) => {
  const env = await setup(t);
  await hostile(t, env, "dir '..' holding 'evil'", withSubdir('..', [file('a')], false), CORRUPT, bad(['..', CORRUPT], ['../evil', CORRUPT]));
  await hostile(t, env, "file '..'", flat([file('..')]), CORRUPT, bad(['..', CORRUPT]));
  await hostile(
    t,
    env,
    "'..' in a subdirectory",
    (c) => {
      c.payload = ABC;
      const sub = c.dir([file('..')]);
      c.root(c.dir([{ name: 'd', kind: 'dir', child: { metaOffset: sub } }]));
    },
    CORRUPT,
    { list: 'ok', walk: CORRUPT, lists: [['d', CORRUPT]], lookups: [['d/..', CORRUPT]] },
  );
});

t.test('2. names with a slash, absolute names', async (t) => {
  const env = await setup(t);
  await hostile(t, env, `file '${ETC_NAME}'`, flat([file(ETC_NAME)]), CORRUPT, bad());
  await hostile(t, env, 'file named with the absolute sentinel path', flat([file(path.join(env.outside, 'file'))]), CORRUPT, bad());
  await hostile(t, env, "file 'a/b'", flat([file('a/b')]), CORRUPT, bad());
  await hostile(t, env, "file '../outside/file'", flat([file('../outside/file')]), CORRUPT, bad());
  await hostile(t, env, "dir '/' holding 'evil'", withSubdir('/'), CORRUPT, bad());
  await hostile(t, env, 'name with NUL', flat([file(Uint8Array.from([0x61, 0, 0x62]))]), CORRUPT, bad());
});

t.test('3. an entry named .', async (t) => {
  const env = await setup(t);
  await hostile(t, env, "dir '.' holding 'evil'", withSubdir('.'), CORRUPT, bad(['.', CORRUPT]));
  await hostile(t, env, "file '.'", flat([file('.')]), CORRUPT, bad(['.', CORRUPT]));
});

t.test('4. an empty name', async (t) => {
  const env = await setup(t);
  await hostile(t, env, 'file with an empty name', flat([file(''), file('b')]), CORRUPT, bad(['b', 'ok', CORRUPT]));
  await hostile(t, env, 'dir with an empty name', withSubdir(''), CORRUPT, bad());
});

t.test('5. duplicate names in one directory', async (t) => {
  const env = await setup(t);
  await hostile(t, env, 'two files a', flat([file('a', 1, 0), file('a', 2, 1)]), CORRUPT, bad(['a', 'ok', CORRUPT]));
  await hostile(t, env, 'dir a and file a', withSubdir('a', [file('a')], true), CORRUPT, bad(['a', 'ok', CORRUPT], ['a/evil', 'ok', CORRUPT]));
});

t.test('6. unsorted names', async (t) => {
  const env = await setup(t);
  await hostile(t, env, 'b before a', flat([file('b'), file('a')]), CORRUPT, bad(['a', 'ok', CORRUPT], ['b', 'ok', CORRUPT]));
  await hostile(t, env, 'a prefix sorting after', flat([file('ab'), file('a')]), CORRUPT, bad(['a', 'ok', CORRUPT]));
});

t.test('7. a symlink and a directory of the same name', async (t) => {
  const env = await setup(t);
  const link: RawEntry = { name: 'a', kind: 'symlink', mode: 0o777, target: env.outside };
  await hostile(t, env, 'symlink a, then dir a/evil', withSubdir('a', [link], true), CORRUPT, bad(['a', 'ok', CORRUPT], ['a/evil', 'ok', CORRUPT]));
  await hostile(t, env, 'dir a/evil, then symlink a', withSubdir('a', [link], false), CORRUPT, bad(['a', 'ok', CORRUPT], ['a/evil', 'ok', CORRUPT]));
});

t.test('7. a symlink from one snapshot is replaced, never followed, by a directory of the next', async (t) => {
  const env = await setup(t);
  for (const [i, options] of [{ overwrite: true }, { overwrite: true, include: ['a/evil'] }, { overwrite: true, include: ['**/evil'] }].entries()) {
    const target = path.join(env.target, `t${i}`);
    const first = await craft(
      env,
      flat([
        { name: 'a', kind: 'symlink', mode: 0o777, target: env.outside },
        { name: 'b', kind: 'symlink', mode: 0o777, target: path.join(env.outside, 'file') },
      ]),
    );
    t.equal(await restore(first, target), 'ok', 'the first archive restores its symlinks');
    t.equal(await fsp.readlink(path.join(target, 'a')), env.outside);
    const second = await craft(env, (c) => {
      c.payload = B('EVIL!');
      const sub = c.dir([file('evil', 5, 0)]);
      c.root(c.dir([{ name: 'a', kind: 'dir', mode: 0o755, child: { metaOffset: sub, payloadBase: 0 } }, file('b', 5, 0)]));
    });
    t.equal(await restore(second, target), 'ERR_EXISTS', 'without overwrite: ERR_EXISTS');
    await assertContained(t, env, `second archive without overwrite (${i})`);
    t.equal(await restore(second, target, options), 'ok', `with ${JSON.stringify(options)}`);
    await assertContained(t, env, `second archive over the symlinks ${JSON.stringify(options)}`);
    t.ok((await fsp.lstat(path.join(target, 'a'))).isDirectory(), 'the symlink a became a real directory');
    t.equal(await fsp.readFile(path.join(target, 'a', 'evil'), 'utf8'), 'EVIL!', 'the file landed inside the target');
    if (options.include === undefined) {
      t.ok((await fsp.lstat(path.join(target, 'b'))).isFile(), 'the symlink b became a regular file');
      t.equal(await fsp.readFile(path.join(target, 'b'), 'utf8'), 'EVIL!');
    }
  }
});

t.test('8. hardlinks that point anywhere but at a file of the archive', async (t) => {
  const env = await setup(t);
  const withLink =
    (target: string | Uint8Array, extra: RawEntry[] = []) =>
    (c: TreeCrafter): void => {
      c.payload = ABC;
      const sub = c.dir([file('x')]);
      const entries: RawEntry[] = [{ name: 'd', kind: 'dir', mode: 0o755, child: { metaOffset: sub } }, file('f'), { name: 'h', kind: 'hardlink', target }, ...extra];
      c.root(c.dir(entries.sort((a, b) => Buffer.compare(Buffer.from(a.name), Buffer.from(b.name)))));
    };
  const listingOk: ListingExpect = { list: 'ok', walk: 'ok', lookups: [['h', 'ok']] };
  await hostile(t, env, 'hardlink to ../outside/file', withLink('../outside/file'), CORRUPT, bad());
  await hostile(t, env, 'hardlink to /etc/passwd', withLink('/etc/passwd'), CORRUPT, bad());
  await hostile(t, env, 'hardlink to the absolute sentinel path', withLink(path.join(env.outside, 'file')), CORRUPT, bad());
  await hostile(t, env, 'hardlink to d/../f', withLink('d/../f'), CORRUPT, bad());
  await hostile(t, env, 'hardlink to a missing path', withLink('nope'), 'ERR_UNSAFE_PATH', listingOk);
  await hostile(t, env, 'hardlink to a missing path in a directory', withLink('d/nope'), 'ERR_UNSAFE_PATH', listingOk);
  await hostile(t, env, 'hardlink to a directory', withLink('d'), 'ERR_UNSAFE_PATH', listingOk);
  await hostile(t, env, 'hardlink to itself', withLink('h'), 'ERR_UNSAFE_PATH', listingOk);
  const links: RawEntry[] = [
    { name: 'a', kind: 'symlink', mode: 0o777, target: env.outside },
    { name: 's', kind: 'symlink', mode: 0o777, target: path.join(env.outside, 'file') },
  ];
  await hostile(t, env, 'hardlink to a symlink pointing outside', withLink('s', links), 'ERR_UNSAFE_PATH', listingOk);
  await hostile(t, env, 'hardlink through a symlink (restored before it)', withLink('a/file', links), 'ERR_UNSAFE_PATH', listingOk);
  await hostile(
    t,
    env,
    'hardlink through a symlink (restored after it)',
    flat([
      { name: 'a', kind: 'symlink', mode: 0o777, target: env.outside },
      { name: 'z', kind: 'hardlink', target: 'a/file' },
    ]),
    'ERR_UNSAFE_PATH',
    { list: 'ok', walk: 'ok' },
  );
  await hostile(t, env, 'hardlink to a fifo', withLink('p', [{ name: 'p', kind: 'fifo', mode: 0o644 }]), 'ERR_UNSAFE_PATH', listingOk);
});

t.test('9. absurd sizes and offsets', async (t) => {
  const env = await setup(t);
  const before = process.memoryUsage().arrayBuffers;
  await hostile(t, env, 'file one byte longer than the payload', flat([file('f', 4, 0)]), CORRUPT, bad(['f', CORRUPT]));
  await hostile(t, env, 'file starting past the payload', flat([file('f', 1, 3)]), CORRUPT, bad(['f', CORRUPT]));
  await hostile(t, env, 'empty file far past the payload', flat([file('f', 0, 2 ** 40)]), CORRUPT, bad(['f', CORRUPT]));
  await hostile(t, env, 'size 2^53 - 2', flat([file('f', 2 ** 53 - 2, 0)]), CORRUPT, bad(['f', CORRUPT]));
  await hostile(t, env, 'size 2^53 - 1', flat([file('f', 2 ** 53 - 1, 0)]), CORRUPT, bad(['f', CORRUPT]));
  await hostile(t, env, 'size + offset over 2^53 - 1', flat([file('f', 2 ** 52, 2 ** 52)]), CORRUPT, bad(['f', CORRUPT]));
  await hostile(t, env, 'size 2^53 (varint out of range)', flat([file('f', 2 ** 53, 0)]), CORRUPT, bad(['f', CORRUPT]));
  await hostile(
    t,
    env,
    'child payload base past the payload',
    (c) => {
      c.payload = ABC;
      const sub = c.dir([file('x', 0, 0)]);
      c.root(c.dir([{ name: 'd', kind: 'dir', child: { metaOffset: sub, payloadBase: 2 ** 53 - 1 } }]));
    },
    CORRUPT,
    { list: 'ok', walk: CORRUPT, lists: [['d', CORRUPT]], lookups: [['d/x', CORRUPT]] },
  );
  await hostile(
    t,
    env,
    'root payload base past the payload',
    (c) => {
      c.payload = ABC;
      c.root(c.dir([file('f', 1, 0)]), 2 ** 50);
    },
    CORRUPT,
    bad(['f', CORRUPT]),
  );
  const grown = process.memoryUsage().arrayBuffers - before;
  t.ok(grown < 256 * 1024 * 1024, `no huge allocation (array buffers grew by ${grown} bytes)`);
});

t.test('9. stream indexes that claim absurd chunk lengths', async (t) => {
  const env = await setup(t);
  const GiB = 1024 * 1024 * 1024;
  // Metadata: [header · root record · root entry] [1 byte, claimed as 8 GiB] [trailer]. The root
  // entry lies in the first chunk, the trailer in the last: both honest, the lie sits between.
  let head = 0;
  const withGap = (c: TreeCrafter): Uint8Array => {
    c.payload = ABC;
    c.root(c.dir([file('f')]));
    head = c.pos;
    const whole = c.finish();
    return Buffer.concat([whole.subarray(0, head), Uint8Array.from([0]), whole.subarray(head)]);
  };
  await hostile(t, env, 'a stray byte between the root entry record and the trailer', withGap, CORRUPT, { open: CORRUPT }, { meta: { cuts: () => [head, 1] } });
  const before = process.memoryUsage().arrayBuffers;
  await hostile(
    t,
    env,
    'a metadata chunk claimed as 8 GiB',
    withGap,
    CORRUPT,
    { open: CORRUPT },
    { meta: { cuts: () => [head, 1], claim: (i, real) => (i === 1 ? 8 * GiB : real) } },
  );
  t.ok(process.memoryUsage().arrayBuffers - before < 256 * 1024 * 1024, 'no huge allocation');

  // Payload: 3 real bytes claimed as 1 TiB; a file of 1 TiB passes the range check but restore reads
  // it in bounded windows and stops at the first chunk that is not what the index says.
  const TiB = 2 ** 40;
  await hostile(
    t,
    env,
    'a payload chunk claimed as 1 TiB, and a 1 TiB file',
    (c) => {
      c.payload = ABC;
      c.root(c.dir([file('f', TiB, 0)]));
      c.trailer({ payloadSize: TiB });
    },
    CORRUPT,
    { list: 'ok', walk: 'ok', lookups: [['f', 'ok']] },
    { payload: { claim: () => TiB } },
  );
  const r = await (await env.ds.snapshot(env.group)).open();
  try {
    const tree = await r.tree('root.tree');
    t.equal(await codeOf(tree.readFile('f', 0, 10)), CORRUPT, 'reading a range of it: ERR_TREE_CORRUPT');
  } finally {
    await r.close();
  }
  t.ok(process.memoryUsage().arrayBuffers - before < 256 * 1024 * 1024, 'no huge allocation');
});

t.test('10. directory records that point at themselves or at later records', async (t) => {
  const env = await setup(t);
  await hostile(
    t,
    env,
    'a directory whose record is its parent record',
    (c) => {
      c.payload = ABC;
      const at = c.pos;
      c.root(c.dir([{ name: 'loop', kind: 'dir', child: { metaOffset: at } }, file('z')]));
    },
    CORRUPT,
    bad(['loop', CORRUPT], ['loop/loop/loop', CORRUPT]),
  );
  await hostile(
    t,
    env,
    'a directory pointing at a later record that points back (a cycle)',
    (c) => {
      c.payload = ABC;
      // The root record comes first; 'a' points at the record after it, whose 'b' points back at the root record.
      const rootRecord = c.pos;
      const first = rawDirRecord([{ name: 'a', kind: 'dir', child: { metaOffset: 0 } }]);
      const aAt = rootRecord + first.length;
      c.dir([{ name: 'a', kind: 'dir', child: { metaOffset: aAt } }]);
      c.dir([{ name: 'b', kind: 'dir', child: { metaOffset: rootRecord } }, file('evil')]);
      c.root(rootRecord);
    },
    CORRUPT,
    bad(['a', CORRUPT], ['a/b/a/b', CORRUPT]),
  );
  await hostile(
    t,
    env,
    'a child pointing at its ancestor two levels up',
    (c) => {
      c.payload = ABC;
      // Records: [a's record][root record]; a's 'up' points at the root record (after it).
      const aAt = c.pos;
      const aRecordLen = rawDirRecord([{ name: 'up', kind: 'dir', child: { metaOffset: 0 } }]).length;
      const rootAt = aAt + aRecordLen;
      c.dir([{ name: 'up', kind: 'dir', child: { metaOffset: rootAt } }]);
      c.root(c.dir([{ name: 'a', kind: 'dir', child: { metaOffset: aAt } }]));
    },
    CORRUPT,
    {
      list: 'ok',
      walk: CORRUPT,
      lists: [['a', CORRUPT]],
      lookups: [
        ['a/up', CORRUPT],
        ['a/up/a/up', CORRUPT],
      ],
    },
  );
  await hostile(
    t,
    env,
    'a child record offset past the metadata',
    flat([{ name: 'd', kind: 'dir', child: { metaOffset: 2 ** 40 } }]),
    CORRUPT,
    bad(['d', CORRUPT], ['d/x', CORRUPT]),
  );
  await hostile(
    t,
    env,
    'a child record offset into the middle of a record',
    (c) => {
      c.payload = ABC;
      const sub = c.dir([file('x')]);
      c.root(c.dir([{ name: 'd', kind: 'dir', child: { metaOffset: sub + 5 } }]));
    },
    CORRUPT,
    { list: 'ok', walk: CORRUPT, lists: [['d', CORRUPT]], lookups: [['d/x', CORRUPT]] },
  );
  await hostile(
    t,
    env,
    'the root entry pointing at its own record position',
    (c) => {
      c.payload = ABC;
      c.dir([file('f')]);
      c.root(c.pos);
    },
    CORRUPT,
    { open: CORRUPT },
  );
});

t.test('11. two directory entries sharing one record', async (t) => {
  const env = await setup(t);
  await hostile(
    t,
    env,
    'a and b share a record',
    (c) => {
      c.payload = ABC;
      const sub = c.dir([file('f')]);
      c.root(
        c.dir([
          { name: 'a', kind: 'dir', child: { metaOffset: sub } },
          { name: 'b', kind: 'dir', child: { metaOffset: sub } },
        ]),
      );
    },
    CORRUPT,
    // Listing one directory cannot see the sharing, and need not: only the walk (restore) can.
    {
      list: 'ok',
      walk: CORRUPT,
      lookups: [
        ['a/f', 'ok', CORRUPT],
        ['b/f', 'ok', CORRUPT],
      ],
    },
  );
  await hostile(
    t,
    env,
    'a directory sharing the root record',
    (c) => {
      c.payload = ABC;
      const sub = c.dir([file('f')]);
      c.root(
        c.dir([
          { name: 'a', kind: 'dir', child: { metaOffset: sub } },
          { name: 'b', kind: 'dir', child: { metaOffset: sub } },
          { name: 'c', kind: 'dir', child: { metaOffset: sub } },
        ]),
      );
    },
    CORRUPT,
    { list: 'ok', walk: CORRUPT },
  );
});

/** A valid stream: root [d/ (x), f], payload 'abc'. Returns the bytes and the positions. */
function validStream(): { bytes: Uint8Array; sub: number; rootRecord: number; rootEntry: number; payload: Uint8Array } {
  const c = new TreeCrafter();
  c.payload = ABC;
  const sub = c.dir([file('x', 2, 1)]);
  const rootRecord = c.dir([{ name: 'd', kind: 'dir', mode: 0o755, child: { metaOffset: sub } }, file('f')]);
  const rootEntry = c.root(rootRecord);
  return { bytes: c.finish(), sub, rootRecord, rootEntry, payload: c.payload };
}

t.test('12. trailers, truncation, garbage with fixed-up CRCs', async (t) => {
  const env = await setup(t);
  const v = validStream();
  const use =
    (bytes: Uint8Array) =>
    (c: TreeCrafter): Uint8Array => {
      c.payload = v.payload;
      return bytes;
    };
  t.equal(await restore(await craft(env, use(v.bytes)), path.join(env.target, 'valid')), 'ok', 'the unmodified stream restores');

  const trailerWith =
    (rootEntryOffset: number | undefined, extra: Partial<{ payloadSize: number; entryCount: number }> = {}) =>
    (c: TreeCrafter): void => {
      c.payload = ABC;
      const at = c.root(c.dir([file('f')]));
      c.trailer({ rootEntryOffset: rootEntryOffset ?? at, ...extra });
    };
  const open: ListingExpect = { open: CORRUPT };
  await hostile(t, env, 'root entry offset 2^40', trailerWith(2 ** 40), CORRUPT, open);
  await hostile(t, env, 'root entry offset 2^53 - 1', trailerWith(2 ** 53 - 1), CORRUPT, open);
  await hostile(
    t,
    env,
    'root entry offset at the trailer',
    (c) => {
      c.payload = ABC;
      c.root(c.dir([file('f')]));
      c.trailer({ rootEntryOffset: c.pos });
    },
    CORRUPT,
    open,
  );
  await hostile(t, env, 'root entry offset at a directory record', trailerWith(16), CORRUPT, open);
  await hostile(t, env, 'trailer payload size disagrees', trailerWith(undefined, { payloadSize: 2 ** 40 }), CORRUPT, open);
  await hostile(
    t,
    env,
    'no root entry, no records',
    (c) => {
      c.trailer({ rootEntryOffset: 16 });
    },
    CORRUPT,
    open,
  );

  for (const n of [0, 1, 15, 16, 63, v.sub + 3, v.rootRecord + 10, v.rootEntry + 2, v.bytes.length - 48, v.bytes.length - 1]) {
    await hostile(t, env, `metadata stream truncated to ${n} bytes`, use(v.bytes.subarray(0, n)), CORRUPT, open);
  }
  // Cut in the middle, trailer kept: the root entry offset then points at the wrong bytes.
  await hostile(t, env, 'bytes cut from the middle, trailer kept', use(Buffer.concat([v.bytes.subarray(0, v.sub + 4), v.bytes.subarray(v.sub + 12)])), CORRUPT, open);

  // Garbage inside records, every CRC fixed up.
  const patchRecord = (at: number, len: number, patch: (r: Uint8Array) => void): Uint8Array => {
    const b = Uint8Array.from(v.bytes);
    patch(b.subarray(at, at + len));
    fixCrc(b.subarray(at, at + len));
    return b;
  };
  const subLen = v.rootRecord - v.sub;
  const rootLen = v.rootEntry - v.rootRecord;
  const rootEntryLen = v.bytes.length - 48 - v.rootEntry;
  const dv = (r: Uint8Array): DataView => new DataView(r.buffer, r.byteOffset, r.byteLength);
  const subBad: ListingExpect = { list: 'ok', lists: [['d', CORRUPT]], walk: CORRUPT };
  await hostile(t, env, 'unknown kind 99 in a record', use(patchRecord(v.sub, subLen, (r) => (r[16 + 4 + 1] = 99))), CORRUPT, { ...subBad, lookups: [['d/x', CORRUPT]] });
  await hostile(t, env, 'record count 2^24 + 1', use(patchRecord(v.sub, subLen, (r) => dv(r).setUint32(4, 2 ** 24 + 1, true))), CORRUPT, {
    ...subBad,
    lookups: [['d/x', CORRUPT]],
  });
  await hostile(t, env, 'record count 0 with entries', use(patchRecord(v.sub, subLen, (r) => dv(r).setUint32(4, 0, true))), CORRUPT, subBad);
  await hostile(t, env, 'record entries length 2^32 - 1', use(patchRecord(v.sub, subLen, (r) => dv(r).setUint32(8, 2 ** 32 - 1, true))), CORRUPT, {
    ...subBad,
    lookups: [['d/x', CORRUPT]],
  });
  await hostile(t, env, 'record reserved field set', use(patchRecord(v.sub, subLen, (r) => dv(r).setUint32(12, 1, true))), CORRUPT, { ...subBad, lookups: [['d/x', CORRUPT]] });
  await hostile(t, env, 'record offset table pointing past the entries', use(patchRecord(v.sub, subLen, (r) => dv(r).setUint32(16, 2 ** 31, true))), CORRUPT, {
    ...subBad,
    lookups: [['d/x', CORRUPT]],
  });
  await hostile(t, env, 'record magic wrong', use(patchRecord(v.sub, subLen, (r) => (r[0] = 0x58))), CORRUPT, { ...subBad, lookups: [['d/x', CORRUPT]] });
  await hostile(t, env, 'root record entry length 0', use(patchRecord(v.rootRecord, rootLen, (r) => (r[16 + 8] = 0))), CORRUPT, bad());
  await hostile(
    t,
    env,
    'bytes after an entry (entry length grown)',
    (c) => {
      c.payload = ABC;
      c.root(c.dir([{ ...file('f'), extra: Uint8Array.from([1, 2, 3]) }]));
    },
    CORRUPT,
    bad(['f', CORRUPT]),
  );
  await hostile(
    t,
    env,
    'a non-minimal varint',
    (c) => {
      c.payload = ABC;
      // mode written as 0x80 0x00 (= 0, not minimal): entry = kind, name, mode...
      const body = Uint8Array.from([1, 1, 0x66, 0x80, 0x00, 0, 0, 0, 0, 3, 0, 0]);
      c.root(c.dir([body]));
    },
    CORRUPT,
    bad(['f', CORRUPT]),
  );
  await hostile(t, env, 'a file as the root entry', use(patchRecord(v.rootEntry, rootEntryLen, (r) => (r[5] = 1))), CORRUPT, open);
  await hostile(
    t,
    env,
    'a root entry with a name',
    (c) => {
      c.payload = ABC;
      const at = c.dir([file('f')]);
      const body = Buffer.concat([Uint8Array.from([2, 1, 0x78, 0x80 | (0o755 & 0x7f), 0o755 >> 7, 0, 0, 0, 0]), Uint8Array.from([at, 0, 0])]);
      const rec = Buffer.concat([Buffer.from('CRE1'), Uint8Array.from([body.length]), body, Buffer.alloc(4)]);
      c.raw(fixCrc(rec));
      c.trailer({ rootEntryOffset: at + rawDirRecord([file('f')]).length });
    },
    CORRUPT,
    open,
  );
  await hostile(t, env, 'stream header version 2', use(Buffer.concat([v.bytes.subarray(0, 8), Uint8Array.from([2, 0, 0, 0]), v.bytes.subarray(12)])), 'ERR_FORMAT_VERSION', {
    open: 'ERR_FORMAT_VERSION',
  });

  // Seeded fuzz: any byte of any record replaced, CRC fixed; restore either works or fails coded,
  // and nothing escapes either way.
  const rnd = seededBytes(600, 42);
  const seen = new Map<string, number>();
  for (let i = 0; i < 120; i++) {
    const which = rnd[5 * i]! % 3;
    const [at, len] = which === 0 ? [v.sub, subLen] : which === 1 ? [v.rootRecord, rootLen] : [v.rootEntry, rootEntryLen];
    const pos = ((rnd[5 * i + 1]! << 8) | rnd[5 * i + 2]!) % (len - 4);
    const val = rnd[5 * i + 3]!;
    const snap = await craft(env, use(patchRecord(at, len, (r) => (r[pos] = val))));
    const target = path.join(env.target, `fuzz-${i}`);
    const code = await restore(snap, target);
    seen.set(code, (seen.get(code) ?? 0) + 1);
    if (!['ok', CORRUPT, 'ERR_UNSAFE_PATH', 'ERR_FORMAT_VERSION'].includes(code)) t.fail(`fuzz ${i}: record ${which} byte ${pos} = ${val}: ${code}`);
    // A mutated name or a hardlink could only land inside; the walk below checks that nothing escaped.
  }
  await assertContained(t, env, 'after 120 mutated records');
  t.comment(`fuzz outcomes: ${JSON.stringify(Object.fromEntries(seen))}`);
});

t.test('13. a restore target that already holds symlinks where the archive has directories and files', async (t) => {
  const env = await setup(t);
  const archive = await craft(env, (c) => {
    c.payload = B('EVIL!');
    const deeper = c.dir([file('evil', 5, 0)]);
    const sub = c.dir([file('evil', 5, 0), { name: 'sub', kind: 'dir', mode: 0o755, child: { metaOffset: deeper } }]);
    c.root(c.dir([{ name: 'a', kind: 'dir', mode: 0o755, child: { metaOffset: sub } }, file('f', 5, 0)]));
  });
  const plant = async (target: string): Promise<void> => {
    await fsp.mkdir(target, { recursive: true });
    await fsp.symlink(env.outside, path.join(target, 'a'));
    await fsp.symlink(path.join(env.outside, 'file'), path.join(target, 'f'));
  };
  const t1 = path.join(env.target, 'no-overwrite');
  await plant(t1);
  env.baseline = await scan(env.dir);
  env.baseline.delete('');
  t.equal(await restore(archive, t1), 'ERR_EXISTS', 'without overwrite: ERR_EXISTS');
  await assertContained(t, env, 'no overwrite');
  t.equal(await fsp.readlink(path.join(t1, 'a')), env.outside, 'the symlink is left alone');

  const t2 = path.join(env.target, 'overwrite');
  await plant(t2);
  env.baseline = await scan(env.dir);
  for (const k of [...env.baseline.keys()]) if (k === '' || k.startsWith('target')) env.baseline.delete(k);
  t.equal(await restore(archive, t2, { overwrite: true }), 'ok', 'with overwrite: restored');
  await assertContained(t, env, 'overwrite');
  t.ok((await fsp.lstat(path.join(t2, 'a'))).isDirectory(), 'the symlink a was replaced by a directory');
  t.ok((await fsp.lstat(path.join(t2, 'f'))).isFile(), 'the symlink f was replaced by a file');
  t.equal(await fsp.readFile(path.join(t2, 'a', 'sub', 'evil'), 'utf8'), 'EVIL!');

  // A symlink deeper down, inside a real directory of the target.
  const t3 = path.join(env.target, 'deep');
  await fsp.mkdir(path.join(t3, 'a'), { recursive: true });
  await fsp.symlink(path.join(env.outside, 'sub'), path.join(t3, 'a', 'sub'));
  await fsp.symlink(path.join(env.outside, 'file'), path.join(t3, 'a', 'evil'));
  t.equal(await restore(archive, t3, { overwrite: true }), 'ok', 'deeper symlinks: restored');
  await assertContained(t, env, 'deeper symlinks');
  t.ok((await fsp.lstat(path.join(t3, 'a', 'sub'))).isDirectory(), 'the deeper symlink was replaced by a directory');
  t.ok((await fsp.lstat(path.join(t3, 'a', 'evil'))).isFile());

  // Only some paths restored: the directories leading to them are still checked.
  const t4 = path.join(env.target, 'include');
  await plant(t4);
  t.equal(await restore(archive, t4, { overwrite: true, include: ['a/sub/evil'] }), 'ok', 'include through a symlinked directory');
  await assertContained(t, env, 'include');
  t.ok((await fsp.lstat(path.join(t4, 'a'))).isDirectory(), 'a became a directory');
  t.equal(await fsp.readFile(path.join(t4, 'a', 'sub', 'evil'), 'utf8'), 'EVIL!');
});

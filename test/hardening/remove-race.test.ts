// A removal in the datastore cannot be redirected by a swap after its check (issue 12: "Cleanup
// recurses through symlinks planted in the datastore"). Someone who can write inside the datastore
// swaps a directory of the snapshot or group being removed, or one above it, for a symlink to a
// directory outside that holds copies of the same names plus a canary, after the removal has looked
// at what it removes and before it deletes anything. A test hook (`removalHooks` in
// lib/backend/local.ts) pauses the removal exactly there, so the window is hit every time. Each
// removal must end with a coded error or succeed inside the datastore; outside, nothing changes.
//
// Covered: forget (Snapshot.remove), group remove (finished and unfinished snapshot directories),
// namespace remove --recursive, and a backup removing the unfinished directory a crashed backup left.
import t, { type Test } from 'tap';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Datastore, isCairnError, type Datastore as DatastoreT } from '../../lib/index.js';
import { LocalBackend, removalHooks } from '../../lib/backend/local.js';
import { nativeAvailable } from '../../lib/codec/native.js';
import { tempDir } from '../helpers/fixtures.js';

t.setTimeout(120_000);

const T1 = '2026-01-01T00:00:00Z';
const T2 = '2026-01-02T00:00:00Z';
const T3 = '2026-01-03T00:00:00Z'; // an unfinished directory newer than every finished snapshot
const T4 = '2026-01-04T00:00:00Z';
const T0 = '2025-12-31T00:00:00Z'; // an unfinished directory older than every finished snapshot

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex').slice(0, 16);

/** Every entry below `dir` with its type, mode and content hash: what must not change outside. */
function describe(dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string): void => {
    for (const name of readdirSync(path.join(dir, rel)).sort()) {
      const r = path.join(rel, name);
      const st = lstatSync(path.join(dir, r));
      if (st.isDirectory()) {
        out.push(`${r}/`);
        walk(r);
      } else {
        out.push(`${r} ${st.isFile() ? sha(readFileSync(path.join(dir, r))) : 'special'} ${st.mtimeMs}`);
      }
    }
  };
  walk('');
  return out;
}

interface Case {
  readonly name: string;
  /** The directory (relative to the datastore) swapped for a symlink while the removal is paused. */
  readonly swap: string;
  /** The removal call the hook pauses (by the key it reports). */
  readonly pauseAt: (key: string) => boolean;
  /** Extra set-up after the two finished snapshots (unfinished directories, namespaces). */
  readonly prepare?: (store: string, ds: DatastoreT) => Promise<void> | void;
  /** The removal. */
  readonly run: (ds: DatastoreT) => Promise<unknown>;
}

/** An unfinished snapshot directory as a crashed backup leaves it (files, no manifest). */
function unfinished(store: string, time: string, withSubdir = false): void {
  const d = path.join(store, 'host', 'g', time);
  mkdirSync(d);
  writeFileSync(path.join(d, 'disk.img.fidx'), 'partial index');
  writeFileSync(path.join(d, 'conf.blob'), 'partial blob');
  if (withSubdir) {
    mkdirSync(path.join(d, 'sub'));
    writeFileSync(path.join(d, 'sub', 'inner'), 'inner');
  }
}

const under = (prefix: string) => (key: string) => key === prefix || key.startsWith(`${prefix}/`);

const cases: Case[] = [
  {
    name: 'forget: the snapshot directory itself',
    swap: `host/g/${T1}`,
    pauseAt: under(`host/g/${T1}`),
    run: async (ds) => (await ds.snapshot(`host/g/${T1}`)).remove(),
  },
  {
    name: 'forget: the group directory above the snapshot',
    swap: 'host/g',
    pauseAt: under(`host/g/${T1}`),
    run: async (ds) => (await ds.snapshot(`host/g/${T1}`)).remove(),
  },
  {
    name: 'group remove: the group directory, while a snapshot is taken apart',
    swap: 'host/g',
    pauseAt: under(`host/g/${T1}`),
    run: (ds) => ds.group('host/g').remove(),
  },
  {
    name: 'group remove: the group directory, while an unfinished directory is removed',
    swap: 'host/g',
    pauseAt: under(`host/g/${T0}`),
    prepare: (store) => unfinished(store, T0),
    run: (ds) => ds.group('host/g').remove(),
  },
  {
    name: 'group remove: the type directory, while the group directory is removed',
    swap: 'host',
    pauseAt: (key) => key === 'host/g',
    run: (ds) => ds.group('host/g').remove(),
  },
  {
    name: 'namespace remove --recursive: the namespace directory',
    swap: 'ns/a',
    pauseAt: under('ns/a/host/g'),
    prepare: async (_store, ds) => {
      await ds.createNamespace('a');
      const w = await ds.group('host/g', { namespace: 'a' }).backup({ time: T1 });
      await w.addBlob('conf', 'namespaced\n');
      await w.commit();
    },
    run: (ds) => ds.removeNamespace('a', { recursive: true }),
  },
  {
    name: 'backup: the group directory, while the unfinished directory of a crashed backup is removed',
    swap: 'host/g',
    pauseAt: under(`host/g/${T3}`),
    prepare: (store) => unfinished(store, T3),
    run: async (ds) => (await ds.group('host/g').backup({ time: T4 })).abort(),
  },
  {
    name: 'backup: the unfinished directory itself',
    swap: `host/g/${T3}`,
    pauseAt: under(`host/g/${T3}`),
    prepare: (store) => unfinished(store, T3),
    run: async (ds) => (await ds.group('host/g').backup({ time: T4 })).abort(),
  },
  {
    name: 'backup: a directory inside the unfinished directory',
    swap: `host/g/${T3}/sub`,
    pauseAt: under(`host/g/${T3}`),
    prepare: (store) => unfinished(store, T3, true),
    run: async (ds) => (await ds.group('host/g').backup({ time: T4 })).abort(),
  },
];

async function one(t: Test, dir: string, c: Case, n: number): Promise<void> {
  const store = path.join(dir, `store-${n}`);
  const outside = path.join(dir, `outside-${n}`);
  const ds = await Datastore.create(store, { syncLevel: 'none', threads: 0 });
  t.teardown(() => ds.close());
  for (const time of [T1, T2]) {
    const w = await ds.group('host/g').backup({ time });
    await w.addBlob('conf', `config at ${time}\n`);
    await w.commit();
  }
  await c.prepare?.(store, ds);

  let paused: string | undefined;
  let before: string[] = [];
  removalHooks.afterCheck = (key: string): void => {
    if (paused !== undefined || !c.pauseAt(key)) return;
    paused = key;
    // The attacker's move: a copy of the directory outside (the same names, so a removal that
    // resolves paths again would hit them), a canary beside them, then the swap.
    const p = path.join(store, c.swap);
    cpSync(p, outside, { recursive: true, preserveTimestamps: true });
    writeFileSync(path.join(outside, 'canary'), 'alive');
    before = describe(outside);
    renameSync(p, `${p}.moved`);
    symlinkSync(outside, p);
  };
  t.teardown(() => {
    delete removalHooks.afterCheck;
  });

  let outcome: string;
  try {
    await c.run(ds);
    outcome = 'succeeded';
  } catch (e) {
    if (!isCairnError(e)) throw e;
    outcome = `${e.code}: ${e.message}`;
  } finally {
    delete removalHooks.afterCheck;
  }
  t.ok(paused !== undefined, `the removal was paused after its check (at ${paused ?? 'never'})`);
  t.comment(`outcome: ${outcome}`);
  t.ok(outcome === 'succeeded' || outcome.startsWith('ERR_'), 'the removal succeeded inside or failed with a coded error');
  t.same(describe(outside), before, 'nothing outside the datastore was removed or changed');
}

t.test("a directory swapped for a symlink between a removal's check and its deletes", { skip: nativeAvailable() ? false : 'native addon not built' }, async (t) => {
  const dir = tempDir(t, 'cairn-remove-race-');
  let n = 0;
  for (const c of cases) await t.test(c.name, (t) => one(t, dir, c, n++));
});

t.test('the removals check everything first and act only through descriptors', { skip: nativeAvailable() ? false : 'native addon not built' }, async (t) => {
  const dir = tempDir(t, 'cairn-remove-check-');
  const b = new LocalBackend(path.join(dir, 'store'));
  const code = async (p: Promise<unknown>): Promise<string> =>
    p.then(
      () => 'ok',
      (e: unknown) => {
        if (!isCairnError(e)) throw e;
        return `${e.code} ${String(e.details.path)}`;
      },
    );
  const root = path.join(dir, 'store');
  const tree = (): void => {
    mkdirSync(path.join(root, 'a', 'b', 'c'), { recursive: true });
    writeFileSync(path.join(root, 'a', 'f'), 'f');
    writeFileSync(path.join(root, 'a', 'b', 'g'), 'g');
    writeFileSync(path.join(root, 'a', 'b', 'c', 'h'), 'h');
  };

  tree();
  execFileSync('mkfifo', [path.join(root, 'a', 'b', 'c', 'fifo')]);
  t.equal(await code(b.removeTree('a')), `ERR_UNSAFE_PATH ${path.join(root, 'a', 'b', 'c', 'fifo')}`, 'a FIFO deep in the tree is named');
  t.ok(existsSync(path.join(root, 'a', 'f')) && existsSync(path.join(root, 'a', 'b', 'c', 'h')), 'and nothing was removed');
  renameSync(path.join(root, 'a', 'b', 'c', 'fifo'), path.join(dir, 'fifo'));
  symlinkSync(dir, path.join(root, 'a', 'b', 'link'));
  t.equal(await code(b.removeTree('a')), `ERR_UNSAFE_PATH ${path.join(root, 'a', 'b', 'link')}`, 'a symlink in the tree is named');
  t.ok(existsSync(path.join(root, 'a', 'b', 'c', 'h')), 'and nothing was removed');
  renameSync(path.join(root, 'a', 'b', 'link'), path.join(dir, 'link'));

  // A name that is not UTF-8 is removed like any other (names are handled as bytes).
  writeFileSync(Buffer.concat([Buffer.from(path.join(root, 'a', 'b') + '/'), Buffer.from([0x66, 0xff, 0xfe])]), 'x');
  t.equal(await code(b.removeTree('a')), 'ok', 'a clean tree is removed');
  t.notOk(existsSync(path.join(root, 'a')), 'all of it');
  t.equal(await b.removeTree('a'), false, 'a missing prefix: false');
  t.equal(await b.removeTree('x/y/z'), false, 'a missing directory on the way: false');

  // A symlinked component on the way, or the prefix itself a symlink: named, the target untouched.
  mkdirSync(path.join(dir, 'elsewhere', 'g'), { recursive: true });
  writeFileSync(path.join(dir, 'elsewhere', 'g', 'canary'), 'alive');
  symlinkSync(path.join(dir, 'elsewhere'), path.join(root, 'host'));
  t.equal(await code(b.removeTree('host/g')), `ERR_UNSAFE_PATH ${path.join(root, 'host')}`, 'a symlink on the way is named');
  t.equal(await code(b.removeTree('host')), `ERR_UNSAFE_PATH ${path.join(root, 'host')}`, 'the prefix as a symlink is named');
  t.equal(await code(b.removeFileDir('host/g')), `ERR_UNSAFE_PATH ${path.join(root, 'host')}`, 'removeFileDir too');
  t.ok(existsSync(path.join(dir, 'elsewhere', 'g', 'canary')), 'the target is untouched');
  writeFileSync(path.join(root, 'file'), 'f');
  t.equal(await code(b.removeTree('file/sub')), `ERR_UNSAFE_PATH ${path.join(root, 'file')}`, 'a file on the way is named');

  // A snapshot-like directory: only regular files; the first name goes first.
  mkdirSync(path.join(root, 's', 'sub'), { recursive: true });
  for (const f of ['a.blob', 'manifest.blob', 'z.fidx']) writeFileSync(path.join(root, 's', f), f);
  t.equal(await code(b.removeFileDir('s', 'manifest.blob')), `ERR_UNSAFE_PATH ${path.join(root, 's', 'sub')}`, 'a directory in it is named');
  t.same(readdirSync(path.join(root, 's')).sort(), ['a.blob', 'manifest.blob', 'sub', 'z.fidx'], 'and nothing was removed');
  renameSync(path.join(root, 's', 'sub'), path.join(dir, 'sub'));
  // A file swapped for a directory after the check fails its unlink; the first name went before.
  removalHooks.afterCheck = (): void => {
    renameSync(path.join(root, 's', 'z.fidx'), path.join(dir, 'z.fidx'));
    mkdirSync(path.join(root, 's', 'z.fidx'));
  };
  t.teardown(() => {
    delete removalHooks.afterCheck;
  });
  t.equal(await code(b.removeFileDir('s', 'manifest.blob')), `ERR_UNSAFE_PATH ${path.join(root, 's', 'z.fidx')}`, 'a file that became a directory is named');
  t.notOk(existsSync(path.join(root, 's', 'manifest.blob')), 'the first name was removed first');
  execFileSync('rmdir', [path.join(root, 's', 'z.fidx')]);
  writeFileSync(path.join(root, 's', 'manifest.blob'), 'm');
  removalHooks.afterCheck = (): void => {
    // A writer's temp file appearing after the check goes too; a directory appearing stays, and
    // so does the directory holding it.
    writeFileSync(path.join(root, 's', '.x.tmp-1-1'), 't');
    mkdirSync(path.join(root, 's', 'late'));
  };
  t.equal(await b.removeFileDir('s', 'manifest.blob'), false, 'removeFileDir: false when a directory appeared after the check');
  t.same(readdirSync(path.join(root, 's')), ['late'], 'only the directory that appeared is left');
  delete removalHooks.afterCheck;
  execFileSync('rmdir', [path.join(root, 's', 'late')]);
  writeFileSync(path.join(root, 's', 'manifest.blob'), 'm');
  removalHooks.afterCheck = (): void => writeFileSync(path.join(root, 's', '.x.tmp-1-2'), 't');
  t.equal(await b.removeFileDir('s', 'manifest.blob'), true, 'removeFileDir: true');
  delete removalHooks.afterCheck;
  t.notOk(existsSync(path.join(root, 's')), 'the directory is gone, with the temp file that appeared after the check');
  t.equal(await b.removeFileDir('s'), false, 'a missing directory: false');

  // A subdirectory replaced by another real directory after the check is not emptied.
  tree();
  removalHooks.afterCheck = (): void => {
    renameSync(path.join(root, 'a', 'b'), path.join(root, 'b.old'));
    mkdirSync(path.join(root, 'a', 'b'));
    writeFileSync(path.join(root, 'a', 'b', 'keep'), 'keep');
  };
  t.equal(await code(b.removeTree('a')), `ERR_UNSAFE_PATH ${path.join(root, 'a', 'b')}`, 'a directory replaced after the check is named');
  delete removalHooks.afterCheck;
  t.ok(existsSync(path.join(root, 'a', 'b', 'keep')), 'and what it holds stays');
});

/**
 * The rules that keep the storage seam real (lib/backend/BACKENDS.md): checked on the source text,
 * beside the layer check of layers.test.ts. Each rule has a probe that must fire on a planted
 * violation, so a rule that matches nothing fails here instead of passing silently.
 */
import t from 'tap';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';

function files(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) out.push(...files(p));
    else if (p.endsWith('.ts') && !p.endsWith('.d.ts')) out.push(p);
  }
  return out.sort();
}

const LIB = files('lib');
const source = (p: string): string => readFileSync(p, 'utf8');
/** The source without comments, so a rule is not tripped by documentation. */
const code = (text: string): string => text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1');

/** A value import (not `import type`) of node:fs or node:fs/promises. */
const FS_IMPORT = /^\s*import\s+(?!type\b)[^;]*?from\s+['"](node:)?fs(\/promises)?['"]/m;

/**
 * The named adapters of lib/datastore that read sources and write restore targets on the local
 * filesystem by nature: a backup reads the user's files, a restore writes them.
 */
const FS_ADAPTERS = new Set(['lib/datastore/image-source.ts', 'lib/datastore/tree-writer.ts', 'lib/datastore/file-restore.ts', 'lib/datastore/tree-restore.ts']);

function fsOffenders(paths: readonly string[], read: (p: string) => string): string[] {
  return paths.filter((p) => /^lib\/(store|maintenance|datastore)\//.test(p) && !FS_ADAPTERS.has(p) && FS_IMPORT.test(code(read(p))));
}

function backendChoosers(paths: readonly string[], read: (p: string) => string): string[] {
  return paths.filter((p) => !p.startsWith('lib/backend/') && p !== 'lib/datastore/datastore.ts' && /new\s+(LocalBackend|MemoryBackend)\s*\(/.test(code(read(p))));
}

function clockOffenders(paths: readonly string[], read: (p: string) => string): string[] {
  return paths.filter((p) => p !== 'lib/util/clock.ts' && /\bDate\.now\s*\(|new\s+Date\s*\(\s*\)/.test(code(read(p))));
}

t.test('no node:fs in store, maintenance or datastore code outside the named source/target adapters', async (t) => {
  t.same(fsOffenders(LIB, source), []);
  for (const a of FS_ADAPTERS) t.ok(LIB.includes(a), `adapter ${a} exists (a stale allowance would hide nothing, but say so)`);
  t.same(
    fsOffenders(['lib/store/x.ts', 'lib/maintenance/y.ts', 'lib/datastore/z.ts', 'lib/host/w.ts'], (p) =>
      p === 'lib/datastore/z.ts' ? "import type { Stats } from 'node:fs';" : "import { promises as fsp } from 'node:fs';",
    ),
    ['lib/store/x.ts', 'lib/maintenance/y.ts'],
    'probe: a value import fires, a type import and lib/host do not',
  );
});

t.test('only the datastore opening code chooses a concrete backend', async (t) => {
  t.same(backendChoosers(LIB, source), []);
  t.same(
    backendChoosers(['lib/maintenance/gc.ts'], () => 'const b = new LocalBackend(root);'),
    ['lib/maintenance/gc.ts'],
    'probe',
  );
});

/** Who may digest chunks and build or open envelopes: the envelope module (and hash.ts, where BLAKE3 lives). */
const ENVELOPE_HOMES = new Set(['lib/codec/envelope.ts', 'lib/codec/hash.ts', 'lib/codec/compress.ts']);
/** Measures the codecs themselves (`cairn benchmark`), outside any envelope. */
const CODEC_BENCHMARK = 'lib/pool/benchmark.ts';

function envelopeOffenders(paths: readonly string[], read: (p: string) => string): string[] {
  return paths.filter((p) => {
    if (ENVELOPE_HOMES.has(p)) return false;
    const c = code(read(p));
    if (/\bblake3\s*\(|\bencodeEnvelopeHeader\s*\(|\bFLAG_COMPRESSED\b/.test(c)) return true;
    return p !== CODEC_BENCHMARK && /\blz4Decompress\s*\(/.test(c);
  });
}

t.test('one envelope module: chunk digests, envelope headers and LZ4 decoding only in lib/codec/envelope.ts', async (t) => {
  t.same(envelopeOffenders(LIB, source), []);
  t.same(
    envelopeOffenders(['lib/datastore/snapshot-reader.ts', 'lib/pool/tasks.ts', 'lib/codec/envelope.ts'], (p) =>
      p === 'lib/pool/tasks.ts' ? 'const d = blake3(data);' : p === 'lib/codec/envelope.ts' ? 'blake3(x); lz4Decompress(y, 1)' : 'const raw = lz4Decompress(payload, size);',
    ),
    ['lib/datastore/snapshot-reader.ts', 'lib/pool/tasks.ts'],
    'probe',
  );
});

t.test('Date.now only behind the clock (lib/util/clock.ts)', async (t) => {
  t.same(clockOffenders(LIB, source), []);
  t.same(
    clockOffenders(['lib/fuse/mount.ts'], () => 'const now = Date.now();'),
    ['lib/fuse/mount.ts'],
    'probe',
  );
  t.same(
    clockOffenders(['lib/x.ts'], () => '// Date.now() in a comment'),
    [],
    'comments do not count',
  );
});

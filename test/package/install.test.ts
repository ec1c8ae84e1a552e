/**
 * Cairn as a dependency, as a user gets it: the committed tree is packed (`npm pack`, whose
 * prepack builds the addon, its prebuild and dist/), the tarball is installed into an empty
 * project with npm 11 (this machine's) and with npm 10, with no overrides and no manual step,
 * and a strict TypeScript ESM program that imports `Datastore` from `cairn` and `mountSnapshot`
 * from `cairn/fuse` is compiled (moduleResolution node16 and bundler, library checks on) and run:
 * a backup, a restore, a mount read from a child process. `npx cairn --help` works. Then the
 * addon is taken away: opening a datastore says ERR_NATIVE and what to do, and doing it
 * (`npm rebuild cairn`) builds it from source.
 *
 * Needs git (the tree is what HEAD holds), the npm registry (the dependencies, and npm 10 through
 * npx), a C compiler for the build, and /dev/fuse for the mount.
 */
import t, { type Test } from 'tap';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { REPO } from '../cli/run-cli.js';

interface Out {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command; never rejects (the exit code and output are checked by the caller). */
function run(cmd: string, args: string[], cwd: string, env: Record<string, string> = {}, timeoutMs = 300_000): Promise<Out> {
  const base: Record<string, string | undefined> = { ...process.env, ...env };
  // The test runner's loader and coverage options are not for these programs.
  delete base['NODE_OPTIONS'];
  delete base['NODE_V8_COVERAGE'];
  delete base['CAIRN_STORE'];
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd, env: base, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1;
      resolve({ code, stdout, stderr });
    });
  });
}

const show = (o: Out): string => `exit ${o.code}\n--- stdout\n${o.stdout.slice(-4000)}\n--- stderr\n${o.stderr.slice(-4000)}`;

/** Passes when the command exited 0; its output is shown only when it did not. */
function succeeded(t: Test, o: Out, what: string): void {
  if (o.code === 0) t.pass(what);
  else t.fail(`${what}: ${show(o)}`);
}

// Build the addon against the installed Node's headers when they are there (no download), as CI does.
const buildEnv: Record<string, string> = existsSync('/usr/include/node/node_api.h') && process.env['npm_config_nodedir'] === undefined ? { npm_config_nodedir: '/usr' } : {};
const quiet = { npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false' };
const TSC = path.join(REPO, 'node_modules', 'typescript', 'bin', 'tsc');

/** The consumer's program: strict TypeScript, ESM, the public entry points only. */
const PROGRAM = `import { Datastore, isCairnError, type ArchiveStats } from 'cairn';
import { mountSnapshot, type Mount } from 'cairn/fuse';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const work = mkdtempSync(path.join(tmpdir(), 'cairn-consumer-'));
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const image = randomBytes(3 * 1024 * 1024 + 123);
writeFileSync(path.join(work, 'disk.raw'), image);
mkdirSync(path.join(work, 'etc'));
writeFileSync(path.join(work, 'etc', 'hosts'), '127.0.0.1 localhost\\n');

const ds = await Datastore.create(path.join(work, 'store'));
const w = await ds.group('vm/100').backup();
const stats: ArchiveStats = await w.addImage('disk.img', path.join(work, 'disk.raw'));
await w.addTree('etc.tree', path.join(work, 'etc'));
const snap = await w.commit();
console.log('backup', snap.name, stats.bytes);

const reader = await snap.open();
await reader.restore('disk.img', path.join(work, 'restored.raw'));
await reader.restoreTree('etc.tree', path.join(work, 'etc-restored'));
await reader.close();
if (sha(readFileSync(path.join(work, 'restored.raw'))) !== sha(image)) throw new Error('restored image differs');
if (readFileSync(path.join(work, 'etc-restored', 'hosts'), 'utf8') !== '127.0.0.1 localhost\\n') throw new Error('restored tree differs');
console.log('restore ok');

const mnt = path.join(work, 'mnt');
mkdirSync(mnt);
const m: Mount = await mountSnapshot(snap, mnt);
try {
  // A child process reads the mount, asynchronously: this process serves its reads.
  const r = await promisify(execFile)('sha256sum', [path.join(mnt, 'disk.img')], { encoding: 'utf8' });
  if (r.stdout.split(' ')[0] !== sha(image)) throw new Error('the mounted image differs');
  console.log('mount ok');
} finally {
  await m.unmount();
}
try {
  await ds.snapshot('vm/404');
  throw new Error('a missing group was found');
} catch (e) {
  if (!isCairnError(e) || e.code !== 'ERR_NOT_FOUND') throw e;
  console.log('coded error', e.code);
}
await ds.close();
rmSync(work, { recursive: true, force: true });
`;

const strict = { target: 'ES2022', strict: true, exactOptionalPropertyTypes: true, noUncheckedIndexedAccess: true, skipLibCheck: false, types: ['node'], rootDir: 'src' };
const TSCONFIGS: Record<string, unknown> = {
  'tsconfig.node16.json': { compilerOptions: { ...strict, module: 'node16', moduleResolution: 'node16', outDir: 'out' }, include: ['src'] },
  'tsconfig.bundler.json': { compilerOptions: { ...strict, module: 'preserve', moduleResolution: 'bundler', noEmit: true }, include: ['src'] },
};

// Packing, two installs from the registry and a build from source: minutes, not the default 2.
t.setTimeout(15 * 60_000);

const top = mkdtempSync(path.join(tmpdir(), 'cairn-pack-'));
t.teardown(() => rmSync(top, { recursive: true, force: true }));

let tarball = '';

t.test('npm pack of the committed tree builds and ships what a consumer needs', async (t) => {
  const src = path.join(top, 'src');
  mkdirSync(src);
  // The tree as committed (git archive), with this checkout's installed dev dependencies.
  const archive = path.join(top, 'tree.tar');
  const a = await run('git', ['-C', REPO, 'archive', '--format=tar', '-o', archive, 'HEAD'], REPO);
  succeeded(t, a, 'git archive');
  const x = await run('tar', ['-xf', archive, '-C', src], REPO);
  succeeded(t, x, 'tar');
  symlinkSync(path.join(REPO, 'node_modules'), path.join(src, 'node_modules'));
  const p = await run('npm', ['pack', '--pack-destination', top], src, { ...buildEnv, ...quiet });
  succeeded(t, p, 'npm pack');
  const name = readdirSync(top).find((f) => f.endsWith('.tgz'));
  t.ok(name, 'a tarball');
  tarball = path.join(top, name ?? 'missing.tgz');
  const list = await run('tar', ['-tzf', tarball], top);
  const files = list.stdout.split('\n').filter(Boolean);
  for (const f of [
    'package/dist/index.js',
    'package/dist/index.d.ts',
    'package/dist/fuse/index.js',
    'package/dist/cli/main.js',
    'package/prebuilds/linux-x64/cairn.glibc.node',
    'package/binding.gyp',
    'package/native/src/cairn_native.c',
    'package/README.md',
  ]) {
    t.ok(files.includes(f), `ships ${f}`);
  }
  t.notOk(
    files.some((f) => f.startsWith('package/test/') || f.startsWith('package/bench/') || f.startsWith('package/node_modules/') || f.startsWith('package/build/')),
    'no tests, benches, node_modules or build output',
  );
});

for (const npm of [
  { label: 'npm 11', cmd: 'npm', pre: [] as string[] },
  { label: 'npm 10', cmd: 'npx', pre: ['--yes', 'npm@10'] },
]) {
  t.test(`${npm.label}: install into an empty project, compile a strict TypeScript consumer, run it`, async (t) => {
    if (tarball === '') return t.fail('no tarball');
    const app = path.join(top, `app-${npm.label.replace(' ', '')}`);
    mkdirSync(app);
    const npmRun = (args: string[], env: Record<string, string> = {}): Promise<Out> => run(npm.cmd, [...npm.pre, ...args], app, { ...quiet, ...env });
    const v = await npmRun(['--version']);
    t.match(v.stdout.trim(), npm.label === 'npm 10' ? /^10\./ : /^\d+\./, `${npm.label} is ${v.stdout.trim()}`);
    t.equal((await npmRun(['init', '-y'])).code, 0, 'npm init -y');
    const i = await npmRun(['install', tarball]);
    succeeded(t, i, 'npm install <tarball>');
    t.notMatch(i.stderr, /ETARGET|ERESOLVE/, 'every dependency resolves');
    // A second install (a user adding their own dependency re-resolves the tree) works as well.
    const again = await npmRun(['install', '@types/node@20']);
    succeeded(t, again, 'npm install @types/node@20 afterwards');

    const help = await run('npx', ['--no-install', 'cairn', '--help'], app);
    succeeded(t, help, 'npx cairn --help');
    t.match(help.stdout, /^Usage: cairn /m);

    mkdirSync(path.join(app, 'src'));
    writeFileSync(path.join(app, 'src', 'main.ts'), PROGRAM);
    const pkg = path.join(app, 'package.json');
    writeFileSync(pkg, JSON.stringify({ ...JSON.parse(readFileSync(pkg, 'utf8')), type: 'module' }, null, 2));
    for (const [file, config] of Object.entries(TSCONFIGS)) {
      writeFileSync(path.join(app, file), JSON.stringify(config, null, 2));
      const c = await run(process.execPath, [TSC, '-p', file], app);
      succeeded(t, c, `tsc -p ${file}`);
    }
    const r = await run(process.execPath, ['out/main.js'], app, {}, 120_000);
    succeeded(t, r, 'the consumer runs');
    t.match(r.stdout, /^backup vm\/100\/\S+ 3145851\nrestore ok\nmount ok\ncoded error ERR_NOT_FOUND\n$/);

    if (npm.label !== 'npm 11') return;
    // Without the addon (no prebuild fits, nothing built): a datastore does not open, and the
    // error says what to do; doing it builds the addon from source.
    const pkgDir = path.join(app, 'node_modules', 'cairn');
    renameSync(path.join(pkgDir, 'prebuilds'), path.join(app, 'prebuilds.away'));
    rmSync(path.join(pkgDir, 'build'), { recursive: true, force: true });
    const probe = `import { Datastore } from 'cairn'; try { await Datastore.open('.'); } catch (e) { console.log(e.code + ': ' + e.message); }`;
    const missing = await run(process.execPath, ['--input-type=module', '-e', probe], app);
    t.match(
      missing.stdout,
      /^ERR_NATIVE: cairn's native addon is not built and no prebuilt binary fits linux-x64 .*`npm rebuild cairn --foreground-scripts`/,
      'a missing addon: ERR_NATIVE, and what to do',
    );
    const rb = await npmRun(['rebuild', 'cairn', '--foreground-scripts'], buildEnv);
    succeeded(t, rb, 'npm rebuild cairn');
    t.ok(existsSync(path.join(pkgDir, 'build', 'Release', 'cairn_native.node')), 'built from source');
    const after = await run(process.execPath, ['out/main.js'], app, {}, 120_000);
    succeeded(t, after, 'the consumer runs on the addon built from source');
    // An addon that is there but does not load says so too.
    writeFileSync(path.join(pkgDir, 'build', 'Release', 'cairn_native.node'), 'not an ELF file');
    const broken = await run(process.execPath, ['--input-type=module', '-e', probe], app);
    t.match(
      broken.stdout,
      /^ERR_NATIVE: cairn's native addon \S+cairn_native\.node does not load on this system .*npm rebuild cairn/,
      'an addon that does not load: ERR_NATIVE, and what to do',
    );
  });
}

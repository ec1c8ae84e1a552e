/**
 * The tools the bench suite (bench/suite.js) runs on each data set, all through their command lines
 * (so every tool pays its own process start, and each step's peak RSS is that process's):
 *
 * - `cairn-img`: Cairn, the image as an image archive (fixed-size chunks of the datastore default,
 *   1 MiB: what a VM backup uses), with a changed-block map where the data set gives one;
 * - `cairn-cdc`: Cairn, the directory holding the image as a tree archive (content-defined chunks);
 * - `cairn-tree`: Cairn, a directory tree as a tree archive (metadata-mode incrementals);
 * - `restic` (encryption cannot be turned off; compression `auto`, its default);
 * - `borg` (`--encryption none`, `--compression lz4`).
 *
 * Each tool object: `init()`, `backup(v, info)`, `restore(target)` → the restored data directory,
 * `verify()`, `prune()` (keep the newest snapshot, then free space), `mount(mnt)` → `{ pid, path }`
 * of the newest snapshot's data directory, `unmount(mnt)`. Each step returns `timed()`'s
 * `{ seconds, rssMiB, cpuSeconds }`.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, realpathSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { isMountPoint, timed } from './common.js';

const here = path.dirname(fileURLToPath(import.meta.url));
export const CLI = path.join(here, '..', 'dist', 'cli', 'main.js');

/** Combines the steps of a two-command operation: seconds and CPU added, the larger RSS. */
function both(a, b) {
  return { seconds: a.seconds + b.seconds, rssMiB: Math.max(a.rssMiB, b.rssMiB), cpuSeconds: a.cpuSeconds + b.cpuSeconds };
}

/** Waits until `test()` is true (polling every 50 ms); throws after `ms`. */
async function until(test, ms, what) {
  const end = Date.now() + ms;
  while (!test()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Stops a FUSE mount made by a child process and waits for that process to end. */
async function fuseUnmount(mnt, child) {
  spawnSync('fusermount', ['-u', mnt]);
  if (child === undefined) return;
  const exited = new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r() : child.once('exit', r)));
  const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(t);
}

function cairnTool(name, { repo, scratch, dataDir, mode }) {
  const cairn = (args) => timed(process.execPath, [CLI, '--store', repo, ...args]);
  const group = mode === 'img' ? 'vm/1' : 'host/1';
  const archive = mode === 'img' ? 'disk.img' : 'data.tree';
  return {
    name,
    repo,
    init: () => timed(process.execPath, [CLI, 'init', repo, '--sync-level', 'filesystem']),
    backup(v, info) {
      const args = ['backup', group, mode === 'img' ? `disk.img:${path.join(dataDir, 'disk.img')}` : `data.tree:${dataDir}`, '--time', `2026-01-01T0${v}:00:00Z`];
      if (mode === 'img' && info.changed) {
        const file = path.join(scratch, `changed-v${v}.txt`);
        writeFileSync(file, info.changed.map(([o, l]) => `${o} ${l}\n`).join(''));
        args.push('--changed', file);
      }
      return cairn(args);
    },
    restore(target) {
      mkdirSync(target, { recursive: true });
      const r = cairn(mode === 'img' ? ['restore', group, archive, path.join(target, 'disk.img')] : ['restore', group, archive, target]);
      return { ...r, root: target };
    },
    verify: () => cairn(['verify']),
    prune: () => both(cairn(['prune', group, '--keep-last', '1']), cairn(['gc', '--skew', '0'])),
    async mount(mnt) {
      mkdirSync(mnt, { recursive: true });
      const r = spawnSync(process.execPath, [CLI, '--store', repo, '--json', 'mount', group, mnt, '--daemon'], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`cairn mount failed: ${r.stderr}`);
      return { pid: JSON.parse(r.stdout).pid, path: mode === 'img' ? mnt : path.join(mnt, archive) };
    },
    async unmount(mnt) {
      spawnSync(process.execPath, [CLI, 'umount', mnt]);
    },
  };
}

function resticTool({ repo, scratch, dataDir }) {
  const env = { RESTIC_PASSWORD: 'bench', RESTIC_CACHE_DIR: path.join(scratch, 'restic-cache') };
  const restic = (args, cwd) => timed('restic', [...args, '--repo', repo], { env, cwd });
  let child;
  return {
    name: 'restic',
    repo,
    init: () => restic(['init']),
    backup: () => restic(['backup', '--compression', 'auto', '.'], dataDir),
    restore(target) {
      return { ...restic(['restore', 'latest', '--target', target]), root: target };
    },
    verify: () => restic(['check', '--read-data']),
    prune: () => restic(['forget', '--keep-last', '1', '--prune']),
    async mount(mnt) {
      mkdirSync(mnt, { recursive: true });
      child = spawn('restic', ['mount', mnt, '--repo', repo], { env: { ...process.env, ...env }, stdio: 'ignore' });
      await until(() => existsSync(path.join(mnt, 'snapshots', 'latest')), 60_000, 'restic mount');
      // `latest` is a symlink (find would not descend into it): use the snapshot directory it names.
      return { pid: child.pid, path: realpathSync(path.join(mnt, 'snapshots', 'latest')) };
    },
    async unmount(mnt) {
      await fuseUnmount(mnt, child);
      child = undefined;
    },
  };
}

function borgTool({ repo, scratch, dataDir }) {
  const env = {
    BORG_PASSPHRASE: '',
    BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes',
    BORG_RELOCATED_REPO_ACCESS_IS_OK: 'yes',
    BORG_BASE_DIR: path.join(scratch, 'borg-base'),
  };
  const borg = (args, cwd) => timed('borg', args, { env, cwd });
  let last = 0;
  let child;
  return {
    name: 'borg',
    repo,
    init: () => borg(['init', '--encryption', 'none', repo]),
    backup(v) {
      last = v;
      return borg(['create', '--compression', 'lz4', `${repo}::v${v}`, '.'], dataDir);
    },
    restore(target) {
      mkdirSync(target, { recursive: true });
      return { ...borg(['extract', `${repo}::v${last}`], target), root: target };
    },
    verify: () => borg(['check', '--verify-data', repo]),
    prune: () => both(borg(['prune', '--keep-last', '1', repo]), borg(['compact', repo])),
    async mount(mnt) {
      mkdirSync(mnt, { recursive: true });
      child = spawn('borg', ['mount', '-f', `${repo}::v${last}`, mnt], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      child.stderr.on('data', (d) => (err += d));
      await until(() => isMountPoint(mnt) || child.exitCode !== null, 60_000, 'borg mount');
      if (!isMountPoint(mnt)) throw new Error(`borg mount failed: ${err.trim()}`);
      return { pid: child.pid, path: mnt };
    },
    async unmount(mnt) {
      await fuseUnmount(mnt, child);
      child = undefined;
    },
  };
}

/**
 * The tools for a data set of `kind` ('image' or 'tree'): Cairn's modes first (the first is the one
 * compared with the peers), then each peer in `peers`.
 */
export function makeTools(kind, { scratch, dataDir, peers }) {
  const at = (name) => ({ repo: path.join(scratch, `repo-${name}`), scratch, dataDir });
  const tools =
    kind === 'image'
      ? [cairnTool('cairn-img', { ...at('cairn-img'), mode: 'img' }), cairnTool('cairn-cdc', { ...at('cairn-cdc'), mode: 'tree' })]
      : [cairnTool('cairn-tree', { ...at('cairn-tree'), mode: 'tree' })];
  if (peers.includes('restic')) tools.push(resticTool(at('restic')));
  if (peers.includes('borg')) tools.push(borgTool(at('borg')));
  return tools;
}

/** The installed version of a peer, one line. */
export function peerVersion(name) {
  const r = spawnSync(name, [name === 'restic' ? 'version' : '--version'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim().split('\n')[0] : 'unknown';
}

/** Why a peer's FUSE mount cannot run here, or null (borg needs the python3 llfuse module). */
export function peerMountUnavailable(name) {
  if (name !== 'borg') return null;
  const r = spawnSync('borg', ['mount', '--help'], { encoding: 'utf8' });
  const py = spawnSync('/usr/bin/python3', ['-c', 'import llfuse'], { encoding: 'utf8' });
  return r.status === 0 && py.status === 0 ? null : 'borg mount needs python3-llfuse (bench/setup installs it)';
}

/**
 * `cairn mount` and `cairn umount`: mount a snapshot or the datastore read-only (FUSE), and unmount it.
 * The FUSE adapter is imported dynamically, so that other commands never load fuse-native.
 */
import { spawn, spawnSync } from 'node:child_process';
import { readFile, stat } from 'node:fs/promises';
import { resolve as resolvePath } from 'node:path';
import type { Command } from 'commander';
import { CairnError, Datastore } from '../../index.js';
import { print, storePath, warnReadOnly, type CliContext } from '../context.js';

/** True while `mountpoint` is a mount point (listed in /proc/self/mounts). */
async function isMounted(mountpoint: string): Promise<boolean> {
  const abs = resolvePath(mountpoint);
  const text = await readFile('/proc/self/mounts', 'utf8');
  return text.split('\n').some((l) => l.split(' ')[1]?.replace(/\\040/g, ' ') === abs);
}

/** Resolves when SIGINT/SIGTERM arrives or the mount disappears (cairn umount, fusermount -u). */
async function waitUntilUnmounted(mountpoint: string): Promise<void> {
  await new Promise<void>((resolve) => {
    const done = (): void => {
      clearInterval(timer);
      process.off('SIGINT', done);
      process.off('SIGTERM', done);
      process.off('SIGHUP', done);
      resolve();
    };
    const timer = setInterval(() => {
      isMounted(mountpoint).then(
        (m) => (m ? undefined : done()),
        () => undefined,
      );
    }, 500);
    process.once('SIGINT', done);
    process.once('SIGTERM', done);
    process.once('SIGHUP', done);
  });
}

/** Unmounts a FUSE mount with fusermount -u (then lazily, -uz); ERR_NOT_FOUND when nothing is mounted there. */
async function unmountPath(mountpoint: string): Promise<void> {
  const abs = resolvePath(mountpoint);
  if (!(await isMounted(abs))) throw new CairnError('ERR_NOT_FOUND', `nothing is mounted at ${abs}`, { path: abs });
  for (const args of [
    ['-u', abs],
    ['-uz', abs],
  ]) {
    const r = spawnSync('fusermount', args, { encoding: 'utf8' });
    if (r.status === 0) return;
    if (args[0] === '-uz') throw new CairnError('ERR_IO', `fusermount ${args.join(' ')} failed: ${(r.stderr || r.error?.message || '').trim()}`, { path: abs });
  }
}

/** Starts this command again detached, waits until it has mounted (or failed), and returns. */
async function daemonize(): Promise<void> {
  const child = spawn(process.execPath, [...process.execArgv, process.argv[1]!, ...process.argv.slice(2)], {
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, CAIRN_MOUNT_CHILD: '1' },
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number | null>((resolve) => {
    child.stdout!.on('data', () => {
      if (out.includes('\n')) resolve(null);
    });
    child.on('exit', (c) => resolve(c ?? 1));
  });
  if (code !== null) {
    process.stderr.write(err);
    process.exitCode = code;
    return;
  }
  process.stdout.write(out);
  // The child goes on alone; its later output goes nowhere.
  child.stdout!.destroy();
  child.stderr!.destroy();
  child.unref();
}

/**
 * The mountpoint must be an existing directory (as for mount(8)); checked before detaching, so that
 * the error reaches the caller. A stale mount (ENOTCONN) passes: mounting clears it.
 */
async function checkMountpoint(mountpoint: string): Promise<void> {
  const abs = resolvePath(mountpoint);
  const st = await stat(abs).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOTCONN') return undefined;
    if (e.code === 'ENOENT') throw new CairnError('ERR_NOT_FOUND', `mountpoint ${abs} does not exist (create the directory first)`, { path: abs });
    if (e.code === 'ENOTDIR') return { isDirectory: () => false };
    throw new CairnError('ERR_IO', `cannot use ${abs} as a mountpoint: ${e.message}`, { path: abs, ...(e.code === undefined ? {} : { syscallCode: e.code }) });
  });
  if (st !== undefined && !st.isDirectory()) throw new CairnError('ERR_INVALID_ARGUMENT', `mountpoint ${abs} is not a directory`, { path: abs });
}

/** Parses an octal mode given on the command line (`0444`, `444`, `0o444`). */
function octalMode(option: string, text: string): number {
  const m = /^(?:0o?)?([0-7]{1,4})$/i.exec(text.trim());
  if (m === null) throw new CairnError('ERR_INVALID_ARGUMENT', `${option} wants an octal mode such as 0440, not '${text}'`, { option, value: text });
  return parseInt(m[1]!, 8);
}

/** Parses a number of seconds (decimals allowed) into ms. */
function seconds(option: string, text: string): number {
  const v = Number(text);
  if (text.trim() === '' || !Number.isFinite(v) || v < 0)
    throw new CairnError('ERR_INVALID_ARGUMENT', `${option} wants a number of seconds ≥ 0, not '${text}'`, { option, value: text });
  return Math.round(v * 1000);
}

const MOUNT_HELP = `
The mountpoint must be an existing directory; it is not created (exit 3 when
it does not exist, 2 when it is not a directory).

Who may read what: the mount always applies the modes and owners it shows (FUSE
default_permissions), also with --allow-other. The entries of a tree archive
keep their own modes and owners. Image and blob archives belong to the user who
mounts, mode 0400 (--image-mode 0440 or 0444 opens them to the group or to
everyone). The directories the mount makes up belong to that user too: the root
of a snapshot mount is 0555 (it lists only the archive names); the namespace,
type, group and snapshot directories of a datastore mount are 0500, so other
users see nothing of it unless --dir-mode (e.g. 0555) opens them.

Names that are not valid UTF-8: FUSE passes names as UTF-8 text here, so each
byte of a name (or of a symlink target, or of an xattr name) that is not part of
valid UTF-8 is shown as the private-use character U+F700 + the byte (byte 0xFF
shows as U+F7FF), and a real U+F700..U+F7FF in a name shows as its three bytes
escaped the same way. Every entry keeps one name of its own; valid names show
exactly as they are.

An open file holds its snapshot: on a datastore mount a snapshot is closed (and
its lock against prune and forget released) only when no file of it is open and
nobody has read it for --idle-close seconds.`;

/** Adds `mount` to the program. */
export function registerMount(program: Command, cli: CliContext): void {
  program
    .command('mount')
    .description('mount a snapshot, or the whole datastore, read-only (FUSE); stays in the foreground until unmounted or interrupted')
    .argument('<target>', 'a snapshot (type/id/time, or type/id for the newest), or the mountpoint (an existing directory) alone to mount the whole datastore (below --ns)')
    .argument('[mountpoint]', 'where to mount a snapshot (an existing directory)')
    .option('--daemon', 'detach once mounted')
    .option('--allow-other', 'let other users reach the mount (they see what the modes shown allow, see below)')
    .option('--image-mode <octal>', 'mode of image and blob archives, owned by the mounting user (read bits only)', '0400')
    .option('--dir-mode <octal>', 'mode of the directories the mount makes up (default: 0555 for a snapshot, 0500 for a datastore)')
    .option('--idle-close <seconds>', 'datastore mount: close a snapshot with no open file after this long unread', '10')
    .addHelpText('after', MOUNT_HELP)
    .addHelpText(
      'after',
      '\nExamples:\n  cairn --store ./cairn-store mount vm/100 /mnt/vm100        # then: losetup -r -f /mnt/vm100/drive-scsi0.img\n  cairn --store ./cairn-store mount /mnt/cairn --daemon      # /mnt/cairn/<ns>/<type>/<id>/<time>/<archive>\n  cairn umount /mnt/cairn',
    )
    .action(async (target: string, mountpoint: string | undefined, o: { daemon?: boolean; allowOther?: boolean; imageMode: string; dirMode?: string; idleClose: string }) => {
      const g = cli.globals();
      // Checked before detaching, so that bad input fails here with its exit code.
      const imageMode = octalMode('--image-mode', o.imageMode);
      const dirMode = o.dirMode === undefined ? undefined : octalMode('--dir-mode', o.dirMode);
      const idleCloseMs = seconds('--idle-close', o.idleClose);
      await checkMountpoint(mountpoint ?? target);
      if (o.daemon === true && process.env['CAIRN_MOUNT_CHILD'] !== '1') {
        await daemonize();
        return;
      }
      const { mountSnapshot, mountDatastore } = await import('../../fuse/index.js');
      const ds = await Datastore.open(storePath(g));
      warnReadOnly(ds);
      const opts = { ...(o.allowOther === true ? { allowOther: true } : {}), imageMode, ...(dirMode === undefined ? {} : { dirMode }) };
      let m;
      try {
        m =
          mountpoint === undefined
            ? await mountDatastore(ds, target, { ...opts, namespace: cli.ns(), idleCloseMs })
            : await mountSnapshot(await ds.snapshot(target, { namespace: cli.ns() }), mountpoint, opts);
      } catch (e) {
        await ds.close();
        throw e;
      }
      const where = m.mountpoint;
      if (process.env['CAIRN_MOUNT_CHILD'] === '1') {
        // Detached: the parent stops listening after the first line; later writes must not kill us.
        process.stdout.on('error', () => undefined);
        process.stderr.on('error', () => undefined);
      }
      print(
        g,
        { mounted: where, what: mountpoint === undefined ? 'datastore' : target, pid: process.pid },
        `mounted ${mountpoint === undefined ? 'the datastore' : target} at ${where}${o.daemon === true ? '' : ' (Ctrl-C to unmount)'}`,
      );
      await waitUntilUnmounted(where);
      await m.unmount();
      await ds.close();
    });
}

/** Adds `umount` to the program. */
export function registerUmount(program: Command, cli: CliContext): void {
  program
    .command('umount')
    .description('unmount a mount made by cairn mount (its process then exits)')
    .argument('<mountpoint>')
    .addHelpText('after', '\nExample:\n  cairn umount /mnt/vm100')
    .action(async (mountpoint: string) => {
      const g = cli.globals();
      await unmountPath(mountpoint);
      print(g, { unmounted: mountpoint }, `unmounted ${mountpoint}`);
    });
}

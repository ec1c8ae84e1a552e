#!/usr/bin/env node
/**
 * The `cairn` command line (layer L6). Uses the public API only (../index.js).
 *
 * Grammar modelled on proxmox-backup-client. Exit codes: 0 success, 1 other error, 2 usage or
 * invalid input, 3 not found, 4 locked or in use, 5 corrupt data, 6 I/O error.
 */
import { realpathSync } from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';
import { resolve as resolvePath } from 'node:path';
import { readFile } from 'node:fs/promises';
import { pathToFileURL } from 'node:url';
import { pipeline } from 'node:stream/promises';
import { Command, CommanderError, Option } from 'commander';
import {
  CairnError,
  Datastore,
  isCairnError,
  Catalog,
  type BackupProgress,
  type CatalogHit,
  type CatalogProgress,
  type CatalogUpdateReport,
  type ChangedMap,
  type ErrorCode,
  type MoveGroupReport,
  type RestoreProgress,
  type Snapshot,
  type SyncLevel,
  type TreeArchiveStats,
  type TreeItem,
  type TreeProgress,
  type TreeReader,
  Verifier,
  GarbageCollector,
} from '../index.js';

interface GlobalOptions {
  store?: string;
  ns?: string;
  json?: boolean;
}

const EXIT: Partial<Record<ErrorCode, number>> = {
  ERR_INVALID_ARGUMENT: 2,
  ERR_INVALID_NAME: 2,
  ERR_CHANGED_MAP: 2,
  ERR_TIME_ORDER: 2,
  ERR_DATASTORE_EXISTS: 2,
  ERR_NESTED_DATASTORE: 2,
  ERR_EXISTS: 2,
  ERR_CONFLICT: 2,
  ERR_NOT_EMPTY: 2,
  ERR_NOT_FOUND: 3,
  ERR_NOT_A_DATASTORE: 3,
  ERR_LOCKED: 4,
  ERR_PROTECTED: 4,
  ERR_CHUNK_CORRUPT: 5,
  ERR_CHUNK_MISSING: 5,
  ERR_INDEX_CORRUPT: 5,
  ERR_MANIFEST_CORRUPT: 5,
  ERR_BLOB_CORRUPT: 5,
  ERR_TREE_CORRUPT: 5,
  ERR_UNSAFE_PATH: 5,
  ERR_CONFIG_CORRUPT: 5,
  ERR_FORMAT_VERSION: 5,
  ERR_IO: 6,
};

/** Exit code of an error. */
export function exitCodeOf(e: unknown): number {
  if (e instanceof CommanderError) return 2;
  if (isCairnError(e)) return EXIT[e.code] ?? 1;
  return 1;
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** `1.5 GiB`. */
export function humanBytes(n: number): string {
  let v = n;
  let u = 0;
  while (v >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${v.toFixed(v < 10 ? 2 : 1)} ${UNITS[u]}`;
}

/** Parses a changed-ranges file: one `<offset> <length>` per line (decimal or 0x hex), `#` comments. */
export function parseRangesFile(text: string, file: string): ChangedMap {
  const ranges: [number, number][] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/#.*/, '').trim();
    if (line === '') return;
    const m = /^(0x[0-9a-fA-F]+|\d+)[\s,]+(0x[0-9a-fA-F]+|\d+)$/.exec(line);
    if (m === null) {
      throw new CairnError('ERR_INVALID_ARGUMENT', `${file}:${i + 1}: expected "<offset> <length>", got "${line}"`, { path: file });
    }
    ranges.push([Number(m[1]), Number(m[2])]);
  });
  return { ranges };
}

class Progress {
  private last = 0;
  private readonly t0 = performance.now();
  constructor(private readonly enabled: boolean) {}

  update(label: string, done: number, total: number | undefined): void {
    if (!this.enabled) return;
    const now = performance.now();
    if (now - this.last < 200 && done !== total) return;
    this.last = now;
    const secs = (now - this.t0) / 1000;
    const rate = secs > 0 ? done / secs : 0;
    const pct = total ? ` ${((100 * done) / total).toFixed(1)}%` : '';
    process.stderr.write(`\r\x1b[K${label} ${humanBytes(done)}${total ? ` / ${humanBytes(total)}` : ''}${pct}  ${humanBytes(rate)}/s`);
  }

  end(): void {
    if (this.enabled) process.stderr.write('\r\x1b[K');
  }
}

function storePath(g: GlobalOptions): string {
  const p = g.store ?? process.env['CAIRN_STORE'];
  if (p === undefined || p === '') {
    throw new CairnError('ERR_INVALID_ARGUMENT', 'no datastore given: pass --store <path> or set CAIRN_STORE');
  }
  return p;
}

function print(g: GlobalOptions, json: unknown, text: string): void {
  process.stdout.write(g.json === true ? `${JSON.stringify(json, null, 2)}\n` : text.endsWith('\n') || text === '' ? text : `${text}\n`);
}

async function withStore<T>(g: GlobalOptions, fn: (ds: Datastore) => Promise<T>): Promise<T> {
  const ds = await Datastore.open(storePath(g));
  try {
    return await fn(ds);
  } finally {
    await ds.close();
  }
}

const KIND_CHAR: Record<string, string> = { file: '-', dir: 'd', symlink: 'l', hardlink: 'h', chardev: 'c', blockdev: 'b', fifo: 'p', socket: 's' };

function modeString(kind: string, mode: number): string {
  const bits = 'rwxrwxrwx';
  let out = KIND_CHAR[kind] ?? '?';
  for (let i = 0; i < 9; i++) out += mode & (1 << (8 - i)) ? bits[i] : '-';
  return out;
}

function mtimeString(ns: bigint): string {
  return new Date(Number(ns / 1_000_000n)).toISOString().replace('T', ' ').slice(0, 19);
}

function lsLine(item: TreeItem): string {
  const e = item.entry;
  const name = Buffer.from(e.name).toString('utf8');
  const size = e.kind === 'file' ? humanBytes(e.size) : e.kind === 'chardev' || e.kind === 'blockdev' ? `${e.rdevMajor},${e.rdevMinor}` : '';
  const extra = e.kind === 'symlink' ? ` -> ${Buffer.from(e.target!).toString('utf8')}` : e.kind === 'hardlink' ? ` => ${Buffer.from(e.target!).toString('utf8')}` : '';
  return `${modeString(e.kind, e.mode)} ${String(e.uid).padStart(5)} ${String(e.gid).padStart(5)} ${size.padStart(10)} ${mtimeString(e.mtimeNs)} ${name}${e.kind === 'dir' ? '/' : ''}${extra}`;
}

function itemJson(item: TreeItem): Record<string, unknown> {
  const e = item.entry;
  return {
    path: item.path.toString('utf8'),
    kind: e.kind,
    mode: e.mode,
    uid: e.uid,
    gid: e.gid,
    size: e.size,
    mtimeNs: e.mtimeNs.toString(),
    ...(e.target === undefined ? {} : { target: Buffer.from(e.target).toString('utf8') }),
    ...(e.rdevMajor === undefined ? {} : { rdev: [e.rdevMajor, e.rdevMinor] }),
    ...(e.xattrs === undefined ? {} : { xattrs: e.xattrs.map(([n]) => Buffer.from(n).toString('utf8')) }),
  };
}

function describeSnapshot(s: Snapshot): string {
  const files = s.files.map((f) => `${f.name} (${humanBytes(f.size)})`).join(', ');
  const flags = [s.isProtected ? 'protected' : '', s.verifyState ? `verify ${s.verifyState}` : ''].filter(Boolean).join(', ');
  return `${s.name}  ${files}${flags ? `  [${flags}]` : ''}`;
}

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

async function unmountPath(mountpoint: string): Promise<void> {
  const abs = resolvePath(mountpoint);
  if (!(await isMounted(abs))) throw new CairnError('ERR_NOT_FOUND', `nothing is mounted at ${abs}`, { path: abs });
  for (const args of [['-u', abs], ['-uz', abs]]) {
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

function moveGroupLines(r: MoveGroupReport): string[] {
  const where = (n: string): string => (n === '' ? '(root)' : n);
  const lines = [`${r.group}: ${where(r.from)} -> ${where(r.to)}: moved ${r.moved.length} snapshots${r.merged ? ' (merged)' : ''}${r.sourceRemoved ? '' : ', source group kept'}`];
  for (const x of r.skipped) lines.push(`  in use, not moved: ${r.group}/${x.time}: ${x.reason}`);
  if (r.notesConflict) lines.push('  both groups had notes: the target\'s were kept');
  return lines;
}

/** Builds the program (exported for tests). */
export function buildProgram(): Command {
  const program = new Command();
  program
    .name('cairn')
    .description('Deduplicating backup store: datastores, namespaces, snapshots of images and files')
    .addOption(new Option('--store <path>', 'datastore directory').env('CAIRN_STORE'))
    .option('--ns <namespace>', 'namespace (default: the root namespace)')
    .option('--json', 'print JSON')
    .showHelpAfterError()
    .exitOverride()
    .addHelpText(
      'after',
      '\nExamples:\n  cairn init ./cairn-store\n  CAIRN_STORE=./cairn-store cairn backup vm/100 disk.img:./disk.raw\n  cairn --store ./cairn-store snapshots --json\n\nExit codes: 0 ok, 1 other, 2 usage/invalid input, 3 not found, 4 locked/protected, 5 corrupt, 6 I/O.',
    );

  const globals = (): GlobalOptions => program.opts<GlobalOptions>();
  const ns = (): string => globals().ns ?? '';

  program
    .command('init')
    .description('create a datastore')
    .argument('<path>', 'directory for the new datastore (must not exist or be empty)')
    .option('--image-chunk-size <bytes>', 'default image chunk size (power of two, 64 KiB to 16 MiB)', (v) => Number(v))
    .option('--sync-level <level>', 'none | file | filesystem (default filesystem)')
    .addHelpText('after', '\nExample:\n  cairn init ./cairn-store')
    .action(async (p: string, o: { imageChunkSize?: number; syncLevel?: SyncLevel }) => {
      const ds = await Datastore.create(p, {
        ...(o.imageChunkSize === undefined ? {} : { imageChunkSize: o.imageChunkSize }),
        ...(o.syncLevel === undefined ? {} : { syncLevel: o.syncLevel }),
        threads: 0,
      });
      await ds.close();
      print(globals(), { path: ds.root, uuid: ds.uuid, config: ds.config }, `created datastore ${ds.root} (${ds.uuid})`);
    });

  program
    .command('backup')
    .description('back up images, directory trees and blobs as a new snapshot of a group')
    .argument('<group>', 'backup group: vm/<id>, ct/<id> or host/<id>')
    .argument('<archives...>', '<name>.img:<file-or-device>, <name>.tree:<directory> or <name>.blob:<file>')
    .option('--exclude <glob>', 'leave out paths of tree archives matching this gitignore-style pattern (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--one-file-system', 'do not descend into other filesystems in tree archives')
    .option('--changed <ranges-file>', 'changed byte ranges of the image since the previous backup ("<offset> <length>" per line)')
    .option('--time <rfc3339>', 'snapshot time, e.g. 2026-11-26T09:35:01Z (default: now)')
    .option('--chunk-size <bytes>', 'image chunk size (default: the datastore\'s)', (v) => Number(v))
    .addHelpText(
      'after',
      '\nExamples:\n  cairn --store ./cairn-store backup vm/100 drive-scsi0.img:/dev/vg0/vm-100-disk-0 qemu-server.conf.blob:/etc/pve/qemu-server/100.conf\n  cairn --store ./cairn-store backup host/web etc.tree:/etc home.tree:/home --exclude "*.cache" --one-file-system',
    )
    .action(async (group: string, specs: string[], o: { changed?: string; time?: string; chunkSize?: number; exclude: string[]; oneFileSystem?: boolean }) => {
      const g = globals();
      const parsed = specs.map((spec) => {
        const colon = spec.indexOf(':');
        const name = colon < 0 ? '' : spec.slice(0, colon);
        const file = colon < 0 ? '' : spec.slice(colon + 1);
        if (name === '' || file === '' || !(name.endsWith('.img') || name.endsWith('.blob') || name.endsWith('.tree'))) {
          throw new CairnError('ERR_INVALID_ARGUMENT', `archive '${spec}' must be <name>.img:<file>, <name>.tree:<directory> or <name>.blob:<file>`, { archive: spec });
        }
        return { name, file };
      });
      const images = parsed.filter((p) => p.name.endsWith('.img'));
      if (o.changed !== undefined && images.length !== 1) {
        throw new CairnError('ERR_INVALID_ARGUMENT', '--changed applies to exactly one image archive');
      }
      const changed = o.changed === undefined ? undefined : parseRangesFile(await readFile(o.changed, 'utf8'), o.changed);
      await withStore(g, async (ds) => {
        const ac = new AbortController();
        const stop = (): void => ac.abort(new Error('interrupted'));
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
        const progress = new Progress(process.stderr.isTTY === true && g.json !== true);
        const w = await ds.group(group, { namespace: ns() }).backup(o.time === undefined ? { signal: ac.signal } : { time: o.time, signal: ac.signal });
        try {
          const stats: Record<string, unknown> = {};
          const trees: Record<string, TreeArchiveStats> = {};
          for (const p of parsed) {
            if (p.name.endsWith('.img')) {
              stats[p.name] = await w.addImage(p.name, p.file, {
                signal: ac.signal,
                onProgress: (x: BackupProgress) => progress.update(x.archive, x.bytesDone, x.bytesTotal),
                ...(changed === undefined ? {} : { changed }),
                ...(o.chunkSize === undefined ? {} : { chunkSize: o.chunkSize }),
              });
              progress.end();
            } else if (p.name.endsWith('.tree')) {
              const t = await w.addTree(p.name, p.file, {
                signal: ac.signal,
                exclude: o.exclude,
                oneFileSystem: o.oneFileSystem === true,
                onProgress: (x: TreeProgress) => progress.update(`${x.archive} ${x.entries} entries`, x.bytes, undefined),
              });
              progress.end();
              trees[p.name] = t;
            } else {
              await w.addBlob(p.name, await readFile(p.file));
            }
          }
          const snap = await w.commit();
          const lines = [`created snapshot ${snap.name}${snap.namespace ? ` in namespace ${snap.namespace}` : ''}`];
          for (const [name, t] of Object.entries(trees)) {
            lines.push(
              `  ${name}: ${t.entries} entries, ${humanBytes(t.bytes)} in ${t.seconds.toFixed(2)} s; ${t.filesRead} files read, ${t.filesReused} unchanged (not opened); ${t.payload.chunksWritten + t.meta.chunksWritten} new chunks (${humanBytes(t.payload.bytesStored + t.meta.bytesStored)} stored)`,
            );
            for (const pr of t.problems) lines.push(`  warning: ${name}: ${pr.path}: ${pr.code}: ${pr.message}`);
            if (t.problemCount > t.problems.length) lines.push(`  warning: ${name}: ${t.problemCount - t.problems.length} more problems`);
          }
          for (const [name, s] of Object.entries(stats) as [string, { bytes: number; seconds: number; chunks: number; chunksWritten: number; chunksKnown: number; chunksReused: number; bytesStored: number }][]) {
            const rate = s.seconds > 0 ? `${humanBytes(s.bytes / s.seconds)}/s` : '';
            lines.push(`  ${name}: ${humanBytes(s.bytes)} in ${s.seconds.toFixed(2)} s ${rate}; ${s.chunks} chunks, ${s.chunksWritten} new (${humanBytes(s.bytesStored)} stored), ${s.chunksKnown + s.chunksReused} from the previous snapshot`);
          }
          print(g, { snapshot: snap.toJSON(), stats: { ...stats, ...trees } }, lines.join('\n'));
        } catch (e) {
          progress.end();
          await w.abort();
          throw e;
        } finally {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
        }
      });
    });

  program
    .command('snapshots')
    .description('list snapshots, of one group or of the whole namespace')
    .argument('[group]', 'backup group type/id')
    .addHelpText('after', '\nExample:\n  cairn --store ./cairn-store snapshots vm/100')
    .action(async (group: string | undefined) => {
      const g = globals();
      await withStore(g, async (ds) => {
        const groups = group === undefined ? await ds.namespace(ns()).groups() : [ds.group(group, { namespace: ns() })];
        const snaps: Snapshot[] = [];
        for (const gr of groups) snaps.push(...(await gr.snapshots()));
        print(g, snaps.map((s) => s.toJSON()), snaps.length === 0 ? 'no snapshots' : snaps.map(describeSnapshot).join('\n'));
      });
    });

  program
    .command('show')
    .description('show a snapshot\'s manifest')
    .argument('<snapshot>', 'type/id/time, or type/id for the newest')
    .addHelpText('after', '\nExample:\n  cairn --store ./cairn-store show vm/100')
    .action(async (ref: string) => {
      const g = globals();
      await withStore(g, async (ds) => {
        const s = await ds.snapshot(ref, { namespace: ns() });
        const lines = [`snapshot ${s.name}${s.namespace ? ` (namespace ${s.namespace})` : ''}`, `protected: ${s.isProtected ? 'yes' : 'no'}`];
        if (s.verifyState) lines.push(`verify: ${s.verifyState}`);
        if (s.notes) lines.push(`notes: ${s.notes}`);
        for (const f of s.files) lines.push(`  ${f.name}  ${f.kind}  ${humanBytes(f.size)}  ${f.checksum.slice(0, 16)}…${f.chunkSize ? `  chunk ${humanBytes(f.chunkSize)}` : ''}`);
        print(g, s.toJSON(), lines.join('\n'));
      });
    });

  program
    .command('restore')
    .description('restore an archive of a snapshot to a file or block device, or - for stdout')
    .argument('<snapshot>', 'type/id/time, or type/id for the newest')
    .argument('<archive>', 'archive name, e.g. drive-scsi0.img or etc.tree')
    .argument('<target>', 'target file or block device (- for stdout); for a tree, a directory')
    .option('--overwrite', 'replace an existing target file; for a tree, restore into a non-empty directory')
    .option('--include <glob>', 'tree archives: restore only paths matching this glob (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--exclude <glob>', 'tree archives: leave out paths matching this glob (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .addHelpText('after', "\nExamples:\n  cairn --store ./cairn-store restore vm/100 drive-scsi0.img ./disk.raw\n  cairn --store ./cairn-store restore host/web etc.tree ./etc-restored --include 'ssh/**'")
    .action(async (ref: string, archive: string, target: string, o: { overwrite?: boolean; include: string[]; exclude: string[] }) => {
      const g = globals();
      await withStore(g, async (ds) => {
        const s = await ds.snapshot(ref, { namespace: ns() });
        const r = await s.open();
        try {
          const f = r.file(archive);
          if (f.kind === 'blob') {
            const data = await r.readBlob(archive);
            if (target === '-') process.stdout.write(data);
            else {
              const { writeFile } = await import('node:fs/promises');
              await writeFile(target, data, { flag: o.overwrite === true ? 'w' : 'wx' }).catch((e: unknown) => {
                if ((e as { code?: string }).code === 'EEXIST') throw new CairnError('ERR_EXISTS', `restore target ${target} exists (pass --overwrite to replace it)`, { path: target });
                throw e;
              });
              print(g, { archive, target, bytes: data.byteLength }, `restored ${archive} (${humanBytes(data.byteLength)}) to ${target}`);
            }
            return;
          }
          if (f.kind === 'tree') {
            const rs = await r.restoreTree(archive, target, { overwrite: o.overwrite === true, include: o.include, exclude: o.exclude });
            const lines = [`restored ${archive}: ${rs.entries} entries, ${humanBytes(rs.bytes)} to ${target} in ${rs.seconds.toFixed(2)} s`];
            for (const pr of rs.problems) lines.push(`warning: ${pr.path}: ${pr.code}: ${pr.message}`);
            print(g, { archive, target, ...rs }, lines.join('\n'));
            return;
          }
          if (target === '-') {
            // An image to stdout, in order (for a pipe into dd, ssh, a hypervisor's import).
            await pipeline(r.createReadStream(archive), process.stdout);
            return;
          }
          const ac = new AbortController();
          const stop = (): void => ac.abort(new Error('interrupted'));
          process.once('SIGINT', stop);
          const progress = new Progress(process.stderr.isTTY === true && g.json !== true);
          try {
            const stats = await r.restore(archive, target, {
              overwrite: o.overwrite === true,
              signal: ac.signal,
              onProgress: (p: RestoreProgress) => progress.update(p.archive, p.bytesDone, p.bytesTotal),
            });
            progress.end();
            const rate = stats.seconds > 0 ? `${humanBytes(stats.bytes / stats.seconds)}/s` : '';
            print(g, { archive, target, ...stats }, `restored ${archive} (${humanBytes(stats.bytes)}) to ${target} in ${stats.seconds.toFixed(2)} s ${rate}`);
          } finally {
            progress.end();
            process.off('SIGINT', stop);
          }
        } finally {
          await r.close();
        }
      });
    });

  const openTree = async (ds: Datastore, ref: string, spec: string): Promise<{ tree: TreeReader; close: () => Promise<void>; inner: string }> => {
    const colon = spec.indexOf(':');
    const archive = colon < 0 ? spec : spec.slice(0, colon);
    const inner = colon < 0 ? '' : spec.slice(colon + 1);
    const s = await ds.snapshot(ref, { namespace: ns() });
    const r = await s.open();
    try {
      return { tree: await r.tree(archive), close: () => r.close(), inner };
    } catch (e) {
      await r.close();
      throw e;
    }
  };

  program
    .command('ls')
    .description('list a directory of a tree archive')
    .argument('<snapshot>', 'type/id/time, or type/id for the newest')
    .argument('<archive>', '<name>.tree or <name>.tree:<path>')
    .addHelpText('after', '\nExamples:\n  cairn --store ./cairn-store ls host/web etc.tree\n  cairn --store ./cairn-store ls host/web etc.tree:ssh')
    .action(async (ref: string, spec: string) => {
      const g = globals();
      await withStore(g, async (ds) => {
        const { tree, close, inner } = await openTree(ds, ref, spec);
        try {
          const items = await tree.list(inner);
          print(g, items.map(itemJson), items.map(lsLine).join('\n'));
        } finally {
          await close();
        }
      });
    });

  program
    .command('find')
    .description('find the paths of a tree archive that match a glob')
    .argument('<snapshot>', 'type/id/time, or type/id for the newest')
    .argument('<archive>', '<name>.tree')
    .argument('<glob>', "a glob over archive paths, e.g. '**/*.conf'")
    .addHelpText('after', "\nExample:\n  cairn --store ./cairn-store find host/web etc.tree '**/sshd_config'")
    .action(async (ref: string, spec: string, glob: string) => {
      const g = globals();
      await withStore(g, async (ds) => {
        const { tree, close } = await openTree(ds, ref, spec);
        try {
          const found: TreeItem[] = [];
          for await (const item of tree.find(glob)) {
            if (g.json === true) found.push(item);
            else process.stdout.write(`${item.path.toString('utf8')}${item.entry.kind === 'dir' ? '/' : ''}\n`);
          }
          if (g.json === true) print(g, found.map(itemJson), '');
        } finally {
          await close();
        }
      });
    });

  const catalogCmd = program
    .command('catalog')
    .description('find which snapshots hold a path of a tree archive (a local index, rebuilt as needed)')
    .addHelpText('after', "\nExamples:\n  cairn --store ./cairn-store catalog find home/ann/thesis.tex host/laptop\n  cairn --store ./cairn-store --ns site-a catalog find etc/hosts\n  cairn --store ./cairn-store catalog rebuild");
  const catalogLine = (h: CatalogHit): string => {
    const size = h.kind === 'file' ? humanBytes(h.size) : h.kind;
    return `${h.namespace === '' ? '' : `${h.namespace}:`}${h.snapshot}  ${h.archive}  ${size}  ${mtimeString(h.mtimeNs)}`;
  };
  const catalogJson = (h: CatalogHit): Record<string, unknown> => ({
    namespace: h.namespace,
    group: h.group,
    time: h.time,
    snapshot: h.snapshot,
    archive: h.archive,
    path: h.path.toString('utf8'),
    kind: h.kind,
    size: h.size,
    mtimeNs: h.mtimeNs.toString(),
  });
  const withCatalog = async <T>(ds: Datastore, fn: (c: Catalog, signal: AbortSignal) => Promise<T>): Promise<T> => {
    const ac = new AbortController();
    const stop = (): void => ac.abort(new Error('interrupted'));
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    try {
      const c = await Catalog.open(ds, { signal: ac.signal });
      try {
        return await fn(c, ac.signal);
      } finally {
        await c.close();
      }
    } finally {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
    }
  };
  const catalogProgress = (g: GlobalOptions): ((p: CatalogProgress) => void) | undefined =>
    process.stderr.isTTY === true && g.json !== true ? (p) => process.stderr.write(`\r\x1b[Kindexing ${p.snapshot} ${p.archive}: ${p.entries} entries`) : undefined;
  const catalogWarnings = (r: CatalogUpdateReport): string[] => r.skipped.map((s) => `warning: skipped ${s.namespace ? `${s.namespace}:` : ''}${s.snapshot}${s.archive ? ` ${s.archive}` : ''}: ${s.code}: ${s.message}`);
  catalogCmd
    .command('find')
    .description('list the snapshots whose tree archives hold a path, with its size and mtime in each')
    .argument('<path>', 'archive-relative path, e.g. ssh/sshd_config for /etc/ssh/sshd_config in etc.tree:/etc')
    .argument('[group]', 'backup group type/id (default: every group of --ns and the namespaces below it)')
    .option('--max-depth <n>', 'without a group: levels of namespaces below --ns to search (default 7)', (v) => Number(v))
    .option('--archive <name>', 'only this tree archive, e.g. etc.tree')
    .addHelpText('after', "\nExamples:\n  cairn --store ./cairn-store catalog find ssh/sshd_config host/web\n  cairn --store ./cairn-store --ns site-a --json catalog find home/ann/thesis.tex\n\nOne line per snapshot holding the path: <type>/<id>/<time>  <archive>  <size>  <mtime UTC>\n(prefixed <namespace>: outside the root namespace). --json prints mtimeNs as a decimal string.")
    .action(async (p: string, group: string | undefined, o: { maxDepth?: number; archive?: string }) => {
      const g = globals();
      await withStore(g, (ds) =>
        withCatalog(ds, async (c, signal) => {
          const onProgress = catalogProgress(g);
          const scope = { namespace: ns(), ...(group === undefined ? {} : { group }), ...(o.maxDepth === undefined ? {} : { maxDepth: o.maxDepth }) };
          const report = await c.update({ ...scope, signal, ...(onProgress === undefined ? {} : { onProgress }) });
          if (onProgress !== undefined) process.stderr.write('\r\x1b[K');
          const hits = await c.findPath(p, { ...scope, signal, ...(o.archive === undefined ? {} : { archive: o.archive }) });
          for (const w of catalogWarnings(report)) process.stderr.write(`${w}\n`);
          print(g, hits.map(catalogJson), hits.length === 0 ? `no snapshot holds ${p}` : hits.map(catalogLine).join('\n'));
        }),
      );
    });
  catalogCmd
    .command('rebuild')
    .description('clear the catalog and index every snapshot of the datastore again')
    .addHelpText('after', '\nExample:\n  cairn --store ./cairn-store catalog rebuild')
    .action(async () => {
      const g = globals();
      await withStore(g, (ds) =>
        withCatalog(ds, async (c, signal) => {
          const onProgress = catalogProgress(g);
          const r = await c.rebuild({ signal, ...(onProgress === undefined ? {} : { onProgress }) });
          if (onProgress !== undefined) process.stderr.write('\r\x1b[K');
          print(g, r, [`catalog rebuilt: ${r.indexed} snapshots, ${r.archives} tree archives, ${r.entries} entries`, ...catalogWarnings(r)].join('\n'));
        }),
      );
    });

  program
    .command('prune')
    .description('remove the snapshots a retention policy does not keep (PBS rules; chunks stay until gc)')
    .argument('[group]', 'backup group type/id (default: every group of --ns and the namespaces below it)')
    .option('--dry-run', 'only show what would be removed')
    .option('--keep-last <n>', 'keep the newest N snapshots', (v) => Number(v))
    .option('--keep-hourly <n>', 'keep the newest snapshot of the last N hours that have one', (v) => Number(v))
    .option('--keep-daily <n>', 'keep the newest snapshot of the last N days that have one', (v) => Number(v))
    .option('--keep-weekly <n>', 'keep the newest snapshot of the last N ISO weeks that have one', (v) => Number(v))
    .option('--keep-monthly <n>', 'keep the newest snapshot of the last N months that have one', (v) => Number(v))
    .option('--keep-yearly <n>', 'keep the newest snapshot of the last N years that have one', (v) => Number(v))
    .option('--max-depth <n>', 'without a group: levels of namespaces below --ns (default 7)', (v) => Number(v))
    .option('--time-zone <zone>', 'IANA time zone of the hour/day/week/month/year periods (default: local)')
    .addHelpText('after', "\nExamples:\n  cairn --store ./cairn-store prune vm/100 --keep-last 3 --keep-daily 13 --keep-weekly 8 --keep-monthly 11 --keep-yearly 9 --dry-run\n  cairn --store ./cairn-store --ns site-a prune --keep-daily 7 --time-zone Europe/Berlin\n\nOne line per snapshot: <type>/<id>/<time> <keep|keep-partial|protected|remove> (prefixed <namespace>:\noutside the root namespace). Without any --keep-* option nothing is removed. Locked snapshots\n(being read, or the base of a running backup) are skipped and reported.")
    .action(async (group: string | undefined, o: { dryRun?: boolean; keepLast?: number; keepHourly?: number; keepDaily?: number; keepWeekly?: number; keepMonthly?: number; keepYearly?: number; maxDepth?: number; timeZone?: string }) => {
      const g = globals();
      const { Pruner } = await import('../index.js');
      await withStore(g, async (ds) => {
        const keep: Record<string, number | string> = {};
        for (const k of ['keepLast', 'keepHourly', 'keepDaily', 'keepWeekly', 'keepMonthly', 'keepYearly', 'timeZone'] as const) {
          const v = o[k];
          if (v !== undefined) keep[k] = v;
        }
        const scope = { namespace: ns(), ...(group === undefined ? {} : { group }), ...(o.maxDepth === undefined ? {} : { maxDepth: o.maxDepth }) };
        const ac = new AbortController();
        const stop = (): void => ac.abort(new Error('interrupted'));
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
        try {
          const pruner = new Pruner(ds);
          const report = await pruner.apply(await pruner.plan(scope, keep), { dryRun: o.dryRun === true, signal: ac.signal });
          const lines = report.entries.map(
            (e) => `${e.namespace === '' ? '' : `${e.namespace}:`}${e.group}/${e.time} ${e.mark}${e.skipped === undefined ? '' : ` (skipped: ${e.skipped})`}`,
          );
          const t = report.totals;
          lines.push(`${report.dryRun ? 'dry run: would remove' : 'removed'} ${report.dryRun ? t.remove : t.removed} of ${t.snapshots} snapshots${t.skipped > 0 ? `, skipped ${t.skipped}` : ''}`);
          print(g, report, lines.join('\n'));
        } finally {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
        }
      });
    });

  program
    .command('verify')
    .description('check snapshots: index checksums, then every referenced chunk once (CRC, decode, digest, size); corrupt chunks are renamed aside')
    .argument('[target]', 'a group type/id or a snapshot type/id/time (default: every snapshot below --ns)')
    .option('--max-depth <n>', 'namespace levels to descend (default 7)', (v) => Number(v))
    .option('--ignore-verified', 'skip snapshots already verified ok')
    .option('--outdated-after <days>', 'with --ignore-verified: verify again when older than this', (v) => Number(v))
    .option('--sample <fraction>', 'check only this fraction of the chunks (0 < f <= 1), for a quick partial check', (v) => Number(v))
    .addHelpText('after', '\nExamples:\n  cairn --store ./cairn-store verify\n  cairn --store ./cairn-store verify vm/100 --ignore-verified --outdated-after 30')
    .action(async (target: string | undefined, o: { maxDepth?: number; ignoreVerified?: boolean; outdatedAfter?: number; sample?: number }) => {
      const g = globals();
      await withStore(g, async (ds) => {
        const parts = target === undefined ? [] : target.split('/');
        const scope = {
          namespace: ns(),
          ...(o.maxDepth === undefined ? {} : { maxDepth: o.maxDepth }),
          ...(parts.length === 2 ? { group: target! } : {}),
          ...(parts.length === 3 ? { snapshot: target! } : {}),
        };
        if (target !== undefined && parts.length !== 2 && parts.length !== 3) {
          throw new CairnError('ERR_INVALID_ARGUMENT', `verify target '${target}' must be type/id or type/id/time`);
        }
        const report = await new Verifier(ds).verify(scope, {
          ...(o.ignoreVerified === true ? { ignoreVerified: true } : {}),
          ...(o.outdatedAfter === undefined ? {} : { outdatedAfter: o.outdatedAfter }),
          ...(o.sample === undefined ? {} : { sample: o.sample }),
        });
        const lines = [
          `verified ${report.ok.length + report.failed.length} snapshots: ${report.ok.length} ok, ${report.failed.length} failed${report.skipped.length > 0 ? `, ${report.skipped.length} skipped` : ''}; ${report.chunksChecked} chunks, ${humanBytes(report.bytesChecked)} in ${report.seconds.toFixed(2)} s (${report.mbPerSecond.toFixed(0)} MB/s)`,
        ];
        for (const f of report.failed) lines.push(`failed: ${f}`);
        for (const c of report.failedChunks) lines.push(`chunk ${c.digest}: ${c.code}: ${c.message}${c.quarantined ? ` (moved to ${c.quarantined})` : ''}; needed by ${c.snapshots.join(', ')}`);
        print(g, report, lines.join('\n'));
        if (report.failed.length > 0) process.exitCode = 5;
      });
    });

  program
    .command('protect')
    .description('protect a snapshot from prune and removal')
    .argument('<snapshot>', 'type/id/time, or type/id for the newest')
    .addHelpText('after', '\nExample:\n  cairn --store ./cairn-store protect vm/100/2026-11-26T09:35:01Z')
    .action(async (ref: string) => {
      const g = globals();
      await withStore(g, async (ds) => {
        const s = await (await ds.snapshot(ref, { namespace: ns() })).setProtected(true);
        print(g, s.toJSON(), `protected ${s.name}`);
      });
    });

  program
    .command('unprotect')
    .description('lift the protection of a snapshot')
    .argument('<snapshot>', 'type/id/time, or type/id for the newest')
    .addHelpText('after', '\nExample:\n  cairn --store ./cairn-store unprotect vm/100/2026-11-26T09:35:01Z')
    .action(async (ref: string) => {
      const g = globals();
      await withStore(g, async (ds) => {
        const s = await (await ds.snapshot(ref, { namespace: ns() })).setProtected(false);
        print(g, s.toJSON(), `unprotected ${s.name}`);
      });
    });

  program
    .command('notes')
    .description('show or set the notes of a snapshot (type/id/time) or of a group (type/id)')
    .argument('<target>', 'type/id/time for a snapshot, type/id for a group')
    .argument('[text]', 'new notes; omit to show them')
    .addHelpText('after', '\nExamples:\n  cairn --store ./cairn-store notes vm/100 "production database"\n  cairn --store ./cairn-store notes vm/100/2026-11-26T09:35:01Z "before the upgrade"')
    .action(async (target: string, text: string | undefined) => {
      const g = globals();
      await withStore(g, async (ds) => {
        if (target.split('/').length === 3) {
          let s = await ds.snapshot(target, { namespace: ns() });
          if (text !== undefined) s = await s.setNotes(text);
          print(g, { snapshot: s.name, notes: s.notes }, s.notes);
        } else {
          const group = ds.group(target, { namespace: ns() });
          if (text !== undefined) await group.setNotes(text);
          const notes = await group.notes();
          print(g, { group: group.name, notes }, notes);
        }
      });
    });

  program
    .command('forget')
    .description('remove one snapshot (its chunks are freed by the next garbage collection)')
    .argument('<snapshot>', 'type/id/time')
    .addHelpText('after', '\nExample:\n  cairn --store ./cairn-store forget vm/100/2026-11-26T09:35:01Z')
    .action(async (ref: string) => {
      const g = globals();
      if (ref.split('/').length !== 3) throw new CairnError('ERR_INVALID_ARGUMENT', 'forget needs a full snapshot name type/id/time');
      await withStore(g, async (ds) => {
        const s = await ds.snapshot(ref, { namespace: ns() });
        await s.remove();
        print(g, { removed: s.name }, `removed ${s.name}`);
      });
    });

  program
    .command('gc')
    .description('garbage collection: remove chunks no snapshot needs (those freed by prune or forget), without a 24-hour wait')
    .option('--dry-run', 'count what would be removed, change nothing')
    .option('--skew <seconds>', 'safety margin under the cutoff, in seconds (default 60)', (v) => Number(v))
    .addHelpText('after', '\nExamples:\n  cairn --store ./cairn-store gc\n  cairn --store ./cairn-store gc --dry-run --json')
    .action(async (o: { dryRun?: boolean; skew?: number }) => {
      const g = globals();
      await withStore(g, async (ds) => {
        const r = await new GarbageCollector(ds).run({
          ...(o.dryRun === true ? { dryRun: true } : {}),
          ...(o.skew === undefined ? {} : { skewMs: o.skew * 1000 }),
        });
        const lines = [
          `${r.dryRun ? 'would remove' : 'removed'} ${r.removedChunks} chunks (${humanBytes(r.removedBytes)}); ${r.pendingChunks} pending (${humanBytes(r.pendingBytes)}, newer than the cutoff)`,
          `kept ${r.diskChunks} chunks (${humanBytes(r.diskBytes)}) for ${r.snapshots} snapshots; deduplication ${r.dedupFactor.toFixed(2)}x; ${r.badChunks} bad`,
        ];
        print(g, r, lines.join('\n'));
      });
    });

  const groupCmd = program
    .command('group')
    .description('manage backup groups: move one to another namespace, or remove one')
    .addHelpText('after', '\nExamples:\n  cairn --store ./cairn-store --ns site-a group move vm/100 --target-ns archive\n  cairn --store ./cairn-store group remove vm/100');
  groupCmd
    .command('move')
    .description('move a group (from --ns) to another namespace; merges into an existing group only with the same owner and when every moved snapshot is newer')
    .argument('<group>', 'type/id')
    .argument('[target]', 'target namespace (or use --target-ns)')
    .option('--target-ns <namespace>', 'target namespace ("" for the root)')
    .addHelpText('after', '\nExamples:\n  cairn --store ./cairn-store --ns site-a group move vm/100 --target-ns archive\n  cairn --store ./cairn-store group move vm/100 site-b')
    .action(async (group: string, target: string | undefined, o: { targetNs?: string }) => {
      const g = globals();
      const to = o.targetNs ?? target;
      if (to === undefined) throw new CairnError('ERR_INVALID_ARGUMENT', 'group move needs a target namespace (--target-ns <namespace>)');
      await withStore(g, async (ds) => {
        const r = await ds.moveGroup(group, { from: ns(), to });
        print(g, r, moveGroupLines(r).join('\n'));
        if (r.skipped.length > 0) process.exitCode = 4;
      });
    });
  groupCmd
    .command('remove')
    .description('remove a group and its snapshots; protected snapshots and snapshots in use are kept (and with them the group)')
    .argument('<group>', 'type/id')
    .addHelpText('after', '\nExample:\n  cairn --store ./cairn-store --ns site-a group remove vm/100')
    .action(async (group: string) => {
      const g = globals();
      await withStore(g, async (ds) => {
        const r = await ds.group(group, { namespace: ns() }).remove();
        const lines = [`${r.removed ? 'removed group' : 'kept group'} ${group}: ${r.removedSnapshots.length} snapshots removed`];
        for (const t of r.keptProtected) lines.push(`kept protected ${group}/${t}`);
        for (const t of r.keptLocked) lines.push(`kept in-use ${group}/${t}`);
        print(g, r, lines.join('\n'));
      });
    });

  program
    .command('mount')
    .description('mount a snapshot, or the whole datastore, read-only (FUSE); stays in the foreground until unmounted or interrupted')
    .argument('<target>', 'a snapshot (type/id/time, or type/id for the newest), or the mountpoint alone to mount the whole datastore (below --ns)')
    .argument('[mountpoint]', 'where to mount a snapshot')
    .option('--daemon', 'detach once mounted')
    .option('--allow-other', 'let other users read the mount')
    .addHelpText(
      'after',
      '\nExamples:\n  cairn --store ./cairn-store mount vm/100 /mnt/vm100        # then: losetup -r -f /mnt/vm100/drive-scsi0.img\n  cairn --store ./cairn-store mount /mnt/cairn --daemon      # /mnt/cairn/<ns>/<type>/<id>/<time>/<archive>\n  cairn umount /mnt/cairn',
    )
    .action(async (target: string, mountpoint: string | undefined, o: { daemon?: boolean; allowOther?: boolean }) => {
      const g = globals();
      if (o.daemon === true && process.env['CAIRN_MOUNT_CHILD'] !== '1') {
        await daemonize();
        return;
      }
      const { mountSnapshot, mountDatastore } = await import('../fuse/index.js');
      const ds = await Datastore.open(storePath(g));
      const opts = o.allowOther === true ? { allowOther: true } : {};
      let m;
      try {
        m =
          mountpoint === undefined
            ? await mountDatastore(ds, target, { ...opts, namespace: ns() })
            : await mountSnapshot(await ds.snapshot(target, { namespace: ns() }), mountpoint, opts);
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
      print(g, { mounted: where, what: mountpoint === undefined ? 'datastore' : target, pid: process.pid }, `mounted ${mountpoint === undefined ? 'the datastore' : target} at ${where}${o.daemon === true ? '' : ' (Ctrl-C to unmount)'}`);
      await waitUntilUnmounted(where);
      await m.unmount();
      await ds.close();
    });

  program
    .command('umount')
    .description('unmount a mount made by cairn mount (its process then exits)')
    .argument('<mountpoint>')
    .addHelpText('after', '\nExample:\n  cairn umount /mnt/vm100')
    .action(async (mountpoint: string) => {
      const g = globals();
      await unmountPath(mountpoint);
      print(g, { unmounted: mountpoint }, `unmounted ${mountpoint}`);
    });

  const nsCmd = program
    .command('ns')
    .description('manage namespaces')
    .addHelpText('after', '\nExamples:\n  cairn --store ./cairn-store ns create site-a\n  cairn --store ./cairn-store ns list\n  cairn --store ./cairn-store ns remove site-a --recursive');
  nsCmd
    .command('create')
    .argument('<namespace>', 'a/b/c (the parent must exist)')
    .addHelpText('after', '\nExample:\n  cairn --store ./cairn-store ns create site-a')
    .action(async (name: string) => {
      const g = globals();
      await withStore(g, async (ds) => {
        const n = await ds.createNamespace(name);
        print(g, n.toJSON(), `created namespace ${n.path}`);
      });
    });
  nsCmd
    .command('list')
    .argument('[namespace]', 'list below this namespace (default: the root)')
    .option('--max-depth <n>', 'levels to descend (default 7)', (v) => Number(v))
    .addHelpText('after', '\nExample:\n  cairn --store ./cairn-store ns list --max-depth 1')
    .action(async (parent: string | undefined, o: { maxDepth?: number }) => {
      const g = globals();
      await withStore(g, async (ds) => {
        const list = await ds.listNamespaces({ parent: parent ?? '', ...(o.maxDepth === undefined ? {} : { maxDepth: o.maxDepth }) });
        print(g, list.map((n) => n.toJSON()), list.map((n) => (n.path === '' ? '(root)' : n.path)).join('\n'));
      });
    });
  nsCmd
    .command('remove')
    .argument('<namespace>', 'the namespace to remove')
    .option('--recursive', 'also remove its snapshots (protected ones are kept) and child namespaces')
    .addHelpText('after', '\nExample:\n  cairn --store ./cairn-store ns remove site-a --recursive')
    .action(async (name: string, o: { recursive?: boolean }) => {
      const g = globals();
      await withStore(g, async (ds) => {
        const r = await ds.removeNamespace(name, { recursive: o.recursive === true });
        const lines = [r.removed ? `removed namespace ${name}` : `namespace ${name} kept`];
        if (r.removedSnapshots.length > 0) lines.push(`removed ${r.removedSnapshots.length} snapshots`);
        for (const s of r.keptProtected) lines.push(`kept protected ${s}`);
        for (const s of r.keptLocked) lines.push(`kept in-use ${s}`);
        print(g, r, lines.join('\n'));
      });
    });

  nsCmd
    .command('move')
    .description('move a namespace, its groups and the namespaces below it, to another path (created when missing; its parent must exist)')
    .argument('<namespace>', 'the namespace to move')
    .argument('[target]', 'the new path (or use --target-ns)')
    .option('--target-ns <namespace>', 'the new path')
    .option('--no-merge-groups', 'leave groups that exist in the target where they are, instead of merging them')
    .option('--keep-source', 'keep source namespaces even when the move emptied them')
    .option('--max-depth <n>', 'levels of child namespaces to move along (default 7)', (v) => Number(v))
    .addHelpText('after', '\nExamples:\n  cairn --store ./cairn-store ns move site-a --target-ns archive/site-a\n  cairn --store ./cairn-store ns move old new --no-merge-groups --json')
    .action(async (name: string, target: string | undefined, o: { targetNs?: string; mergeGroups?: boolean; keepSource?: boolean; maxDepth?: number }) => {
      const g = globals();
      const to = o.targetNs ?? target;
      if (to === undefined) throw new CairnError('ERR_INVALID_ARGUMENT', 'ns move needs a target (--target-ns <namespace>)');
      await withStore(g, async (ds) => {
        const r = await ds.moveNamespace(name, to, {
          mergeGroups: o.mergeGroups !== false,
          deleteSource: o.keepSource !== true,
          ...(o.maxDepth === undefined ? {} : { maxDepth: o.maxDepth }),
        });
        const lines = r.groups.flatMap(moveGroupLines);
        for (const f of r.failedGroups) lines.push(`not moved: ${f.namespace === '' ? '' : `${f.namespace}:`}${f.group}: ${f.code}: ${f.reason}`);
        for (const n of r.createdNamespaces) lines.push(`created namespace ${n}`);
        for (const n of r.removedNamespaces) lines.push(`removed namespace ${n}`);
        print(g, r, lines.join('\n'));
        if (r.failedGroups.length > 0 || r.groups.some((x) => x.skipped.length > 0)) process.exitCode = 4;
      });
    });

  return program;
}

/** Runs the command line; returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: 'user' });
    // A command that finished but found problems (verify) sets its own code.
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      return e.code === 'commander.helpDisplayed' || e.code === 'commander.help' || e.code === 'commander.version' ? 0 : 2;
    }
    const json = program.opts<GlobalOptions>().json === true;
    if (isCairnError(e)) {
      process.stderr.write(json ? `${JSON.stringify({ error: e.toJSON() })}\n` : `cairn: ${e.code}: ${e.message}\n`);
    } else {
      process.stderr.write(`cairn: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    }
    return exitCodeOf(e);
  }
}

/** True when this module is the program node was started with (directly, or through a bin link). */
function isEntryPoint(): boolean {
  const argv1 = process.argv[1];
  if (argv1 === undefined) return false;
  try {
    return import.meta.url === pathToFileURL(realpathSync(argv1)).href;
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      process.stderr.write(`cairn: ${String(e)}\n`);
      process.exitCode = 1;
    },
  );
}

/** `cairn ls`: list a directory of a tree archive. */
import type { Command } from 'commander';
import { snapshotIdentity, type TreeItem } from '../../index.js';
import { print, withStore, type CliContext } from '../context.js';
import { humanBytes, itemJson, mtimeString } from '../format.js';
import { openTree } from '../open-tree.js';

const KIND_CHAR: Record<string, string> = { file: '-', dir: 'd', symlink: 'l', hardlink: 'h', chardev: 'c', blockdev: 'b', fifo: 'p', socket: 's' };

/** `drwxr-xr-x`: the kind and permission bits of an entry, as ls -l shows them. */
function modeString(kind: string, mode: number): string {
  const bits = 'rwxrwxrwx';
  let out = KIND_CHAR[kind] ?? '?';
  for (let i = 0; i < 9; i++) out += mode & (1 << (8 - i)) ? bits[i] : '-';
  return out;
}

/** One line of `ls` output: mode, uid, gid, size (or device numbers), mtime, name, link target. */
function lsLine(item: TreeItem): string {
  const e = item.entry;
  const name = Buffer.from(e.name).toString('utf8');
  const size = e.kind === 'file' ? humanBytes(e.size) : e.kind === 'chardev' || e.kind === 'blockdev' ? `${e.rdevMajor},${e.rdevMinor}` : '';
  const extra = e.kind === 'symlink' ? ` -> ${Buffer.from(e.target!).toString('utf8')}` : e.kind === 'hardlink' ? ` => ${Buffer.from(e.target!).toString('utf8')}` : '';
  return `${modeString(e.kind, e.mode)} ${String(e.uid).padStart(5)} ${String(e.gid).padStart(5)} ${size.padStart(10)} ${mtimeString(e.mtimeNs)} ${name}${e.kind === 'dir' ? '/' : ''}${extra}`;
}

/** Adds `ls` to the program. */
export function registerLs(program: Command, cli: CliContext): void {
  program
    .command('ls')
    .description('list a directory of a tree archive')
    .argument('<snapshot>', 'type/id/time, or type/id for the newest')
    .argument('<archive>', '<name>.tree or <name>.tree:<path>')
    .addHelpText('after', '\nExamples:\n  cairn --store ./cairn-store ls host/web etc.tree\n  cairn --store ./cairn-store ls host/web etc.tree:ssh')
    .action(async (ref: string, spec: string) => {
      const g = cli.globals();
      await withStore(g, async (ds) => {
        // Resolved once (type/id names the newest), so the identity printed is the snapshot listed.
        const s = await ds.snapshot(ref, { namespace: cli.ns() });
        const { tree, close, inner } = await openTree(cli, ds, s.name, spec);
        try {
          const items = await tree.list(inner);
          print(g, { ...snapshotIdentity(s.namespace, s.name), archive: spec.split(':')[0], path: inner, entries: items.map(itemJson) }, items.map(lsLine).join('\n'));
        } finally {
          await close();
        }
      });
    });
}

/** `cairn diff`: what changed between two snapshots, archive by archive. */
import type { Command } from 'commander';
import { diffSnapshots, type ArchiveDiff, type DiffProgress, type TreeChange, type TreeChangeKind } from '../../index.js';
import { print, withStore, type CliContext } from '../context.js';
import { humanBytes } from '../format.js';
import { Progress, progressMode } from '../progress.js';

/** The mark of each change, as `restic diff` prints it. */
const MARK: Readonly<Record<TreeChangeKind, string>> = { added: '+', removed: '-', modified: 'M', metadata: 'U', type: 'T' };

/** A tree path for text output: `/` after directories, `/` alone for the root. */
function shownPath(c: TreeChange): string {
  const p = c.path.toString('utf8');
  return c.kind === 'dir' ? `${p}/` : p;
}

/** One line of text output for a tree change. */
function changeLine(c: TreeChange): string {
  return `${MARK[c.change]} ${shownPath(c)}`;
}

/** A tree change as printed by `--json`. */
function changeJson(c: TreeChange): Record<string, unknown> {
  return {
    path: c.path.toString('utf8'),
    kind: c.kind,
    ...(c.previousKind === undefined ? {} : { previousKind: c.previousKind }),
    ...(c.fields.length === 0 ? {} : { fields: c.fields }),
  };
}

/** An archive's result as printed by `--json`: the tree changes grouped into lists by what happened. */
function archiveJson(d: ArchiveDiff): Record<string, unknown> {
  if (d.kind === 'tree' && 'changes' in d) {
    const pick = (k: TreeChangeKind): Record<string, unknown>[] => d.changes.filter((c) => c.change === k).map(changeJson);
    return {
      name: d.name,
      kind: d.kind,
      status: d.status,
      added: pick('added'),
      removed: pick('removed'),
      modified: pick('modified'),
      metadata: pick('metadata'),
      typeChanged: pick('type'),
      counts: d.counts,
    };
  }
  return { ...d };
}

/** The lines of text output that close an archive's part: its summary (and an image's ranges). */
function archiveSummary(d: ArchiveDiff): string[] {
  switch (d.status) {
    case 'added':
      return [`  added (${d.kind}, ${humanBytes(d.sizeAfter ?? 0)})`];
    case 'removed':
      return [`  removed (${d.kind}, ${humanBytes(d.sizeBefore ?? 0)})`];
    case 'replaced':
      return [`  replaced: was ${d.previousKind} (${humanBytes(d.sizeBefore ?? 0)}), now ${d.kind} (${humanBytes(d.sizeAfter ?? 0)})`];
    default:
  }
  if (d.kind === 'tree' && 'counts' in d) {
    const c = d.counts;
    if (d.status === 'unchanged') return ['  unchanged'];
    return [
      `  ${c.added} added, ${c.removed} removed, ${c.modified} modified, ${c.metadata} metadata only, ${c.typeChanged} type changed; ${humanBytes(c.bytesAdded)} added, ${humanBytes(c.bytesRemoved)} removed`,
    ];
  }
  if (d.kind === 'image' && 'ranges' in d) {
    const size = d.sizeBefore === d.sizeAfter ? humanBytes(d.sizeAfter) : `${humanBytes(d.sizeBefore)} -> ${humanBytes(d.sizeAfter)}`;
    const unit = d.compared === 'bytes' ? `, compared by bytes (chunk size ${humanBytes(d.chunkSizeBefore)} -> ${humanBytes(d.chunkSizeAfter)})` : '';
    if (d.status === 'unchanged') return [`  unchanged (image ${size}${unit})`];
    return [
      ...d.ranges.map((r) => `  changed ${r.offset}+${r.length}`),
      `  ${d.ranges.length} range${d.ranges.length === 1 ? '' : 's'}, ${humanBytes(d.changedBytes)} changed (image ${size}${unit})`,
    ];
  }
  if (d.kind === 'blob' && 'sizeBefore' in d) {
    const size = d.sizeBefore === d.sizeAfter ? humanBytes(d.sizeAfter) : `${humanBytes(d.sizeBefore)} -> ${humanBytes(d.sizeAfter)}`;
    return [`  ${d.status} (blob ${size})`];
  }
  return [];
}

/** Adds `diff` to the program. */
export function registerDiff(program: Command, cli: CliContext): void {
  program
    .command('diff')
    .description('show what changed between two snapshots: tree entries, image ranges, blobs')
    .argument('<snapshot-a>', 'the older snapshot: type/id/time, or type/id for the newest')
    .argument('<snapshot-b>', 'the newer snapshot (may be of another group): type/id/time, or type/id')
    .argument('[archive]', 'only this archive (e.g. etc.tree, drive-scsi0.img)')
    .addHelpText(
      'after',
      [
        '',
        'Examples:',
        '  cairn --store ./cairn-store diff host/web/2026-01-01T00:00:00Z host/web',
        '  cairn --store ./cairn-store diff vm/100/2026-01-01T00:00:00Z vm/100 drive-scsi0.img',
        '  cairn --store ./cairn-store --ns site-a --json diff host/web/2026-01-01T00:00:00Z host/web-2',
        '',
        'Per archive: tree entries, one line each, as restic prints them:',
        '  + added   - removed   M content modified (file bytes, symlink target, device numbers)',
        '  U metadata only (mode, owner, mtime, xattrs, hardlink)   T type changed (file <-> directory, ...)',
        'Directories end in /. Entries below an added or removed directory are listed too. Then a',
        'summary line (entries, and file bytes added and removed). File contents are compared by their',
        'chunk digests where those decide, else by reading both. Images: the changed byte ranges',
        '(offset+length) from the chunk digests, in whole chunks; with different chunk sizes both images',
        'are read and compared in pieces of the smaller chunk size; a size change counts as a change at',
        'the tail. Blobs: changed or not (checksum). --ns applies to both snapshots.',
        '',
        'Exit status 0 whether or not anything differs; 3 when a snapshot or the archive does not exist.',
      ].join('\n'),
    )
    .action(async (refA: string, refB: string, archive: string | undefined) => {
      const g = cli.globals();
      await withStore(g, async (ds) => {
        const a = await ds.snapshot(refA, { namespace: cli.ns() });
        const b = await ds.snapshot(refB, { namespace: cli.ns() });
        const json = g.json === true;
        const mode = progressMode(g);
        const progress = new Progress(mode);
        const onProgress = (p: DiffProgress): void => {
          if (p.kind === 'image') progress.update(`comparing ${p.archive}`, p.bytesDone, p.bytesTotal, 'bytes');
          else if (p.kind === 'tree') progress.update(`comparing ${p.archive}`, p.entries, undefined, 'items');
        };
        const ns = (s: { namespace: string; name: string }): string => (s.namespace === '' ? s.name : `${s.namespace}:${s.name}`);
        // The first line waits for the first result: an archive in neither snapshot fails before it.
        let started = false;
        const out = (line: string): void => {
          // A bar shares the terminal with stdout: clear it before a line (the next update redraws it).
          if (mode === 'bar') progress.end();
          if (!started) {
            started = true;
            process.stdout.write(`comparing ${ns(a)} to ${ns(b)}\n`);
          }
          process.stdout.write(`${line}\n`);
        };
        let current: string | undefined;
        const header = (name: string): void => {
          if (current === name) return;
          current = name;
          out(`${name}:`);
        };
        const totals = { added: 0, removed: 0, changed: 0, unchanged: 0, replaced: 0 };
        const result = await diffSnapshots(a, b, {
          signal: cli.signal(),
          onProgress,
          ...(archive === undefined ? {} : { archives: [archive] }),
          // Text streams each change as it is found; --json keeps them for the one object.
          ...(json
            ? {}
            : {
                onChange: (name: string, c: TreeChange): void => {
                  header(name);
                  out(changeLine(c));
                },
              }),
          onArchive: (d: ArchiveDiff): void => {
            totals[d.status]++;
            if (json) return;
            header(d.name);
            for (const line of archiveSummary(d)) out(line);
          },
        });
        progress.end();
        const summary = `${result.archives.length} archive${result.archives.length === 1 ? '' : 's'}: ${totals.changed} changed, ${totals.unchanged} unchanged, ${totals.added} added, ${totals.removed} removed${totals.replaced > 0 ? `, ${totals.replaced} replaced` : ''}`;
        print(g, { from: result.from, to: result.to, archives: result.archives.map(archiveJson), summary: totals }, summary);
      });
    });
}

/** `cairn show`: show a snapshot's manifest, its backup's stats and its group's owner and notes. */
import type { Command } from 'commander';
import { print, withStore, type CliContext } from '../context.js';
import { count, humanBytes, logicalBytes, storedNewBytes } from '../format.js';

/** Adds `show` to the program. */
export function registerShow(program: Command, cli: CliContext): void {
  program
    .command('show')
    .description("show a snapshot: its archives, the stats of its backup, and its group's owner and notes")
    .argument('<snapshot>', 'type/id/time, or type/id for the newest')
    .addHelpText(
      'after',
      '\nExample:\n  cairn --store ./cairn-store show vm/100\n\nStats are those the backup recorded: logical bytes read, stored bytes (new chunks written, after\ncompression), chunks, new chunks, seconds. Snapshots made before stats were recorded show none.',
    )
    .action(async (ref: string) => {
      const g = cli.globals();
      await withStore(g, async (ds) => {
        const s = await ds.snapshot(ref, { namespace: cli.ns() });
        const group = ds.group(`${s.type}/${s.id}`, { namespace: s.namespace });
        const owner = await group.owner();
        const groupNotes = await group.notes();
        const stats = s.manifest.unprotected.stats;
        const stored = storedNewBytes(s);
        const lines = [
          `snapshot ${s.name}${s.namespace ? ` (namespace ${s.namespace})` : ''}`,
          `size: ${humanBytes(logicalBytes(s))} in ${count(s.files.length, 'archive')}`,
          `protected: ${s.isProtected ? 'yes' : 'no'}`,
          `verify: ${s.verifyState ?? 'not verified'}${s.manifest.unprotected.verify ? ` (${s.manifest.unprotected.verify.time})` : ''}`,
        ];
        if (stats !== undefined && Object.keys(stats).length > 0) {
          const n = (k: string): number | undefined => (typeof stats[k] === 'number' ? stats[k] : undefined);
          const parts = [
            n('bytes') !== undefined || n('tree.bytes') !== undefined ? `${humanBytes((n('bytes') ?? 0) + (n('tree.bytes') ?? 0))} read` : '',
            stored !== undefined ? `${humanBytes(stored)} stored new` : '',
            n('chunks') !== undefined ? count(n('chunks')!, 'chunk') : '',
            n('chunksWritten') !== undefined ? `${n('chunksWritten')} new` : '',
            n('seconds') !== undefined ? `${n('seconds')!.toFixed(2)} s` : '',
          ].filter(Boolean);
          lines.push(`backup: ${parts.join(', ')}`);
        }
        lines.push(`owner: ${owner ?? '-'}`);
        if (s.notes) lines.push(`notes: ${s.notes.split('\n').join('\n       ')}`);
        if (groupNotes) lines.push(`group notes: ${groupNotes.split('\n').join('\n             ')}`);
        lines.push('archives:');
        for (const f of s.files) lines.push(`  ${f.name}  ${f.kind}  ${humanBytes(f.size)}  ${f.checksum.slice(0, 16)}…${f.chunkSize ? `  chunk ${humanBytes(f.chunkSize)}` : ''}`);
        print(
          g,
          {
            ...s.toJSON(),
            logicalBytes: logicalBytes(s),
            storedBytes: stored ?? null,
            verifyState: s.verifyState ?? null,
            notes: s.notes,
            stats: stats ?? {},
            owner: owner ?? null,
            groupNotes,
          },
          lines.join('\n'),
        );
      });
    });
}

/** `cairn show`: show a snapshot's manifest. */
import type { Command } from 'commander';
import { print, withStore, type CliContext } from '../context.js';
import { humanBytes } from '../format.js';

/** Adds `show` to the program. */
export function registerShow(program: Command, cli: CliContext): void {
  program
    .command('show')
    .description('show a snapshot\'s manifest')
    .argument('<snapshot>', 'type/id/time, or type/id for the newest')
    .addHelpText('after', '\nExample:\n  cairn --store ./cairn-store show vm/100')
    .action(async (ref: string) => {
      const g = cli.globals();
      await withStore(g, async (ds) => {
        const s = await ds.snapshot(ref, { namespace: cli.ns() });
        const lines = [`snapshot ${s.name}${s.namespace ? ` (namespace ${s.namespace})` : ''}`, `protected: ${s.isProtected ? 'yes' : 'no'}`];
        if (s.verifyState) lines.push(`verify: ${s.verifyState}`);
        if (s.notes) lines.push(`notes: ${s.notes}`);
        for (const f of s.files) lines.push(`  ${f.name}  ${f.kind}  ${humanBytes(f.size)}  ${f.checksum.slice(0, 16)}…${f.chunkSize ? `  chunk ${humanBytes(f.chunkSize)}` : ''}`);
        print(g, s.toJSON(), lines.join('\n'));
      });
    });
}

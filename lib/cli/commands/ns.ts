/** `cairn ns create|list|remove|move`: manage namespaces. */
import type { Command } from 'commander';
import { CairnError, isCairnError } from '../../index.js';
import { print, withStore, type CliContext } from '../context.js';
import { count, moveGroupJson, removeNamespaceJson } from '../format.js';
import { moveGroupLines } from '../move-lines.js';

/** Adds `ns` and its subcommands to the program. */
export function registerNs(program: Command, cli: CliContext): void {
  const nsCmd = program
    .command('ns')
    .description('manage namespaces')
    .addHelpText(
      'after',
      '\nExamples:\n  cairn --store ./cairn-store ns create site-a\n  cairn --store ./cairn-store ns list\n  cairn --store ./cairn-store ns remove site-a --recursive',
    );
  nsCmd
    .command('create')
    .argument('<namespace>', 'a/b/c (the parent must exist, unless -p)')
    .option('-p, --parents', 'also create missing parents, and accept a namespace that exists (like mkdir -p)')
    .addHelpText('after', '\nExamples:\n  cairn --store ./cairn-store ns create site-a\n  cairn --store ./cairn-store ns create -p site-a/rack-1/hosts')
    .action(async (name: string, o: { parents?: boolean }) => {
      const g = cli.globals();
      await withStore(g, async (ds) => {
        if (o.parents !== true) {
          const n = await ds.createNamespace(name);
          print(g, n.toJSON(), `created namespace ${n.path}`);
          return;
        }
        const target = ds.namespace(name); // checks the name
        const parts = target.parts;
        const created: string[] = [];
        for (let i = 1; i <= parts.length; i++) {
          const p = parts.slice(0, i).join('/');
          if (await ds.namespace(p).exists()) continue;
          try {
            await ds.createNamespace(p);
            created.push(p);
          } catch (e) {
            // Made by someone else meanwhile: as good as made here.
            if (!isCairnError(e, 'ERR_EXISTS')) throw e;
          }
        }
        print(g, { ...target.toJSON(), created }, created.length === 0 ? `namespace ${target.path} exists` : created.map((p) => `created namespace ${p}`).join('\n'));
      });
    });
  nsCmd
    .command('list')
    .argument('[namespace]', 'list below this namespace (default: the root)')
    .option('--max-depth <n>', 'levels to descend (default 7)', (v) => Number(v))
    .addHelpText('after', '\nExample:\n  cairn --store ./cairn-store ns list --max-depth 1')
    .action(async (parent: string | undefined, o: { maxDepth?: number }) => {
      const g = cli.globals();
      await withStore(g, async (ds) => {
        const list = await ds.listNamespaces({ parent: parent ?? '', ...(o.maxDepth === undefined ? {} : { maxDepth: o.maxDepth }) });
        print(
          g,
          list.map((n) => n.toJSON()),
          list.map((n) => (n.path === '' ? '(root)' : n.path)).join('\n'),
        );
      });
    });
  nsCmd
    .command('remove')
    .argument('<namespace>', 'the namespace to remove')
    .option('--recursive', 'also remove its snapshots (protected ones are kept) and child namespaces')
    .addHelpText('after', '\nExample:\n  cairn --store ./cairn-store ns remove site-a --recursive')
    .action(async (name: string, o: { recursive?: boolean }) => {
      const g = cli.globals();
      await withStore(g, async (ds) => {
        const r = await ds.removeNamespace(name, { recursive: o.recursive === true });
        const lines = [r.removed ? `removed namespace ${name}` : `namespace ${name} kept`];
        if (r.removedSnapshots.length > 0) lines.push(`removed ${count(r.removedSnapshots.length, 'snapshot')}`);
        for (const s of r.keptProtected) lines.push(`kept protected ${s}`);
        for (const s of r.keptLocked) lines.push(`kept in-use ${s}`);
        print(g, removeNamespaceJson(r), lines.join('\n'));
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
    .addHelpText(
      'after',
      '\nExamples:\n  cairn --store ./cairn-store ns move site-a --target-ns archive/site-a\n  cairn --store ./cairn-store ns move old new --no-merge-groups --json',
    )
    .action(async (name: string, target: string | undefined, o: { targetNs?: string; mergeGroups?: boolean; keepSource?: boolean; maxDepth?: number }) => {
      const g = cli.globals();
      const to = o.targetNs ?? target;
      if (to === undefined) throw new CairnError('ERR_INVALID_ARGUMENT', 'ns move needs a target (--target-ns <namespace>)');
      await withStore(g, async (ds) => {
        const r = await ds.moveNamespace(name, to, {
          mergeGroups: o.mergeGroups !== false,
          deleteSource: o.keepSource !== true,
          ...(o.maxDepth === undefined ? {} : { maxDepth: o.maxDepth }),
          // SIGINT and SIGTERM stop the move between snapshots (what moved stays moved; run it again).
          signal: cli.signal(),
        });
        const lines = r.groups.flatMap(moveGroupLines);
        for (const f of r.failedGroups) lines.push(`not moved: ${f.namespace === '' ? '' : `${f.namespace}:`}${f.group}: ${f.code}: ${f.reason}`);
        for (const n of r.createdNamespaces) lines.push(`created namespace ${n}`);
        for (const n of r.removedNamespaces) lines.push(`removed namespace ${n}`);
        print(g, { ...r, groups: r.groups.map(moveGroupJson) }, lines.join('\n'));
        if (r.failedGroups.length > 0 || r.groups.some((x) => x.skipped.length > 0)) process.exitCode = 4;
      });
    });
}

/** `cairn catalog find` and `cairn catalog rebuild`: which snapshots hold a path of a tree archive. */
import type { Command } from 'commander';
import { Catalog, snapshotIdentity, type CatalogHit, type CatalogProgress, type CatalogUpdateReport, type Datastore } from '../../index.js';
import { print, withStore, type CliContext, type GlobalOptions } from '../context.js';
import { count, humanBytes, mtimeString } from '../format.js';
import { Progress, progressMode } from '../progress.js';

/** One line of `catalog find` output. */
const catalogLine = (h: CatalogHit): string => {
  const size = h.kind === 'file' ? humanBytes(h.size) : h.kind;
  return `${h.namespace === '' ? '' : `${h.namespace}:`}${h.snapshot}  ${h.archive}  ${size}  ${mtimeString(h.mtimeNs)}`;
};

/** A hit of `catalog find` as printed by `--json`. */
const catalogJson = (h: CatalogHit): Record<string, unknown> => ({
  ...snapshotIdentity(h.namespace, h.group, h.time),
  archive: h.archive,
  path: h.path.toString('utf8'),
  kind: h.kind,
  size: h.size,
  mtimeNs: h.mtimeNs.toString(),
});

/**
 * Opens the catalog of `ds`, runs `fn` and closes it; `signal` (SIGINT/SIGTERM) aborts `fn`. On a
 * read-only datastore the catalog is a temporary copy, and one line on stderr says so.
 */
const withCatalog = async <T>(ds: Datastore, signal: AbortSignal, fn: (c: Catalog, signal: AbortSignal) => Promise<T>): Promise<T> => {
  const c = await Catalog.open(ds, { signal });
  if (c.temporary) process.stderr.write(`cairn: warning: the catalog of ${ds.root} cannot be written there: searching a temporary copy in ${c.directory} (removed when done)\n`);
  try {
    return await fn(c, signal);
  } finally {
    await c.close();
  }
};

/** The indexing progress line on stderr, when it is a TTY and not `--json`. */
const catalogProgress = (g: GlobalOptions, progress: Progress): ((p: CatalogProgress) => void) | undefined =>
  progressMode(g) === 'off' ? undefined : (p) => progress.update(`indexing ${p.snapshot} ${p.archive}`, p.entries, undefined, 'items');

/** Warnings about the snapshots and archives an update skipped. */
const catalogWarnings = (r: CatalogUpdateReport): string[] =>
  r.skipped.map((s) => `warning: skipped ${s.namespace ? `${s.namespace}:` : ''}${s.snapshot}${s.archive ? ` ${s.archive}` : ''}: ${s.code}: ${s.message}`);

/** Adds `catalog` and its subcommands to the program. */
export function registerCatalog(program: Command, cli: CliContext): void {
  const catalogCmd = program
    .command('catalog')
    .description('find which snapshots hold a path of a tree archive (a local index, rebuilt as needed)')
    .addHelpText(
      'after',
      '\nExamples:\n  cairn --store ./cairn-store catalog find home/ann/thesis.tex host/laptop\n  cairn --store ./cairn-store --ns site-a catalog find etc/hosts\n  cairn --store ./cairn-store catalog rebuild',
    );
  catalogCmd
    .command('find')
    .description('list the snapshots whose tree archives hold a path, with its size and mtime in each')
    .argument('<path>', 'archive-relative path, e.g. ssh/sshd_config for /etc/ssh/sshd_config in etc.tree:/etc')
    .argument('[group]', 'backup group type/id (default: every group of --ns and the namespaces below it)')
    .option('--max-depth <n>', 'without a group: levels of namespaces below --ns to search (default 7)', (v) => Number(v))
    .option('--archive <name>', 'only this tree archive, e.g. etc.tree')
    .addHelpText(
      'after',
      '\nExamples:\n  cairn --store ./cairn-store catalog find ssh/sshd_config host/web\n  cairn --store ./cairn-store --ns site-a --json catalog find home/ann/thesis.tex\n\nOne line per snapshot holding the path: <type>/<id>/<time>  <archive>  <size>  <mtime UTC>\n(prefixed <namespace>: outside the root namespace). --json prints mtimeNs as a decimal string.\nOn a read-only datastore the search runs on a temporary copy of the catalog (stderr says\nso), and nothing is written to the datastore.',
    )
    .action(async (p: string, group: string | undefined, o: { maxDepth?: number; archive?: string }) => {
      const g = cli.globals();
      await withStore(g, (ds) =>
        withCatalog(ds, cli.signal(), async (c, signal) => {
          const progress = new Progress(progressMode(g));
          const onProgress = catalogProgress(g, progress);
          const scope = { namespace: cli.ns(), ...(group === undefined ? {} : { group }), ...(o.maxDepth === undefined ? {} : { maxDepth: o.maxDepth }) };
          const report = await c.update({ ...scope, signal, ...(onProgress === undefined ? {} : { onProgress }) });
          progress.end();
          const hits = await c.findPath(p, { ...scope, signal, ...(o.archive === undefined ? {} : { archive: o.archive }) });
          for (const w of catalogWarnings(report)) process.stderr.write(`${w}\n`);
          print(g, hits.map(catalogJson), hits.length === 0 ? `no snapshot holds ${p}` : hits.map(catalogLine).join('\n'));
        }),
      );
    });
  catalogCmd
    .command('rebuild')
    .description('clear the catalog and index every snapshot of the datastore again')
    .addHelpText(
      'after',
      '\nExample:\n  cairn --store ./cairn-store catalog rebuild\n\nOn a read-only datastore it fails with ERR_READ_ONLY (exit 6): the rebuilt catalog could not\nbe kept (catalog find brings a temporary copy up to date itself).',
    )
    .action(async () => {
      const g = cli.globals();
      await withStore(g, (ds) => {
        // Refused before copying the catalog only to throw the copy away (Catalog.rebuild refuses too).
        ds.assertWritable('rebuild the catalog (a rebuilt temporary copy could not be kept; `catalog find` brings one up to date itself)');
        return withCatalog(ds, cli.signal(), async (c, signal) => {
          const progress = new Progress(progressMode(g));
          const onProgress = catalogProgress(g, progress);
          const r = await c.rebuild({ signal, ...(onProgress === undefined ? {} : { onProgress }) });
          progress.end();
          print(
            g,
            r,
            [`catalog rebuilt: ${count(r.indexed, 'snapshot')}, ${count(r.archives, 'tree archive')}, ${count(r.entries, 'entry', 'entries')}`, ...catalogWarnings(r)].join('\n'),
          );
        });
      });
    });
}

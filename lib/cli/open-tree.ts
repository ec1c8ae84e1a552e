/** Opening a tree archive of a snapshot, for `ls` and `find`. */
import type { Datastore, TreeReader } from '../index.js';
import type { CliContext } from './context.js';

/** An open tree archive, the path inside it, and how to close the snapshot it belongs to. */
export interface OpenTree {
  /** The tree archive. */
  tree: TreeReader;
  /** Closes the snapshot reader. */
  close: () => Promise<void>;
  /** The path after `<name>.tree:`, `''` for the archive's root. */
  inner: string;
}

/** Opens `<name>.tree` or `<name>.tree:<path>` (`spec`) of snapshot `ref` in the namespace of `--ns`. */
export async function openTree(cli: CliContext, ds: Datastore, ref: string, spec: string): Promise<OpenTree> {
  const colon = spec.indexOf(':');
  const archive = colon < 0 ? spec : spec.slice(0, colon);
  const inner = colon < 0 ? '' : spec.slice(colon + 1);
  const s = await ds.snapshot(ref, { namespace: cli.ns() });
  const r = await s.open();
  try {
    return { tree: await r.tree(archive), close: () => r.close(), inner };
  } catch (e) {
    await r.close();
    throw e;
  }
}

/**
 * The backup groups a maintenance command works on (layer L5): one group of a namespace, or every
 * group of a namespace and the namespaces below it, checked the same way for prune and stats.
 */
import { CairnError, isCairnError } from '../errors.js';
import { MAX_NAMESPACE_DEPTH, parseNamespace } from '../types.js';
import type { Datastore } from '../datastore/datastore.js';
import type { BackupGroup } from '../datastore/group.js';

/** Which groups: one of `namespace`, or all of it and `maxDepth` levels below. */
export interface GroupScope {
  /** One group, `type/id`, in `namespace`. */
  readonly group?: string | undefined;
  /** Namespace path (default `''`, the root). */
  readonly namespace?: string | undefined;
  /** Without `group`: levels of namespaces below `namespace`, 0 to 7 (default 7). */
  readonly maxDepth?: number | undefined;
}

/**
 * The groups of the scope. Groups or namespaces removed while listing are left out.
 * @throws `ERR_INVALID_NAME`, `ERR_INVALID_ARGUMENT` (maxDepth), `ERR_NOT_FOUND` (the namespace,
 *   or the one group)
 */
export async function groupsInScope(ds: Datastore, scope: GroupScope): Promise<BackupGroup[]> {
  const namespace = scope.namespace ?? '';
  parseNamespace(namespace);
  const maxDepth = scope.maxDepth ?? MAX_NAMESPACE_DEPTH;
  if (!Number.isInteger(maxDepth) || maxDepth < 0 || maxDepth > MAX_NAMESPACE_DEPTH) {
    throw new CairnError('ERR_INVALID_ARGUMENT', `maxDepth must be an integer from 0 to ${MAX_NAMESPACE_DEPTH}`, { datastore: ds.root });
  }
  const ns = ds.namespace(namespace);
  await ns.assertExists();
  if (scope.group !== undefined) {
    const g = ns.group(scope.group);
    if (!(await g.exists())) {
      throw new CairnError('ERR_NOT_FOUND', `backup group ${g.name} does not exist${namespace ? ` in namespace '${namespace}'` : ''}`, {
        datastore: ds.root,
        namespace,
        group: g.name,
      });
    }
    return [g];
  }
  const out: BackupGroup[] = [];
  for (const n of await ns.descendants(maxDepth)) {
    try {
      out.push(...(await n.groups()));
    } catch (e) {
      if (!isCairnError(e, 'ERR_NOT_FOUND')) throw e; // removed while listing
    }
  }
  return out;
}

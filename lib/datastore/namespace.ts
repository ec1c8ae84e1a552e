/**
 * A namespace (layer L4): a path of up to 7 nested names below the root (`site-a/prod`) that keeps
 * equal group ids apart. Stored as `ns/<a>/ns/<b>/` directories.
 */
import { CairnError, type ErrorDetails } from '../errors.js';
import { BACKUP_TYPES, parseGroup, parseNamespace, MAX_NAMESPACE_DEPTH, type GroupId } from '../types.js';
import type { StoreContext } from './context.js';
import { namespaceKey } from './layout.js';
import { BackupGroup } from './group.js';
import { childNames, folderExists, removeEmptyFolder } from './keyspace.js';

const SAFE = /^[A-Za-z0-9_][A-Za-z0-9._-]*$/;

/**
 * What {@link Datastore.removeNamespace} did.
 * @category Datastore
 */
export interface RemoveNamespaceReport {
  /** The namespace (and all below it) is gone. */
  readonly removed: boolean;
  /** Snapshots removed (`ns:type/id/time`). */
  readonly removedSnapshots: string[];
  /** Protected snapshots kept (with the namespaces that hold them). */
  readonly keptProtected: string[];
  /** Snapshots kept because they were in use (being read or the base of a backup). */
  readonly keptLocked: string[];
}

/**
 * A namespace of a datastore. Obtain one with {@link Datastore.namespace}.
 *
 * @example
 * ```ts
 * await ds.createNamespace('site-a');
 * const ns = ds.namespace('site-a');
 * const w = await ns.group('vm/100').backup();
 * ```
 * @category Datastore
 */
export class Namespace {
  /** Namespace components (empty for the root). */
  readonly parts: readonly string[];

  /** @internal */
  constructor(
    private readonly ctx: StoreContext,
    /** The full path (`''` for the root). */
    readonly path: string,
  ) {
    this.parts = parseNamespace(path);
  }

  /** Levels below the root (0 for the root). */
  get depth(): number {
    return this.parts.length;
  }

  /** The parent namespace's path, or undefined for the root. */
  get parentPath(): string | undefined {
    return this.parts.length === 0 ? undefined : this.parts.slice(0, -1).join('/');
  }

  /** @internal */
  get key(): string {
    return namespaceKey(this.parts);
  }

  private details(): ErrorDetails {
    return { datastore: this.ctx.root, namespace: this.path };
  }

  /**
   * True for the root and for namespaces whose directory exists.
   * @throws `ERR_UNSAFE_PATH` when the namespace's directory is a symlink (or not a directory).
   */
  async exists(): Promise<boolean> {
    this.ctx.assertOpen();
    if (this.parts.length === 0) return true;
    return folderExists(this.ctx.backend, this.key, this.details());
  }

  /** @throws `ERR_NOT_FOUND` unless the namespace exists. */
  async assertExists(): Promise<void> {
    if (!(await this.exists())) throw new CairnError('ERR_NOT_FOUND', `namespace '${this.path}' does not exist`, this.details());
  }

  /** A group in this namespace (`type/id` or a {@link GroupId}). */
  group(group: string | GroupId): BackupGroup {
    const g = typeof group === 'string' ? parseGroup(group) : parseGroup(`${group.type}/${group.id}`);
    return new BackupGroup(this.ctx, this.path, this.parts, g);
  }

  /** The groups directly in this namespace, sorted by type and id. */
  async groups(): Promise<BackupGroup[]> {
    await this.assertExists();
    const out: BackupGroup[] = [];
    const prefix = this.key === '' ? '' : `${this.key}/`;
    for (const type of BACKUP_TYPES) {
      for (const id of await childNames(this.ctx.backend, `${prefix}${type}`)) {
        if (SAFE.test(id)) out.push(this.group({ type, id }));
      }
    }
    return out;
  }

  /** Direct child namespaces. */
  async children(): Promise<Namespace[]> {
    await this.assertExists();
    if (this.depth >= MAX_NAMESPACE_DEPTH) return [];
    const prefix = this.key === '' ? 'ns' : `${this.key}/ns`;
    return (await childNames(this.ctx.backend, prefix)).filter((n) => SAFE.test(n)).map((n) => new Namespace(this.ctx, this.path === '' ? n : `${this.path}/${n}`));
  }

  /**
   * This namespace and the ones below it, depth first, up to `maxDepth` levels below this one.
   */
  async descendants(maxDepth = MAX_NAMESPACE_DEPTH): Promise<Namespace[]> {
    const out: Namespace[] = [this];
    if (maxDepth > 0) {
      for (const c of await this.children()) out.push(...(await c.descendants(maxDepth - 1)));
    }
    return out;
  }

  /**
   * Removes this namespace's directories when nothing is left in them (the type directories, the
   * `ns` directory, then its own); `rmdir` fails safely when something new appeared. The root stays.
   * @returns true when the namespace directory is gone
   * @internal
   */
  async removeDirsIfEmpty(): Promise<boolean> {
    if (this.depth === 0) return false;
    for (const type of BACKUP_TYPES) await removeEmptyFolder(this.ctx.backend, `${this.key}/${type}`);
    await removeEmptyFolder(this.ctx.backend, `${this.key}/ns`);
    return removeEmptyFolder(this.ctx.backend, this.key);
  }

  /** A plain summary for JSON output. */
  toJSON(): Record<string, unknown> {
    return { path: this.path, depth: this.depth };
  }
}

/**
 * The read-only file tree a mount shows (layer L6, public API only): nodes for the datastore's
 * namespaces, groups and snapshots, and for the archives of a snapshot (an image or a blob as one
 * file, a tree archive as its directory tree). Independent of FUSE: mount.ts maps the kernel's
 * requests onto these nodes.
 */
import { CairnError, type Datastore, type Namespace, type BackupGroup, type Snapshot, type SnapshotReader, type TreeItem, type TreeReader } from '../index.js';

/** What a node is. */
export type NodeKind = 'dir' | 'file' | 'symlink' | 'chardev' | 'blockdev' | 'fifo' | 'socket';

/** The attributes of a node. */
export interface NodeAttr {
  /** What it is. */
  readonly kind: NodeKind;
  /** Permission bits (≤ 0o7777). */
  readonly perm: number;
  /** Owner. */
  readonly uid: number;
  /** Group. */
  readonly gid: number;
  /** Bytes (files, symlinks). */
  readonly size: number;
  /** Modification time, ms since the epoch. */
  readonly mtimeMs: number;
  /** Links. */
  readonly nlink: number;
  /** Inode number, stable within a mount. */
  readonly ino: number;
  /** Device number (device nodes). */
  readonly rdev: number;
}

/** A node of the mounted tree. */
export interface VNode {
  /** Its attributes. */
  readonly attr: NodeAttr;
  /** Directories: the names below it. */
  names?(): Promise<string[]>;
  /** Directories: one child by name, undefined when absent. */
  child?(name: string): Promise<VNode | undefined>;
  /** Files: bytes at an offset (fewer at the end). */
  read?(offset: number, length: number): Promise<Uint8Array>;
  /** Files that can: read into the caller's buffer, without allocating; returns the byte count. */
  readInto?(offset: number, target: Uint8Array): Promise<number>;
  /** Symlinks: the target. */
  readonly target?: Buffer;
  /** Extended attributes, name → value. */
  readonly xattrs?: ReadonlyMap<string, Buffer>;
  /** Files: the image chunk size, for read-ahead (absent for other files). */
  readonly chunkSize?: number;
}

/** Inode numbers per node key, handed out in order; stable for the life of the table. */
export class InodeTable {
  private readonly map = new Map<string, number>([['', 1]]);
  private next = 2;

  private readonly links = new Map<number, Set<string>>();

  /** The inode number of a key. */
  of(key: string): number {
    let n = this.map.get(key);
    if (n === undefined) this.map.set(key, (n = this.next++));
    return n;
  }

  /** Records that the hardlink `link` names inode `ino`. */
  linked(ino: number, link: string): void {
    let s = this.links.get(ino);
    if (s === undefined) this.links.set(ino, (s = new Set()));
    s.add(link);
  }

  /** 1 + the hardlinks to `ino` seen so far (an archive stores no link count; the mount learns it). */
  nlink(ino: number): number {
    return 1 + (this.links.get(ino)?.size ?? 0);
  }
}

const DIR_PERM = 0o555;
const FILE_PERM = 0o444;

function dirAttr(ino: number, mtimeMs: number, perm = DIR_PERM, uid = 0, gid = 0): NodeAttr {
  return { kind: 'dir', perm, uid, gid, size: 4096, mtimeMs, nlink: 2, ino, rdev: 0 };
}

/** A directory node over a fixed or computed list of named children. */
class DirNode implements VNode {
  constructor(
    readonly attr: NodeAttr,
    private readonly entries: () => Promise<Map<string, () => Promise<VNode | undefined>>>,
  ) {}

  async names(): Promise<string[]> {
    return [...(await this.entries()).keys()];
  }

  async child(name: string): Promise<VNode | undefined> {
    const make = (await this.entries()).get(name);
    return make === undefined ? undefined : make();
  }
}

/** Reader access for a snapshot view: the reader, and a hook that keeps it open while in use. */
export interface ReaderSource {
  /** The open reader (it may be opened on demand). */
  reader(): Promise<SnapshotReader>;
}

/**
 * The root of one snapshot: an entry per archive. `keyPrefix` makes inode keys unique across
 * snapshots of a datastore view.
 */
export function snapshotRoot(snap: Snapshot, src: ReaderSource, inodes: InodeTable, keyPrefix: string, ino: number): VNode {
  const mtimeMs = snap.epoch * 1000;
  const trees = new Map<string, Promise<TreeReader>>();
  return new DirNode(dirAttr(ino, mtimeMs), async () => {
    const m = new Map<string, () => Promise<VNode | undefined>>();
    for (const f of snap.files) {
      const key = `${keyPrefix}/${f.name}`;
      if (f.kind === 'image') {
        m.set(f.name, async () => ({
          attr: { kind: 'file', perm: FILE_PERM, uid: 0, gid: 0, size: f.size, mtimeMs, nlink: 1, ino: inodes.of(key), rdev: 0 },
          ...(f.chunkSize === undefined ? {} : { chunkSize: f.chunkSize }),
          read: async (offset, length) => (await src.reader()).readAt(f.name, offset, length),
          readInto: async (offset, target) => (await src.reader()).readInto(f.name, offset, target),
        }));
      } else if (f.kind === 'blob') {
        let data: Promise<Uint8Array> | undefined;
        m.set(f.name, async () => ({
          attr: { kind: 'file', perm: FILE_PERM, uid: 0, gid: 0, size: f.size, mtimeMs, nlink: 1, ino: inodes.of(key), rdev: 0 },
          read: async (offset, length) => {
            data ??= src.reader().then((r) => r.readBlob(f.name));
            data.catch(() => (data = undefined));
            return (await data).subarray(offset, offset + length);
          },
        }));
      } else {
        m.set(f.name, async () => {
          let tp = trees.get(f.name);
          if (tp === undefined) {
            tp = src.reader().then((r) => r.tree(f.name));
            trees.set(f.name, tp);
            tp.catch(() => trees.delete(f.name));
          }
          const tree = await tp;
          return treeNode(tree, tree.root, inodes, key);
        });
      }
    }
    return m;
  });
}

const KIND_OF: Record<string, NodeKind> = { dir: 'dir', file: 'file', symlink: 'symlink', chardev: 'chardev', blockdev: 'blockdev', fifo: 'fifo', socket: 'socket' };

function rdevOf(major = 0, minor = 0): number {
  // Linux dev_t encoding as the kernel expects it in st_rdev (new_encode_dev).
  return (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xff) << 12);
}

/** A node for a tree archive entry; a hardlink shows its target's content under the target's inode. */
async function treeNode(tree: TreeReader, item: TreeItem, inodes: InodeTable, archiveKey: string): Promise<VNode> {
  let target = item;
  if (item.entry.kind === 'hardlink') {
    const t = await tree.lookup(item.entry.target!);
    if (t === undefined || t.entry.kind === 'hardlink' || t.entry.kind === 'dir') {
      throw new CairnError('ERR_TREE_CORRUPT', `hardlink '${item.path.toString()}' points at '${Buffer.from(item.entry.target!).toString()}', which is not a file`, { archive: archiveKey });
    }
    target = t;
  }
  const e = target.entry;
  const kind = KIND_OF[e.kind] ?? 'file';
  const ino = inodes.of(`${archiveKey}/${target.path.toString('latin1')}`);
  if (item !== target) inodes.linked(ino, item.path.toString('latin1'));
  const xattrs = e.xattrs === undefined ? undefined : new Map(e.xattrs.map(([n, v]) => [Buffer.from(n).toString('utf8'), Buffer.from(v)]));
  const attr: NodeAttr = {
    kind,
    perm: e.mode & 0o7777,
    uid: e.uid,
    gid: e.gid,
    size: kind === 'symlink' ? e.target!.byteLength : e.size,
    mtimeMs: Number(e.mtimeNs / 1_000_000n),
    nlink: kind === 'dir' ? 2 : inodes.nlink(ino),
    ino,
    rdev: kind === 'chardev' || kind === 'blockdev' ? rdevOf(e.rdevMajor, e.rdevMinor) : 0,
  };
  const node: { -readonly [K in keyof VNode]: VNode[K] } = { attr, ...(xattrs === undefined ? {} : { xattrs }) };
  if (kind === 'dir') {
    let children: Promise<Map<string, TreeItem>> | undefined;
    const load = (): Promise<Map<string, TreeItem>> => {
      children ??= tree.readDir(target).then((items) => new Map(items.map((c) => [Buffer.from(c.entry.name).toString('utf8'), c])));
      children.catch(() => (children = undefined));
      return children;
    };
    node.names = async () => [...(await load()).keys()];
    node.child = async (name) => {
      const c = (await load()).get(name);
      return c === undefined ? undefined : treeNode(tree, c, inodes, archiveKey);
    };
  } else if (kind === 'file') {
    node.read = (offset, length) => tree.readFile(target, offset, length);
  } else if (kind === 'symlink') {
    node.target = Buffer.from(e.target!);
  }
  return node;
}

/** Options of a datastore view. */
export interface DatastoreViewOptions {
  /** Opens a snapshot's reader for the view (the mount keeps a bounded set open). */
  readonly open: (snap: Snapshot) => ReaderSource;
}

/** The root of a datastore view: `<namespace path>/<type>/<id>/<time>/<archive>`, `latest` per group. */
export function datastoreRoot(ds: Datastore, ns: Namespace, inodes: InodeTable, options: DatastoreViewOptions): VNode {
  return namespaceNode(ds, ns, inodes, options);
}

function namespaceNode(ds: Datastore, ns: Namespace, inodes: InodeTable, options: DatastoreViewOptions): VNode {
  const key = `ns:${ns.path}`;
  return new DirNode(dirAttr(ns.path === '' ? 1 : inodes.of(key), 0), async () => {
    const m = new Map<string, () => Promise<VNode | undefined>>();
    if (!(await ns.exists())) return m;
    const groups = await ns.groups();
    const types = new Map<string, BackupGroup[]>();
    for (const g of groups) {
      const list = types.get(g.type) ?? [];
      list.push(g);
      types.set(g.type, list);
    }
    // Child namespaces first; a type directory wins over a namespace of the same name.
    for (const c of await ns.children()) {
      const name = c.path.split('/').at(-1)!;
      m.set(name, async () => namespaceNode(ds, c, inodes, options));
    }
    for (const [type, list] of types) {
      m.set(type, async () =>
        new DirNode(dirAttr(inodes.of(`${key}/${type}`), 0), async () => new Map(list.map((g) => [g.id, async () => groupNode(g, inodes, options)]))),
      );
    }
    return m;
  });
}

function groupNode(group: BackupGroup, inodes: InodeTable, options: DatastoreViewOptions): VNode {
  const key = `g:${group.namespace}:${group.name}`;
  return new DirNode(dirAttr(inodes.of(key), 0), async () => {
    const m = new Map<string, () => Promise<VNode | undefined>>();
    const snaps = await group.snapshots().catch((e: unknown) => {
      if (e instanceof CairnError && e.code === 'ERR_NOT_FOUND') return [];
      throw e;
    });
    for (const s of snaps) {
      const skey = `${key}/${s.time}`;
      m.set(s.time, async () => snapshotRoot(s, options.open(s), inodes, skey, inodes.of(skey)));
    }
    const newest = snaps.at(-1);
    if (newest !== undefined) {
      const target = Buffer.from(newest.time);
      m.set('latest', async () => ({
        attr: { kind: 'symlink', perm: 0o777, uid: 0, gid: 0, size: target.byteLength, mtimeMs: newest.epoch * 1000, nlink: 1, ino: inodes.of(`${key}/latest`), rdev: 0 },
        target,
      }));
    }
    return m;
  });
}

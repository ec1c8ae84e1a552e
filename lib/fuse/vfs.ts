/**
 * The read-only file tree a mount shows (layer L6, public API only): nodes for the datastore's
 * namespaces, groups and snapshots, and for the archives of a snapshot (an image or a blob as one
 * file, a tree archive as its directory tree). Independent of FUSE: mount.ts maps the kernel's
 * requests onto these nodes.
 */
import { CairnError, type Datastore, type Namespace, type BackupGroup, type Snapshot, type SnapshotReader, type TreeItem, type TreeReader } from '../index.js';
import { showName } from './names.js';

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
  /** Symlinks: the target, as shown (names that are not UTF-8 escaped, see names.ts). */
  readonly target?: string;
  /**
   * Files: keeps what the file is read from open (its snapshot locked) until the returned function
   * is called; taken by every open handle.
   */
  hold?(): Promise<() => void>;
  /** Extended attributes, shown name → value. */
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

/**
 * Owner and modes of what a view makes up itself (the archive entries of a tree keep their own):
 * images and blobs, and the directories above them.
 */
export interface ViewModes {
  /** Owner of the made-up entries (the mounting user). */
  readonly uid: number;
  /** Group of the made-up entries (the mounting user's). */
  readonly gid: number;
  /** Permission bits of images and blobs. */
  readonly imageMode: number;
  /** Permission bits of the made-up directories (a snapshot's root; namespaces, types, groups). */
  readonly dirMode: number;
}

function dirAttr(ino: number, mtimeMs: number, modes: ViewModes): NodeAttr {
  return { kind: 'dir', perm: modes.dirMode, uid: modes.uid, gid: modes.gid, size: 4096, mtimeMs, nlink: 2, ino, rdev: 0 };
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
  /**
   * Keeps the reader open (and so the snapshot locked) until the returned function is called: an
   * open file handle holds its snapshot. The returned function is idempotent.
   */
  hold(): Promise<() => void>;
}

/**
 * The root of one snapshot: an entry per archive. `keyPrefix` makes inode keys unique across
 * snapshots of a datastore view. Every access goes through `src.reader()`, so a reader the view
 * closed (idle) and opened again is never used stale.
 */
export function snapshotRoot(snap: Snapshot, src: ReaderSource, inodes: InodeTable, keyPrefix: string, ino: number, modes: ViewModes): VNode {
  const mtimeMs = snap.epoch * 1000;
  // Tree readers per open reader: a reader closed and opened again gets new ones.
  const trees = new WeakMap<SnapshotReader, Map<string, Promise<TreeReader>>>();
  const treeOf = async (name: string): Promise<TreeReader> => {
    const r = await src.reader();
    let m = trees.get(r);
    if (m === undefined) trees.set(r, (m = new Map()));
    let tp = m.get(name);
    if (tp === undefined) {
      tp = r.tree(name);
      m.set(name, tp);
      const mm = m;
      tp.catch(() => mm.delete(name));
    }
    return tp;
  };
  const hold = (): Promise<() => void> => src.hold();
  const fileAttr = (key: string, size: number): NodeAttr => ({
    kind: 'file',
    perm: modes.imageMode,
    uid: modes.uid,
    gid: modes.gid,
    size,
    mtimeMs,
    nlink: 1,
    ino: inodes.of(key),
    rdev: 0,
  });
  return new DirNode(dirAttr(ino, mtimeMs, modes), async () => {
    const m = new Map<string, () => Promise<VNode | undefined>>();
    for (const f of snap.files) {
      const key = `${keyPrefix}/${f.name}`;
      if (f.kind === 'image') {
        m.set(f.name, async () => ({
          attr: fileAttr(key, f.size),
          ...(f.chunkSize === undefined ? {} : { chunkSize: f.chunkSize }),
          read: async (offset, length) => (await src.reader()).readAt(f.name, offset, length),
          readInto: async (offset, target) => (await src.reader()).readInto(f.name, offset, target),
          hold,
        }));
      } else if (f.kind === 'blob') {
        let data: Promise<Uint8Array> | undefined;
        m.set(f.name, async () => ({
          attr: fileAttr(key, f.size),
          read: async (offset, length) => {
            // Read through the reader every time (it takes part in the idle clock), the bytes once.
            const r = await src.reader();
            data ??= r.readBlob(f.name);
            data.catch(() => (data = undefined));
            return (await data).subarray(offset, offset + length);
          },
          hold,
        }));
      } else {
        m.set(f.name, async () => {
          const tree = await treeOf(f.name);
          return treeNode(() => treeOf(f.name), tree.root, inodes, key, hold);
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

/**
 * A node for a tree archive entry; a hardlink shows its target's content under the target's inode.
 * Names, symlink targets and xattr names are shown through {@link showName} (reversible for bytes
 * that are not UTF-8). `tree` gives the archive's reader of the snapshot's current reader.
 */
async function treeNode(tree: () => Promise<TreeReader>, item: TreeItem, inodes: InodeTable, archiveKey: string, hold: () => Promise<() => void>): Promise<VNode> {
  let target = item;
  if (item.entry.kind === 'hardlink') {
    const t = await (await tree()).lookup(item.entry.target!);
    if (t === undefined || t.entry.kind === 'hardlink' || t.entry.kind === 'dir') {
      throw new CairnError('ERR_TREE_CORRUPT', `hardlink '${showName(item.path)}' points at '${showName(item.entry.target!)}', which is not a file`, { archive: archiveKey });
    }
    target = t;
  }
  const e = target.entry;
  const kind = KIND_OF[e.kind] ?? 'file';
  const ino = inodes.of(`${archiveKey}/${target.path.toString('latin1')}`);
  if (item !== target) inodes.linked(ino, item.path.toString('latin1'));
  const xattrs = e.xattrs === undefined ? undefined : new Map(e.xattrs.map(([n, v]) => [showName(n), Buffer.from(v)]));
  const linkTarget = kind === 'symlink' ? showName(e.target!) : undefined;
  const attr: NodeAttr = {
    kind,
    perm: e.mode & 0o7777,
    uid: e.uid,
    gid: e.gid,
    size: linkTarget !== undefined ? Buffer.byteLength(linkTarget) : e.size,
    mtimeMs: Number(e.mtimeNs / 1_000_000n),
    nlink: kind === 'dir' ? 2 : inodes.nlink(ino),
    ino,
    rdev: kind === 'chardev' || kind === 'blockdev' ? rdevOf(e.rdevMajor, e.rdevMinor) : 0,
  };
  const node: { -readonly [K in keyof VNode]: VNode[K] } = { attr, ...(xattrs === undefined ? {} : { xattrs }) };
  if (kind === 'dir') {
    let children: Promise<Map<string, TreeItem>> | undefined;
    const load = (): Promise<Map<string, TreeItem>> => {
      children ??= tree()
        .then((t) => t.readDir(target))
        .then((items) => new Map(items.map((c) => [showName(c.entry.name), c])));
      children.catch(() => (children = undefined));
      return children;
    };
    node.names = async () => [...(await load()).keys()];
    node.child = async (name) => {
      const c = (await load()).get(name);
      return c === undefined ? undefined : treeNode(tree, c, inodes, archiveKey, hold);
    };
  } else if (kind === 'file') {
    node.read = async (offset, length) => (await tree()).readFile(target, offset, length);
    node.hold = hold;
  } else if (linkTarget !== undefined) {
    node.target = linkTarget;
  }
  return node;
}

/** Options of a datastore view. */
export interface DatastoreViewOptions {
  /** Opens a snapshot's reader for the view (the mount keeps a bounded set open). */
  readonly open: (snap: Snapshot) => ReaderSource;
  /** Owner and modes of the made-up entries. */
  readonly modes: ViewModes;
}

/** The root of a datastore view: `<namespace path>/<type>/<id>/<time>/<archive>`, `latest` per group. */
export function datastoreRoot(ds: Datastore, ns: Namespace, inodes: InodeTable, options: DatastoreViewOptions): VNode {
  return namespaceNode(ds, ns, inodes, options);
}

function namespaceNode(ds: Datastore, ns: Namespace, inodes: InodeTable, options: DatastoreViewOptions): VNode {
  const key = `ns:${ns.path}`;
  return new DirNode(dirAttr(ns.path === '' ? 1 : inodes.of(key), 0, options.modes), async () => {
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
      m.set(
        type,
        async () => new DirNode(dirAttr(inodes.of(`${key}/${type}`), 0, options.modes), async () => new Map(list.map((g) => [g.id, async () => groupNode(g, inodes, options)]))),
      );
    }
    return m;
  });
}

function groupNode(group: BackupGroup, inodes: InodeTable, options: DatastoreViewOptions): VNode {
  const key = `g:${group.namespace}:${group.name}`;
  return new DirNode(dirAttr(inodes.of(key), 0, options.modes), async () => {
    const m = new Map<string, () => Promise<VNode | undefined>>();
    const snaps = await group.snapshots().catch((e: unknown) => {
      if (e instanceof CairnError && e.code === 'ERR_NOT_FOUND') return [];
      throw e;
    });
    for (const s of snaps) {
      const skey = `${key}/${s.time}`;
      m.set(s.time, async () => snapshotRoot(s, options.open(s), inodes, skey, inodes.of(skey), options.modes));
    }
    const newest = snaps.at(-1);
    if (newest !== undefined) {
      const target = newest.time;
      m.set('latest', async () => ({
        attr: {
          kind: 'symlink',
          perm: 0o777,
          uid: options.modes.uid,
          gid: options.modes.gid,
          size: Buffer.byteLength(target),
          mtimeMs: newest.epoch * 1000,
          nlink: 1,
          ino: inodes.of(`${key}/latest`),
          rdev: 0,
        },
        target,
      }));
    }
    return m;
  });
}

/**
 * Where things live inside a datastore (layer L4): the backend keys of its content, each built here
 * from validated names (FORMAT.md §8 has the whole scheme, the same on every backend), and the keys
 * of the host-local lock files below the datastore's local directory (never in a backend).
 *
 * ```
 * cairn.json                                   config (format version, uuid, defaults)
 * .chunks/<2 hex>/<64 hex>                     chunks (lib/store/chunk-store.ts)
 * .gc-status.json                              the last GC report
 * [ns/<a>/[ns/<b>/…]]<type>/<id>/              a backup group (owner, notes; .move-target while a move is unfinished)
 * …/<type>/<id>/<time>/                        a snapshot: manifest.blob, <name>.img.fidx, <name>.blob,
 *                                              <name>.tree.meta.didx + <name>.tree.payload.didx, .protected
 * ns/<a>/.namespace                            an empty namespace, on backends without directories only
 * ```
 * Host-local, in the local directory: `.locks/` (lock files, writer registrations, move journal;
 * lib/host) and `.catalog/`.
 */
import type { ArchiveKind, GroupId } from '../types.js';
import { lockFileName, LOCK_DIR } from '../host/locks.js';

/** The config file at the datastore root. */
export const CONFIG_FILE = 'cairn.json';
/** The manifest of a snapshot; a snapshot exists once this file does. */
export const MANIFEST_FILE = 'manifest.blob';
/** The protected marker of a snapshot. */
export const PROTECTED_FILE = '.protected';
/** Group owner file. */
export const OWNER_FILE = 'owner';
/** Group notes file. */
export const NOTES_FILE = 'notes';

/** Backend key of a namespace directory (`''` for the root). */
export function namespaceKey(parts: readonly string[]): string {
  return parts.map((p) => `ns/${p}`).join('/');
}

/** Backend key of a group directory. */
export function groupKey(nsParts: readonly string[], g: GroupId): string {
  const ns = namespaceKey(nsParts);
  return ns === '' ? `${g.type}/${g.id}` : `${ns}/${g.type}/${g.id}`;
}

/** Backend key of a snapshot directory. */
export function snapshotKey(nsParts: readonly string[], g: GroupId, time: string): string {
  return `${groupKey(nsParts, g)}/${time}`;
}

/** Backend key of an archive's file in a snapshot directory (images and blobs). */
export function archiveFileKey(snapKey: string, archive: string): string {
  return archive.endsWith('.img') ? `${snapKey}/${archive}.fidx` : `${snapKey}/${archive}`;
}

/**
 * The files an archive is stored in, as names inside its snapshot directory: an image's fixed
 * index (`<name>.fidx`), a tree's metadata and payload indexes (`<name>.meta.didx`,
 * `<name>.payload.didx`), a blob's own file (`<name>`). The names {@link archiveFileKey} and
 * {@link treeIndexKeys} put below a snapshot's key.
 */
export function archiveFileNames(archive: string, kind: ArchiveKind): string[] {
  if (kind === 'tree') return [`${archive}.meta.didx`, `${archive}.payload.didx`];
  return [archiveFileKey('', archive).slice(1)];
}

/** Backend keys of a tree archive's two dynamic indexes: metadata and payload streams. */
export function treeIndexKeys(snapKey: string, archive: string): { meta: string; payload: string } {
  return { meta: `${snapKey}/${archive}.meta.didx`, payload: `${snapKey}/${archive}.payload.didx` };
}

function nsId(nsParts: readonly string[]): string {
  return nsParts.join('+');
}

/** Lock file of a group. */
export function groupLockKey(nsParts: readonly string[], g: GroupId): string {
  return `${LOCK_DIR}/group/${lockFileName(`${nsId(nsParts)}~${g.type}~${g.id}`)}`;
}

/** Lock file of a snapshot. */
export function snapshotLockKey(nsParts: readonly string[], g: GroupId, time: string): string {
  return `${LOCK_DIR}/snapshot/${lockFileName(`${nsId(nsParts)}~${g.type}~${g.id}~${time}`)}`;
}

/** Lock file of a snapshot's manifest. */
export function manifestLockKey(nsParts: readonly string[], g: GroupId, time: string): string {
  return `${LOCK_DIR}/manifest/${lockFileName(`${nsId(nsParts)}~${g.type}~${g.id}~${time}`)}`;
}

/** In a group being moved: where to (JSON `{target, after}`), so an interrupted move can resume. */
export const MOVE_MARKER_FILE = '.move-target';

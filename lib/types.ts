/**
 * Names and identifiers, with their validation rules (layer L0).
 *
 * Every name that reaches the filesystem passes one of these checks first, so a path can never
 * escape the datastore: namespace components, backup ids and archive names are "safe ids"
 * (`[A-Za-z0-9_][A-Za-z0-9._-]*`), which excludes `/`, `..`, hidden names and empty names.
 */
import { CairnError } from './errors.js';

/**
 * The backup types of the PBS model.
 * @category Names and times
 */
export const BACKUP_TYPES = ['vm', 'ct', 'host'] as const;
/**
 * A backup type: `vm`, `ct` or `host`.
 * @category Names and times
 */
export type BackupType = (typeof BACKUP_TYPES)[number];

/**
 * Deepest namespace below the root (PBS's limit).
 * @category Names and times
 */
export const MAX_NAMESPACE_DEPTH = 7;
/**
 * Longest full namespace name, in characters.
 * @category Names and times
 */
export const MAX_NAMESPACE_LENGTH = 256;
/** Longest single name (namespace component, backup id, archive name). */
export const MAX_NAME_LENGTH = 128;

const SAFE_ID = /^[A-Za-z0-9_][A-Za-z0-9._-]*$/;
const TIME_RE = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})Z$/;

function safeId(s: string, what: string): boolean {
  if (typeof s !== 'string') throw new CairnError('ERR_INVALID_NAME', `${what} must be a string`);
  return s.length > 0 && s.length <= MAX_NAME_LENGTH && SAFE_ID.test(s);
}

/**
 * Validates a namespace path (`''` for the root, `a/b` for nested ones) and returns its components.
 * @throws `ERR_INVALID_NAME` for an unsafe component, more than 7 levels or more than 256 characters.
 * @category Names and times
 */
export function parseNamespace(ns: string): string[] {
  if (typeof ns !== 'string') throw new CairnError('ERR_INVALID_NAME', 'namespace must be a string');
  if (ns === '') return [];
  if (ns.length > MAX_NAMESPACE_LENGTH) {
    throw new CairnError('ERR_INVALID_NAME', `namespace '${ns.slice(0, 40)}…' is longer than ${MAX_NAMESPACE_LENGTH} characters`, { namespace: ns });
  }
  const parts = ns.split('/');
  if (parts.length > MAX_NAMESPACE_DEPTH) {
    throw new CairnError('ERR_INVALID_NAME', `namespace '${ns}' is deeper than ${MAX_NAMESPACE_DEPTH} levels`, { namespace: ns });
  }
  for (const p of parts) {
    if (!safeId(p, 'namespace')) {
      throw new CairnError('ERR_INVALID_NAME', `namespace '${ns}': component '${p}' must match [A-Za-z0-9_][A-Za-z0-9._-]*`, { namespace: ns });
    }
  }
  return parts;
}

/** True when `type` is one of `vm`, `ct`, `host`. */
export function isBackupType(type: string): type is BackupType {
  return (BACKUP_TYPES as readonly string[]).includes(type);
}

/**
 * A backup group: type and id.
 * @category Names and times
 */
export interface GroupId {
  /** `vm`, `ct` or `host`. */
  readonly type: BackupType;
  /** The id within the type, e.g. `100` or `web-1`. */
  readonly id: string;
}

/**
 * Parses `type/id` into a {@link GroupId}.
 * @throws `ERR_INVALID_NAME` when the type is unknown or the id is unsafe.
 * @category Names and times
 */
export function parseGroup(group: string): GroupId {
  if (typeof group !== 'string') throw new CairnError('ERR_INVALID_NAME', 'group must be a string');
  const slash = group.indexOf('/');
  const type = slash < 0 ? group : group.slice(0, slash);
  const id = slash < 0 ? '' : group.slice(slash + 1);
  if (!isBackupType(type)) {
    throw new CairnError('ERR_INVALID_NAME', `backup group '${group}': type must be vm, ct or host`, { group });
  }
  if (!safeId(id, 'backup id')) {
    throw new CairnError('ERR_INVALID_NAME', `backup group '${group}': id must match [A-Za-z0-9_][A-Za-z0-9._-]*`, { group });
  }
  return { type, id };
}

/** `type/id` of a group. */
export function formatGroup(g: GroupId): string {
  return `${g.type}/${g.id}`;
}

/**
 * Parses an RFC 3339 UTC time with second resolution (`2026-11-26T09:35:01Z`) into Unix seconds.
 * @throws `ERR_INVALID_ARGUMENT` for any other form or an impossible date.
 * @category Names and times
 */
export function parseSnapshotTime(time: string): number {
  const m = typeof time === 'string' ? TIME_RE.exec(time) : null;
  if (m === null) {
    throw new CairnError('ERR_INVALID_ARGUMENT', `snapshot time '${String(time)}' must be RFC 3339 UTC like 2026-11-26T09:35:01Z`);
  }
  const ms = Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!);
  const secs = ms / 1000;
  if (!Number.isFinite(secs) || formatSnapshotTime(secs) !== time) {
    throw new CairnError('ERR_INVALID_ARGUMENT', `snapshot time '${time}' is not a valid date`);
  }
  return secs;
}

/**
 * Formats Unix seconds as RFC 3339 UTC with second resolution.
 * @category Names and times
 */
export function formatSnapshotTime(secs: number): string {
  if (!Number.isInteger(secs) || secs < 0 || secs > 253402300799) {
    throw new CairnError('ERR_INVALID_ARGUMENT', `snapshot time ${secs} is out of range`);
  }
  return new Date(secs * 1000).toISOString().replace('.000Z', 'Z');
}

/**
 * The kinds of archive a snapshot holds.
 * @category Names and times
 */
export type ArchiveKind = 'image' | 'blob' | 'tree';

/** File-name suffix of each archive kind in a snapshot's archive name. */
export const ARCHIVE_SUFFIX: Readonly<Record<ArchiveKind, string>> = { image: '.img', blob: '.blob', tree: '.tree' };

/**
 * Validates an archive name and returns it with its kind's suffix (`disk` → `disk.img`).
 * @throws `ERR_INVALID_NAME` for unsafe names.
 */
export function archiveName(name: string, kind: ArchiveKind): string {
  const suffix = ARCHIVE_SUFFIX[kind];
  const full = name.endsWith(suffix) ? name : `${name}${suffix}`;
  if (!safeId(full, 'archive name') || full === suffix) {
    throw new CairnError('ERR_INVALID_NAME', `archive name '${name}' must match [A-Za-z0-9_][A-Za-z0-9._-]* (at most ${MAX_NAME_LENGTH} characters)`, { archive: name });
  }
  return full;
}

/** The kind of an archive from its name's suffix, or undefined. */
export function archiveKind(name: string): ArchiveKind | undefined {
  for (const [kind, suffix] of Object.entries(ARCHIVE_SUFFIX) as [ArchiveKind, string][]) {
    if (name.endsWith(suffix) && name.length > suffix.length) return kind;
  }
  return undefined;
}

/**
 * Sync levels: how hard writes are pushed to stable storage.
 * @category Names and times
 */
export type SyncLevel = 'none' | 'file' | 'filesystem';

/**
 * Every on-disk magic and format version (layer L1). **Frozen once shipped**: a test pins the exact
 * bytes. Change a layout only by adding a new version and keeping the old reader.
 *
 * Binary formats start with magic bytes followed by a version number; JSON formats carry
 * `format` and `version` properties instead. See `lib/format/FORMAT.md` for the layouts.
 */

/** Magic of the chunk/blob envelope (also wraps manifests): ASCII `CRNE`. */
export const ENVELOPE_MAGIC: readonly number[] = Object.freeze([0x43, 0x52, 0x4e, 0x45]);
/** Current (and highest readable) envelope version. */
export const ENVELOPE_VERSION = 1;

/** Magic of a fixed index (`.fidx`, images): ASCII `CAIRNFIX`. */
export const FIXED_INDEX_MAGIC: readonly number[] = Object.freeze([0x43, 0x41, 0x49, 0x52, 0x4e, 0x46, 0x49, 0x58]);
/** Current (and highest readable) fixed index version. */
export const FIXED_INDEX_VERSION = 1;

/** Magic of a dynamic index (`.didx`, content-defined streams): ASCII `CAIRNDIX`. */
export const DYNAMIC_INDEX_MAGIC: readonly number[] = Object.freeze([0x43, 0x41, 0x49, 0x52, 0x4e, 0x44, 0x49, 0x58]);
/** Current (and highest readable) dynamic index version. */
export const DYNAMIC_INDEX_VERSION = 1;

/** `format` property of a manifest (JSON inside an envelope). */
export const MANIFEST_FORMAT = 'cairn-manifest';
/** Current (and highest readable) manifest version. */
export const MANIFEST_VERSION = 1;

/** `format` property of the datastore config (`cairn.json`, plain JSON). */
export const CONFIG_FORMAT = 'cairn-datastore';
/** Current (and highest readable) datastore config version. */
export const CONFIG_VERSION = 1;

/** Codec ids of the envelope's `codec` byte. */
export const CODEC = Object.freeze({
  /** Stored as is. */
  none: 0,
  /** LZ4 block with a 4-byte little-endian size prefix (lz4_flex `compress_prepend_size`). */
  lz4: 1,
} as const);

/** A codec id: 0 (none) or 1 (lz4). */
export type CodecId = (typeof CODEC)[keyof typeof CODEC];

/** A fresh Uint8Array copy of a magic constant. */
export function magicBytes(magic: readonly number[]): Uint8Array {
  return Uint8Array.from(magic);
}

/** True when `bytes` holds `magic` at `offset` (false when too short). */
export function hasMagic(bytes: Uint8Array, magic: readonly number[], offset = 0): boolean {
  if (bytes.length < offset + magic.length) return false;
  for (let i = 0; i < magic.length; i++) if (bytes[offset + i] !== magic[i]) return false;
  return true;
}

/** Magic of a tree archive's metadata stream header: ASCII `CAIRNTRE`. */
export const TREE_STREAM_MAGIC: readonly number[] = Object.freeze([0x43, 0x41, 0x49, 0x52, 0x4e, 0x54, 0x52, 0x45]);
/** Magic of a directory record in a tree metadata stream: ASCII `CRD1`. */
export const TREE_DIR_MAGIC: readonly number[] = Object.freeze([0x43, 0x52, 0x44, 0x31]);
/** Magic of the root entry record in a tree metadata stream: ASCII `CRE1`. */
export const TREE_ROOT_MAGIC: readonly number[] = Object.freeze([0x43, 0x52, 0x45, 0x31]);
/** Magic of a tree metadata stream's trailer: ASCII `CAIRNEND`. */
export const TREE_TRAILER_MAGIC: readonly number[] = Object.freeze([0x43, 0x41, 0x49, 0x52, 0x4e, 0x45, 0x4e, 0x44]);
/** Current (and highest readable) tree metadata stream version (stream header and trailer). */
export const TREE_VERSION = 1;

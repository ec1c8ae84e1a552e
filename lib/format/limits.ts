/**
 * The largest size each kind of datastore file can have (layer L1), derived from the formats: the
 * readers pass them as `maxBytes`, so a file that is larger (a huge sparse file, a symlink to
 * `/dev/zero` that got past the other checks) fails at once with the file kind's corrupt code
 * instead of being read into memory.
 */
import { ENVELOPE_HEADER_SIZE, MAX_RAW_SIZE } from '../codec/envelope.js';
import { CONFIG_MAX_BYTES } from './config.js';
import { DYNAMIC_ENTRY_SIZE } from './dynamic-index.js';
import { FIXED_MIN_CHUNK_SIZE } from './fixed-index.js';
import { INDEX_HEADER_SIZE } from './index-header.js';
import { DIGEST_SIZE } from '../codec/hash.js';

/** Largest stored form of `rawSize` bytes in an envelope: header + the worst LZ4 expansion. */
export function envelopeMaxBytes(rawSize: number): number {
  return ENVELOPE_HEADER_SIZE + 4 + rawSize + Math.floor(rawSize / 255) + 16;
}

/** Largest chunk (or blob, or manifest) file: an envelope of {@link MAX_RAW_SIZE} bytes. */
export const ENVELOPE_MAX_BYTES = envelopeMaxBytes(MAX_RAW_SIZE);

/** Largest manifest file (an envelope). */
export const MANIFEST_MAX_BYTES = ENVELOPE_MAX_BYTES;

/** Largest config file. */
export const CONFIG_FILE_MAX_BYTES = CONFIG_MAX_BYTES;

/**
 * Largest dynamic index file when the stream size is unknown: 2 GiB − 1, the most Node's
 * `readFile` could ever read (so no index earlier versions wrote is refused), 53 million entries.
 */
export const DYNAMIC_INDEX_MAX_BYTES = 2 ** 31 - 1;

/** Largest fixed index of an image of `size` bytes (the smallest chunk size gives the most entries). */
export function fixedIndexMaxBytes(size: number): number {
  return INDEX_HEADER_SIZE + Math.ceil(Math.max(0, size) / FIXED_MIN_CHUNK_SIZE) * DIGEST_SIZE;
}

/** Largest dynamic index of a stream of `size` bytes (at most one entry per byte), capped. */
export function dynamicIndexMaxBytes(size: number | undefined): number {
  return size === undefined ? DYNAMIC_INDEX_MAX_BYTES : Math.min(DYNAMIC_INDEX_MAX_BYTES, INDEX_HEADER_SIZE + Math.max(1, size) * DYNAMIC_ENTRY_SIZE);
}

/** Largest small text file of a group or a move (owner, notes, move marker): 16 MiB. */
export const TEXT_FILE_MAX_BYTES = 16 * 1024 * 1024;

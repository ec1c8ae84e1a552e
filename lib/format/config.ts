/**
 * Datastore config (layer L1): human-readable JSON, stored as `cairn.json` at the datastore root.
 *
 * Encoded as 2-space indented JSON with a fixed key order and a trailing newline. Decoding is strict:
 * unknown properties are rejected (a newer writer must raise `version`), so an older Cairn never
 * silently ignores a setting it does not understand.
 */
import { CairnError, type ErrorCode, type ErrorDetails } from '../errors.js';
import type { SyncLevel } from '../types.js';
import { CONFIG_FORMAT, CONFIG_VERSION } from './magic.js';

/** Smallest image chunk size: 64 KiB. */
export const CONFIG_MIN_IMAGE_CHUNK_SIZE = 64 * 1024;
/** Largest image chunk size: 16 MiB. */
export const CONFIG_MAX_IMAGE_CHUNK_SIZE = 16 * 1024 * 1024;
/** Smallest allowed CDC minimum chunk size: 64 bytes. */
export const CONFIG_MIN_CDC_SIZE = 64;
/** Largest allowed CDC maximum chunk size: 16 MiB. */
export const CONFIG_MAX_CDC_SIZE = 16 * 1024 * 1024;
/** Largest config file accepted by {@link decodeConfig}: 64 KiB. */
export const CONFIG_MAX_BYTES = 64 * 1024;

import type { CdcParams } from '../codec/chunker.js';

/**
 * The datastore config.
 * @category Formats
 */
export interface DatastoreConfig {
  /** Always `'cairn-datastore'`. */
  format: 'cairn-datastore';
  /** Format version; 1. */
  version: 1;
  /** Datastore UUID, RFC 4122 text form (`xxxxxxxx-xxxx-Mxxx-Nxxx-xxxxxxxxxxxx`). */
  uuid: string;
  /** Creation time, RFC 3339 (e.g. `2026-01-02T03:04:05Z`, fractions and offsets allowed). */
  created: string;
  /** Chunk size for images: a power of two from 64 KiB to 16 MiB. */
  imageChunkSize: number;
  /** Chunking parameters for trees. */
  cdc: CdcParams;
  /** How hard writes are pushed to stable storage. */
  syncLevel: SyncLevel;
}

const UUID_RE = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[1-8][0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}$/;
const RFC3339_RE = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-](\d{2}):(\d{2}))$/;
const TOP_KEYS = new Set(['format', 'version', 'uuid', 'created', 'imageChunkSize', 'cdc', 'syncLevel']);
const CDC_KEYS = new Set(['min', 'avg', 'max']);
const SYNC_LEVELS: readonly string[] = ['none', 'file', 'filesystem'];
const NOT_CONFIG = 'not a Cairn datastore config or corrupt';

function isPowerOfTwo(n: number): boolean {
  return Number.isSafeInteger(n) && n > 0 && 2 ** Math.round(Math.log2(n)) === n;
}

/** True when `s` is an RFC 3339 date-time with valid field ranges. */
export function isRfc3339(s: unknown): s is string {
  if (typeof s !== 'string') return false;
  const m = RFC3339_RE.exec(s);
  if (m === null) return false;
  const [y, mo, d, h, mi, se] = [m[1], m[2], m[3], m[4], m[5], m[6]].map(Number) as [number, number, number, number, number, number];
  if (mo < 1 || mo > 12 || h > 23 || mi > 59 || se > 59) return false;
  // setUTCFullYear, not Date.UTC: Date.UTC maps years 0-99 to 1900-1999 (and 1900 is no leap year, 0 is).
  const last = new Date(0);
  last.setUTCFullYear(y, mo, 0);
  const dim = last.getUTCDate();
  if (d < 1 || d > dim) return false;
  if (m[9] !== undefined && (Number(m[9]) > 23 || Number(m[10]) > 59)) return false;
  return true;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function validate(value: unknown, code: ErrorCode, details: ErrorDetails, name: string): DatastoreConfig {
  const fail = (what: string): never => {
    throw new CairnError(code, code === 'ERR_CONFIG_CORRUPT' ? `${name} is corrupt: ${what}` : `${name}: ${what}`, details);
  };
  if (!isPlainObject(value) || value['format'] !== CONFIG_FORMAT) {
    throw new CairnError(code, `${name}: ${code === 'ERR_CONFIG_CORRUPT' ? NOT_CONFIG : `format must be "${CONFIG_FORMAT}"`}`, details);
  }
  const version = value['version'];
  if (typeof version !== 'number' || !Number.isInteger(version) || version < 1) fail(`version ${JSON.stringify(version)} is invalid`);
  if ((version as number) > CONFIG_VERSION) {
    throw new CairnError('ERR_FORMAT_VERSION', `${name}: version ${String(version)} is newer than this Cairn supports (${CONFIG_VERSION}); upgrade Cairn`, details);
  }
  for (const k of Object.keys(value)) if (!TOP_KEYS.has(k)) fail(`unknown property ${JSON.stringify(k)}`);
  if (typeof value['uuid'] !== 'string' || !UUID_RE.test(value['uuid'])) fail(`uuid ${JSON.stringify(value['uuid'])} is not an RFC 4122 UUID`);
  if (!isRfc3339(value['created'])) fail(`created ${JSON.stringify(value['created'])} is not an RFC 3339 time`);
  const ics = value['imageChunkSize'];
  if (typeof ics !== 'number' || !isPowerOfTwo(ics) || ics < CONFIG_MIN_IMAGE_CHUNK_SIZE || ics > CONFIG_MAX_IMAGE_CHUNK_SIZE) {
    fail(`imageChunkSize ${JSON.stringify(ics)} is not a power of two from 64 KiB to 16 MiB`);
  }
  const cdc = value['cdc'];
  if (!isPlainObject(cdc)) return fail('cdc must be an object {min, avg, max}');
  for (const k of Object.keys(cdc)) if (!CDC_KEYS.has(k)) fail(`cdc has unknown property ${JSON.stringify(k)}`);
  const { min, avg, max } = cdc;
  for (const [k, n] of [
    ['min', min],
    ['avg', avg],
    ['max', max],
  ] as const) {
    if (typeof n !== 'number' || !Number.isSafeInteger(n)) fail(`cdc.${k} ${JSON.stringify(n)} must be an integer`);
  }
  const [mn, av, mx] = [min, avg, max] as [number, number, number];
  if (mn < CONFIG_MIN_CDC_SIZE) fail(`cdc.min ${mn} is below ${CONFIG_MIN_CDC_SIZE}`);
  if (mx > CONFIG_MAX_CDC_SIZE) fail(`cdc.max ${mx} is above ${CONFIG_MAX_CDC_SIZE}`);
  if (!isPowerOfTwo(av)) fail(`cdc.avg ${av} is not a power of two`);
  if (!(mn <= av && av <= mx)) fail(`cdc must satisfy min ≤ avg ≤ max, got ${mn}, ${av}, ${mx}`);
  if (typeof value['syncLevel'] !== 'string' || !SYNC_LEVELS.includes(value['syncLevel'])) {
    fail(`syncLevel ${JSON.stringify(value['syncLevel'])} must be none, file or filesystem`);
  }
  return value as unknown as DatastoreConfig;
}

/**
 * Validates a config as {@link encodeConfig} would.
 * @throws `ERR_INVALID_ARGUMENT` naming the first invalid field.
 */
export function checkConfig(c: DatastoreConfig): DatastoreConfig {
  return validate(c, 'ERR_INVALID_ARGUMENT', {}, 'datastore config');
}

/**
 * Encodes the config as UTF-8 JSON, 2-space indented, keys in a fixed order, with a trailing newline.
 * @throws `ERR_INVALID_ARGUMENT` for an invalid config.
 */
export function encodeConfig(c: DatastoreConfig): Uint8Array {
  checkConfig(c);
  const ordered = {
    format: c.format,
    version: c.version,
    uuid: c.uuid,
    created: c.created,
    imageChunkSize: c.imageChunkSize,
    cdc: { min: c.cdc.min, avg: c.cdc.avg, max: c.cdc.max },
    syncLevel: c.syncLevel,
  };
  return new TextEncoder().encode(`${JSON.stringify(ordered, null, 2)}\n`);
}

/**
 * Decodes and validates a config file.
 * @param details - ids for the errors (datastore, path)
 * @throws `ERR_CONFIG_CORRUPT` ("not a Cairn datastore config or corrupt") for text that is not UTF-8
 *   JSON with `format: "cairn-datastore"`, and for any invalid field; `ERR_FORMAT_VERSION` for a
 *   newer `version`.
 */
export function decodeConfig(bytes: Uint8Array, details: ErrorDetails = {}): DatastoreConfig {
  const id = details.path ?? details.datastore;
  const prefix = id === undefined ? 'datastore config' : `datastore config ${id}`;
  const notConfig = (cause?: unknown): never => {
    throw new CairnError('ERR_CONFIG_CORRUPT', `${prefix}: ${NOT_CONFIG}`, details, cause);
  };
  if (bytes.length > CONFIG_MAX_BYTES) notConfig();
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (e) {
    return notConfig(e);
  }
  return validate(value, 'ERR_CONFIG_CORRUPT', details, prefix);
}

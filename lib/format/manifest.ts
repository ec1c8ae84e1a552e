/**
 * Snapshot manifest (layer L1): canonical JSON inside a chunk/blob envelope.
 *
 * The JSON is {@link canonicalJson}: object keys sorted, no whitespace, so equal manifests encode to
 * equal bytes and a signature over {@link manifestSignedPart} is reproducible. The `unprotected`
 * object (verify state, notes, stats) is outside the signed part and may change after the snapshot
 * is finished. BLAKE3 must be initialised in the calling thread (`initHash()`) only for callers that
 * hash; the functions here do not hash.
 */
import { CairnError, type ErrorCode, type ErrorDetails } from '../errors.js';
import { type ArchiveKind, type BackupType, isBackupType, parseNamespace, parseSnapshotTime } from '../types.js';
import { decodeManifestEnvelope, encodeManifestEnvelope } from '../codec/envelope.js';
import { isValidFixedChunkSize } from './fixed-index.js';
import { MANIFEST_FORMAT, MANIFEST_VERSION } from './magic.js';

/**
 * One archive of a snapshot, as listed in its manifest.
 * @category Formats
 */
export interface ManifestFile {
  /** Archive file name, `[A-Za-z0-9_][A-Za-z0-9._-]*`, at most 128 characters; unique in the manifest. */
  name: string;
  /** What the archive holds. */
  kind: ArchiveKind;
  /** Size of the archive's content in bytes (image size, blob size, tree stream size). */
  size: number;
  /** Lowercase hex BLAKE3 (64 digits): the index checksum for image/tree, the content digest for a blob. */
  checksum: string;
  /** Encryption mode; only `'none'` exists today. */
  crypt: 'none';
  /** Chunk size of an image's fixed index (only for `kind: 'image'`; a power of two, 4 KiB–16 MiB). */
  chunkSize?: number;
}

/**
 * Result of the last verification of a snapshot.
 * @category Formats
 */
export interface ManifestVerifyState {
  /** Outcome. */
  state: 'ok' | 'failed';
  /** When it ran, RFC 3339 UTC `YYYY-MM-DDTHH:MM:SSZ`. */
  time: string;
  /** Id of the verify run. */
  run: string;
}

/**
 * The part of a manifest outside the signature. Unknown keys (any JSON) are kept.
 * @category Formats
 */
export interface ManifestUnprotected {
  /** Last verification result. */
  verify?: ManifestVerifyState;
  /** Free-form notes. */
  notes?: string;
  /** Numeric statistics (finite numbers). */
  stats?: Record<string, number>;
  /** Anything else, as JSON. */
  [key: string]: unknown;
}

/**
 * A snapshot manifest.
 * @category Formats
 */
export interface Manifest {
  /** Always `'cairn-manifest'`. */
  format: 'cairn-manifest';
  /** Format version; 1. */
  version: 1;
  /** Namespace path, `''` for the root. */
  namespace: string;
  /** Backup type. */
  type: BackupType;
  /** Backup id. */
  id: string;
  /** Snapshot time, RFC 3339 UTC `YYYY-MM-DDTHH:MM:SSZ`. */
  time: string;
  /** The archives, sorted by name (code-unit order), names unique. */
  files: ManifestFile[];
  /** Data outside the signature. */
  unprotected: ManifestUnprotected;
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const p: unknown = Object.getPrototypeOf(v);
  return p === Object.prototype || p === null;
}

const MAX_DEPTH = 200;
/** Most values (scalars, arrays and objects; object keys not counted) a manifest's JSON may hold. */
const MAX_JSON_VALUES = 1 << 20;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const OPEN_ARRAY = 0x5b;
const OPEN_OBJECT = 0x7b;
const CLOSE_ARRAY = 0x5d;
const CLOSE_OBJECT = 0x7d;

/**
 * Checks the shape of JSON text before it is parsed, in one pass over the UTF-8 bytes (the
 * structural characters are ASCII, so they never occur inside a multi-byte sequence): arrays and
 * objects nested at most {@link MAX_DEPTH} deep, and at most {@link MAX_JSON_VALUES} values, counted
 * as the opening brackets plus the commas outside strings (an upper bound of the values). This
 * bounds what `JSON.parse` builds: without it a small LZ4-compressed manifest holding 64 MiB of `[`
 * takes gigabytes of heap.
 * @returns undefined when the shape is within the limits, else what is wrong
 */
function jsonShapeProblem(bytes: Uint8Array): string | undefined {
  let depth = 0;
  let values = 1;
  let inString = false;
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes[i]!;
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
    } else if (c === QUOTE) {
      inString = true;
    } else if (c === OPEN_ARRAY || c === OPEN_OBJECT) {
      if (++depth > MAX_DEPTH) return `JSON nested deeper than ${MAX_DEPTH} levels`;
      values++;
    } else if (c === CLOSE_ARRAY || c === CLOSE_OBJECT) {
      depth--;
    } else if (c === COMMA) {
      values++;
    }
    if (values > MAX_JSON_VALUES) return `JSON with more than ${MAX_JSON_VALUES} values`;
  }
  return undefined;
}

/**
 * Canonical JSON: object keys sorted by UTF-16 code units, no whitespace, strings and numbers as
 * `JSON.stringify` writes them (this matches RFC 8785 / JCS for the values Cairn stores).
 * Properties whose value is `undefined` are omitted, like `JSON.stringify` does.
 * @throws TypeError for values JSON cannot represent: non-finite numbers, bigint, functions,
 *   symbols, `undefined` (at the top or in an array), non-plain objects, nesting deeper than 200.
 */
export function canonicalJson(value: unknown): string {
  return canon(value, 0);
}

function canon(v: unknown, depth: number): string {
  if (depth > MAX_DEPTH) throw new TypeError('canonicalJson: nesting too deep (or a cycle)');
  if (v === null) return 'null';
  switch (typeof v) {
    case 'boolean':
      return v ? 'true' : 'false';
    case 'string':
      return JSON.stringify(v);
    case 'number':
      if (!Number.isFinite(v)) throw new TypeError(`canonicalJson: ${v} is not representable in JSON`);
      return JSON.stringify(v);
    case 'object': {
      if (Array.isArray(v)) {
        return `[${v
          .map((x: unknown) => {
            if (x === undefined) throw new TypeError('canonicalJson: undefined in an array');
            return canon(x, depth + 1);
          })
          .join(',')}]`;
      }
      if (!isPlainObject(v)) throw new TypeError('canonicalJson: only plain objects and arrays are allowed');
      const keys = Object.keys(v).sort();
      const parts: string[] = [];
      for (const k of keys) {
        const x = v[k];
        if (x === undefined) continue;
        parts.push(`${JSON.stringify(k)}:${canon(x, depth + 1)}`);
      }
      return `{${parts.join(',')}}`;
    }
    default:
      throw new TypeError(`canonicalJson: a ${typeof v} is not representable in JSON`);
  }
}

const SAFE_NAME = /^[A-Za-z0-9_][A-Za-z0-9._-]*$/;
const HEX64 = /^[0-9a-f]{64}$/;
const TOP_KEYS = new Set(['format', 'version', 'namespace', 'type', 'id', 'time', 'files', 'unprotected']);
const FILE_KEYS = new Set(['name', 'kind', 'size', 'checksum', 'crypt', 'chunkSize']);
const VERIFY_KEYS = new Set(['state', 'time', 'run']);
const KINDS: readonly string[] = ['image', 'blob', 'tree'];

function safeName(s: unknown): s is string {
  return typeof s === 'string' && s.length > 0 && s.length <= 128 && SAFE_NAME.test(s);
}

function isUtcTime(s: unknown): s is string {
  if (typeof s !== 'string') return false;
  try {
    parseSnapshotTime(s);
    return true;
  } catch {
    return false;
  }
}

function validate(value: unknown, code: ErrorCode, details: ErrorDetails, label: string): Manifest {
  const prefix = code === 'ERR_MANIFEST_CORRUPT' ? `${label} is corrupt` : label;
  const fail = (what: string): never => {
    throw new CairnError(code, `${prefix}: ${what}`, details);
  };
  if (!isPlainObject(value)) return fail('not a JSON object');
  if (value['format'] !== MANIFEST_FORMAT) return fail(`format is ${JSON.stringify(value['format'])}, expected "${MANIFEST_FORMAT}"`);
  const version = value['version'];
  if (typeof version !== 'number' || !Number.isInteger(version) || version < 1) fail(`version ${JSON.stringify(version)} is invalid`);
  if ((version as number) > MANIFEST_VERSION) {
    throw new CairnError('ERR_FORMAT_VERSION', `${label}: manifest version ${String(version)} is newer than this Cairn reads (${MANIFEST_VERSION})`, details);
  }
  for (const k of Object.keys(value)) if (!TOP_KEYS.has(k)) fail(`unknown property ${JSON.stringify(k)}`);
  const ns = value['namespace'];
  if (typeof ns !== 'string') return fail('namespace must be a string');
  try {
    parseNamespace(ns);
  } catch {
    fail(`namespace ${JSON.stringify(ns)} is invalid`);
  }
  const type = value['type'];
  if (typeof type !== 'string' || !isBackupType(type)) fail(`type ${JSON.stringify(type)} must be vm, ct or host`);
  if (!safeName(value['id'])) fail(`backup id ${JSON.stringify(value['id'])} is invalid`);
  if (!isUtcTime(value['time'])) fail(`time ${JSON.stringify(value['time'])} must be RFC 3339 UTC like 2026-01-02T03:04:05Z`);
  const files = value['files'];
  if (!Array.isArray(files)) return fail('files must be an array');
  let prev: string | undefined;
  files.forEach((f: unknown, i: number) => {
    if (!isPlainObject(f)) return fail(`files[${i}] is not an object`);
    for (const k of Object.keys(f)) if (!FILE_KEYS.has(k)) fail(`files[${i}] has unknown property ${JSON.stringify(k)}`);
    const name = f['name'];
    if (!safeName(name)) return fail(`files[${i}].name ${JSON.stringify(name)} is invalid`);
    if (prev !== undefined && !(prev < name)) fail(`files[${i}].name "${name}" is not sorted after "${prev}" (names must be unique and sorted)`);
    prev = name;
    if (typeof f['kind'] !== 'string' || !KINDS.includes(f['kind'])) fail(`files[${i}].kind ${JSON.stringify(f['kind'])} must be image, blob or tree`);
    const size = f['size'];
    if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) fail(`files[${i}].size ${JSON.stringify(size)} is invalid`);
    if (typeof f['checksum'] !== 'string' || !HEX64.test(f['checksum'])) fail(`files[${i}].checksum must be 64 lowercase hex digits`);
    if (f['crypt'] !== 'none') fail(`files[${i}].crypt ${JSON.stringify(f['crypt'])} must be "none"`);
    if ('chunkSize' in f) {
      if (f['kind'] !== 'image') fail(`files[${i}].chunkSize is only allowed for images`);
      const cs = f['chunkSize'];
      if (typeof cs !== 'number' || !isValidFixedChunkSize(cs)) fail(`files[${i}].chunkSize ${JSON.stringify(cs)} is not a power of two from 4 KiB to 16 MiB`);
    }
    return undefined;
  });
  const u = value['unprotected'];
  if (!isPlainObject(u)) return fail('unprotected must be an object');
  if ('verify' in u) {
    const vs = u['verify'];
    if (!isPlainObject(vs)) return fail('unprotected.verify must be an object');
    for (const k of Object.keys(vs)) if (!VERIFY_KEYS.has(k)) fail(`unprotected.verify has unknown property ${JSON.stringify(k)}`);
    if (vs['state'] !== 'ok' && vs['state'] !== 'failed') fail('unprotected.verify.state must be "ok" or "failed"');
    if (!isUtcTime(vs['time'])) fail('unprotected.verify.time must be RFC 3339 UTC');
    if (typeof vs['run'] !== 'string') fail('unprotected.verify.run must be a string');
  }
  if ('notes' in u && typeof u['notes'] !== 'string') fail('unprotected.notes must be a string');
  if ('stats' in u) {
    const st = u['stats'];
    if (!isPlainObject(st)) return fail('unprotected.stats must be an object');
    for (const [k, n] of Object.entries(st)) {
      if (typeof n !== 'number' || !Number.isFinite(n)) fail(`unprotected.stats.${k} must be a finite number`);
    }
  }
  return value as unknown as Manifest;
}

function label(details: ErrorDetails): string {
  const id = details.snapshot ?? details.path;
  return id === undefined ? 'manifest' : `manifest ${id}`;
}

/** A copy of `m` with `files` sorted by name (the order the format requires). */
function normalized(m: Manifest): Manifest {
  if (!isPlainObject(m) || !Array.isArray(m.files)) return m;
  const files = [...m.files].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { ...m, files };
}

/**
 * Validates `m` as {@link encodeManifest} would, returning a copy with `files` sorted by name.
 * @throws `ERR_INVALID_ARGUMENT` naming the first invalid field.
 */
export function checkManifest(m: Manifest): Manifest {
  return validate(normalized(m), 'ERR_INVALID_ARGUMENT', {}, 'manifest');
}

/**
 * The signed part of a manifest: {@link canonicalJson} of everything except `unprotected`
 * (files sorted by name first).
 * @throws `ERR_INVALID_ARGUMENT` for an invalid manifest.
 */
export function manifestSignedPart(m: Manifest): string {
  const { unprotected: _unprotected, ...rest } = checkManifest(m);
  return canonicalJson(rest);
}

/**
 * Encodes a manifest: canonical JSON (UTF-8) in an envelope, LZ4-compressed when that is smaller.
 * `files` are sorted by name first; everything else must already be valid.
 * @throws `ERR_INVALID_ARGUMENT` for an invalid manifest (or one over 64 MiB of JSON, nested deeper
 *   than 200 levels, or holding more than 2^20 values: limits a reader enforces).
 */
export function encodeManifest(m: Manifest): Uint8Array {
  let json: string;
  try {
    json = canonicalJson(checkManifest(m));
  } catch (e) {
    if (e instanceof TypeError) throw new CairnError('ERR_INVALID_ARGUMENT', `manifest: ${e.message}`, {}, e);
    throw e;
  }
  const raw = new TextEncoder().encode(json);
  const shape = jsonShapeProblem(raw);
  if (shape !== undefined) throw new CairnError('ERR_INVALID_ARGUMENT', `manifest: ${shape} (a reader would reject it)`);
  return encodeManifestEnvelope(raw);
}

/**
 * Decodes and validates a manifest file.
 * @param details - ids for the errors (snapshot, path, ...)
 * @throws `ERR_FORMAT_VERSION` for a newer envelope or manifest version; `ERR_MANIFEST_CORRUPT` for a
 *   damaged envelope, bad LZ4 data, JSON nested deeper than 200 levels or holding more than 2^20
 *   values (checked before parsing), invalid UTF-8 or JSON, any schema violation, or a value that
 *   canonical JSON cannot write back (a number out of double range).
 */
export function decodeManifest(bytes: Uint8Array, details: ErrorDetails = {}): Manifest {
  const raw = decodeManifestEnvelope(bytes, { details, subject: label(details) });
  const fail = (what: string, cause?: unknown): never => {
    throw new CairnError('ERR_MANIFEST_CORRUPT', `${label(details)} is corrupt: ${what}`, details, cause);
  };
  const shape = jsonShapeProblem(raw);
  if (shape !== undefined) fail(shape);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(raw);
  } catch (e) {
    return fail('not valid UTF-8', e);
  }
  let value: Json;
  try {
    value = JSON.parse(text) as Json;
  } catch (e) {
    return fail(`not valid JSON: ${e instanceof Error ? e.message : String(e)}`, e);
  }
  const manifest = validate(value, 'ERR_MANIFEST_CORRUPT', details, label(details));
  // What is read must be writable again (a verify or notes update rewrites the manifest): JSON
  // numbers out of double range parse as ±Infinity, which canonical JSON cannot write.
  try {
    canonicalJson(manifest);
  } catch (e) {
    return fail(e instanceof Error ? e.message : String(e), e);
  }
  return manifest;
}

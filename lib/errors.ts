/**
 * Errors with stable codes (layer L0).
 *
 * Every error Cairn raises on purpose is a {@link CairnError}: it has a stable `code` that scripts
 * may match on, a human message that names the ids involved, and `details` holding those ids
 * (datastore, namespace, snapshot, archive, digest, path). Errors cross the worker boundary as
 * plain JSON ({@link CairnError.toJSON} / {@link errorFromJSON}) and arrive with the same class,
 * code and details.
 *
 * Programmer errors (a wrong type passed to an internal function) stay plain `TypeError`s.
 */

/**
 * The closed set of error codes. Codes are a contract: never rename one, only add.
 * @category Errors
 */
export const ERROR_CODES = [
  'ERR_INVALID_ARGUMENT',
  'ERR_INVALID_NAME',
  'ERR_NOT_A_DATASTORE',
  'ERR_DATASTORE_EXISTS',
  'ERR_NESTED_DATASTORE',
  'ERR_FORMAT_VERSION',
  'ERR_CONFIG_CORRUPT',
  'ERR_NOT_FOUND',
  'ERR_EXISTS',
  'ERR_NOT_EMPTY',
  'ERR_LOCKED',
  'ERR_NOT_OPEN',
  'ERR_ABORTED',
  'ERR_TIME_ORDER',
  'ERR_CHUNK_CORRUPT',
  'ERR_CHUNK_MISSING',
  'ERR_INDEX_CORRUPT',
  'ERR_MANIFEST_CORRUPT',
  'ERR_BLOB_CORRUPT',
  'ERR_TREE_CORRUPT',
  'ERR_UNSAFE_PATH',
  'ERR_CHANGED_MAP',
  'ERR_WRITER_STATE',
  'ERR_PROTECTED',
  'ERR_NATIVE',
  'ERR_IO',
  'ERR_UNSUPPORTED',
  'ERR_CONFLICT',
  'ERR_READ_ONLY',
] as const;

/**
 * A stable error code.
 * @category Errors
 */
export type ErrorCode = (typeof ERROR_CODES)[number];

/**
 * The ids an error may carry. All optional; only the ones that apply are set.
 * @category Errors
 */
export interface ErrorDetails {
  /** Datastore root path. */
  readonly datastore?: string;
  /** Namespace path (`a/b`), empty string for the root namespace. */
  readonly namespace?: string;
  /** Backup group `type/id`. */
  readonly group?: string;
  /** Snapshot `type/id/time`. */
  readonly snapshot?: string;
  /** Archive name within a snapshot. */
  readonly archive?: string;
  /** Chunk digest in lowercase hex. */
  readonly digest?: string;
  /** A filesystem path. */
  readonly path?: string;
  /** The OS error code (`ENOENT`, `ENOSPC`, ...) when the error came from a system call. */
  readonly syscallCode?: string;
  /** True on an `ERR_IO` that the same call may not meet again if repeated (a timeout, a busy resource). */
  readonly retryable?: boolean;
  /** Anything else worth reporting, as plain JSON values. */
  readonly [key: string]: string | number | boolean | undefined;
}

const BRAND = Symbol.for('cairn.error');

/**
 * The JSON form of a {@link CairnError}, used across worker threads and by `--json` output.
 * @category Errors
 */
export interface CairnErrorJSON {
  /** Always `'CairnError'`. */
  readonly name: 'CairnError';
  /** The stable code. */
  readonly code: ErrorCode;
  /** The human message. */
  readonly message: string;
  /** The ids involved. */
  readonly details: ErrorDetails;
  /** The cause's message, when there was one. */
  readonly cause?: string;
}

/**
 * The one error class Cairn throws on purpose.
 *
 * @example
 * ```ts
 * try { await Datastore.open('/nope') }
 * catch (e) { if (isCairnError(e, 'ERR_NOT_A_DATASTORE')) console.error(e.message) }
 * ```
 * @category Errors
 */
export class CairnError extends Error {
  /** The stable code. */
  readonly code: ErrorCode;
  /** The ids involved. */
  readonly details: ErrorDetails;

  /**
   * @param code - the stable code
   * @param message - a one-line message that names the ids involved
   * @param details - the ids involved
   * @param cause - the underlying error, if any
   */
  constructor(code: ErrorCode, message: string, details: ErrorDetails = {}, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.code = code;
    this.details = details;
  }

  /** `CairnError`, also for copies of the class from another package instance. */
  override get name(): string {
    return 'CairnError';
  }

  /** The JSON form (see {@link errorFromJSON}). */
  toJSON(): CairnErrorJSON {
    const out: { -readonly [K in keyof CairnErrorJSON]: CairnErrorJSON[K] } = {
      name: 'CairnError',
      code: this.code,
      message: this.message,
      details: this.details,
    };
    if (this.cause !== undefined) out.cause = this.cause instanceof Error ? this.cause.message : String(this.cause);
    return out;
  }

  /** `instanceof` works across copies of this package (the class is branded with `Symbol.for`). */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
  }
}

Object.defineProperty(CairnError.prototype, BRAND, { value: true });

/**
 * True when `e` is a {@link CairnError}, optionally with the given code.
 * @category Errors
 */
export function isCairnError(e: unknown, code?: ErrorCode): e is CairnError {
  return e instanceof CairnError && (code === undefined || e.code === code);
}

/**
 * Rebuilds a {@link CairnError} from its JSON form. Unknown input becomes `ERR_IO` with its text.
 * @category Errors
 */
export function errorFromJSON(json: unknown): CairnError {
  if (typeof json === 'object' && json !== null) {
    const j = json as Partial<CairnErrorJSON>;
    if (j.name === 'CairnError' && typeof j.code === 'string' && (ERROR_CODES as readonly string[]).includes(j.code)) {
      return new CairnError(j.code, String(j.message ?? ''), j.details ?? {}, j.cause === undefined ? undefined : new Error(j.cause));
    }
  }
  return new CairnError('ERR_IO', `unexpected error: ${String((json as { message?: unknown })?.message ?? json)}`);
}

/** The OS error code of a Node system error (`ENOENT`, ...), or undefined. */
export function syscallCode(e: unknown): string | undefined {
  const c = (e as { code?: unknown } | null)?.code;
  return typeof c === 'string' && /^E[A-Z0-9]+$/.test(c) ? c : undefined;
}

/**
 * Wraps an error from a system call in an `ERR_IO` {@link CairnError} that names the path and the
 * OS code; a CairnError passes through unchanged.
 */
export function ioError(e: unknown, what: string, details: ErrorDetails = {}): CairnError {
  if (e instanceof CairnError) return e;
  const code = syscallCode(e);
  const msg = e instanceof Error ? e.message : String(e);
  const extra: ErrorDetails = code === undefined ? details : RETRYABLE_CODES.has(code) ? { ...details, syscallCode: code, retryable: true } : { ...details, syscallCode: code };
  return new CairnError('ERR_IO', `${what}: ${msg}`, extra, e);
}

/** OS codes of failures that a repeated call may not meet again. */
const RETRYABLE_CODES = new Set(['EAGAIN', 'EBUSY', 'EINTR', 'ETIMEDOUT', 'ECONNRESET', 'ECONNREFUSED', 'EPIPE']);

/**
 * True when `e` is an `ERR_IO` marked retryable (`details.retryable`): the same call may succeed
 * if repeated.
 * @category Errors
 */
export function isRetryable(e: unknown): boolean {
  return isCairnError(e, 'ERR_IO') && e.details.retryable === true;
}

/** Throws `ERR_ABORTED` when the signal is aborted. */
export function throwIfAborted(signal: AbortSignal | undefined, details: ErrorDetails = {}): void {
  if (signal?.aborted === true) throw abortError(signal, details);
}

/** The `ERR_ABORTED` error for an aborted signal. */
export function abortError(signal: AbortSignal | undefined, details: ErrorDetails = {}): CairnError {
  const reason: unknown = signal?.reason;
  return new CairnError('ERR_ABORTED', 'operation aborted', details, reason);
}

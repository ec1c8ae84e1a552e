/**
 * Exit codes of the `cairn` command line: 0 success, 1 other error, 2 usage or invalid input,
 * 3 not found, 4 locked or in use, 5 corrupt data, 6 I/O error.
 */
import { CommanderError } from 'commander';
import { isCairnError, type ErrorCode } from '../index.js';

/** Exit code of each error code; codes not listed exit 1. */
export const EXIT: Partial<Record<ErrorCode, number>> = {
  ERR_INVALID_ARGUMENT: 2,
  ERR_INVALID_NAME: 2,
  ERR_CHANGED_MAP: 2,
  ERR_TIME_ORDER: 2,
  ERR_DATASTORE_EXISTS: 2,
  ERR_NESTED_DATASTORE: 2,
  ERR_EXISTS: 2,
  ERR_CONFLICT: 2,
  ERR_NOT_EMPTY: 2,
  ERR_NOT_FOUND: 3,
  ERR_NOT_A_DATASTORE: 3,
  ERR_LOCKED: 4,
  ERR_PROTECTED: 4,
  ERR_CHUNK_CORRUPT: 5,
  ERR_CHUNK_MISSING: 5,
  ERR_INDEX_CORRUPT: 5,
  ERR_MANIFEST_CORRUPT: 5,
  ERR_BLOB_CORRUPT: 5,
  ERR_TREE_CORRUPT: 5,
  ERR_UNSAFE_PATH: 5,
  ERR_CONFIG_CORRUPT: 5,
  ERR_FORMAT_VERSION: 5,
  ERR_IO: 6,
  ERR_READ_ONLY: 6,
};

/** Exit code of an error. */
export function exitCodeOf(e: unknown): number {
  if (e instanceof CommanderError) return 2;
  if (isCairnError(e)) return EXIT[e.code] ?? 1;
  return 1;
}

/**
 * Test helper: the error code a call throws ('none' when it returns, 'other' for a non-Cairn error).
 */
import { isCairnError, type ErrorCode } from '../../lib/errors.js';

/** Runs `fn` and reports how it ended. */
export function code(fn: () => unknown): ErrorCode | 'none' | 'other' {
  try {
    fn();
    return 'none';
  } catch (e) {
    return isCairnError(e) ? e.code : 'other';
  }
}

/**
 * How a mount shows names that are not valid UTF-8 (layer L6). fuse-native hands every path to
 * JavaScript as a string decoded from UTF-8 (invalid bytes become U+FFFD) and encodes every name it
 * is given back as UTF-8, so raw bytes cannot cross it. A name (a file name, a symlink target, an
 * extended attribute name) is therefore shown through a reversible escape:
 *
 * - a valid UTF-8 sequence shows as itself, except the 256 code points U+F700..U+F7FF (the escape
 *   range, in the Private Use Area);
 * - every byte `b` that is not part of a valid UTF-8 sequence, a NUL byte, and every byte of a real
 *   U+F700..U+F7FF in the name shows as the code point U+F700 + `b` (so byte 0xFF shows as U+F7FF).
 *
 * {@link showName} is injective and {@link nameBytes} inverts it, so every entry has exactly one
 * shown name and no two entries share one; a shown name that {@link showName} cannot produce (an
 * escaped byte that would have been valid) names nothing.
 */

/** First code point of the escape range; byte `b` escapes to `ESCAPE_BASE + b`. */
export const ESCAPE_BASE = 0xf700;

/** Length of the valid UTF-8 sequence at `i` (1..4), or 0 when the byte there starts none. */
function sequenceAt(b: Uint8Array, i: number): number {
  const c = b[i]!;
  if (c < 0x80) return c === 0 ? 0 : 1;
  const cont = (j: number, lo = 0x80, hi = 0xbf): boolean => i + j < b.length && b[i + j]! >= lo && b[i + j]! <= hi;
  if (c >= 0xc2 && c <= 0xdf) return cont(1) ? 2 : 0;
  if (c === 0xe0) return cont(1, 0xa0) && cont(2) ? 3 : 0;
  if ((c >= 0xe1 && c <= 0xec) || c === 0xee || c === 0xef) return cont(1) && cont(2) ? 3 : 0;
  if (c === 0xed) return cont(1, 0x80, 0x9f) && cont(2) ? 3 : 0; // no surrogates
  if (c === 0xf0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (c >= 0xf1 && c <= 0xf3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (c === 0xf4) return cont(1, 0x80, 0x8f) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}

/** The name a mount shows for raw name bytes (see the module comment). */
export function showName(bytes: Uint8Array): string {
  let out = '';
  let plainFrom = 0;
  const flush = (to: number): void => {
    if (to > plainFrom) out += Buffer.from(bytes.buffer, bytes.byteOffset + plainFrom, to - plainFrom).toString('utf8');
  };
  for (let i = 0; i < bytes.length;) {
    const n = sequenceAt(bytes, i);
    // U+F700..U+F7FF is EF 9C 80 .. EF 9F BF.
    const inEscapeRange = n === 3 && bytes[i] === 0xef && bytes[i + 1]! >= 0x9c && bytes[i + 1]! <= 0x9f;
    if (n > 0 && !inEscapeRange) {
      i += n;
      continue;
    }
    flush(i);
    const k = n === 0 ? 1 : n;
    for (let j = 0; j < k; j++) out += String.fromCharCode(ESCAPE_BASE + bytes[i + j]!);
    i += k;
    plainFrom = i;
  }
  flush(bytes.length);
  return out;
}

/** The raw bytes of a shown name: the inverse of {@link showName}. */
export function nameBytes(shown: string): Buffer {
  const parts: Buffer[] = [];
  let plainFrom = 0;
  for (let i = 0; i < shown.length; i++) {
    const c = shown.charCodeAt(i);
    if (c >= ESCAPE_BASE && c <= ESCAPE_BASE + 0xff) {
      if (i > plainFrom) parts.push(Buffer.from(shown.slice(plainFrom, i), 'utf8'));
      parts.push(Buffer.of(c - ESCAPE_BASE));
      plainFrom = i + 1;
    }
  }
  if (plainFrom < shown.length) parts.push(Buffer.from(shown.slice(plainFrom), 'utf8'));
  return Buffer.concat(parts);
}

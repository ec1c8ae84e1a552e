// How a mount shows names that are not UTF-8 (lib/fuse/names.ts): a bijection between byte names
// and shown names, valid names unchanged, every shown name valid UTF-8 (it must cross fuse-native,
// which encodes strings as UTF-8). The mount itself is tested in test/hardening/fuse-abuse.test.ts.
import t from 'tap';
import { ESCAPE_BASE, nameBytes, showName } from '../../lib/fuse/names.js';

const esc = (b: number): string => String.fromCharCode(ESCAPE_BASE + b);

t.test('fixed cases', async (t) => {
  const cases: [number[] | string, string][] = [
    ['plain', 'plain'],
    ['é', 'é'],
    ['a\u{FFFD}', 'a\u{FFFD}'],
    ['\u{1F600} emoji', '\u{1F600} emoji'],
    [[0x61, 0xff], `a${esc(0xff)}`],
    [[0x61, 0xff, 0xfe], `a${esc(0xff)}${esc(0xfe)}`],
    [[0xc3], esc(0xc3)], // truncated two-byte sequence
    [[0xc0, 0xaf], `${esc(0xc0)}${esc(0xaf)}`], // overlong
    [[0xed, 0xa0, 0x80], `${esc(0xed)}${esc(0xa0)}${esc(0x80)}`], // a surrogate
    [[0xf4, 0x90, 0x80, 0x80], `${esc(0xf4)}${esc(0x90)}${esc(0x80)}${esc(0x80)}`], // above U+10FFFF
    [[0x61, 0x00, 0x62], `a${esc(0)}b`], // NUL cannot cross a C string
    ['a\u{F7FF}', `a${esc(0xef)}${esc(0x9f)}${esc(0xbf)}`], // a real escape code point
    ['\u{F700}', `${esc(0xef)}${esc(0x9c)}${esc(0x80)}`],
    ['\u{F6FF}\u{F800}', '\u{F6FF}\u{F800}'], // just outside the range
  ];
  for (const [input, shown] of cases) {
    const bytes = typeof input === 'string' ? Buffer.from(input) : Buffer.from(input);
    t.equal(showName(bytes), shown, `${bytes.toString('hex')} shows as expected`);
    t.same(nameBytes(shown), bytes, `${bytes.toString('hex')} round-trips`);
  }
});

t.test('random names: round trip, injective, valid UTF-8, valid names unchanged', async (t) => {
  let x = 0x9e3779b9;
  const rnd = (n: number): number => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x % n;
  };
  const seen = new Map<string, string>();
  let bad = 0;
  for (let i = 0; i < 20_000; i++) {
    const len = 1 + rnd(12);
    // Biased towards bytes that form (or almost form) multi-byte sequences and escape code points.
    const pool = [0x61, 0x2e, 0x80, 0x9c, 0x9f, 0xbf, 0xc3, 0xa9, 0xef, 0xed, 0xf0, 0xf4, 0x8f, 0xff, 0x00];
    const bytes = Buffer.from(Array.from({ length: len }, () => (rnd(3) === 0 ? rnd(256) : pool[rnd(pool.length)]!)));
    const shown = showName(bytes);
    if (!nameBytes(shown).equals(bytes)) bad++;
    if (Buffer.from(shown, 'utf8').toString('utf8') !== shown) bad++; // no lone surrogates
    if (shown.includes('\0') || shown.includes('\u{FFFD}') !== bytes.includes(Buffer.from('\u{FFFD}'))) bad++;
    const strict = new TextDecoder('utf-8', { fatal: true });
    let valid: string | undefined;
    try {
      valid = strict.decode(bytes);
    } catch {
      valid = undefined;
    }
    if (valid !== undefined && !/[\u{F700}-\u{F7FF}\0]/u.test(valid) && shown !== valid) bad++;
    const hex = bytes.toString('hex');
    const other = seen.get(shown);
    if (other !== undefined && other !== hex) bad++;
    seen.set(shown, hex);
  }
  t.equal(bad, 0, 'no name breaks a property');
});

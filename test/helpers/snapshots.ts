/**
 * Test helpers over snapshots.
 */
import type { Snapshot } from '../../lib/index.js';
import { toHex } from '../../lib/util/bytes.js';

/** The hex digests of a snapshot's image archive (`disk.img` unless named). */
export async function imageDigests(snap: Snapshot, archive = 'disk.img'): Promise<Set<string>> {
  const r = await snap.open();
  try {
    const idx = await r.imageIndex(archive);
    const out = new Set<string>();
    for (let i = 0; i < idx.count; i++) out.add(toHex(idx.digestAt(i)));
    return out;
  } finally {
    await r.close();
  }
}

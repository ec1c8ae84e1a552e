// One process makes N snapshots of one group (a 1 MiB image with one changed chunk and a blob each)
// and prints the mean ms per snapshot of the first and the last 50 (issue 12: the work of a backup
// grew with the snapshots of its group).
//   node bench/long-lived.js [N=1000] [dist dir=dist]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const n = Number(process.argv[2] ?? 1000);
const dist = path.resolve(process.argv[3] ?? 'dist');
const { Datastore } = await import(pathToFileURL(path.join(dist, 'index.js')).href);
const dir = mkdtempSync(path.join(tmpdir(), 'cairn-long-lived-'));
try {
  const ds = await Datastore.create(path.join(dir, 'store'), { syncLevel: 'none', imageChunkSize: 64 * 1024 });
  const image = new Uint8Array(1024 * 1024);
  for (let i = 0; i < image.length; i++) image[i] = (i * 7919) & 255;
  const ms = [];
  for (let i = 1; i <= n; i++) {
    image[(i * 65536) % image.length] ^= i & 255;
    const t0 = performance.now();
    const w = await ds.group('vm/1').backup({ time: 1_000_000 + i });
    await w.addImage(
      'disk',
      (async function* () {
        yield image.slice();
      })(),
    );
    await w.addBlob('conf', `n=${i}`);
    await w.commit();
    ms.push(performance.now() - t0);
  }
  await ds.close();
  const mean = (a) => a.reduce((x, y) => x + y, 0) / a.length;
  const first = mean(ms.slice(0, 50));
  const last = mean(ms.slice(-50));
  console.log(JSON.stringify({ snapshots: n, firstMs: Math.round(first * 10) / 10, lastMs: Math.round(last * 10) / 10 }));
} finally {
  rmSync(dir, { recursive: true, force: true });
}

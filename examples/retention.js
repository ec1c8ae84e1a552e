// Apply a retention policy and collect garbage: ten daily backups of a small image, a dry run of
// keep-last 2 + keep-daily 3 + keep-weekly 2, the real prune, then a garbage collection that frees
// the space at once (no 24-hour wait).
//
//   node examples/retention.js
//
// The datastore is $CAIRN_STORE or ./cairn-store (created when missing). Only a group created for
// this run (in the namespace `examples`) is pruned.
import { randomBytes } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Datastore, GarbageCollector, Pruner } from 'cairn';

const STORE = path.resolve(process.env.CAIRN_STORE ?? 'cairn-store');
const DAY = 86_400;

const ds = await Datastore.openOrCreate(STORE);
try {
  if (!(await ds.namespace('examples').exists())) await ds.createNamespace('examples');
  const group = ds.group(`vm/retention-${Date.now()}`, { namespace: 'examples' });
  const work = await mkdtemp(path.join(os.tmpdir(), 'cairn-retention-'));
  const image = path.join(work, 'disk.img');
  const now = Math.floor(Date.now() / 1000);
  for (let day = 9; day >= 0; day--) {
    // Each day's image has new content, so every backup stores new chunks.
    await writeFile(image, randomBytes(2 * 1024 * 1024));
    const w = await group.backup({ time: now - day * DAY });
    await w.addImage('disk', image);
    await w.commit();
  }
  console.log(`${(await group.snapshots()).length} snapshots in ${group.name}`);

  const pruner = new Pruner(ds);
  const plan = await pruner.plan({ namespace: 'examples', group: group.name }, { keepLast: 2, keepDaily: 3, keepWeekly: 2, timeZone: 'UTC' });
  for (const e of plan.entries) console.log(`  ${e.time} ${e.mark}`);
  const dry = await pruner.apply(plan, { dryRun: true });
  console.log(`dry run: would remove ${dry.totals.remove} of ${dry.totals.snapshots}`);
  const done = await pruner.apply(plan);
  console.log(`pruned: removed ${done.totals.removed}, kept ${(await group.snapshots()).length}`);

  // The default skew is measured for the datastore's filesystem (about 0.1 s on a local one), so
  // the chunks the prune just released are removed now, not a minute later.
  const gc = await new GarbageCollector(ds).run();
  console.log(`garbage collection: removed ${gc.removedChunks} chunks (${(gc.removedBytes / 1048576).toFixed(1)} MiB), kept ${gc.diskChunks}, ${gc.pendingChunks} pending`);
  console.log(`  ${gc.skew.summary}`);
  if (done.totals.removed === 0 || gc.removedChunks === 0) process.exitCode = 1;
} finally {
  await ds.close();
}

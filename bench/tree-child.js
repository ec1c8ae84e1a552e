/**
 * One Cairn tree-archive step in a process of its own, so that its peak RSS is its own.
 *
 *   node bench/tree-child.js '<json>'
 *
 * Scenarios:
 * - `backup`: `{ store, create?, group, archive, dir, time }` — opens (or creates, with the
 *   datastore defaults: sync level `filesystem`) the datastore, `group.backup()`, `addTree`,
 *   `commit()`. Seconds run from `group.backup()` to the end of `commit()` (so the syncfs of the
 *   default sync level is included); the datastore open/create is reported apart.
 * - `restore`: `{ store, group, archive, target }` — `restoreTree` of the group's newest snapshot
 *   into `target` (new, empty). Seconds run from `snapshot.open()` to the end of `restoreTree`.
 *
 * Prints exactly one JSON line on stdout: the library's stats plus `maxRssKiB`
 * (process.resourceUsage().maxRSS: the whole process, worker threads included), the RSS before the
 * work started and the process's user and system CPU seconds. Errors: stderr, exit code 1.
 */
import { Datastore } from '../dist/index.js';

const args = JSON.parse(process.argv[2] ?? '{}');
const rssStart = process.memoryUsage().rss;
const cpu0 = process.cpuUsage();
const now = () => performance.now() / 1000;

function storeOptions() {
  return args.threads === undefined ? {} : { threads: args.threads };
}

async function backup() {
  const t0 = now();
  // Datastore defaults on purpose (sync level 'filesystem', default CDC parameters).
  const ds = args.create ? await Datastore.create(args.store, storeOptions()) : await Datastore.open(args.store, storeOptions());
  const t1 = now();
  try {
    const w = await ds.group(args.group).backup({ time: args.time });
    const stats = await w.addTree(args.archive, args.dir, {});
    const t2 = now();
    await w.commit();
    const t3 = now();
    return { ...stats, openSeconds: t1 - t0, addTreeSeconds: t2 - t1, commitSeconds: t3 - t2, totalSeconds: t3 - t1 };
  } finally {
    await ds.close();
  }
}

async function restore() {
  const t0 = now();
  const ds = await Datastore.open(args.store, storeOptions());
  const t1 = now();
  try {
    const snap = await ds.group(args.group).newest();
    if (snap === undefined) throw new Error('no snapshot to restore');
    const r = await snap.open();
    try {
      const stats = await r.restoreTree(`${args.archive}.tree`, args.target, {});
      const t2 = now();
      return { ...stats, snapshot: snap.name ?? undefined, openSeconds: t1 - t0, totalSeconds: t2 - t1 };
    } finally {
      await r.close();
    }
  } finally {
    await ds.close();
  }
}

const scenarios = { backup, restore };

try {
  const fn = scenarios[args.scenario];
  if (fn === undefined) throw new Error(`unknown scenario ${args.scenario}`);
  const result = await fn();
  const cpu = process.cpuUsage(cpu0);
  const ru = process.resourceUsage();
  process.stdout.write(
    `${JSON.stringify({
      scenario: args.scenario,
      ...result,
      maxRssKiB: ru.maxRSS,
      rssStartKiB: Math.round(rssStart / 1024),
      cpuUserSeconds: cpu.user / 1e6,
      cpuSystemSeconds: cpu.system / 1e6,
    })}\n`,
  );
} catch (e) {
  process.stderr.write(`${e?.stack ?? e}\n`);
  process.exitCode = 1;
}

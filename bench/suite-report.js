// The Markdown report of the bench suite (bench/suite.js): one set of tables per data set, with
// Cairn's ratio to each peer and every step where Cairn does worse flagged.

const MB = 1e6;

/** The rows of the time table: key of the step, label, and how to show a value. */
function timeRows(kind) {
  return [
    ['first', 'first backup of v1 (s)'],
    ['incr2', 'incremental backup of v2 (s)'],
    ['incr3', 'incremental backup of v3 (s)'],
    ['restore', 'restore of v3 (s)'],
    ['fuse', kind === 'image' ? 'FUSE: `dd bs=1M` of the image, fresh mount (s)' : 'FUSE: `find -ls` of the tree, fresh mount (s)'],
    ['verify', 'verify every chunk (s)'],
    ['prune', 'prune to the newest + GC (s)'],
  ];
}

/** Cairn ÷ peer, flagged when Cairn is worse (`lowerIsBetter`: time, bytes, memory). */
function ratio(c, p, lowerIsBetter, worse) {
  if (!Number.isFinite(c) || !Number.isFinite(p) || p === 0) return { text: '–', flagged: false };
  const r = c / p;
  const flagged = lowerIsBetter ? r > 1.005 : r < 0.995;
  return { text: flagged ? `**${r.toFixed(2)} ${worse}**` : r.toFixed(2), flagged, r };
}

function table(names, peers, primary, rows, flags, ds, kind) {
  const head = `| | ${names.join(' | ')} | ${peers.map((p) => `Cairn / ${p}`).join(' | ')} |\n|---|${names.map(() => '---:').join('|')}|${peers.map(() => '---:').join('|')}|`;
  const lines = rows.map(({ label, value, show, lowerIsBetter = true, worse }) => {
    const vals = names.map((n) => value(n));
    const ratios = peers.map((p) => {
      const q = ratio(value(primary), value(p), lowerIsBetter, worse);
      if (q.flagged)
        flags.push({ ds, kind, peer: p, label: `${label} vs ${p}`, r: q.r, text: `${label}: ${primary} ${show(value(primary))} vs ${p} ${show(value(p))} (×${q.r.toFixed(2)})` });
      return q.text;
    });
    return `| ${label} | ${vals.map((v) => (Number.isFinite(v) ? show(v) : '–')).join(' | ')} | ${ratios.join(' | ')} |`;
  });
  return `${head}\n${lines.join('\n')}`;
}

function dataset(name, d, flags) {
  if (d.skipped) return `## ${name}\n\nSkipped: ${d.skipped}.\n`;
  const names = Object.keys(d.tools);
  const primary = names[0];
  const peers = names.filter((n) => !n.startsWith('cairn'));
  const stepOf = (n, k) => d.tools[n].steps[k];
  const num = (s, f) => (s === undefined || s.error || s.skipped ? NaN : f(s));
  const logical = d.versions.reduce((a, v) => a + v.logicalBytes, 0);

  const timeTable = table(
    names,
    peers,
    primary,
    timeRows(d.kind).map(([k, label]) => ({ label, value: (n) => num(stepOf(n, k), (s) => s.seconds), show: (v) => v.toFixed(2), worse: 'slower' })),
    flags,
    name,
    'time',
  );
  const rssTable = table(
    names,
    peers,
    primary,
    timeRows(d.kind).map(([k, label]) => ({
      label: label
        .replace(/ \(s\)$/, '')
        .replace('FUSE: `dd bs=1M` of the image, fresh mount', 'FUSE mount process')
        .replace('FUSE: `find -ls` of the tree, fresh mount', 'FUSE mount process'),
      value: (n) => num(stepOf(n, k), (s) => (k === 'fuse' ? s.mountRssMiB : s.rssMiB)),
      show: (v) => v.toFixed(0),
      worse: 'more',
    })),
    flags,
    name,
    'rss',
  );
  const stored = (n, k) => d.tools[n].stored[k] ?? NaN;
  const storeTable = table(
    names,
    peers,
    primary,
    [
      { label: 'repository after v1 (MB)', value: (n) => stored(n, 'v1') / MB },
      { label: 'added by v2 (MB)', value: (n) => (stored(n, 'v2') - stored(n, 'v1')) / MB },
      { label: 'added by v3 (MB)', value: (n) => (stored(n, 'v3') - stored(n, 'v2')) / MB },
      { label: 'repository after v3 (MB)', value: (n) => stored(n, 'v3') / MB },
      { label: `deduplication: ${(logical / MB).toFixed(0)} MB of versions ÷ repository`, value: (n) => logical / stored(n, 'v3'), lowerIsBetter: false, worse: 'lower' },
      { label: 'repository after prune + GC (MB)', value: (n) => stored(n, 'afterPrune') / MB },
    ].map((r) => ({ show: (v) => v.toFixed(1), worse: 'more', ...r })),
    flags,
    name,
    'storage',
  );
  const through = names
    .map((n) => {
      const f = stepOf(n, 'first');
      const fu = stepOf(n, 'fuse');
      const parts = [`first backup ${num(f, (s) => d.versions[0].logicalBytes / MB / s.seconds).toFixed(0)} MB/s`];
      if (d.kind === 'image') parts.push(`FUSE read ${num(fu, (s) => d.versions[2].logicalBytes / MB / s.seconds).toFixed(0)} MB/s`);
      else if (fu?.entries) parts.push(`FUSE ${fu.entries} entries`);
      if (fu?.mountSeconds) parts.push(`mount ready in ${fu.mountSeconds.toFixed(2)} s`);
      return `${n}: ${parts.join(', ')}`;
    })
    .join('; ');
  const identical = names
    .map((n) => {
      const t = d.tools[n];
      if (t.restoreIdentical === undefined) return `${n}: not compared (restore failed)`;
      if (t.restoreIdentical) return `${n}: identical`;
      const c = t.restoreDifferences;
      return `${n}: **DIFFERENT**${c ? ` (${c.missing} missing, ${c.extra} extra, ${c.differ} differ; e.g. ${c.examples.slice(0, 2).join('; ')})` : ''}`;
    })
    .join('; ');
  const errors = names.flatMap((n) =>
    Object.entries(d.tools[n].steps).flatMap(([k, s]) =>
      s.error ? [`- ${n} ${k} failed: ${s.error.split('\n').slice(0, 3).join(' ')}`] : s.skipped ? [`- ${n} ${k}: ${s.skipped}`] : [],
    ),
  );
  const versions = d.versions
    .map(
      (v) =>
        `- v${v.version}: ${(v.logicalBytes / MB).toFixed(1)} MB${v.files ? `, ${v.files} files` : ''} — ${v.note}${v.changedBytes != null ? `; ${v.changedBytes === 0 ? 'no' : (v.changedBytes / MB).toFixed(1) + ' MB in'} changed 64 KiB blocks${v.changed ? ` (${v.changed} ranges given to Cairn)` : ''}` : ''} (made in ${v.generateSeconds.toFixed(1)} s)`,
    )
    .join('\n');
  return `## ${name}

${d.description[0].toUpperCase()}${d.description.slice(1)}.

${versions}

Seconds (Cairn / peer above 1 means Cairn took longer; the ratios compare **${primary}**${names.length - peers.length > 1 ? `; ${names.filter((n) => n.startsWith('cairn') && n !== primary).join(', ')} is shown for reference` : ''}):

${timeTable}

Peak RSS of each step's process (MiB):

${rssTable}

Storage (\`du -sb\` of each repository):

${storeTable}

Throughput: ${through}. Restores of v3 compared with the source: ${identical}.
${errors.length > 0 ? `\n${errors.join('\n')}\n` : ''}`;
}

/**
 * The flags, by data set: every slower step spelled out; memory and storage as one line each (the
 * tables have the details).
 */
function summary(flags) {
  if (flags.length === 0) return 'Nowhere in this run.';
  const out = [];
  for (const ds of [...new Set(flags.map((f) => f.ds))]) {
    const mine = flags.filter((f) => f.ds === ds);
    const time = mine.filter((f) => f.kind === 'time');
    const other = (kind, what, detail) => {
      const fs = mine.filter((f) => f.kind === kind);
      if (fs.length === 0) return [];
      const byPeer = [...new Set(fs.map((f) => f.peer))].map((p) => {
        const ps = fs.filter((f) => f.peer === p);
        const rs = ps.map((f) => f.r);
        const range = `×${Math.min(...rs).toFixed(2)}${rs.length > 1 ? `–${Math.max(...rs).toFixed(2)}` : ''}`;
        return detail
          ? `than ${p}: ${ps.map((f) => f.label.replace(/ vs \S+$/, '').replace(/ \([^)]*\)$/, '')).join(', ')} (${range})`
          : `than ${p} in ${ps.length} steps (${range})`;
      });
      return [`  - ${what} ${byPeer.join('; ')}`];
    };
    out.push(`- **${ds}**`, ...time.map((f) => `  - slower: ${f.text}`), ...other('rss', 'more memory (peak RSS)', false), ...other('storage', 'more storage', true));
  }
  return out.join('\n');
}

/** The whole report. */
export function markdown(result) {
  const m = result.machine;
  const flags = [];
  const sections = Object.entries(result.datasets).map(([name, d]) => dataset(name, d, flags));
  const peers = Object.entries(result.peers);
  return `# Cairn bench suite, ${result.date.slice(0, 10)}

Machine: ${m.cpu}, ${m.cores} cores, ${m.ramGiB} GiB RAM, ${m.kernel}, Node ${m.node} (host ${m.host}). Library commit ${result.commit}. Size ${result.params.sizeLabel}, seed ${result.params.seed}. Whole run: ${(result.totalSeconds / 60).toFixed(1)} min${result.params.root ? '' : ' (not root: caches not dropped, vm-ext4 and FUSE skipped)'}. Load average (1 min) at the start ${result.loadAverage?.start?.toFixed(2) ?? '?'}, at the end ${result.loadAverage?.end?.toFixed(2) ?? '?'}${(result.loadAverage?.start ?? 0) > 0.5 ? ' — other processes were using the CPU when it started: the numbers may be pessimistic' : ''}.

Peers: ${peers.length > 0 ? peers.map(([p, v]) => `${p} (${v})`).join(', ') : 'none'}${result.peersMissing.length > 0 ? `; not installed: ${result.peersMissing.join(', ')} (run bench/setup)` : ''}.
Settings: Cairn with its defaults (LZ4, no encryption, sync level \`filesystem\`: one \`syncfs\` before each manifest; image archives in 1 MiB chunks; GC with \`--skew 0\`); restic 0.14 cannot turn encryption off, compression \`auto\`; borg \`--encryption none --compression lz4\`, \`borg compact\` after \`borg prune\`. Every tool runs as its command-line program under \`/usr/bin/time\` (wall seconds, peak RSS), one process per step, caches dropped before each step${result.params.root ? '' : ' (not here: not root)'}. Verify is \`cairn verify\`, \`restic check --read-data\`, \`borg check --verify-data\`. FUSE: \`cairn mount --daemon\`, \`restic mount\`, \`borg mount -f\`, each a fresh process.

## Where Cairn does worse

${summary(flags)}

${sections.join('\n')}`;
}

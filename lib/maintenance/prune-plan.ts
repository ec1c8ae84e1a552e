/**
 * The prune plan (layer L5): which snapshots of one backup group a retention policy keeps.
 * Pure: the result depends only on the candidates and the options (no clock, no I/O), following
 * Proxmox Backup Server's `compute_prune_info` / `mark_selections` exactly.
 */
import { CairnError } from '../errors.js';

/**
 * Retention counts, each a non-negative integer. A count of 0 (or an absent option) disables the
 * rule; when every rule is disabled, nothing is removed.
 * @category Prune
 */
export interface KeepOptions {
  /** Keep the newest N snapshots. */
  keepLast?: number;
  /** Keep the newest snapshot of each of the last N hours that have one. */
  keepHourly?: number;
  /** Keep the newest snapshot of each of the last N days that have one. */
  keepDaily?: number;
  /** Keep the newest snapshot of each of the last N ISO weeks (Monday first) that have one. */
  keepWeekly?: number;
  /** Keep the newest snapshot of each of the last N months that have one. */
  keepMonthly?: number;
  /** Keep the newest snapshot of each of the last N years that have one. */
  keepYearly?: number;
}

/**
 * {@link KeepOptions} plus the IANA time zone the hour/day/week/month/year periods are computed in.
 * @category Prune
 */
export interface PrunePlanOptions extends KeepOptions {
  /** IANA time zone name, e.g. `Europe/Berlin` (default: the process's local zone). */
  timeZone?: string;
}

/**
 * Keep options with the time zone resolved, as a plan records them.
 * @category Prune
 */
export interface ResolvedPruneOptions extends KeepOptions {
  /** The IANA time zone the periods were computed in. */
  timeZone: string;
}

/**
 * What prune does with a snapshot: `keep` (selected by a rule), `keep-partial` (the newest
 * unfinished snapshot, newer than every finished one), `protected` (never removed, uses no slot),
 * `remove`.
 * @category Prune
 */
export type PruneMark = 'keep' | 'keep-partial' | 'protected' | 'remove';

/**
 * One snapshot directory of a group, as {@link planPrune} sees it.
 * @category Prune
 */
export interface PruneCandidate {
  /** RFC 3339 UTC time, `YYYY-MM-DDTHH:MM:SSZ`. */
  time: string;
  /** False for a directory without a manifest (a running or crashed backup). */
  finished: boolean;
  /** True when the snapshot is protected. */
  protected: boolean;
}

/**
 * One line of a plan: a candidate's time and its mark.
 * @category Prune
 */
export interface PrunePlanEntry {
  /** The candidate's time. */
  time: string;
  /** What prune does with it. */
  mark: PruneMark;
}

const KEEP_KEYS = ['keepLast', 'keepHourly', 'keepDaily', 'keepWeekly', 'keepMonthly', 'keepYearly'] as const;
const TIME_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/;

/**
 * The local time zone of this process.
 * @category Prune
 */
export function localTimeZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone;
}

/**
 * Validates keep options and a time zone; returns the zone to use.
 * @throws `ERR_INVALID_ARGUMENT`
 * @category Prune
 */
export function checkPruneOptions(options: PrunePlanOptions): string {
  if (typeof options !== 'object' || options === null) throw new CairnError('ERR_INVALID_ARGUMENT', 'prune options must be an object');
  for (const k of KEEP_KEYS) {
    const v = options[k];
    if (v !== undefined && (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)) {
      throw new CairnError('ERR_INVALID_ARGUMENT', `${k} must be a non-negative integer (got ${String(v)})`);
    }
  }
  const zone = options.timeZone ?? localTimeZone();
  if (typeof zone !== 'string' || zone === '') throw new CairnError('ERR_INVALID_ARGUMENT', 'timeZone must be an IANA time zone name');
  formatterFor(zone);
  return zone;
}

/**
 * True when at least one keep rule has a count above 0.
 * @category Prune
 */
export function keepsSomething(options: KeepOptions): boolean {
  return KEEP_KEYS.some((k) => (options[k] ?? 0) > 0);
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatterFor(zone: string): Intl.DateTimeFormat {
  let f = formatters.get(zone);
  if (f === undefined) {
    try {
      f = new Intl.DateTimeFormat('en-US', { timeZone: zone, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit' });
    } catch {
      throw new CairnError('ERR_INVALID_ARGUMENT', `unknown time zone '${zone}'`);
    }
    formatters.set(zone, f);
  }
  return f;
}

interface LocalTime {
  y: number;
  m: number;
  d: number;
  h: number;
}

function localTime(ms: number, zone: string): LocalTime {
  const parts = formatterFor(zone).formatToParts(new Date(ms));
  const get = (type: string): number => Number(parts.find((p) => p.type === type)?.value);
  return { y: get('year'), m: get('month'), d: get('day'), h: get('hour') % 24 };
}

const pad = (n: number, w = 2): string => String(n).padStart(w, '0');

/**
 * An ISO 8601 week.
 * @category Prune
 */
export interface IsoWeek {
  /** ISO week-year (`%G`). */
  year: number;
  /** ISO week, 1 to 53 (`%V`). */
  week: number;
}

/**
 * ISO 8601 week-year and week (`%G/%V`) of a calendar date.
 * @category Prune
 */
export function isoWeek(y: number, m: number, d: number): IsoWeek {
  const day = Date.UTC(y, m - 1, d);
  const dow = (new Date(day).getUTCDay() + 6) % 7; // Monday = 0
  const thursday = day + (3 - dow) * 86_400_000;
  const year = new Date(thursday).getUTCFullYear();
  const week = Math.floor((thursday - Date.UTC(year, 0, 1)) / (7 * 86_400_000)) + 1;
  return { year, week };
}

type Rule = { count: number; key: (c: Parsed) => string };
interface Parsed {
  time: string;
  local: LocalTime;
}

/**
 * Marks each snapshot of one group as PBS prune does:
 *
 * 1. Candidates are taken newest first.
 * 2. Unfinished ones: the first unfinished snapshot newer than every finished one is
 *    `keep-partial`; every other unfinished one is `remove`.
 * 3. The rules run in order last → hourly → daily → weekly (ISO `%G/%V`) → monthly → yearly, with
 *    periods computed in `timeZone`. Each rule skips snapshots already marked and periods already
 *    kept by earlier rules, marks the newest snapshot of each new period `keep` (later ones in a
 *    period it selected `remove`) until it has selected its count of periods. Protected snapshots
 *    are marked `protected` and use no slot.
 * 4. Whatever is left is `remove`; protected snapshots are always `protected`.
 *
 * With no rule above 0 everything is kept (`keep`, or `protected`). The result depends only on the
 * arguments: no clock is read.
 *
 * @returns one entry per candidate, newest first.
 * @throws `ERR_INVALID_ARGUMENT` for invalid options, times or duplicate times.
 *
 * @example
 * ```ts
 * planPrune([{ time: '2024-05-01T10:00:00Z', finished: true, protected: false }], { keepDaily: 7, timeZone: 'UTC' });
 * ```
 * @category Prune
 */
export function planPrune(candidates: readonly PruneCandidate[], options: PrunePlanOptions): PrunePlanEntry[] {
  const zone = checkPruneOptions(options);
  if (!Array.isArray(candidates)) throw new CairnError('ERR_INVALID_ARGUMENT', 'candidates must be an array');
  const seen = new Set<string>();
  for (const c of candidates) {
    if (typeof c?.time !== 'string' || !TIME_RE.test(c.time) || Number.isNaN(Date.parse(c.time))) {
      throw new CairnError('ERR_INVALID_ARGUMENT', `invalid snapshot time '${String(c?.time)}'`);
    }
    if (seen.has(c.time)) throw new CairnError('ERR_INVALID_ARGUMENT', `duplicate snapshot time '${c.time}'`);
    seen.add(c.time);
  }
  const list = [...candidates].sort((a, b) => (a.time < b.time ? 1 : a.time > b.time ? -1 : 0));
  if (!keepsSomething(options)) return list.map((c) => ({ time: c.time, mark: c.protected ? 'protected' : 'keep' }));

  const mark = new Map<string, PruneMark>();
  let keepUnfinished = true;
  for (const c of list) {
    if (c.finished) keepUnfinished = false;
    else if (keepUnfinished) {
      mark.set(c.time, 'keep-partial');
      keepUnfinished = false;
    } else mark.set(c.time, 'remove');
  }

  const parsed = new Map<string, Parsed>(list.map((c) => [c.time, { time: c.time, local: localTime(Date.parse(c.time), zone) }]));
  const rules: Rule[] = [
    { count: options.keepLast ?? 0, key: (p) => p.time },
    { count: options.keepHourly ?? 0, key: ({ local: l }) => `${pad(l.y, 4)}/${pad(l.m)}/${pad(l.d)}/${pad(l.h)}` },
    { count: options.keepDaily ?? 0, key: ({ local: l }) => `${pad(l.y, 4)}/${pad(l.m)}/${pad(l.d)}` },
    {
      count: options.keepWeekly ?? 0,
      key: ({ local: l }) => {
        const w = isoWeek(l.y, l.m, l.d);
        return `${pad(w.year, 4)}/${pad(w.week)}`;
      },
    },
    { count: options.keepMonthly ?? 0, key: ({ local: l }) => `${pad(l.y, 4)}/${pad(l.m)}` },
    { count: options.keepYearly ?? 0, key: ({ local: l }) => pad(l.y, 4) },
  ];
  for (const rule of rules) {
    if (rule.count <= 0) continue;
    const already = new Set<string>();
    for (const c of list) if (mark.get(c.time) === 'keep') already.add(rule.key(parsed.get(c.time)!));
    const included = new Set<string>();
    for (const c of list) {
      if (mark.has(c.time)) continue;
      if (c.protected) {
        mark.set(c.time, 'protected');
        continue;
      }
      const id = rule.key(parsed.get(c.time)!);
      if (already.has(id)) continue;
      if (!included.has(id)) {
        if (included.size >= rule.count) break;
        included.add(id);
        mark.set(c.time, 'keep');
      } else mark.set(c.time, 'remove');
    }
  }
  return list.map((c) => ({ time: c.time, mark: c.protected ? 'protected' : (mark.get(c.time) ?? 'remove') }));
}

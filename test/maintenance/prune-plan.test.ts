import t from 'tap';
import { isoWeek, planPrune, type PruneCandidate, type PruneMark } from '../../lib/index.js';

const fin = (time: string, prot = false): PruneCandidate => ({ time, finished: true, protected: prot });
const unf = (time: string): PruneCandidate => ({ time, finished: false, protected: false });
const marks = (r: { time: string; mark: PruneMark }[]): string[] => r.map((e) => `${e.time} ${e.mark}`);
const day = (d: string): string => `${d}T12:00:00Z`;

t.test('PBS docs example: 10 years of daily backups, last=3 daily=13 weekly=8 monthly=11 yearly=9', async (t) => {
  const list: PruneCandidate[] = [];
  for (let ms = Date.UTC(2014, 11, 31, 12); ms <= Date.UTC(2024, 11, 31, 12); ms += 86_400_000) list.push(fin(new Date(ms).toISOString().replace('.000Z', 'Z')));
  t.equal(list.length, 3654);
  const plan = planPrune(list, { keepLast: 3, keepDaily: 13, keepWeekly: 8, keepMonthly: 11, keepYearly: 9, timeZone: 'UTC' });
  t.equal(plan.length, list.length);
  t.equal(plan[0]!.time, day('2024-12-31'), 'newest first');
  const kept = plan.filter((e) => e.mark === 'keep').map((e) => e.time.slice(0, 10));
  const expected = [
    // last 3
    '2024-12-31',
    '2024-12-30',
    '2024-12-29',
    // daily 13: the next 13 days
    '2024-12-28',
    '2024-12-27',
    '2024-12-26',
    '2024-12-25',
    '2024-12-24',
    '2024-12-23',
    '2024-12-22',
    '2024-12-21',
    '2024-12-20',
    '2024-12-19',
    '2024-12-18',
    '2024-12-17',
    '2024-12-16',
    // weekly 8: 2025-W01, 2024-W52, W51 covered; the Sundays of W50..W43
    '2024-12-15',
    '2024-12-08',
    '2024-12-01',
    '2024-11-24',
    '2024-11-17',
    '2024-11-10',
    '2024-11-03',
    '2024-10-27',
    // monthly 11: 2024-12, -11, -10 covered; month ends Sep 2024 .. Nov 2023
    '2024-09-30',
    '2024-08-31',
    '2024-07-31',
    '2024-06-30',
    '2024-05-31',
    '2024-04-30',
    '2024-03-31',
    '2024-02-29',
    '2024-01-31',
    '2023-12-31',
    '2023-11-30',
    // yearly 9: 2024, 2023 covered; year ends 2022 .. 2014
    '2022-12-31',
    '2021-12-31',
    '2020-12-31',
    '2019-12-31',
    '2018-12-31',
    '2017-12-31',
    '2016-12-31',
    '2015-12-31',
    '2014-12-31',
  ];
  t.equal(expected.length, 44);
  t.same(kept, expected);
  t.equal(plan.filter((e) => e.mark === 'remove').length, list.length - 44);
  // Input order does not matter.
  t.same(planPrune([...list].reverse(), { keepLast: 3, keepDaily: 13, keepWeekly: 8, keepMonthly: 11, keepYearly: 9, timeZone: 'UTC' }), plan);
});

t.test('keep-last only', async (t) => {
  const list = ['2024-01-01', '2024-01-02', '2024-01-03', '2024-01-04'].map((d) => fin(day(d)));
  t.same(marks(planPrune(list, { keepLast: 2, timeZone: 'UTC' })), [
    `${day('2024-01-04')} keep`,
    `${day('2024-01-03')} keep`,
    `${day('2024-01-02')} remove`,
    `${day('2024-01-01')} remove`,
  ]);
});

t.test('a protected snapshot in the middle uses no slot and is never removed', async (t) => {
  const list = [fin(day('2024-01-01')), fin(day('2024-01-02'), true), fin(day('2024-01-03')), fin(day('2024-01-04'), true), fin(day('2024-01-05'))];
  t.same(marks(planPrune(list, { keepLast: 2, timeZone: 'UTC' })), [
    `${day('2024-01-05')} keep`,
    `${day('2024-01-04')} protected`,
    `${day('2024-01-03')} keep`,
    `${day('2024-01-02')} protected`,
    `${day('2024-01-01')} remove`,
  ]);
});

t.test('unfinished: only the newest, newer than every finished one, is kept', async (t) => {
  const list = [fin(day('2024-01-01')), unf(day('2024-01-02')), fin(day('2024-01-03')), unf(day('2024-01-04')), unf(day('2024-01-05'))];
  t.same(marks(planPrune(list, { keepLast: 5, timeZone: 'UTC' })), [
    `${day('2024-01-05')} keep-partial`,
    `${day('2024-01-04')} remove`,
    `${day('2024-01-03')} keep`,
    `${day('2024-01-02')} remove`,
    `${day('2024-01-01')} keep`,
  ]);
  // No unfinished newer than the newest finished: all unfinished go.
  t.same(marks(planPrune([unf(day('2024-01-01')), fin(day('2024-01-02'))], { keepLast: 1, timeZone: 'UTC' })), [`${day('2024-01-02')} keep`, `${day('2024-01-01')} remove`]);
});

t.test('no keep option (or only zeros) keeps everything', async (t) => {
  const list = [fin(day('2024-01-01')), fin(day('2024-01-02'), true), unf(day('2024-01-03'))];
  const all = [`${day('2024-01-03')} keep`, `${day('2024-01-02')} protected`, `${day('2024-01-01')} keep`];
  t.same(marks(planPrune(list, {})), all);
  t.same(marks(planPrune(list, { keepLast: 0, keepDaily: 0 })), all);
  t.same(planPrune([], { keepLast: 1 }), []);
});

t.test('periods already covered by an earlier rule are skipped', async (t) => {
  const list = [fin('2024-01-01T08:00:00Z'), fin('2024-01-02T08:00:00Z'), fin('2024-01-02T20:00:00Z')];
  t.same(marks(planPrune(list, { keepLast: 1, keepDaily: 1, timeZone: 'UTC' })), [
    '2024-01-02T20:00:00Z keep',
    '2024-01-02T08:00:00Z remove', // its day is covered by keep-last: skipped, then unmarked
    '2024-01-01T08:00:00Z keep',
  ]);
});

t.test('DST: Europe/Berlin periods around the October 2024 switch', async (t) => {
  // 21:30Z = 23:30 CEST Oct 26; 23:30Z = 01:30 CEST Oct 27; 00:30Z = 02:30 CEST; 01:30Z = 02:30 CET.
  const list = [fin('2024-10-26T21:30:00Z'), fin('2024-10-26T23:30:00Z'), fin('2024-10-27T00:30:00Z'), fin('2024-10-27T01:30:00Z')];
  t.same(marks(planPrune(list, { keepDaily: 2, timeZone: 'Europe/Berlin' })), [
    '2024-10-27T01:30:00Z keep',
    '2024-10-27T00:30:00Z remove',
    '2024-10-26T23:30:00Z remove',
    '2024-10-26T21:30:00Z keep',
  ]);
  t.same(marks(planPrune(list, { keepDaily: 2, timeZone: 'UTC' })), [
    '2024-10-27T01:30:00Z keep',
    '2024-10-27T00:30:00Z remove',
    '2024-10-26T23:30:00Z keep',
    '2024-10-26T21:30:00Z remove',
  ]);
  // Local hour 02 occurs twice: both snapshots fall in the period 2024/10/27/02.
  t.same(marks(planPrune(list, { keepHourly: 3, timeZone: 'Europe/Berlin' })), [
    '2024-10-27T01:30:00Z keep',
    '2024-10-27T00:30:00Z remove',
    '2024-10-26T23:30:00Z keep',
    '2024-10-26T21:30:00Z keep',
  ]);
});

t.test('ISO week and year boundaries', async (t) => {
  t.same(isoWeek(2020, 12, 31), { year: 2020, week: 53 });
  t.same(isoWeek(2021, 1, 3), { year: 2020, week: 53 });
  t.same(isoWeek(2021, 1, 4), { year: 2021, week: 1 });
  t.same(isoWeek(2024, 12, 30), { year: 2025, week: 1 });
  t.same(isoWeek(2019, 12, 30), { year: 2020, week: 1 });
  const list = [fin(day('2020-12-31')), fin(day('2021-01-03')), fin(day('2021-01-04'))];
  t.same(marks(planPrune(list, { keepWeekly: 5, timeZone: 'UTC' })), [`${day('2021-01-04')} keep`, `${day('2021-01-03')} keep`, `${day('2020-12-31')} remove`]);
  // 2020-12-31T23:30Z is 2021 in Berlin.
  const years = [fin('2020-06-01T12:00:00Z'), fin('2020-12-31T23:30:00Z'), fin('2021-01-04T12:00:00Z')];
  t.same(marks(planPrune(years, { keepYearly: 2, timeZone: 'UTC' })), ['2021-01-04T12:00:00Z keep', '2020-12-31T23:30:00Z keep', '2020-06-01T12:00:00Z remove']);
  t.same(marks(planPrune(years, { keepYearly: 2, timeZone: 'Europe/Berlin' })), ['2021-01-04T12:00:00Z keep', '2020-12-31T23:30:00Z remove', '2020-06-01T12:00:00Z keep']);
  t.same(marks(planPrune(years, { keepMonthly: 2, timeZone: 'Europe/Berlin' })), ['2021-01-04T12:00:00Z keep', '2020-12-31T23:30:00Z remove', '2020-06-01T12:00:00Z keep']);
});

t.test('the default time zone is the local one', async (t) => {
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  const list = [fin('2024-10-26T21:30:00Z'), fin('2024-10-26T23:30:00Z'), fin('2024-10-27T01:30:00Z')];
  t.same(planPrune(list, { keepDaily: 2 }), planPrune(list, { keepDaily: 2, timeZone: zone }));
});

t.test('invalid options and candidates', async (t) => {
  const list = [fin(day('2024-01-01'))];
  for (const bad of [
    { keepLast: -1 },
    { keepDaily: 1.5 },
    { keepWeekly: Number.NaN },
    { keepYearly: '3' as unknown as number },
    { keepLast: 1, timeZone: 'Nowhere/Town' },
    { keepLast: 1, timeZone: '' },
  ]) {
    t.throws(() => planPrune(list, bad), { code: 'ERR_INVALID_ARGUMENT' }, JSON.stringify(bad));
  }
  t.throws(() => planPrune([fin('2024-01-01')], { keepLast: 1 }), { code: 'ERR_INVALID_ARGUMENT' });
  t.throws(() => planPrune([fin(day('2024-01-01')), unf(day('2024-01-01'))], { keepLast: 1 }), { code: 'ERR_INVALID_ARGUMENT' });
});

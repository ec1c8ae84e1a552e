import t from 'tap';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { cruise } from 'dependency-cruiser';

const require = createRequire(import.meta.url);

t.test('lib/ keeps the layers of DESIGN.md §2 and has no cycles', async (t) => {
  const config = require('../.dependency-cruiser.cjs') as { forbidden: unknown[]; options: Record<string, unknown> };
  const result = await cruise(['lib'], { ...config.options, validate: true, ruleSet: { forbidden: config.forbidden } } as never);
  const out = result.output as { summary: { violations: { rule: { name: string }; from: string; to: string }[]; totalCruised: number } };
  t.ok(out.summary.totalCruised > 20, `cruised ${out.summary.totalCruised} modules`);
  t.same(
    out.summary.violations.map((v) => `${v.rule.name}: ${v.from} -> ${v.to}`),
    [],
    'no layer violations',
  );
});

t.test('only lib/codec/native.ts loads the native addon', async (t) => {
  const offenders: string[] = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const p = path.join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (p.endsWith('.ts') && p !== path.join('lib', 'codec', 'native.ts')) {
        const text = readFileSync(p, 'utf8');
        // lib/fuse/mount.ts uses createRequire for fuse-native's own binding, never for ours.
        if (/cairn_native\.node/.test(text) || (/createRequire/.test(text) && p !== path.join('lib', 'fuse', 'mount.ts'))) offenders.push(p);
      }
    }
  };
  walk('lib');
  t.same(offenders, []);
});

t.test('the layer rules catch a violation', async (t) => {
  // Guard against a config that matches nothing: check a rule set that must fire.
  const config = require('../.dependency-cruiser.cjs') as { forbidden: { name: string }[]; options: Record<string, unknown> };
  const result = await cruise(['lib/datastore/snapshot-writer.ts'], {
    ...config.options,
    validate: true,
    ruleSet: { forbidden: [{ name: 'probe', severity: 'error', from: { path: '^lib/datastore/' }, to: { path: '^lib/pool/' } }] },
  } as never);
  const out = result.output as { summary: { violations: unknown[] } };
  t.ok(out.summary.violations.length > 0, 'a probe rule on a real import fires');
});

t.test("the GC and the chunk store make no file-system calls of their own (the local backend's adapters in lib/backend do)", async (t) => {
  const files = [
    'lib/maintenance/gc.ts',
    'lib/maintenance/gc-skew.ts',
    ...readdirSync('lib/store')
      .filter((n) => n.endsWith('.ts'))
      .map((n) => `lib/store/${n}`),
  ];
  const offenders = files.filter((p) => /from 'node:fs(\/promises)?'/.test(readFileSync(p, 'utf8')));
  t.same(offenders, []);
});

/**
 * The layers of DESIGN.md §2, enforced by test/layers.test.ts:
 * L0 errors/types/util < L1 format/codec < L2 backend < L3 store/pool/host < L4 datastore
 * < L5 maintenance < L6 cli/fuse (which may use lib/index.ts only). No cycles.
 */
const higher = (from, ...to) => ({
  name: `layer-${from.name}`,
  severity: 'error',
  comment: `${from.name} may not import from a higher layer`,
  from: { path: from.path },
  to: { path: `^lib/(${to.join('|')})/` },
});
module.exports = {
  forbidden: [
    { name: 'no-circular', severity: 'error', from: {}, to: { circular: true, viaOnly: { dependencyTypesNot: ['type-only'] } } },
    higher({ name: 'L0', path: '^lib/(errors|types)\\.ts$|^lib/util/' }, 'format', 'codec', 'backend', 'store', 'pool', 'host', 'datastore', 'maintenance', 'cli', 'fuse'),
    higher({ name: 'L1', path: '^lib/(format|codec)/' }, 'backend', 'store', 'pool', 'host', 'datastore', 'maintenance', 'cli', 'fuse'),
    higher({ name: 'L2', path: '^lib/backend/' }, 'store', 'pool', 'host', 'datastore', 'maintenance', 'cli', 'fuse'),
    higher({ name: 'L3', path: '^lib/(store|pool|host)/' }, 'datastore', 'maintenance', 'cli', 'fuse'),
    higher({ name: 'L4', path: '^lib/datastore/' }, 'maintenance', 'cli', 'fuse'),
    higher({ name: 'L5', path: '^lib/maintenance/' }, 'cli', 'fuse'),
    {
      name: 'adapters-use-public-api',
      severity: 'error',
      comment: 'the CLI and the FUSE adapter use lib/index.ts only',
      from: { path: '^lib/(cli|fuse)/' },
      to: { path: '^lib/', pathNot: '^lib/index\\.ts$|^lib/(cli|fuse)/' },
    },
    {
      name: 'barrel-is-for-adapters',
      severity: 'error',
      comment: 'library code does not import the public barrel',
      from: { path: '^lib/', pathNot: '^lib/(cli|fuse)/|^lib/index\\.ts$' },
      to: { path: '^lib/index\\.ts$' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    moduleSystems: ['es6'],
  },
};

import t from 'tap';
import * as M from '../../lib/format/magic.js';

t.test('pinned on-disk constants (never change these)', async (t) => {
  t.same([...M.ENVELOPE_MAGIC], [0x43, 0x52, 0x4e, 0x45]);
  t.equal(Buffer.from(M.ENVELOPE_MAGIC).toString('latin1'), 'CRNE');
  t.equal(M.ENVELOPE_VERSION, 1);
  t.same([...M.FIXED_INDEX_MAGIC], [0x43, 0x41, 0x49, 0x52, 0x4e, 0x46, 0x49, 0x58]);
  t.equal(Buffer.from(M.FIXED_INDEX_MAGIC).toString('latin1'), 'CAIRNFIX');
  t.equal(M.FIXED_INDEX_VERSION, 1);
  t.same([...M.DYNAMIC_INDEX_MAGIC], [0x43, 0x41, 0x49, 0x52, 0x4e, 0x44, 0x49, 0x58]);
  t.equal(Buffer.from(M.DYNAMIC_INDEX_MAGIC).toString('latin1'), 'CAIRNDIX');
  t.equal(M.DYNAMIC_INDEX_VERSION, 1);
  t.equal(M.MANIFEST_FORMAT, 'cairn-manifest');
  t.equal(M.MANIFEST_VERSION, 1);
  t.equal(M.CONFIG_FORMAT, 'cairn-datastore');
  t.equal(M.CONFIG_VERSION, 1);
  t.same(M.CODEC, { none: 0, lz4: 1 });
});

t.test('frozen', async (t) => {
  t.ok(Object.isFrozen(M.ENVELOPE_MAGIC));
  t.ok(Object.isFrozen(M.FIXED_INDEX_MAGIC));
  t.ok(Object.isFrozen(M.DYNAMIC_INDEX_MAGIC));
  t.ok(Object.isFrozen(M.CODEC));
  t.throws(() => {
    (M.ENVELOPE_MAGIC as number[])[0] = 0;
  });
});

t.test('helpers', async (t) => {
  const b = M.magicBytes(M.FIXED_INDEX_MAGIC);
  t.ok(b instanceof Uint8Array);
  t.equal(b.length, 8);
  t.ok(M.hasMagic(b, M.FIXED_INDEX_MAGIC));
  t.notOk(M.hasMagic(b, M.DYNAMIC_INDEX_MAGIC));
  t.notOk(M.hasMagic(b.subarray(0, 7), M.FIXED_INDEX_MAGIC));
  const c = new Uint8Array(10);
  c.set(M.ENVELOPE_MAGIC, 2);
  t.ok(M.hasMagic(c, M.ENVELOPE_MAGIC, 2));
  t.notOk(M.hasMagic(c, M.ENVELOPE_MAGIC, 7));
});

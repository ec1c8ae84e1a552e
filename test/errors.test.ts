import t from 'tap';
import { CairnError, ERROR_CODES, abortError, errorFromJSON, ioError, isCairnError, syscallCode, throwIfAborted, type CairnErrorJSON } from '../lib/errors.js';

t.test('error codes are a closed, unique set', async (t) => {
  t.equal(new Set(ERROR_CODES).size, ERROR_CODES.length, 'no duplicates');
  for (const c of ERROR_CODES) t.match(c, /^ERR_[A-Z_]+$/, `${c} is well formed`);
  for (const c of ['ERR_NOT_FOUND', 'ERR_IO', 'ERR_ABORTED', 'ERR_CHUNK_CORRUPT', 'ERR_CHUNK_MISSING', 'ERR_LOCKED', 'ERR_NOT_OPEN', 'ERR_TIME_ORDER'] as const) {
    t.ok(ERROR_CODES.includes(c), `${c} is a code`);
  }
});

t.test('CairnError basics', async (t) => {
  const e = new CairnError('ERR_NOT_FOUND', 'snapshot vm/1/x does not exist', { snapshot: 'vm/1/x', namespace: 'a' });
  t.ok(e instanceof Error);
  t.ok(e instanceof CairnError);
  t.equal(e.name, 'CairnError');
  t.equal(e.code, 'ERR_NOT_FOUND');
  t.equal(e.message, 'snapshot vm/1/x does not exist');
  t.same(e.details, { snapshot: 'vm/1/x', namespace: 'a' });
  t.equal(e.cause, undefined, 'no cause given');
  t.notOk('cause' in e, 'no own cause property without a cause');
  t.match(String(e), /^CairnError: snapshot vm\/1\/x/);
  t.ok(typeof e.stack === 'string' && e.stack.includes('CairnError'));

  const d = new CairnError('ERR_IO', 'x');
  t.same(d.details, {}, 'details default to {}');

  const cause = new Error('inner');
  const c = new CairnError('ERR_IO', 'outer', {}, cause);
  t.equal(c.cause, cause);
});

t.test('isCairnError', async (t) => {
  const e = new CairnError('ERR_LOCKED', 'busy');
  t.ok(isCairnError(e));
  t.ok(isCairnError(e, 'ERR_LOCKED'));
  t.notOk(isCairnError(e, 'ERR_IO'));
  t.notOk(isCairnError(new Error('x')));
  t.notOk(isCairnError(null));
  t.notOk(isCairnError(undefined));
  t.notOk(isCairnError('ERR_LOCKED'));
  t.notOk(isCairnError({ code: 'ERR_LOCKED', name: 'CairnError' }), 'a look-alike without the brand is not one');
});

t.test('instanceof works across copies of the class (Symbol.for brand)', async (t) => {
  // A copy of the class from another package instance carries the same global symbol.
  const brand = Symbol.for('cairn.error');
  class OtherCopy extends Error {
    code = 'ERR_IO';
  }
  Object.defineProperty(OtherCopy.prototype, brand, { value: true });
  const foreign = new OtherCopy('from another copy');
  t.ok(foreign instanceof CairnError, 'a branded object is a CairnError');
  t.ok(isCairnError(foreign, 'ERR_IO'));
  t.notOk(new Error('x') instanceof CairnError);
  t.notOk(Object.create(null) instanceof CairnError);
  t.notOk((42 as unknown) instanceof CairnError);
  const fake = { [brand]: false };
  t.notOk(fake instanceof CairnError, 'the brand must be exactly true');
  // The brand is not enumerable and does not leak into JSON.
  const e = new CairnError('ERR_IO', 'x');
  t.notOk(Object.keys(e).includes(String(brand)));
  t.notOk(JSON.stringify(e).includes('cairn.error'));
});

t.test('toJSON / errorFromJSON round trip', async (t) => {
  const e = new CairnError('ERR_CHUNK_CORRUPT', 'chunk abc is corrupt', { digest: 'abc', datastore: '/s', size: 3, flag: true });
  const j = e.toJSON();
  t.same(j, { name: 'CairnError', code: 'ERR_CHUNK_CORRUPT', message: 'chunk abc is corrupt', details: { digest: 'abc', datastore: '/s', size: 3, flag: true } });
  t.notOk('cause' in j, 'no cause key without a cause');
  const back = errorFromJSON(JSON.parse(JSON.stringify(e)));
  t.ok(back instanceof CairnError);
  t.equal(back.code, e.code);
  t.equal(back.message, e.message);
  t.same(back.details, e.details);
  t.equal(back.cause, undefined);

  // With causes: an Error cause travels as its message, anything else as its string form.
  const withCause = new CairnError('ERR_IO', 'outer', { path: '/p' }, new Error('disk on fire'));
  const jc = withCause.toJSON();
  t.equal(jc.cause, 'disk on fire');
  const bc = errorFromJSON(JSON.parse(JSON.stringify(jc)));
  t.ok(bc.cause instanceof Error);
  t.equal((bc.cause as Error).message, 'disk on fire');
  t.same(bc.toJSON(), jc, 'second round trip is stable');
  t.equal(new CairnError('ERR_IO', 'x', {}, 'text cause').toJSON().cause, 'text cause');
  t.equal(new CairnError('ERR_IO', 'x', {}, 17).toJSON().cause, '17');

  // Every code survives.
  for (const code of ERROR_CODES) {
    const r = errorFromJSON(new CairnError(code, `m ${code}`).toJSON());
    t.equal(r.code, code, `${code} round trips`);
  }
});

t.test('errorFromJSON on unexpected input', async (t) => {
  const unknownCode = errorFromJSON({ name: 'CairnError', code: 'ERR_MADE_UP', message: 'hm', details: {} } as unknown as CairnErrorJSON);
  t.equal(unknownCode.code, 'ERR_IO', 'an unknown code becomes ERR_IO');
  t.match(unknownCode.message, /unexpected error: hm/);

  const wrongName = errorFromJSON({ name: 'TypeError', code: 'ERR_IO', message: 'tm' });
  t.equal(wrongName.code, 'ERR_IO');
  t.match(wrongName.message, /unexpected error: tm/);

  const plain = errorFromJSON(new TypeError('bad type'));
  t.equal(plain.code, 'ERR_IO');
  t.match(plain.message, /bad type/);

  t.match(errorFromJSON('just text').message, /unexpected error: just text/);
  t.match(errorFromJSON(null).message, /unexpected error: null/);
  t.match(errorFromJSON(undefined).message, /unexpected error: undefined/);
  t.match(errorFromJSON(42).message, /unexpected error: 42/);

  const noMessage = errorFromJSON({ name: 'CairnError', code: 'ERR_IO' });
  t.equal(noMessage.code, 'ERR_IO');
  t.equal(noMessage.message, '');
  t.same(noMessage.details, {});
});

t.test('syscallCode', async (t) => {
  t.equal(syscallCode(Object.assign(new Error('x'), { code: 'ENOENT' })), 'ENOENT');
  t.equal(syscallCode({ code: 'E2BIG' }), 'E2BIG');
  t.equal(syscallCode({ code: 'ERR_NOT_FOUND' }), undefined, 'a Cairn or Node ERR_ code is not a syscall code');
  t.equal(syscallCode({ code: 'ERR_INVALID_ARG_TYPE' }), undefined);
  t.equal(syscallCode({ code: 'enoent' }), undefined);
  t.equal(syscallCode({ code: 2 }), undefined);
  t.equal(syscallCode(new Error('x')), undefined);
  t.equal(syscallCode(null), undefined);
  t.equal(syscallCode(undefined), undefined);
  t.equal(syscallCode('ENOENT'), undefined);
});

t.test('ioError', async (t) => {
  const os = Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
  const e = ioError(os, 'cannot write /x', { path: '/x' });
  t.ok(e instanceof CairnError);
  t.equal(e.code, 'ERR_IO');
  t.equal(e.message, 'cannot write /x: ENOSPC: no space left on device');
  t.same(e.details, { path: '/x', syscallCode: 'ENOSPC' });
  t.equal(e.cause, os);

  const passthrough = new CairnError('ERR_NOT_FOUND', 'gone');
  t.equal(ioError(passthrough, 'whatever', { path: '/y' }), passthrough, 'a CairnError passes through unchanged');

  const noCode = ioError(new Error('weird'), 'doing it');
  t.equal(noCode.message, 'doing it: weird');
  t.same(noCode.details, {}, 'no syscallCode without an OS code');

  const str = ioError('boom', 'ctx', { archive: 'a.img' });
  t.equal(str.message, 'ctx: boom');
  t.same(str.details, { archive: 'a.img' });
  t.equal(str.toJSON().cause, 'boom');
});

t.test('throwIfAborted / abortError', async (t) => {
  t.doesNotThrow(() => throwIfAborted(undefined));
  const ac = new AbortController();
  t.doesNotThrow(() => throwIfAborted(ac.signal));
  const reason = new Error('user pressed ^C');
  ac.abort(reason);
  try {
    throwIfAborted(ac.signal, { snapshot: 'vm/1/t' });
    t.fail('should throw');
  } catch (e) {
    t.ok(isCairnError(e, 'ERR_ABORTED'));
    t.equal((e as CairnError).message, 'operation aborted');
    t.same((e as CairnError).details, { snapshot: 'vm/1/t' });
    t.equal((e as CairnError).cause, reason, 'the cause is the signal reason');
  }

  const plain = new AbortController();
  plain.abort();
  const a = abortError(plain.signal);
  t.equal(a.code, 'ERR_ABORTED');
  t.ok(a.cause instanceof Error, 'default reason is an AbortError DOMException');
  t.equal((a.cause as Error).name, 'AbortError');

  const none = abortError(undefined);
  t.equal(none.code, 'ERR_ABORTED');
  t.equal(none.cause, undefined);
  t.same(none.details, {});

  t.throws(() => throwIfAborted(AbortSignal.abort('why')), { code: 'ERR_ABORTED' });
  t.equal(abortError(AbortSignal.abort('why')).toJSON().cause, 'why');
});

// A config, manifest or fixed index that never ends (a symlink to /dev/zero, a FIFO, a directory,
// a 100 GiB sparse file): every command that reads it finishes within seconds with the file kind's
// coded error and small memory (issue 12; the reads used to go to EOF). See test/helpers/unbounded.ts.
import t from 'tap';
import { unboundedReads } from '../helpers/unbounded.js';

t.setTimeout(120_000);
unboundedReads(t, ['config', 'manifest', 'fixed index']);

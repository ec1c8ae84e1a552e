// A dynamic index, blob or chunk that never ends (a symlink to /dev/zero, a FIFO, a directory, a
// 100 GiB sparse file): restore, verify and gc finish within seconds with the file kind's coded
// error and small memory; a FIFO chunk used to hang restore and verify (issue 12). See
// test/helpers/unbounded.ts.
import t from 'tap';
import { unboundedReads } from '../helpers/unbounded.js';

t.setTimeout(120_000);
unboundedReads(t, ['dynamic index', 'blob', 'chunk']);

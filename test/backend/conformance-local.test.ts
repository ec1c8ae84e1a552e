/** The backend conformance suite (conformance.ts) against the local filesystem backend. */
import t from 'tap';
import path from 'node:path';
import { LocalBackend } from '../../lib/backend/local.js';
import { tempDir } from '../helpers/fixtures.js';
import { runConformance } from './conformance.js';

// A root that does not exist yet: the backend makes its directories on the first put.
runConformance(t, 'local', async (t) => new LocalBackend(path.join(tempDir(t), 'root')));

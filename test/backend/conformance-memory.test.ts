/** The backend conformance suite (conformance.ts) against the memory backend. */
import t from 'tap';
import { MemoryBackend } from '../../lib/backend/memory.js';
import { runConformance } from './conformance.js';

runConformance(t, 'memory', async () => new MemoryBackend());

/**
 * The pool's worker thread (layer L3): runs {@link runTask} and hands buffers back by transfer.
 */
import { move, transferableSymbol, valueSymbol } from 'piscina';
import { initHash } from '../codec/hash.js';
import type { PoolTask } from './protocol.js';
import { runTask } from './tasks.js';

await initHash();

/** The task entry point. */
export default function run(task: PoolTask): unknown {
  const out = runTask(task);
  if (out.transfer.length === 0) return out.value;
  // piscina only honours move() at the top level; a custom transferable carries several buffers.
  return move({
    get [transferableSymbol]() {
      return out.transfer;
    },
    get [valueSymbol]() {
      return out.value;
    },
  } as unknown as ArrayBuffer);
}

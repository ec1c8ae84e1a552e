/** Reporting a moved group, for `group move` and `ns move`. */
import type { MoveGroupReport } from '../index.js';
import { count } from './format.js';

/** The lines printed for one moved group. */
export function moveGroupLines(r: MoveGroupReport): string[] {
  const where = (n: string): string => (n === '' ? '(root)' : n);
  const lines = [
    `${r.group}: ${where(r.from)} -> ${where(r.to)}: moved ${count(r.moved.length, 'snapshot')}${r.merged ? ' (merged)' : ''}${r.sourceRemoved ? '' : ', source group kept'}`,
  ];
  for (const x of r.skipped) lines.push(`  in use, not moved: ${r.group}/${x.time}: ${x.reason}`);
  if (r.notesConflict) lines.push("  both groups had notes: the target's were kept");
  return lines;
}

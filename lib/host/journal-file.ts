/**
 * The move journal's file (lib/host, layer L3: host-local coordination over a local directory,
 * never through a backend). The protocol that uses it is lib/datastore/move-journal.ts; this module
 * only appends lines to the file and reads and empties it.
 *
 * Lines are appended with `O_APPEND`, so concurrent movers do not interleave. The file is opened
 * `O_NOFOLLOW|O_NONBLOCK` and must be a regular file of at most {@link MOVE_JOURNAL_MAX_BYTES}: a
 * symlink planted in its place (to a file outside the datastore, or to `/dev/zero`) or a FIFO is
 * refused with `ERR_UNSAFE_PATH`, never appended to, read or truncated through.
 */
import { promises as fsp, constants as fsc } from 'node:fs';
import { CairnError, ioError, syscallCode } from '../errors.js';
import { FILE_MODE } from '../backend/local.js';

/**
 * Largest journal a GC reads, bytes. A line is under 200 bytes and the journal is emptied by every
 * GC, so this is hundreds of thousands of moves between two GCs.
 */
export const MOVE_JOURNAL_MAX_BYTES = 64 * 1024 * 1024;

/**
 * Opens the journal without following a symlink or blocking on a FIFO, and checks that it is a
 * regular file. Undefined when it does not exist and `flags` does not create it.
 */
async function openJournal(file: string, flags: number): Promise<fsp.FileHandle | undefined> {
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(file, flags | fsc.O_NOFOLLOW | fsc.O_NONBLOCK, FILE_MODE);
  } catch (e) {
    const c = syscallCode(e);
    if (c === 'ENOENT' && (flags & fsc.O_CREAT) === 0) return undefined;
    if (c === 'ELOOP') throw new CairnError('ERR_UNSAFE_PATH', `the move journal ${file} is a symlink; remove it by hand`, { path: file }, e);
    throw ioError(e, `cannot open the move journal ${file}`, { path: file });
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new CairnError('ERR_UNSAFE_PATH', `the move journal ${file} is not a regular file; remove it by hand`, { path: file });
    if (st.size > MOVE_JOURNAL_MAX_BYTES)
      throw new CairnError('ERR_UNSAFE_PATH', `the move journal ${file} is ${st.size} bytes, more than the ${MOVE_JOURNAL_MAX_BYTES} a journal can reach`, { path: file });
    return fh;
  } catch (e) {
    await fh.close();
    throw e;
  }
}

/** Appends one line (with its newline) to the journal file, creating it when missing. */
export async function appendJournalLine(file: string, line: string): Promise<void> {
  const fh = await openJournal(file, fsc.O_WRONLY | fsc.O_APPEND | fsc.O_CREAT);
  try {
    await fh!.write(line);
  } catch (e) {
    throw ioError(e, `cannot write the move journal ${file}`, { path: file });
  } finally {
    await fh!.close();
  }
}

/**
 * Reads the journal file, hands its text to `consume`, then empties it (the file is kept when
 * `consume` throws). Nothing happens when the file does not exist.
 * @returns what `consume` returned, or undefined when there was no journal
 */
export async function consumeJournal<T>(file: string, consume: (text: string) => Promise<T>): Promise<T | undefined> {
  const fh = await openJournal(file, fsc.O_RDWR);
  if (fh === undefined) return undefined;
  try {
    let text: string;
    try {
      text = await fh.readFile('utf8');
    } catch (e) {
      throw ioError(e, `cannot read the move journal ${file}`, { path: file });
    }
    const out = await consume(text);
    await fh.truncate(0).catch((e: unknown) => {
      throw ioError(e, `cannot empty the move journal ${file}`, { path: file });
    });
    return out;
  } finally {
    await fh.close();
  }
}

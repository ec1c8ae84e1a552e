/**
 * Names of temp files (layer L0): every temp file Cairn writes, inside a datastore or beside a
 * restore target, is named `.<name>.tmp-<pid>-<n>`, and {@link isTempFileName} is the one test the
 * cleanups (GC, backend) use to recognise them.
 *
 * No committed file can have such a name: archive, group and namespace names start with a letter,
 * a digit or `_` (types.ts), snapshot directories are times, chunk files are hex, and the datastore's
 * own dot files (`.protected`, `.move-target`, `.gc-status.json`, `.chunks`, `.locks`) do not end in
 * `.tmp-<digits>-<digits>`. A name that merely contains `.tmp-` (`disk.tmp-1.img`) is not a temp
 * file. Temp files written by earlier versions used this same form, so they are recognised too.
 */

let counter = 0;

const TEMP_NAME = /^\..+\.tmp-\d+-\d+$/;

/**
 * A fresh temp file name for `name` (a file name, not a path): `.<name>.tmp-<pid>-<n>`, unique in
 * this process.
 */
export function tempFileName(name: string): string {
  return `.${name}.tmp-${process.pid}-${++counter}`;
}

/** True when `name` (a file name, not a path) is a temp file name as {@link tempFileName} makes them. */
export function isTempFileName(name: string): boolean {
  return TEMP_NAME.test(name);
}

/**
 * What the memory-backend run (test/backend/memory-datastore.test.ts) leaves out, and why. Shared
 * by the runner (which files it runs) and by the preload (memory-backend-hook.ts), which turns a
 * file's skipped subtests into tap's own filter (`TAP_GREP` + `TAP_INVERT`) in that file's process,
 * so a name skipped in one file never skips a test of the same name in another.
 *
 * Reasons, in short:
 * - DISK: the test inspects, plants, damages or removes the datastore's files on disk (chunk
 *   files, shard directories, group directories); with a MemoryBackend they are not there.
 * - EMPTY FOLDER: the test expects a folder that holds nothing yet (a group or snapshot whose
 *   backup has written nothing) to be seen; without directories a folder exists only once a key
 *   lies below it (lib/datastore/keyspace.ts).
 * - CHILD: a child process (the CLI, a script, a process killed mid-backup) opens the same
 *   datastore; a MemoryBackend lives in one process.
 */

/** Test files (relative to the repository) the memory run runs. */
export const MEMORY_RUN_FILES: readonly string[] = [
  'test/datastore/block-device.test.ts',
  'test/datastore/first-hour.test.ts',
  'test/datastore/image-roundtrip.test.ts',
  'test/datastore/incremental.test.ts',
  'test/datastore/lock-abort.test.ts',
  'test/datastore/long-lived.test.ts',
  'test/datastore/move.test.ts',
  'test/datastore/namespaces.test.ts',
  'test/datastore/tree-hostile.test.ts',
  'test/datastore/tree-tar.test.ts',
  'test/datastore/tree.test.ts',
  'test/maintenance/catalog.test.ts',
  'test/maintenance/diff.test.ts',
  'test/maintenance/prune-plan.test.ts',
  'test/maintenance/pruner.test.ts',
  'test/maintenance/verifier.test.ts',
];

/** Test files of the datastore, store and maintenance directories the memory run leaves out, with the reason. */
export const SKIPPED_FILES: Readonly<Record<string, string>> = {
  'test/datastore/archive-stats.test.ts': 'DISK: every case sums the sizes of the chunk files in .chunks/; one runs the CLI (CHILD)',
  'test/datastore/damage.test.ts': 'DISK: every case flips, swaps or removes chunk, index, manifest or config files on disk, or plants a nested datastore',
  'test/datastore/dry-run.test.ts': 'DISK: both cases list .chunks/ on disk to compare the prediction with the chunk files written, and check their mtimes',
  'test/datastore/keyspace.test.ts': 'runs every case on a MemoryBackend and on local files itself (opens no Datastore)',
  'test/datastore/lock-holder.test.ts': 'CHILD: lock holders are other processes opening the same datastore',
  'test/datastore/locks-crash.test.ts': 'CHILD: its point is a backup process killed with SIGKILL and the datastore reopened by the next process',
  'test/datastore/snapshot-chunks.test.ts': 'DISK: damages an index file on disk to check that the walk throws or yields the damage',
  'test/datastore/snapshot-import.test.ts': 'runs on a MemoryBackend itself (an import into a memory datastore), and counts the chunk files of its local targets (DISK)',
  'test/datastore/writer-registry.test.ts': 'CHILD: live and dead writers are other processes',
  'test/maintenance/concurrency.test.ts': 'CHILD: backups, prunes and GCs run as concurrent child processes',
  'test/maintenance/gc.test.ts':
    'DISK: the cases plant, age or inspect chunk and temp files on disk (the GC on a MemoryBackend has its own file, test/maintenance/gc-memory.test.ts)',
  'test/maintenance/gc-skew.test.ts':
    "DISK: measures the filesystem's timestamp granularity and plants stale temp files (the skew through a MemoryBackend is in gc-memory.test.ts)",
  'test/maintenance/gc-memory.test.ts': 'runs on a MemoryBackend already (and on local files for comparison)',
  'test/store/chunk-raw.test.ts': 'opens its own stores, on a MemoryBackend and on local files',
  'test/store/chunk-reader.test.ts': 'opens no Datastore (it builds a ChunkStore over a LocalBackend itself, and has its own MemoryBackend case)',
  'test/store/chunk-store.test.ts': 'opens no Datastore (a ChunkStore over a LocalBackend); DISK: checks shard files and mtimes',
};

/** Top-level subtests skipped in a file that otherwise runs: file → subtest name → reason. */
export const SKIPPED_SUBTESTS: Readonly<Record<string, Readonly<Record<string, string>>>> = {
  'test/datastore/first-hour.test.ts': {
    'an aborted first backup leaves no group directory':
      'DISK: reads vm/ on disk; also asserts the group exists while its first backup runs, which on a backend without directories holds only once a key is in it (keyspace.ts: making a folder writes nothing)',
    'an aborted first backup leaves a group alone that holds something else': 'DISK: plants a file in the group directory on disk',
    'committing a snapshot with no archive is refused; the writer stays usable': 'DISK: lists the snapshot directory on disk',
    'cairn restore finds an archive by the name given to the writer': 'CHILD: the CLI opens the datastore',
  },
  'test/datastore/incremental.test.ts': {
    'a base whose verify state is failed is not used, so lost chunks are written again': 'DISK: removes chunk files on disk',
  },
  'test/datastore/image-roundtrip.test.ts': {
    'zero regions are stored once and restore sparse': 'DISK: counts the chunk files in .chunks/',
  },
  'test/datastore/long-lived.test.ts': {
    'a backup removes the unfinished directories newer than its base; prune removes older ones': 'DISK: lists the group directory with LocalBackend.listNames',
  },
  'test/datastore/lock-abort.test.ts': {
    'a backup waiting for its group lock and a reader waiting for a snapshot lock end on abort': 'DISK: lists the group directory on disk',
  },
  'test/datastore/move.test.ts': {
    'a snapshot in use stays; running the move again finishes it': "DISK: plants a crashed backup's snapshot directory on disk",
  },
  'test/maintenance/catalog.test.ts': {
    'one database per process: a second open shares it and keeps the lock': 'CHILD: a script in another process opens the datastore',
    'cairn catalog find / rebuild': 'CHILD: the CLI opens the datastore',
  },
  'test/maintenance/pruner.test.ts': {
    'unfinished directories: newest kept partial, older removed unless a backup runs': 'DISK: makes unfinished snapshot directories on disk',
    'the base of a running backup is skipped':
      'EMPTY FOLDER: expects the running backup, which has written nothing yet, in the plan as keep-partial; on a backend without directories its folder exists only once its first key does (keyspace.ts), so the plan has one entry fewer (the base is still skipped: it is locked)',
  },
  'test/maintenance/verifier.test.ts': {
    'ignoreVerified skips ok snapshots unless outdated; failed ones are re-checked': 'DISK: removes a chunk file on disk',
    'a flipped byte fails every snapshot sharing the chunk and renames the chunk aside': 'DISK: flips a byte in a chunk file and looks for the .bad file',
    'quarantine numbering reuses .9.bad when all ten exist': 'DISK: plants .bad files next to a chunk file',
    'the loop: a failed snapshot is not a base, the next backup heals, verify passes again': 'DISK: damages a chunk file on disk',
    'a damaged index fails the snapshot with ERR_INDEX_CORRUPT; a damaged blob with ERR_BLOB_CORRUPT': 'DISK: damages an index and a blob file on disk',
  },
};

/** A regular expression matching exactly the given subtest names. */
export function exactNames(names: readonly string[]): RegExp {
  return new RegExp(`^(?:${names.map((n) => n.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')).join('|')})$`);
}

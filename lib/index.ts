/**
 * Cairn: an embeddable, deduplicating backup store.
 *
 * The public API: named exports only. The command line (lib/cli) and the FUSE adapter use nothing
 * else. On-disk formats: lib/format/FORMAT.md; the safety protocol: lib/datastore/SAFETY.md; the
 * storage seam: lib/backend/BACKENDS.md.
 *
 * @packageDocumentation
 */
export { CairnError, ERROR_CODES, isCairnError, isRetryable, errorFromJSON, type ErrorCode, type ErrorDetails, type CairnErrorJSON } from './errors.js';
export {
  BACKUP_TYPES,
  MAX_NAMESPACE_DEPTH,
  MAX_NAMESPACE_LENGTH,
  parseGroup,
  parseNamespace,
  parseSnapshotTime,
  formatSnapshotTime,
  type BackupType,
  type GroupId,
  type ArchiveKind,
  type SyncLevel,
} from './types.js';
export { Datastore, DEFAULT_IMAGE_CHUNK_SIZE, type DatastoreOpenOptions, type DatastoreCreateOptions, type ListNamespacesOptions } from './datastore/datastore.js';
export {
  localFilesOf,
  renamingOf,
  assertKey,
  type Backend,
  type BackendCapabilities,
  type BackendStat,
  type ByteRange,
  type GetOptions,
  type ListEntry,
  type ListOptions,
  type LocalFilesBackend,
  type PutOptions,
  type RenamingBackend,
} from './backend/backend.js';
export { LocalBackend } from './backend/local.js';
export { MemoryBackend, type MemoryBackendOptions } from './backend/memory.js';
export { Namespace, type RemoveNamespaceReport } from './datastore/namespace.js';
export { BackupGroup, type GroupEntry, type GroupScan, type DamagedSnapshot, type RemoveGroupReport } from './datastore/group.js';
export { Snapshot, snapshotIdentity, type SnapshotIdentity, type SnapshotRef } from './datastore/snapshot.js';
export { setLockHolderName, lockHolder, type LockHolder } from './host/locks.js';
export {
  SnapshotWriter,
  MIN_IMAGE_CHUNK,
  MAX_IMAGE_CHUNK,
  MAX_BLOB_SIZE,
  MAX_PADDING,
  TREE_META_CDC,
  type AddImageOptions,
  type ArchiveStats,
  type BackupOptions,
  type BackupProgress,
  type TreeArchiveStats,
} from './datastore/snapshot-writer.js';
export { SnapshotReader, type TreeIndexes, type SnapshotReaderOptions, type RestoreOptions, type RestoreProgress, type RestoreStats } from './datastore/snapshot-reader.js';
export { SnapshotImporter, SnapshotImportSource, type ImportSource, type ImportOptions, type ImportProgress, type ImportReport } from './datastore/snapshot-importer.js';
export { TreeReader, type TreeItem } from './datastore/tree-reader.js';
export type { AddTreeOptions, TreeStats, TreeProblem, TreeProgress, TreeScanStats } from './datastore/tree-writer.js';
export {
  BackupDryRun,
  type BackupDryRunOptions,
  type DryRunChunks,
  type DryRunTotals,
  type ImageDryRunStats,
  type TreeDryRunStats,
  type BlobDryRunStats,
} from './datastore/dry-run.js';
export type { RestoreTreeOptions, RestoreTreeStats } from './datastore/tree-restore.js';
export type { TreeTarOptions, TreeTarStats, TreeTarStream } from './datastore/tree-tar.js';
export type { ChunkStreamStats } from './datastore/chunk-stream.js';
export type { MoveGroupOptions, MoveGroupReport, MoveNamespaceOptions, MoveNamespaceReport, MoveProgress, MoveSkipped, MoveFailedGroup } from './datastore/move.js';
export type { TreeEntry, TreeEntryKind, TreeTrailer, TreeChildRef } from './format/tree.js';
export type { DynamicIndex } from './format/dynamic-index.js';
export {
  readBlobSource,
  type ReadBlobSourceOptions,
  type ImageSource,
  type ImagePathSource,
  type ImageStreamSource,
  type ChangedMap,
  type ChangedRanges,
  type ChangedBitmap,
} from './datastore/image-source.js';
export {
  Chunker,
  DEFAULT_CDC_PARAMS,
  resolveCdcParams,
  type CdcParams,
  type ChunkerKind,
  type ChunkerScanner,
  type ContentDefinedOptions,
  type SplitOptions,
} from './codec/chunker.js';
export { WorkerPool, type WorkerPoolOptions, type EncodedChunk, type HashOptions } from './pool/worker-pool.js';
export {
  runBenchmark,
  BENCHMARK_REFERENCE,
  type BenchmarkId,
  type BenchmarkResult,
  type BenchmarkReport,
  type BenchmarkOptions,
  type BenchmarkMachine,
  type BenchmarkReference,
  type BenchmarkCpu,
} from './pool/benchmark.js';
export type { Manifest, ManifestFile, ManifestUnprotected, ManifestVerifyState } from './format/manifest.js';
export type { FixedIndex, ByteSpan } from './format/fixed-index.js';
export { PLAIN_CHUNK_FORMAT, type ChunkFormat, type ChunkDigestKind, type ChunkCryptMode, type EnvelopeCorruptCode } from './codec/envelope.js';
export type { EncodeResult, HashResult } from './pool/protocol.js';
export type { DatastoreConfig } from './format/config.js';
export { systemClock, type Clock } from './util/clock.js';
export {
  Catalog,
  CATALOG_DIR,
  CATALOG_LAYOUT_VERSION,
  type CatalogOpenOptions,
  type CatalogScope,
  type CatalogUpdateOptions,
  type CatalogUpdateReport,
  type CatalogFindOptions,
  type CatalogHit,
  type CatalogSkip,
  type CatalogProgress,
} from './maintenance/catalog.js';
export {
  planPrune,
  isoWeek,
  type IsoWeek,
  keepsSomething,
  checkPruneOptions,
  localTimeZone,
  type KeepOptions,
  type PrunePlanOptions,
  type ResolvedPruneOptions,
  type PruneMark,
  type PruneCandidate,
  type PrunePlanEntry,
} from './maintenance/prune-plan.js';
export { Pruner, type PruneScope, type PruneEntry, type PrunePlan, type PruneProgress, type PruneApplyOptions, type PruneTotals, type PruneReport } from './maintenance/pruner.js';
export {
  Verifier,
  type VerifyScope,
  type VerifyOptions,
  type VerifyProgress,
  type VerifyProblem,
  type VerifySnapshotResult,
  type VerifyFailedChunk,
  type VerifyReport,
} from './maintenance/verifier.js';
export {
  datastoreStats,
  type StatsScope,
  type StatsOptions,
  type StatsProgress,
  type SpaceStats,
  type GroupSpaceStats,
  type NamespaceSpaceStats,
  type StatsSkipped,
  type DatastoreStats,
} from './maintenance/stats.js';
export { GarbageCollector, GC_LOCK_KEY, GC_STATUS_KEY, DEFAULT_GC_SKEW_MS, STALE_TEMP_MIN_AGE_MS, type GcOptions, type GcProgress, type GcReport } from './maintenance/gc.js';
export {
  measureTimestampSkew,
  measureBackendTimestamps,
  GC_PROBE_PREFIX,
  chooseGcSkew,
  gcSkewFor,
  gcSkewOf,
  mountOf,
  parseMountInfo,
  isNetworkFilesystem,
  LOCAL_SKEW_MARGIN_MS,
  type TimestampMeasurement,
  type MeasureOptions,
  type MountEntry,
  type GcSkew,
  type GcSkewReason,
  type GcSkewInput,
  type GcSkewOptions,
} from './maintenance/gc-skew.js';
export {
  diffSnapshots,
  diffSnapshotId,
  type DiffOptions,
  type DiffProgress,
  type DiffRange,
  type DiffSnapshotId,
  type SnapshotDiff,
  type ArchiveDiff,
  type ArchiveDiffPresence,
  type TreeArchiveDiff,
  type ImageArchiveDiff,
  type BlobArchiveDiff,
  type TreeChange,
  type TreeChangeKind,
  type TreeChangeField,
  type TreeDiffCounts,
} from './maintenance/diff.js';

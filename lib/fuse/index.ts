/**
 * The FUSE adapter (`cairn/fuse`): mount a snapshot, or a whole datastore, read-only.
 *
 * A separate entry point so that programs that never mount do not load fuse-native (which needs
 * libfuse2 on the machine).
 *
 * @module
 */
export { mountSnapshot, mountDatastore, type Mount, type MountOptions, type MountDatastoreOptions } from './mount.js';

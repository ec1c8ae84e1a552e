/**
 * Where chunks live in a datastore's keyspace (layer L3): `.chunks/<2 hex>/<64 hex>`, 256 shards
 * (chunk-store.ts says why). Shared by the chunk store and its sweep.
 */

/** Folder of the chunk files inside a datastore. */
export const CHUNK_DIR = '.chunks';

/** The backend key of a chunk. */
export function chunkKey(digestHex: string): string {
  return `${CHUNK_DIR}/${digestHex.slice(0, 2)}/${digestHex}`;
}

/** The shard directories (`.chunks/00` … `.chunks/ff`). */
export function shardKeys(): string[] {
  return Array.from({ length: 256 }, (_, i) => `${CHUNK_DIR}/${i.toString(16).padStart(2, '0')}`);
}

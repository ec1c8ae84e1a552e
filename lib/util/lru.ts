/**
 * A least-recently-used map capped by total bytes (layer L0), for chunk caches.
 */
export class ByteLru<K, V extends { readonly byteLength: number }> {
  private readonly map = new Map<K, V>();
  private total = 0;

  /** @param capacity - the most bytes kept; an entry larger than this is never kept. */
  constructor(readonly capacity: number) {}

  /** Bytes held. */
  get bytes(): number {
    return this.total;
  }

  /** Entries held. */
  get size(): number {
    return this.map.size;
  }

  /** The value, marked as most recently used. */
  get(key: K): V | undefined {
    const v = this.map.get(key);
    if (v !== undefined) {
      this.map.delete(key);
      this.map.set(key, v);
    }
    return v;
  }

  /** Adds or replaces an entry, evicting the least recently used ones to stay within capacity. */
  set(key: K, value: V): void {
    const old = this.map.get(key);
    if (old !== undefined) {
      this.map.delete(key);
      this.total -= old.byteLength;
    }
    if (value.byteLength > this.capacity) return;
    this.map.set(key, value);
    this.total += value.byteLength;
    for (const [k, v] of this.map) {
      if (this.total <= this.capacity) break;
      this.map.delete(k);
      this.total -= v.byteLength;
    }
  }

  /** Drops everything. */
  clear(): void {
    this.map.clear();
    this.total = 0;
  }
}

/**
 * A free list of equal-sized ArrayBuffers (layer L0), so a hot loop that hands chunk buffers to
 * worker threads and gets them back reuses memory instead of allocating (and page-faulting) a
 * fresh buffer per chunk. Buffers taken from it are whole, unpooled ArrayBuffers: transferable.
 */
export class BufferPool {
  private readonly free: ArrayBuffer[] = [];

  /**
   * @param size - bytes per buffer
   * @param max - buffers kept at most (the rest are left to the garbage collector)
   */
  constructor(
    readonly size: number,
    readonly max: number,
  ) {}

  /** Buffers waiting to be reused. */
  get available(): number {
    return this.free.length;
  }

  /** A buffer of `size` bytes (its content is whatever was there before). */
  take(): Uint8Array {
    const b = this.free.pop();
    return b === undefined ? new Uint8Array(this.size) : new Uint8Array(b);
  }

  /** Returns a buffer for reuse; ignored when it has another size, was transferred away, or the pool is full. */
  give(buf: ArrayBufferLike | undefined): void {
    if (buf instanceof ArrayBuffer && buf.byteLength === this.size && this.free.length < this.max) this.free.push(buf);
  }
}

/**
 * A gate that bounds the bytes in flight (layer L0): `acquire(n)` waits while admitting `n` more
 * bytes would pass the limit. One request larger than the limit is admitted when nothing else is
 * in flight, so progress never stalls.
 */
export class ByteGate {
  private inFlight = 0;
  private readonly waiters: { n: number; resolve: () => void }[] = [];

  /** @param limit - the most bytes admitted at once. */
  constructor(readonly limit: number) {}

  /** Bytes admitted and not yet released. */
  get bytesInFlight(): number {
    return this.inFlight;
  }

  /** Waits until `n` bytes may be admitted, then admits them. */
  async acquire(n: number): Promise<void> {
    if (this.waiters.length === 0 && this.fits(n)) {
      this.inFlight += n;
      return;
    }
    await new Promise<void>((resolve) => this.waiters.push({ n, resolve }));
  }

  /** Releases `n` admitted bytes and wakes the waiters that now fit, in order. */
  release(n: number): void {
    this.inFlight -= n;
    while (this.waiters.length > 0 && this.fits(this.waiters[0]!.n)) {
      const w = this.waiters.shift()!;
      this.inFlight += w.n;
      w.resolve();
    }
  }

  private fits(n: number): boolean {
    return this.inFlight === 0 || this.inFlight + n <= this.limit;
  }
}

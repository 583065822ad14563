/** A token bucket per key: `burst` requests at once, refilled at `perSecond`. Pure; the clock is passed in. */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private takes = 0;

  constructor(
    private burst: number,
    private perSecond: number,
  ) {}

  /** A limit of `perMinute` requests, with bursts of a tenth of that (at least 10). */
  static perMinute(perMinute: number): RateLimiter {
    return new RateLimiter(Math.max(10, Math.ceil(perMinute / 10)), perMinute / 60);
  }

  setPerMinute(perMinute: number): void {
    this.burst = Math.max(10, Math.ceil(perMinute / 10));
    this.perSecond = perMinute / 60;
    this.buckets.clear();
  }

  /** Keys being tracked (for tests and metrics). */
  get size(): number {
    return this.buckets.size;
  }

  /**
   * Forget keys whose bucket has refilled: a full bucket and no bucket answer alike, so this
   * changes no decision, and a server seeing many addresses does not grow without bound.
   */
  sweep(now: number): void {
    for (const [key, b] of this.buckets) if (b.tokens + ((now - b.at) / 1000) * this.perSecond >= this.burst) this.buckets.delete(key);
  }

  /** Takes one token for `key`; false when the key is over its rate. */
  take(key: string, now: number): boolean {
    if (++this.takes % 4096 === 0) this.sweep(now);
    const b = this.buckets.get(key) ?? { tokens: this.burst, at: now };
    const tokens = Math.min(this.burst, b.tokens + ((now - b.at) / 1000) * this.perSecond);
    if (tokens < 1) {
      this.buckets.set(key, { tokens, at: now });
      return false;
    }
    this.buckets.set(key, { tokens: tokens - 1, at: now });
    return true;
  }
}

interface Bucket {
  tokens: number;
  /** When `tokens` was last brought up to date (ms). */
  at: number;
}

/**
 * Token buckets in memory, one per key: `perMinute` requests a minute on average, bursts of up to `perMinute`.
 * Per process (several instances behind a balancer each allow the full rate). Buckets that have refilled are
 * forgotten now and then, and the oldest go first when more than `maxKeys` are tracked.
 */
export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly perMs: number;
  private takes = 0;

  constructor(
    /** 0 turns limiting off. */
    readonly perMinute: number,
    private readonly now: () => number = Date.now,
    private readonly maxKeys = 100_000,
  ) {
    this.perMs = perMinute / 60_000;
  }

  /** Takes a token: 0 if allowed, else the seconds until one is available (at least 1). */
  take(key: string): number {
    if (this.perMinute <= 0) return 0;
    const now = this.now();
    if (++this.takes % 1024 === 0) this.sweep(now);
    let b = this.buckets.get(key);
    if (b) {
      b.tokens = Math.min(this.perMinute, b.tokens + (now - b.at) * this.perMs);
      b.at = now;
      // Most recently used last, so eviction takes the least recently used.
      this.buckets.delete(key);
    } else {
      b = { tokens: this.perMinute, at: now };
      if (this.buckets.size >= this.maxKeys) this.buckets.delete(this.buckets.keys().next().value as string);
    }
    this.buckets.set(key, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - b.tokens) / this.perMs / 1000));
  }

  /** Buckets tracked (for tests). */
  get size(): number {
    return this.buckets.size;
  }

  private sweep(now: number): void {
    for (const [key, b] of this.buckets) {
      if (b.tokens + (now - b.at) * this.perMs >= this.perMinute) this.buckets.delete(key);
    }
  }
}

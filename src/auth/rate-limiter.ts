import { RateLimitedError } from '../http/errors';

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

  /** The seconds until `key` has a token (0: one is there now), without taking it. */
  wait(key: string): number {
    if (this.perMinute <= 0) return 0;
    const b = this.buckets.get(key);
    if (!b) return 0;
    const tokens = Math.min(this.perMinute, b.tokens + (this.now() - b.at) * this.perMs);
    return tokens >= 1 ? 0 : Math.max(1, Math.ceil((1 - tokens) / this.perMs / 1000));
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

/** The bucket of failed key checks from one client address. */
export const failureBucket = (ip: string): string => `authfail:${ip}`;

/**
 * The rate limits of a key check, for every kind of key: an address that failed too many checks is refused before any
 * lookup (so guessing keys stays slow); a failed check spends one of its address's tokens; a key that checks out
 * spends only its own (`bucket`), so one key's burst never refuses another key, whichever address they share
 * (behind a proxy that is not in TRUSTED_PROXIES every client shares the proxy's). 429 `rate_limited` with the wait.
 */
export async function limitKeyCheck<T>(
  limiter: RateLimiter,
  ip: string,
  lookup: () => Promise<T | null>,
  bucket: (found: T) => string,
  unauthorized: () => Error,
): Promise<T> {
  const failures = failureBucket(ip);
  const ipWait = limiter.wait(failures);
  if (ipWait > 0) throw new RateLimitedError(ipWait);
  const found = await lookup();
  if (found === null) {
    limiter.take(failures);
    throw unauthorized();
  }
  const keyWait = limiter.take(bucket(found));
  if (keyWait > 0) throw new RateLimitedError(keyWait);
  return found;
}

import * as hdr from 'hdr-histogram-js';
import { quantile } from '../../src/stats/quantile';

/**
 * Small statistics for the benchmarks: percentiles of samples, HDR histograms that travel between processes,
 * and the aggregation of repeated measurements into a value with its run-to-run noise.
 */

/** The q-th percentile (q in 0..100) of unsorted samples, by the project's one definition (src/stats/quantile.ts,
 *  linear between the two nearest ranks, as /stats reports); NaN when there are none. */
export function percentile(xs: readonly number[], q: number): number {
  return (
    quantile(
      [...xs].sort((a, b) => a - b),
      q / 100,
    ) ?? NaN
  );
}

export function median(xs: readonly number[]): number {
  return percentile(xs, 50);
}

export function round(x: number, digits = 2): number {
  if (!Number.isFinite(x)) return x;
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** Latency percentiles in milliseconds. */
export interface Latency {
  n: number;
  p50: number;
  p90: number;
  /** Absent in runs made before it was recorded. */
  p95?: number;
  p99: number;
  max: number;
}

export function latencyOf(msSamples: readonly number[]): Latency {
  return {
    n: msSamples.length,
    p50: round(percentile(msSamples, 50), 3),
    p90: round(percentile(msSamples, 90), 3),
    p95: round(percentile(msSamples, 95), 3),
    p99: round(percentile(msSamples, 99), 3),
    max: round(msSamples.length ? Math.max(...msSamples) : NaN, 3),
  };
}

/**
 * One figure measured `reps` times. `value` is the median of the repetitions; `noise` is their relative range,
 * (max - min) / |median|: the run-to-run spread that bench:compare uses as its threshold.
 */
export interface Repeated {
  value: number;
  min: number;
  max: number;
  noise: number;
  reps: number[];
}

export function repeated(reps: readonly number[], digits = 3): Repeated {
  const finite = reps.filter((x) => Number.isFinite(x));
  if (finite.length === 0) return { value: NaN, min: NaN, max: NaN, noise: NaN, reps: [...reps] };
  const value = median(finite);
  const min = Math.min(...finite);
  const max = Math.max(...finite);
  return {
    value: round(value, digits),
    min: round(min, digits),
    max: round(max, digits),
    noise: value === 0 ? (max === min ? 0 : NaN) : round((max - min) / Math.abs(value), 4),
    reps: finite.map((x) => round(x, digits)),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// HDR histograms. Values are recorded as integers in microseconds; they cross process boundaries as
// compressed base64 strings and are merged by adding.

export type Histogram = hdr.Histogram;

export function newHistogram(): Histogram {
  // 1 µs .. 10 min, 3 significant digits; grows if ever exceeded.
  return hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 600_000_000,
    numberOfSignificantValueDigits: 3,
  });
}

export function recordMs(h: Histogram, ms: number): void {
  if (Number.isFinite(ms) && ms >= 0) h.recordValue(Math.max(1, Math.round(ms * 1000)));
}

export function encodeHistogram(h: Histogram): string {
  return hdr.encodeIntoCompressedBase64(h);
}

/** Adds the encoded histograms together (empty strings are skipped). */
export function mergeHistograms(encoded: readonly string[]): Histogram {
  const total = newHistogram();
  for (const e of encoded) {
    if (!e) continue;
    const h = hdr.decodeFromCompressedBase64(e);
    total.add(h);
    h.destroy();
  }
  return total;
}

/** Percentiles of a µs histogram, in ms. */
export function histogramLatency(h: Histogram): Latency {
  const ms = (us: number) => round(us / 1000, 3);
  if (h.totalCount === 0) return { n: 0, p50: NaN, p90: NaN, p95: NaN, p99: NaN, max: NaN };
  return {
    n: h.totalCount,
    p50: ms(h.getValueAtPercentile(50)),
    p90: ms(h.getValueAtPercentile(90)),
    p95: ms(h.getValueAtPercentile(95)),
    p99: ms(h.getValueAtPercentile(99)),
    max: ms(h.maxValue),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Prometheus text format (the gateway's GET /metrics): enough to read counters and histogram buckets.

/** Sample values by `name{labels}` exactly as printed (labels in the order the server prints them). */
export type PromSamples = Map<string, number>;

export function parsePrometheus(text: string): PromSamples {
  const out: PromSamples = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*(?:\{[^}]*\})?)\s+(\S+)/.exec(line);
    if (m) out.set(m[1], Number(m[2]));
  }
  return out;
}

/** Sum of every sample of metric `name` whose labels include all of `labels`. */
export function promSum(s: PromSamples, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const [key, value] of s) {
    const brace = key.indexOf('{');
    const metric = brace < 0 ? key : key.slice(0, brace);
    if (metric !== name) continue;
    const have = brace < 0 ? '' : key.slice(brace);
    if (Object.entries(labels).every(([k, v]) => have.includes(`${k}="${v}"`))) total += value;
  }
  return total;
}

/**
 * Cumulative bucket counts of a histogram (`le` upper bounds in seconds), summed over every series whose labels
 * include `labels` (so `{}` combines all label values).
 */
export function promBuckets(
  s: PromSamples,
  name: string,
  labels: Record<string, string> = {},
): Array<[number, number]> {
  const byBound = new Map<number, number>();
  for (const [key, value] of s) {
    if (!key.startsWith(`${name}_bucket{`)) continue;
    if (!Object.entries(labels).every(([k, v]) => key.includes(`${k}="${v}"`))) continue;
    const le = /le="([^"]+)"/.exec(key)?.[1];
    if (le === undefined) continue;
    const bound = le === '+Inf' ? Infinity : Number(le);
    byBound.set(bound, (byBound.get(bound) ?? 0) + value);
  }
  return [...byBound.entries()].sort((a, b) => a[0] - b[0]);
}

/**
 * A quantile (0..1) from cumulative bucket counts, interpolated linearly inside the bucket, as Prometheus's
 * histogram_quantile does. Coarse by nature: the answer is only as fine as the bucket bounds.
 */
export function bucketQuantile(buckets: ReadonlyArray<[number, number]>, q: number): number {
  if (buckets.length === 0) return NaN;
  const total = buckets[buckets.length - 1][1];
  if (total <= 0) return NaN;
  const rank = q * total;
  let prevBound = 0;
  let prevCount = 0;
  for (const [bound, count] of buckets) {
    if (count >= rank) {
      if (bound === Infinity) return prevBound; // beyond the last finite bound: report that bound
      const inBucket = count - prevCount;
      return inBucket > 0 ? prevBound + ((bound - prevBound) * (rank - prevCount)) / inBucket : bound;
    }
    prevBound = bound;
    prevCount = count;
  }
  return prevBound;
}

/** Bucket counts of `after` minus `before` (same metric and labels). */
export function bucketDelta(
  after: ReadonlyArray<[number, number]>,
  before: ReadonlyArray<[number, number]>,
): Array<[number, number]> {
  const prior = new Map(before.map(([b, c]) => [b, c]));
  return after.map(([b, c]) => [b, c - (prior.get(b) ?? 0)]);
}

/**
 * The project's one quantile definition (issue #13): linear interpolation between the two closest ranks. Of n values
 * sorted ascending, the q-quantile (0 <= q <= 1) is at h = (n - 1) * q: v[floor(h)] + (h - floor(h)) *
 * (v[floor(h) + 1] - v[floor(h)]). The median of an even count is the mean of the two middle values. It is numpy's
 * default, Excel's PERCENTILE.INC and PostgreSQL's percentile_cont. Dependency-free, so scripts can import this file.
 */

/** The q-quantile of n values, the value of rank i (0-based, ascending) given by valueAt(i). null for n = 0. */
export function quantileAt(n: number, q: number, valueAt: (rank: number) => number): number | null {
  if (!(q >= 0 && q <= 1)) throw new RangeError('q must be within [0, 1]');
  if (n === 0) return null;
  const h = (n - 1) * q;
  const lo = Math.floor(h);
  const hi = Math.min(lo + 1, n - 1);
  const at = valueAt(lo);
  return hi === lo || h === lo ? at : at + (h - lo) * (valueAt(hi) - at);
}

/** The q-quantile of values sorted ascending (see quantileAt); null for no values. */
export function quantile(sorted: readonly number[], q: number): number | null {
  return quantileAt(sorted.length, q, (i) => sorted[i]);
}

/** `count` whole-number values v with lo <= v < hi. */
export interface HistogramBucket {
  lo: number;
  hi: number;
  count: number;
}

/**
 * The q-quantile of the values a histogram counts (buckets ascending, not overlapping), by the same definition: the
 * value of each rank is estimated inside its bucket, the bucket's values taken as spread evenly over its whole numbers
 * lo .. hi - 1 (rank j of c at lo + (hi - 1 - lo) * (j + 0.5) / c). A bucket one wide gives its value exactly;
 * otherwise the estimate and the true value lie in the same bucket, so they differ by less than its width.
 */
export function histogramQuantile(buckets: readonly HistogramBucket[], q: number): number | null {
  const n = buckets.reduce((t, b) => t + b.count, 0);
  let b = 0;
  let below = 0; // values in the buckets before b
  return quantileAt(n, q, (rank) => {
    // Ranks are asked in ascending order; restart if not.
    if (rank < below) [b, below] = [0, 0];
    while (rank >= below + buckets[b].count) below += buckets[b++].count;
    const { lo, hi, count } = buckets[b];
    return lo + ((hi - 1 - lo) * (rank - below + 0.5)) / count;
  });
}

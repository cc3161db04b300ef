import type { DurationDistribution, IdentificationEventType, OutcomeCount, VerdictMethod } from '../storage/ports';
import {
  aggregateOutcomes,
  DURATION_HISTOGRAM_BITS,
  PERCENTILE_RELATIVE_ERROR,
  summarizeDistribution,
  summarizeDurations,
} from './aggregate';
import { histogramQuantile, quantile, quantileAt, type HistogramBucket } from './quantile';

/** One stored identification event's outcome columns. */
interface Row {
  type: IdentificationEventType;
  method: VerdictMethod;
  result: string;
  reason: string | null;
  durationMs: number | null;
}

const verdict = (method: VerdictMethod, result: string, durationMs: number | null = null): Row => ({
  type: 'identification.verdict',
  method,
  result,
  reason: null,
  durationMs,
});
const refused = (reason: string | null): Row => ({
  type: 'identification.refused',
  method: 'none',
  result: 'refused',
  reason,
  durationMs: null,
});
const expired = (): Row => ({
  type: 'identification.expired',
  method: 'none',
  result: 'expired',
  reason: null,
  durationMs: null,
});
const lockedOut = (method: VerdictMethod, durationMs: number | null = null): Row => ({
  type: 'identification.locked_out',
  method,
  result: 'locked_out',
  reason: null,
  durationMs,
});

/** One histogram bucket per distinct value (what a histogram of 1 ms buckets would give: exact). */
const unitHistogram = (values: readonly number[]): DurationDistribution => {
  const counts = new Map<number, number>();
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
  const buckets = [...counts].sort((a, b) => a[0] - b[0]).map(([lo, count]) => ({ lo, hi: lo + 1, count }));
  return { kind: 'histogram', count: values.length, buckets };
};

/** What the database gives for these rows: counts grouped by the outcome columns, timed verdicts' durations. */
function stored(rows: readonly Row[]): Parameters<typeof aggregateOutcomes> {
  const counts = new Map<string, OutcomeCount>();
  for (const { durationMs: _, ...columns } of rows) {
    const key = JSON.stringify(columns);
    const c = counts.get(key);
    if (c) c.count++;
    else counts.set(key, { ...columns, count: 1 });
  }
  const timed = (m: VerdictMethod) =>
    rows
      .filter((r) => r.type === 'identification.verdict' && r.method === m && r.durationMs !== null)
      .map((r) => r.durationMs!);
  return [
    [...counts.values()],
    {
      face: unitHistogram(timed('face')),
      code: unitHistogram(timed('code')),
      all: unitHistogram([...timed('face'), ...timed('code')]),
    },
  ];
}

/**
 * The buckets SQLite counts (storage/repositories/events.ts, histogramDurations), modelled here: a value below
 * 2^bits is its own bucket, a larger one keeps its top `bits` bits.
 */
function sqliteHistogram(values: readonly number[], bits: number): HistogramBucket[] {
  const byLo = new Map<number, HistogramBucket>();
  for (const v of values) {
    const shift = v < 2 ** bits ? 0 : Math.floor(Math.log2(v)) + 1 - bits;
    const width = 2 ** shift;
    const lo = Math.floor(v / width) * width;
    const b = byLo.get(lo) ?? { lo, hi: lo + width, count: 0 };
    b.count++;
    byLo.set(lo, b);
  }
  return [...byLo.values()].sort((a, b) => a.lo - b.lo);
}

/** A reproducible pseudo-random sequence in [0, 1) (mulberry32). */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('quantile (linear interpolation between closest ranks)', () => {
  it('is null for no values and the value itself for one', () => {
    expect(quantile([], 0.5)).toBeNull();
    expect(quantile([7], 0.5)).toBe(7);
    expect(quantile([7], 0.9)).toBe(7);
  });

  it('takes the middle value of an odd count and the mean of the two middle ones of an even count', () => {
    expect(quantile([1, 2, 3], 0.5)).toBe(2);
    expect(quantile([1, 2, 3, 10], 0.5)).toBe(2.5);
  });

  it('interpolates p90 at h = (n - 1) * 0.9', () => {
    // n = 5: h = 3.6, between 40 and 100: 40 + 0.6 * 60 = 76.
    expect(quantile([10, 20, 30, 40, 100], 0.9)).toBeCloseTo(76, 10);
    // n = 11 (0..100 by 10): h = 9 exactly.
    expect(
      quantile(
        Array.from({ length: 11 }, (_, i) => i * 10),
        0.9,
      ),
    ).toBeCloseTo(90, 10);
    expect(quantile([1, 2], 0)).toBe(1);
    expect(quantile([1, 2], 1)).toBe(2);
    expect(() => quantile([1], 1.5)).toThrow(RangeError);
  });

  it('summarizeDurations sorts first and rounds to 0.1 ms', () => {
    expect(summarizeDurations([100, 10, 40, 30, 20])).toEqual({ count: 5, median: 30, p90: 76 });
    expect(summarizeDurations([1, 2])).toEqual({ count: 2, median: 1.5, p90: 1.9 });
    expect(summarizeDurations([0, 1, 1])).toEqual({ count: 3, median: 1, p90: 1 });
    expect(summarizeDurations([])).toEqual({ count: 0, median: null, p90: null });
  });
});

describe('quantileAt and histogramQuantile (the same definition over ranks)', () => {
  it('reads only the one or two ranks it needs, in ascending order', () => {
    const asked: number[] = [];
    expect(quantileAt(11, 0.9, (i) => (asked.push(i), i * 10))).toBe(90);
    expect(quantileAt(5, 0.9, (i) => (asked.push(i), [10, 20, 30, 40, 100][i]))).toBeCloseTo(76, 10);
    expect(asked).toEqual([9, 3, 4]);
    expect(quantileAt(0, 0.5, () => 1)).toBeNull();
    expect(() => quantileAt(3, -0.1, () => 1)).toThrow(RangeError);
  });

  it('is exact when every bucket is 1 wide, whatever the counts', () => {
    const next = random(7);
    for (let trial = 0; trial < 50; trial++) {
      const values = Array.from({ length: 1 + Math.floor(next() * 40) }, () => Math.floor(next() * 300) - 20);
      const sorted = [...values].sort((a, b) => a - b);
      const hist = (unitHistogram(values) as { buckets: HistogramBucket[] }).buckets;
      for (const q of [0, 0.1, 0.5, 0.9, 1]) expect(histogramQuantile(hist, q)).toBeCloseTo(quantile(sorted, q)!, 9);
    }
  });

  it('spreads a wide bucket’s values evenly over its whole numbers, and skips empty buckets', () => {
    // 4 values in [100, 110): at 100 + 9 * (j + 0.5) / 4, j = 0..3 -> 101.125, 103.375, 105.625, 107.875.
    const b = [
      { lo: 0, hi: 1, count: 0 },
      { lo: 100, hi: 110, count: 4 },
      { lo: 500, hi: 501, count: 0 },
    ];
    expect(histogramQuantile(b, 0)).toBeCloseTo(101.125, 10);
    expect(histogramQuantile(b, 1)).toBeCloseTo(107.875, 10);
    expect(histogramQuantile(b, 0.5)).toBeCloseTo(104.5, 10);
    expect(histogramQuantile([], 0.5)).toBeNull();
  });

  it(`stays within the documented ${PERCENTILE_RELATIVE_ERROR} of the exact value on SQLite's buckets`, () => {
    expect(PERCENTILE_RELATIVE_ERROR).toBe(1 / 128);
    const next = random(42);
    let worst = 0;
    for (let trial = 0; trial < 200; trial++) {
      // Log-normal-ish times to verdict from a few ms to several minutes, some trials with few values.
      const n = trial % 4 === 0 ? 1 + Math.floor(next() * 10) : 200 + Math.floor(next() * 2000);
      const median = 2 ** (3 + next() * 14);
      const values = Array.from({ length: n }, () =>
        Math.round(median * Math.exp(0.8 * Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next()))),
      );
      const sorted = [...values].sort((a, b) => a - b);
      const hist = sqliteHistogram(values, DURATION_HISTOGRAM_BITS);
      for (const q of [0.5, 0.9]) {
        const exact = quantile(sorted, q)!;
        const error = Math.abs(histogramQuantile(hist, q)! - exact);
        expect(error).toBeLessThan(Math.max(exact * PERCENTILE_RELATIVE_ERROR, 1e-9));
        // Exact when the ranks it interpolates between are both below 2^bits ms (1 ms buckets).
        if (sorted[Math.ceil((n - 1) * q)] < 2 ** DURATION_HISTOGRAM_BITS) expect(error).toBeLessThan(1e-9);
        worst = Math.max(worst, error / Math.max(1, exact));
      }
    }
    expect(worst).toBeGreaterThan(0); // the buckets above 256 ms are really coarser than 1 ms
  });

  it('summarizeDistribution rounds exact quantiles from the database and histogram estimates to 0.1 ms', () => {
    const exact = (count: number, median: number | null, p90: number | null): DurationDistribution => ({
      kind: 'exact',
      count,
      quantiles: [
        { q: 0.5, value: median },
        { q: 0.9, value: p90 },
      ],
    });
    expect(summarizeDistribution(exact(3, 1234.56, 5678.91))).toEqual({ count: 3, median: 1234.6, p90: 5678.9 });
    expect(summarizeDistribution(exact(0, null, null))).toEqual({ count: 0, median: null, p90: null });
    expect(() => summarizeDistribution({ kind: 'exact', count: 1, quantiles: [{ q: 0.5, value: 1 }] })).toThrow(/0.9/);
    expect(summarizeDistribution(unitHistogram([100, 10, 40, 30, 20]))).toEqual(
      summarizeDurations([100, 10, 40, 30, 20]),
    );
    expect(summarizeDistribution(unitHistogram([]))).toEqual({ count: 0, median: null, p90: null });
  });
});

describe('aggregateOutcomes', () => {
  it('gives zeroes and nulls for no outcomes', () => {
    const s = aggregateOutcomes(...stored([]));
    expect(s.identifications).toEqual({
      total: 0,
      byMethod: { face: 0, code: 0, none: 0 },
      byResult: {
        match: 0,
        no_match: 0,
        spoof_suspected: 0,
        no_template: 0,
        timeout: 0,
        error: 0,
        expired: 0,
        locked_out: 0,
      },
    });
    expect(s.refusals).toEqual({ count: 0, rate: null, reasons: {} });
    expect(s.failures.total).toBe(0);
    expect(s.failures.byKind).not.toHaveProperty('match');
    expect(s.timeToVerdictMs.all).toEqual({ count: 0, median: null, p90: null });
    expect(s.lockouts).toEqual({ face: 0, code: 0 });
  });

  it('counts a mix of outcomes', () => {
    const s = aggregateOutcomes(
      ...stored([
        verdict('face', 'match', 1000),
        verdict('face', 'match', 3000),
        verdict('face', 'no_match', 2000),
        verdict('face', 'spoof_suspected', 5000),
        verdict('face', 'timeout', null),
        verdict('face', 'error'),
        refused('patient_refused_photo'),
        refused('patient_refused_photo'),
        refused('camera_broken'),
        verdict('code', 'match', 40_000),
        verdict('code', 'match', 60_000),
        lockedOut('code', 90_000), // not a verdict: no time to verdict
        lockedOut('face'),
        expired(),
      ]),
    );
    expect(s.identifications).toEqual({
      total: 11,
      byMethod: { face: 7, code: 3, none: 1 },
      byResult: {
        match: 4,
        no_match: 1,
        spoof_suspected: 1,
        no_template: 0,
        timeout: 1,
        error: 1,
        expired: 1,
        locked_out: 2,
      },
    });
    // 3 refusals against 6 face verdicts.
    expect(s.refusals).toEqual({ count: 3, rate: 3 / 9, reasons: { patient_refused_photo: 2, camera_broken: 1 } });
    expect(s.failures).toEqual({
      total: 7,
      byKind: { no_match: 1, spoof_suspected: 1, no_template: 0, timeout: 1, error: 1, expired: 1, locked_out: 2 },
    });
    expect(s.lockouts).toEqual({ face: 1, code: 1 });
    // face [1000, 2000, 3000, 5000]: median 2500, p90 h = 2.7 -> 3000 + 0.7 * 2000 = 4400.
    expect(s.timeToVerdictMs.face).toEqual({ count: 4, median: 2500, p90: 4400 });
    expect(s.timeToVerdictMs.code).toEqual({ count: 2, median: 50_000, p90: 58_000 });
    // all [1000, 2000, 3000, 5000, 40000, 60000]: median 4000, p90 h = 4.5 -> 50000.
    expect(s.timeToVerdictMs.all).toEqual({ count: 6, median: 4000, p90: 50_000 });
  });

  it('keeps a result it does not know and a refusal without a reason', () => {
    const s = aggregateOutcomes(...stored([verdict('face', 'something_new'), refused(null)]));
    expect(s.identifications.byResult.something_new).toBe(1);
    expect(s.failures.byKind.something_new).toBe(1);
    expect(s.refusals).toEqual({ count: 1, rate: 0.5, reasons: { unspecified: 1 } });
  });
});

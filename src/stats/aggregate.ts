import type { DurationDistribution, OutcomeCount, VerdictDurations, VerdictResult } from '../storage/ports';
import { histogramQuantile, quantile } from './quantile';

/** Every outcome result, in the order the answer lists them. */
export const RESULTS: readonly VerdictResult[] = [
  'match',
  'no_match',
  'spoof_suspected',
  'no_template',
  'timeout',
  'error',
  'expired',
  'locked_out',
];

/** Percentiles of a set of durations; nulls when the set is empty. */
export interface DurationSummary {
  count: number;
  median: number | null;
  p90: number | null;
}

export interface Stats {
  identifications: {
    /** Outcomes of the window: verdicts (face, code), expiries and lock-outs. Refusals are not outcomes. */
    total: number;
    byMethod: { face: number; code: number; none: number };
    /** Every known result, zero when absent, plus any other result stored. */
    byResult: Record<string, number>;
  };
  refusals: {
    count: number;
    /** count / (count + face verdicts); null when both are 0. See REFUSAL_RATE_DEFINITION. */
    rate: number | null;
    reasons: Record<string, number>;
  };
  failures: {
    /** Outcomes other than `match`. */
    total: number;
    byKind: Record<string, number>;
  };
  timeToVerdictMs: { face: DurationSummary; code: DurationSummary; all: DurationSummary };
  lockouts: { face: number; code: number };
}

export const REFUSAL_RATE_DEFINITION =
  'refusals.rate = refusals / (refusals + face verdicts): of the in-person identifications that got as far as a ' +
  'face verdict or a refusal of the photo in the window, the share that were refusals. Sessions that ended with ' +
  'neither (remote appointments, sessions that expired before a frame) are not in it; null when nothing is.';

/**
 * Significant bits of the duration histogram that SQLite statistics count in SQL (it has no percentile function):
 * durations below 2^8 = 256 ms are counted exactly, longer ones in buckets at most 2^-7 of their lower bound wide.
 */
export const DURATION_HISTOGRAM_BITS = 8;

/**
 * The largest relative error of a median or p90 from the histogram (SQLite), before rounding to 0.1 ms: each rank's
 * estimate lies in the same bucket as its true value, so it is off by less than 2^(1 - bits) of it (not at all below
 * 2^bits ms), and so is the interpolation between two ranks (for durations >= 0).
 */
export const PERCENTILE_RELATIVE_ERROR = 2 ** (1 - DURATION_HISTOGRAM_BITS);

/** The quantiles the answer gives. */
const MEDIAN = 0.5;
const P90 = 0.9;

export const PERCENTILE_DEFINITION =
  'median and p90 are the 0.5 and 0.9 quantiles, interpolated linearly between the two nearest ranks ' +
  '(h = (n - 1) * q over the values sorted ascending; numpy’s default, Excel PERCENTILE.INC, PostgreSQL ' +
  'percentile_cont), rounded to 0.1 ms. With PostgreSQL they are exact. With SQLite, which has no percentile ' +
  'function, the database counts the durations into a histogram and each rank’s value is estimated inside its ' +
  `bucket (1 ms wide below ${2 ** DURATION_HISTOGRAM_BITS} ms): less than 1/${1 / PERCENTILE_RELATIVE_ERROR} ` +
  `(${(PERCENTILE_RELATIVE_ERROR * 100).toFixed(1)} %) from the exact value, and exact when the durations it lies ` +
  `between are below ${2 ** DURATION_HISTOGRAM_BITS} ms. ` +
  'face: first frame to verdict; code: code sent to verdict; all: both. Only verdicts count ' +
  '(not expiries or lock-outs) and only those with a known duration.';

const round1 = (x: number | null): number | null => (x === null ? null : Math.round(x * 10) / 10);

/** Median and p90 of a list of durations (exact), rounded to 0.1 ms. */
export function summarizeDurations(values: readonly number[]): DurationSummary {
  const sorted = [...values].sort((a, b) => a - b);
  return { count: sorted.length, median: round1(quantile(sorted, MEDIAN)), p90: round1(quantile(sorted, P90)) };
}

/** Median and p90 of the durations as storage gives them: exact quantiles, or estimated from a histogram. */
export function summarizeDistribution(d: DurationDistribution): DurationSummary {
  if (d.kind === 'histogram') {
    return {
      count: d.count,
      median: round1(histogramQuantile(d.buckets, MEDIAN)),
      p90: round1(histogramQuantile(d.buckets, P90)),
    };
  }
  const at = (q: number) => {
    const found = d.quantiles.find((x) => x.q === q);
    if (!found) throw new Error(`storage did not compute the ${q} quantile`);
    return d.count === 0 ? null : round1(found.value);
  };
  return { count: d.count, median: at(MEDIAN), p90: at(P90) };
}

/** What StatsService asks storage for the times to verdict (EventRepository.verdictDurations). */
export const DURATIONS_REQUEST = { quantiles: [MEDIAN, P90], histogramBits: DURATION_HISTOGRAM_BITS } as const;

const zeroes = (keys: readonly string[]): Record<string, number> => Object.fromEntries(keys.map((k) => [k, 0]));

/**
 * Statistics of a clinic's stored outcomes, from the counts and duration aggregates the database computed
 * (EventRepository.outcomeCounts and verdictDurations): counts, refusal rate, failures, times to verdict, lock-outs.
 * Reads only the outcome columns, never scores, liveness or anything biometric.
 */
export function aggregateOutcomes(counts: readonly OutcomeCount[], durations: VerdictDurations): Stats {
  const byMethod = { face: 0, code: 0, none: 0 };
  const byResult = zeroes(RESULTS);
  const reasons: Record<string, number> = {};
  const lockouts = { face: 0, code: 0 };
  let refusals = 0;
  let faceVerdicts = 0;
  let total = 0;
  for (const o of counts) {
    const n = o.count;
    if (o.type === 'identification.refused') {
      refusals += n;
      const reason = o.reason ?? 'unspecified';
      reasons[reason] = (reasons[reason] ?? 0) + n;
      continue;
    }
    total += n;
    byMethod[o.method] += n;
    byResult[o.result] = (byResult[o.result] ?? 0) + n;
    // A lock-out is either a face one (attempts limit) or the code's attempts running out.
    if (o.type === 'identification.locked_out') lockouts[o.method === 'face' ? 'face' : 'code'] += n;
    if (o.type === 'identification.verdict' && o.method === 'face') faceVerdicts += n;
  }
  const byKind = Object.fromEntries(Object.entries(byResult).filter(([result]) => result !== 'match'));
  const offered = refusals + faceVerdicts;
  return {
    identifications: { total, byMethod, byResult },
    refusals: { count: refusals, rate: offered === 0 ? null : refusals / offered, reasons },
    failures: { total: Object.values(byKind).reduce((a, b) => a + b, 0), byKind },
    timeToVerdictMs: {
      face: summarizeDistribution(durations.face),
      code: summarizeDistribution(durations.code),
      all: summarizeDistribution(durations.all),
    },
    lockouts,
  };
}

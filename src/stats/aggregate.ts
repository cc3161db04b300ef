import type { EventOutcome, VerdictResult } from '../storage/ports';

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

export const PERCENTILE_DEFINITION =
  'median and p90 are the 0.5 and 0.9 quantiles, interpolated linearly between the two nearest ranks ' +
  '(h = (n - 1) * q over the values sorted ascending; numpy’s default, Excel PERCENTILE.INC), rounded to 0.1 ms. ' +
  'face: first frame to verdict; code: code sent to verdict; all: both. Only verdicts count ' +
  '(not expiries or lock-outs) and only those with a known duration.';

/**
 * The q-quantile (0 <= q <= 1) of values sorted ascending, by linear interpolation between the closest ranks:
 * h = (n - 1) * q, then sorted[floor(h)] + (h - floor(h)) * (sorted[floor(h) + 1] - sorted[floor(h)]).
 * A median of an even count is the mean of the two middle values. null for no values.
 */
export function quantile(sorted: readonly number[], q: number): number | null {
  if (sorted.length === 0) return null;
  if (!(q >= 0 && q <= 1)) throw new RangeError('q must be within [0, 1]');
  const h = (sorted.length - 1) * q;
  const lo = Math.floor(h);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo] + (h - lo) * (sorted[hi] - sorted[lo]);
}

const round1 = (x: number | null): number | null => (x === null ? null : Math.round(x * 10) / 10);

export function summarizeDurations(values: readonly number[]): DurationSummary {
  const sorted = [...values].sort((a, b) => a - b);
  return { count: sorted.length, median: round1(quantile(sorted, 0.5)), p90: round1(quantile(sorted, 0.9)) };
}

const zeroes = (keys: readonly string[]): Record<string, number> => Object.fromEntries(keys.map((k) => [k, 0]));

/**
 * Statistics of a clinic's stored outcomes (EventRepository.outcomes): counts, refusal rate, failures, times to
 * verdict, lock-outs. Reads only the outcome columns, never scores, liveness or anything biometric.
 */
export function aggregateOutcomes(outcomes: readonly EventOutcome[]): Stats {
  const byMethod = { face: 0, code: 0, none: 0 };
  const byResult = zeroes(RESULTS);
  const reasons: Record<string, number> = {};
  const lockouts = { face: 0, code: 0 };
  const durations = { face: [] as number[], code: [] as number[] };
  let refusals = 0;
  let faceVerdicts = 0;
  let total = 0;

  for (const o of outcomes) {
    if (o.type === 'identification.refused') {
      refusals++;
      const reason = o.reason ?? 'unspecified';
      reasons[reason] = (reasons[reason] ?? 0) + 1;
      continue;
    }
    total++;
    byMethod[o.method]++;
    byResult[o.result] = (byResult[o.result] ?? 0) + 1;
    // A lock-out is either a face one (attempts limit) or the code's attempts running out.
    if (o.type === 'identification.locked_out') lockouts[o.method === 'face' ? 'face' : 'code']++;
    if (o.type === 'identification.verdict') {
      if (o.method === 'face') faceVerdicts++;
      if (o.durationMs !== null && (o.method === 'face' || o.method === 'code')) durations[o.method].push(o.durationMs);
    }
  }

  const byKind = Object.fromEntries(Object.entries(byResult).filter(([result]) => result !== 'match'));
  const offered = refusals + faceVerdicts;
  return {
    identifications: { total, byMethod, byResult },
    refusals: { count: refusals, rate: offered === 0 ? null : refusals / offered, reasons },
    failures: { total: Object.values(byKind).reduce((a, b) => a + b, 0), byKind },
    timeToVerdictMs: {
      face: summarizeDurations(durations.face),
      code: summarizeDurations(durations.code),
      all: summarizeDurations([...durations.face, ...durations.code]),
    },
    lockouts,
  };
}

import type { EventOutcome, VerdictMethod } from '../storage/ports';
import { aggregateOutcomes, quantile, summarizeDurations } from './aggregate';

const verdict = (method: VerdictMethod, result: string, durationMs: number | null = null): EventOutcome => ({
  type: 'identification.verdict',
  method,
  result,
  reason: null,
  durationMs,
});
const refused = (reason: string | null): EventOutcome => ({
  type: 'identification.refused',
  method: 'none',
  result: 'refused',
  reason,
  durationMs: null,
});
const expired = (): EventOutcome => ({
  type: 'identification.expired',
  method: 'none',
  result: 'expired',
  reason: null,
  durationMs: null,
});
const lockedOut = (method: VerdictMethod, durationMs: number | null = null): EventOutcome => ({
  type: 'identification.locked_out',
  method,
  result: 'locked_out',
  reason: null,
  durationMs,
});

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
    expect(quantile(Array.from({ length: 11 }, (_, i) => i * 10), 0.9)).toBeCloseTo(90, 10);
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

describe('aggregateOutcomes', () => {
  it('gives zeroes and nulls for no outcomes', () => {
    const s = aggregateOutcomes([]);
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
    const s = aggregateOutcomes([
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
    ]);
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
    const s = aggregateOutcomes([verdict('face', 'something_new'), refused(null)]);
    expect(s.identifications.byResult.something_new).toBe(1);
    expect(s.failures.byKind.something_new).toBe(1);
    expect(s.refusals).toEqual({ count: 1, rate: 0.5, reasons: { unspecified: 1 } });
  });
});

import { quantile } from '../stats/quantile';
import { assessClinic } from './assess';
import { numericBin } from './bins';
import {
  binQuantile,
  darkFinding,
  DEFAULT_RULES,
  driftFinding,
  figuresOf,
  Histograms,
  numericBins,
  scoreSummary,
  suggestThreshold,
  addDays,
  daysBetween,
  type NumericBin,
} from './report';

/** A seeded generator, so the synthetic histograms are the same every run. */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
}

/** n scores spread evenly over [lo, hi). */
const spread = (n: number, lo: number, hi: number) =>
  Array.from({ length: n }, (_, i) => lo + ((hi - lo) * (i + 0.5)) / n);

/** The histogram of scores (as stored: 0.01 bins). */
function scoreBins(scores: readonly number[], metric: 'score.match' | 'score.no_match' = 'score.match'): NumericBin[] {
  const h = new Histograms();
  for (const s of scores) h.add(metric, numericBin(metric, s)!, 1);
  return numericBins(metric, h.get(metric));
}

describe('quantiles from 0.01 bins', () => {
  it('one value: the middle of its bin', () => {
    expect(binQuantile(scoreBins([0.7312]), 0.5)).toBeCloseTo(0.735, 9);
    expect(binQuantile([], 0.5)).toBeNull();
  });

  it('within one bin of the exact quantile, for any spread of values', () => {
    const rnd = lcg(7);
    const scores = Array.from({ length: 500 }, () => 0.45 + 0.45 * rnd());
    const sorted = [...scores].sort((a, b) => a - b);
    const bins = scoreBins(scores);
    for (const q of [0.01, 0.02, 0.1, 0.5, 0.9]) {
      expect(Math.abs(binQuantile(bins, q)! - quantile(sorted, q)!)).toBeLessThan(0.01);
    }
    const s = scoreSummary(bins);
    expect(s.count).toBe(500);
    expect(s.p1! <= s.p2! && s.p2! <= s.p10! && s.p10! <= s.median!).toBe(true);
  });
});

describe('the suggested threshold', () => {
  const T = 0.46;

  it('keeps the threshold with too few likely genuine verdicts, however many were refused', () => {
    const s = suggestThreshold({
      match: scoreBins(spread(20, 0.6, 0.9)),
      noMatch: scoreBins(spread(20, 0.41, 0.46), 'score.no_match'),
      threshold: T,
    });
    expect(s).toMatchObject({ action: 'keep', suggested: T, why: 'too_few', likelyGenuine: 40, nearMisses: 20 });
  });

  it('keeps it while near misses stay within 2% of the likely genuine', () => {
    const s = suggestThreshold({
      match: scoreBins(spread(300, 0.5, 0.95)),
      // 4 near misses, and impostors far below: not near misses.
      noMatch: scoreBins([...spread(4, 0.42, 0.45), ...spread(50, -0.1, 0.3)], 'score.no_match'),
      threshold: T,
    });
    expect(s).toMatchObject({ action: 'keep', why: 'within_target', likelyGenuine: 304, nearMisses: 4 });
    expect(s.refusedShare).toBeCloseTo(4 / 304, 9);
  });

  it('lowers it to the p2 of matches and near misses, rounded down to 0.01, when more are refused', () => {
    // 200 matches and 20 near misses just below 0.46 (9% refused): the p2 falls among the near misses.
    const s = suggestThreshold({
      match: scoreBins(spread(200, 0.5, 0.9)),
      noMatch: scoreBins(spread(20, 0.4, 0.46), 'score.no_match'),
      threshold: T,
    });
    expect(s.action).toBe('lower');
    expect(s.why).toBe('lowered');
    expect(s.suggested).toBeGreaterThanOrEqual(DEFAULT_RULES.labFloor);
    expect(s.suggested).toBeLessThan(T);
    expect(Math.round(s.suggested * 100)).toBeCloseTo(s.suggested * 100, 9); // a 0.01 step
    // About 2% of the 220 likely genuine (4-5) still score below it.
    const below = spread(20, 0.4, 0.46).filter((x) => x < s.suggested).length;
    expect(below).toBeGreaterThanOrEqual(3);
    expect(below).toBeLessThanOrEqual(6);
  });

  it('never below the lab floor at FAR 1e-3, never above the current threshold', () => {
    const floor = suggestThreshold(
      {
        match: scoreBins(spread(100, 0.5, 0.9)),
        noMatch: scoreBins(spread(30, 0.4, 0.46), 'score.no_match'),
        threshold: 0.44,
      },
      { ...DEFAULT_RULES, nearMissMargin: 0.06 },
    );
    expect(floor.suggested).toBeGreaterThanOrEqual(DEFAULT_RULES.labFloor);
    const atFloor = suggestThreshold({
      match: scoreBins(spread(100, 0.5, 0.9)),
      noMatch: scoreBins(spread(30, 0.33, 0.38), 'score.no_match'),
      threshold: 0.38,
    });
    expect(atFloor).toMatchObject({ action: 'keep', suggested: 0.38, why: 'at_floor' });
    // Refusals scoring above the threshold (a frame below it): not lowered.
    const above = suggestThreshold({
      match: scoreBins(spread(100, 0.5, 0.9)),
      noMatch: scoreBins(spread(30, 0.6, 0.7), 'score.no_match'),
      threshold: T,
    });
    expect(above).toMatchObject({ action: 'keep', suggested: T, why: 'not_below_threshold' });
  });
});

describe('a desk whose genuine scores drift down', () => {
  const stable = scoreBins(spread(60, 0.6, 0.88)); // median ~0.74

  it('is flagged when its recent median falls more than the margin below its own earlier one', () => {
    const d = driftFinding({ recent: scoreBins(spread(30, 0.5, 0.75)), earlier: stable, clinicOthers: [] });
    expect(d.flagged).toBe(true);
    expect(d.reasons).toEqual(['below_own_earlier']);
    expect(d.recent.median).toBeLessThan(d.earlier.median! - DEFAULT_RULES.driftMargin);
  });

  it('is flagged below the other desks of the clinic, without an earlier window of its own', () => {
    const d = driftFinding({ recent: scoreBins(spread(30, 0.5, 0.75)), earlier: [], clinicOthers: stable });
    expect(d).toMatchObject({ flagged: true, reasons: ['below_clinic'] });
  });

  it('a stable desk is not flagged', () => {
    const d = driftFinding({ recent: scoreBins(spread(30, 0.59, 0.87)), earlier: stable, clinicOthers: stable });
    expect(d).toMatchObject({ flagged: false, reasons: [], tooFew: false });
  });

  it('too few recent verdicts are not flagged, however low; nor compared with too few earlier ones', () => {
    const few = driftFinding({
      recent: scoreBins(spread(DEFAULT_RULES.minDriftVerdicts - 1, 0.47, 0.5)),
      earlier: stable,
      clinicOthers: stable,
    });
    expect(few).toMatchObject({ flagged: false, tooFew: true });
    const fewEarlier = driftFinding({
      recent: scoreBins(spread(30, 0.5, 0.75)),
      earlier: scoreBins(spread(5, 0.8, 0.9)),
      clinicOthers: [],
    });
    expect(fewEarlier.flagged).toBe(false);
  });
});

describe('a desk that fails in the dark', () => {
  it('is flagged above 10% of its face verdicts, with enough of them', () => {
    expect(darkFinding({ verdicts: { total: 30, face: 30, code: 0, none: 0 }, darkFailures: 5 })).toMatchObject({
      flagged: true,
      share: 0.167,
    });
    expect(darkFinding({ verdicts: { total: 30, face: 30, code: 0, none: 0 }, darkFailures: 3 }).flagged).toBe(false);
    expect(darkFinding({ verdicts: { total: 10, face: 10, code: 0, none: 0 }, darkFailures: 5 }).flagged).toBe(false);
  });
});

describe('a clinic assessed from its histograms', () => {
  /** A desk's histograms from verdict-like counts. */
  function desk(opts: { match?: number[]; noMatch?: number[]; dark?: number; incomplete?: number }): Histograms {
    const h = new Histograms();
    for (const s of opts.match ?? []) {
      h.add('outcome', 'face:match', 1);
      h.add('score.match', numericBin('score.match', s)!, 1);
    }
    for (const s of opts.noMatch ?? []) {
      h.add('outcome', 'face:no_match', 1);
      h.add('score.no_match', numericBin('score.no_match', s)!, 1);
      h.add('failure', 'no_match', 1);
    }
    for (let i = 0; i < (opts.dark ?? 0); i++) {
      h.add('outcome', 'face:timeout', 1);
      h.add('failure', 'timeout:too_dark', 1);
    }
    for (let i = 0; i < (opts.incomplete ?? 0); i++) {
      h.add('outcome', 'face:timeout', 1);
      h.add('failure', 'timeout:incomplete', 1);
    }
    return h;
  }
  const sum = (...hs: Histograms[]) => {
    const t = new Histograms();
    for (const h of hs) t.addAll(h);
    return t;
  };

  it('flags the drifting desk and the dark one, not the good one; counts the clinic', () => {
    const early = {
      good: desk({ match: spread(40, 0.6, 0.88) }),
      drift: desk({ match: spread(40, 0.6, 0.88) }),
      dark: desk({ match: spread(40, 0.6, 0.88) }),
    };
    const late = {
      good: desk({ match: spread(25, 0.6, 0.88), incomplete: 1 }),
      drift: desk({ match: spread(25, 0.48, 0.7), noMatch: spread(6, 0.41, 0.46) }),
      dark: desk({ match: spread(25, 0.6, 0.88), dark: 12 }),
    };
    const names = new Map([
      ['w-good', 'Good'],
      ['w-drift', 'Drift'],
      ['w-dark', 'Dark'],
    ]);
    const ids = { good: 'w-good', drift: 'w-drift', dark: 'w-dark' } as const;
    const map = (x: Record<keyof typeof ids, Histograms>) =>
      new Map(Object.entries(x).map(([k, h]) => [ids[k as keyof typeof ids], h]));
    const a = assessClinic(
      {
        window: map({
          good: sum(early.good, late.good),
          drift: sum(early.drift, late.drift),
          dark: sum(early.dark, late.dark),
        }),
        recent: map(late),
        earlier: map(early),
      },
      names,
      0.46,
    );
    const flags = Object.fromEntries(a.workstations.map((w) => [w.name, w.flags]));
    expect(flags).toEqual({ Good: [], Drift: ['score_drift'], Dark: ['dark_or_no_face'] });
    expect(a.workstations.map((w) => w.name)).toEqual(['Dark', 'Drift', 'Good']);
    expect(a.figures.verdicts.face).toBe(3 * 40 + 26 + 31 + 37);
    expect(a.figures.noMatch).toEqual({ count: 6, nearMisses: 6 });
    expect(a.figures.darkFailures).toBe(12);
    // 6 near misses of 201 likely genuine: within the 2% target? No (3%): a lower threshold, not below the floor.
    expect(a.threshold.likelyGenuine).toBe(3 * 40 + 3 * 25 + 6);
    expect(a.threshold.action).toBe('lower');
    expect(a.threshold.suggested).toBeGreaterThanOrEqual(DEFAULT_RULES.labFloor);
  });

  it('figures of an empty window are zeros and nulls', () => {
    const f = figuresOf(new Histograms(), 0.46);
    expect(f).toEqual({
      verdicts: { total: 0, face: 0, code: 0, none: 0 },
      genuine: { count: 0, median: null, p10: null, p2: null, p1: null },
      noMatch: { count: 0, nearMisses: 0 },
      darkFailures: 0,
      quality: { faceSize: null, brightness: null, sharpness: null },
    });
  });
});

describe('UTC days', () => {
  it('adds days across months and years and counts them inclusively', () => {
    expect(addDays('2026-12-05', -29)).toBe('2026-11-06');
    expect(addDays('2026-12-31', 1)).toBe('2027-01-01');
    expect(daysBetween('2026-11-06', '2026-12-05')).toBe(30);
    expect(daysBetween('2026-12-05', '2026-12-05')).toBe(1);
  });
});

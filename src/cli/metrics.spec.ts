import {
  bootstrapTarAtFar,
  dPrime,
  equalErrorRate,
  falseAcceptRate,
  falseRejectRate,
  mean,
  median,
  nextUp,
  percentile,
  poolScores,
  probeReport,
  ratesAt,
  rocPoints,
  scoreAllPairs,
  scoreProbe,
  stdDev,
  tarAtFar,
  verificationReport,
  wilsonInterval,
  type ProbeScores,
} from './metrics';

/** Deterministic PRNG (mulberry32) so the property checks are reproducible. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('scoreAllPairs', () => {
  it('scores each unordered pair once and splits by identity', () => {
    const t = [
      { identity: 'a', template: 2 },
      { identity: 'a', template: 3 },
      { identity: 'b', template: 5 },
      { identity: 'c', template: 7 },
    ];
    const { genuine, impostor } = scoreAllPairs(t, (x, y) => x * y);
    expect(genuine).toEqual([6]);
    expect(impostor.sort((a, b) => a - b)).toEqual([10, 14, 15, 21, 35]);
  });

  it('gives no pairs for fewer than two templates', () => {
    expect(scoreAllPairs([{ identity: 'a', template: 1 }], (x, y) => x * y)).toEqual({ genuine: [], impostor: [] });
  });
});

describe('mean, stdDev, dPrime', () => {
  it('uses the population standard deviation', () => {
    expect(mean([1, 2, 3, 4])).toBe(2.5);
    expect(stdDev([1, 2, 3, 4])).toBeCloseTo(Math.sqrt(1.25), 12);
    expect(stdDev([7])).toBe(0);
    expect(mean([])).toBeNaN();
  });

  it("computes d' = (mg - mi) / sqrt((sg^2 + si^2) / 2)", () => {
    // mean .7 / .1, sd .1 / .1 -> 6
    expect(dPrime([0.8, 0.6], [0.2, 0.0])).toBeCloseTo(6, 10);
    // sd .1 and .3 -> pooled sqrt(.05) ; diff .5
    expect(dPrime([0.9, 0.7], [0.6, 0.0])).toBeCloseTo(0.5 / Math.sqrt(0.05), 10);
    expect(dPrime([1, 1], [0, 0])).toBe(Infinity);
    expect(dPrime([], [0.1])).toBeNaN();
  });
});

describe('FAR / FRR / rocPoints', () => {
  it('accepts scores >= threshold', () => {
    expect(falseAcceptRate([0.1, 0.5, 0.5, 0.9], 0.5)).toBe(0.75);
    expect(falseRejectRate([0.1, 0.5, 0.5, 0.9], 0.5)).toBe(0.25);
  });

  it('lists one point per distinct score plus the reject-all sentinel', () => {
    const pts = rocPoints([0.5, 0.9], [0.1, 0.5]);
    expect(pts).toEqual([
      { threshold: 0.1, far: 1, frr: 0 },
      { threshold: 0.5, far: 0.5, frr: 0 },
      { threshold: 0.9, far: 0, frr: 0.5 },
      { threshold: Infinity, far: 0, frr: 1 },
    ]);
  });
});

describe('equalErrorRate', () => {
  it('finds an exact crossing and centres the threshold on the interval where FAR == FRR', () => {
    // t in (0.6, 0.65]: FAR = 1/4 (0.65), FRR = 1/4 (0.6)
    const r = equalErrorRate([0.9, 0.8, 0.7, 0.6], [0.65, 0.5, 0.4, 0.3]);
    expect(r.eer).toBeCloseTo(0.25, 12);
    expect(r.threshold).toBeCloseTo(0.625, 12);
  });

  it('gives 0 at the middle of the gap for perfectly separated scores', () => {
    const r = equalErrorRate([0.8, 0.9, 0.85], [0.1, 0.3, 0.2]);
    expect(r.eer).toBe(0);
    expect(r.threshold).toBeCloseTo(0.55, 12);
  });

  it('interpolates when FAR and FRR cross between two thresholds', () => {
    // t=0.6: FAR .5, FRR .25 ; t=0.65: FAR 0, FRR .25 -> meet at alpha .5: .25, threshold .625
    const r = equalErrorRate([0.55, 0.65, 0.75, 0.85], [0.1, 0.6]);
    expect(r.eer).toBeCloseTo(0.25, 12);
    expect(r.threshold).toBeCloseTo(0.625, 12);
    // a genuine/impostor tie at 0.5: t=0.5 FAR .5 FRR 0 ; t=0.9 FAR 0 FRR .5 -> .25
    const tie = equalErrorRate([0.5, 0.9], [0.5, 0.1]);
    expect(tie.eer).toBeCloseTo(0.25, 12);
    expect(tie.threshold).toBeCloseTo(0.7, 12);
  });

  it('is 1 when every impostor outscores every genuine pair', () => {
    // At every threshold either FAR = 1 or FRR = 1 (or both), so FAR and FRR can only meet at 1 (t in (0.2, 0.8]).
    const r = equalErrorRate([0.1, 0.2], [0.8, 0.9]);
    expect(r.eer).toBeCloseTo(1, 12);
    expect(r.threshold).toBeCloseTo(0.5, 12);
  });

  it('keeps a finite threshold when the crossing is next to the reject-all sentinel', () => {
    // Everything ties at 0.9: t=0.9 FAR 1, FRR 0 ; sentinel FAR 0, FRR 1 -> meet at .5, threshold = 0.9
    const r = equalErrorRate([0.9], [0.9]);
    expect(r.eer).toBeCloseTo(0.5, 12);
    expect(r.threshold).toBe(0.9);
    // highest score an impostor: t=0.5 FAR .5 FRR 0 ; t=0.9 FAR .5 FRR 1 -> alpha .5: .5, threshold .7
    const s = equalErrorRate([0.5], [0.9, 0.1]);
    expect(s.eer).toBeCloseTo(0.5, 12);
    expect(s.threshold).toBeCloseTo(0.7, 12);
  });

  it('returns NaN without genuine or impostor pairs', () => {
    expect(equalErrorRate([], [0.1]).eer).toBeNaN();
    expect(equalErrorRate([0.1], []).eer).toBeNaN();
  });

  it('lies between the step-wise bounds on random score lists', () => {
    const r = rng(42);
    for (let round = 0; round < 200; round++) {
      const g = Array.from({ length: 1 + Math.floor(r() * 40) }, () => Math.round((0.4 + r() * 0.6) * 50) / 50);
      const i = Array.from({ length: 1 + Math.floor(r() * 60) }, () => Math.round(r() * 0.7 * 50) / 50);
      const { eer, threshold } = equalErrorRate(g, i);
      const pts = rocPoints(g, i);
      const minMax = Math.min(...pts.map((p) => Math.max(p.far, p.frr)));
      const maxMin = Math.max(...pts.map((p) => Math.min(p.far, p.frr)));
      expect(eer).toBeLessThanOrEqual(minMax + 1e-12);
      expect(eer).toBeGreaterThanOrEqual(maxMin - 1e-12);
      expect(Number.isFinite(threshold)).toBe(true);
    }
  });
});

describe('tarAtFar', () => {
  const thousand = Array.from({ length: 1000 }, (_, k) => k / 1000); // 0.000 .. 0.999

  it('takes the smallest threshold with FAR <= target', () => {
    const r = tarAtFar([0.9895, 0.989, 0.5, 0.995], thousand, 1e-2);
    expect(r.allowedFalseAccepts).toBe(10);
    expect(r.threshold).toBe(nextUp(0.989)); // 0.990 .. 0.999 accepted = 10 = 1%
    expect(r.far).toBe(0.01);
    expect(r.tar).toBe(0.5); // 0.9895 and 0.995; 0.989 is rejected
    expect(r.resolved).toBe(true);
    // minimality: at the impostor score just below, FAR exceeds the target
    expect(falseAcceptRate(thousand, 0.989)).toBeGreaterThan(0.01);
  });

  it('handles 1e-3 on 1000 impostors (one false accept allowed)', () => {
    const r = tarAtFar([0.999, 0.9985, 0.998], thousand, 1e-3);
    expect(r.allowedFalseAccepts).toBe(1);
    expect(r.threshold).toBe(nextUp(0.998));
    expect(r.far).toBe(0.001);
    expect(r.tar).toBeCloseTo(2 / 3, 12);
  });

  it('does not lose a false accept to floating-point error in target * n', () => {
    const imp = Array.from({ length: 3000 }, (_, k) => k / 3000);
    expect(tarAtFar([1], imp, 1e-3).allowedFalseAccepts).toBe(3);
    expect(tarAtFar([1], imp.slice(0, 2999), 1e-3).allowedFalseAccepts).toBe(2);
  });

  it('rejects every tie at the cut-off, so the achieved FAR may be below the target', () => {
    // 10 impostors, 1e-1 allows one; the two highest tie at 0.8 -> both rejected, FAR 0
    const imp = [0.8, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0];
    const r = tarAtFar([0.85, 0.8, 0.75], imp, 0.1);
    expect(r.threshold).toBe(nextUp(0.8));
    expect(r.far).toBe(0);
    expect(r.tar).toBeCloseTo(1 / 3, 12);
  });

  it('flags a target finer than 1 / impostor pairs as unresolved', () => {
    const imp = Array.from({ length: 50 }, (_, k) => k / 100); // max 0.49
    const r = tarAtFar([0.6, 0.45], imp, 1e-3);
    expect(r.allowedFalseAccepts).toBe(0);
    expect(r.resolved).toBe(false);
    expect(r.threshold).toBe(nextUp(0.49));
    expect(r.far).toBe(0);
    expect(r.tar).toBe(0.5);
  });

  it('accepts everything when the target allows every impostor', () => {
    const r = tarAtFar([0.3, 0.9], [0.1, 0.5], 1);
    expect(r.threshold).toBe(0.1);
    expect(r.tar).toBe(1);
    expect(r.far).toBe(1);
  });

  it('returns NaN without pairs', () => {
    expect(tarAtFar([], [0.1], 1e-2).tar).toBeNaN();
    expect(tarAtFar([0.9], [], 1e-2).threshold).toBeNaN();
  });
});

describe('verificationReport', () => {
  it('gathers the figures', () => {
    const rep = verificationReport({ genuine: [0.8, 0.6], impostor: [0.2, 0.0] });
    expect(rep.genuine).toBe(2);
    expect(rep.impostor).toBe(2);
    expect(rep.eer).toBe(0);
    expect(rep.thresholdAtEer).toBeCloseTo(0.4, 12);
    expect(rep.dprime).toBeCloseTo(6, 10);
    expect(rep.genuineMean).toBeCloseTo(0.7, 12);
    expect(rep.impostorMean).toBeCloseTo(0.1, 12);
    expect(rep.far1e3.resolved).toBe(false);
    expect(rep.far1e3.tar).toBe(1);
  });
});

describe('nextUp', () => {
  it('returns the next representable double', () => {
    expect(nextUp(1)).toBe(1 + Number.EPSILON);
    expect(nextUp(-1)).toBe(-1 + Number.EPSILON / 2);
    expect(nextUp(0)).toBe(Number.MIN_VALUE);
    expect(nextUp(0.5) > 0.5).toBe(true);
    expect((0.5 + nextUp(0.5)) / 2 === 0.5 || (0.5 + nextUp(0.5)) / 2 === nextUp(0.5)).toBe(true);
  });
});

describe('median, percentile', () => {
  const hundred = Array.from({ length: 100 }, (_, k) => k + 1);
  it('computes the median', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median(hundred)).toBe(50.5);
    expect(median([])).toBeNaN();
  });
  it('interpolates linearly between the two nearest ranks (the one definition, src/stats/quantile.ts)', () => {
    expect(percentile(hundred, 99)).toBeCloseTo(99.01, 10);
    expect(percentile(hundred, 50)).toBe(50.5);
    expect(percentile(hundred, 100)).toBe(100);
    expect(percentile([5, 1, 9, 3, 7, 2, 8, 4, 6, 10], 99)).toBeCloseTo(9.91, 10);
    expect(percentile([5], 99)).toBe(5);
    expect(
      percentile(
        Array.from({ length: 1000 }, (_, k) => k + 1),
        99,
      ),
    ).toBeCloseTo(990.01, 10);
  });
});

describe('wilsonInterval', () => {
  it('matches the closed form on known cases', () => {
    // 5 of 10: centre 0.5, half-width 1.96 * sqrt(0.025 + 1.96^2 / 400) / (1 + 1.96^2 / 10)
    const r = wilsonInterval(5, 10);
    expect(r.rate).toBe(0.5);
    expect(r.lo).toBeCloseTo(0.236593, 5);
    expect(r.hi).toBeCloseTo(0.763407, 5);
    // 0 of n: [0, z^2 / (n + z^2)]; n of n: [n / (n + z^2), 1]
    const z2 = 1.959963984540054 ** 2;
    expect(wilsonInterval(0, 10)).toEqual({ count: 0, n: 10, rate: 0, lo: 0, hi: expect.closeTo(z2 / (10 + z2), 12) });
    expect(wilsonInterval(59, 59).lo).toBeCloseTo(59 / (59 + z2), 12);
    expect(wilsonInterval(59, 59).hi).toBe(1);
    // 0 of 1,000: the upper bound is about 0.0038, not 0
    expect(wilsonInterval(0, 1000).hi).toBeCloseTo(0.003828, 5);
  });

  it('is NaN for no trials, and always brackets the rate within [0, 1]', () => {
    expect(wilsonInterval(0, 0)).toMatchObject({ rate: NaN, lo: NaN, hi: NaN });
    for (let n = 1; n <= 40; n++) {
      for (let k = 0; k <= n; k++) {
        const r = wilsonInterval(k, n);
        expect(r.lo).toBeGreaterThanOrEqual(0);
        expect(r.hi).toBeLessThanOrEqual(1);
        expect(r.lo).toBeLessThanOrEqual(r.rate + 1e-12);
        expect(r.hi).toBeGreaterThanOrEqual(r.rate - 1e-12);
      }
    }
  });
});

describe('ratesAt', () => {
  it('accepts at score >= threshold: FRR counts genuine below, FAR impostors at or above', () => {
    const { frr, far } = ratesAt({ genuine: [0.9, 0.8, 0.5, 0.4], impostor: [0.1, 0.5, 0.2, 0.46] }, 0.46);
    expect([frr.count, frr.n, frr.rate]).toEqual([1, 4, 0.25]);
    expect([far.count, far.n, far.rate]).toEqual([2, 4, 0.5]);
    expect(frr.lo).toBeCloseTo(wilsonInterval(1, 4).lo, 12);
  });

  it('agrees with falseRejectRate / falseAcceptRate', () => {
    const g = rng(7);
    const scores = {
      genuine: Array.from({ length: 300 }, () => 0.3 + 0.5 * g()),
      impostor: Array.from({ length: 900 }, () => 0.45 * g()),
    };
    for (const t of [0, 0.2, 0.35, 0.46, 0.8, 1]) {
      const r = ratesAt(scores, t);
      expect(r.frr.rate).toBe(falseRejectRate(scores.genuine, t));
      expect(r.far.rate).toBe(falseAcceptRate(scores.impostor, t));
    }
  });
});

describe('scoreProbe and poolScores', () => {
  it('compares a probe with every gallery identity: its own is genuine, the others impostor', () => {
    const gallery = [
      { identity: 'a', template: 2 },
      { identity: 'b', template: 3 },
      { identity: 'c', template: 5 },
    ];
    const p1 = scoreProbe(10, 'b', gallery, (x, y) => x * y);
    expect(p1).toEqual({ genuine: [30], impostor: [20, 50] });
    // an identity with no template: impostor scores only
    const p2 = scoreProbe(1, 'z', gallery, (x, y) => x * y);
    expect(p2).toEqual({ genuine: [], impostor: [2, 3, 5] });
    expect(poolScores([p1, p2])).toEqual({ genuine: [30], impostor: [20, 50, 2, 3, 5] });
  });
});

/** n probes against g gallery identities: a genuine score from `gen()` and g - 1 impostor scores from `imp()`. */
function probes(n: number, g: number, gen: (k: number) => number, imp: () => number): ProbeScores[] {
  return Array.from({ length: n }, (_, k) => ({ genuine: [gen(k)], impostor: Array.from({ length: g - 1 }, imp) }));
}

describe('bootstrapTarAtFar', () => {
  it('is seeded: the same seed gives the same interval, and it brackets the point estimate', () => {
    const u = rng(3);
    const set = probes(
      60,
      26,
      () => 0.2 + 0.6 * u(),
      () => 0.45 * u() - 0.05,
    );
    const a = bootstrapTarAtFar(set, [1e-2, 1e-3], { seed: 11 });
    const b = bootstrapTarAtFar(set, [1e-2, 1e-3], { seed: 11 });
    expect(a).toEqual(b);
    const pooled = poolScores(set);
    [1e-2, 1e-3].forEach((target, k) => {
      const point = tarAtFar(pooled.genuine, pooled.impostor, target).tar;
      expect(a[k].lo).toBeLessThanOrEqual(point);
      expect(a[k].hi).toBeGreaterThanOrEqual(point);
      expect(a[k].hi - a[k].lo).toBeGreaterThan(0);
    });
  });

  it('gives [1, 1] for perfectly separated scores and NaN ends for no probes', () => {
    const u = rng(5);
    const set = probes(
      30,
      10,
      () => 0.7 + 0.2 * u(),
      () => 0.3 * u(),
    );
    expect(bootstrapTarAtFar(set, [1e-3], { seed: 1, resamples: 200 })).toEqual([{ lo: 1, hi: 1 }]);
    const none = bootstrapTarAtFar([], [1e-3], { seed: 1 });
    expect(none[0].lo).toBeNaN();
    expect(none[0].hi).toBeNaN();
  });

  it('widens as the probes shrink (one of 10 rejected vs 10 of 100)', () => {
    const mk = (n: number) =>
      probes(
        n,
        20,
        (k) => (k % 10 === 0 ? 0.01 : 0.8),
        () => 0.05,
      );
    const [small] = bootstrapTarAtFar(mk(10), [1e-2], { seed: 2 });
    const [large] = bootstrapTarAtFar(mk(100), [1e-2], { seed: 2 });
    expect(small.hi - small.lo).toBeGreaterThan(large.hi - large.lo);
    expect(large.lo).toBeLessThanOrEqual(0.9);
    expect(large.hi).toBeGreaterThanOrEqual(0.9);
  });
});

describe('probeReport', () => {
  it('reports FRR / FAR at the threshold, the EER and the recommended threshold (lowest with FAR <= 1e-3)', () => {
    // 20 probes x 60 gallery identities: 20 genuine, 1,180 impostor scores; one impostor at 0.5, one genuine at 0.4.
    const set = probes(
      20,
      60,
      (k) => (k === 0 ? 0.4 : 0.7 + k * 0.005),
      () => 0.1,
    );
    set[3].impostor[0] = 0.5;
    const r = probeReport(set, 0.46, { seed: 1 });
    expect(r.probes).toBe(20);
    expect([r.frr.count, r.frr.n]).toEqual([1, 20]);
    expect([r.far.count, r.far.n]).toEqual([1, 1180]);
    expect(r.verification.genuine).toBe(20);
    expect(r.verification.impostor).toBe(1180);
    // 1,180 impostors allow floor(1.18) = 1 false accept at 1e-3: the threshold sits just above the second highest (0.1)
    expect(r.far1e3.resolved).toBe(true);
    expect(r.recommended.threshold).toBe(nextUp(0.1));
    expect(r.recommended.far).toBeCloseTo(1 / 1180, 12);
    expect(r.recommended.frr).toBe(0);
    expect(r.far1e3.ci.lo).toBeLessThanOrEqual(r.far1e3.tar);
    expect(r.far1e3.ci.hi).toBeGreaterThanOrEqual(r.far1e3.tar);
  });
});

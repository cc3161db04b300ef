/**
 * Pure verification metrics for `faceid eval` and summary statistics for `faceid bench-engine`.
 *
 * Conventions used throughout:
 * - A comparison score is a similarity: higher means "more likely the same person".
 * - A pair is accepted at threshold t when score >= t.
 *   FAR(t) = share of impostor scores >= t; FRR(t) = share of genuine scores < t; TAR(t) = 1 - FRR(t).
 * - Functions return NaN where a figure is undefined (e.g. no impostor pairs); callers print that as null.
 */
import { Rng } from '../liveness/pad/random';
import { quantile } from '../stats/quantile';

/** One identity-labelled template. */
export interface Template<T> {
  identity: string;
  template: T;
}

export interface PairScores {
  genuine: number[];
  impostor: number[];
}

/**
 * Scores every unordered pair of templates once: same identity -> genuine, different identity -> impostor.
 * n templates give n(n-1)/2 scores in all.
 */
export function scoreAllPairs<T>(templates: readonly Template<T>[], similarity: (a: T, b: T) => number): PairScores {
  const genuine: number[] = [];
  const impostor: number[] = [];
  for (let i = 0; i < templates.length; i++) {
    for (let j = i + 1; j < templates.length; j++) {
      const s = similarity(templates[i].template, templates[j].template);
      (templates[i].identity === templates[j].identity ? genuine : impostor).push(s);
    }
  }
  return { genuine, impostor };
}

export function mean(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  let sum = 0;
  for (const x of xs) sum += x;
  return sum / xs.length;
}

/** Population standard deviation (divides by n, not n - 1). */
export function stdDev(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const m = mean(xs);
  let ss = 0;
  for (const x of xs) ss += (x - m) * (x - m);
  return Math.sqrt(ss / xs.length);
}

/**
 * Decidability index d' = (mean_gen - mean_imp) / sqrt((sd_gen^2 + sd_imp^2) / 2), with population SDs.
 * Infinite when both distributions have zero spread and different means.
 */
export function dPrime(genuine: readonly number[], impostor: readonly number[]): number {
  const diff = mean(genuine) - mean(impostor);
  const pooled = Math.sqrt((stdDev(genuine) ** 2 + stdDev(impostor) ** 2) / 2);
  if (pooled === 0) return diff === 0 ? NaN : diff > 0 ? Infinity : -Infinity;
  return diff / pooled;
}

/** FAR at threshold t: share of impostor scores >= t. */
export function falseAcceptRate(impostor: readonly number[], t: number): number {
  if (impostor.length === 0) return NaN;
  let n = 0;
  for (const s of impostor) if (s >= t) n++;
  return n / impostor.length;
}

/** FRR at threshold t: share of genuine scores < t. */
export function falseRejectRate(genuine: readonly number[], t: number): number {
  if (genuine.length === 0) return NaN;
  let n = 0;
  for (const s of genuine) if (s < t) n++;
  return n / genuine.length;
}

export interface RocPoint {
  threshold: number;
  far: number;
  frr: number;
}

/**
 * Every distinct operating point of the score lists, by ascending threshold: one point per distinct score
 * (the threshold equal to that score), then +Infinity (accept nothing: FAR 0, FRR 1).
 * The first point (threshold = lowest score) accepts everything: FAR 1, FRR 0.
 * O((g + i) log(g + i)).
 */
export function rocPoints(genuine: readonly number[], impostor: readonly number[]): RocPoint[] {
  const g = [...genuine].sort((a, b) => a - b);
  const im = [...impostor].sort((a, b) => a - b);
  const thresholds = [...g, ...im].sort((a, b) => a - b);
  const points: RocPoint[] = [];
  let gi = 0; // genuine scores < t
  let ii = 0; // impostor scores < t
  let prev = NaN;
  for (const t of thresholds) {
    if (t === prev) continue;
    prev = t;
    while (gi < g.length && g[gi] < t) gi++;
    while (ii < im.length && im[ii] < t) ii++;
    points.push({ threshold: t, far: (im.length - ii) / im.length, frr: gi / g.length });
  }
  points.push({ threshold: Infinity, far: 0, frr: 1 });
  return points;
}

export interface EerResult {
  eer: number;
  threshold: number;
}

/**
 * Equal error rate, the point where FAR and FRR cross.
 *
 * Method: sweep the thresholds of `rocPoints` (ascending; FAR falls and FRR rises as the threshold rises) and
 * find the first point k where FAR - FRR <= 0.
 * - If FAR == FRR there, that common value is the EER. Several consecutive points may share FAR == FRR (e.g.
 *   0 and 0 when the lists are perfectly separated); the EER threshold is then the midpoint between the last
 *   threshold before that run (where FAR > FRR) and the last threshold of the run. For perfectly separated
 *   lists this gives EER 0 at the midpoint between the highest impostor and the lowest genuine score.
 * - Otherwise FAR and FRR cross strictly between points k-1 and k: both rates are interpolated linearly between
 *   those two operating points (the segment a randomised choice between the two thresholds achieves) and the EER
 *   is their common value where they meet; the threshold is interpolated the same way (if point k is the
 *   +Infinity sentinel, the threshold reported is that of point k-1, the highest score).
 * Either way the EER lies within [FAR_k, FAR_(k-1)] and within [FRR_(k-1), FRR_k].
 */
export function equalErrorRate(genuine: readonly number[], impostor: readonly number[]): EerResult {
  if (genuine.length === 0 || impostor.length === 0) return { eer: NaN, threshold: NaN };
  const pts = rocPoints(genuine, impostor);
  const d = (p: RocPoint): number => p.far - p.frr;
  // pts[0] accepts everything: FAR 1, FRR 0, d = 1 > 0. The sentinel has d = -1, so k exists and k >= 1.
  let k = 0;
  while (d(pts[k]) > 0) k++;
  const before = pts[k - 1];
  const at = pts[k];
  if (d(at) === 0) {
    let j = k;
    while (j + 1 < pts.length && d(pts[j + 1]) === 0) j++;
    return { eer: at.far, threshold: (before.threshold + pts[j].threshold) / 2 };
  }
  const alpha = d(before) / (d(before) - d(at));
  const eer = before.far + alpha * (at.far - before.far);
  const threshold = Number.isFinite(at.threshold)
    ? before.threshold + alpha * (at.threshold - before.threshold)
    : before.threshold;
  return { eer, threshold };
}

export interface TarAtFarResult {
  /** Target FAR asked for. */
  target: number;
  /** Smallest threshold (accept if score >= threshold) with FAR <= target. */
  threshold: number;
  /** TAR (= 1 - FRR) at that threshold. */
  tar: number;
  /** FAR actually measured at that threshold (<= target). */
  far: number;
  /** Impostor scores the target allows at or above the threshold: floor(target * impostors). */
  allowedFalseAccepts: number;
  /**
   * False when target * impostors < 1: not even one false accept is allowed, so the threshold only sits above
   * the highest impostor score seen, and the measured FAR (0) says little about the true FAR at that threshold
   * (with n impostor pairs and none accepted, the 95% upper bound on the true FAR is still about 3/n).
   */
  resolved: boolean;
}

/**
 * TAR at a target FAR.
 *
 * With the impostor scores sorted in descending order s_1 >= s_2 >= ... >= s_n and a = floor(target * n) false
 * accepts allowed, any threshold t > s_(a+1) gives FAR <= target, and no threshold <= s_(a+1) does. The smallest
 * such threshold is therefore the next double above s_(a+1) (`nextUp`), so that the rule "accept if
 * score >= threshold" reproduces the figures exactly. Ties at s_(a+1) are all rejected, so the achieved FAR may be
 * below the target. If a >= n every threshold qualifies and the lowest score seen is reported (accept all).
 * A tiny epsilon guards floor(target * n) against floating-point error (1e-3 * 3000 must give 3).
 */
export function tarAtFar(genuine: readonly number[], impostor: readonly number[], target: number): TarAtFarResult {
  return tarAtFarSorted(genuine, Float64Array.from(impostor).sort(), target);
}

/** tarAtFar with the impostor scores already sorted ascending (the bootstrap sorts each resample once). */
function tarAtFarSorted(genuine: readonly number[], impostorAsc: Float64Array, target: number): TarAtFarResult {
  const n = impostorAsc.length;
  if (genuine.length === 0 || n === 0) {
    return { target, threshold: NaN, tar: NaN, far: NaN, allowedFalseAccepts: 0, resolved: false };
  }
  const allowed = Math.floor(target * n + 1e-9);
  let threshold: number;
  if (allowed >= n) {
    threshold = Math.min(minOf(genuine), impostorAsc[0]);
  } else {
    threshold = nextUp(impostorAsc[n - 1 - allowed]); // the (allowed + 1)-th highest
  }
  let accepted = 0;
  for (let i = n - 1; i >= 0 && impostorAsc[i] >= threshold; i--) accepted++;
  return {
    target,
    threshold,
    tar: 1 - falseRejectRate(genuine, threshold),
    far: accepted / n,
    allowedFalseAccepts: Math.min(allowed, n),
    resolved: allowed >= 1,
  };
}

function minOf(xs: readonly number[]): number {
  let m = Infinity;
  for (const x of xs) if (x < m) m = x;
  return m;
}

/** The smallest double greater than x (x finite). */
export function nextUp(x: number): number {
  if (Number.isNaN(x) || x === Infinity) return x;
  if (x === 0) return Number.MIN_VALUE;
  const f = new Float64Array([x]);
  const b = new BigInt64Array(f.buffer);
  b[0] += x > 0 ? 1n : -1n;
  return f[0];
}

export interface VerificationReport {
  genuine: number;
  impostor: number;
  eer: number;
  thresholdAtEer: number;
  far1e2: TarAtFarResult;
  far1e3: TarAtFarResult;
  dprime: number;
  genuineMean: number;
  genuineSd: number;
  impostorMean: number;
  impostorSd: number;
}

export function verificationReport(scores: PairScores): VerificationReport {
  const { genuine, impostor } = scores;
  const eer = equalErrorRate(genuine, impostor);
  return {
    genuine: genuine.length,
    impostor: impostor.length,
    eer: eer.eer,
    thresholdAtEer: eer.threshold,
    far1e2: tarAtFar(genuine, impostor, 1e-2),
    far1e3: tarAtFar(genuine, impostor, 1e-3),
    dprime: dPrime(genuine, impostor),
    genuineMean: mean(genuine),
    genuineSd: stdDev(genuine),
    impostorMean: mean(impostor),
    impostorSd: stdDev(impostor),
  };
}

/** Median of unsorted values (the mean of the two middle values for an even count); NaN for none. */
export function median(xs: readonly number[]): number {
  return percentile(xs, 50);
}

/** The p-th percentile (p in 0..100) of unsorted values, by the project's one definition (src/stats/quantile.ts). */
export function percentile(xs: readonly number[], p: number): number {
  return (
    quantile(
      [...xs].sort((a, b) => a - b),
      p / 100,
    ) ?? NaN
  );
}

// ---------------------------------------------------------------------------------------------------------------
// Gallery and probes (`faceid eval --gallery/--probes`, `--conditions`): each probe is compared with every enrolled
// identity, as a desk session compares its frames with one patient's template.

/** A proportion (`count` of `n`) with its 95% Wilson score interval. NaN everywhere for n = 0. */
export interface Proportion {
  count: number;
  n: number;
  rate: number;
  lo: number;
  hi: number;
}

/** z for a two-sided 95% interval. */
const Z95 = 1.959963984540054;

/**
 * Wilson score interval for a binomial proportion: centre (p + z^2/2n) / (1 + z^2/n), half-width
 * z * sqrt(p(1 - p)/n + z^2/4n^2) / (1 + z^2/n). Unlike p +- z*sqrt(p(1-p)/n) it stays inside [0, 1] and does not
 * collapse to a zero width at 0 or n successes (0 of 1,000 gives [0, 0.0038]). It assumes independent trials.
 */
export function wilsonInterval(count: number, n: number, z = Z95): Proportion {
  if (!(n > 0)) return { count, n, rate: NaN, lo: NaN, hi: NaN };
  const p = count / n;
  const z2 = z * z;
  const denom = 1 + z2 / n;
  const centre = (p + z2 / (2 * n)) / denom;
  const half = (z * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n))) / denom;
  return {
    count,
    n,
    rate: p,
    lo: count === 0 ? 0 : Math.max(0, centre - half),
    hi: count === n ? 1 : Math.min(1, centre + half),
  };
}

/** FRR and FAR at one threshold (accept when score >= threshold), as counts with Wilson intervals. */
export function ratesAt(scores: PairScores, threshold: number): { frr: Proportion; far: Proportion } {
  let rejected = 0;
  for (const s of scores.genuine) if (s < threshold) rejected++;
  let accepted = 0;
  for (const s of scores.impostor) if (s >= threshold) accepted++;
  return {
    frr: wilsonInterval(rejected, scores.genuine.length),
    far: wilsonInterval(accepted, scores.impostor.length),
  };
}

/** One probe's scores against the gallery: its own identity's template (genuine, if enrolled) and every other's. */
export interface ProbeScores {
  genuine: number[];
  impostor: number[];
}

/** Compares one probe with every gallery template: same identity = genuine, any other = impostor. */
export function scoreProbe<T>(
  probe: T,
  identity: string,
  gallery: readonly Template<T>[],
  similarity: (a: T, b: T) => number,
): ProbeScores {
  const out: ProbeScores = { genuine: [], impostor: [] };
  for (const g of gallery) (g.identity === identity ? out.genuine : out.impostor).push(similarity(probe, g.template));
  return out;
}

/** Every probe's scores in one pair of lists. */
export function poolScores(probes: readonly ProbeScores[]): PairScores {
  const genuine: number[] = [];
  const impostor: number[] = [];
  for (const p of probes) {
    for (const s of p.genuine) genuine.push(s);
    for (const s of p.impostor) impostor.push(s);
  }
  return { genuine, impostor };
}

/** A two-sided interval; NaN ends when it cannot be estimated. */
export interface Interval {
  lo: number;
  hi: number;
}

export interface BootstrapOptions {
  /** Resamples. Default 1000. */
  resamples?: number;
  /** Seeds the resampling, so the same scores always give the same interval. */
  seed: number;
  /** Two-sided coverage. Default 0.95. */
  level?: number;
}

/**
 * Percentile-bootstrap intervals of TAR at each target FAR, resampling probes (with replacement, all of a probe's
 * scores together: its comparisons share one image, so they are not independent). Each resample recomputes the
 * threshold for the target (`tarAtFar`) and the TAR there, so the interval includes the threshold's own uncertainty.
 * The ends are the (1 - level)/2 and (1 + level)/2 quantiles of the resampled TARs (src/stats/quantile.ts);
 * resamples with no genuine or no impostor score are left out. Seeded (mulberry32), so reruns agree.
 */
export function bootstrapTarAtFar(
  probes: readonly ProbeScores[],
  targets: readonly number[],
  options: BootstrapOptions,
): Interval[] {
  const resamples = options.resamples ?? 1000;
  const level = options.level ?? 0.95;
  const n = probes.length;
  const draws: number[][] = targets.map(() => []);
  if (n > 0) {
    const rng = new Rng(options.seed);
    const picked: ProbeScores[] = new Array<ProbeScores>(n);
    for (let b = 0; b < resamples; b++) {
      for (let k = 0; k < n; k++) picked[k] = probes[Math.floor(rng.next() * n)];
      const pooled = poolScores(picked);
      const impostorAsc = Float64Array.from(pooled.impostor).sort();
      targets.forEach((target, t) => {
        const tar = tarAtFarSorted(pooled.genuine, impostorAsc, target).tar;
        if (Number.isFinite(tar)) draws[t].push(tar);
      });
    }
  }
  return draws.map((d) => {
    d.sort((a, b) => a - b);
    return { lo: quantile(d, (1 - level) / 2) ?? NaN, hi: quantile(d, (1 + level) / 2) ?? NaN };
  });
}

/** TAR at a target FAR with its bootstrap interval. */
export interface TarAtFarWithCi extends TarAtFarResult {
  ci: Interval;
}

export interface ProbeReport {
  /** Probes scored (faces found). */
  probes: number;
  threshold: number;
  frr: Proportion;
  far: Proportion;
  verification: VerificationReport;
  far1e2: TarAtFarWithCi;
  far1e3: TarAtFarWithCi;
  /**
   * The threshold recommended for this set: the lowest one with FAR <= 1e-3 (`far1e3.threshold`), where accepting
   * one more impostor score would pass the target. Only as good as the impostor count: unresolved below 1,000.
   */
  recommended: { threshold: number; frr: number; far: number; resolved: boolean };
}

/** Everything `faceid eval` reports about probes against a gallery at `threshold`. */
export function probeReport(
  probes: readonly ProbeScores[],
  threshold: number,
  bootstrap: BootstrapOptions,
): ProbeReport {
  const pooled = poolScores(probes);
  const verification = verificationReport(pooled);
  const { frr, far } = ratesAt(pooled, threshold);
  const [ci1e2, ci1e3] = bootstrapTarAtFar(probes, [1e-2, 1e-3], bootstrap);
  const r = verification.far1e3;
  return {
    probes: probes.length,
    threshold,
    frr,
    far,
    verification,
    far1e2: { ...verification.far1e2, ci: ci1e2 },
    far1e3: { ...r, ci: ci1e3 },
    recommended: { threshold: r.threshold, frr: 1 - r.tar, far: r.far, resolved: r.resolved },
  };
}

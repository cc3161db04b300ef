/**
 * Reading the calibration histograms: quantiles from the bins, the figures per workstation, and the rules of
 * `faceid calibrate` (a suggested threshold, a desk whose genuine scores drift down, a desk that fails in the dark).
 * Pure functions over counts, so they are tested on synthetic histograms.
 *
 * Field scores have no ground truth: nobody knows whether the patient at the desk was the enrolled one. A `match`
 * is taken as genuine and a `no_match` just below the threshold as a likely genuine patient refused; both can be
 * wrong (a false accept; an impostor who happens to score close). The rules say so wherever they are shown.
 */
import { quantileAt } from '../stats/quantile';
import type { CalibrationCount } from '../storage/ports';
import { binRange, isDarkFailure, isNumericMetric, METRICS, type Metric, type NumericMetricSpec } from './bins';

/** The thresholds of the rules. */
export interface CalibrationRules {
  /** A no_match scoring at most this far below the threshold (or above it) is a near miss: a likely genuine refusal. */
  nearMissMargin: number;
  /** Highest share of likely genuine verdicts (matches + near misses) refused before a lower threshold is suggested. */
  maxRefusedShare: number;
  /** Likely genuine verdicts needed before any threshold other than the current one is suggested. */
  minLikelyGenuine: number;
  /**
   * The lowest threshold ever suggested: `threshold_at_far_1e-3` of `faceid eval` on the reference face set (0.3889,
   * README "Accuracy"), rounded up to the bins' 0.01. Field data cannot measure false accepts, so it cannot go lower.
   */
  labFloor: number;
  /** The recent window of the drift check, in UTC days (today included). */
  recentDays: number;
  /** How far a desk's recent median match score may fall below its own earlier one, or the clinic's, unflagged. */
  driftMargin: number;
  /** Match verdicts needed in each window compared. */
  minDriftVerdicts: number;
  /** Share of a desk's face verdicts failing in the dark or with no face in view above which it is flagged. */
  darkShare: number;
  /** Face verdicts a desk needs before that share is judged. */
  minFaceVerdicts: number;
}

export const DEFAULT_RULES: CalibrationRules = {
  nearMissMargin: 0.06,
  maxRefusedShare: 0.02,
  minLikelyGenuine: 50,
  labFloor: 0.39,
  recentDays: 7,
  driftMargin: 0.05,
  minDriftVerdicts: 20,
  darkShare: 0.1,
  minFaceVerdicts: 20,
};

/** One metric's counts by bin label. */
export type BinCounts = Map<string, number>;

/** Histograms of one workstation (or summed over several): metric -> bin -> count. */
export class Histograms {
  private readonly byMetric = new Map<string, BinCounts>();

  add(metric: string, bin: string, count: number): void {
    let bins = this.byMetric.get(metric);
    if (!bins) this.byMetric.set(metric, (bins = new Map()));
    bins.set(bin, (bins.get(bin) ?? 0) + count);
  }

  addAll(other: Histograms): void {
    for (const [metric, bins] of other.byMetric) for (const [bin, n] of bins) this.add(metric, bin, n);
  }

  get(metric: string): BinCounts {
    return this.byMetric.get(metric) ?? new Map();
  }

  metrics(): string[] {
    return [...this.byMetric.keys()].sort();
  }

  total(metric: string): number {
    let n = 0;
    for (const c of this.get(metric).values()) n += c;
    return n;
  }
}

/** Counts as read from storage, per workstation. */
export function byWorkstation(rows: readonly CalibrationCount[]): Map<string, Histograms> {
  const out = new Map<string, Histograms>();
  for (const r of rows) {
    let h = out.get(r.workstationId);
    if (!h) out.set(r.workstationId, (h = new Histograms()));
    h.add(r.metric, r.bin, r.count);
  }
  return out;
}

/** The sum of several workstations' histograms. */
export function sumOf(hs: Iterable<Histograms>): Histograms {
  const total = new Histograms();
  for (const h of hs) total.addAll(h);
  return total;
}

export interface NumericBin {
  bin: string;
  lo: number;
  /** null: the last bin is open (no upper end). */
  hi: number | null;
  count: number;
}

/** A numeric metric's bins in ascending order, with their ranges (labels that are no bin of it are left out). */
export function numericBins(metric: Metric, counts: BinCounts): NumericBin[] {
  const spec = METRICS[metric] as NumericMetricSpec;
  const out: Array<NumericBin & { index: number }> = [];
  for (const [bin, count] of counts) {
    const r = binRange(spec, bin);
    if (r && count > 0) out.push({ bin, lo: r.lo, hi: Number.isFinite(r.hi) ? r.hi : null, count, index: r.index });
  }
  return out.sort((a, b) => a.index - b.index).map(({ index: _i, ...b }) => b);
}

/**
 * The q-quantile of the values a histogram counts, by the project's definition (src/stats/quantile.ts), each value
 * taken at its rank's place inside its bin (rank j of c at lo + (hi - lo) * (j + 0.5) / c). The estimate lies in
 * the same bin as the true value, so within one bin width (0.01 for scores). null without values.
 */
export function binQuantile(bins: readonly NumericBin[], q: number): number | null {
  const n = bins.reduce((t, b) => t + b.count, 0);
  let b = 0;
  let below = 0;
  return quantileAt(n, q, (rank) => {
    if (rank < below) [b, below] = [0, 0];
    while (rank >= below + bins[b].count) below += bins[b++].count;
    const { lo, hi, count } = bins[b];
    const top = hi ?? lo; // an open last bin: its lower edge
    return lo + ((top - lo) * (rank - below + 0.5)) / count;
  });
}

const round3 = (x: number | null) => (x === null ? null : Math.round(x * 1000) / 1000);

export interface ScoreSummary {
  count: number;
  median: number | null;
  p10: number | null;
  p2: number | null;
  p1: number | null;
}

export function scoreSummary(bins: readonly NumericBin[]): ScoreSummary {
  const at = (q: number) => round3(binQuantile(bins, q));
  return { count: bins.reduce((t, b) => t + b.count, 0), median: at(0.5), p10: at(0.1), p2: at(0.02), p1: at(0.01) };
}

/** no_match bins of near misses: from `margin` below the threshold up (bins are 0.01 wide, aligned with it). */
export function nearMissBins(noMatch: readonly NumericBin[], threshold: number, margin: number): NumericBin[] {
  return noMatch.filter((b) => b.lo >= threshold - margin - 1e-9);
}

/** What the histograms of a workstation (or a clinic) say, without the rules' verdicts. */
export interface CalibrationFigures {
  verdicts: { total: number; face: number; code: number; none: number };
  /** Match-verdict scores: taken as the genuine distribution. */
  genuine: ScoreSummary;
  noMatch: { count: number; nearMisses: number };
  /** Face verdicts failing as a timeout with most frames too dark or without a face. */
  darkFailures: number;
  /**
   * Medians over face verdicts of their frames' mean quality (inter-ocular px, brightness 0-255, sharpness), from
   * the quality bins: coarse (within a bin), for telling a dim, blurred or far view from a good one.
   */
  quality: { faceSize: number | null; brightness: number | null; sharpness: number | null };
}

export function figuresOf(
  h: Histograms,
  threshold: number,
  rules: CalibrationRules = DEFAULT_RULES,
): CalibrationFigures {
  const verdicts = { total: 0, face: 0, code: 0, none: 0 };
  for (const [bin, n] of h.get('outcome')) {
    verdicts.total += n;
    const method = bin.split(':')[0];
    if (method === 'face' || method === 'code' || method === 'none') verdicts[method] += n;
  }
  const noMatch = numericBins('score.no_match', h.get('score.no_match'));
  let darkFailures = 0;
  for (const [bin, n] of h.get('failure')) if (isDarkFailure(bin)) darkFailures += n;
  const median = (metric: Metric) => {
    const m = binQuantile(numericBins(metric, h.get(metric)), 0.5);
    return m === null ? null : Math.round(m * 10) / 10;
  };
  return {
    verdicts,
    genuine: scoreSummary(numericBins('score.match', h.get('score.match'))),
    noMatch: {
      count: noMatch.reduce((t, b) => t + b.count, 0),
      nearMisses: nearMissBins(noMatch, threshold, rules.nearMissMargin).reduce((t, b) => t + b.count, 0),
    },
    darkFailures,
    quality: {
      faceSize: median('quality.face_size'),
      brightness: median('quality.brightness'),
      sharpness: median('quality.sharpness'),
    },
  };
}

/** Every metric's bins: numeric ones with their ranges in order, the others by label. */
export function binsOf(
  h: Histograms,
): Record<string, Array<{ bin: string; lo?: number; hi?: number | null; count: number }>> {
  const out: Record<string, Array<{ bin: string; lo?: number; hi?: number | null; count: number }>> = {};
  for (const metric of h.metrics()) {
    if (isNumericMetric(metric)) {
      const bins = numericBins(metric, h.get(metric));
      if (bins.length) out[metric] = bins;
    } else if (metric in METRICS) {
      const bins = [...h.get(metric)].filter(([, n]) => n > 0).sort(([a], [b]) => (a < b ? -1 : 1));
      if (bins.length) out[metric] = bins.map(([bin, count]) => ({ bin, count }));
    }
  }
  return out;
}

// ---- The rules of `faceid calibrate` ----

export interface ThresholdSuggestion {
  /** keep: stay at the current threshold; lower: the suggested one is below it. */
  action: 'keep' | 'lower';
  current: number;
  suggested: number;
  /** Matches plus near misses: the verdicts taken as genuine. */
  likelyGenuine: number;
  nearMisses: number;
  /** nearMisses / likelyGenuine; null without any. */
  refusedShare: number | null;
  /**
   * Why: too_few (not enough likely genuine verdicts), within_target, lowered, at_floor (no lower than the lab
   * floor), not_below_threshold (the refused ones score at or above the threshold: one of their frames fell below).
   */
  why: 'too_few' | 'within_target' | 'lowered' | 'at_floor' | 'not_below_threshold';
}

/**
 * Keep the threshold unless more than maxRefusedShare of the likely genuine verdicts (matches + near misses) were
 * refused; then suggest the maxRefusedShare-quantile of their scores (so only that share would still be refused),
 * rounded down to its 0.01 bin, never below the lab floor (FAR 1e-3 on the reference set), and only with at least
 * minLikelyGenuine of them. It never suggests a higher threshold: raising it is a decision about false accepts,
 * which field data cannot measure.
 */
export function suggestThreshold(
  input: { match: readonly NumericBin[]; noMatch: readonly NumericBin[]; threshold: number },
  rules: CalibrationRules = DEFAULT_RULES,
): ThresholdSuggestion {
  const current = input.threshold;
  const near = nearMissBins(input.noMatch, current, rules.nearMissMargin);
  const nearMisses = near.reduce((t, b) => t + b.count, 0);
  const likely = mergeBins(input.match, near);
  const likelyGenuine = likely.reduce((t, b) => t + b.count, 0);
  const refusedShare = likelyGenuine ? nearMisses / likelyGenuine : null;
  const base = { current, likelyGenuine, nearMisses, refusedShare };
  if (likelyGenuine < rules.minLikelyGenuine) return { ...base, action: 'keep', suggested: current, why: 'too_few' };
  if (refusedShare! <= rules.maxRefusedShare)
    return { ...base, action: 'keep', suggested: current, why: 'within_target' };
  const q = binQuantile(likely, rules.maxRefusedShare)!;
  const candidate = Math.floor(q * 100 + 1e-9) / 100;
  // Refusals scoring above the threshold (a frame of theirs below it): a lower threshold is not what they show.
  if (candidate >= current) return { ...base, action: 'keep', suggested: current, why: 'not_below_threshold' };
  const suggested = Math.max(candidate, rules.labFloor);
  if (suggested >= current) return { ...base, action: 'keep', suggested: current, why: 'at_floor' };
  return { ...base, action: 'lower', suggested, why: candidate < rules.labFloor ? 'at_floor' : 'lowered' };
}

function mergeBins(a: readonly NumericBin[], b: readonly NumericBin[]): NumericBin[] {
  const byLo = new Map<number, NumericBin>();
  for (const x of [...a, ...b]) {
    const seen = byLo.get(x.lo);
    if (seen) seen.count += x.count;
    else byLo.set(x.lo, { ...x });
  }
  return [...byLo.values()].sort((x, y) => x.lo - y.lo);
}

export interface DriftFinding {
  flagged: boolean;
  /** below_own_earlier: under its own earlier median by more than the margin; below_clinic: under the other desks'. */
  reasons: Array<'below_own_earlier' | 'below_clinic'>;
  recent: { count: number; median: number | null };
  earlier: { count: number; median: number | null };
  clinic: { count: number; median: number | null };
  /** Set when the recent window had too few match verdicts to judge. */
  tooFew: boolean;
}

/**
 * A desk whose genuine (match) scores drift down: its recent median below its own earlier median, or below the
 * median of the clinic's other desks, by more than driftMargin, each side with at least minDriftVerdicts match
 * verdicts. A dirty lens, a failing webcam or a changed light at that desk, most often.
 */
export function driftFinding(
  input: { recent: readonly NumericBin[]; earlier: readonly NumericBin[]; clinicOthers: readonly NumericBin[] },
  rules: CalibrationRules = DEFAULT_RULES,
): DriftFinding {
  const side = (bins: readonly NumericBin[]) => ({
    count: bins.reduce((t, b) => t + b.count, 0),
    median: round3(binQuantile(bins, 0.5)),
  });
  const recent = side(input.recent);
  const earlier = side(input.earlier);
  const clinic = side(input.clinicOthers);
  const reasons: DriftFinding['reasons'] = [];
  const tooFew = recent.count < rules.minDriftVerdicts;
  if (!tooFew && recent.median !== null) {
    const below = (other: { count: number; median: number | null }) =>
      other.count >= rules.minDriftVerdicts &&
      other.median !== null &&
      recent.median! < other.median - rules.driftMargin - 1e-9;
    if (below(earlier)) reasons.push('below_own_earlier');
    if (below(clinic)) reasons.push('below_clinic');
  }
  return { flagged: reasons.length > 0, reasons, recent, earlier, clinic, tooFew };
}

export interface DarkFinding {
  flagged: boolean;
  faceVerdicts: number;
  darkFailures: number;
  share: number | null;
}

/** A desk where more than darkShare of the face verdicts (at least minFaceVerdicts) failed in the dark or faceless. */
export function darkFinding(
  figures: Pick<CalibrationFigures, 'verdicts' | 'darkFailures'>,
  rules: CalibrationRules = DEFAULT_RULES,
): DarkFinding {
  const faceVerdicts = figures.verdicts.face;
  const share = faceVerdicts ? figures.darkFailures / faceVerdicts : null;
  return {
    flagged: faceVerdicts >= rules.minFaceVerdicts && share !== null && share > rules.darkShare,
    faceVerdicts,
    darkFailures: figures.darkFailures,
    share: share === null ? null : round3(share),
  };
}

// ---- UTC days ----

const DAY_MS = 24 * 60 * 60 * 1000;

export const dayOf = (at: Date): string => at.toISOString().slice(0, 10);

/** The day `n` days after `day` (YYYY-MM-DD; n may be negative). */
export function addDays(day: string, n: number): string {
  return dayOf(new Date(Date.parse(`${day}T00:00:00Z`) + n * DAY_MS));
}

/** Days from `from` to `to`, both included. */
export function daysBetween(from: string, to: string): number {
  return Math.round((Date.parse(`${to}T00:00:00Z`) - Date.parse(`${from}T00:00:00Z`)) / DAY_MS) + 1;
}

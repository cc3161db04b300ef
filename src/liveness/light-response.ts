import type { FaceLight, LightRegion } from '../engine';
import { DEFAULT_LIGHT_THRESHOLDS, type LightPhase, type LightThresholds } from './light';
import { mean, pearson, slope } from './stats';

/** One analysed frame: its capture time (client clock, ms) and the engine's region means. */
export interface LightSample {
  t: number;
  light: FaceLight;
}

export type LightFailure = 'light_no_response' | 'light_uniform' | 'light_flat';

export const SHAPE_REGIONS = ['forehead', 'nose', 'leftCheek', 'rightCheek', 'chin'] as const;
export type ShapeRegion = (typeof SHAPE_REGIONS)[number];

/** Numbers only: region means and slopes describe light, not the person. */
export interface LightMetrics {
  /** Camera lag that best aligns the face with the colours, ms; null when too few samples. */
  lagMs: number | null;
  /** Pearson correlation of the face's chromatic response with the colours shown. */
  correlation: number;
  /** The least cosine, over the phases, of a phase's response with its colour (diagnostic, not a criterion). */
  worstPhase: number;
  /** Slope of the face's response on the colours (face relative to the whole frame). */
  faceGain: number;
  /** The same slope for the surround strips relative to the frame; null when the surround was mostly missing. */
  surroundGain: number | null;
  /** The whole frame on its own (not relative to anything), at its own best lag: a tint over the image shows here. */
  frameGain: number;
  frameCorrelation: number;
  /** (max - min) / mean of the per-region slopes; null when not computed. */
  shapeSpread: number | null;
  /** The surround's (else the whole frame's) own chromatic slope over the face's own; null when not computed. */
  besideAbsRatio: number | null;
  /** The weakest face region's slope over the face's; null when not computed. */
  regionMinRatio: number | null;
  regionGains: Record<ShapeRegion, number> | null;
  phasesUsed: number;
  samplesUsed: number;
}

export type LightVerdict =
  | { ok: true; reason: null; metrics: LightMetrics; insufficient?: false }
  /** `insufficient`: too few frames fell inside the colours to judge (dropped frames, a busy server), not an answer. */
  | { ok: false; reason: LightFailure; metrics: LightMetrics; insufficient?: boolean };

type Vec3 = [number, number, number];
interface Point {
  t: number;
  v: Vec3;
}

/** Log of linear light: sRGB decoded with gamma 2.2 (floored at 1/255 so a black channel stays finite). */
function logLin(c: number): number {
  return 2.2 * Math.log(Math.max(c, 1) / 255);
}

/** Per-channel log of region / ref in linear light (ref null = the region on its own); skips frames missing either. */
function series(samples: readonly LightSample[], region: LightRegion, ref: LightRegion | null): Point[] {
  const out: Point[] = [];
  for (const s of samples) {
    const a = s.light[region];
    const b = ref === null ? [255, 255, 255] : s.light[ref];
    if (!a || !b) continue;
    out.push({ t: s.t, v: [0, 1, 2].map((c) => logLin(a[c]) - logLin(b[c])) as Vec3 });
  }
  return out;
}

/** The index of the phase shown at time `t`, or -1 outside the phases and within guardMs of a colour change. */
function phaseAt(phases: readonly LightPhase[], t: number, guardMs: number): number {
  for (let i = 0; i < phases.length; i++) {
    if (t >= phases[i].start + guardMs && t <= phases[i].end - guardMs) return i;
  }
  return -1;
}

/** Mean response per phase, the frames aligned with camera lag `lag`; null where a phase has too few samples. */
function phaseMeans(points: readonly Point[], phases: readonly LightPhase[], lag: number, t: LightThresholds) {
  const sums = phases.map(() => ({ n: 0, v: [0, 0, 0] as Vec3 }));
  for (const p of points) {
    const i = phaseAt(phases, p.t - lag, t.guardMs);
    if (i < 0) continue;
    sums[i].n++;
    for (let c = 0; c < 3; c++) sums[i].v[c] += p.v[c];
  }
  return sums.map((s) => (s.n >= t.minSamples ? { n: s.n, v: s.v.map((x) => x / s.n) as Vec3 } : null));
}

/**
 * Removes brightness (each vector minus its mean over channels) and then the steady colour (each channel minus its
 * mean over the phases), and stacks the phases into one vector.
 */
function chroma(vectors: readonly Vec3[]): number[] {
  const centred = vectors.map((v) => v.map((x) => x - mean(v)));
  const avg = [0, 1, 2].map((c) => mean(centred.map((v) => v[c])));
  return centred.flatMap((v) => v.map((x, c) => x - avg[c]));
}

interface Fit {
  correlation: number;
  gain: number;
  /** The least cosine, over the phases, between a phase's response and its colour (both centred). */
  worstPhase: number;
}

/** Correlation and slope of a region's per-phase response against the colours of the same phases. */
function fit(means: ReturnType<typeof phaseMeans>, phases: readonly LightPhase[], use: readonly number[]): Fit {
  const expected = chroma(use.map((i) => phases[i].rgb.map((x) => x / 255) as Vec3));
  const response = chroma(use.map((i) => means[i]!.v));
  let worstPhase = 1;
  for (let k = 0; k < use.length; k++) {
    const e = expected.slice(3 * k, 3 * k + 3);
    const r = response.slice(3 * k, 3 * k + 3);
    const dot = e[0] * r[0] + e[1] * r[1] + e[2] * r[2];
    const norm = Math.hypot(...e) * Math.hypot(...r);
    worstPhase = Math.min(worstPhase, norm > 0 ? dot / norm : 0);
  }
  return { correlation: pearson(expected, response), gain: slope(expected, response), worstPhase };
}

function usable(means: ReturnType<typeof phaseMeans>, within: readonly number[]): number[] {
  return within.filter((i) => means[i] !== null);
}

interface Alignment {
  lag: number;
  fit: Fit;
  use: number[];
  n: number;
}

/**
 * The camera lag that best aligns a region's response with the colours. The guard makes the correlation flat over
 * about 2 * guardMs around the true lag, so the middle of the run of lags within 0.01 of the best one is taken.
 * Null when no lag gives minPhases phases of minSamples samples.
 */
function bestLag(points: readonly Point[], phases: readonly LightPhase[], t: LightThresholds): Alignment | null {
  const all = phases.map((_, i) => i);
  const found: (Alignment | null)[] = [];
  for (let lag = 0; lag <= t.lagMaxMs; lag += t.lagStepMs) {
    const means = phaseMeans(points, phases, lag, t);
    const use = usable(means, all);
    const n = use.reduce((sum, i) => sum + means[i]!.n, 0);
    found.push(use.length < t.minPhases ? null : { lag, fit: fit(means, phases, use), use, n });
  }
  let top = -1;
  for (let i = 0; i < found.length; i++) {
    if (found[i] && (top < 0 || found[i]!.fit.correlation > found[top]!.fit.correlation)) top = i;
  }
  if (top < 0) return null;
  const near = (i: number) => found[i] !== null && found[i]!.fit.correlation >= found[top]!.fit.correlation - 0.01;
  let lo = top;
  let hi = top;
  while (lo > 0 && near(lo - 1)) lo--;
  while (hi < found.length - 1 && near(hi + 1)) hi++;
  return found[Math.round((lo + hi) / 2)];
}

/**
 * Decides whether the face answered the colours the way only a real, three-dimensional face near the screen does.
 *
 * Method. Values are linearised (gamma 2.2) and taken in log space, per channel, relative to the whole frame: a
 * webcam's automatic exposure and white balance multiply the whole image per channel, and a ratio of two regions
 * of the same frame cancels them. For each camera lag L (0..lagMaxMs), every sample is given the colour that was on
 * screen at t - L (samples within guardMs of a change are dropped) and averaged per phase; brightness (the mean over
 * channels) and the steady skin colour (the mean over phases) are removed, leaving the chromatic response, which is
 * compared with the chroma of the colours shown (rgb / 255, centred the same way). The lag with the best Pearson
 * correlation wins (see bestLag); faceGain is the regression slope of response on colour. Pass needs: correlation
 * >= corrMin and faceGain >= gainMin, else `light_no_response`; the surround strips (the wall beside the head,
 * relative to the frame) answering at most uniformMax of the face, else `light_uniform`; and the five face regions
 * answering unevenly, (max - min) / mean of their slopes >= spreadMin, since they face the screen at different
 * angles (a print or a screen answers the same everywhere), else `light_flat`.
 *
 * When the surround is missing on most samples the face is judged against the whole frame only: faceGain is
 * already the face's answer beyond the frame's, so a tint over the whole image cancels out of it. Such a tint then
 * fails as `light_uniform` rather than `light_no_response` when the frame on its own followed the colours.
 *
 * Limits, for the calibration: the frames before the first colour are not used as a baseline (the screen showed
 * whatever the page showed); and a lag range longer than the shortest colour admits a whole-colour shift, so an
 * answer recorded for another sequence passes by chance more often (about 8% of random 4-colour sequences in the
 * spec's model at the defaults, under 2% with 6 colours).
 */
export function checkLightResponse(
  samples: readonly LightSample[],
  phases: readonly LightPhase[],
  t: LightThresholds = DEFAULT_LIGHT_THRESHOLDS,
): LightVerdict {
  const best = bestLag(series(samples, 'face', 'frame'), phases, t);
  const metrics: LightMetrics = {
    lagMs: null,
    correlation: 0,
    worstPhase: 0,
    faceGain: 0,
    surroundGain: null,
    frameGain: 0,
    frameCorrelation: 0,
    shapeSpread: null,
    besideAbsRatio: null,
    regionMinRatio: null,
    regionGains: null,
    phasesUsed: 0,
    samplesUsed: 0,
  };
  if (!best) return { ok: false, reason: 'light_no_response', metrics, insufficient: true };
  const { lag, use } = best;
  Object.assign(metrics, {
    lagMs: lag,
    correlation: best.fit.correlation,
    worstPhase: best.fit.worstPhase,
    faceGain: best.fit.gain,
    phasesUsed: use.length,
    samplesUsed: best.n,
  });

  // Any region, same lag, same phases (fewer where the region was missing on some frames).
  const regionFit = (region: LightRegion, ref: LightRegion | null): Fit | null => {
    const means = phaseMeans(series(samples, region, ref), phases, lag, t);
    const u = usable(means, use);
    return u.length >= t.minPhases ? fit(means, phases, u) : null;
  };

  const frame = bestLag(series(samples, 'frame', null), phases, t)?.fit;
  metrics.frameGain = frame?.gain ?? 0;
  metrics.frameCorrelation = frame?.correlation ?? 0;
  const withSurround = samples.filter((s) => s.light.surround !== null).length;
  if (withSurround * 2 >= samples.length) metrics.surroundGain = regionFit('surround', 'frame')?.gain ?? null;

  if (metrics.correlation < t.corrMin || metrics.faceGain < t.gainMin || metrics.worstPhase < t.worstPhaseMin) {
    const tinted = metrics.frameCorrelation >= t.corrMin && metrics.frameGain >= t.gainMin;
    return { ok: false, reason: tinted ? 'light_uniform' : 'light_no_response', metrics };
  }
  if (metrics.surroundGain !== null && metrics.surroundGain > t.uniformMax * metrics.faceGain) {
    return { ok: false, reason: 'light_uniform', metrics };
  }
  // The same without the frame as reference (chroma already cancels exposure): colour blended into the whole image
  // adds as much to the wall as to the face, which a ratio to the frame can hide; the screen's light does not.
  const faceAbs = regionFit('face', null)?.gain ?? 0;
  const besideAbs = regionFit(withSurround * 2 >= samples.length ? 'surround' : 'frame', null)?.gain ?? null;
  metrics.besideAbsRatio = besideAbs !== null && faceAbs > 0 ? besideAbs / faceAbs : null;
  if (metrics.besideAbsRatio === null || metrics.besideAbsRatio > t.besideAbsMax) {
    return { ok: false, reason: 'light_uniform', metrics };
  }

  const gains = SHAPE_REGIONS.map((r) => regionFit(r, 'frame')?.gain ?? null);
  if (gains.every((g): g is number => g !== null)) {
    metrics.regionGains = Object.fromEntries(SHAPE_REGIONS.map((r, i) => [r, gains[i]])) as Record<ShapeRegion, number>;
    const m = mean(gains);
    if (m > 0) metrics.shapeSpread = (Math.max(...gains) - Math.min(...gains)) / m;
    metrics.regionMinRatio = metrics.faceGain > 0 ? Math.min(...gains) / metrics.faceGain : null;
  }
  // Skin lit by the screen answers everywhere; a change confined to one spot (eyes painted over) does not.
  if (metrics.regionMinRatio === null || metrics.regionMinRatio < t.regionMinRatio) {
    return { ok: false, reason: 'light_no_response', metrics };
  }
  // Without all five regions (or with a mean slope <= 0) nothing shows the face's relief: counted as flat.
  if (metrics.shapeSpread === null || metrics.shapeSpread < t.spreadMin) {
    return { ok: false, reason: 'light_flat', metrics };
  }
  return { ok: true, reason: null, metrics };
}

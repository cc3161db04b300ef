/**
 * What field calibration counts, and in which bins. Every verdict adds one count to a few bins of its workstation's
 * histograms of the UTC day (storage adds them up in the verdict's transaction); nothing else about the verdict is
 * kept: no session, patient, IIN, exact score or embedding. The bins are fixed, so histograms of any days and desks
 * add up.
 */
import type { CalibrationIncrement, VerdictMethod, VerdictResult } from '../storage/ports';

/** A metric whose values fall into fixed numeric bins [edge_i, edge_i+1); the last is [edge_n, top). */
export interface NumericMetricSpec {
  kind: 'numeric';
  /** Lower edges, ascending. A value below the first goes to the first bin, one at or above `top` to the last. */
  edges: readonly number[];
  /** Upper end of the last bin (Infinity: open). */
  top: number;
  /** Decimals of the bins' labels (the lower edge, e.g. "0.46"). */
  decimals: number;
  description: string;
}

/** A metric of named bins (pass / fail, face:match, ...). */
export interface CategoricalMetricSpec {
  kind: 'categorical';
  description: string;
}

export type MetricSpec = NumericMetricSpec | CategoricalMetricSpec;

const range = (from: number, to: number, step = 1) =>
  Array.from({ length: Math.floor((to - from) / step) + 1 }, (_, i) => from + i * step);

/** Match scores: [-1, 0) for every negative cosine, then 0.01 wide up to 1 (a match threshold has two decimals). */
const SCORE_BINS: Omit<NumericMetricSpec, 'description'> = {
  kind: 'numeric',
  edges: [-1, ...range(0, 99).map((i) => i / 100)],
  top: 1,
  decimals: 2,
};

/** How an analysed frame was judged: `ok`, or the problem assessFrame() found (src/identification/guidance.ts). */
export const FRAME_STATES = [
  'ok',
  'no_face',
  'multiple_faces',
  'too_far',
  'too_dark',
  'blurry',
  'look_at_camera',
] as const;

export const METRICS = {
  'score.match': { ...SCORE_BINS, description: 'Cosine similarity of the face verdicts `match`.' },
  'score.no_match': {
    ...SCORE_BINS,
    description:
      'Cosine similarity of the face verdicts `no_match` (a match needs every full frame above the threshold, so some score above it).',
  },
  'score.spoof_suspected': {
    ...SCORE_BINS,
    description: 'Cosine similarity of the face verdicts `spoof_suspected` that have one.',
  },
  'liveness.passive': {
    kind: 'numeric',
    edges: range(0, 9).map((i) => i / 10),
    top: 1,
    decimals: 1,
    description: 'Mean passive liveness of the frames used, where the passive model ran.',
  },
  'liveness.blink': {
    kind: 'categorical',
    description: 'The blink challenge of face verdicts: pass, fail, not_reached.',
  },
  'liveness.light': { kind: 'categorical', description: 'The light challenge, where asked: pass, fail, not_reached.' },
  'liveness.turn': { kind: 'categorical', description: 'The head turn, where asked: pass, fail, not_reached.' },
  'quality.face_size': {
    kind: 'numeric',
    edges: [0, 16, 24, 32, 40, 48, 56, 64, 80, 96, 128],
    top: Infinity,
    decimals: 0,
    description: 'Mean inter-ocular distance (px) of the full frames a face verdict used.',
  },
  'quality.brightness': {
    kind: 'numeric',
    edges: range(0, 15).map((i) => i * 16),
    top: 256,
    decimals: 0,
    description: 'Mean face brightness (grey level 0-255) of the full frames a face verdict used.',
  },
  'quality.sharpness': {
    kind: 'numeric',
    edges: [0, 15, 30, 60, 120, 250, 500, 1000, 2000],
    top: Infinity,
    decimals: 0,
    description: 'Mean sharpness (variance of the Laplacian of the face) of the full frames a face verdict used.',
  },
  frames: {
    kind: 'categorical',
    description: `Analysed frames of face sessions by state (${FRAME_STATES.join(', ')}): frames, not verdicts.`,
  },
  outcome: {
    kind: 'categorical',
    description: 'Every verdict, as method:result (face:match, code:locked_out, none:expired...).',
  },
  failure: {
    kind: 'categorical',
    description:
      'Face verdicts other than match and no_template, as result:cause: no_match; spoof_suspected:<liveness reason>; ' +
      'timeout:<the state of most analysed frames> (no_face, too_dark, ...; incomplete when most were good; ' +
      'no_frames); error:<reason>.',
  },
} as const satisfies Record<string, MetricSpec>;

export type Metric = keyof typeof METRICS;
export const METRIC_NAMES = Object.keys(METRICS) as Metric[];

export function isNumericMetric(metric: string): metric is Metric {
  return metric in METRICS && METRICS[metric as Metric].kind === 'numeric';
}

/** Face results that carry a score worth a histogram. */
const SCORED_RESULTS = ['match', 'no_match', 'spoof_suspected'] as const;

/** Failure causes that point at the camera's view (a dark room, a camera pointing away). */
export const DARK_CAUSES = ['too_dark', 'no_face'] as const;

/** The index of the bin `value` falls into (clamped to the first and last), or null for a value that is not a number. */
export function binIndex(spec: NumericMetricSpec, value: number): number | null {
  if (!Number.isFinite(value)) return null;
  // A small tolerance: 0.29 must land in [0.29, 0.30) however it was computed.
  let i = 0;
  while (i + 1 < spec.edges.length && value >= spec.edges[i + 1] - 1e-9) i++;
  return i;
}

export const binLabel = (spec: NumericMetricSpec, index: number): string => spec.edges[index].toFixed(spec.decimals);

/** A numeric bin's range from its label; null for a label that is not one of the metric's bins. */
export function binRange(spec: NumericMetricSpec, label: string): { index: number; lo: number; hi: number } | null {
  const index = spec.edges.findIndex((e) => e.toFixed(spec.decimals) === label);
  if (index < 0) return null;
  return { index, lo: spec.edges[index], hi: index + 1 < spec.edges.length ? spec.edges[index + 1] : spec.top };
}

/** The label of the bin of `value` in a numeric metric, or null (not a number). */
export function numericBin(metric: Metric, value: number): string | null {
  const spec = METRICS[metric];
  if (spec.kind !== 'numeric') throw new Error(`${metric} is not numeric`);
  const i = binIndex(spec, value);
  return i === null ? null : binLabel(spec, i);
}

/** What a face verdict tells calibration: the runner's outcome (VerdictOutcome fits). */
export interface FaceVerdictFacts {
  result: 'match' | 'no_match' | 'spoof_suspected' | 'no_template' | 'timeout' | 'error';
  score: number | null;
  liveness: { passive: number | null; blink: boolean; light: boolean | null; turn: boolean | null } | null;
  /** The liveness reason of a spoof, or why the client was refused; null otherwise. */
  reason: string | null;
  /** Aggregates of the session's frames (SessionQuality); absent when unknown. */
  quality?: {
    fullFrames: number;
    faceSize: number | null;
    brightness: number | null;
    sharpness: number | null;
    frames: Partial<Record<string, number>>;
  } | null;
}

type ChallengeKind = 'blink' | 'light' | 'turn';

/** Which challenge a liveness reason says failed (null: none did, e.g. virtual_camera, passive_low). */
export function failedChallenge(reason: string | null): ChallengeKind | null {
  if (reason === null) return null;
  if (reason === 'no_blink') return 'blink';
  if (reason.startsWith('light_')) return 'light';
  if (reason.startsWith('turn_')) return 'turn';
  return null;
}

/** The state most analysed frames of a session had; null without frames (ties: the order of FRAME_STATES). */
export function dominantFrameState(frames: Partial<Record<string, number>> | undefined): string | null {
  let best: string | null = null;
  let most = 0;
  for (const state of FRAME_STATES) {
    const n = frames?.[state] ?? 0;
    if (n > most) [best, most] = [state, n];
  }
  return best;
}

/** The `failure` bin of a face verdict, or null for a match or no_template (not a failure of the desk's camera). */
export function failureCause(facts: Pick<FaceVerdictFacts, 'result' | 'reason' | 'quality'>): string | null {
  switch (facts.result) {
    case 'match':
    case 'no_template':
      return null;
    case 'no_match':
      return 'no_match';
    case 'spoof_suspected':
      return `spoof_suspected:${facts.reason ?? 'unknown'}`;
    case 'timeout': {
      const state = dominantFrameState(facts.quality?.frames);
      return `timeout:${state === null ? 'no_frames' : state === 'ok' ? 'incomplete' : state}`;
    }
    case 'error':
      return `error:${facts.reason ?? 'internal'}`;
  }
}

/** Whether a `failure` bin is one of DARK_CAUSES (a timeout in the dark, or with no face in view). */
export const isDarkFailure = (bin: string): boolean => DARK_CAUSES.some((c) => bin.endsWith(`:${c}`));

const one = (metric: Metric, bin: string, count = 1): CalibrationIncrement => ({ metric, bin, count });

/** The bins a face verdict adds to its workstation's histograms. */
export function faceVerdictBins(facts: FaceVerdictFacts): CalibrationIncrement[] {
  const out: CalibrationIncrement[] = [one('outcome', `face:${facts.result}`)];
  if (facts.score !== null && (SCORED_RESULTS as readonly string[]).includes(facts.result)) {
    const bin = numericBin(`score.${facts.result}` as Metric, facts.score);
    if (bin !== null) out.push(one(`score.${facts.result}` as Metric, bin));
  }
  if (facts.result !== 'no_template' && facts.liveness) {
    const { passive } = facts.liveness;
    if (passive !== null) {
      const bin = numericBin('liveness.passive', passive);
      if (bin !== null) out.push(one('liveness.passive', bin));
    }
    const failed = failedChallenge(facts.reason);
    for (const kind of ['blink', 'light', 'turn'] as const) {
      const passed = facts.liveness[kind];
      if (passed === null) continue; // not asked of this desk
      out.push(one(`liveness.${kind}`, passed ? 'pass' : failed === kind ? 'fail' : 'not_reached'));
    }
  }
  const q = facts.quality;
  if (q) {
    const measures = [
      ['quality.face_size', q.faceSize],
      ['quality.brightness', q.brightness],
      ['quality.sharpness', q.sharpness],
    ] as const;
    for (const [metric, value] of measures) {
      const bin = value === null ? null : numericBin(metric, value);
      if (bin !== null) out.push(one(metric, bin));
    }
    for (const state of FRAME_STATES) {
      const n = q.frames[state] ?? 0;
      if (Number.isInteger(n) && n > 0) out.push(one('frames', state, n));
    }
  }
  const cause = failureCause(facts);
  if (cause !== null) out.push(one('failure', cause));
  return out;
}

/** The bins of a verdict by code or of the sweep (method none): its outcome only. */
export function outcomeBins(method: VerdictMethod, result: VerdictResult): CalibrationIncrement[] {
  return [one('outcome', `${method}:${result}`)];
}

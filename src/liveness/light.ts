import { randomBytes, randomUUID } from 'node:crypto';

/**
 * The light challenge, first half: what to show and whether the client's report of showing it is believable.
 * The patient-facing screen flashes a short random sequence of saturated colours; a real face in front of it
 * reflects that light (see light-response.ts for the analysis of the camera frames).
 */

export type Rgb = [number, number, number];

export interface LightColour {
  rgb: Rgb;
  /** How long to show it, in ms. */
  ms: number;
}

export interface LightPlan {
  challengeId: string;
  colours: LightColour[];
}

export interface LightPlanOptions {
  /** Colours in the sequence. Default 5 (with 4 a recording answering another sequence passed too often); at least 3. */
  count?: number;
  /** Each colour is shown for a random whole number of ms in [minMs, maxMs]. Default 220-380. */
  minMs?: number;
  maxMs?: number;
}

/** A colour as the client painted it, in the client's clock (the clock of the frames' captureTime). */
export interface LightPhase {
  rgb: Rgb;
  start: number;
  end: number;
}

export type ShownCheck =
  | { ok: true; phases: LightPhase[] }
  | { ok: false; reason: 'light_out_of_order' | 'light_late' };

/** Every light threshold in one place: the lead calibrates them on rendered genuine and attack sessions. */
export interface LightThresholds {
  /** A colour may be shown this much shorter than asked (ms): a 60 Hz screen rounds to 16.7 ms frames. */
  shortMs: number;
  /** ...and this much longer (a slow or busy tab paints late). */
  longMs: number;
  /** The first colour must be painted at most this long after the challenge reached the client (ms). */
  startMaxMs: number;
  /** Camera lag searched: 0..lagMaxMs in steps of lagStepMs. */
  lagMaxMs: number;
  lagStepMs: number;
  /** Samples this close to a colour change (after the lag) are ignored: the frame may mix two colours. */
  guardMs: number;
  /** A phase counts with at least minSamples samples; the response needs at least minPhases such phases. */
  minSamples: number;
  minPhases: number;
  /** Pearson correlation of the face's chromatic response with the colours shown. */
  corrMin: number;
  /** Least cosine between any one colour and the face's answer to it: every colour must be answered, not most. */
  worstPhaseMin: number;
  /** Every face region (forehead, nose, cheeks, chin) must answer at least this fraction of the face's slope. */
  regionMinRatio: number;
  /** Least regression slope of the face's response (log linear light per unit of screen chroma). */
  gainMin: number;
  /** The surround's slope may be at most this fraction of the face's. */
  uniformMax: number;
  /** ...and, each on its own (no frame reference), the surround's (or the frame's) at most this fraction. */
  besideAbsMax: number;
  /** Least (max - min) / mean of the per-region slopes (forehead, nose, cheeks, chin). */
  spreadMin: number;
}

// Calibrated on rendered sessions (`faceid pad-eval --metrics`, docs/liveness.md): genuine sessions gave
// correlation >= 0.93, worst colour >= 0.8, face slope >= 0.049 and camera lags of 40-200 ms.
export const DEFAULT_LIGHT_THRESHOLDS: LightThresholds = {
  shortMs: 100,
  longMs: 250,
  startMaxMs: 1500,
  lagMaxMs: 300,
  lagStepMs: 20,
  guardMs: 60,
  minSamples: 2,
  minPhases: 4,
  corrMin: 0.9,
  worstPhaseMin: 0.6,
  regionMinRatio: 0.25,
  gainMin: 0.02,
  uniformMax: 0.5,
  besideAbsMax: 0.5,
  spreadMin: 0.15,
};

/** Strongly chromatic colours: each lights the face in one or two channels only, so the response is unmistakable. */
export const LIGHT_PALETTE: readonly Rgb[] = [
  [255, 0, 0],
  [0, 255, 0],
  [0, 0, 255],
  [255, 255, 0],
  [255, 0, 255],
  [0, 255, 255],
];

/** A uniform number in [0, 1) from the operating system's CSPRNG: the sequence must not be guessable in advance. */
export function secureRandom(): number {
  return randomBytes(6).readUIntBE(0, 6) / 2 ** 48;
}

function pick(random: () => number, n: number): number {
  return Math.min(n - 1, Math.floor(random() * n));
}

/**
 * A fresh sequence: consecutive colours differ, and at least three distinct colours appear (a two-colour
 * alternation is too easy to answer by chance). Durations are random too, so a recorded answer does not fit.
 */
export function planLightChallenge(random: () => number = secureRandom, opts: LightPlanOptions = {}): LightPlan {
  const count = opts.count ?? 5;
  const minMs = opts.minMs ?? 220;
  const maxMs = opts.maxMs ?? 380;
  if (!Number.isInteger(count) || count < 3) throw new RangeError(`count must be an integer >= 3, got ${count}`);
  if (!(minMs > 0 && maxMs >= minMs)) throw new RangeError(`need 0 < minMs <= maxMs, got ${minMs}..${maxMs}`);
  let order: number[];
  let tries = 0;
  do {
    // A fair source gets 3 distinct colours at once almost always; a stuck one must not hang the session.
    if (++tries > 64) throw new RangeError('the random source gives no sequence of 3 distinct colours');
    order = [];
    for (let i = 0; i < count; i++) {
      const prev = order[i - 1];
      // Draw among the other five so consecutive colours always differ.
      const k = prev === undefined ? pick(random, LIGHT_PALETTE.length) : pick(random, LIGHT_PALETTE.length - 1);
      order.push(prev !== undefined && k >= prev ? k + 1 : k);
    }
  } while (new Set(order).size < 3);
  return {
    challengeId: randomUUID(),
    colours: order.map((k) => ({
      rgb: [...LIGHT_PALETTE[k]] as Rgb,
      ms: Math.round(minMs + random() * (maxMs - minMs)),
    })),
  };
}

/**
 * Checks the client's `light_shown` report: one timestamp per colour plus the end of the last, strictly increasing,
 * each colour shown about as long as asked, and the first one soon after the challenge arrived. `sentAtClient` is
 * the server's estimate, in the client's clock, of when the challenge reached the client (null = unknown: skipped).
 * The phases returned are what the response analysis aligns the frames with.
 */
export function validateShownReport(
  plan: LightPlan,
  shownAt: readonly number[],
  sentAtClient: number | null,
  t: LightThresholds = DEFAULT_LIGHT_THRESHOLDS,
): ShownCheck {
  const n = plan.colours.length;
  if (shownAt.length !== n + 1 || !shownAt.every(Number.isFinite)) return { ok: false, reason: 'light_out_of_order' };
  const phases: LightPhase[] = [];
  for (let i = 0; i < n; i++) {
    const start = shownAt[i];
    const end = shownAt[i + 1];
    const asked = plan.colours[i].ms;
    if (!(end > start)) return { ok: false, reason: 'light_out_of_order' };
    const shown = end - start;
    if (shown < asked - t.shortMs || shown > asked + t.longMs) return { ok: false, reason: 'light_out_of_order' };
    phases.push({ rgb: plan.colours[i].rgb, start, end });
  }
  if (sentAtClient !== null && shownAt[0] - sentAtClient > t.startMaxMs) return { ok: false, reason: 'light_late' };
  return { ok: true, phases };
}

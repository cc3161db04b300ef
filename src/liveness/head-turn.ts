import { randomUUID } from 'node:crypto';
import { fitHomography, type Point } from './homography';
import { secureRandom } from './light';

/**
 * The head-turn challenge: the patient turns the head to their own left or right, chosen at random, and the turn
 * must show depth. Any view of a flat photo or screen, however it is turned, tilted or bent sideways, is (nearly)
 * a projective map of its frontal view; a real nose tip stands about 20 mm in front of the eyes and mouth, so in a
 * turned view it lands beside where that map puts it.
 */

export type TurnDirection = 'left' | 'right';

export interface TurnPlan {
  challengeId: string;
  /** The patient's own left or right. */
  direction: TurnDirection;
}

export function planTurn(random: () => number = secureRandom): TurnPlan {
  return { challengeId: randomUUID(), direction: random() < 0.5 ? 'left' : 'right' };
}

/**
 * The sign of the yaw a turn reads as: the patient's left is the image's right in an unmirrored camera image, and
 * positive yaw means the nose moved to the image's right.
 */
export function turnSign(direction: TurnDirection): 1 | -1 {
  return direction === 'left' ? 1 : -1;
}

export interface TurnThresholds {
  /** A frame with |yaw| at most this (degrees) is frontal: the reference view. */
  frontalMax: number;
  /** Any |yaw| above this in the beforeMs before the prompt means the patient turned before being asked. */
  earlyMax: number;
  beforeMs: number;
  /** The turn must reach this yaw (degrees) in the asked direction within windowMs of the prompt. */
  minYaw: number;
  windowMs: number;
  /** Landmarks degrade in strong profile: the turned view for the 3D check is the most turned one up to this. */
  maxYaw: number;
  /** Once past minYaw, a yaw this much below the peak means the head is coming back: decide then. */
  settleDeg: number;
  /** Least nose-tip shift off the plane's prediction, in inter-ocular distances, signed in the turn's direction. */
  parallaxMin: number;
}

// parallaxMin is a placeholder until the calibration on rendered sessions: a real face gives about
// 0.3 * sin(yaw) (0.09 at 18 degrees), a flat photo only landmark noise.
// Calibrated on rendered sessions (`faceid pad-eval --metrics`, docs/liveness.md): genuine turns reached 16-41
// degrees with a nose shift of 0.20-0.32 IOD; flat and bent photos shifted it by at most 0.05.
export const DEFAULT_TURN_THRESHOLDS: TurnThresholds = {
  frontalMax: 12,
  earlyMax: 20,
  beforeMs: 1000,
  minYaw: 15,
  windowMs: 3000,
  maxYaw: 40,
  settleDeg: 5,
  parallaxMin: 0.1,
};

// Points a flat photo carries rigidly: eye corners, brow ends, mouth corners, chin (iBUG 68 indices).
const PLANE_POINTS = [36, 39, 42, 45, 17, 21, 22, 26, 48, 54, 8];
const NOSE_TIP = 30;
const NOSE_BASE = [31, 32, 33, 34, 35];

export interface Parallax {
  /** Horizontal offset of the nose tip from the plane's prediction / IOD, positive in the turn's direction. */
  noseShift: number;
  /** The same for the mean of the nose base points (31-35). */
  noseBaseShift: number;
  /** RMS distance of the plane points from the fitted map / IOD: how well one plane explains them. */
  planeRms: number;
  /** Inter-ocular distance (between the eye centres) of the frontal view, pixels. */
  iod: number;
}

const at = (lm: ArrayLike<number>, i: number): Point => [lm[2 * i], lm[2 * i + 1]];
const centre = (lm: ArrayLike<number>, from: number, to: number): Point => {
  let x = 0;
  let y = 0;
  for (let i = from; i <= to; i++) [x, y] = [x + lm[2 * i], y + lm[2 * i + 1]];
  return [x / (to - from + 1), y / (to - from + 1)];
};

/**
 * Fits the projective map of the plane points from the frontal to the turned view and measures where the nose
 * lands against it. `sign` is the image direction of the turn (turnSign): +1 when the nose moves to the image's
 * right. Null when the landmarks are missing or degenerate.
 */
export function parallax(frontal: ArrayLike<number>, turned: ArrayLike<number>, sign: 1 | -1 = 1): Parallax | null {
  if (frontal.length < 136 || turned.length < 136) return null;
  const [l, r] = [centre(frontal, 36, 41), centre(frontal, 42, 47)];
  const iod = Math.hypot(r[0] - l[0], r[1] - l[1]);
  const map = fitHomography(
    PLANE_POINTS.map((i) => at(frontal, i)),
    PLANE_POINTS.map((i) => at(turned, i)),
  );
  if (!map || !(iod > 0)) return null;
  const dx = (i: number) => turned[2 * i] - map(at(frontal, i))[0];
  const sq = PLANE_POINTS.map((i) => {
    const p = map(at(frontal, i));
    return (turned[2 * i] - p[0]) ** 2 + (turned[2 * i + 1] - p[1]) ** 2;
  });
  const result: Parallax = {
    noseShift: (sign * dx(NOSE_TIP)) / iod,
    noseBaseShift: (sign * NOSE_BASE.reduce((s, i) => s + dx(i), 0)) / NOSE_BASE.length / iod,
    planeRms: Math.sqrt(sq.reduce((a, b) => a + b, 0) / sq.length) / iod,
    iod,
  };
  return Object.values(result).every(Number.isFinite) ? result : null;
}

/** One analysed frame with a face: server clock ms, yaw in degrees (engine sign), the 68 landmarks. */
export interface TurnFrame {
  t: number;
  yaw: number;
  landmarks: ArrayLike<number>;
}

export type TurnFailure = 'turn_missing' | 'turn_early' | 'turn_flat';
export type TurnStatus = 'waiting' | 'passed' | 'failed';

export interface TurnMetrics {
  /** Yaw of the frontal reference, degrees (engine sign); null when none was found. */
  frontalYaw: number | null;
  /** The largest yaw reached in the asked direction (positive = the right way), degrees. */
  peakYaw: number | null;
  /** ms from the prompt to the frame that first reached minYaw. */
  reachedMs: number | null;
  noseShift: number | null;
  noseBaseShift: number | null;
  planeRms: number | null;
  /** noseShift / sin(turn angle): the nose's depth in IODs that the shift implies (about 0.3 for a real face). */
  noseDepth: number | null;
}

/**
 * Follows one turn challenge. Feed every analysed frame with a face, in time order, from at least beforeMs before
 * the prompt: frames before `promptAt` (through `observe` or `observeBefore`) give the frontal reference and the
 * early-turn check. Call `tick` on frames without a face so the window can close. Passes when the asked turn
 * happened in time, after a frontal view, and shows depth. Keeps the landmarks of at most beforeMs of frames.
 */
export class TurnTracker {
  private before: TurnFrame[] = [];
  private reference: TurnFrame | null = null;
  private checkedBefore = false;
  /** The most turned frame up to maxYaw, and the least turned beyond it (used when nothing else reached minYaw). */
  private peak: { frame: TurnFrame; signed: number } | null = null;
  private beyond: { frame: TurnFrame; signed: number } | null = null;
  private reachedAt: number | null = null;
  private state: TurnStatus = 'waiting';
  private failure: TurnFailure | null = null;
  private readonly m: TurnMetrics = {
    frontalYaw: null,
    peakYaw: null,
    reachedMs: null,
    noseShift: null,
    noseBaseShift: null,
    planeRms: null,
    noseDepth: null,
  };
  private readonly sign: 1 | -1;

  constructor(
    readonly direction: TurnDirection,
    readonly promptAt: number,
    private readonly t: TurnThresholds = DEFAULT_TURN_THRESHOLDS,
  ) {
    this.sign = turnSign(direction);
  }

  status(): TurnStatus {
    return this.state;
  }

  get reason(): TurnFailure | null {
    return this.failure;
  }

  get metrics(): TurnMetrics {
    return { ...this.m };
  }

  /** A frame from before the prompt (e.g. the session's recent history when the tracker is created at the prompt). */
  observeBefore(f: TurnFrame): void {
    if (this.checkedBefore) return;
    this.before.push(f);
    while (this.before.length && this.before[0].t < f.t - this.t.beforeMs) this.before.shift();
  }

  /** Any frame; those from before `promptAt` go to observeBefore. */
  observe(f: TurnFrame): TurnStatus {
    if (this.state !== 'waiting') return this.state;
    if (f.t < this.promptAt) {
      this.observeBefore(f);
      return this.state;
    }
    if (!this.checkBefore()) return this.state;
    if (f.t > this.promptAt + this.t.windowMs) return this.conclude();
    const signed = this.sign * f.yaw;
    if (signed <= -this.t.minYaw) return this.fail('turn_missing'); // the other way: a recorded turn guessed wrong
    this.m.peakYaw = Math.max(this.m.peakYaw ?? signed, signed);
    if (signed <= this.t.maxYaw && (!this.peak || signed > this.peak.signed)) this.peak = { frame: f, signed };
    if (signed > this.t.maxYaw && (!this.beyond || signed < this.beyond.signed)) this.beyond = { frame: f, signed };
    if (signed >= this.t.minYaw && this.reachedAt === null) {
      this.reachedAt = f.t;
      this.m.reachedMs = f.t - this.promptAt;
    }
    if (this.reachedAt !== null && signed <= this.m.peakYaw - this.t.settleDeg) return this.conclude();
    return this.state;
  }

  /** Lets the window close when a frame without a usable face arrives, or none; `now` is the server clock. */
  tick(now: number): TurnStatus {
    if (this.state === 'waiting' && now > this.promptAt + this.t.windowMs) {
      if (this.checkBefore()) this.conclude();
    }
    return this.state;
  }

  /** The second before the prompt: no turn yet, and a frontal view to compare the turn with (the latest one). */
  private checkBefore(): boolean {
    if (this.checkedBefore) return this.state === 'waiting';
    this.checkedBefore = true;
    const recent = this.before.filter((f) => f.t >= this.promptAt - this.t.beforeMs);
    this.before = [];
    this.reference = recent.filter((f) => Math.abs(f.yaw) <= this.t.frontalMax).pop() ?? null;
    this.m.frontalYaw = this.reference?.yaw ?? null;
    // Turned already, or no frontal view to compare with (the head was turned or not seen when asked).
    if (!this.reference || recent.some((f) => Math.abs(f.yaw) > this.t.earlyMax)) {
      this.fail('turn_early');
      return false;
    }
    return true;
  }

  private conclude(): TurnStatus {
    const turned = this.peak && this.peak.signed >= this.t.minYaw ? this.peak : this.beyond;
    if (!this.reference || !turned) return this.fail('turn_missing');
    const p = parallax(this.reference.landmarks, turned.frame.landmarks, this.sign);
    if (p) {
      this.m.noseShift = p.noseShift;
      this.m.noseBaseShift = p.noseBaseShift;
      this.m.planeRms = p.planeRms;
      const angle = ((turned.signed - this.sign * this.reference.yaw) * Math.PI) / 180;
      this.m.noseDepth = p.noseShift / Math.sin(angle);
    }
    if (!p || p.noseShift < this.t.parallaxMin) return this.fail('turn_flat');
    this.state = 'passed';
    return this.state;
  }

  private fail(reason: TurnFailure): TurnStatus {
    this.state = 'failed';
    this.failure = reason;
    return this.state;
  }
}

import type { Face, FaceLight } from '../engine';
import {
  checkLightResponse,
  planLightChallenge,
  planTurn,
  TurnTracker,
  validateShownReport,
  type ChallengeKind,
  type LightPhase,
  type LightPlan,
} from '../liveness';
import type { LivenessReason } from '../transport/protocol';
import { BlinkDetector } from './blink';
import type { IdentificationSettings } from './session-runner';

/** A step's prompt to the patient (guidance while it runs). */
export type PromptCode = 'blink_now' | 'blink_again' | 'watch_screen' | 'turn_left' | 'turn_right';

/**
 * What the runner sends on a step's behalf. `windowMs`: the time the patient has left for the challenge, in ms (for
 * a countdown).
 */
export type StepMessage =
  | { type: 'challenge'; kind: 'light'; challengeId: string; colours: LightPlan['colours']; windowMs: number }
  | { type: 'challenge'; kind: 'turn'; challengeId: string; direction: 'left' | 'right'; windowMs: number }
  | { type: 'guidance'; code: PromptCode; windowMs: number };

/** One analysed frame, as the steps see it. */
export interface StepFrame {
  /** Server clock (ms) when the analysis finished. */
  t: number;
  /** The frame's capture time on the client's clock (epoch ms). */
  captureTime: number;
  /** The primary face, or null. */
  face: Face | null;
  /** The frame is good enough to identify from (guidance found no problem). */
  good: boolean;
}

/** A challenge's measurements (numbers only: they describe light and geometry, not the person). */
export type StepMetrics = Readonly<Record<string, number | null>>;

export type StepStatus =
  | { state: 'running' }
  | { state: 'passed'; metrics?: StepMetrics }
  | { state: 'failed'; reason: LivenessReason; metrics?: StepMetrics };
const RUNNING: StepStatus = { state: 'running' };
const fail = (reason: LivenessReason, metrics?: StepMetrics): StepStatus => ({ state: 'failed', reason, metrics });

function numbers(m: object): StepMetrics {
  const out: Record<string, number | null> = {};
  for (const [k, v] of Object.entries(m)) if (typeof v === 'number' || v === null) out[k] = v;
  return out;
}

export interface StepContext {
  send(msg: StepMessage): void;
  random(): number;
  /** Recent analysed frames before the step began (oldest first), for baselines. */
  history: readonly StepFrame[];
  /** Largest (client capture time - server receipt time) seen: converts server times to the client's clock. */
  clientClockAhead: number;
}

/** The runner's settings that the challenges read. */
export type StepSettings = Pick<
  IdentificationSettings,
  | 'blinkWindowMs'
  | 'blinkAgainWindowMs'
  | 'blink'
  | 'light'
  | 'turn'
  | 'lightReportGraceMs'
  | 'lightTailMs'
  | 'lightRetries'
>;

/** A liveness challenge in progress: begun once, then fed every analysed frame until it passes or fails. */
export interface ChallengeStep {
  readonly kind: ChallengeKind;
  /** A turn tolerates a turned head; the others want the patient to face the camera. */
  readonly allowsTurnedHead: boolean;
  /** Whether a good frame is also right for this challenge to begin on (default: any good frame). */
  canBegin?(f: StepFrame): boolean;
  begin(t: number, ctx: StepContext): void;
  onFrame(f: StepFrame): StepStatus;
  /** Milliseconds the patient has left at time t for what the step asks (0 once that is over). */
  windowLeft(t: number): number;
  onLightShown?(challengeId: string, shownAt: number[], t: number): StepStatus;
}

export function createStep(kind: ChallengeKind, settings: StepSettings): ChallengeStep {
  switch (kind) {
    case 'light':
      return new LightStep(settings);
    case 'turn':
      return new TurnStep(settings);
    case 'blink':
      return new BlinkStep(settings);
  }
}

/** Good frames before the blink prompt whose eyes seed the blink detector's open readings. */
const BLINK_BASELINE_FRAMES = 6;

/**
 * The blink: asked once (`blink_now`), and once more (`blink_again`, a window of at most the first's length) when the
 * first window passes without one, before the session ends `no_blink`. The second window goes on with the same
 * detector and its open readings (a closure at the end of the first window that reopens in the second is a blink);
 * it gives no other way to pass. A photo still needs a closure clearly below every open reading of the session, and
 * the light or the turn, which every session pairs with the blink, has refused it before the first window ends.
 */
class BlinkStep implements ChallengeStep {
  readonly kind = 'blink';
  readonly allowsTurnedHead = false;
  private readonly detector: BlinkDetector;
  private windowEnd = 0;
  private askedAgain = false;
  private ctx: StepContext | null = null;

  constructor(private readonly s: StepSettings) {
    this.detector = new BlinkDetector(s.blink);
  }

  begin(t: number, ctx: StepContext): void {
    this.ctx = ctx;
    this.windowEnd = t + this.s.blinkWindowMs;
    // The eyes as the request goes out, from the last good frames (face to the camera): the detector needs a few
    // open readings before a closure counts, and a patient who reacts at once, on a server that analyses only a few
    // frames a second, may send closed eyes within one or two frames of the prompt.
    const recent = ctx.history.filter((f) => f.good && f.face?.eyes).slice(-BLINK_BASELINE_FRAMES);
    const seed = recent.length > 0 ? recent : ctx.history.slice(-1);
    for (const f of seed) this.detector.observe(f.face?.eyes);
    ctx.send({ type: 'guidance', code: 'blink_now', windowMs: this.s.blinkWindowMs });
  }

  onFrame(f: StepFrame): StepStatus {
    const again = this.askedAgain ? 1 : 0;
    if (this.detector.observe(f.face?.eyes)) return { state: 'passed', metrics: { again } };
    if (f.t <= this.windowEnd) return RUNNING;
    const second = Math.min(this.s.blinkAgainWindowMs, this.s.blinkWindowMs);
    if (!this.askedAgain && second > 0 && this.ctx) {
      this.askedAgain = true;
      this.windowEnd = f.t + second;
      this.ctx.send({ type: 'guidance', code: 'blink_again', windowMs: second });
      return RUNNING;
    }
    return fail('no_blink', { again });
  }

  windowLeft(t: number): number {
    return Math.max(0, Math.round(this.windowEnd - t));
  }
}

interface LightSample {
  t: number;
  light: FaceLight;
}

class LightStep implements ChallengeStep {
  readonly kind = 'light';
  readonly allowsTurnedHead = false;
  private plan: LightPlan | null = null;
  private samples: LightSample[] = [];
  private phases: LightPhase[] | null = null;
  private reportDeadline = 0;
  private checkDeadline = 0;
  private sentAtClient = 0;
  private retries = 0;
  private ctx: StepContext | null = null;
  /** When the colours should be over (server clock). */
  private coloursEnd = 0;

  constructor(private readonly s: StepSettings) {}

  begin(t: number, ctx: StepContext): void {
    this.ctx = ctx;
    this.phases = null;
    this.plan = planLightChallenge(ctx.random);
    const total = this.plan.colours.reduce((sum, c) => sum + c.ms, 0);
    this.coloursEnd = t + total;
    this.reportDeadline = t + total + this.s.lightReportGraceMs;
    this.sentAtClient = t + ctx.clientClockAhead;
    // Frames from just before the colours give the baseline.
    for (const f of ctx.history) this.addSample(f);
    const { challengeId, colours } = this.plan;
    ctx.send({ type: 'challenge', kind: 'light', challengeId, colours, windowMs: total });
    ctx.send({ type: 'guidance', code: 'watch_screen', windowMs: total });
  }

  windowLeft(t: number): number {
    return Math.max(0, Math.round(this.coloursEnd - t));
  }

  onLightShown(challengeId: string, shownAt: number[], t: number): StepStatus {
    if (!this.plan || challengeId !== this.plan.challengeId || this.phases) return RUNNING;
    const report = validateShownReport(this.plan, shownAt, this.sentAtClient);
    if (!report.ok) return fail(report.reason);
    this.phases = report.phases;
    this.checkDeadline = t + this.s.lightTailMs + this.s.lightReportGraceMs;
    return RUNNING;
  }

  onFrame(f: StepFrame): StepStatus {
    this.addSample(f);
    if (!this.phases) return f.t > this.reportDeadline ? fail('light_not_shown') : RUNNING;
    const end = this.phases[this.phases.length - 1].end;
    const covered = f.captureTime >= end + this.s.lightTailMs;
    if (!covered && f.t <= this.checkDeadline) return RUNNING;
    const result = checkLightResponse(this.samples, this.phases, this.s.light);
    this.samples = [];
    const metrics = numbers(result.metrics);
    // Too few frames to judge, or the deadline came before any analysed frame showed the end of the colours (frames
    // dropped or analysed late on a busy server or network): the evidence is incomplete, not the patient's answer.
    // A new sequence, at most lightRetries times.
    const incomplete = result.insufficient === true || !covered;
    if (!result.ok && incomplete && this.retries < this.s.lightRetries && this.ctx) {
      this.retries++;
      this.begin(f.t, this.ctx);
      return RUNNING;
    }
    return result.ok ? { state: 'passed', metrics } : fail(result.reason, metrics);
  }

  private addSample(f: StepFrame): void {
    if (f.face?.light) this.samples.push({ t: f.captureTime, light: f.face.light });
  }
}

class TurnStep implements ChallengeStep {
  readonly kind = 'turn';
  readonly allowsTurnedHead = true;
  private tracker: TurnTracker | null = null;
  private windowEnd = 0;

  constructor(private readonly s: StepSettings) {}

  /** The turn is measured from a frontal face: it begins only while the patient faces the camera. */
  canBegin(f: StepFrame): boolean {
    const yaw = f.face?.pose?.yaw;
    return yaw !== undefined && Math.abs(yaw) <= this.s.turn.frontalMax;
  }

  begin(t: number, ctx: StepContext): void {
    const plan = planTurn(ctx.random);
    this.tracker = new TurnTracker(plan.direction, t, this.s.turn);
    for (const f of ctx.history) {
      if (f.face?.pose && f.face.landmarks) {
        this.tracker.observeBefore({ t: f.t, yaw: f.face.pose.yaw, landmarks: f.face.landmarks });
      }
    }
    this.windowEnd = t + this.s.turn.windowMs;
    const windowMs = this.s.turn.windowMs;
    ctx.send({ type: 'challenge', kind: 'turn', challengeId: plan.challengeId, direction: plan.direction, windowMs });
    ctx.send({ type: 'guidance', code: plan.direction === 'left' ? 'turn_left' : 'turn_right', windowMs });
  }

  windowLeft(t: number): number {
    return Math.max(0, Math.round(this.windowEnd - t));
  }

  onFrame(f: StepFrame): StepStatus {
    const tracker = this.tracker!;
    if (f.face?.pose && f.face.landmarks)
      tracker.observe({ t: f.t, yaw: f.face.pose.yaw, landmarks: f.face.landmarks });
    else tracker.tick(f.t);
    const status = tracker.status();
    if (status === 'passed') return { state: 'passed', metrics: numbers(tracker.metrics) };
    if (status === 'failed') return fail(tracker.reason!, numbers(tracker.metrics));
    return RUNNING;
  }
}

import {
  cosineSimilarity,
  EngineError,
  FULL_STAGES,
  TRACK_STAGES,
  type Analysis,
  type Box,
  type FaceEngine,
  type LandmarkReuse,
  type Stage,
} from '../engine';
import {
  DEFAULT_LIGHT_THRESHOLDS,
  DEFAULT_TURN_THRESHOLDS,
  secureRandom,
  type ChallengeKind,
  type LightThresholds,
  type TurnThresholds,
} from '../liveness';
import type { Frame, FrameMessage } from '../transport/frame';
import type { FaceBox, FrameOutcome, LivenessReason } from '../transport/protocol';
import { DEFAULT_BLINK, type BlinkThresholds } from './blink';
import {
  createStep,
  type ChallengeStep,
  type PromptCode,
  type StepFrame,
  type StepMessage,
  type StepMetrics,
  type StepStatus,
} from './challenge-steps';
import {
  assessFrame,
  DEFAULT_GUIDANCE,
  type FrameAssessment,
  type GuidanceCode,
  type GuidanceThresholds,
} from './guidance';

export interface IdentificationSettings {
  /** Cosine similarity at or above which the face matches the template (see `faceid eval`). */
  matchThreshold: number;
  /** Mean passive liveness below which the session is a suspected spoof (only when the passive model runs). */
  livenessMin: number;
  /** The challenges of this session, in the order they run (light, turn, blink); the blink is always there. */
  challenges: readonly ChallengeKind[];
  /** How long the patient has to blink once asked, in ms. */
  blinkWindowMs: number;
  /**
   * When no blink came within blinkWindowMs: the second window, after `blink_again`, in ms (at most blinkWindowMs;
   * 0 = no second window, `no_blink` at once).
   */
  blinkAgainWindowMs: number;
  /** The whole session, from the connection to the verdict, in ms. */
  sessionTimeoutMs: number;
  /** Good frames in a row before the first challenge. */
  goodFramesBeforeChallenge: number;
  /** Each challenge starts at a random moment this long after the face is ready for it, in ms. */
  challengeDelayMs: { min: number; max: number };
  /** A blink that follows the light is asked while the colours still show, this long after they began, in ms. */
  blinkDuringLightMs: { min: number; max: number };
  /**
   * Track calls between two runs of the face detector (the face box is carried over in between; 0 = every frame).
   * Once the challenges begin (but for a head turn), the box is carried over for as long as the face stays in it.
   */
  trackFrames: number;
  /**
   * Full analyses (embedding) used for the decision: one in each challenge, and at least `min`, unless every one so far
   * matches clearly (similarity at least matchThreshold + clearMargin each: a second frame would not change the
   * verdict); `before` of them before the challenges begin (0: the identity is checked only on frames inside the
   * challenges). A blink asked while the light's colours show shares the light's: one full analysis once both run.
   */
  fullFrames: { min: number; before: number; clearMargin: number };
  /**
   * Frames of the light challenge reuse the last landmarks computed in the same box (moved along with the face), at
   * most maxFrames in a row, while the engine's anchor test finds the face moved at most maxShift x the box width
   * (else it runs the landmark network on that frame). maxFrames 0: landmarks on every frame.
   */
  landmarkReuse: { maxFrames: number; maxShift: number };
  guidance: GuidanceThresholds;
  blink: BlinkThresholds;
  light: LightThresholds;
  turn: TurnThresholds;
  /** How long after its colours should have ended the client's `light_shown` report may take, in ms. */
  lightReportGraceMs: number;
  /** Frames captured this long after the last colour are still awaited (the camera's own lag), in ms. */
  lightTailMs: number;
  /** New light sequences when too few frames fell inside the colours to judge (frames dropped under load). */
  lightRetries: number;
}

export const DEFAULT_SETTINGS: IdentificationSettings = {
  matchThreshold: 0.46,
  livenessMin: 0.01,
  challenges: ['light', 'blink'],
  blinkWindowMs: 5000,
  // A patient who missed the first prompt is reminded; a blink takes 0.1-0.4 s after a reaction of about a second.
  blinkAgainWindowMs: 3000,
  sessionTimeoutMs: 30000,
  goodFramesBeforeChallenge: 2,
  challengeDelayMs: { min: 100, max: 300 },
  blinkDuringLightMs: { min: 300, max: 800 },
  // A clear match: 0.1 above the threshold. Consecutive frames of one rendered live face, against a template from
  // another photo of the same person or of someone else (labelled set, 38,000 pairs), differ by 0.01 (median), 0.047
  // (p99 of strangers), 0.14 at most; none cleared 0.56 and then fell below 0.46, and 96% of the same person's cleared.
  fullFrames: { min: 2, before: 0, clearMargin: 0.1 },
  trackFrames: 3,
  // Half a pixel for an 80 px face box: reuse up to 1 px let a few more live faces fail the light (6 of 360 sessions
  // against 3 of 360 computing them on every frame); at half a pixel, 3 of 360, and 60% of the light's frames reuse.
  landmarkReuse: { maxFrames: 5, maxShift: 0.00625 },
  guidance: DEFAULT_GUIDANCE,
  blink: DEFAULT_BLINK,
  light: DEFAULT_LIGHT_THRESHOLDS,
  turn: DEFAULT_TURN_THRESHOLDS,
  lightReportGraceMs: 1500,
  lightTailMs: 350,
  lightRetries: 1,
};

export type VerdictResult = 'match' | 'no_match' | 'spoof_suspected' | 'no_template' | 'timeout' | 'error';

export interface VerdictOutcome {
  result: VerdictResult;
  score: number | null;
  liveness: { passive: number | null; blink: boolean; light: boolean | null; turn: boolean | null };
  /** Why liveness failed (or the client was refused); null otherwise. */
  reason: LivenessReason | null;
  timings: {
    firstFrameToVerdictMs: number | null;
    framesReceived: number;
    framesAnalysed: number;
    framesDropped: number;
  };
  /** For field calibration only (src/calibration): never sent to the desk, never in an MIS event. */
  quality: SessionQuality;
}

/** How an analysed frame was judged: good (`ok`), or its first problem (see assessFrame). */
export type FrameState = NonNullable<FrameAssessment['problem']> | 'ok';

/**
 * Aggregates of the session's frames, with nothing of a face in them: the mean quality of the full frames the
 * decision used (none for a session that ended before any), and how many analysed frames had each state.
 */
export interface SessionQuality {
  /** Full frames the decision used (or would have: those collected when the session ended). */
  fullFrames: number;
  /** Means over those frames, 1 decimal: inter-ocular distance (px), face brightness (0-255), Laplacian variance. */
  faceSize: number | null;
  brightness: number | null;
  sharpness: number | null;
  /** Analysed frames (track and full calls) per state. */
  frames: Partial<Record<FrameState, number>>;
}

/** Messages the runner sends; the gateway turns them into protocol messages. */
export type RunnerMessage =
  | {
      type: 'guidance';
      code: GuidanceCode;
      progress: number;
      /** With a challenge's prompt: the time it has left, ms. */
      windowMs?: number;
      /** The face's box in the last analysed frame, 0..1 of the frame; absent without a face. */
      box?: FaceBox;
    }
  | Extract<StepMessage, { type: 'challenge' }>
  | { type: 'busy'; retryAfterMs: number }
  | { type: 'error'; code: string; message: string; seq?: number };

export interface RunnerHooks {
  send(msg: RunnerMessage): void;
  /** Called exactly once. Every frame the runner held is already released. */
  finish(outcome: VerdictOutcome): void;
  /**
   * Once per frame given to onFrame (or to dropUnread with its seq), when the runner is done with it: `analysed` after
   * its analysis was applied (and its guidance sent), `dropped` when it was released unanalysed without an error (replaced
   * by a newer frame, dropped unread, the engine busy, the session over), `refused` after the error sent for it.
   */
  onFrameDone?(seq: number, outcome: FrameOutcome): void;
  /** Observability: one call per frame, analysis and drop. */
  onFrameReceived?(): void;
  onFrameDropped?(): void;
  onAnalysis?(call: 'track' | 'full', seconds: number): void;
  /** A challenge ended, passed or not, with its measurements (numbers only; for calibration and statistics). */
  onChallenge?(kind: ChallengeKind, passed: boolean, metrics: StepMetrics | undefined): void;
}

interface FullSample {
  embedding: Float32Array;
  liveness: number | null;
  /** The frame's quality measures (for the session's aggregate; see SessionQuality). */
  quality: { faceSize: number; brightness: number; sharpness: number } | null;
  /** Index of the challenge running (or last begun) when the frame was analysed; -1 before the first. */
  step: number;
  /** Similarity to the template, to schedule the next full analyses only (the verdict is decide()'s). */
  score: number;
}

type Phase = 'collecting' | 'challenges' | 'done';

/** How long past blinkDuringLightMs.max the light's full analysis may wait for the blink (see blinkJoinsLight). */
const BLINK_JOIN_GRACE_MS = 300;

/** Frames kept for a challenge's baseline (the light's colours before it, the turn's frontal face). */
const HISTORY_MS = 1500;

/**
 * One identification session's frame loop. Latest frame wins: while a frame is analysed, a newer one replaces the
 * waiting one (which is released), so a fast client never builds a queue. Every frame given to the runner is its to
 * release: as soon as it has served (the engine has copied it), and before the verdict goes out.
 *
 * Once the face is ready, the session's challenges run one after another (light, turn, blink), each begun at a
 * random moment; every one must pass, and every face analysed in full must match the template on its own.
 */
export class SessionRunner {
  private phase: Phase = 'collecting';
  private inFlight = false;
  private pending: Frame | null = null;
  private goodStreak = 0;
  private readonly steps: ChallengeStep[];
  /** The next step to begin. */
  private nextStep = 0;
  /** When it begins; null until the face is ready for it. */
  private nextStartAt: number | null = null;
  /** Steps begun and not yet passed (the light and the blink may run together). */
  private active: number[] = [];
  private lightBegunAt: number | null = null;
  private passed = new Set<ChallengeStep['kind']>();
  private capabilities: ReadonlySet<string> | null = null;
  private history: StepFrame[] = [];
  private clientClockAhead = -Infinity;
  private fulls: FullSample[] = [];
  /** Analysed frames per state, for the verdict's quality summary. */
  private frameStates: Partial<Record<FrameState, number>> = {};
  /** The face box of the last detection, carried over while the face stays put (see trackFrames). */
  private tracked: { box: Box; centre: { x: number; y: number }; frames: number; moved: boolean } | null = null;
  /** The last landmarks computed in the tracked box, with that frame's anchor (see landmarkReuse). */
  private lastLandmarks: {
    box: Box;
    mirror: boolean;
    landmarks: Float32Array;
    anchor: Float32Array;
    reused: number;
  } | null = null;
  private firstFrameAt: number | null = null;
  private lastGuidance: { code: GuidanceCode; at: number } | null = null;
  /** The prompt of each step begun (its latest: `blink_again` replaces `blink_now`), by step index. */
  private prompts = new Map<number, PromptCode>();
  /** The primary face's box in the last analysed frame, as fractions of the frame; null without a face. */
  private box: FaceBox | null = null;
  private received = 0;
  private analysed = 0;
  private dropped = 0;
  private timeout: NodeJS.Timeout;

  constructor(
    private readonly engine: FaceEngine,
    private readonly template: Float32Array | null,
    private readonly hooks: RunnerHooks,
    private readonly settings: IdentificationSettings = DEFAULT_SETTINGS,
    private readonly now: () => number = () => performance.now(),
    // The challenges' sequences and moments must not be guessable: the operating system's CSPRNG.
    private readonly random: () => number = secureRandom,
  ) {
    this.steps = settings.challenges.map((kind) => createStep(kind, settings));
    this.timeout = setTimeout(() => this.conclude('timeout'), settings.sessionTimeoutMs);
    if (!template) queueMicrotask(() => this.conclude('no_template'));
  }

  get finished(): boolean {
    return this.phase === 'done';
  }

  stats(): { received: number; analysed: number; dropped: number; inFlight: boolean; pending: boolean } {
    return {
      received: this.received,
      analysed: this.analysed,
      dropped: this.dropped,
      inFlight: this.inFlight,
      pending: this.pending !== null,
    };
  }

  /** The client's `hello`: the challenges it can run. Without one, a client runs the blink only. */
  onHello(capabilities: readonly string[] | undefined): void {
    this.capabilities = new Set(capabilities ?? ['blink']);
  }

  /** The client's report of when it showed the light challenge's colours. */
  onLightShown(challengeId: string, shownAt: number[]): void {
    if (this.phase !== 'challenges') return;
    for (const i of [...this.active]) {
      const step = this.steps[i];
      if (step.onLightShown) this.settle(i, step.onLightShown(challengeId, shownAt, this.now()));
    }
  }

  /** Ends the session as a suspected spoof before any analysis (e.g. a virtual camera). */
  refuse(reason: LivenessReason): void {
    this.conclude('spoof_suspected', null, reason);
  }

  /** Takes ownership of `frame`: the runner releases it. */
  onFrame(frame: Frame): void {
    const { seq, captureTime } = frame.header;
    this.received++;
    this.hooks.onFrameReceived?.();
    if (this.phase === 'done') {
      frame.release();
      this.hooks.onFrameDone?.(seq, 'dropped');
      return;
    }
    if (this.firstFrameAt === null) {
      this.firstFrameAt = this.now();
      const missing = this.steps.find((s) => s.kind !== 'blink' && !this.capabilities?.has(s.kind));
      if (missing) {
        frame.release();
        this.hooks.send({
          type: 'error',
          code: 'client_unsupported',
          message: `This workstation requires the ${missing.kind} challenge, which the client did not offer in its hello: update the client.`,
        });
        this.hooks.onFrameDone?.(seq, 'refused');
        this.conclude('error', null, 'client_unsupported');
        return;
      }
    }
    this.clientClockAhead = Math.max(this.clientClockAhead, captureTime - this.now());
    if (this.inFlight) {
      if (this.pending) {
        this.pending.release();
        this.dropped++;
        this.hooks.onFrameDropped?.();
        this.hooks.onFrameDone?.(this.pending.header.seq, 'dropped');
      }
      this.pending = frame;
      return;
    }
    void this.process(frame);
  }

  /**
   * A binary message refused unread (it arrived above fps.max): released at once, never looked at (malformed or not),
   * and counted as received and dropped, so the verdict's timings show it. Its seq, when its header held one, is
   * reported as dropped.
   */
  dropUnread(message: FrameMessage): void {
    let seq: number | undefined;
    if (message.kind === 'frame') {
      message.release();
      seq = message.header.seq;
    } else {
      seq = message.seq;
    }
    this.received++;
    this.dropped++;
    this.hooks.onFrameReceived?.();
    this.hooks.onFrameDropped?.();
    if (seq !== undefined) this.hooks.onFrameDone?.(seq, 'dropped');
  }

  /** The connection went away before a verdict: wipe and stop (no verdict is sent). */
  abort(): void {
    if (this.phase === 'done') return;
    this.phase = 'done';
    clearTimeout(this.timeout);
    this.wipePending();
    this.wipeEmbeddings();
    this.dropLandmarks();
  }

  private async process(frame: Frame): Promise<void> {
    const { seq, captureTime, format, width, height } = frame.header;
    this.inFlight = true;
    const call = this.wantsFull() ? 'full' : 'track';
    const started = this.now();
    let analysis: Analysis | null = null;
    let outcome: FrameOutcome = 'dropped';
    try {
      const opts = { format, width, height, maxFaces: 1 };
      // Full analyses take the carried box too: the embedding is aligned on the landmarks, not on the detector's box.
      const box = this.carriedBox();
      // Mirror-averaged landmarks (twice the cost of the crop's alone) on detections, where the pose matters (see
      // poseMatters), and while the colours show or the blink runs: the light's small regions and the eye crops are
      // placed by the landmarks, and the crop's alone sit a pixel or two off, which the light check reads as noise
      // and the eye model as half-shut eyes (full analyses use the averaged ones).
      const stillStep = this.active.some((i) => this.steps[i].kind !== 'turn');
      const mirrorLandmarks = box === undefined || this.poseMatters || stillStep;
      analysis =
        call === 'full'
          ? await this.engine.full(frame.payload, {
              ...opts,
              box,
              stages: this.stagesOf(FULL_STAGES),
              reuseLandmarks: this.reusableLandmarks(box, true),
            })
          : await this.engine.track(frame.payload, {
              ...opts,
              box,
              mirrorLandmarks,
              stages: this.stagesOf(TRACK_STAGES),
              reuseLandmarks: this.reusableLandmarks(box, mirrorLandmarks),
            });
      this.follow(analysis, box);
      this.keepLandmarks(analysis, box, call === 'full' || mirrorLandmarks);
      this.analysed++;
      outcome = 'analysed';
      this.hooks.onAnalysis?.(call, (this.now() - started) / 1000);
    } catch (err) {
      const e = EngineError.from(err);
      if (this.phase !== 'done') {
        if (e.code === 'busy') {
          this.hooks.send({ type: 'busy', retryAfterMs: 200 });
        } else {
          this.hooks.send({ type: 'error', code: e.code, message: e.message, seq });
          outcome = 'refused';
        }
      }
    } finally {
      frame.release(); // the engine wiped the payload when it copied it; this clears the header and any padding
    }
    if (analysis && this.phase !== 'done') this.step(analysis, call, captureTime);
    else wipeAnalysis(analysis);
    this.hooks.onFrameDone?.(seq, outcome);
    this.inFlight = false;
    const next = this.pending;
    this.pending = null;
    if (next) {
      if (this.phase === 'done') {
        next.release();
        this.hooks.onFrameDone?.(next.header.seq, 'dropped');
      } else {
        void this.process(next);
      }
    }
  }

  /** The box to analyse the next frame in (the detector is skipped), or undefined to detect. */
  private carriedBox(): Box | undefined {
    const tracked = this.tracked;
    if (!tracked || tracked.moved) return undefined;
    // Once the challenges begin the patient holds still (the guidance says so; the colours and the blink need it),
    // and the detector is the dearest stage of a track call: the box stays for as long as the face stays in it, except
    // while the head turns.
    const still = this.phase === 'challenges' && !this.turning;
    return tracked.frames < this.settings.trackFrames || still ? tracked.box : undefined;
  }

  /** Carries the detected face box over to the next frames, while the face stays inside it. */
  private follow(a: Analysis, box: Box | undefined): void {
    const face = a.faces.find((f) => f.primary);
    const centre = face?.landmarks ? landmarkCentre(face.landmarks) : null;
    if (!face || !centre) {
      this.tracked = null;
    } else if (!box) {
      this.tracked = a.faces.length === 1 ? { box: { ...face.box }, centre, frames: 0, moved: false } : null;
    } else if (this.tracked) {
      // Moved more than a tenth of the box since it was detected: detect again on the next frame.
      const moved = Math.hypot(centre.x - this.tracked.centre.x, centre.y - this.tracked.centre.y);
      this.tracked.moved ||= moved > 0.1 * this.tracked.box.width;
      this.tracked.frames++;
    }
  }

  /**
   * The stages of a call, out of `base`: the eyes only once the blink is the next challenge (it starts from the eyes
   * of the last frame before it) or running, not while a head turn runs; the anchor only while the colours show,
   * where the next frames may reuse the landmarks (see landmarkReuse).
   */
  private stagesOf(base: readonly Stage[]): Stage[] {
    const blinkNext = this.steps[this.nextStep]?.kind === 'blink' && !this.turning;
    const eyes = blinkNext || this.active.some((i) => this.steps[i].kind === 'blink');
    const stages = base.filter((s) => s !== 'eyes' || eyes);
    return this.lightActive && this.settings.landmarkReuse.maxFrames > 0 ? [...stages, 'anchor'] : stages;
  }

  /** The last landmarks, when this light frame may reuse them (same box, same kind, not reused too often). */
  private reusableLandmarks(box: Box | undefined, mirror: boolean): LandmarkReuse | undefined {
    const last = this.lastLandmarks;
    const { maxFrames, maxShift } = this.settings.landmarkReuse;
    // Landmarks of the crop alone never stand in for mirror-averaged ones (the pose is fitted to those only).
    if (!box || !last || !this.lightActive || last.reused >= maxFrames) return undefined;
    if ((mirror && !last.mirror) || !sameBox(last.box, box)) return undefined;
    return { landmarks: last.landmarks, anchor: last.anchor, maxShift: maxShift * box.width };
  }

  /** Keeps landmarks the engine computed in a box with their anchor (see landmarkReuse); counts the reuses. */
  private keepLandmarks(a: Analysis, box: Box | undefined, mirror: boolean): void {
    const face = a.faces.find((f) => f.primary);
    if (this.phase === 'done') {
      face?.anchor?.fill(0);
      return;
    }
    if (face?.landmarksReused && this.lastLandmarks) {
      this.lastLandmarks.reused++;
      face.anchor?.fill(0);
      return;
    }
    this.dropLandmarks();
    if (!face?.landmarks || !face.anchor) return;
    // After a detection the next frames are tracked in the detected box: the anchor was taken in it too.
    const landmarks = face.landmarks.slice();
    this.lastLandmarks = { box: { ...(box ?? face.box) }, mirror, landmarks, anchor: face.anchor, reused: 0 };
  }

  private dropLandmarks(): void {
    this.lastLandmarks?.anchor.fill(0);
    this.lastLandmarks = null;
  }

  private get lightActive(): boolean {
    return this.active.some((i) => this.steps[i].kind === 'light');
  }

  /**
   * Between detections (which fit the pose for the guidance) the pose, fitted to mirror-averaged landmarks only,
   * matters around the head turn alone: before it (its frontal baseline), during it, and after it until the next
   * challenge begins (the face must come back).
   */
  private get poseMatters(): boolean {
    const turn = this.steps.findIndex((s) => s.kind === 'turn');
    return turn >= 0 && this.nextStep <= turn + 1;
  }

  /** The last step begun (or -1): full analyses are counted per step. */
  private get lastBegun(): number {
    return this.nextStep - 1;
  }

  private get turning(): boolean {
    return this.active.some((i) => this.steps[i].allowsTurnedHead);
  }

  private wantsFull(): boolean {
    const { before } = this.settings.fullFrames;
    if (this.goodStreak === 0) return false;
    // While challenges run, speed matters more: one full analysis per challenge (or per pair running together), then
    // track only, with more only when the decision needs them.
    if (this.lastBegun >= 0) {
      if (!this.fullSince(this.lastBegun)) return !this.blinkJoinsLight();
      return this.allBegun && !this.enoughFulls();
    }
    // Before the challenges none is needed (fullFrames.before): the face is compared during and after them.
    return this.fulls.length < before;
  }

  /**
   * Enough full analyses for the decision: `min` of them, or fewer (one at least) when every one matches clearly.
   * Scheduling only: decide() still requires each of them, and their centroid, to match.
   */
  private enoughFulls(): boolean {
    const { min, clearMargin } = this.settings.fullFrames;
    if (this.fulls.length >= min) return true;
    const clear = this.settings.matchThreshold + clearMargin;
    return this.fulls.length > 0 && this.fulls.every((f) => f.score >= clear);
  }

  /**
   * The light runs and the blink is asked next, while its colours still show (0.3-0.8 s into them; they last more than
   * a second): the light's full analysis waits for the blink, so that one frame, inside both, serves both. Not past
   * the blink's latest start (plus a frame or two): a light that ran that long without it gets its own.
   */
  private blinkJoinsLight(): boolean {
    if (this.steps[this.nextStep]?.kind !== 'blink' || this.lightBegunAt === null || !this.lightActive) return false;
    return this.now() - this.lightBegunAt < this.settings.blinkDuringLightMs.max + BLINK_JOIN_GRACE_MS;
  }

  private get allBegun(): boolean {
    return this.nextStep >= this.steps.length;
  }

  private fullSince(step: number): boolean {
    return this.fulls.some((f) => f.step >= step);
  }

  private step(a: Analysis, call: 'track' | 'full', captureTime: number): void {
    const t = this.now();
    const { problem: rawProblem, face } = assessFrame(a, this.settings.guidance);
    this.box = face ? normalisedBox(face.box, a.width, a.height) : null;
    // A turned head is the point of the turn challenge, not a problem.
    const problem = rawProblem === 'look_at_camera' && this.turning ? null : rawProblem;
    const state: FrameState = problem ?? 'ok';
    this.frameStates[state] = (this.frameStates[state] ?? 0) + 1;
    const frame: StepFrame = { t, captureTime, face, good: problem === null };
    // While a challenge runs its own prompt stays up, unless the face is gone (or another one came).
    const shown = problem !== null && (this.active.length === 0 || face === null || problem === 'multiple_faces');
    if (problem) this.goodStreak = 0;
    else this.goodStreak++;
    if (shown) this.guide(problem, t);
    else if (this.active.length > 0) this.remind(t);
    if (call === 'full' && face?.embedding) {
      if (problem) face.embedding.fill(0);
      else {
        const q = face.quality;
        this.fulls.push({
          embedding: face.embedding,
          liveness: face.liveness ?? null,
          quality: q ? { faceSize: q.faceSize, brightness: q.brightness, sharpness: q.sharpness } : null,
          step: this.lastBegun,
          score: this.template ? cosineSimilarity(face.embedding, this.template) : -1,
        });
      }
    }

    if (this.phase === 'collecting' && this.goodStreak >= this.settings.goodFramesBeforeChallenge) {
      this.phase = 'challenges';
    }
    if (this.phase === 'challenges') this.advance(frame);
    if (this.phase !== 'done') this.remember(frame);
  }

  private advance(frame: StepFrame): void {
    for (const i of [...this.active]) {
      this.settle(i, this.steps[i].onFrame(frame));
      if (this.phase === 'done') return;
    }
    if (this.allBegun) {
      // Every challenge passed: decide once a face has been analysed in full since the last one began.
      if (this.active.length === 0 && this.enoughFulls() && this.fullSince(this.lastBegun)) {
        this.decide();
      }
      return;
    }
    const next = this.steps[this.nextStep];
    const alongsideLight =
      next.kind === 'blink' && this.lightBegunAt !== null && this.active.some((i) => this.steps[i].kind === 'light');
    if (this.active.length > 0 && !alongsideLight) return;
    if (!frame.good) return;
    if (next.canBegin && !next.canBegin(frame)) {
      if (this.active.length === 0) this.guide('look_at_camera', frame.t);
      return;
    }
    if (this.nextStartAt === null) {
      const { min, max } = alongsideLight ? this.settings.blinkDuringLightMs : this.settings.challengeDelayMs;
      this.nextStartAt = (alongsideLight ? this.lightBegunAt! : frame.t) + min + this.random() * (max - min);
    }
    if (frame.t < this.nextStartAt) {
      if (this.active.length === 0) this.guide('hold_still', frame.t);
      return;
    }
    const index = this.nextStep++;
    this.nextStartAt = null;
    this.active.push(index);
    if (next.kind === 'light') this.lightBegunAt = frame.t;
    next.begin(frame.t, {
      send: (msg) => this.sendStep(index, msg),
      random: this.random,
      history: this.history,
      clientClockAhead: Number.isFinite(this.clientClockAhead) ? this.clientClockAhead : 0,
    });
  }

  private settle(index: number, status: StepStatus): void {
    if (status.state === 'running' || this.phase === 'done') return;
    const step = this.steps[index];
    this.hooks.onChallenge?.(step.kind, status.state === 'passed', status.metrics);
    if (status.state === 'failed') {
      this.conclude('spoof_suspected', null, status.reason);
      return;
    }
    this.passed.add(step.kind);
    this.active = this.active.filter((i) => i !== index);
    if (step.kind === 'light') this.lightBegunAt = null;
    if (step.allowsTurnedHead) {
      this.goodStreak = 0; // the next challenge waits for the face to come back to the camera
      this.guide('look_at_camera', this.now(), true);
    }
  }

  private sendStep(index: number, msg: StepMessage): void {
    if (msg.type === 'guidance') {
      this.prompts.set(index, msg.code);
      this.guide(msg.code, this.now(), true, msg.windowMs);
    } else {
      this.hooks.send(msg);
    }
  }

  /**
   * The face is back (or its problem is not one to show during a challenge) while a challenge runs, but the patient
   * last saw something else (e.g. `no_face`, or the blink's prompt once the blink passed during the colours): the
   * prompt of the latest challenge running again, with the time it has left, while it has some.
   */
  private remind(t: number): void {
    const index = [...this.active].reverse().find((i) => this.prompts.has(i));
    if (index === undefined) return;
    const code = this.prompts.get(index)!;
    const left = this.steps[index].windowLeft(t);
    if (this.lastGuidance?.code === code || left <= 0) return;
    this.guide(code, t, true, left);
  }

  private remember(frame: StepFrame): void {
    this.history.push(frame);
    while (this.history.length && this.history[0].t < frame.t - HISTORY_MS) this.history.shift();
  }

  /**
   * Guidance goes out when it changes, or once a second while it stays the same, with the face's box in the last
   * analysed frame (where there was one) and, for a challenge's prompt, the time the challenge has left.
   */
  private guide(code: GuidanceCode, t: number, force = false, windowMs?: number): void {
    if (!force && this.lastGuidance?.code === code && t - this.lastGuidance.at < 1000) return;
    this.lastGuidance = { code, at: t };
    this.hooks.send({
      type: 'guidance',
      code,
      progress: this.progress(),
      ...(windowMs === undefined ? {} : { windowMs }),
      ...(this.box ? { box: { ...this.box } } : {}),
    });
  }

  private progress(): number {
    if (this.phase === 'done') return 1;
    if (this.phase === 'collecting') {
      return Math.min(0.2, (0.2 * this.goodStreak) / this.settings.goodFramesBeforeChallenge);
    }
    // 0.2 .. 0.9 over the challenges: a share per challenge passed, half a share per one running.
    const share = 0.7 / Math.max(1, this.steps.length);
    return Math.min(0.9, 0.2 + share * (this.passed.size + 0.5 * this.active.length));
  }

  private decide(): void {
    const measured = this.fulls.map((f) => f.liveness).filter((x): x is number => x !== null);
    if (measured.length && mean(measured) < this.settings.livenessMin) {
      this.conclude('spoof_suspected', null, 'passive_low');
      return;
    }
    const template = this.template!;
    const centroid = normalise(this.fulls.map((f) => f.embedding));
    const score = cosineSimilarity(centroid, template);
    // Every face analysed in full must match on its own too: no swapping a photo in once a challenge is done. Then
    // the centroid matches as well (its score is at least the lowest frame's), so it only gives the score reported:
    // weighting it by the frames' quality could change no verdict, and a looser per-frame floor that would let it
    // lets a swapped-in face through several times as often (README, "Webcam frames").
    const each = this.fulls.map((f) => cosineSimilarity(f.embedding, template));
    centroid.fill(0);
    const ok = score >= this.settings.matchThreshold && each.every((x) => x >= this.settings.matchThreshold);
    this.conclude(ok ? 'match' : 'no_match', score);
  }

  private conclude(result: VerdictResult, score: number | null = null, reason: LivenessReason | null = null): void {
    if (this.phase === 'done') return;
    const measured = this.fulls.map((f) => f.liveness).filter((x): x is number => x !== null);
    const passive = measured.length ? mean(measured) : null;
    const asked = (kind: ChallengeKind) => this.steps.some((s) => s.kind === kind);
    const outcome = (kind: ChallengeKind) => (asked(kind) ? this.passed.has(kind) : null);
    const quality = this.qualitySummary(); // before the samples are wiped
    this.phase = 'done';
    clearTimeout(this.timeout);
    this.wipePending();
    this.wipeEmbeddings();
    this.dropLandmarks();
    this.history = [];
    this.hooks.finish({
      result,
      score: score === null ? null : round(score, 4),
      liveness: {
        passive: passive === null ? null : round(passive, 3),
        blink: this.passed.has('blink'),
        light: outcome('light'),
        turn: outcome('turn'),
      },
      reason,
      timings: {
        firstFrameToVerdictMs: this.firstFrameAt === null ? null : Math.round(this.now() - this.firstFrameAt),
        framesReceived: this.received,
        framesAnalysed: this.analysed,
        framesDropped: this.dropped,
      },
      quality,
    });
  }

  private qualitySummary(): SessionQuality {
    const measured = this.fulls
      .map((f) => f.quality)
      .filter((q): q is NonNullable<FullSample['quality']> => q !== null);
    const avg = (pick: (q: NonNullable<FullSample['quality']>) => number) =>
      measured.length ? round(mean(measured.map(pick)), 1) : null;
    return {
      fullFrames: this.fulls.length,
      faceSize: avg((q) => q.faceSize),
      brightness: avg((q) => q.brightness),
      sharpness: avg((q) => q.sharpness),
      frames: { ...this.frameStates },
    };
  }

  /** The embeddings collected so far and the enrolled template: nothing needs them once the session is done. */
  private wipeEmbeddings(): void {
    for (const f of this.fulls) f.embedding.fill(0);
    this.fulls = [];
    this.template?.fill(0);
  }

  private wipePending(): void {
    const pending = this.pending;
    if (pending) {
      pending.release();
      this.pending = null;
      this.hooks.onFrameDone?.(pending.header.seq, 'dropped');
    }
  }
}

/** A box in frame pixels as fractions (0..1) of the frame, clipped to it, rounded to 3 decimals. */
function normalisedBox(b: Box, width: number, height: number): FaceBox | null {
  if (!(width > 0 && height > 0)) return null;
  const clip = (v: number) => Math.min(1, Math.max(0, v));
  const r3 = (v: number) => Math.round(v * 1000) / 1000;
  const x = clip(b.x / width);
  const y = clip(b.y / height);
  const w = clip((b.x + b.width) / width) - x;
  const h = clip((b.y + b.height) / height) - y;
  return { x: r3(x), y: r3(y), width: r3(w), height: r3(h) };
}

function sameBox(a: Box, b: Box): boolean {
  return a.x === b.x && a.y === b.y && a.width === b.width && a.height === b.height;
}

function landmarkCentre(lm: Float32Array): { x: number; y: number } | null {
  if (lm.length < 136) return null;
  let x = 0;
  let y = 0;
  for (let i = 0; i < 68; i++) {
    x += lm[2 * i];
    y += lm[2 * i + 1];
  }
  return { x: x / 68, y: y / 68 };
}

/** An analysis that will not be used: its embeddings are biometric data. */
function wipeAnalysis(a: Analysis | null): void {
  for (const f of a?.faces ?? []) f.embedding?.fill(0);
}

function mean(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

function normalise(vs: Float32Array[]): Float32Array {
  const out = new Float32Array(vs[0].length);
  for (const v of vs) for (let i = 0; i < v.length; i++) out[i] += v[i];
  let n = 0;
  for (let i = 0; i < out.length; i++) n += out[i] * out[i];
  n = Math.sqrt(n) || 1;
  for (let i = 0; i < out.length; i++) out[i] /= n;
  return out;
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

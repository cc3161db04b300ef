import { cosineSimilarity, EngineError, type Analysis, type FaceEngine, type FrameFormat } from '../engine';
import { BlinkDetector, DEFAULT_BLINK, type BlinkThresholds } from './blink';
import { assessFrame, DEFAULT_GUIDANCE, type GuidanceCode, type GuidanceThresholds } from './guidance';

export interface IdentificationSettings {
  /** Cosine similarity at or above which the face matches the template (see `faceid eval`). */
  matchThreshold: number;
  /** Mean passive liveness below which the session is a suspected spoof. */
  livenessMin: number;
  /** How long the patient has to blink once asked, in ms. */
  blinkWindowMs: number;
  /** The whole session, from the connection to the verdict, in ms. */
  sessionTimeoutMs: number;
  /** Good frames in a row before the blink is asked for. */
  goodFramesBeforeChallenge: number;
  /** The blink is asked for at a random moment this long after the face is ready, in ms. */
  challengeDelayMs: { min: number; max: number };
  /** Full analyses (embedding + liveness) used for the decision: at least min, at most max. */
  fullFrames: { min: number; max: number };
  guidance: GuidanceThresholds;
  blink: BlinkThresholds;
}

export const DEFAULT_SETTINGS: IdentificationSettings = {
  matchThreshold: 0.46,
  livenessMin: 0.01,
  blinkWindowMs: 5000,
  sessionTimeoutMs: 30000,
  goodFramesBeforeChallenge: 2,
  challengeDelayMs: { min: 300, max: 1000 },
  fullFrames: { min: 2, max: 4 },
  guidance: DEFAULT_GUIDANCE,
  blink: DEFAULT_BLINK,
};

export type VerdictResult = 'match' | 'no_match' | 'spoof_suspected' | 'no_template' | 'timeout' | 'error';

export interface VerdictOutcome {
  result: VerdictResult;
  score: number | null;
  liveness: { passive: number | null; blink: boolean };
  timings: { firstFrameToVerdictMs: number | null; framesReceived: number; framesAnalysed: number; framesDropped: number };
}

export interface DecodedFrame {
  seq: number;
  format: FrameFormat;
  width: number;
  height: number;
  /** A view into the message buffer: wiping the message wipes it. */
  payload: Buffer;
}

/** Messages the runner sends; the gateway turns them into protocol messages. */
export type RunnerMessage =
  | { type: 'guidance'; code: GuidanceCode; progress: number }
  | { type: 'busy'; retryAfterMs: number }
  | { type: 'error'; code: string; message: string; seq?: number };

export interface RunnerHooks {
  send(msg: RunnerMessage): void;
  /** Called exactly once. Every frame buffer the runner held is already wiped. */
  finish(outcome: VerdictOutcome): void;
  /** Observability: one call per frame, analysis and drop. */
  onFrameReceived?(): void;
  onFrameDropped?(): void;
  onAnalysis?(call: 'track' | 'full', seconds: number): void;
}

interface FullSample {
  embedding: Float32Array;
  liveness: number;
  afterBlink: boolean;
}

type Phase = 'collecting' | 'challenge_pending' | 'challenge' | 'done';

/**
 * One identification session's frame loop. Latest frame wins: while a frame is analysed, a newer one replaces the
 * waiting one (which is wiped), so a fast client never builds a queue. Every frame buffer is wiped as soon as it has
 * served, and before the verdict goes out.
 */
export class SessionRunner {
  private phase: Phase = 'collecting';
  private inFlight = false;
  private pending: { msg: Buffer; frame: DecodedFrame } | null = null;
  private goodStreak = 0;
  private challengeAt = 0;
  private windowEnd = 0;
  private blink: BlinkDetector;
  private fulls: FullSample[] = [];
  private firstFrameAt: number | null = null;
  private lastGuidance: { code: GuidanceCode; at: number } | null = null;
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
    private readonly random: () => number = Math.random,
  ) {
    this.blink = new BlinkDetector(settings.blink);
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

  /** Takes ownership of `msg` (the whole WS message; `frame.payload` is a view into it). */
  onFrame(msg: Buffer, frame: DecodedFrame): void {
    this.received++;
    this.hooks.onFrameReceived?.();
    if (this.phase === 'done') {
      msg.fill(0);
      return;
    }
    this.firstFrameAt ??= this.now();
    if (this.inFlight) {
      if (this.pending) {
        this.pending.msg.fill(0);
        this.dropped++;
        this.hooks.onFrameDropped?.();
      }
      this.pending = { msg, frame };
      return;
    }
    void this.process(msg, frame);
  }

  /** The connection went away before a verdict: wipe and stop (no verdict is sent). */
  abort(): void {
    if (this.phase === 'done') return;
    this.phase = 'done';
    clearTimeout(this.timeout);
    this.wipePending();
    this.wipeEmbeddings();
  }

  private async process(msg: Buffer, frame: DecodedFrame): Promise<void> {
    this.inFlight = true;
    const call = this.wantsFull() ? 'full' : 'track';
    const started = this.now();
    let analysis: Analysis | null = null;
    try {
      const opts = { format: frame.format, width: frame.width, height: frame.height, maxFaces: 1 };
      analysis = call === 'full' ? await this.engine.full(frame.payload, opts) : await this.engine.track(frame.payload, opts);
      this.analysed++;
      this.hooks.onAnalysis?.(call, (this.now() - started) / 1000);
    } catch (err) {
      const e = EngineError.from(err);
      if (this.phase !== 'done') {
        if (e.code === 'busy') this.hooks.send({ type: 'busy', retryAfterMs: 200 });
        else this.hooks.send({ type: 'error', code: e.code, message: e.message, seq: frame.seq });
      }
    } finally {
      msg.fill(0); // the engine wiped the payload when it copied it; this clears the header and any padding
    }
    if (analysis && this.phase !== 'done') this.step(analysis, call);
    this.inFlight = false;
    const next = this.pending;
    this.pending = null;
    if (next) {
      if (this.phase === 'done') next.msg.fill(0);
      else void this.process(next.msg, next.frame);
    }
  }

  private wantsFull(): boolean {
    const { min, max } = this.settings.fullFrames;
    if (this.goodStreak === 0) return false;
    if (this.blink.blinked) return !this.fulls.some((f) => f.afterBlink);
    // During the blink window speed matters more: track only, unless the minimum is not there yet.
    if (this.phase === 'challenge') return this.fulls.length < min;
    return this.fulls.length < max;
  }

  private step(a: Analysis, call: 'track' | 'full'): void {
    const t = this.now();
    const { problem, face } = assessFrame(a, this.settings.guidance);
    if (this.phase === 'challenge') this.blink.observe(face?.eyes);
    if (problem) {
      this.goodStreak = 0;
      this.guide(problem, t);
    } else {
      this.goodStreak++;
      if (call === 'full' && face?.embedding && face.liveness !== undefined) {
        this.fulls.push({ embedding: face.embedding, liveness: face.liveness, afterBlink: this.blink.blinked });
      }
    }

    if (this.phase === 'collecting' && this.goodStreak >= this.settings.goodFramesBeforeChallenge) {
      const { min, max } = this.settings.challengeDelayMs;
      this.challengeAt = t + min + this.random() * (max - min);
      this.phase = 'challenge_pending';
    }
    if (this.phase === 'challenge_pending' && t >= this.challengeAt) {
      this.phase = 'challenge';
      this.windowEnd = t + this.settings.blinkWindowMs;
      // The eyes as the request goes out: a patient who reacts at once sends closed eyes next.
      this.blink.observe(face?.eyes);
      this.guide('blink_now', t, true);
    } else if (this.phase === 'challenge_pending' && !problem) {
      this.guide('hold_still', t);
    }

    if (this.phase === 'challenge') {
      if (this.blink.blinked && this.fulls.length >= this.settings.fullFrames.min && this.fulls.some((f) => f.afterBlink)) {
        this.decide();
      } else if (!this.blink.blinked && t > this.windowEnd) {
        this.conclude('spoof_suspected');
      }
    }
  }

  /** Guidance goes out when it changes, or once a second while it stays the same. */
  private guide(code: GuidanceCode, t: number, force = false): void {
    if (!force && this.lastGuidance?.code === code && t - this.lastGuidance.at < 1000) return;
    this.lastGuidance = { code, at: t };
    this.hooks.send({ type: 'guidance', code, progress: this.progress() });
  }

  private progress(): number {
    switch (this.phase) {
      case 'collecting':
        return Math.min(0.3, (0.3 * this.goodStreak) / this.settings.goodFramesBeforeChallenge);
      case 'challenge_pending':
        return 0.4;
      case 'challenge':
        return this.blink.blinked ? 0.9 : 0.6;
      default:
        return 1;
    }
  }

  private decide(): void {
    const passive = mean(this.fulls.map((f) => f.liveness));
    if (passive < this.settings.livenessMin) {
      this.conclude('spoof_suspected');
      return;
    }
    const template = this.template!;
    const centroid = normalise(this.fulls.map((f) => f.embedding));
    const score = cosineSimilarity(centroid, template);
    // The face seen after the blink must match on its own too: no swapping a photo in once the blink is done.
    const after = this.fulls.filter((f) => f.afterBlink).map((f) => cosineSimilarity(f.embedding, template));
    centroid.fill(0);
    const ok = score >= this.settings.matchThreshold && after.every((s) => s >= this.settings.matchThreshold);
    this.conclude(ok ? 'match' : 'no_match', score);
  }

  private conclude(result: VerdictResult, score: number | null = null): void {
    if (this.phase === 'done') return;
    const passive = this.fulls.length ? mean(this.fulls.map((f) => f.liveness)) : null;
    const blinked = this.blink.blinked;
    this.phase = 'done';
    clearTimeout(this.timeout);
    this.wipePending();
    this.wipeEmbeddings();
    this.hooks.finish({
      result,
      score: score === null ? null : round(score, 4),
      liveness: { passive: passive === null ? null : round(passive, 3), blink: blinked },
      timings: {
        firstFrameToVerdictMs: this.firstFrameAt === null ? null : Math.round(this.now() - this.firstFrameAt),
        framesReceived: this.received,
        framesAnalysed: this.analysed,
        framesDropped: this.dropped,
      },
    });
  }

  /** The embeddings collected so far and the enrolled template: nothing needs them once the session is done. */
  private wipeEmbeddings(): void {
    for (const f of this.fulls) f.embedding.fill(0);
    this.fulls = [];
    this.template?.fill(0);
  }

  private wipePending(): void {
    if (this.pending) {
      this.pending.msg.fill(0);
      this.pending = null;
    }
  }
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

import { EngineError, type Analysis, type AnalyzeOptions, type Face, type FaceEngine } from '../engine';
import { takeFrame, type Frame } from '../transport/frame';
import { encodeFrameMessage, type FrameOutcome } from '../transport/protocol';
import { DEFAULT_TURN_THRESHOLDS } from '../liveness';
import { seeded } from '../liveness/pad/random';
import {
  DEFAULT_SETTINGS,
  SessionRunner,
  type IdentificationSettings,
  type RunnerMessage,
  type VerdictOutcome,
} from './session-runner';

/** An engine whose analyses finish when the test says so: no model, no timing. */
class ManualEngine {
  readonly calls: Array<{
    call: 'track' | 'full';
    payload: Buffer;
    options: AnalyzeOptions;
    resolve: (a: Analysis) => void;
    reject: (e: Error) => void;
  }> = [];
  track(payload: Buffer, options: AnalyzeOptions = {}): Promise<Analysis> {
    return new Promise((resolve, reject) => this.calls.push({ call: 'track', payload, options, resolve, reject }));
  }
  full(payload: Buffer, options: AnalyzeOptions = {}): Promise<Analysis> {
    return new Promise((resolve, reject) => this.calls.push({ call: 'full', payload, options, resolve, reject }));
  }
}

const TEMPLATE = unit(512, 1);

function unit(n: number, seed: number): Float32Array {
  const v = new Float32Array(n);
  for (let i = 0; i < n; i++) v[i] = Math.sin(seed * (i + 1));
  const norm = Math.hypot(...v);
  return v.map((x) => x / norm);
}

/** A unit vector whose cosine similarity to `v` (a unit vector) is `cos`. */
function similarTo(v: Float32Array, cos: number): Float32Array {
  const other = unit(v.length, 13);
  let dot = 0;
  for (let i = 0; i < v.length; i++) dot += other[i] * v[i];
  const orth = other.map((x, i) => x - dot * v[i]);
  const n = Math.hypot(...orth);
  return v.map((x, i) => cos * x + (Math.sqrt(1 - cos * cos) * orth[i]) / n);
}

function face(opts: { eyes?: number; embedding?: Float32Array; yaw?: number } = {}): Face {
  const open = opts.eyes ?? 0.98;
  return {
    box: { x: 100, y: 60, width: 110, height: 130 },
    score: 0.99,
    primary: true,
    landmarks: new Float32Array(136),
    eyes: { left: open, right: open },
    pose: { yaw: opts.yaw ?? 0, pitch: 0, roll: 0 },
    quality: { faceSize: 34, sharpness: 120, brightness: 120, poseAngle: 0 },
    ...(opts.embedding ? { embedding: opts.embedding } : {}),
  };
}

function analysis(f: Face | null, brightness = 110): Analysis {
  return { width: 320, height: 240, brightness, faces: f ? [f] : [], timings: {} as Analysis['timings'] };
}

interface Harness {
  engine: ManualEngine;
  runner: SessionRunner;
  sent: RunnerMessage[];
  /** onFrameDone calls in order, each with how many messages had been sent by then. */
  acks: Array<{ seq: number; outcome: FrameOutcome; after: number }>;
  verdict: () => VerdictOutcome | null;
  clock: { t: number };
  frame: (seq: number) => Buffer;
  /** Answers the oldest open analysis with a face (full calls get an embedding), in a frame of this brightness. */
  answer: (f?: (call: 'track' | 'full', options: AnalyzeOptions) => Face | null, brightness?: number) => Promise<void>;
}

function harness(
  settings: Partial<IdentificationSettings> = {},
  template: Float32Array | null = TEMPLATE.slice(),
): Harness {
  const engine = new ManualEngine();
  const sent: RunnerMessage[] = [];
  const acks: Harness['acks'] = [];
  let verdict: VerdictOutcome | null = null;
  const clock = { t: 1000 };
  const runner = new SessionRunner(
    engine as unknown as FaceEngine,
    template,
    {
      send: (m) => sent.push(m),
      finish: (o) => (verdict = o),
      onFrameDone: (seq, outcome) => acks.push({ seq, outcome, after: sent.length }),
    },
    { ...DEFAULT_SETTINGS, challenges: ['blink'], challengeDelayMs: { min: 0, max: 0 }, ...settings },
    () => clock.t,
    seeded(7),
  );
  const frame = (seq: number) => {
    const msg = encodeFrameMessage({ format: 'jpeg', seq, captureTime: 1e12 + clock.t }, Buffer.alloc(20, 0xab));
    runner.onFrame(takeFrame(msg) as Frame);
    return msg;
  };
  const answer: Harness['answer'] = async (f, brightness) => {
    const c = engine.calls.shift();
    if (!c) throw new Error('no analysis in flight');
    const made = f ? f(c.call, c.options) : face();
    if (made && c.call === 'full' && !made.embedding) made.embedding = TEMPLATE.slice();
    c.resolve(analysis(made, brightness));
    await new Promise((r) => setImmediate(r));
  };
  return { engine, runner, sent, acks, verdict: () => verdict, clock, frame, answer };
}

afterEach(() => jest.useRealTimers());

describe('SessionRunner', () => {
  beforeEach(() => jest.useFakeTimers({ doNotFake: ['setImmediate', 'queueMicrotask', 'nextTick'] }));

  it('analyses the latest frame only: frames that arrive during an analysis replace each other and are wiped', async () => {
    const h = harness();
    h.runner.onHello(['blink']);
    const first = h.frame(1);
    const replaced = [h.frame(2), h.frame(3), h.frame(4)];
    const last = h.frame(5);
    expect(h.engine.calls).toHaveLength(1);
    // Frames 2-4 were displaced by newer ones before analysis: wiped at once.
    for (const m of replaced) expect(m.every((b) => b === 0)).toBe(true);
    expect(last.some((b) => b !== 0)).toBe(true);
    await h.answer();
    expect(first.every((b) => b === 0)).toBe(true);
    expect(h.engine.calls).toHaveLength(1); // frame 5, the newest, is analysed next
    await h.answer();
    expect(last.every((b) => b === 0)).toBe(true);
    expect(h.runner.stats()).toMatchObject({ received: 5, analysed: 2, dropped: 3, pending: false });
  });

  it('wipes frames refused unread above fps.max, never analyses them, and counts them in the timings', async () => {
    const h = harness();
    h.runner.onHello(['blink']);
    const unread = [0xab, 0xcd, 0xef].map((b, i) =>
      encodeFrameMessage({ format: 'jpeg', seq: 100 + i, captureTime: 0 }, Buffer.alloc(20, b)),
    );
    for (const m of unread) h.runner.dropUnread(takeFrame(m));
    for (const m of unread) expect(m.every((b) => b === 0)).toBe(true);
    expect(h.engine.calls).toHaveLength(0);
    h.frame(1); // a frame within the rate is analysed as usual
    expect(h.engine.calls).toHaveLength(1);
    h.runner.refuse('virtual_camera');
    expect(h.verdict()!.timings).toMatchObject({ framesReceived: 4, framesAnalysed: 0, framesDropped: 3 });
  });

  it('asks for a blink once the face is ready and gives match after open, closed, open', async () => {
    const h = harness();
    h.runner.onHello(['blink']);
    // The blink is asked at the second frame; the detector wants four open readings before the closure.
    const eyes = [0.98, 0.98, 0.98, 0.98, 0.98, 0.02, 0.98, 0.98];
    for (let i = 0; i < eyes.length && !h.verdict(); i++) {
      h.clock.t += 100;
      h.frame(i);
      await h.answer(() => face({ eyes: eyes[i] }));
    }
    for (let i = 0; i < 4 && !h.verdict(); i++) {
      h.clock.t += 100;
      h.frame(10 + i);
      await h.answer();
    }
    expect(h.sent.some((m) => m.type === 'guidance' && m.code === 'blink_now')).toBe(true);
    expect(h.verdict()).toMatchObject({
      result: 'match',
      reason: null,
      liveness: { blink: true, light: null, turn: null },
    });
  });

  it("hands the frames' quality to finish: means of the full frames used, analysed frames per state", async () => {
    const h = harness();
    h.runner.onHello(['blink']);
    const dark = (): Face => ({ ...face(), quality: { faceSize: 34, sharpness: 120, brightness: 20, poseAngle: 0 } });
    for (const [i, f] of [null, null, dark()].entries()) {
      h.clock.t += 100;
      h.frame(100 + i);
      await h.answer(() => (f === null ? null : { ...f }));
    }
    const eyes = [0.98, 0.98, 0.98, 0.98, 0.98, 0.02, 0.98, 0.98, 0.98, 0.98, 0.98, 0.98];
    for (let i = 0; i < eyes.length && !h.verdict(); i++) {
      h.clock.t += 100;
      h.frame(i);
      await h.answer((call) => ({
        ...face({ eyes: eyes[i] }),
        quality: { faceSize: call === 'full' ? 40 : 30, sharpness: 100, brightness: 130, poseAngle: 0 },
      }));
    }
    const v = h.verdict()!;
    expect(v.result).toBe('match');
    expect(v.quality.fullFrames).toBeGreaterThanOrEqual(1);
    // The full frames only (40 px), never the track frames (30 px) nor the dark one.
    expect(v.quality).toMatchObject({ faceSize: 40, brightness: 130, sharpness: 100 });
    expect(v.quality.frames).toMatchObject({ no_face: 2, too_dark: 1 });
    const counted = Object.values(v.quality.frames).reduce((t, n) => t + (n ?? 0), 0);
    expect(counted).toBe(v.timings.framesAnalysed);
    expect(JSON.stringify(v.quality)).not.toMatch(/embedding|landmarks/);
  });

  it('a session timed out in the dark: no full frame measured, its frames all too_dark', async () => {
    const h = harness();
    h.runner.onHello(['blink']);
    for (let i = 0; i < 5; i++) {
      h.clock.t += 100;
      h.frame(i);
      await h.answer(() => null, 10); // the frame too dark to find a face in
    }
    jest.advanceTimersByTime(DEFAULT_SETTINGS.sessionTimeoutMs);
    expect(h.verdict()).toMatchObject({
      result: 'timeout',
      quality: { fullFrames: 0, faceSize: null, brightness: null, sharpness: null, frames: { too_dark: 5 } },
    });
  });

  /** Streams frames 100 ms apart until the verdict or `ms` of test time; the eyes as `eyes(t)` (open by default). */
  async function streamEyes(h: Harness, ms: number, eyes: (t: number) => number = () => 0.98): Promise<void> {
    for (let i = 0; i * 100 < ms && !h.verdict(); i++) {
      h.clock.t += 100;
      h.frame(i);
      await h.answer(() => face({ eyes: eyes(h.clock.t) }));
    }
  }
  const guidance = (h: Harness) => h.sent.flatMap((m) => (m.type === 'guidance' ? [m] : []));

  it('ends spoof_suspected with no_blink when neither the blink window nor the second one brings a blink', async () => {
    const h = harness({ blinkWindowMs: 1000, blinkAgainWindowMs: 600 });
    h.runner.onHello(['blink']);
    let again: number | null = null;
    for (let i = 0; i < 40 && !h.verdict(); i++) {
      h.clock.t += 100;
      h.frame(i);
      await h.answer();
      if (again === null && guidance(h).some((g) => g.code === 'blink_again')) again = h.clock.t;
    }
    const asked = guidance(h).find((g) => g.code === 'blink_now')!;
    // blink_now at 1200 (the second frame), its window over after 2200: blink_again at the next frame, once.
    expect(again).toBe(2300);
    expect(guidance(h).filter((g) => g.code === 'blink_again')).toEqual([expect.objectContaining({ windowMs: 600 })]);
    expect(asked.windowMs).toBe(1000);
    expect(h.verdict()).toMatchObject({ result: 'spoof_suspected', reason: 'no_blink', liveness: { blink: false } });
    // Concluded at the first frame after the second window, not before it.
    expect(h.verdict()!.timings.firstFrameToVerdictMs).toBe(3000 - 1100);
  });

  it('a blink in the second window, after blink_again, passes', async () => {
    const h = harness({ blinkWindowMs: 1000, blinkAgainWindowMs: 600 });
    h.runner.onHello(['blink']);
    // Eyes open throughout the first window; closed once 200 ms after blink_again.
    let againAt = Infinity;
    for (let i = 0; i < 40 && !h.verdict(); i++) {
      h.clock.t += 100;
      h.frame(i);
      await h.answer(() => face({ eyes: h.clock.t === againAt + 200 ? 0.02 : 0.98 }));
      if (againAt === Infinity && guidance(h).some((g) => g.code === 'blink_again')) againAt = h.clock.t;
    }
    expect(againAt).toBe(2300);
    expect(h.verdict()).toMatchObject({ result: 'match', reason: null, liveness: { blink: true } });
  });

  it('with no second window (blinkAgainWindowMs 0) ends no_blink when the first one passes', async () => {
    const h = harness({ blinkWindowMs: 1000, blinkAgainWindowMs: 0 });
    h.runner.onHello(['blink']);
    await streamEyes(h, 4000);
    expect(guidance(h).map((g) => g.code)).not.toContain('blink_again');
    expect(h.verdict()).toMatchObject({ result: 'spoof_suspected', reason: 'no_blink' });
    expect(h.verdict()!.timings.firstFrameToVerdictMs).toBe(2300 - 1100);
  });

  it('the second window is never longer than the first', async () => {
    const h = harness({ blinkWindowMs: 800, blinkAgainWindowMs: 3000 });
    h.runner.onHello(['blink']);
    await streamEyes(h, 4000);
    expect(guidance(h).find((g) => g.code === 'blink_again')).toMatchObject({ windowMs: 800 });
    expect(h.verdict()).toMatchObject({ result: 'spoof_suspected', reason: 'no_blink' });
  });

  it('a still photo whose eyes only wobble blinks in neither window', async () => {
    const h = harness({ blinkWindowMs: 1000, blinkAgainWindowMs: 1000 });
    h.runner.onHello(['blink']);
    // Readings that wobble as a photo's do under camera noise, never clearly below the open ones.
    await streamEyes(h, 5000, (t) => 0.9 + 0.08 * Math.sin(t / 170));
    expect(guidance(h).map((g) => g.code)).toContain('blink_again');
    expect(h.verdict()).toMatchObject({ result: 'spoof_suspected', reason: 'no_blink', liveness: { blink: false } });
  });

  it('says too_dark, not no_face, when no face is found in a dark frame; no_face in a lit one', async () => {
    const h = harness();
    h.runner.onHello(['blink']);
    h.clock.t += 100;
    h.frame(1);
    await h.answer(() => null, 12);
    h.clock.t += 1100;
    h.frame(2);
    await h.answer(() => null, 120);
    expect(guidance(h).map((g) => g.code)).toEqual(['too_dark', 'no_face']);
    // Without a face there is no box.
    for (const g of guidance(h)) expect(g).not.toHaveProperty('box');
  });

  it('asks for light when the face is found but too dark, and never uses its embedding', async () => {
    const h = harness();
    h.runner.onHello(['blink']);
    const floor = DEFAULT_SETTINGS.guidance.minBrightness;
    const dim = (f: Face): Face => ({ ...f, quality: { ...f.quality!, brightness: floor - 5 } });
    // Found, but too dark (the frame itself bright enough to find it in): too_dark with the face's box, no full call.
    const calls: string[] = [];
    for (let i = 0; i < 3; i++) {
      h.clock.t += 400;
      h.frame(i);
      await h.answer((call) => (calls.push(call), dim(face())), 60);
    }
    expect(calls).toEqual(['track', 'track', 'track']);
    expect(guidance(h).map((g) => g.code)).toEqual(['too_dark']);
    expect(guidance(h)[0].box).toBeDefined();
    // The light comes on: the blink runs; its full frame comes back too dark (the lamp flickered), then lit.
    const dark: Float32Array[] = [];
    const eyes = [0.98, 0.98, 0.98, 0.98, 0.98, 0.98, 0.98, 0.02, 0.98, 0.98, 0.98, 0.98, 0.98, 0.98, 0.98];
    for (let i = 0; i < eyes.length && !h.verdict(); i++) {
      h.clock.t += 100;
      h.frame(10 + i);
      await h.answer((call) => {
        if (call !== 'full' || dark.length > 0) return face({ eyes: eyes[i] });
        const e = TEMPLATE.slice();
        dark.push(e);
        return dim(face({ eyes: eyes[i], embedding: e }));
      });
    }
    expect(dark).toHaveLength(1);
    expect(dark[0].every((x) => x === 0)).toBe(true); // wiped at once, never part of the decision
    expect(h.verdict()).toMatchObject({ result: 'match', quality: { frames: { too_dark: 4 } } });
  });

  it("carries the face's box in the frame (0..1) on guidance, and the time left on a challenge's prompt", async () => {
    const h = harness({ blinkWindowMs: 2000 });
    h.runner.onHello(['blink']);
    h.clock.t += 100;
    h.frame(1);
    await h.answer(() => ({ ...face(), quality: { faceSize: 15, sharpness: 120, brightness: 120, poseAngle: 0 } }));
    // face(): x 100, y 60, 110 x 130 in a 320 x 240 frame.
    const box = { x: 0.313, y: 0.25, width: 0.344, height: 0.542 };
    expect(guidance(h)).toEqual([{ type: 'guidance', code: 'too_far', progress: 0, box }]);
    await streamEyes(h, 300);
    expect(guidance(h).find((g) => g.code === 'blink_now')).toEqual({
      type: 'guidance',
      code: 'blink_now',
      progress: expect.any(Number),
      windowMs: 2000,
      box,
    });
  });

  it('asks for the blink again with the time left when the face comes back during it', async () => {
    const h = harness({ blinkWindowMs: 2000 });
    h.runner.onHello(['blink']);
    await streamEyes(h, 200); // blink_now at 1200
    expect(guidance(h).map((g) => g.code)).toEqual(['blink_now']);
    h.clock.t += 100;
    h.frame(10);
    await h.answer(() => null); // the face is gone at 1300
    h.clock.t += 600;
    h.frame(11);
    await h.answer(); // back at 1900: 1300 ms of the window left
    expect(guidance(h).map((g) => [g.code, g.windowMs])).toEqual([
      ['blink_now', 2000],
      ['no_face', undefined],
      ['blink_now', 1300],
    ]);
    expect(h.verdict()).toBeNull();
  });

  it('refuses a client that cannot run the required challenge at once, with a typed error (no hang)', async () => {
    const h = harness({ challenges: ['light', 'blink'] });
    // An old client: no hello at all.
    const msg = h.frame(1);
    expect(msg.every((b) => b === 0)).toBe(true);
    expect(h.engine.calls).toHaveLength(0);
    expect(h.sent).toContainEqual(expect.objectContaining({ type: 'error', code: 'client_unsupported' }));
    expect(h.verdict()).toMatchObject({ result: 'error', reason: 'client_unsupported', liveness: { light: false } });
  });

  it('ends a session refused for its camera as spoof_suspected with the reason, wiping what it holds', async () => {
    const h = harness();
    h.runner.onHello(['blink']);
    h.frame(1);
    const waiting = h.frame(2);
    h.runner.refuse('virtual_camera');
    expect(waiting.every((b) => b === 0)).toBe(true);
    expect(h.verdict()).toMatchObject({ result: 'spoof_suspected', reason: 'virtual_camera' });
  });

  it('gives no_match when one face analysed in full does not match on its own (a swap after a challenge)', async () => {
    const h = harness();
    h.runner.onHello(['blink']);
    const stranger = unit(512, 7);
    const eyes = [0.98, 0.98, 0.98, 0.98, 0.98, 0.02, 0.98, 0.98, 0.98, 0.98, 0.98];
    let fulls = 0;
    for (let i = 0; i < eyes.length && !h.verdict(); i++) {
      h.clock.t += 100;
      h.frame(i);
      await h.answer((call) => {
        if (call !== 'full') return face({ eyes: eyes[i] });
        fulls++;
        // The first matches, but not clearly: a second full analysis follows, and it is someone else.
        return face({ eyes: eyes[i], embedding: fulls >= 2 ? stranger.slice() : similarTo(TEMPLATE, 0.5) });
      });
    }
    expect(fulls).toBe(2);
    expect(h.verdict()).toMatchObject({ result: 'no_match' });
  });

  describe('full analyses per verdict', () => {
    const eyes = [0.98, 0.98, 0.98, 0.98, 0.98, 0.02, 0.98, 0.98, 0.98, 0.98, 0.98, 0.98];

    /** Plays a blink session whose full analyses return `embedding(n)` (n from 1); returns the calls made. */
    async function blinkSession(
      embedding: (n: number) => Float32Array,
      settings: Partial<IdentificationSettings> = {},
    ) {
      const h = harness(settings);
      h.runner.onHello(['blink']);
      const calls: ('track' | 'full')[] = [];
      for (let i = 0; i < eyes.length && !h.verdict(); i++) {
        h.clock.t += 100;
        h.frame(i);
        await h.answer((call) => {
          calls.push(call);
          const n = calls.filter((c) => c === 'full').length;
          return face({ eyes: eyes[i], ...(call === 'full' ? { embedding: embedding(n) } : {}) });
        });
      }
      return { calls, verdict: h.verdict() };
    }

    it('one when it matches clearly (matchThreshold + clearMargin), fullFrames.min when it does not', async () => {
      const threshold = DEFAULT_SETTINGS.matchThreshold;
      const clear = await blinkSession(() => similarTo(TEMPLATE, threshold + 0.15));
      expect(clear.calls.filter((c) => c === 'full')).toHaveLength(1);
      expect(clear.verdict).toMatchObject({ result: 'match' });
      const close = await blinkSession(() => similarTo(TEMPLATE, threshold + 0.05));
      expect(close.calls.filter((c) => c === 'full')).toHaveLength(2);
      expect(close.verdict).toMatchObject({ result: 'match' });
      // A clear first frame does not carry a second that is not: both must match.
      const mixed = await blinkSession((n) => similarTo(TEMPLATE, n === 1 ? threshold + 0.05 : threshold - 0.05));
      expect(mixed.calls.filter((c) => c === 'full')).toHaveLength(2);
      expect(mixed.verdict).toMatchObject({ result: 'no_match' });
      // clearMargin 1: never clear, always min.
      const strict = await blinkSession(() => TEMPLATE.slice(), {
        fullFrames: { ...DEFAULT_SETTINGS.fullFrames, clearMargin: 1 },
      });
      expect(strict.calls.filter((c) => c === 'full')).toHaveLength(DEFAULT_SETTINGS.fullFrames.min);
    });

    it('a frame with a problem does not count: the next one is analysed in full instead', async () => {
      const h = harness();
      h.runner.onHello(['blink']);
      const calls: ('track' | 'full')[] = [];
      for (let i = 0; i < eyes.length && !h.verdict(); i++) {
        h.clock.t += 100;
        h.frame(i);
        await h.answer((call) => {
          calls.push(call);
          const first = call === 'full' && calls.filter((c) => c === 'full').length === 1;
          // The first full analysis comes back too dark: its embedding is discarded.
          return {
            ...face({ eyes: eyes[i] }),
            ...(first ? { quality: { faceSize: 34, sharpness: 120, brightness: 20, poseAngle: 0 } } : {}),
          };
        });
      }
      expect(calls.filter((c) => c === 'full')).toHaveLength(2);
      expect(h.verdict()).toMatchObject({ result: 'match', quality: { fullFrames: 1 } });
    });
  });

  it('wipes the template and the embeddings it collected when the session ends', async () => {
    const template = TEMPLATE.slice();
    const h = harness({}, template);
    h.runner.onHello(['blink']);
    const kept: Float32Array[] = [];
    for (let i = 0; i < 3; i++) {
      h.clock.t += 100;
      h.frame(i);
      await h.answer((call) => {
        const f = face();
        if (call === 'full') {
          f.embedding = TEMPLATE.slice();
          kept.push(f.embedding);
        }
        return f;
      });
    }
    h.runner.abort();
    expect(kept.length).toBeGreaterThan(0);
    for (const e of kept) expect(e.every((x) => x === 0)).toBe(true);
    expect(template.every((x) => x === 0)).toBe(true);
  });

  describe('light challenge reports', () => {
    const lightFace = (): Face => ({
      ...face(),
      light: {
        face: [150, 110, 90],
        forehead: [160, 120, 100],
        nose: [170, 125, 100],
        leftCheek: [150, 110, 90],
        rightCheek: [150, 110, 90],
        chin: [140, 100, 85],
        surround: [90, 90, 100],
        frame: [110, 100, 100],
      },
    });

    /** Streams frames until the light challenge goes out; returns it. */
    async function untilLight(h: Harness) {
      for (let i = 0; i < 10; i++) {
        h.clock.t += 100;
        h.frame(i);
        await h.answer(lightFace);
        const c = h.sent.find((m) => m.type === 'challenge');
        if (c && c.type === 'challenge' && c.kind === 'light') return c;
      }
      throw new Error('no light challenge');
    }

    async function stream(h: Harness, ms: number): Promise<void> {
      for (let t = 0; t < ms && !h.verdict(); t += 100) {
        h.clock.t += 100;
        h.frame(100 + t);
        await h.answer(lightFace);
      }
    }

    it('sends the colours with their total duration as the window, on the challenge and its prompt', async () => {
      const h = harness({ challenges: ['light', 'blink'] });
      h.runner.onHello(['blink', 'light']);
      const c = await untilLight(h);
      if (c.type !== 'challenge' || c.kind !== 'light') throw new Error('not light');
      const total = c.colours.reduce((sum, k) => sum + k.ms, 0);
      expect(total).toBeGreaterThan(0);
      expect(c.windowMs).toBe(total);
      expect(h.sent).toContainEqual(
        expect.objectContaining({ type: 'guidance', code: 'watch_screen', windowMs: total }),
      );
    });

    it('a client that never shows the colours gets spoof_suspected light_not_shown', async () => {
      const h = harness({ challenges: ['light', 'blink'] });
      h.runner.onHello(['blink', 'light']);
      const c = await untilLight(h);
      expect(c.type === 'challenge' && c.kind === 'light' && c.colours.length).toBe(5);
      await stream(h, 6000);
      expect(h.verdict()).toMatchObject({
        result: 'spoof_suspected',
        reason: 'light_not_shown',
        liveness: { light: false },
      });
    });

    it('colours reported out of order, or long after the challenge, end the session with the reason', async () => {
      for (const [reason, shift] of [
        ['light_out_of_order', 0],
        ['light_late', 5000],
      ] as const) {
        const h = harness({ challenges: ['light', 'blink'] });
        h.runner.onHello(['blink', 'light']);
        const c = await untilLight(h);
        if (c.type !== 'challenge' || c.kind !== 'light') throw new Error('not light');
        // Client clock = 1e12 + server clock (see harness).
        let at = 1e12 + h.clock.t + 50 + shift;
        const shownAt = [at, ...c.colours.map((k) => (at += k.ms))];
        if (reason === 'light_out_of_order') [shownAt[1], shownAt[2]] = [shownAt[2], shownAt[1]];
        h.runner.onLightShown(c.challengeId, shownAt);
        expect(h.verdict()).toMatchObject({ result: 'spoof_suspected', reason });
      }
    });

    it('too few frames inside the colours: one new sequence, then light_no_response', async () => {
      const h = harness({ challenges: ['light', 'blink'] });
      h.runner.onHello(['blink', 'light']);
      const first = await untilLight(h);
      const report = (c: typeof first) => {
        if (c.type !== 'challenge' || c.kind !== 'light') throw new Error('not light');
        let at = 1e12 + h.clock.t + 50;
        h.runner.onLightShown(c.challengeId, [at, ...c.colours.map((k) => (at += k.ms))]);
      };
      report(first);
      // No frame comes in while the colours show (the client stalled): nothing to judge.
      h.clock.t += 5000;
      await stream(h, 300);
      const lights = h.sent.filter((m) => m.type === 'challenge' && m.kind === 'light');
      expect(lights).toHaveLength(2);
      expect(h.verdict()).toBeNull();
      report(lights[1]);
      h.clock.t += 5000;
      await stream(h, 300);
      expect(h.verdict()).toMatchObject({ result: 'spoof_suspected', reason: 'light_no_response' });
    });

    it('no analysed frame shows the end of the colours before the deadline: one new sequence, then the verdict', async () => {
      const h = harness({ challenges: ['light', 'blink'] });
      h.runner.onHello(['blink', 'light']);
      const first = await untilLight(h);
      const report = (c: typeof first) => {
        if (c.type !== 'challenge' || c.kind !== 'light') throw new Error('not light');
        let at = 1e12 + h.clock.t + 50;
        h.runner.onLightShown(c.challengeId, [at, ...c.colours.map((k) => (at += k.ms))]);
        return c.colours.reduce((sum, k) => sum + k.ms, 0);
      };
      // Frames inside the colours are analysed (enough to judge), then the engine stalls: the next frame, captured
      // before the colours end, is answered after the check's deadline.
      const playLate = async (total: number) => {
        await stream(h, total - 150);
        h.clock.t += 100;
        h.frame(900);
        h.clock.t += 5000;
        await h.answer(lightFace);
      };
      await playLate(report(first));
      const lights = h.sent.filter((m) => m.type === 'challenge' && m.kind === 'light');
      expect(lights).toHaveLength(2);
      expect(h.verdict()).toBeNull();
      await playLate(report(lights[1]));
      // The retry is spent: the same incomplete evidence now gives the verdict (this face never answers the colours).
      expect(h.verdict()).toMatchObject({ result: 'spoof_suspected', liveness: { light: false } });
    });

    it('a report for another challenge id is ignored', async () => {
      const h = harness({ challenges: ['light', 'blink'] });
      h.runner.onHello(['blink', 'light']);
      await untilLight(h);
      h.runner.onLightShown('not-this-one', [1, 2, 3, 4, 5, 6]);
      expect(h.verdict()).toBeNull();
    });
  });

  describe('engine calls (the engine time per verdict)', () => {
    interface Logged {
      call: 'track' | 'full';
      options: AnalyzeOptions;
      /** Which challenges had gone out (light, turn) or been asked (blink) before the call. */
      asked: string[];
    }

    /** Streams `frames` frames 1000/fps ms apart; the fake engine answers as the real one would to the options. */
    async function stream(h: Harness, frames: number, fps = 15, move?: (i: number) => number) {
      const log: Logged[] = [];
      const anchors: Float32Array[] = [];
      for (let i = 0; i < frames && !h.verdict(); i++) {
        h.clock.t += 1000 / fps;
        h.frame(i);
        await h.answer((call, options) => {
          const asked = h.sent.flatMap((m) =>
            m.type === 'challenge' ? [m.kind] : m.type === 'guidance' && m.code === 'blink_now' ? ['blink'] : [],
          );
          log.push({ call, options, asked });
          const f = face();
          // The face's landmarks sit at move(i); the offered ones are reused while within maxShift of it.
          const at = move?.(i) ?? 0;
          const reuse = options.reuseLandmarks;
          f.landmarksReused = reuse !== undefined && Math.abs(reuse.landmarks[0] - at) <= reuse.maxShift;
          f.landmarks = f.landmarksReused ? reuse!.landmarks.slice() : new Float32Array(136).fill(at);
          if (!f.landmarksReused) delete f.landmarksReused;
          if (options.stages?.includes('anchor')) anchors.push((f.anchor = new Float32Array(64).fill(0.25)));
          if (!options.stages || options.stages.includes('eyes')) f.eyes = { left: 0.98, right: 0.98 };
          else delete f.eyes;
          return f;
        });
      }
      return { log, anchors };
    }

    it('compares the face in full only inside the challenges: none before them, one as each begins', async () => {
      // The turn, which no blink joins: its full analysis comes at once. (The fake face never turns: the turn runs
      // on until it fails, with no second full analysis, as the first matched clearly.)
      const h = harness({ challenges: ['turn', 'blink'] });
      h.runner.onHello(['blink', 'turn']);
      const { log } = await stream(h, 12, 10);
      expect(log.filter((c) => c.asked.length === 0).map((c) => c.call)).not.toContain('full');
      expect(log.find((c) => c.asked.includes('turn'))?.call).toBe('full');
      expect(log.filter((c) => c.call === 'full')).toHaveLength(1);
    });

    it("a blink asked while the colours show shares the light's full analysis: one, once both run", async () => {
      const h = harness({ challenges: ['light', 'blink'] });
      h.runner.onHello(['blink', 'light']);
      const { log } = await stream(h, 20);
      const fulls = log.filter((c) => c.call === 'full');
      expect(log.find((c) => c.asked.includes('light'))?.call).toBe('track');
      expect(fulls).toHaveLength(1);
      expect(fulls[0].asked).toEqual(expect.arrayContaining(['light', 'blink']));
      expect(log.find((c) => c.asked.includes('blink'))?.call).toBe('full');
    });

    it('tracks the box through the light with mirror-averaged landmarks, reused at most maxFrames in a row', async () => {
      const h = harness({ challenges: ['light', 'blink'], landmarkReuse: { maxFrames: 2, maxShift: 0.0125 } });
      h.runner.onHello(['blink', 'light']);
      const { log } = await stream(h, 24);
      const light = log.filter((c) => c.asked.includes('light'));
      expect(light.length).toBeGreaterThan(15);
      // No detector while the colours show (the face stays in its box), every frame with the anchor.
      for (const c of light) {
        expect(c.options.box).toEqual({ x: 100, y: 60, width: 110, height: 130 });
        expect(c.options.stages).toContain('anchor');
        expect(c.call === 'full' || c.options.mirrorLandmarks).toBe(true);
      }
      // F: landmarks computed (full analyses included), R: the last ones offered again, at most twice in a row.
      const pattern = light.map((c) => (c.options.reuseLandmarks ? 'R' : 'F')).join('');
      expect(pattern).toMatch(/^F(R{0,2}F)*R{0,2}$/);
      expect(pattern).toContain('RR');
      const reuse = light.find((c) => c.options.reuseLandmarks)!.options.reuseLandmarks!;
      expect(reuse.maxShift).toBeCloseTo(0.0125 * 110);
      expect(reuse.anchor).toHaveLength(64);
      // Before the colours: the detector every trackFrames + 1 frames, no anchor, no reuse.
      const before = log.filter((c) => c.asked.length === 0);
      expect(before.map((c) => (c.options.box ? 'b' : 'd')).join('')).toBe('db');
      for (const c of before)
        expect(c.options.reuseLandmarks ?? c.options.stages?.includes('anchor') ?? false).toBe(false);
    });

    it('detects again as soon as the face moved in the light, and reuses nothing from before', async () => {
      const h = harness({ challenges: ['light', 'blink'], landmarkReuse: { maxFrames: 5, maxShift: 0.0125 } });
      h.runner.onHello(['blink', 'light']);
      // The face moves 30 px (more than a tenth of its box) at the 10th frame: the engine computes its landmarks
      // afresh there, and the next frame goes to the detector.
      const { log } = await stream(h, 14, 15, (i) => (i >= 9 ? 30 : 0));
      expect(log[8].options.box).toBeDefined();
      expect(log[9].options.box).toBeDefined();
      expect(log[10].options.box).toBeUndefined();
      expect(log[10].options.reuseLandmarks).toBeUndefined();
      expect(log[11].options.box).toBeDefined();
    });

    it('asks for the eyes only once the blink is next, and mirror-averages between detections only for the turn', async () => {
      const light = harness({ challenges: ['light', 'blink'] });
      light.runner.onHello(['blink', 'light']);
      const l = (await stream(light, 12)).log;
      // The light comes first: no eyes before it; the blink is next as soon as it began.
      for (const c of l) {
        expect({ asked: c.asked, eyes: c.options.stages?.includes('eyes') }).toEqual({
          asked: c.asked,
          eyes: c.asked.length > 0,
        });
      }
      // Between detections, before the light: the crop's landmarks alone.
      const between = l.filter((c) => c.call === 'track' && c.options.box && c.asked.length === 0);
      expect(between.length).toBeGreaterThan(0);
      expect(between.every((c) => c.options.mirrorLandmarks === false)).toBe(true);

      const turn = harness({ challenges: ['turn', 'blink'] });
      turn.runner.onHello(['blink', 'turn']);
      const t = (await stream(turn, 12)).log;
      expect(t.some((c) => c.asked.includes('turn'))).toBe(true);
      for (const c of t) expect(c.options.stages?.includes('eyes')).toBe(false);
      expect(
        t.filter((c) => c.call === 'track' && c.options.box).every((c) => c.options.mirrorLandmarks === true),
      ).toBe(true);

      const blink = harness();
      blink.runner.onHello(['blink']);
      const b = (await stream(blink, 4)).log;
      expect(b.every((c) => c.options.stages?.includes('eyes') ?? true)).toBe(true);
      // Before the blink runs (while it does, the eye crops want mirror-averaged landmarks).
      expect(
        b
          .filter((c) => c.call === 'track' && c.options.box && c.asked.length === 0)
          .every((c) => c.options.mirrorLandmarks === false),
      ).toBe(true);
    });

    it('wipes every anchor it kept once the session ends', async () => {
      const h = harness({ challenges: ['light', 'blink'] });
      h.runner.onHello(['blink', 'light']);
      const { anchors } = await stream(h, 12);
      expect(anchors.length).toBeGreaterThan(3);
      h.runner.abort();
      for (const a of anchors) expect(a.every((x) => x === 0)).toBe(true);
    });
  });

  // What the gateway turns into `ack` messages for a client that asked for them: one per frame, once the runner is
  // done with it, after whatever that frame made it send.
  describe('frame outcomes (acks)', () => {
    const outcomes = (h: Harness) => h.acks.map((a) => [a.seq, a.outcome]);
    const settle = () => new Promise((r) => setImmediate(r));

    it('analysed once its analysis was applied (after its guidance); dropped at once when a newer frame replaces it', async () => {
      const h = harness();
      h.runner.onHello(['blink']);
      h.frame(1);
      h.frame(2);
      h.frame(3);
      // 2 waited while 1 was analysed and was replaced by 3: dropped then, before 1 is answered.
      expect(h.acks).toEqual([{ seq: 2, outcome: 'dropped', after: 0 }]);
      h.clock.t += 100;
      await h.answer(() => null); // no face: guidance no_face, then the ack
      expect(h.sent.map((m) => m.type === 'guidance' && m.code)).toEqual(['no_face']);
      expect(h.acks.slice(1)).toEqual([{ seq: 1, outcome: 'analysed', after: 1 }]);
      expect(h.engine.calls).toHaveLength(1); // 3, the newest, is analysed next
      await h.answer();
      expect(outcomes(h)).toEqual([
        [2, 'dropped'],
        [1, 'analysed'],
        [3, 'analysed'],
      ]);
    });

    it('refused after the error sent for it (an engine error); dropped with a busy message when the engine is saturated', async () => {
      const h = harness();
      h.runner.onHello(['blink']);
      h.frame(7);
      h.engine.calls.shift()!.reject(new EngineError('frame_corrupt', 'The JPEG could not be decoded.'));
      await settle();
      expect(h.sent).toEqual([
        { type: 'error', code: 'frame_corrupt', message: 'The JPEG could not be decoded.', seq: 7 },
      ]);
      expect(h.acks).toEqual([{ seq: 7, outcome: 'refused', after: 1 }]);
      h.frame(8);
      h.engine.calls.shift()!.reject(new EngineError('busy', 'The engine is saturated.'));
      await settle();
      expect(h.sent[1]).toEqual({ type: 'busy', retryAfterMs: 200 });
      expect(h.acks[1]).toEqual({ seq: 8, outcome: 'dropped', after: 2 });
    });

    it('dropped for a frame refused unread above fps.max, by the seq read for it; no outcome without one', () => {
      const h = harness();
      h.runner.onHello(['blink']);
      h.runner.dropUnread(takeFrame(encodeFrameMessage({ format: 'jpeg', seq: 41, captureTime: 0 }, Buffer.alloc(20))));
      h.runner.dropUnread(takeFrame(Buffer.alloc(40, 0xab))); // no magic: malformed, no seq to report
      expect(outcomes(h)).toEqual([[41, 'dropped']]);
      expect(h.runner.stats()).toMatchObject({ received: 2, dropped: 2 });
    });

    it('refused for the first frame of a client that cannot run the challenge, after its error', () => {
      const h = harness({ challenges: ['light', 'blink'] });
      h.frame(1);
      expect(h.sent.map((m) => m.type === 'error' && m.code)).toEqual(['client_unsupported']);
      expect(h.acks).toEqual([{ seq: 1, outcome: 'refused', after: 1 }]);
    });

    it('when the session ends: the waiting frame dropped, the one in the engine analysed, later ones dropped', async () => {
      const h = harness();
      h.runner.onHello(['blink']);
      h.frame(1);
      h.frame(2);
      h.runner.refuse('virtual_camera');
      expect(h.verdict()).toMatchObject({ result: 'spoof_suspected' });
      expect(outcomes(h)).toEqual([[2, 'dropped']]);
      await h.answer(); // the engine's answer for 1 comes after the verdict: it was analysed all the same
      h.frame(3);
      expect(outcomes(h)).toEqual([
        [2, 'dropped'],
        [1, 'analysed'],
        [3, 'dropped'],
      ]);
      expect(h.engine.calls).toHaveLength(0);
    });

    it("gives every frame of a whole session exactly one outcome; the analysed ones are the verdict's", async () => {
      const h = harness();
      h.runner.onHello(['blink']);
      // Three frames per analysis (the client twice as fast as the engine), a blink in the sixth analysis.
      const eyes = [0.98, 0.98, 0.98, 0.98, 0.98, 0.02, 0.98, 0.98, 0.98, 0.98, 0.98, 0.98];
      let seq = 0;
      for (let i = 0; i < eyes.length && !h.verdict(); i++) {
        h.clock.t += 100;
        for (let k = 0; k < 3; k++) h.frame(seq++);
        await h.answer(() => face({ eyes: eyes[i] }));
      }
      expect(h.verdict()).toMatchObject({ result: 'match' });
      h.frame(seq++); // after the verdict
      const bySeq = new Map<number, string[]>();
      for (const a of h.acks) bySeq.set(a.seq, [...(bySeq.get(a.seq) ?? []), a.outcome]);
      expect([...bySeq.keys()].sort((a, b) => a - b)).toEqual(Array.from({ length: seq }, (_, i) => i));
      expect([...bySeq.values()].every((o) => o.length === 1)).toBe(true);
      const count = (o: FrameOutcome) => h.acks.filter((a) => a.outcome === o).length;
      expect(count('analysed')).toBe(h.verdict()!.timings.framesAnalysed);
      expect(count('refused')).toBe(0);
      expect(h.engine.calls).toHaveLength(0);
    });
  });

  it('sends the turn with the time to make it, on the challenge and its prompt', async () => {
    const h = harness({ challenges: ['turn', 'blink'] });
    h.runner.onHello(['blink', 'turn']);
    for (let i = 0; i < 10 && !h.sent.some((m) => m.type === 'challenge'); i++) {
      h.clock.t += 100;
      h.frame(i);
      await h.answer();
    }
    const turn = h.sent.find((m) => m.type === 'challenge');
    expect(turn).toMatchObject({ type: 'challenge', kind: 'turn', windowMs: DEFAULT_TURN_THRESHOLDS.windowMs });
    const code = turn?.type === 'challenge' && turn.kind === 'turn' ? `turn_${turn.direction}` : '';
    expect(h.sent).toContainEqual(
      expect.objectContaining({ type: 'guidance', code, windowMs: DEFAULT_TURN_THRESHOLDS.windowMs }),
    );
  });

  it('times out with the session timer when no decision is reached', async () => {
    const h = harness({ sessionTimeoutMs: 5000 });
    jest.advanceTimersByTime(5000);
    expect(h.verdict()).toMatchObject({ result: 'timeout', reason: null });
  });
});

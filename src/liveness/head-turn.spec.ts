import { DEFAULT_TURN_THRESHOLDS, parallax, planTurn, turnSign, TurnTracker, type TurnFrame } from './head-turn';
import { gaussian, seeded } from './pad/random';

type V3 = [number, number, number];

/**
 * An approximate 3D face in mm, iBUG 68 order: x to the image's right, y down, z towards the camera, 0 at the
 * inner eye corners. Outer eye corners sit 15 mm back, the brow ends 22 mm, the jaw up to 60 mm; the nose tip
 * stands 22 mm in front of the inner corners. Inter-ocular distance (eye centres) 64 mm.
 */
function faceModel(): V3[] {
  const p: V3[] = [];
  for (let i = 0; i <= 16; i++) {
    const a = (Math.PI * i) / 16;
    p.push([-70 * Math.cos(a), 5 + 70 * Math.sin(a), -60 * Math.cos(a) ** 2 - 3]);
  }
  const brow: V3[] = [
    [-58, -22, -22],
    [-48, -28, -10],
    [-37, -30, -3],
    [-26, -29, 2],
    [-14, -25, 4],
  ];
  p.push(...brow, ...brow.map(([x, y, z]) => [-x, y, z] as V3).reverse());
  p.push([0, -18, 4], [0, -8, 10], [0, 2, 16], [0, 12, 22]);
  p.push([-13, 20, 2], [-7, 22, 6], [0, 23, 9], [7, 22, 6], [13, 20, 2]);
  const eye: V3[] = [
    [-46, 0, -15],
    [-38, -4, -8],
    [-26, -4, -4],
    [-18, 0, 0],
    [-26, 3, -4],
    [-38, 3, -8],
  ];
  p.push(...eye);
  p.push(...[eye[3], eye[2], eye[1], eye[0], eye[5], eye[4]].map(([x, y, z]) => [-x, y, z] as V3));
  const outer: V3[] = [
    [-25, 45, -8],
    [-16, 40, 0],
    [-6, 38, 4],
    [0, 39, 5],
    [6, 38, 4],
    [16, 40, 0],
    [25, 45, -8],
    [16, 52, 0],
    [6, 55, 3],
    [0, 56, 4],
    [-6, 55, 3],
    [-16, 52, 0],
  ];
  const inner: V3[] = [
    [-20, 45, -4],
    [-6, 43, 3],
    [0, 43, 3],
    [6, 43, 3],
    [20, 45, -4],
    [6, 47, 3],
    [0, 47, 3],
    [-6, 47, 3],
  ];
  p.push(...outer, ...inner);
  return p;
}
const FACE = faceModel();

interface View {
  /** Degrees, engine sign: positive turns the nose to the image's right. Pitch tilts the chin down. */
  yaw: number;
  pitch?: number;
  /** The head turns about a vertical axis this far behind the inner eye corners (mm). */
  pivot?: number;
  /** Camera to the inner eye corners (mm). */
  distance?: number;
  noise?: number;
}

/** Pinhole camera (f = 600 px, 640x480) looking at points given in the model's frame. */
function project(points: readonly V3[], v: View, random: () => number): Float32Array {
  const yaw = (v.yaw * Math.PI) / 180;
  const pitch = ((v.pitch ?? 0) * Math.PI) / 180;
  const pivot = v.pivot ?? 90;
  const distance = v.distance ?? 500;
  const out = new Float32Array(points.length * 2);
  points.forEach(([x, y, z], i) => {
    const f = z + pivot; // forward of the pivot
    const x1 = x * Math.cos(yaw) + f * Math.sin(yaw);
    const f1 = -x * Math.sin(yaw) + f * Math.cos(yaw);
    const y2 = y * Math.cos(pitch) - f1 * Math.sin(pitch);
    const f2 = y * Math.sin(pitch) + f1 * Math.cos(pitch);
    const depth = distance + pivot - f2;
    out[2 * i] = 320 + (600 * x1) / depth + (v.noise ?? 0.6) * gaussian(random);
    out[2 * i + 1] = 240 + (600 * y2) / depth + (v.noise ?? 0.6) * gaussian(random);
  });
  return out;
}

/** A life-size photo of the frontal face: the same x, y on a flat sheet. */
const PHOTO: V3[] = FACE.map(([x, y]) => [x, y, 0]);
/** The photo bent around a vertical axis, radius r (mm): its middle bulges towards the camera (r < 0: away). */
const bent = (r: number): V3[] => PHOTO.map(([x, y]) => [r * Math.sin(x / r), y, r * (Math.cos(x / r) - 1)]);

describe('parallax', () => {
  it('sees the nose of a real face leave the plane of its eyes and mouth, in the direction of the turn', () => {
    const random = seeded(1);
    for (const yaw of [18, 25, 35]) {
      for (const sign of [1, -1] as const) {
        const frontal = project(FACE, { yaw: 2 * sign }, random);
        const turned = project(FACE, { yaw: yaw * sign, pitch: 4 }, random);
        const p = parallax(frontal, turned, sign)!;
        expect(p.noseShift).toBeGreaterThan(0.06);
        expect(p.noseShift).toBeGreaterThan(0.25 * Math.sin(((yaw - 2) * Math.PI) / 180));
        expect(p.noseBaseShift).toBeGreaterThan(0);
        expect(p.iod).toBeGreaterThan(70);
        // Against the wrong direction the same turn reads negative.
        expect(parallax(frontal, turned, sign === 1 ? -1 : 1)!.noseShift).toBeLessThan(0);
      }
    }
  });

  it('finds only landmark noise on a flat photo, however it is turned, tilted or held', () => {
    const random = seeded(2);
    for (let n = 0; n < 50; n++) {
      const frontal = project(PHOTO, { yaw: 0, pivot: 0, distance: 350 }, random);
      const yaw = (18 + 22 * random()) * (random() < 0.5 ? 1 : -1);
      const view = { yaw, pitch: 15 * (random() - 0.5), pivot: 100 * (random() - 0.5), distance: 300 + 200 * random() };
      const p = parallax(frontal, project(PHOTO, view, random), yaw > 0 ? 1 : -1)!;
      expect(Math.abs(p.noseShift)).toBeLessThan(0.04);
      expect(p.planeRms).toBeLessThan(0.03);
    }
  });

  it('finds much less on a photo bent around a vertical axis than on a face', () => {
    const random = seeded(3);
    for (const r of [150, 100, -100]) {
      for (const yaw of [20, 30]) {
        const frontal = project(bent(r), { yaw: 0, pivot: 0, distance: 350 }, random);
        const p = parallax(frontal, project(bent(r), { yaw, pivot: 0, distance: 350 }, random), 1)!;
        expect(p.noseShift).toBeLessThan(0.06);
      }
    }
  });

  it('refuses missing or degenerate landmarks', () => {
    const frontal = project(FACE, { yaw: 0 }, seeded(4));
    expect(parallax(frontal, new Float32Array(10))).toBeNull();
    expect(parallax(new Float32Array(136), new Float32Array(136))).toBeNull();
  });
});

describe('planTurn', () => {
  it('asks left or right at random, with a fresh id', () => {
    const random = seeded(5);
    const plans = Array.from({ length: 200 }, () => planTurn(random));
    const lefts = plans.filter((p) => p.direction === 'left').length;
    expect(lefts).toBeGreaterThan(70);
    expect(lefts).toBeLessThan(130);
    expect(new Set(plans.map((p) => p.challengeId)).size).toBe(200);
    expect(['left', 'right']).toContain(planTurn().direction);
  });

  it("maps the patient's left to positive yaw (the image's right)", () => {
    expect(turnSign('left')).toBe(1);
    expect(turnSign('right')).toBe(-1);
  });
});

describe('TurnTracker', () => {
  const PROMPT = 100_000;

  /** Frames every 66 ms: yaw(t) gives the head's yaw (ms after the prompt); `points` what the camera sees. */
  interface SessionOptions {
    from?: number;
    to?: number;
    points?: V3[];
    seed?: number;
  }
  function session(yaw: (ms: number) => number, opts: SessionOptions = {}) {
    const random = seeded(opts.seed ?? 6);
    const frames: TurnFrame[] = [];
    for (let ms = opts.from ?? -1200; ms <= (opts.to ?? 2500); ms += 66) {
      const y = yaw(ms);
      const landmarks = project(opts.points ?? FACE, { yaw: y, pivot: opts.points ? 0 : 90 }, random);
      frames.push({ t: PROMPT + ms, yaw: y + 1.5 * gaussian(random), landmarks });
    }
    return frames;
  }
  /** Frontal, then a turn to `peak` starting 400 ms after the prompt, reaching it 400 ms later, and back. */
  const turn = (peak: number) => (ms: number) => {
    if (ms < 400 || ms >= 1200) return 1;
    return ms < 800 ? 1 + ((peak - 1) * (ms - 400)) / 400 : peak - ((peak - 1) * (ms - 800)) / 400;
  };

  function run(direction: 'left' | 'right', frames: TurnFrame[], thresholds = DEFAULT_TURN_THRESHOLDS) {
    const tracker = new TurnTracker(direction, PROMPT, thresholds);
    for (const f of frames) tracker.observe(f);
    return tracker;
  }

  it('passes a real turn in the asked direction, deciding as the head comes back', () => {
    const tracker = new TurnTracker('left', PROMPT);
    const frames = session(turn(28));
    let decidedAt: number | null = null;
    for (const f of frames) {
      if (tracker.observe(f) !== 'waiting' && decidedAt === null) decidedAt = f.t - PROMPT;
    }
    expect(tracker.status()).toBe('passed');
    expect(tracker.reason).toBeNull();
    expect(decidedAt!).toBeLessThan(1200);
    const m = tracker.metrics;
    expect(m.peakYaw!).toBeGreaterThan(25);
    expect(m.reachedMs!).toBeGreaterThan(400);
    expect(m.reachedMs!).toBeLessThan(800);
    expect(Math.abs(m.frontalYaw!)).toBeLessThan(12);
    expect(m.noseShift!).toBeGreaterThan(0.06);
    expect(m.noseDepth!).toBeGreaterThan(0.25);
    expect(m.noseDepth!).toBeLessThan(0.6);
  });

  it('takes the frames before the prompt through observeBefore, when created at the prompt', () => {
    const frames = session((ms) => -turn(25)(ms));
    const tracker = new TurnTracker('right', PROMPT);
    for (const f of frames.filter((f) => f.t < PROMPT)) tracker.observeBefore(f);
    for (const f of frames.filter((f) => f.t >= PROMPT)) tracker.observe(f);
    expect(tracker.status()).toBe('passed');
  });

  it('passes a turn to the right as negative yaw', () => {
    const tracker = run(
      'right',
      session((ms) => -turn(25)(ms)),
    );
    expect(tracker.status()).toBe('passed');
    expect(tracker.metrics.peakYaw!).toBeGreaterThan(20);
  });

  it('waits while the turn is under way', () => {
    const tracker = run('left', session(turn(28), { to: 600 }));
    expect(tracker.status()).toBe('waiting');
    expect(tracker.tick(PROMPT + 2999)).toBe('waiting');
  });

  it('fails a flat photo turned the asked way: turn_flat', () => {
    for (const points of [PHOTO, bent(120)]) {
      const tracker = run('left', session(turn(30), { points }));
      expect(tracker.status()).toBe('failed');
      expect(tracker.reason).toBe('turn_flat');
      expect(tracker.metrics.noseShift!).toBeLessThan(0.06);
    }
  });

  it('fails no turn, or too small a turn, once the window closes: turn_missing', () => {
    const still = run(
      'left',
      session(() => 1, { to: 2900 }),
    );
    expect(still.status()).toBe('waiting');
    expect(still.tick(PROMPT + 3001)).toBe('failed');
    expect(still.reason).toBe('turn_missing');
    const small = run('left', session(turn(14), { to: 3200 }));
    expect(small.reason).toBe('turn_missing');
    expect(small.metrics.peakYaw!).toBeLessThan(18);
  });

  it('fails a turn that comes too late: turn_missing', () => {
    const late = run(
      'left',
      session((ms) => (ms < 3050 ? 1 : 30), { to: 3300 }),
    );
    expect(late.reason).toBe('turn_missing');
  });

  it('fails a turn the other way at once: turn_missing', () => {
    const tracker = new TurnTracker('left', PROMPT);
    const frames = session((ms) => -turn(28)(ms));
    const decided = frames.find((f) => tracker.observe(f) !== 'waiting')!;
    expect(tracker.reason).toBe('turn_missing');
    expect(decided.t - PROMPT).toBeLessThan(800);
  });

  it('fails a turn that started before the prompt: turn_early', () => {
    const early = run(
      'left',
      session((ms) => (ms > -500 && ms < 0 ? 25 : 1)),
    );
    expect(early.reason).toBe('turn_early');
    // Long enough before the prompt it does not count.
    const earlier = run(
      'left',
      session((ms) => (ms > -1200 && ms < -1050 ? 25 : turn(28)(ms)), { from: -1400 }),
    );
    expect(earlier.status()).toBe('passed');
  });

  it('fails without a frontal view in the second before the prompt: turn_early', () => {
    expect(
      run(
        'left',
        session((ms) => (ms < 0 ? 17 : turn(28)(ms))),
      ).reason,
    ).toBe('turn_early');
    expect(run('left', session(turn(28), { from: 0 })).reason).toBe('turn_early');
  });

  it('uses the most turned view up to maxYaw for the 3D check', () => {
    const tracker = run('left', session(turn(60)));
    expect(tracker.status()).toBe('passed');
    expect(tracker.metrics.peakYaw!).toBeGreaterThan(55);
    expect(tracker.metrics.noseDepth!).toBeGreaterThan(0.2);
  });

  it('takes threshold overrides', () => {
    const strict = run('left', session(turn(28)), { ...DEFAULT_TURN_THRESHOLDS, parallaxMin: 0.5 });
    expect(strict.reason).toBe('turn_flat');
    const lenient = run('left', session(turn(14), { to: 3200 }), {
      ...DEFAULT_TURN_THRESHOLDS,
      minYaw: 10,
      parallaxMin: 0.06,
    });
    expect(lenient.status()).toBe('passed');
  });
});

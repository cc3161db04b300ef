import { fitFace, MESH_TRIANGLE_KIND, MESH_TRIANGLES, TRIANGLE_HEAD, type FaceModel } from './face-model';
import {
  colourSequence,
  constantScreen,
  createModel,
  idleScreen,
  MODEL_KINDS,
  type ModelKind,
  type Prompts,
  type RenderedFrame,
  type Rgb,
  type ScreenTimeline,
} from './render';
import { regionMeans, type PadRegion } from './regions';
import { syntheticFace } from './synthetic-face';

// Everything here runs on a drawn face with exact landmarks: no engine, no photos, seeded.

let face: FaceModel;
beforeAll(() => {
  const s = syntheticFace();
  face = fitFace(s.frame, s.landmarks);
});

const RED: Rgb = [255, 0, 0];
const BLUE: Rgb = [0, 0, 255];

function linear(v: number): number {
  const c = v / 255;
  return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
}

/** log(R / B) in linear light: a global gain (exposure) cancels out, a coloured light does not. */
function chroma(m: [number, number, number] | null): number {
  if (!m) throw new Error('region outside the frame');
  return Math.log(linear(m[0]) / linear(m[2]));
}

/** Frames of one session every `step` ms from 0 to `until` (few frames: each costs a few ms). */
function run(
  kind: ModelKind,
  seed: number,
  screen: ScreenTimeline,
  prompts: Prompts = {},
  until = 600,
  extra = {},
  step = 200,
  from = 0,
): RenderedFrame[] {
  const m = createModel(kind, face, { seed, ...extra });
  const frames: RenderedFrame[] = [];
  for (let t = from; t <= until; t += step) frames.push(m.frameAt(t, screen, prompts));
  return frames;
}

/** Per-region chromatic response: the same session under a red screen minus under a blue one. */
function response(kind: ModelKind, seed: number, extra = {}): Record<PadRegion, number> {
  const red = run(kind, seed, constantScreen(RED), {}, 600, extra).at(-1)!;
  const blue = run(kind, seed, constantScreen(BLUE), {}, 600, extra).at(-1)!;
  const lm = red.truth.landmarks ?? face.landmarks;
  const a = regionMeans(red, lm);
  const b = regionMeans(blue, lm);
  const out = {} as Record<PadRegion, number>;
  for (const r of Object.keys(a) as PadRegion[]) out[r] = chroma(a[r]) - chroma(b[r]);
  return out;
}

function spread(r: Record<PadRegion, number>): number {
  const v = [r.forehead, r.nose, r.leftCheek, r.rightCheek, r.chin];
  return (Math.max(...v) - Math.min(...v)) / (v.reduce((s, x) => s + x, 0) / v.length);
}

describe('fitted face', () => {
  const at = (m: Float32Array, i: number) => {
    const x = Math.round(face.landmarks[2 * i]),
      y = Math.round(face.landmarks[2 * i + 1]);
    return m[y * face.width + x];
  };

  it('one triangulation joins all the points, the face triangles among them', () => {
    const used = new Set(MESH_TRIANGLES);
    for (let i = 0; i < 68; i++) expect(used.has(i)).toBe(true);
    expect(MESH_TRIANGLE_KIND.filter((k) => k === TRIANGLE_HEAD).length).toBeGreaterThan(90);
  });

  it('depth: the nose tip stands ~30 mm in front of the eye corners; normals turn away from the nose', () => {
    expect(at(face.depth, 30) - at(face.depth, 36)).toBeGreaterThan(20);
    expect(at(face.depth, 30) - at(face.depth, 36)).toBeLessThan(45);
    const normalX = (i: number) => {
      const x = Math.round(face.landmarks[2 * i]),
        y = Math.round(face.landmarks[2 * i + 1]);
      return face.normals[3 * (y * face.width + x)];
    };
    expect(normalX(2)).toBeLessThan(-0.3); // image-left cheek faces left
    expect(normalX(14)).toBeGreaterThan(0.3);
  });

  it('the head mask covers the face and leaves the wall beside it', () => {
    for (let i = 0; i < 68; i++) expect(at(face.mask, i)).toBeGreaterThan(0.9);
    const y = Math.round(face.landmarks[2 * 36 + 1]);
    const jaw = face.landmarks[32] - face.landmarks[0];
    for (const x of [face.landmarks[0] - 0.4 * jaw, face.landmarks[32] + 0.4 * jaw]) {
      expect(face.mask[y * face.width + Math.round(x)]).toBe(0);
    }
  });
});

describe('light response', () => {
  it.each([1, 2, 3])(
    'genuine (seed %i): the face answers the screen colour, the wall behind far less, unevenly',
    (seed) => {
      const r = response('genuine', seed);
      expect(r.face).toBeGreaterThan(0.1);
      expect(r.surround).toBeLessThan(r.face / 5);
      // Forehead, nose, cheeks and chin face the screen at different angles.
      expect(spread(r)).toBeGreaterThan(0.15);
    },
  );

  it.each(['print', 'warped_photo'] as const)('%s: face and surround answer alike, evenly', (kind) => {
    const r = response(kind, 1);
    expect(r.face).toBeGreaterThan(0.1);
    expect(r.surround / r.face).toBeGreaterThan(0.85);
    expect(r.surround / r.face).toBeLessThan(1.15);
    expect(spread(r)).toBeLessThan(0.05);
  });

  it('screen: a phone screen barely answers (its glass reflects ~1%)', () => {
    const r = response('screen', 1);
    const genuine = response('genuine', 1);
    expect(Math.abs(r.face)).toBeLessThan(0.35 * genuine.face);
  });

  it.each(['still', 'liveish'] as const)('tint injector over a %s base: the whole frame changes alike', (base) => {
    const r = response('tint_injector', 1, { base });
    expect(r.face).toBeGreaterThan(0.1);
    for (const region of ['surround', 'frame', 'forehead', 'chin'] as const) {
      expect(Math.abs(r[region] / r.face - 1)).toBeLessThan(0.1);
    }
  });

  it.each(['still', 'painted_blink', 'replay'] as const)(
    '%s: deaf to the screen (identical frames under any colour)',
    (kind) => {
      const red = run(kind, 4, constantScreen(RED));
      const blue = run(kind, 4, constantScreen(BLUE));
      red.forEach((f, i) => expect(f.data.equals(blue[i].data)).toBe(true));
    },
  );

  it('the genuine camera sees the screen after its latency', () => {
    const m = createModel('genuine', face, { seed: 5 });
    const lag = m.params.lagMs as number;
    const screen = colourSequence(1000, [{ rgb: [255, 255, 255], ms: 1000 }]);
    const before = m.frameAt(1000 + lag - 40, screen, {});
    const after = m.frameAt(1000 + lag + 40, screen, {});
    expect(before.truth.screenLight[0]).toBeLessThan(0.5);
    expect(after.truth.screenLight[0]).toBeCloseTo(1, 5);
  });

  it('automatic exposure: a white screen lowers the gain gradually, within 0.8-1.2', () => {
    const m = createModel('genuine', face, { seed: 6, camera: { lagMs: 0 } });
    const screen = colourSequence(1000, [{ rgb: [255, 255, 255], ms: 5000 }]);
    const gains = new Map<number, number>();
    for (const t of [0, 500, 950, 1100, 1300, 4000]) gains.set(t, m.frameAt(t, screen, {}).truth.exposureGain!);
    const at = (t: number) => gains.get(t)!;
    expect(at(950)).toBeCloseTo(1, 1);
    expect(at(1100)).toBeLessThan(at(950));
    expect(at(1300)).toBeLessThan(at(1100));
    expect(at(4000)).toBeLessThan(at(1300));
    for (const g of gains.values()) {
      expect(g).toBeGreaterThanOrEqual(0.8);
      expect(g).toBeLessThanOrEqual(1.2);
    }
  });
});

/** Least-squares homography (h33 = 1) from point pairs, by the normal equations. */
function homography(from: [number, number][], to: [number, number][]): (p: [number, number]) => [number, number] {
  const A: number[][] = [];
  const b: number[] = [];
  from.forEach(([x, y], i) => {
    const [u, v] = to[i];
    A.push([x, y, 1, 0, 0, 0, -u * x, -u * y]);
    b.push(u);
    A.push([0, 0, 0, x, y, 1, -v * x, -v * y]);
    b.push(v);
  });
  const N = Array.from({ length: 8 }, (_, i) =>
    Array.from({ length: 9 }, (_, j) => A.reduce((s, row, k) => s + row[i] * (j < 8 ? row[j] : b[k]), 0)),
  );
  for (let c = 0; c < 8; c++) {
    const p = N.slice(c).reduce((best, row, k) => (Math.abs(row[c]) > Math.abs(N[best][c]) ? c + k : best), c);
    [N[c], N[p]] = [N[p], N[c]];
    for (let r = 0; r < 8; r++) {
      if (r === c) continue;
      const f = N[r][c] / N[c][c];
      for (let j = c; j < 9; j++) N[r][j] -= f * N[c][j];
    }
  }
  const h = N.map((row, i) => row[8] / row[i]);
  return ([x, y]) => {
    const w = h[6] * x + h[7] * y + 1;
    return [(h[0] * x + h[1] * y + h[2]) / w, (h[3] * x + h[4] * y + h[5]) / w];
  };
}

/** Jaw, brow ends, eye and mouth corners: the face's outer points. */
const OUTER = [0, 4, 8, 12, 16, 17, 26, 36, 45, 48, 54];
const NOSE_TIP = 30;

/** How far the nose tip is from where a homography of the outer points puts it (signed x, and distance), at the turn's peak. */
function noseOffPlane(
  kind: ModelKind,
  direction: 'left' | 'right',
  extra = {},
): { dx: number; dist: number; yaw: number } {
  const frames = run(kind, 7, idleScreen, { turn: { at: 0, direction } }, 2600, extra, 100);
  const peak = frames.reduce((best, f) => (Math.abs(f.truth.yaw) > Math.abs(best.truth.yaw) ? f : best));
  const lm = peak.truth.landmarks!;
  const pt = (l: ArrayLike<number>, i: number): [number, number] => [l[2 * i], l[2 * i + 1]];
  const H = homography(
    OUTER.map((i) => pt(face.landmarks, i)),
    OUTER.map((i) => pt(lm, i)),
  );
  const predicted = H(pt(face.landmarks, NOSE_TIP));
  const actual = pt(lm, NOSE_TIP);
  return {
    dx: actual[0] - predicted[0],
    dist: Math.hypot(actual[0] - predicted[0], actual[1] - predicted[1]),
    yaw: peak.truth.yaw,
  };
}

describe('head turn', () => {
  it.each(['left', 'right'] as const)(
    'genuine, turning %s: the nose tip leaves the plane of the outer points',
    (direction) => {
      const r = noseOffPlane('genuine', direction);
      // The patient's left is the image's right: positive yaw, nose towards +x.
      expect(Math.sign(r.yaw)).toBe(direction === 'left' ? 1 : -1);
      expect(Math.abs(r.yaw)).toBeGreaterThan(18);
      expect(r.dist).toBeGreaterThan(3);
      expect(Math.sign(r.dx)).toBe(direction === 'left' ? 1 : -1);
    },
  );

  it('warped photo: turned as a flat sheet, a homography explains the nose tip', () => {
    const r = noseOffPlane('warped_photo', 'left');
    expect(r.yaw).toBeGreaterThan(18);
    expect(r.dist).toBeLessThan(0.5);
  });

  it('bent photo: the nose tip stays much closer to the plane than a real face', () => {
    const bent = noseOffPlane('warped_photo', 'left', { bendRadiusMm: 150 });
    const genuine = noseOffPlane('genuine', 'left');
    expect(bent.dist).toBeLessThan(genuine.dist / 2);
  });

  it('a turn prompt moves nothing in a print or a still photo', () => {
    for (const kind of ['print', 'still'] as const) {
      const frames = run(kind, 8, idleScreen, { turn: { at: 0, direction: 'left' } }, 2600, {}, 200);
      for (const f of frames) expect(Math.abs(f.truth.yaw)).toBeLessThan(5);
    }
  });
});

describe('blink', () => {
  const frames = (kind: ModelKind, seed: number, prompts: Prompts) =>
    run(kind, seed, idleScreen, prompts, 2200, { spontaneousBlinks: false }, 50, 1000);
  const closedTimes = (f: RenderedFrame[]) => f.filter((x) => x.truth.eyesClosed).map((x) => x.t);

  it('genuine: the eyes shut within a human reaction time of the prompt, and the pixels show it', () => {
    const m = createModel('genuine', face, { seed: 9, spontaneousBlinks: false });
    const lag = m.params.lagMs as number;
    const session = frames('genuine', 9, { blinkAt: 1000 });
    const closed = closedTimes(session);
    expect(closed.length).toBeGreaterThan(0);
    expect(Math.min(...closed)).toBeGreaterThanOrEqual(1000 + 250 + lag);
    expect(Math.max(...closed)).toBeLessThanOrEqual(1000 + 900 + lag);
    const shut = session.find((f) => f.truth.eyesClosed)!;
    const open = session[session.indexOf(shut) - 1];
    // The left eye's box is painted over with skin.
    const lm = shut.truth.landmarks!;
    const xs = [36, 37, 38, 39, 40, 41].map((i) => Math.round(lm[2 * i]));
    const ys = [36, 37, 38, 39, 40, 41].map((i) => Math.round(lm[2 * i + 1]));
    let diff = 0,
      n = 0;
    for (let y = Math.min(...ys); y <= Math.max(...ys); y++) {
      for (let x = Math.min(...xs); x <= Math.max(...xs); x++, n++)
        diff += Math.abs(shut.data[3 * (y * 320 + x)] - open.data[3 * (y * 320 + x)]);
    }
    expect(diff / n).toBeGreaterThan(15);
  });

  it('painted blink: shut about 300 ms after the prompt; still: never', () => {
    const m = createModel('painted_blink', face, { seed: 10 });
    const lag = m.params.lagMs as number;
    const closed = closedTimes(frames('painted_blink', 10, { blinkAt: 1000 }));
    expect(Math.min(...closed)).toBeGreaterThanOrEqual(1000 + 250 + lag);
    expect(Math.max(...closed)).toBeLessThanOrEqual(1000 + 600 + lag);
    expect(closedTimes(frames('still', 10, { blinkAt: 1000 }))).toEqual([]);
  });

  it('replay: blinks on its own recording, not on this prompt', () => {
    const a = run('replay', 11, idleScreen, { blinkAt: 500 }, 2000, {}, 100);
    const b = run('replay', 11, idleScreen, {}, 2000, {}, 100);
    a.forEach((f, i) => expect(f.data.equals(b[i].data)).toBe(true));
  });
});

describe('sessions', () => {
  it.each(MODEL_KINDS)('%s: the same seed renders the same bytes; another seed differs', (kind) => {
    const screen = colourSequence(200, [{ rgb: RED, ms: 300 }]);
    const prompts: Prompts = { blinkAt: 300, turn: { at: 400, direction: 'right' } };
    const a = run(kind, 12, screen, prompts, 600);
    const b = run(kind, 12, screen, prompts, 600);
    const c = run(kind, 13, screen, prompts, 600);
    expect(a).toHaveLength(4);
    a.forEach((f, i) => expect(f.data.equals(b[i].data)).toBe(true));
    expect(a.some((f, i) => !f.data.equals(c[i].data))).toBe(true);
    for (const f of a) {
      expect(f.width).toBe(320);
      expect(f.height).toBe(240);
      expect(f.data.length).toBe(320 * 240 * 3);
    }
  });

  it('genuine at rest reproduces the photo (up to sway, light and noise)', () => {
    const f = run('genuine', 14, idleScreen, {}, 0, {
      camera: { noiseSigma: 0, autoExposure: false, wbDrift: 0 },
      lightGain: 0,
    })[0];
    let diff = 0;
    for (let i = 0; i < f.data.length; i++) diff += Math.abs(f.data[i] - face.frame.data[i]);
    // Sway moves the head by a pixel or two: edges differ, the bulk does not.
    expect(diff / f.data.length).toBeLessThan(6);
  });
});

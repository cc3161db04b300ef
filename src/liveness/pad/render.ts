import { closeEyes, type RgbFrame } from '../../cli/synthetic';
import { addNoiseAndEncode, drawWebcamParams, Webcam, type WebcamParams } from './camera';
import {
  AXIS_BEHIND_NOSE,
  frontFacing,
  MESH_LAYOUT,
  ringTwist,
  TRIANGLE_HEAD,
  TRIANGLE_STRETCH,
  type FaceModel,
} from './face-model';
import { colourToLinear, SRGB_TO_LINEAR, WarpMap } from './raster';
import { hashSeed, Rng, Wobble } from './random';
import { LIGHT_PALETTE } from '../light';

const { sqrt } = Math;

/*
 * Scene models of the presentation-attack benchmark: what a desk's webcam would capture, frame by frame, given what
 * the patient-facing screen shows and what the server asked. One model = one session of one subject (a live
 * patient or an attack), with its randomness drawn from a seed. docs/liveness.md describes the physics and the limits.
 *
 * Interface: model.frameAt(t, screen, prompts) -> RenderedFrame
 * - t: the frame's capture time in ms (the clock of the frames' captureTime and of light_shown); non-decreasing
 *   from one call to the next (exposure and other state integrate over time). Any origin.
 * - screen: what the patient-facing screen shows at any time (a function, since the camera sees the past: its
 *   latency and exposure time); null = the normal user interface (IDLE_SCREEN).
 * - prompts: when the desk showed the blink prompt and the turn challenge (same clock), or nothing.
 * The frame is 8-bit RGB (interleaved, as the engine's raw input and sharp's raw output); encode it with
 * `encodeJpeg(frame, model.jpegQuality)` to send it like a desk. `truth` says what the model did (for checks).
 */

export type Rgb = readonly [number, number, number];
/** What the patient-facing screen shows at time t (ms); null = its normal user interface. */
export type ScreenTimeline = (t: number) => Rgb | null;

export interface TurnPrompt {
  at: number;
  /** The patient's own left/right: 'left' = towards the image's right = positive yaw. */
  direction: 'left' | 'right';
}

export interface Prompts {
  /** When the blink prompt was shown (the latest one). */
  blinkAt?: number;
  /** When the turn challenge was shown, and which way. */
  turn?: TurnPrompt;
}

export const MODEL_KINDS = [
  'genuine',
  'still',
  'painted_blink',
  'replay',
  'print',
  'screen',
  'warped_photo',
  'tint_injector',
] as const;
export type ModelKind = (typeof MODEL_KINDS)[number];

/** What the model rendered, for checks and debugging (never sent anywhere). */
export interface FrameTruth {
  /** The world time the frame shows (t minus the capture latency; for a replay, the recording's own time). */
  sceneTime: number;
  /** Where the 68 landmarks are in this frame (frame pixels), or null when unknown. */
  landmarks: Float32Array | null;
  /** Pose of the face (or of the paper) in degrees; positive yaw = towards the image's right. */
  yaw: number;
  pitch: number;
  roll: number;
  eyesClosed: boolean;
  /** The screen's light this frame integrated, linear 0-1 per channel (what lit the scene). */
  screenLight: [number, number, number];
  /** The camera's exposure gain, or null without a camera model (injected frames). */
  exposureGain: number | null;
}

export interface RenderedFrame extends RgbFrame {
  t: number;
  truth: FrameTruth;
}

export interface SceneModel {
  readonly kind: ModelKind;
  /** The session's drawn parameters (for reports). */
  readonly params: Readonly<Record<string, number | string | boolean>>;
  /** The JPEG quality a desk would send this session's frames at. */
  readonly jpegQuality: number;
  frameAt(t: number, screen: ScreenTimeline, prompts: Prompts): RenderedFrame;
}

/** The screen's usual content as a light source: a mid-grey user interface. */
export const IDLE_SCREEN: Rgb = [160, 160, 160];

/** Screen timelines. */
export const idleScreen: ScreenTimeline = () => null;

export function constantScreen(rgb: Rgb | null): ScreenTimeline {
  return () => rgb;
}

/** Colours painted one after another from `start` (ms), each for its `ms`; idle before and after. */
export function colourSequence(start: number, colours: readonly { rgb: Rgb; ms: number }[]): ScreenTimeline {
  const ends: number[] = [];
  let at = start;
  for (const c of colours) ends.push((at += c.ms));
  return (t) => {
    if (t < start) return null;
    for (let i = 0; i < colours.length; i++) if (t < ends[i]) return colours[i].rgb;
    return null;
  };
}

/** Encodes a frame as a baseline JPEG (4:2:0, as browsers send). Needs sharp (a devDependency). */
export async function encodeJpeg(frame: RgbFrame, quality: number): Promise<Buffer> {
  const sharp = (await import('sharp')).default;
  return sharp(frame.data, { raw: { width: frame.width, height: frame.height, channels: 3 } })
    .jpeg({ quality, chromaSubsampling: '4:2:0' })
    .toBuffer();
}

// ---------------------------------------------------------------------------------------------------------------
// Shared pieces

/** Linear light of the screen averaged over the exposure [tw - exposureMs, tw] (4 samples). */
function screenLight(screen: ScreenTimeline, tw: number, exposureMs: number, idle: Rgb): [number, number, number] {
  const out: [number, number, number] = [0, 0, 0];
  const samples = exposureMs > 0 ? 4 : 1;
  for (let k = 0; k < samples; k++) {
    const at = samples === 1 ? tw : tw - (exposureMs * k) / (samples - 1);
    const lin = colourToLinear(screen(at) ?? idle);
    for (let c = 0; c < 3; c++) out[c] += lin[c] / samples;
  }
  return out;
}

/** Rotation (yaw about the vertical axis, then pitch, then roll), row-major 3x3; angles in degrees. */
function rotation(yawDeg: number, pitchDeg: number, rollDeg: number): Float64Array {
  const [y, p, r] = [yawDeg, pitchDeg, rollDeg].map((d) => (d * Math.PI) / 180);
  // Yaw: nose (Z > 0) towards +X. Pitch: nose up (towards -Y). Roll: in the image plane.
  const Ry = [Math.cos(y), 0, Math.sin(y), 0, 1, 0, -Math.sin(y), 0, Math.cos(y)];
  const Rp = [1, 0, 0, 0, Math.cos(p), -Math.sin(p), 0, Math.sin(p), Math.cos(p)];
  const Rr = [Math.cos(r), -Math.sin(r), 0, Math.sin(r), Math.cos(r), 0, 0, 0, 1];
  const mul = (A: number[], B: number[]) => {
    const C = new Array<number>(9).fill(0);
    for (let i = 0; i < 3; i++)
      for (let j = 0; j < 3; j++) for (let k = 0; k < 3; k++) C[3 * i + j] += A[3 * i + k] * B[3 * k + j];
    return C;
  };
  return Float64Array.from(mul(Rr, mul(Rp, Ry)));
}

function smoothstep(x: number): number {
  const c = Math.min(1, Math.max(0, x));
  return c * c * (3 - 2 * c);
}

/** Timing of a turn (ms after the prompt) and its peak angle. */
interface TurnShape {
  react: number;
  go: number;
  hold: number;
  back: number;
  peak: number;
}

/** Yaw added at scene time tw by the turn asked for by `turn`, turning as `shape` says. */
function turnAngle(shape: TurnShape, turn: TurnPrompt, tw: number): number {
  const sign = turn.direction === 'left' ? 1 : -1;
  const t = tw - turn.at - shape.react;
  if (t <= 0) return 0;
  if (t < shape.go) return sign * shape.peak * smoothstep(t / shape.go);
  if (t < shape.go + shape.hold) return sign * shape.peak;
  return sign * shape.peak * (1 - smoothstep((t - shape.go - shape.hold) / shape.back));
}

/** A unit direction from the face towards the screen: in front, a little below the camera. */
function drawLightDirection(rng: Rng): [number, number, number] {
  const x = rng.range(-0.08, 0.08);
  const y = rng.range(0.15, 0.35);
  const len = Math.hypot(x, y, 1);
  return [x / len, y / len, 1 / len];
}

function frameOf(width: number, height: number): { data: Buffer; width: number; height: number } {
  return { data: Buffer.alloc(width * height * 3), width, height };
}

/** Where a bilinear sample of an image reads: four neighbouring pixels (row-major pixel indices) and their weights. */
interface Taps {
  p00: number;
  p10: number;
  p01: number;
  p11: number;
  w00: number;
  w10: number;
  w01: number;
  w11: number;
}

/**
 * The taps of point (u, v) of a W x H image, the point clamped to the image. A fresh object per pixel on purpose:
 * V8 inlines this and `sample` and keeps the fields in registers; a reused scratch object measured ~15% slower.
 */
function bilinearTaps(u: number, v: number, W: number, H: number): Taps {
  if (u < 0) u = 0;
  else if (u > W - 1) u = W - 1;
  if (v < 0) v = 0;
  else if (v > H - 1) v = H - 1;
  const x0 = u | 0,
    y0 = v | 0;
  const x1 = x0 < W - 1 ? x0 + 1 : x0,
    y1 = y0 < H - 1 ? y0 + 1 : y0;
  const fx = u - x0,
    fy = v - y0;
  return {
    p00: y0 * W + x0,
    p10: y0 * W + x1,
    p01: y1 * W + x0,
    p11: y1 * W + x1,
    w00: (1 - fx) * (1 - fy),
    w10: fx * (1 - fy),
    w01: (1 - fx) * fy,
    w11: fx * fy,
  };
}

/** Channel c of an image with n interleaved channels, sampled at taps t. */
function sample(img: Float32Array, n: number, c: number, t: Taps): number {
  return (
    img[n * t.p00 + c] * t.w00 + img[n * t.p10 + c] * t.w10 + img[n * t.p01 + c] * t.w01 + img[n * t.p11 + c] * t.w11
  );
}

/** Whole-frame affine resampling: out(x, y) = src(m0 x + m1 y + m2, m3 x + m4 y + m5), bilinear, edge-clamped. */
function warpAffine(src: Float32Array, W: number, H: number, m: readonly number[], out: Float32Array): void {
  for (let y = 0, o = 0; y < H; y++) {
    for (let x = 0; x < W; x++, o += 3) {
      const taps = bilinearTaps(m[0] * x + m[1] * y + m[2], m[3] * x + m[4] * y + m[5], W, H);
      for (let c = 0; c < 3; c++) out[o + c] = sample(src, 3, c, taps);
    }
  }
}

function shiftLandmarks(lm: Float32Array, dx: number, dy: number): Float32Array {
  const out = new Float32Array(lm.length);
  for (let i = 0; i < lm.length; i += 2) {
    out[i] = lm[i] + dx;
    out[i + 1] = lm[i + 1] + dy;
  }
  return out;
}

/**
 * The photo (linear light) moved by a whole pixel or none each way into `out`, drawn from (seed, t): how an injected
 * still image wobbles. Returns the landmarks moved alike.
 */
function jitterPhoto(face: FaceModel, seed: number, t: number, out: Float32Array): Float32Array {
  const r = new Rng(hashSeed(seed, 0x5e, t));
  const dx = r.int(-1, 2),
    dy = r.int(-1, 2);
  warpAffine(face.linear, face.width, face.height, [1, 0, -dx, 0, 1, -dy], out);
  return shiftLandmarks(face.landmarks, dx, dy);
}

/** Spontaneous blinks: every 2-7 s, eyes shut for 100-250 ms. Generated on demand, reproducible. */
class BlinkSchedule {
  private readonly blinks: [number, number][] = [];
  private until: number;

  constructor(
    private readonly rng: Rng,
    private readonly start: number,
  ) {
    this.until = start + rng.range(1000, 4000);
  }

  closedAt(t: number): boolean {
    while (this.until < t + 1000) {
      const dur = this.rng.range(100, 250);
      this.blinks.push([this.until, this.until + dur]);
      this.until += this.rng.range(2000, 7000);
    }
    return this.blinks.some(([a, b]) => t >= a && t < b);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Genuine: a live face at the desk

export interface GenuineOptions {
  seed: number;
  /** Screen light on the face: a full-white screen adds this fraction (linear light) where the skin faces it
   * squarely. Default 0.10-0.25 per session. 0 = a face that does not answer the screen (for injectors). */
  lightGain?: number;
  /** The wall behind gets this fraction of the face's screen light (it is ~3-4x farther). Default 1/15. */
  wallRatio?: number;
  /** Spontaneous blinks on (default). */
  spontaneousBlinks?: boolean;
  /** How long the eyes stay shut on a blink prompt, ms: drawn in [min, max). Default 120-300 (a quick blink). */
  promptedBlinkMs?: [number, number];
  camera?: Partial<WebcamParams>;
  idleScreen?: Rgb;
}

/**
 * A live patient: the photo's face relit by the screen (per-pixel normals from the fitted 3D face), turning and
 * blinking when asked (after a human reaction time), swaying a little, seen by a webcam with its latency,
 * exposure, white balance and noise.
 */
export class GenuineModel implements SceneModel {
  readonly kind: ModelKind = 'genuine';
  readonly params: Record<string, number | string | boolean>;
  readonly jpegQuality: number;
  private readonly camera: Webcam;
  private readonly cam: WebcamParams;
  private readonly lightGain: number;
  private readonly wallRatio: number;
  private readonly light: [number, number, number];
  private readonly idle: Rgb;
  private readonly seed: number;
  private readonly sway: { yaw: Wobble; pitch: Wobble; roll: Wobble; x: Wobble; y: Wobble };
  private readonly blinkRng: Rng;
  private blinks: BlinkSchedule | null = null;
  private readonly spontaneous: boolean;
  private readonly promptedBlinkMs: [number, number];
  private readonly map: WarpMap;
  private readonly scene: Float32Array;
  private readonly dst: Float32Array;
  private readonly zr: Float32Array;
  private readonly order: { t: number; z: number }[] = [];

  constructor(
    readonly face: FaceModel,
    options: GenuineOptions,
  ) {
    const rng = new Rng(options.seed);
    this.seed = options.seed;
    this.cam = drawWebcamParams(rng.fork(), options.camera);
    this.camera = new Webcam(rng.fork(), this.cam);
    this.jpegQuality = this.cam.jpegQuality;
    const k = rng.range(0.1, 0.25);
    this.lightGain = options.lightGain ?? k;
    this.wallRatio = options.wallRatio ?? 1 / 15;
    this.light = drawLightDirection(rng);
    this.idle = options.idleScreen ?? IDLE_SCREEN;
    const s = rng.fork();
    this.sway = {
      yaw: new Wobble(s, s.range(1, 2.5), 0.1, 0.6),
      pitch: new Wobble(s, s.range(0.5, 1.5), 0.1, 0.6),
      roll: new Wobble(s, s.range(0.3, 1), 0.1, 0.5),
      x: new Wobble(s, s.range(1, 2), 0.1, 0.8),
      y: new Wobble(s, s.range(0.5, 1.5), 0.1, 0.8),
    };
    this.blinkRng = rng.fork();
    this.spontaneous = options.spontaneousBlinks ?? true;
    this.promptedBlinkMs = options.promptedBlinkMs ?? [120, 300];
    const { width: W, height: H } = face;
    this.map = new WarpMap(W, H);
    this.scene = new Float32Array(W * H * 3);
    this.dst = new Float32Array(face.src.length);
    this.zr = new Float32Array(face.src.length / 2);
    for (let t = 0; t < face.triangleKind.length; t++)
      if (face.triangleKind[t] !== TRIANGLE_STRETCH) this.order.push({ t, z: 0 });
    this.params = {
      lightGain: this.lightGain,
      wallRatio: this.wallRatio,
      lightDirY: this.light[1],
      lagMs: this.cam.lagMs,
      exposureMs: this.cam.exposureMs,
      aeTauMs: this.cam.aeTauMs,
      noiseSigma: this.cam.noiseSigma,
      jpegQuality: this.cam.jpegQuality,
    };
  }

  /** Per-prompt human timing, reproducible from the seed and the prompt's time. */
  private blinkTiming(at: number): { react: number; dur: number } {
    const r = new Rng(hashSeed(this.seed, 0xb1, at));
    return { react: r.range(250, 600), dur: r.range(...this.promptedBlinkMs) };
  }

  private turnShape(at: number): TurnShape {
    const r = new Rng(hashSeed(this.seed, 0x7e, at));
    return {
      react: r.range(400, 900),
      go: r.range(300, 500),
      hold: r.range(200, 600),
      back: r.range(400, 700),
      peak: r.range(20, 35),
    };
  }

  frameAt(t: number, screen: ScreenTimeline, prompts: Prompts): RenderedFrame {
    const tw = t - this.cam.lagMs;
    this.blinks ??= new BlinkSchedule(this.blinkRng, tw);
    let yaw = this.sway.yaw.at(tw);
    if (prompts.turn) yaw += turnAngle(this.turnShape(prompts.turn.at), prompts.turn, tw);
    const pitch = this.sway.pitch.at(tw);
    const roll = this.sway.roll.at(tw);
    let closed = this.spontaneous && this.blinks.closedAt(tw);
    if (prompts.blinkAt !== undefined) {
      const b = this.blinkTiming(prompts.blinkAt);
      const since = tw - prompts.blinkAt - b.react;
      if (since >= 0 && since < b.dur) closed = true;
    }
    const light = screenLight(screen, tw, this.cam.exposureMs, this.idle);
    this.render(yaw, pitch, roll, this.sway.x.at(tw), this.sway.y.at(tw), light);
    const { width, height } = this.face;
    let frame = frameOf(width, height);
    this.camera.capture(this.scene, t, frame.data);
    const landmarks = Float32Array.from(this.dst.subarray(0, 136));
    if (closed) frame = closeEyes(frame, landmarks);
    return {
      ...frame,
      t,
      truth: {
        sceneTime: tw,
        landmarks,
        yaw,
        pitch,
        roll,
        eyesClosed: closed,
        screenLight: light,
        exposureGain: this.camera.exposureGain,
      },
    };
  }

  /**
   * Where the mesh's vertices land for this pose (dst), and their depth after the turn (zr). The head's outline
   * follows pitch, roll and sway but only part of the yaw (none at the ears, some at the neck); see face-model.ts.
   */
  private place(yaw: number, pitch: number, roll: number, tx: number, ty: number): Float64Array {
    const f = this.face;
    const D = f.distance;
    const R = rotation(yaw, pitch, roll);
    const proj = (X: number, Z: number) => (f.scale * X * D) / (D + AXIS_BEHIND_NOSE - Z);
    const n = f.src.length / 2;
    for (let i = 0; i < n; i++) {
      if (i >= f.firstStatic) {
        this.dst[2 * i] = f.src[2 * i];
        this.dst[2 * i + 1] = f.src[2 * i + 1];
        this.zr[i] = -1e9;
        continue;
      }
      const M = i >= f.firstRing ? rotation(yaw * ringTwist(MESH_LAYOUT[3 * i + 1]), pitch, roll) : R;
      const X = f.pos[3 * i],
        Y = f.pos[3 * i + 1],
        Z = f.pos[3 * i + 2];
      const X2 = M[0] * X + M[1] * Y + M[2] * Z;
      const Y2 = M[3] * X + M[4] * Y + M[5] * Z;
      const Z2 = M[6] * X + M[7] * Y + M[8] * Z;
      // Move each point by how its projection changes: at rest the photo is reproduced exactly.
      this.dst[2 * i] = f.src[2 * i] + proj(X2, Z2) - proj(X, Z) + tx;
      this.dst[2 * i + 1] = f.src[2 * i + 1] + proj(Y2, Z2) - proj(Y, Z) + ty;
      this.zr[i] = Z2;
    }
    return R;
  }

  private render(yaw: number, pitch: number, roll: number, tx: number, ty: number, s: [number, number, number]): void {
    const f = this.face;
    const R = this.place(yaw, pitch, roll, tx, ty);
    const map = this.map;
    map.reset();
    const tris = f.triangles;
    for (let t = 0; t < f.triangleKind.length; t++) {
      if (f.triangleKind[t] === TRIANGLE_STRETCH)
        map.drawTriangle(this.dst, f.src, tris[3 * t], tris[3 * t + 1], tris[3 * t + 2], 2);
    }
    // Painter's order: far triangles first; face triangles turned away are culled, the band to the head's outline
    // (the side of the head) never is.
    for (const o of this.order) o.z = this.zr[tris[3 * o.t]] + this.zr[tris[3 * o.t + 1]] + this.zr[tris[3 * o.t + 2]];
    this.order.sort((a, b) => a.z - b.z);
    for (const { t } of this.order) {
      const a = tris[3 * t],
        b = tris[3 * t + 1],
        c = tris[3 * t + 2];
      if (f.triangleKind[t] !== TRIANGLE_HEAD || frontFacing(f.src, this.dst, a, b, c))
        map.drawTriangle(this.dst, f.src, a, b, c, 1);
    }
    shadeRelit(f, map, R, this.light, s, this.lightGain, this.wallRatio, this.scene);
  }
}

/**
 * Scene light = albedo x (ambient + screen): the photo (linear) stands for albedo x ambient, and the screen adds
 * k x screen x max(0, n.l) on the head (normals turned with it) and k x wallRatio x screen on the wall.
 */
function shadeRelit(
  f: FaceModel,
  map: WarpMap,
  R: Float64Array,
  l: readonly number[],
  s: readonly number[],
  k: number,
  wallRatio: number,
  out: Float32Array,
): void {
  const W = f.width,
    H = f.height;
  const lin = f.linear,
    mask = f.mask,
    nrm = f.normals;
  const ks0 = k * s[0],
    ks1 = k * s[1],
    ks2 = k * s[2];
  const b0 = 1 + ks0 * wallRatio,
    b1 = 1 + ks1 * wallRatio,
    b2 = 1 + ks2 * wallRatio;
  // The light direction in the head's own frame: n' . l = n . (R^T l), so normals need not be rotated.
  const lx = R[0] * l[0] + R[3] * l[1] + R[6] * l[2];
  const ly = R[1] * l[0] + R[4] * l[1] + R[7] * l[2];
  const lz = R[2] * l[0] + R[5] * l[1] + R[8] * l[2];
  const n = W * H;
  for (let i = 0, o = 0; i < n; i++, o += 3) {
    if (map.tag[i] === 0 && mask[i] === 0) {
      out[o] = lin[o] * b0;
      out[o + 1] = lin[o + 1] * b1;
      out[o + 2] = lin[o + 2] * b2;
      continue;
    }
    const taps = bilinearTaps(map.u[i], map.v[i], W, H);
    const m = sample(mask, 1, 0, taps);
    let a = wallRatio;
    if (m > 0) {
      const nx = sample(nrm, 3, 0, taps);
      const ny = sample(nrm, 3, 1, taps);
      const nz = sample(nrm, 3, 2, taps);
      const ndl = (nx * lx + ny * ly + nz * lz) / (sqrt(nx * nx + ny * ny + nz * nz) || 1);
      a = m * (ndl > 0 ? ndl : 0) + (1 - m) * wallRatio;
    }
    for (let c = 0; c < 3; c++) {
      const albedo = sample(lin, 3, c, taps);
      out[o + c] = albedo * (1 + (c === 0 ? ks0 : c === 1 ? ks1 : ks2) * a);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Still photo and painted blink: injected images that never answer the light

export interface StillOptions {
  seed: number;
  camera?: Partial<WebcamParams>;
}

/**
 * A still photo: the same frame every time, shifted by up to a pixel, through the webcam model (noise, exposure,
 * white balance) but with no light from the screen at all (what `simulate --still` used to send, made noisy; it now
 * plays this model).
 */
export class StillModel implements SceneModel {
  readonly kind: ModelKind = 'still';
  readonly params: Record<string, number | string | boolean>;
  readonly jpegQuality: number;
  protected readonly seed: number;
  protected readonly cam: WebcamParams;
  private readonly camera: Webcam;
  private readonly scene: Float32Array;

  constructor(
    readonly face: FaceModel,
    options: StillOptions,
  ) {
    const rng = new Rng(options.seed);
    this.seed = options.seed;
    this.cam = drawWebcamParams(rng.fork(), options.camera);
    this.camera = new Webcam(rng.fork(), this.cam);
    this.jpegQuality = this.cam.jpegQuality;
    this.scene = new Float32Array(face.linear.length);
    this.params = { lagMs: this.cam.lagMs, noiseSigma: this.cam.noiseSigma, jpegQuality: this.cam.jpegQuality };
  }

  /** Eyes shut at scene time tw? (never, for a still photo) */
  protected eyesClosed(_tw: number, _prompts: Prompts): boolean {
    return false;
  }

  frameAt(t: number, _screen: ScreenTimeline, prompts: Prompts): RenderedFrame {
    const tw = t - this.cam.lagMs;
    const landmarks = jitterPhoto(this.face, this.seed, t, this.scene);
    let frame = frameOf(this.face.width, this.face.height);
    this.camera.capture(this.scene, t, frame.data);
    const closed = this.eyesClosed(tw, prompts);
    if (closed) frame = closeEyes(frame, landmarks);
    return {
      ...frame,
      t,
      truth: {
        sceneTime: tw,
        landmarks,
        yaw: 0,
        pitch: 0,
        roll: 0,
        eyesClosed: closed,
        screenLight: [0, 0, 0],
        exposureGain: this.camera.exposureGain,
      },
    };
  }
}

/** The still photo with the eyes painted shut for 250 ms, about 300 ms after each blink prompt (simulate's old blink). */
export class PaintedBlinkModel extends StillModel {
  override readonly kind: ModelKind = 'painted_blink';

  protected override eyesClosed(tw: number, prompts: Prompts): boolean {
    if (prompts.blinkAt === undefined) return false;
    const delay = new Rng(hashSeed(this.seed, 0xb1, prompts.blinkAt)).range(250, 350);
    const since = tw - prompts.blinkAt - delay;
    return since >= 0 && since < 250;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Replay: a recorded genuine session, played back deaf to this session's challenges

/** The recording answered a light challenge of the service's own palette. */
const PALETTE: readonly Rgb[] = LIGHT_PALETTE;

/** The world of a recorded session: its own light sequence, blink prompt and turn challenge, drawn from a seed. */
export interface Recording {
  screen: ScreenTimeline;
  prompts: Prompts;
  lengthMs: number;
}

export function drawRecording(seed: number, lengthMs = 12_000): Recording {
  const r = new Rng(hashSeed(seed, 0x4ec));
  const colours: { rgb: Rgb; ms: number }[] = [];
  let prev = -1;
  for (let i = 0; i < 4; i++) {
    let k = r.int(0, PALETTE.length - 1);
    if (k >= prev && prev >= 0) k++;
    colours.push({ rgb: PALETTE[k], ms: r.range(250, 450) });
    prev = k;
  }
  return {
    screen: colourSequence(r.range(1000, 2500), colours),
    prompts: {
      blinkAt: r.range(3500, 5000),
      turn: { at: r.range(5500, 7000), direction: r.next() < 0.5 ? 'left' : 'right' },
    },
    lengthMs,
  };
}

/** Frames of one recorded genuine session, by recording time (restarted, identically, when it loops). */
class RecordingPlayer {
  private model: GenuineModel | null = null;
  private lastRecT = Infinity;
  readonly recording: Recording;

  constructor(
    private readonly face: FaceModel,
    private readonly seed: number,
    lengthMs?: number,
  ) {
    this.recording = drawRecording(seed, lengthMs);
  }

  frameAt(recT: number): RenderedFrame {
    if (recT < this.lastRecT || !this.model) this.model = new GenuineModel(this.face, { seed: this.seed });
    this.lastRecT = recT;
    return this.model.frameAt(recT, this.recording.screen, this.recording.prompts);
  }
}

export interface ReplayOptions {
  seed: number;
  /** Length of the recording before it loops, ms. Default 12,000. */
  lengthMs?: number;
}

/**
 * A recording of a genuine session (same person, same desk, its own light sequence, blink and turn) injected at
 * its own pace: the frames are what that session's webcam produced, untouched by this session's screen or prompts.
 */
export class ReplayModel implements SceneModel {
  readonly kind: ModelKind = 'replay';
  readonly params: Record<string, number | string | boolean>;
  readonly jpegQuality: number;
  private readonly player: RecordingPlayer;
  private readonly offset: number;
  private start: number | null = null;

  constructor(face: FaceModel, options: ReplayOptions) {
    const rng = new Rng(options.seed);
    this.player = new RecordingPlayer(face, hashSeed(options.seed, 0x5ec), options.lengthMs);
    this.offset = rng.range(0, 2000);
    this.jpegQuality = rng.int(70, 91);
    this.params = { offsetMs: this.offset, lengthMs: this.player.recording.lengthMs, jpegQuality: this.jpegQuality };
  }

  frameAt(t: number): RenderedFrame {
    this.start ??= t;
    const recT = (t - this.start + this.offset) % this.player.recording.lengthMs;
    return { ...this.player.frameAt(recT), t };
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Paper: a printed photo held up, flat or turned and bent for the turn challenge

export interface PaperOptions {
  seed: number;
  /** Turn the paper when the turn challenge comes (warped_photo). */
  turn?: boolean;
  /** Bend the paper round a vertical axis: radius in mm (0 = flat). Default 0. */
  bendRadiusMm?: number;
  lightGain?: number;
  camera?: Partial<WebcamParams>;
  idleScreen?: Rgb;
}

const GRID_X = 13;
const GRID_Y = 10;

/**
 * A printed photo filling the camera's view, held in a hand: matte paper, lit by the room (the photo's own light)
 * plus the screen, evenly (one normal for the whole sheet, so face and surround answer alike). The warped variant
 * turns the sheet in 3D (a true homography, drawn on a fine grid) by 20-35 degrees at the turn challenge, optionally
 * bent into a cylinder; where the turned sheet no longer covers the view, a dim room shows.
 */
export class PaperModel implements SceneModel {
  readonly kind: ModelKind;
  readonly params: Record<string, number | string | boolean>;
  readonly jpegQuality: number;
  private readonly cam: WebcamParams;
  private readonly camera: Webcam;
  private readonly seed: number;
  private readonly lightGain: number;
  private readonly light: [number, number, number];
  private readonly idle: Rgb;
  private readonly albedo: Float32Array;
  private readonly scene: Float32Array;
  private readonly map: WarpMap;
  private readonly src: Float32Array;
  private readonly pos: Float32Array;
  private readonly dst: Float32Array;
  private readonly ndl: Float32Array;
  private readonly tris: Uint16Array;
  private readonly normals: Float32Array;
  private readonly lmPos: Float32Array;
  private readonly hand: { yaw: Wobble; pitch: Wobble; roll: Wobble; x: Wobble; y: Wobble };
  private readonly turnOnPrompt: boolean;
  private readonly distance: number;
  private readonly centre: [number, number];

  constructor(
    readonly face: FaceModel,
    options: PaperOptions,
  ) {
    const rng = new Rng(options.seed);
    this.seed = options.seed;
    this.turnOnPrompt = options.turn ?? false;
    this.kind = this.turnOnPrompt ? 'warped_photo' : 'print';
    this.cam = drawWebcamParams(rng.fork(), options.camera);
    this.camera = new Webcam(rng.fork(), this.cam);
    this.jpegQuality = this.cam.jpegQuality;
    const k = rng.range(0.1, 0.25);
    this.lightGain = options.lightGain ?? k;
    this.light = drawLightDirection(rng);
    this.idle = options.idleScreen ?? IDLE_SCREEN;
    const h = rng.fork();
    this.hand = {
      yaw: new Wobble(h, h.range(1, 4), 0.1, 0.7),
      pitch: new Wobble(h, h.range(1, 4), 0.1, 0.7),
      roll: new Wobble(h, h.range(0.3, 1), 0.1, 0.5),
      x: new Wobble(h, h.range(1, 2.5), 0.1, 1),
      y: new Wobble(h, h.range(1, 2.5), 0.1, 1),
    };
    const { width: W, height: H } = face;
    // Print: paper white ~0.85 of the light, ink black ~0.03, slightly less saturated than the photo.
    this.albedo = new Float32Array(face.linear.length);
    for (let i = 0; i < this.albedo.length; i += 3) {
      const y = 0.2126 * face.linear[i] + 0.7152 * face.linear[i + 1] + 0.0722 * face.linear[i + 2];
      for (let c = 0; c < 3; c++) this.albedo[i + c] = 0.03 + 0.82 * (0.9 * face.linear[i + c] + 0.1 * y);
    }
    this.scene = new Float32Array(face.linear.length);
    this.map = new WarpMap(W, H);
    // The sheet as a grid a little larger than the view (its edges are outside the frame at rest).
    this.centre = [face.centre[0], face.centre[1]];
    this.distance = face.focal / face.scale;
    const bend = options.bendRadiusMm ?? 0;
    const n = GRID_X * GRID_Y;
    this.src = new Float32Array(2 * n);
    this.pos = new Float32Array(3 * n);
    this.normals = new Float32Array(3 * n);
    const depthOf = (X: number) => (bend > 0 ? Math.sqrt(Math.max(0, bend * bend - X * X)) - bend : 0);
    const normalOf = (X: number, out: Float32Array, o: number) => {
      if (bend > 0) {
        const s = Math.max(-1, Math.min(1, X / bend));
        out[o] = s;
        out[o + 1] = 0;
        out[o + 2] = Math.sqrt(1 - s * s);
      } else {
        out[o] = 0;
        out[o + 1] = 0;
        out[o + 2] = 1;
      }
    };
    for (let j = 0; j < GRID_Y; j++) {
      for (let i = 0; i < GRID_X; i++) {
        const v = j * GRID_X + i;
        const x = -0.08 * W + (1.16 * W * i) / (GRID_X - 1);
        const y = -0.08 * H + (1.16 * H * j) / (GRID_Y - 1);
        this.src[2 * v] = x;
        this.src[2 * v + 1] = y;
        const X = (x - this.centre[0]) / face.scale;
        this.pos[3 * v] = X;
        this.pos[3 * v + 1] = (y - this.centre[1]) / face.scale;
        this.pos[3 * v + 2] = depthOf(X);
        normalOf(X, this.normals, 3 * v);
      }
    }
    const tris: number[] = [];
    for (let j = 0; j + 1 < GRID_Y; j++) {
      for (let i = 0; i + 1 < GRID_X; i++) {
        const v = j * GRID_X + i;
        tris.push(v, v + 1, v + GRID_X, v + 1, v + GRID_X + 1, v + GRID_X);
      }
    }
    this.tris = Uint16Array.from(tris);
    this.dst = new Float32Array(2 * n);
    this.ndl = new Float32Array(n);
    this.lmPos = new Float32Array(3 * 68);
    for (let i = 0; i < 68; i++) {
      const X = (face.landmarks[2 * i] - this.centre[0]) / face.scale;
      this.lmPos[3 * i] = X;
      this.lmPos[3 * i + 1] = (face.landmarks[2 * i + 1] - this.centre[1]) / face.scale;
      this.lmPos[3 * i + 2] = depthOf(X);
    }
    this.params = {
      lightGain: this.lightGain,
      lightDirY: this.light[1],
      bendRadiusMm: bend,
      lagMs: this.cam.lagMs,
      aeTauMs: this.cam.aeTauMs,
      noiseSigma: this.cam.noiseSigma,
      jpegQuality: this.cam.jpegQuality,
    };
  }

  private turnShape(at: number): TurnShape {
    const r = new Rng(hashSeed(this.seed, 0x7e, at));
    // An attacker turning a sheet: slower to react than a person, similar angles.
    return {
      react: r.range(500, 1200),
      go: r.range(400, 700),
      hold: r.range(300, 700),
      back: r.range(400, 800),
      peak: r.range(20, 35),
    };
  }

  frameAt(t: number, screen: ScreenTimeline, prompts: Prompts): RenderedFrame {
    const tw = t - this.cam.lagMs;
    let yaw = this.hand.yaw.at(tw);
    if (this.turnOnPrompt && prompts.turn) yaw += turnAngle(this.turnShape(prompts.turn.at), prompts.turn, tw);
    const pitch = this.hand.pitch.at(tw);
    const roll = this.hand.roll.at(tw);
    const R = rotation(yaw, pitch, roll);
    const tx = this.hand.x.at(tw),
      ty = this.hand.y.at(tw);
    const s = screenLight(screen, tw, this.cam.exposureMs, this.idle);
    const f = this.face;
    const D = this.distance;
    const [cx, cy] = this.centre;
    const project = (pos: Float32Array, i: number, out: Float32Array, o: number, rest: boolean) => {
      const X = pos[3 * i],
        Y = pos[3 * i + 1],
        Z = pos[3 * i + 2];
      const X2 = rest ? X : R[0] * X + R[1] * Y + R[2] * Z;
      const Y2 = rest ? Y : R[3] * X + R[4] * Y + R[5] * Z;
      const Z2 = rest ? Z : R[6] * X + R[7] * Y + R[8] * Z;
      const g = (f.scale * D) / (D - Z2);
      out[o] = cx + X2 * g + (rest ? 0 : tx);
      out[o + 1] = cy + Y2 * g + (rest ? 0 : ty);
    };
    // Each point moves by how its projection changes (the sheet at rest shows the photo exactly).
    const a = new Float32Array(2),
      b = new Float32Array(2);
    const n = this.src.length / 2;
    for (let i = 0; i < n; i++) {
      project(this.pos, i, a, 0, true);
      project(this.pos, i, b, 0, false);
      this.dst[2 * i] = this.src[2 * i] + b[0] - a[0];
      this.dst[2 * i + 1] = this.src[2 * i + 1] + b[1] - a[1];
      const nx = this.normals[3 * i],
        ny = this.normals[3 * i + 1],
        nz = this.normals[3 * i + 2];
      const d =
        (R[0] * nx + R[1] * ny + R[2] * nz) * this.light[0] +
        (R[3] * nx + R[4] * ny + R[5] * nz) * this.light[1] +
        (R[6] * nx + R[7] * ny + R[8] * nz) * this.light[2];
      this.ndl[i] = d > 0 ? d : 0;
    }
    const landmarks = new Float32Array(136);
    for (let i = 0; i < 68; i++) {
      project(this.lmPos, i, a, 0, true);
      project(this.lmPos, i, b, 0, false);
      landmarks[2 * i] = f.landmarks[2 * i] + b[0] - a[0];
      landmarks[2 * i + 1] = f.landmarks[2 * i + 1] + b[1] - a[1];
    }
    const map = this.map;
    map.reset(-1);
    for (let k = 0; k < this.tris.length; k += 3)
      map.drawTriangle(this.dst, this.src, this.tris[k], this.tris[k + 1], this.tris[k + 2], 1, this.ndl);
    this.shade(s);
    const frame = frameOf(f.width, f.height);
    this.camera.capture(this.scene, t, frame.data);
    return {
      ...frame,
      t,
      truth: {
        sceneTime: tw,
        landmarks,
        yaw,
        pitch,
        roll,
        eyesClosed: false,
        screenLight: s,
        exposureGain: this.camera.exposureGain,
      },
    };
  }

  private shade(s: readonly number[]): void {
    const { width: W, height: H } = this.face;
    const k = this.lightGain;
    const map = this.map;
    const alb = this.albedo;
    const out = this.scene;
    // The room behind the sheet: dim, lit by the screen as a wall is.
    const room = 0.04;
    for (let i = 0, o = 0; i < W * H; i++, o += 3) {
      if (map.tag[i] === 0) {
        for (let c = 0; c < 3; c++) out[o + c] = room * (1 + (k / 15) * s[c]);
        continue;
      }
      const taps = bilinearTaps(map.u[i], map.v[i], W, H);
      const ndl = map.w[i];
      for (let c = 0; c < 3; c++) {
        const albedo = sample(alb, 3, c, taps);
        out[o + c] = albedo * (1 + k * s[c] * ndl);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Screen: a phone or tablet held up, showing the photo or a recording

export interface ScreenOptions {
  seed: number;
  /** What the device shows: the still photo (default) or a recorded genuine session (looping). */
  source?: 'photo' | 'recording';
  /** Share of the desk screen's light the device's glass reflects, evenly. Default 0.01. */
  reflection?: number;
  /** Moire contrast (0 = none). Default 0.03. */
  moire?: number;
  camera?: Partial<WebcamParams>;
  idleScreen?: Rgb;
}

/**
 * A phone or tablet screen filling the view: it emits its own light (the photo through the device's gamma and
 * white point, at its own brightness), the desk screen's light only reflects off its glass (~1%, evenly), a faint
 * moire from the pixel grid, held in a hand (shifts of 1-2 px). Then the webcam model.
 */
export class ScreenModel implements SceneModel {
  readonly kind: ModelKind = 'screen';
  readonly params: Record<string, number | string | boolean>;
  readonly jpegQuality: number;
  private readonly cam: WebcamParams;
  private readonly camera: Webcam;
  private readonly idle: Rgb;
  private readonly reflection: number;
  /** Device transfer: 8-bit content level -> emitted linear light, per channel. */
  private readonly lut: Float32Array;
  private readonly moire: Float32Array | null;
  private readonly content: Float32Array;
  private readonly scene: Float32Array;
  private readonly hand: { x: Wobble; y: Wobble };
  private readonly player: RecordingPlayer | null;
  private start: number | null = null;

  constructor(
    readonly face: FaceModel,
    options: ScreenOptions,
  ) {
    const rng = new Rng(options.seed);
    this.cam = drawWebcamParams(rng.fork(), options.camera);
    this.camera = new Webcam(rng.fork(), this.cam);
    this.jpegQuality = this.cam.jpegQuality;
    this.idle = options.idleScreen ?? IDLE_SCREEN;
    this.reflection = options.reflection ?? 0.01;
    const gamma = rng.range(1.0, 1.15);
    const brightness = rng.range(0.8, 1.15);
    const white = [rng.range(0.93, 1), 1, rng.range(1.02, 1.1)];
    this.lut = new Float32Array(256 * 3);
    for (let v = 0; v < 256; v++) {
      for (let c = 0; c < 3; c++) this.lut[3 * v + c] = brightness * white[c] * Math.pow(SRGB_TO_LINEAR[v], gamma);
    }
    const { width: W, height: H } = face;
    const m = options.moire ?? 0.03;
    if (m > 0) {
      const fx = rng.range(0.12, 0.3),
        fy = rng.range(0.05, 0.2),
        ph = rng.range(0, 2 * Math.PI);
      this.moire = new Float32Array(W * H);
      for (let y = 0; y < H; y++)
        for (let x = 0; x < W; x++) this.moire[y * W + x] = 1 + m * Math.sin(2 * Math.PI * (fx * x + fy * y) + ph);
    } else {
      this.moire = null;
    }
    const h = rng.fork();
    this.hand = { x: new Wobble(h, h.range(1, 2), 0.1, 1), y: new Wobble(h, h.range(0.5, 1.5), 0.1, 1) };
    this.content = new Float32Array(W * H * 3);
    this.scene = new Float32Array(W * H * 3);
    this.player = options.source === 'recording' ? new RecordingPlayer(face, hashSeed(options.seed, 0x5ec)) : null;
    this.params = {
      source: options.source ?? 'photo',
      gamma,
      brightness,
      reflection: this.reflection,
      moire: m,
      lagMs: this.cam.lagMs,
      noiseSigma: this.cam.noiseSigma,
      jpegQuality: this.cam.jpegQuality,
    };
  }

  frameAt(t: number, screen: ScreenTimeline, _prompts: Prompts): RenderedFrame {
    const tw = t - this.cam.lagMs;
    this.start ??= tw;
    const f = this.face;
    const { width: W, height: H } = f;
    let shown: RgbFrame = f.frame;
    let landmarks: Float32Array | null = f.landmarks;
    let closed = false;
    if (this.player) {
      const rec = this.player.frameAt(tw - this.start);
      shown = rec;
      landmarks = rec.truth.landmarks;
      closed = rec.truth.eyesClosed;
    }
    const lut = this.lut;
    for (let i = 0; i < W * H * 3; i += 3) {
      const d = shown.data;
      this.content[i] = lut[3 * d[i]];
      this.content[i + 1] = lut[3 * d[i + 1] + 1];
      this.content[i + 2] = lut[3 * d[i + 2] + 2];
    }
    const dx = this.hand.x.at(tw),
      dy = this.hand.y.at(tw);
    warpAffine(this.content, W, H, [1, 0, -dx, 0, 1, -dy], this.scene);
    const s = screenLight(screen, tw, this.cam.exposureMs, this.idle);
    const r0 = this.reflection * s[0],
      r1 = this.reflection * s[1],
      r2 = this.reflection * s[2];
    for (let i = 0, o = 0; i < W * H; i++, o += 3) {
      const m = this.moire ? this.moire[i] : 1;
      this.scene[o] = this.scene[o] * m + r0;
      this.scene[o + 1] = this.scene[o + 1] * m + r1;
      this.scene[o + 2] = this.scene[o + 2] * m + r2;
    }
    const frame = frameOf(W, H);
    this.camera.capture(this.scene, t, frame.data);
    return {
      ...frame,
      t,
      truth: {
        sceneTime: tw,
        landmarks: landmarks ? shiftLandmarks(landmarks, dx, dy) : null,
        yaw: 0,
        pitch: 0,
        roll: 0,
        eyesClosed: closed,
        screenLight: s,
        exposureGain: this.camera.exposureGain,
      },
    };
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Tint injector: a virtual camera that colours the whole frame on cue

export interface TintOptions {
  seed: number;
  /** What is under the tint: the still photo (default) or a live-ish puppet (blinks and turns when asked, but its
   * face does not answer the light). */
  base?: 'still' | 'liveish';
  /** 'multiply' (default): every pixel times (1 + k x colour), like light would; 'blend': mix towards the colour. */
  mode?: 'multiply' | 'blend';
  /** Tint strength: k for multiply (default 0.10-0.25), alpha for blend (default 0.05-0.15). */
  strength?: number;
  idleScreen?: Rgb;
}

/**
 * A virtual camera that sees the challenge: it tints the WHOLE frame with the colour being shown, on time (a delay of
 * 0-30 ms), over a still photo or a live-ish puppet, and adds a little noise to look like a sensor. No exposure or
 * white-balance model: it is not a camera.
 */
export class TintInjectorModel implements SceneModel {
  readonly kind: ModelKind = 'tint_injector';
  readonly params: Record<string, number | string | boolean>;
  readonly jpegQuality: number;
  private readonly seed: number;
  private readonly delay: number;
  private readonly strength: number;
  private readonly mode: 'multiply' | 'blend';
  private readonly idle: Rgb;
  private readonly noiseSigma: number;
  private readonly rng: Rng;
  private readonly puppet: GenuineModel | null;
  private readonly base: Float32Array;
  private readonly scene: Float32Array;

  constructor(
    readonly face: FaceModel,
    options: TintOptions,
  ) {
    const rng = new Rng(options.seed);
    this.seed = options.seed;
    this.mode = options.mode ?? 'multiply';
    this.strength = options.strength ?? (this.mode === 'multiply' ? rng.range(0.1, 0.25) : rng.range(0.05, 0.15));
    this.delay = rng.range(0, 30);
    this.jpegQuality = rng.int(70, 91);
    this.idle = options.idleScreen ?? IDLE_SCREEN;
    this.noiseSigma = rng.range(1, 2);
    this.rng = rng.fork();
    this.puppet =
      options.base === 'liveish' ? new GenuineModel(face, { seed: hashSeed(options.seed, 0x9e), lightGain: 0 }) : null;
    this.base = new Float32Array(face.linear.length);
    this.scene = new Float32Array(face.linear.length);
    this.params = {
      base: options.base ?? 'still',
      mode: this.mode,
      strength: this.strength,
      delayMs: this.delay,
      jpegQuality: this.jpegQuality,
    };
  }

  frameAt(t: number, screen: ScreenTimeline, prompts: Prompts): RenderedFrame {
    const f = this.face;
    const { width: W, height: H } = f;
    let truth: FrameTruth;
    if (this.puppet) {
      const p = this.puppet.frameAt(t, idleScreen, prompts);
      for (let i = 0; i < this.base.length; i++) this.base[i] = SRGB_TO_LINEAR[p.data[i]];
      truth = { ...p.truth, exposureGain: null };
    } else {
      truth = {
        sceneTime: t,
        landmarks: jitterPhoto(f, this.seed, t, this.base),
        yaw: 0,
        pitch: 0,
        roll: 0,
        eyesClosed: false,
        screenLight: [0, 0, 0],
        exposureGain: null,
      };
    }
    const s = colourToLinear(screen(t - this.delay) ?? this.idle);
    const k = this.strength;
    if (this.mode === 'multiply') {
      const g0 = 1 + k * s[0],
        g1 = 1 + k * s[1],
        g2 = 1 + k * s[2];
      for (let i = 0; i < this.base.length; i += 3) {
        this.scene[i] = this.base[i] * g0;
        this.scene[i + 1] = this.base[i + 1] * g1;
        this.scene[i + 2] = this.base[i + 2] * g2;
      }
    } else {
      for (let i = 0; i < this.base.length; i += 3) {
        for (let c = 0; c < 3; c++) this.scene[i + c] = (1 - k) * this.base[i + c] + k * s[c];
      }
    }
    const frame = frameOf(W, H);
    addNoiseAndEncode(this.scene, [1, 1, 1], this.noiseSigma, this.rng, frame.data);
    return { ...frame, t, truth: { ...truth, screenLight: s } };
  }
}

// ---------------------------------------------------------------------------------------------------------------

export interface ModelOptions {
  seed: number;
  /** Options passed to the model's constructor (see each model's options type). */
  [key: string]: unknown;
}

/**
 * One session's model of the given kind, with default options: warped_photo is flat unless bendRadiusMm is given;
 * screen shows the photo unless source is 'recording'; tint_injector tints a still photo unless base is 'liveish'.
 */
export function createModel(kind: ModelKind, face: FaceModel, options: ModelOptions): SceneModel {
  switch (kind) {
    case 'genuine':
      return new GenuineModel(face, options as GenuineOptions);
    case 'still':
      return new StillModel(face, options as StillOptions);
    case 'painted_blink':
      return new PaintedBlinkModel(face, options as StillOptions);
    case 'replay':
      return new ReplayModel(face, options as ReplayOptions);
    case 'print':
      return new PaperModel(face, { ...(options as PaperOptions), turn: false });
    case 'screen':
      return new ScreenModel(face, options as ScreenOptions);
    case 'warped_photo':
      return new PaperModel(face, { ...(options as PaperOptions), turn: true });
    case 'tint_injector':
      return new TintInjectorModel(face, options as TintOptions);
  }
}

/**
 * Desk-like probes from a labelled photo: the face reframed into a 320x240 webcam frame (the desk client's size) and
 * degraded under one named condition, to see which conditions of a real desk cost accuracy. Seeded: the same photo,
 * face box, condition and seed always give the same JPEG bytes (sharp's resize and encoder are deterministic for one
 * build; everything else is plain JS on typed arrays).
 *
 * Privacy: photos and frames stay in memory. Every buffer made here is zeroed once used (the caller owns the photo
 * and the JPEG it gets back, which the engine zeroes). sharp's operation cache is switched off, so libvips keeps no
 * decoded copy between calls (its freed memory is not zeroed: a limit of using sharp at all, as the scene models do).
 */
import type { RgbFrame } from '../cli/synthetic';
import type { Box } from '../engine/types';
import { hashSeed, Rng } from '../liveness/pad/random';
import { encodeLevel, SRGB_TO_LINEAR } from '../liveness/pad/raster';
import { encodeJpeg } from '../liveness/pad/render';

export const CONDITIONS = ['clean', 'small', 'dark', 'backlight', 'noise', 'blur', 'jpeg', 'turn', 'webcam'] as const;
export type ConditionName = (typeof CONDITIONS)[number];

export const FRAME_WIDTH = 320;
export const FRAME_HEIGHT = 240;

/**
 * What a condition does, applied in this order: geometry (scale, then the turn's warp), blur (optics), light (in
 * linear light: exposure or the backlight's masks, then the flare's veil), the tone curve (gamma), sensor noise, JPEG.
 * Ranges [lo, hi) are drawn per photo from the seed.
 */
export interface ConditionSpec {
  /** Width in the frame of the detector's box found on the original photo, px. */
  faceWidth: readonly [number, number];
  /** Off-axis turn, degrees (either way, from the seed); null = frontal. */
  yawDeg: readonly [number, number] | null;
  /** Gaussian sigma (defocus) then a horizontal box of `motion` px (camera or head shake); null = none. */
  blur: { sigma: number; motion: number } | null;
  /** Gain on linear light (0.2 = 2.3 stops down). */
  exposure: number;
  /** Backlight: gain on the head and shoulders and on the rest (a window behind), plus a flare veil (linear). */
  backlight: { subject: number; background: number; veil: number } | null;
  /** Applied to sRGB levels (0-1) after the light: > 1 crushes the shadows, as a cheap sensor's tone curve does. */
  gamma: number;
  /** Gaussian sensor noise, sigma in sRGB levels, independent per pixel and channel. */
  noiseSigma: number;
  jpegQuality: number;
}

const BASE: ConditionSpec = {
  faceWidth: [120, 120],
  yawDeg: null,
  blur: null,
  exposure: 1,
  backlight: null,
  gamma: 1,
  noiseSigma: 0,
  jpegQuality: 95,
};

/**
 * The conditions. `clean` is the control: the face 120 px wide (a patient about 40 cm from a 320x240 webcam), JPEG
 * quality 95; every other condition changes one thing from it, except `webcam`, the realistic combination.
 */
export const CONDITION_SPECS: Readonly<Record<ConditionName, ConditionSpec>> = {
  clean: BASE,
  small: { ...BASE, faceWidth: [60, 70] },
  dark: { ...BASE, exposure: 0.2, gamma: 1.25 },
  backlight: { ...BASE, backlight: { subject: 0.25, background: 3, veil: 0.02 } },
  noise: { ...BASE, noiseSigma: 10 },
  blur: { ...BASE, blur: { sigma: 1.5, motion: 5 } },
  jpeg: { ...BASE, jpegQuality: 45 },
  turn: { ...BASE, yawDeg: [20, 25] },
  webcam: { ...BASE, faceWidth: [60, 70], exposure: 0.35, gamma: 1.1, noiseSigma: 8, jpegQuality: 45 },
};

/** One line per condition, for --help and the README. */
export const CONDITION_HELP: Readonly<Record<ConditionName, string>> = {
  clean: 'face box 120 px wide, centred; JPEG 95 (the control)',
  small: 'face box 60-70 px wide (seeded)',
  dark: 'exposure x0.2 in linear light (-2.3 stops), then gamma 1.25',
  backlight: 'head and shoulders x0.25, the rest x3 (clipped), flare veil +0.02 (linear light)',
  noise: 'Gaussian sensor noise, sigma 10 levels per pixel and channel (seeded)',
  blur: 'Gaussian sigma 1.5 px (defocus), then a 5 px horizontal box (motion)',
  jpeg: 'JPEG quality 45',
  turn: 'a perspective warp: the face plane turned 20-25 deg (seeded side), seen from 3.5 face widths',
  webcam: 'face 60-70 px, exposure x0.35 and gamma 1.1, noise sigma 8, JPEG 45',
};

/** Parses `all` or a comma list of condition names; throws on an unknown name. Order as given, duplicates dropped. */
export function parseConditions(text: string): ConditionName[] {
  const names = text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (names.length === 1 && names[0] === 'all') return [...CONDITIONS];
  if (names.length === 0) throw new Error('No condition named.');
  for (const n of names) {
    if (!(CONDITIONS as readonly string[]).includes(n)) {
      throw new Error(`Unknown condition "${n}"; known: ${CONDITIONS.join(', ')} (or all).`);
    }
  }
  return [...new Set(names)] as ConditionName[];
}

/** A condition's random draws for one photo and seed. */
export interface ResolvedCondition {
  name: ConditionName;
  spec: ConditionSpec;
  faceWidth: number;
  /** Signed, degrees; 0 = frontal. */
  yawDeg: number;
  /** Seeds the noise. */
  noiseSeed: number;
}

/**
 * Draws a condition's parameters: a function of the seed and the condition's name only, so adding or reordering
 * conditions changes no other condition's frames.
 */
export function resolveCondition(name: ConditionName, seed: number): ResolvedCondition {
  const spec = CONDITION_SPECS[name];
  const rng = new Rng(hashSeed(seed, ...Array.from(name, (ch) => ch.charCodeAt(0))));
  const faceWidth = rng.range(spec.faceWidth[0], spec.faceWidth[1]);
  const yaw = spec.yawDeg ? rng.range(spec.yawDeg[0], spec.yawDeg[1]) : 0;
  const side = rng.next() < 0.5 ? -1 : 1;
  return { name, spec, faceWidth, yawDeg: spec.yawDeg ? yaw * side : 0, noiseSeed: rng.int(0, 2 ** 31) };
}

type Sharp = (typeof import('sharp'))['default'];
let sharpModule: Sharp | null = null;

/** sharp (a devDependency), loaded on first use as the scene models load it, with its operation cache off. */
async function loadSharp(): Promise<Sharp> {
  if (!sharpModule) {
    let sharp: Sharp;
    try {
      sharp = (await import('sharp')).default;
    } catch {
      throw new Error(
        'The desk conditions need the `sharp` package (a devDependency): run `npm install` in the project.',
      );
    }
    sharp.cache(false);
    sharpModule = sharp;
  }
  return sharpModule;
}

/** Decodes a photo (JPEG) to 8-bit RGB, as stored (no EXIF rotation: the engine's decoder applies none either). */
export async function decodePhoto(jpeg: Buffer): Promise<RgbFrame> {
  const sharp = await loadSharp();
  const { data, info } = await sharp(jpeg)
    .removeAlpha()
    .toColourspace('srgb')
    .raw()
    .toBuffer({ resolveWithObject: true });
  if (info.channels !== 3) {
    data.fill(0);
    throw new Error(`Decoded ${info.channels} channels, expected 3.`);
  }
  return { data, width: info.width, height: info.height };
}

/** A crop of the photo around the face, resized so the face box is `faceWidth` px wide. */
interface ScaledCrop extends RgbFrame {
  /** Face box centre in this image, pixel-centre convention (pixel x spans x - 0.5 .. x + 0.5). */
  cx: number;
  cy: number;
}

/** Source pixels beyond the frame's half-size the turn's warp may reach (x 1.35 at 25 degrees), with room to spare. */
const REACH = 1.5;

/**
 * Renders the conditions of one photo. The photo and the face box (the detector's, on that photo) are the caller's;
 * `dispose()` zeroes the resized crops kept between conditions.
 */
export class ConditionRenderer {
  private readonly crops = new Map<number, ScaledCrop>();

  constructor(
    private readonly photo: RgbFrame,
    private readonly face: Box,
    private readonly seed: number,
  ) {
    if (!(face.width > 0 && face.height > 0)) throw new RangeError('The face box must have a positive size.');
    if (photo.data.length !== photo.width * photo.height * 3) throw new RangeError('The photo must be 8-bit RGB.');
  }

  resolve(name: ConditionName): ResolvedCondition {
    return resolveCondition(name, this.seed);
  }

  /** The condition's 320x240 frame as 8-bit RGB, before JPEG. The caller zeroes `data`. */
  async frame(name: ConditionName): Promise<RgbFrame> {
    const c = this.resolve(name);
    const crop = await this.crop(c.faceWidth);
    const lin = frameGeometry(crop, c.yawDeg, 3.5 * c.faceWidth);
    try {
      if (c.spec.blur) blur(lin, c.spec.blur.sigma, c.spec.blur.motion);
      if (c.spec.backlight) backlight(lin, c.faceWidth, c.spec.backlight);
      else if (c.spec.exposure !== 1) for (let i = 0; i < lin.length; i++) lin[i] *= c.spec.exposure;
      return {
        data: encodeFrame(lin, c.spec.gamma, c.spec.noiseSigma, c.noiseSeed),
        width: FRAME_WIDTH,
        height: FRAME_HEIGHT,
      };
    } finally {
      lin.fill(0);
    }
  }

  /** The condition's frame as the desk would send it: a baseline JPEG (4:2:0). The 8-bit frame is zeroed. */
  async jpeg(name: ConditionName): Promise<Buffer> {
    const f = await this.frame(name);
    try {
      return await encodeJpeg(f, CONDITION_SPECS[name].jpegQuality);
    } finally {
      f.data.fill(0);
    }
  }

  /** Zeroes the crops kept for later conditions. */
  dispose(): void {
    for (const c of this.crops.values()) c.data.fill(0);
    this.crops.clear();
  }

  private async crop(faceWidth: number): Promise<ScaledCrop> {
    const kept = this.crops.get(faceWidth);
    if (kept) return kept;
    const { photo, face } = this;
    const s = faceWidth / face.width;
    // The photo's region the frame (and the warp) can sample, plus a few pixels for the resampling kernel.
    const bcx = face.x + face.width / 2;
    const bcy = face.y + face.height / 2;
    const hw = (REACH * FRAME_WIDTH) / 2 / s + 4;
    const hh = (REACH * FRAME_HEIGHT) / 2 / s + 4;
    const left = clampInt(Math.floor(bcx - hw), 0, photo.width - 1);
    const top = clampInt(Math.floor(bcy - hh), 0, photo.height - 1);
    const right = clampInt(Math.ceil(bcx + hw), left + 1, photo.width);
    const bottom = clampInt(Math.ceil(bcy + hh), top + 1, photo.height);
    const cw = right - left;
    const ch = bottom - top;
    const rw = Math.max(1, Math.round(cw * s));
    const rh = Math.max(1, Math.round(ch * s));
    const sharp = await loadSharp();
    const data = await sharp(photo.data, { raw: { width: photo.width, height: photo.height, channels: 3 } })
      .extract({ left, top, width: cw, height: ch })
      .resize(rw, rh, { kernel: 'lanczos3', fit: 'fill' })
      .raw()
      .toBuffer();
    const sx = rw / cw;
    const sy = rh / ch;
    const crop: ScaledCrop = { data, width: rw, height: rh, cx: (bcx - left) * sx - 0.5, cy: (bcy - top) * sy - 0.5 };
    this.crops.set(faceWidth, crop);
    return crop;
  }
}

function clampInt(v: number, lo: number, hi: number): number {
  return v < lo ? lo : v > hi ? hi : v;
}

/**
 * The 320x240 frame in linear light (3 floats a pixel), the face box's centre at the frame's centre. Outside the photo
 * the edge pixels are repeated. Frontal: a whole-pixel shift (no resampling blur). Turned: the face is taken for a
 * plane turned by `yawDeg` about the vertical through its centre, seen by a pinhole camera `distance` px away (focal
 * length = distance, so the centre keeps its scale); each frame pixel is traced back onto that plane and sampled
 * bilinearly (in linear light).
 */
function frameGeometry(crop: ScaledCrop, yawDeg: number, distance: number): Float32Array {
  const W = FRAME_WIDTH;
  const H = FRAME_HEIGHT;
  const out = new Float32Array(W * H * 3);
  const src = crop.data;
  const sw = crop.width;
  const sh = crop.height;
  const fx = (W - 1) / 2;
  const fy = (H - 1) / 2;
  if (yawDeg === 0) {
    const ox = Math.round(crop.cx - fx);
    const oy = Math.round(crop.cy - fy);
    for (let y = 0; y < H; y++) {
      const sy = clampInt(y + oy, 0, sh - 1);
      for (let x = 0; x < W; x++) {
        const s = (sy * sw + clampInt(x + ox, 0, sw - 1)) * 3;
        const d = (y * W + x) * 3;
        out[d] = SRGB_TO_LINEAR[src[s]];
        out[d + 1] = SRGB_TO_LINEAR[src[s + 1]];
        out[d + 2] = SRGB_TO_LINEAR[src[s + 2]];
      }
    }
    return out;
  }
  const t = (yawDeg * Math.PI) / 180;
  const cos = Math.cos(t);
  const sinD = Math.sin(t) / distance;
  for (let y = 0; y < H; y++) {
    const dv = y - fy;
    for (let x = 0; x < W; x++) {
      const du = x - fx;
      // Projection of plane point (X, Y): u = X cos / (1 + X sin / D), v = Y / (1 + X sin / D); inverted here.
      const X = du / (cos - du * sinD);
      const Y = dv * (1 + X * sinD);
      const px = Math.min(sw - 1, Math.max(0, crop.cx + X));
      const py = Math.min(sh - 1, Math.max(0, crop.cy + Y));
      const x0 = Math.floor(px);
      const y0 = Math.floor(py);
      const x1 = Math.min(sw - 1, x0 + 1);
      const y1 = Math.min(sh - 1, y0 + 1);
      const ax = px - x0;
      const ay = py - y0;
      const d = (y * W + x) * 3;
      for (let c = 0; c < 3; c++) {
        const top =
          SRGB_TO_LINEAR[src[(y0 * sw + x0) * 3 + c]] * (1 - ax) + SRGB_TO_LINEAR[src[(y0 * sw + x1) * 3 + c]] * ax;
        const bot =
          SRGB_TO_LINEAR[src[(y1 * sw + x0) * 3 + c]] * (1 - ax) + SRGB_TO_LINEAR[src[(y1 * sw + x1) * 3 + c]] * ax;
        out[d + c] = top * (1 - ay) + bot * ay;
      }
    }
  }
  return out;
}

/** Separable Gaussian (radius ceil(3 sigma), edges repeated), then a horizontal box `motion` px wide, in place. */
function blur(img: Float32Array, sigma: number, motion: number): void {
  const W = FRAME_WIDTH;
  const H = FRAME_HEIGHT;
  const r = Math.ceil(3 * sigma);
  const k = new Float32Array(2 * r + 1);
  let sum = 0;
  for (let i = -r; i <= r; i++) sum += k[i + r] = Math.exp(-(i * i) / (2 * sigma * sigma));
  for (let i = 0; i < k.length; i++) k[i] /= sum;
  const tmp = new Float32Array(img.length);
  try {
    convolve(img, tmp, W, H, k, r, 1, 0); // along x
    convolve(tmp, img, W, H, k, r, 0, 1); // along y
    if (motion > 1) {
      const box = new Float32Array(motion).fill(1 / motion);
      // An even width has no centre: the box reaches one pixel further left.
      const lo = Math.floor(motion / 2);
      convolve(img, tmp, W, H, box, lo, 1, 0);
      img.set(tmp);
    }
  } finally {
    tmp.fill(0);
  }
}

/** out = in convolved with kernel k (taps -r .. k.length - 1 - r) along (dx, dy), edges repeated. */
function convolve(
  input: Float32Array,
  out: Float32Array,
  W: number,
  H: number,
  k: Float32Array,
  r: number,
  dx: number,
  dy: number,
): void {
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      let a = 0;
      let b = 0;
      let c = 0;
      for (let i = 0; i < k.length; i++) {
        const o = i - r;
        const sx = dx ? clampInt(x + o, 0, W - 1) : x;
        const sy = dy ? clampInt(y + o, 0, H - 1) : y;
        const s = (sy * W + sx) * 3;
        a += input[s] * k[i];
        b += input[s + 1] * k[i];
        c += input[s + 2] * k[i];
      }
      const d = (y * W + x) * 3;
      out[d] = a;
      out[d + 1] = b;
      out[d + 2] = c;
    }
  }
}

/**
 * A window behind the patient: the camera exposes for the bright background, so the head and shoulders fall dark and
 * the rest clips. The subject mask: an ellipse over the head (0.75 face widths across each way, 0.95 up and down,
 * centred 0.1 above the face box's centre) and the shoulders (below 0.75 face widths under the centre, within 1.6 to
 * either side), each feathered over about 0.3 face widths. A veil of flare light lifts everything.
 */
function backlight(lin: Float32Array, faceWidth: number, b: NonNullable<ConditionSpec['backlight']>): void {
  const W = FRAME_WIDTH;
  const H = FRAME_HEIGHT;
  const cx = (W - 1) / 2;
  const cy = (H - 1) / 2;
  const fw = faceWidth;
  const clamp01 = (v: number) => (v < 0 ? 0 : v > 1 ? 1 : v);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const dx = x - cx;
      const dy = y - cy;
      const r = Math.hypot(dx / (0.75 * fw), (dy + 0.1 * fw) / (0.95 * fw));
      const head = clamp01((1.15 - r) / 0.3);
      const shoulders = clamp01((dy - 0.75 * fw) / (0.2 * fw)) * clamp01((1.6 * fw - Math.abs(dx)) / (0.3 * fw));
      const m = Math.max(head, shoulders);
      const gain = b.background + (b.subject - b.background) * m;
      const d = (y * W + x) * 3;
      for (let c = 0; c < 3; c++) lin[d + c] = lin[d + c] * gain + b.veil;
    }
  }
}

/** Linear light -> sRGB levels, gamma, noise (seeded), rounded to 8 bits. */
function encodeFrame(lin: Float32Array, gamma: number, noiseSigma: number, noiseSeed: number): Buffer {
  const out = Buffer.alloc(lin.length);
  const rng = new Rng(noiseSeed);
  for (let i = 0; i < lin.length; i++) {
    let v = encodeLevel(lin[i]);
    if (gamma !== 1) v = 255 * Math.pow(v / 255, gamma);
    if (noiseSigma > 0) v += noiseSigma * rng.gauss();
    out[i] = v <= 0 ? 0 : v >= 255 ? 255 : Math.round(v);
  }
  return out;
}

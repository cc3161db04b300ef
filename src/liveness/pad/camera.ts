import { encodeLevel } from './raster';
import { Rng, Wobble } from './random';

/**
 * A cheap webcam between the scene and the frame: automatic exposure with a lag, white balance that drifts, sensor
 * noise, and (outside, in the models) its latency and exposure time. It turns linear scene light into 8-bit sRGB.
 */

export interface WebcamParams {
  /** Gaussian sensor noise, sRGB levels (sigma). Default 2-4. */
  noiseSigma: number;
  /** Automatic exposure on (default) or a fixed gain of 1 (for diagnostics). */
  autoExposure: boolean;
  /** Time constant of the exposure's answer to a change of scene brightness, ms. Default 300-600. */
  aeTauMs: number;
  /** Limits of the exposure gain. Default 0.8-1.2. */
  aeMin: number;
  aeMax: number;
  /** Slow drift of the exposure target (fraction, peak). Default 0.03. */
  aeDrift: number;
  /** Slow drift of the white balance per channel (fraction, peak). Default 0.05, periods of 5-30 s. */
  wbDrift: number;
  /** Capture latency: the frame stamped t shows the world at t - lagMs. Default 40-150 per session. */
  lagMs: number;
  /** Exposure time: the screen's light is averaged over [t - lag - exposureMs, t - lag]. Default 15-33. */
  exposureMs: number;
  /** JPEG quality the desk would send at. Default 70-90. */
  jpegQuality: number;
}

/** Draws a session's camera parameters; `overrides` win. */
export function drawWebcamParams(rng: Rng, overrides: Partial<WebcamParams> = {}): WebcamParams {
  return {
    noiseSigma: rng.range(2, 4),
    autoExposure: true,
    aeTauMs: rng.range(300, 600),
    aeMin: 0.8,
    aeMax: 1.2,
    aeDrift: 0.03,
    wbDrift: 0.05,
    lagMs: rng.range(40, 150),
    exposureMs: rng.range(15, 33),
    jpegQuality: rng.int(70, 91),
    ...overrides,
  };
}

const NOISE_TABLE = 1 << 18;

let unitNoise: Float32Array | null = null;

/**
 * Standard normal values, one table for the process (fixed seed), read from a random place each frame: Box-Muller
 * per pixel would cost more than the rest of the frame, and a table per session costs more than a session's frames.
 */
function unitNoiseTable(): Float32Array {
  if (!unitNoise) {
    const g = new Rng(0x5eed);
    unitNoise = new Float32Array(NOISE_TABLE);
    for (let i = 0; i < NOISE_TABLE; i++) unitNoise[i] = g.gauss();
  }
  return unitNoise;
}

export class Webcam {
  private gain = 1;
  private reference = 0;
  private lastT: number | null = null;
  private readonly aeWobble: Wobble;
  private readonly wb: Wobble[];
  private readonly rng: Rng;

  constructor(
    rng: Rng,
    readonly params: WebcamParams,
  ) {
    this.rng = rng.fork();
    this.aeWobble = new Wobble(rng.fork(), params.aeDrift, 0.03, 0.15);
    this.wb = [0, 1, 2].map(() => new Wobble(rng.fork(), params.wbDrift, 1 / 30, 1 / 5));
  }

  /** The exposure gain in use (after the last capture). */
  get exposureGain(): number {
    return this.gain;
  }

  /**
   * Linear scene light (3 per pixel, 1.0 = the brightest level at gain 1) at time t (ms, non-decreasing between
   * calls) into 8-bit sRGB `out`. The first capture sets the exposure target: the camera has settled on the scene
   * it was opened on.
   */
  capture(scene: Float32Array, t: number, out: Uint8Array): void {
    const p = this.params;
    if (p.autoExposure) {
      // Metering: mean luminance over a sparse grid (every 7th pixel is plenty for a mean).
      let sum = 0,
        count = 0;
      for (let i = 0; i < scene.length; i += 21) {
        sum += 0.2126 * scene[i] + 0.7152 * scene[i + 1] + 0.0722 * scene[i + 2];
        count++;
      }
      const mean = Math.max(1e-4, sum / count);
      if (this.lastT === null) this.reference = mean;
      const target = Math.min(p.aeMax, Math.max(p.aeMin, (this.reference * (1 + this.aeWobble.at(t))) / mean));
      const dt = this.lastT === null ? Infinity : Math.max(0, t - this.lastT);
      this.gain += (target - this.gain) * (1 - Math.exp(-dt / p.aeTauMs));
    }
    this.lastT = t;
    const g0 = this.gain * (1 + this.wb[0].at(t));
    const g1 = this.gain * (1 + this.wb[1].at(t));
    const g2 = this.gain * (1 + this.wb[2].at(t));
    addNoiseAndEncode(scene, [g0, g1, g2], p.noiseSigma, this.rng, out);
  }
}

/** Per-channel gains, sRGB encoding, Gaussian noise (sigma in levels), rounding and clamping. */
export function addNoiseAndEncode(
  scene: Float32Array,
  gains: readonly [number, number, number],
  sigma: number,
  rng: Rng,
  out: Uint8Array,
): void {
  const [g0, g1, g2] = gains;
  const noise = sigma > 0 ? unitNoiseTable() : null;
  const mask = NOISE_TABLE - 1;
  let k = rng.int(0, NOISE_TABLE);
  for (let i = 0; i < scene.length; i += 3) {
    let r = encodeLevel(scene[i] * g0);
    let g = encodeLevel(scene[i + 1] * g1);
    let b = encodeLevel(scene[i + 2] * g2);
    if (noise) {
      r += sigma * noise[k];
      g += sigma * noise[(k + 1) & mask];
      b += sigma * noise[(k + 2) & mask];
      k = (k + 3) & mask;
    }
    out[i] = r <= 0 ? 0 : r >= 255 ? 255 : (r + 0.5) | 0;
    out[i + 1] = g <= 0 ? 0 : g >= 255 ? 255 : (g + 0.5) | 0;
    out[i + 2] = b <= 0 ? 0 : b >= 255 ? 255 : (b + 0.5) | 0;
  }
}

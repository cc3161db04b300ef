/**
 * Pixel plumbing for the scene models: sRGB <-> linear light look-up tables, a triangle rasteriser for
 * piecewise-affine warps, a weighted blur. Everything works on typed arrays; a 320x240 frame is 76,800 pixels.
 *
 * Coordinates: pixel (x, y) has its centre at (x, y) (OpenCV's convention, as the engine's landmarks).
 */

/** sRGB level 0-255 -> linear light 0-1. */
export const SRGB_TO_LINEAR = (() => {
  const t = new Float32Array(256);
  for (let i = 0; i < 256; i++) {
    const c = i / 255;
    t[i] = c <= 0.04045 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
  }
  return t;
})();

const ENCODE_STEPS = 8192;

/** Linear light 0-1 (index = round(v * 8192)) -> sRGB level as a float 0-255 (noise is added before rounding). */
export const LINEAR_TO_SRGB = (() => {
  const t = new Float32Array(ENCODE_STEPS + 1);
  for (let i = 0; i <= ENCODE_STEPS; i++) {
    const c = i / ENCODE_STEPS;
    t[i] = 255 * (c <= 0.0031308 ? 12.92 * c : 1.055 * Math.pow(c, 1 / 2.4) - 0.055);
  }
  return t;
})();

/** Linear 0-1 (clamped) to a float sRGB level. */
export function encodeLevel(v: number): number {
  const i = v <= 0 ? 0 : v >= 1 ? ENCODE_STEPS : (v * ENCODE_STEPS + 0.5) | 0;
  return LINEAR_TO_SRGB[i];
}

/** sRGB colour (0-255 per channel) to linear 0-1 per channel. */
export function colourToLinear(rgb: readonly [number, number, number]): [number, number, number] {
  const f = (c: number) => SRGB_TO_LINEAR[Math.max(0, Math.min(255, Math.round(c)))];
  return [f(rgb[0]), f(rgb[1]), f(rgb[2])];
}

/** An interleaved RGB 8-bit frame to linear float RGB. */
export function toLinear(data: Uint8Array, out = new Float32Array(data.length)): Float32Array {
  for (let i = 0; i < data.length; i++) out[i] = SRGB_TO_LINEAR[data[i]];
  return out;
}

/**
 * Where each output pixel takes its colour from: source coordinates (u, v), a tag (0 = untouched: u, v are the
 * pixel itself) and one interpolated per-vertex attribute `w`.
 */
export class WarpMap {
  readonly u: Float32Array;
  readonly v: Float32Array;
  readonly w: Float32Array;
  readonly tag: Uint8Array;

  constructor(
    readonly width: number,
    readonly height: number,
  ) {
    const n = width * height;
    this.u = new Float32Array(n);
    this.v = new Float32Array(n);
    this.w = new Float32Array(n);
    this.tag = new Uint8Array(n);
    this.reset();
  }

  /** Identity: every pixel from itself, tag 0, w = `w`. */
  reset(w = 0): void {
    const { width, height } = this;
    for (let y = 0, i = 0; y < height; y++) {
      for (let x = 0; x < width; x++, i++) {
        this.u[i] = x;
        this.v[i] = y;
      }
    }
    this.w.fill(w);
    this.tag.fill(0);
  }

  /**
   * Rasterises triangle k of `tris` (vertex indices) at its `dst` place, mapping back to `src` (both x,y arrays),
   * overwriting what is there (draw far triangles first). `attr` (per vertex) is interpolated into w.
   */
  drawTriangle(
    dst: ArrayLike<number>,
    src: ArrayLike<number>,
    a: number,
    b: number,
    c: number,
    tag: number,
    attr?: ArrayLike<number>,
  ): void {
    const ax = dst[2 * a],
      ay = dst[2 * a + 1];
    const bx = dst[2 * b],
      by = dst[2 * b + 1];
    const cx = dst[2 * c],
      cy = dst[2 * c + 1];
    const area = (bx - ax) * (cy - ay) - (by - ay) * (cx - ax);
    if (Math.abs(area) < 1e-6) return;
    const W = this.width;
    const H = this.height;
    const x0 = Math.max(0, Math.ceil(Math.min(ax, bx, cx) - 0.5));
    const x1 = Math.min(W - 1, Math.floor(Math.max(ax, bx, cx) + 0.5));
    const y0 = Math.max(0, Math.ceil(Math.min(ay, by, cy) - 0.5));
    const y1 = Math.min(H - 1, Math.floor(Math.max(ay, by, cy) + 0.5));
    if (x0 > x1 || y0 > y1) return;
    // Barycentric weights as affine functions of (x, y): l_b = (e_b . (x, y) + f_b) / area, etc.
    const inv = 1 / area;
    const lbx = (cy - ay) * inv,
      lby = -(cx - ax) * inv; // d l_b / dx, d l_b / dy
    const lcx = -(by - ay) * inv,
      lcy = (bx - ax) * inv;
    const su0 = src[2 * a],
      sv0 = src[2 * a + 1];
    const su1 = src[2 * b] - su0,
      sv1 = src[2 * b + 1] - sv0;
    const su2 = src[2 * c] - su0,
      sv2 = src[2 * c + 1] - sv0;
    const w0 = attr ? attr[a] : 0;
    const w1 = attr ? attr[b] - w0 : 0;
    const w2 = attr ? attr[c] - w0 : 0;
    // A small tolerance closes hairline gaps between neighbours (later triangles overwrite anyway).
    const eps = -1e-4;
    const u = this.u,
      v = this.v,
      wBuf = this.w,
      tags = this.tag;
    for (let y = y0; y <= y1; y++) {
      const dy = y - ay;
      let i = y * W + x0;
      for (let x = x0; x <= x1; x++, i++) {
        const dx = x - ax;
        const lb = lbx * dx + lby * dy;
        const lc = lcx * dx + lcy * dy;
        if (lb < eps || lc < eps || lb + lc > 1 - eps) continue;
        u[i] = su0 + su1 * lb + su2 * lc;
        v[i] = sv0 + sv1 * lb + sv2 * lc;
        if (attr) wBuf[i] = w0 + w1 * lb + w2 * lc;
        tags[i] = tag;
      }
    }
  }
}

/** Signed area of triangle (a, b, c) in an x,y array (positive = counter-clockwise in image coordinates, y down). */
export function signedArea(p: ArrayLike<number>, a: number, b: number, c: number): number {
  return (
    0.5 *
    ((p[2 * b] - p[2 * a]) * (p[2 * c + 1] - p[2 * a + 1]) - (p[2 * b + 1] - p[2 * a + 1]) * (p[2 * c] - p[2 * a]))
  );
}

/** Separable box blur of a float image with per-pixel weights (normalised convolution), radius r, in place. */
export function weightedBoxBlur(img: Float32Array, weight: Float32Array, W: number, H: number, r: number): void {
  const num = new Float32Array(W * H);
  const den = new Float32Array(W * H);
  for (let i = 0; i < W * H; i++) {
    num[i] = img[i] * weight[i];
    den[i] = weight[i];
  }
  const line = new Float32Array(Math.max(W, H));
  // One running-sum pass along rows (stride 1) or columns (stride W), edges clamped.
  const pass = (buf: Float32Array, lines: number, len: number, lineStep: number, stride: number) => {
    for (let l = 0; l < lines; l++) {
      const base = l * lineStep;
      let s = 0;
      for (let k = -r; k <= r; k++) s += buf[base + Math.min(len - 1, Math.max(0, k)) * stride];
      for (let k = 0; k < len; k++) {
        line[k] = s;
        s += buf[base + Math.min(len - 1, k + r + 1) * stride] - buf[base + Math.max(0, k - r) * stride];
      }
      for (let k = 0; k < len; k++) buf[base + k * stride] = line[k];
    }
  };
  for (const buf of [num, den]) {
    pass(buf, H, W, W, 1);
    pass(buf, W, H, 1, W);
  }
  for (let i = 0; i < W * H; i++) if (weight[i] > 0) img[i] = den[i] > 1e-6 ? num[i] / den[i] : img[i];
}

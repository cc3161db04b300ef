/**
 * The image operations the face chain needs, in plain TypeScript, with OpenCV's geometry conventions (pixel centres
 * at +0.5, bilinear interpolation, constant black border for warps) so that the onnxruntime peer feeds the networks
 * what the engine feeds them. Float arithmetic instead of OpenCV's fixed point: values may differ by one level.
 */

/** Interleaved 8-bit pixels, row-major, no padding. */
export interface Image {
  data: Uint8Array;
  width: number;
  height: number;
  channels: number;
}

/** An integer rectangle inside an image. */
export interface Rect {
  x: number;
  y: number;
  width: number;
  height: number;
}

export function fullRect(img: Image): Rect {
  return { x: 0, y: 0, width: img.width, height: img.height };
}

/** The rectangle cut to the image (OpenCV's `rect & Rect(0, 0, w, h)`). */
export function clampRect(r: Rect, width: number, height: number): Rect {
  const x1 = Math.max(0, r.x);
  const y1 = Math.max(0, r.y);
  const x2 = Math.min(width, r.x + r.width);
  const y2 = Math.min(height, r.y + r.height);
  return { x: x1, y: y1, width: Math.max(0, x2 - x1), height: Math.max(0, y2 - y1) };
}

/**
 * Grey levels of the region `r` from RGB: 0.299 R + 0.587 G + 0.114 B, as OpenCV's COLOR_BGR2GRAY on the same
 * pixels. The result is the region alone (r.width x r.height).
 */
export function greyFromRgb(img: Image, r: Rect = fullRect(img)): Image {
  if (img.channels !== 3) throw new Error('greyFromRgb expects 3 channels.');
  const out = new Uint8Array(r.width * r.height);
  const d = img.data;
  for (let y = 0; y < r.height; y++) {
    let j = ((r.y + y) * img.width + r.x) * 3;
    let i = y * r.width;
    for (let x = 0; x < r.width; x++, j += 3, i++)
      out[i] = Math.round(0.299 * d[j] + 0.587 * d[j + 1] + 0.114 * d[j + 2]);
  }
  return { data: out, width: r.width, height: r.height, channels: 1 };
}

/**
 * Bilinear resize of the region `r` of `src` to dw x dh (OpenCV INTER_LINEAR: source coordinate
 * (d + 0.5) * scale - 0.5, clamped to the region's edge pixels).
 */
export function resizeBilinear(src: Image, r: Rect, dw: number, dh: number): Image {
  const c = src.channels;
  const out = new Uint8Array(dw * dh * c);
  const sx = r.width / dw;
  const sy = r.height / dh;
  // Precompute the horizontal taps once per column.
  const x0s = new Int32Array(dw);
  const x1s = new Int32Array(dw);
  const fxs = new Float32Array(dw);
  for (let x = 0; x < dw; x++) {
    const fx = Math.min(Math.max((x + 0.5) * sx - 0.5, 0), r.width - 1);
    const x0 = Math.floor(fx);
    x0s[x] = (r.x + x0) * c;
    x1s[x] = (r.x + Math.min(x0 + 1, r.width - 1)) * c;
    fxs[x] = fx - x0;
  }
  const stride = src.width * c;
  for (let y = 0; y < dh; y++) {
    const fy = Math.min(Math.max((y + 0.5) * sy - 0.5, 0), r.height - 1);
    const y0 = Math.floor(fy);
    const wy = fy - y0;
    const row0 = (r.y + y0) * stride;
    const row1 = (r.y + Math.min(y0 + 1, r.height - 1)) * stride;
    for (let x = 0; x < dw; x++) {
      const wx = fxs[x];
      const o = (y * dw + x) * c;
      for (let k = 0; k < c; k++) {
        const top = src.data[row0 + x0s[x] + k] * (1 - wx) + src.data[row0 + x1s[x] + k] * wx;
        const bottom = src.data[row1 + x0s[x] + k] * (1 - wx) + src.data[row1 + x1s[x] + k] * wx;
        out[o + k] = Math.round(top * (1 - wy) + bottom * wy);
      }
    }
  }
  return { data: out, width: dw, height: dh, channels: c };
}

/** A 2x3 affine matrix [a, b, c, d, e, f]: x' = a x + b y + c, y' = d x + e y + f. */
export type Affine = [number, number, number, number, number, number];

export function invertAffine(m: Affine): Affine {
  const [a, b, c, d, e, f] = m;
  const det = a * e - b * d;
  if (Math.abs(det) < 1e-12) throw new Error('Singular affine transform.');
  const ia = e / det;
  const ib = -b / det;
  const id = -d / det;
  const ie = a / det;
  return [ia, ib, -(ia * c + ib * f), id, ie, -(id * c + ie * f)];
}

/**
 * OpenCV's warpAffine(src, dst, m, size, INTER_LINEAR, BORDER_CONSTANT, 0): each destination pixel samples the
 * source at m^-1 (x, y), bilinearly; neighbours outside the source count as black.
 */
export function warpAffine(src: Image, m: Affine, dw: number, dh: number): Image {
  const c = src.channels;
  const { width: w, height: h, data } = src;
  const inv = invertAffine(m);
  const out = new Uint8Array(dw * dh * c);
  const at = (x: number, y: number, k: number) => (x < 0 || y < 0 || x >= w || y >= h ? 0 : data[(y * w + x) * c + k]);
  for (let y = 0; y < dh; y++) {
    for (let x = 0; x < dw; x++) {
      const sx = inv[0] * x + inv[1] * y + inv[2];
      const sy = inv[3] * x + inv[4] * y + inv[5];
      const x0 = Math.floor(sx);
      const y0 = Math.floor(sy);
      const wx = sx - x0;
      const wy = sy - y0;
      const o = (y * dw + x) * c;
      const inside = x0 >= 0 && y0 >= 0 && x0 + 1 < w && y0 + 1 < h;
      const i00 = (y0 * w + x0) * c;
      const i10 = i00 + c;
      const i01 = i00 + w * c;
      const i11 = i01 + c;
      for (let k = 0; k < c; k++) {
        // Inside the image (nearly always) read directly; at the border, outside neighbours are black.
        const p00 = inside ? data[i00 + k] : at(x0, y0, k);
        const p10 = inside ? data[i10 + k] : at(x0 + 1, y0, k);
        const p01 = inside ? data[i01 + k] : at(x0, y0 + 1, k);
        const p11 = inside ? data[i11 + k] : at(x0 + 1, y0 + 1, k);
        const top = p00 * (1 - wx) + p10 * wx;
        const bottom = p01 * (1 - wx) + p11 * wx;
        out[o + k] = Math.round(top * (1 - wy) + bottom * wy);
      }
    }
  }
  return { data: out, width: dw, height: dh, channels: c };
}

/**
 * Planar float tensor data (NCHW, N = 1) from an interleaved image: channels taken in `order` (indices into the
 * image's channels), each value mapped to (v - mean) / std.
 */
export function toPlanar(img: Image, order: readonly number[], mean: number, std: number): Float32Array {
  const n = img.width * img.height;
  const out = new Float32Array(n * order.length);
  const c = img.channels;
  const inv = 1 / std;
  order.forEach((ch, plane) => {
    const base = plane * n;
    for (let i = 0; i < n; i++) out[base + i] = (img.data[i * c + ch] - mean) * inv;
  });
  return out;
}

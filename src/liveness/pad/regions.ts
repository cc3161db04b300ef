import type { RgbFrame } from '../../cli/synthetic';

/**
 * The engine's light regions (stage 'light') computed in TypeScript from a frame and known landmarks, the same
 * rectangles as the native code: for checking the scene models without the engine. The face box, which the engine
 * takes from its detector, is estimated from the jaw contour here (centre between points 0 and 16, width their
 * distance), so the surround strips sit about where the engine's would.
 */

export type PadRegion = 'face' | 'forehead' | 'nose' | 'leftCheek' | 'rightCheek' | 'chin' | 'surround' | 'frame';
export type RegionMeans = Record<PadRegion, [number, number, number] | null>;

interface Rect {
  x: number;
  y: number;
  w: number;
  h: number;
}

function clip(r: Rect, W: number, H: number): Rect {
  const x0 = Math.max(0, r.x),
    y0 = Math.max(0, r.y);
  const x1 = Math.min(W, r.x + r.w),
    y1 = Math.min(H, r.y + r.h);
  return { x: x0, y: y0, w: Math.max(0, x1 - x0), h: Math.max(0, y1 - y0) };
}

function sums(f: RgbFrame, r: Rect): { s: [number, number, number]; n: number } {
  const s: [number, number, number] = [0, 0, 0];
  for (let y = r.y; y < r.y + r.h; y++) {
    for (let x = r.x; x < r.x + r.w; x++) {
      const o = 3 * (y * f.width + x);
      s[0] += f.data[o];
      s[1] += f.data[o + 1];
      s[2] += f.data[o + 2];
    }
  }
  return { s, n: r.w * r.h };
}

function mean(f: RgbFrame, r: Rect): [number, number, number] | null {
  const c = clip(r, f.width, f.height);
  if (c.w < 2 || c.h < 2) return null;
  const { s, n } = sums(f, c);
  return [s[0] / n, s[1] / n, s[2] / n];
}

export function regionMeans(f: RgbFrame, lm: ArrayLike<number>): RegionMeans {
  const W = f.width,
    H = f.height;
  const pt = (i: number): [number, number] => [lm[2 * i], lm[2 * i + 1]];
  const avg = (...ps: [number, number][]): [number, number] => [
    ps.reduce((s, p) => s + p[0], 0) / ps.length,
    ps.reduce((s, p) => s + p[1], 0) / ps.length,
  ];
  const eyeL = avg(...[36, 37, 38, 39, 40, 41].map(pt));
  const eyeR = avg(...[42, 43, 44, 45, 46, 47].map(pt));
  const iod = Math.max(2, Math.hypot(eyeR[0] - eyeL[0], eyeR[1] - eyeL[1]));
  const around = (c: [number, number], w: number, h: number): Rect => ({
    x: Math.round(c[0] - w / 2),
    y: Math.round(c[1] - h / 2),
    w: Math.max(1, Math.round(w)),
    h: Math.max(1, Math.round(h)),
  });
  let x1 = W,
    y1 = H,
    x2 = 0,
    y2 = 0;
  for (let i = 17; i < 68; i++) {
    x1 = Math.min(x1, lm[2 * i]);
    x2 = Math.max(x2, lm[2 * i]);
    y1 = Math.min(y1, lm[2 * i + 1]);
    y2 = Math.max(y2, lm[2 * i + 1]);
  }
  const brows = avg(pt(19), pt(24));
  const cx = (lm[0] + lm[32]) / 2;
  const bw = Math.abs(lm[32] - lm[0]);
  const top = Math.round(eyeL[1]);
  const bottom = Math.round(Math.max(lm[2 * 48 + 1], lm[2 * 54 + 1]));
  const strips = [
    clip({ x: Math.round(cx - 1.25 * bw), y: top, w: Math.round(0.35 * bw), h: Math.max(1, bottom - top) }, W, H),
    clip({ x: Math.round(cx + 0.9 * bw), y: top, w: Math.round(0.35 * bw), h: Math.max(1, bottom - top) }, W, H),
  ];
  let surround: [number, number, number] | null = null;
  const acc: [number, number, number] = [0, 0, 0];
  let n = 0;
  for (const r of strips) {
    if (r.w < 2 || r.h < 2) continue;
    const s = sums(f, r);
    for (let c = 0; c < 3; c++) acc[c] += s.s[c];
    n += s.n;
  }
  if (n >= 16) surround = [acc[0] / n, acc[1] / n, acc[2] / n];
  return {
    face: mean(f, {
      x: Math.round(x1),
      y: Math.round(y1),
      w: Math.round(x2) - Math.round(x1),
      h: Math.round(y2) - Math.round(y1),
    }),
    forehead: mean(f, around([brows[0], brows[1] - 0.35 * iod], 0.8 * iod, 0.3 * iod)),
    nose: mean(f, around(avg(pt(29), pt(30)), 0.25 * iod, 0.3 * iod)),
    leftCheek: mean(f, around(avg(pt(2), pt(31)), 0.3 * iod, 0.3 * iod)),
    rightCheek: mean(f, around(avg(pt(14), pt(35)), 0.3 * iod, 0.3 * iod)),
    chin: mean(f, around(avg(pt(8), pt(57)), 0.35 * iod, 0.2 * iod)),
    surround,
    frame: mean(f, { x: 0, y: 0, w: W, h: H }),
  };
}

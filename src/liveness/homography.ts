import { solveLinear } from './stats';

export type Point = readonly [number, number];

/** Translates the points' centroid to the origin and scales their mean distance from it to sqrt(2) (Hartley). */
function normaliser(points: readonly Point[]) {
  const cx = points.reduce((s, p) => s + p[0], 0) / points.length;
  const cy = points.reduce((s, p) => s + p[1], 0) / points.length;
  const d = points.reduce((s, p) => s + Math.hypot(p[0] - cx, p[1] - cy), 0) / points.length;
  const k = d > 0 ? Math.SQRT2 / d : 1;
  return {
    to: (p: Point): Point => [(p[0] - cx) * k, (p[1] - cy) * k],
    from: (p: Point): Point => [p[0] / k + cx, p[1] / k + cy],
  };
}

/**
 * The plane-to-plane projective map that best carries `src` onto `dst` (at least 4 pairs): the 8-parameter linear
 * least squares (h33 = 1) on Hartley-normalised points, solved by Gaussian elimination. Any view of a flat object,
 * whatever its tilt, turn or distance, is such a map of any other view. Null when the points are degenerate.
 */
export function fitHomography(src: readonly Point[], dst: readonly Point[]): ((p: Point) => Point) | null {
  if (src.length !== dst.length || src.length < 4) return null;
  const ns = normaliser(src);
  const nd = normaliser(dst);
  // Normal equations of the 2n x 8 system: u = (h0 x + h1 y + h2) / (h6 x + h7 y + 1), v likewise with h3..h5.
  const ata = Array.from({ length: 8 }, () => new Array<number>(8).fill(0));
  const atb = new Array<number>(8).fill(0);
  const add = (row: number[], rhs: number) => {
    for (let i = 0; i < 8; i++) {
      atb[i] += row[i] * rhs;
      for (let j = 0; j < 8; j++) ata[i][j] += row[i] * row[j];
    }
  };
  for (let i = 0; i < src.length; i++) {
    const [x, y] = ns.to(src[i]);
    const [u, v] = nd.to(dst[i]);
    add([x, y, 1, 0, 0, 0, -x * u, -y * u], u);
    add([0, 0, 0, x, y, 1, -x * v, -y * v], v);
  }
  const h = solveLinear(ata, atb);
  if (!h || !h.every(Number.isFinite)) return null;
  return (p: Point): Point => {
    const [x, y] = ns.to(p);
    const w = h[6] * x + h[7] * y + 1;
    return nd.from([(h[0] * x + h[1] * y + h[2]) / w, (h[3] * x + h[4] * y + h[5]) / w]);
  };
}

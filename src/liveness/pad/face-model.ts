import type { RgbFrame } from '../../cli/synthetic';
import { signedArea, toLinear, WarpMap, weightedBoxBlur } from './raster';

const { sqrt } = Math;

/**
 * A 3D face fitted to one photo, for the presentation-attack benchmark: enough shape to relight a face by the
 * patient-facing screen and to turn it a little, from a single frontal photo and its 68 landmarks.
 *
 * How: every landmark keeps its place in the photo and gets a depth from a generic adult face (GENERIC_FACE,
 * millimetres, scaled to this face by a similarity fit of the generic layout to the landmarks). A few points the 68
 * lack (cheekbones, forehead, hairline), a ring around the head and a static ring further out are added from the
 * generic layout. One fixed triangulation (Delaunay on the generic layout, computed once) joins them; depth is
 * interpolated over the head's triangles into a dense map, smoothed, and differentiated into normals.
 *
 * Limits (say them whenever a figure rests on this model):
 * - The depth is a generic face's, not this person's: a flat or a very prominent nose relights the same.
 * - The photo is taken as frontal and evenly lit: its pixels serve as albedo, so the photo's own shading and
 *   highlights stay baked in, and a photo that is already turned gets the wrong depth on one side.
 * - The head region is a generic ellipse around the landmarks (hair and neck included), not a segmentation: with
 *   big hair or a narrow head it takes in some background or leaves out some hair; shoulders are left out.
 * - Ears and the side and back of the head are not modelled: a turn stretches the band between the jaw contour and
 *   the head's outline on one side (instead of revealing the side of the head) and folds it on the other.
 * - Jaw contour points are rigid here; on a real head they slide along the silhouette as it turns.
 */

/** Interleaved x, y in frame pixels. */
export type Points2 = Float32Array;

/**
 * The 68 iBUG points of a generic adult face: x to the image's right, y down, z = depth BEHIND the nose tip (mm;
 * the nose tip is the origin). The native pose fit uses the same conventions and agrees within a few mm on the
 * points it uses.
 * Eye centres are about 61 mm apart; the nose tip stands about 30-38 mm in front of the eye corners; the jaw contour
 * near the ears is 80-95 mm behind the nose tip (it is the face's outline seen from the front).
 */
// prettier-ignore
export const GENERIC_FACE: Float32Array = Float32Array.from([
  // 0-16 jaw contour, image left to right
  -70, -32, 95, -69, -14, 90, -67, 4, 83, -63, 22, 74, -56, 38, 62, -46, 52, 49, -34, 62, 37, -18, 70, 26,
  0, 72, 22,
  18, 70, 26, 34, 62, 37, 46, 52, 49, 56, 38, 62, 63, 22, 74, 67, 4, 83, 69, -14, 90, 70, -32, 95,
  // 17-21 brow (image left), 22-26 brow (image right)
  -50, -55, 40, -41, -61, 32, -31, -63, 27, -21, -61, 24, -12, -56, 24,
  12, -56, 24, 21, -61, 24, 31, -63, 27, 41, -61, 32, 50, -55, 40,
  // 27-30 nose bridge to tip, 31-35 nostrils
  0, -38, 20, 0, -27, 13, 0, -15, 6, 0, 0, 0,
  -13, 7, 18, -7, 9, 14, 0, 10, 13, 7, 9, 14, 13, 7, 18,
  // 36-41 eye (image left): outer corner, upper lid x2, inner corner, lower lid x2
  -45, -35, 38, -37, -40, 33, -25, -40, 31, -16, -35, 30, -25, -31, 32, -37, -31, 34,
  // 42-47 eye (image right): inner corner, upper lid x2, outer corner, lower lid x2
  16, -35, 30, 25, -40, 31, 37, -40, 33, 45, -35, 38, 37, -31, 34, 25, -31, 32,
  // 48-59 outer lips from the left corner, upper lip first
  -25, 30, 32, -16, 25, 24, -6, 22, 19, 0, 23, 18, 6, 22, 19, 16, 25, 24, 25, 30, 32,
  16, 37, 26, 7, 40, 23, 0, 41, 22, -7, 40, 23, -16, 37, 26,
  // 60-67 inner lips
  -21, 30, 29, -7, 28, 22, 0, 28, 21, 7, 28, 22, 21, 30, 29, 7, 31, 22, 0, 31, 21, -7, 31, 22,
]);

/** Points the 68 lack, rigid with the head: cheekbones, lower cheeks, forehead, hairline (x, y, depth behind). */
// prettier-ignore
const EXTRA_HEAD: number[] = [
  -43, -12, 40, 43, -12, 40, -41, 14, 44, 41, 14, 44,
  -46, -82, 46, -24, -90, 34, 0, -92, 30, 24, -90, 34, 46, -82, 46,
  -40, -112, 62, 0, -118, 52, 40, -112, 62,
];

/** The head turns about a vertical axis this far behind the nose tip (mm): about the neck. */
export const AXIS_BEHIND_NOSE = 100;
/** Centre of the head's outline in the generic layout (mm): the turn axis passes through it. */
const HEAD_CENTRE_Y = -25;
const HEAD_RING_POINTS = 20;
const STATIC_RING_POINTS = 16;

/**
 * The head's outline: an ellipse round the head (hair and neck included: a head is ~230 mm from chin to crown and
 * ~155 mm wide), at the turn axis's depth except the neck in front. It does not turn with the yaw: a head is
 * roughly a cylinder about the turn axis, whose silhouette stays put while the face slides inside it (the band
 * between the jaw contour and the outline is stretched on one side and folded under the face on the other). Under
 * the chin the outline is the neck, which twists with the head by up to RING_NECK_TWIST of its yaw.
 */
function headRing(): number[] {
  const out: number[] = [];
  for (let k = 0; k < HEAD_RING_POINTS; k++) {
    const a = (2 * Math.PI * k) / HEAD_RING_POINTS;
    const s = Math.sin(a);
    const x = 85 * Math.cos(a);
    const y = HEAD_CENTRE_Y + 125 * s;
    const z = s > 0.5 ? AXIS_BEHIND_NOSE - 40 * ((s - 0.5) / 0.5) : AXIS_BEHIND_NOSE;
    out.push(x, y, z);
  }
  return out;
}

/** How much of the head's yaw the outline's lowest point (the neck) follows; 0 at the ears and above. */
export const RING_NECK_TWIST = 0.6;

/** The share of the yaw each outline point follows (by its place in the generic layout). */
export function ringTwist(y: number): number {
  const s = (y - HEAD_CENTRE_Y) / 125;
  return s > 0 ? RING_NECK_TWIST * s : 0;
}

/** A ring that never moves (the wall and shoulders): what the head's outline is stretched to. */
function staticRing(): number[] {
  const out: number[] = [];
  for (let k = 0; k < STATIC_RING_POINTS; k++) {
    const a = (2 * Math.PI * (k + 0.5)) / STATIC_RING_POINTS;
    out.push(150 * Math.cos(a), HEAD_CENTRE_Y + 170 * Math.sin(a), 400);
  }
  return out;
}

/** All mesh vertices in the generic layout: 68 landmarks, extra head points, head ring, static ring. */
export const MESH_LAYOUT: Float32Array = Float32Array.from([
  ...GENERIC_FACE,
  ...EXTRA_HEAD,
  ...headRing(),
  ...staticRing(),
]);
export const MESH_VERTICES = MESH_LAYOUT.length / 3;
/** Vertices from this index on are the head's outline (they follow the head but not its yaw). */
export const FIRST_RING = MESH_VERTICES - STATIC_RING_POINTS - HEAD_RING_POINTS;
/** Vertices from this index on are static (never move with the head). */
export const FIRST_STATIC = MESH_VERTICES - STATIC_RING_POINTS;

/** Kinds of triangle: the face (rigid, culled when turned away), the band between the face and the head's
 * outline (stretched, never culled: it stands for the side of the head), and the stretch to the static ring. */
export const TRIANGLE_HEAD = 1;
export const TRIANGLE_STRETCH = 2;
export const TRIANGLE_BAND = 3;

/**
 * Delaunay triangulation (Bowyer-Watson) of x,y points. O(n^2), fine for the ~120 mesh points; run once.
 * Exactly co-circular points (a symmetric layout has many) are broken by a tiny deterministic jitter.
 */
export function delaunay(xy: ArrayLike<number>): Uint16Array {
  const n = xy.length / 2;
  const px: number[] = [];
  const py: number[] = [];
  for (let i = 0; i < n; i++) {
    px.push(xy[2 * i] + 1e-3 * Math.sin(i * 12.9898));
    py.push(xy[2 * i + 1] + 1e-3 * Math.cos(i * 78.233));
  }
  let minX = Infinity,
    minY = Infinity,
    maxX = -Infinity,
    maxY = -Infinity;
  for (let i = 0; i < n; i++) {
    minX = Math.min(minX, px[i]);
    maxX = Math.max(maxX, px[i]);
    minY = Math.min(minY, py[i]);
    maxY = Math.max(maxY, py[i]);
  }
  const d = Math.max(maxX - minX, maxY - minY) * 20;
  const mx = (minX + maxX) / 2,
    my = (minY + maxY) / 2;
  px.push(mx - d, mx, mx + d);
  py.push(my - d, my + d, my - d);
  type Tri = { a: number; b: number; c: number; x: number; y: number; r2: number };
  const make = (a: number, b: number, c: number): Tri => {
    const ax = px[a],
      ay = py[a],
      bx = px[b],
      by = py[b],
      cx = px[c],
      cy = py[c];
    const D = 2 * (ax * (by - cy) + bx * (cy - ay) + cx * (ay - by));
    const ux =
      ((ax * ax + ay * ay) * (by - cy) + (bx * bx + by * by) * (cy - ay) + (cx * cx + cy * cy) * (ay - by)) / D;
    const uy =
      ((ax * ax + ay * ay) * (cx - bx) + (bx * bx + by * by) * (ax - cx) + (cx * cx + cy * cy) * (bx - ax)) / D;
    return { a, b, c, x: ux, y: uy, r2: (ax - ux) ** 2 + (ay - uy) ** 2 };
  };
  let tris: Tri[] = [make(n, n + 1, n + 2)];
  for (let i = 0; i < n; i++) {
    const bad: Tri[] = [];
    const keep: Tri[] = [];
    for (const t of tris) ((px[i] - t.x) ** 2 + (py[i] - t.y) ** 2 < t.r2 ? bad : keep).push(t);
    // The cavity's boundary: edges of bad triangles not shared by another bad triangle.
    const edges = new Map<string, [number, number]>();
    for (const t of bad) {
      for (const [u, v] of [
        [t.a, t.b],
        [t.b, t.c],
        [t.c, t.a],
      ]) {
        const key = u < v ? `${u},${v}` : `${v},${u}`;
        if (edges.has(key)) edges.delete(key);
        else edges.set(key, [u, v]);
      }
    }
    for (const [u, v] of edges.values()) keep.push(make(u, v, i));
    tris = keep;
  }
  const out: number[] = [];
  for (const t of tris) if (t.a < n && t.b < n && t.c < n) out.push(t.a, t.b, t.c);
  return Uint16Array.from(out);
}

/** The fixed mesh topology (on the generic layout) and each triangle's kind. */
export const MESH_TRIANGLES: Uint16Array = delaunay(
  Float32Array.from({ length: MESH_VERTICES * 2 }, (_, k) => MESH_LAYOUT[3 * (k >> 1) + (k & 1)]),
);
export const MESH_TRIANGLE_KIND: Uint8Array = (() => {
  const kinds = new Uint8Array(MESH_TRIANGLES.length / 3);
  for (let t = 0; t < kinds.length; t++) {
    const v = [0, 1, 2].map((k) => MESH_TRIANGLES[3 * t + k]);
    kinds[t] = v.some((i) => i >= FIRST_STATIC)
      ? TRIANGLE_STRETCH
      : v.some((i) => i >= FIRST_RING)
        ? TRIANGLE_BAND
        : TRIANGLE_HEAD;
  }
  return kinds;
})();

/** x' = a x - b y + tx, y' = b x + a y + ty: scale sqrt(a^2 + b^2), rotation atan2(b, a). */
export interface Similarity {
  a: number;
  b: number;
  tx: number;
  ty: number;
}

/** Least-squares similarity taking the generic layout's 68 points onto `landmarks`. */
export function fitSimilarity(landmarks: ArrayLike<number>): Similarity {
  let gx = 0,
    gy = 0,
    lx = 0,
    ly = 0;
  for (let i = 0; i < 68; i++) {
    gx += GENERIC_FACE[3 * i];
    gy += GENERIC_FACE[3 * i + 1];
    lx += landmarks[2 * i];
    ly += landmarks[2 * i + 1];
  }
  gx /= 68;
  gy /= 68;
  lx /= 68;
  ly /= 68;
  let num1 = 0,
    num2 = 0,
    den = 0;
  for (let i = 0; i < 68; i++) {
    const x = GENERIC_FACE[3 * i] - gx,
      y = GENERIC_FACE[3 * i + 1] - gy;
    const u = landmarks[2 * i] - lx,
      v = landmarks[2 * i + 1] - ly;
    num1 += x * u + y * v;
    num2 += x * v - y * u;
    den += x * x + y * y;
  }
  const a = num1 / den,
    b = num2 / den;
  return { a, b, tx: lx - (a * gx - b * gy), ty: ly - (b * gx + a * gy) };
}

export function applySimilarity(s: Similarity, x: number, y: number): [number, number] {
  return [s.a * x - s.b * y + s.tx, s.b * x + s.a * y + s.ty];
}

export interface FaceModelOptions {
  /** Horizontal field of view of the webcam, degrees. Default 60 (a typical laptop or USB webcam). */
  fovDeg?: number;
}

/** A photo frame prepared for rendering: precomputed once, then read by every frame rendered. */
export interface FaceModel {
  width: number;
  height: number;
  /** The photo frame as given (8-bit sRGB) and in linear light. */
  frame: RgbFrame;
  linear: Float32Array;
  /** The 68 landmarks in the photo frame. */
  landmarks: Points2;
  /** Pixels per millimetre at the face. */
  scale: number;
  /** Generic layout -> frame pixels. */
  similarity: Similarity;
  /** The turn axis in the frame (pixels): the head's centre. */
  centre: [number, number];
  /** Focal length in pixels, and the camera's distance to the nose tip in mm (what gives this face size). */
  focal: number;
  distance: number;
  /** Mesh: vertex places in the frame (2 per vertex) and in the head's frame, mm (3 per vertex: X right, Y down,
   * Z towards the camera, origin on the turn axis at the head centre's height). */
  src: Float32Array;
  pos: Float32Array;
  triangles: Uint16Array;
  triangleKind: Uint8Array;
  firstRing: number;
  firstStatic: number;
  /** Soft head mask 0-1 (1 = lit as skin or hair at the face's distance; 0 = the wall behind). */
  mask: Float32Array;
  /** Unit surface normals (3 per pixel, camera frame: x right, y down, z towards the camera) inside the mask. */
  normals: Float32Array;
  /** Depth map: Z in mm towards the camera (0 outside the head). */
  depth: Float32Array;
}

/**
 * Fits the 3D face to a frame and its 68 landmarks (as the engine gives them for that frame). The frame should show
 * a fairly frontal face of a desk-like size (inter-ocular distance about 30-40 px at 320x240).
 */
export function fitFace(frame: RgbFrame, landmarks: ArrayLike<number>, options: FaceModelOptions = {}): FaceModel {
  if (landmarks.length < 136) throw new RangeError('fitFace needs 68 landmarks (136 numbers).');
  const { width: W, height: H } = frame;
  const sim = fitSimilarity(landmarks);
  const scale = Math.hypot(sim.a, sim.b);
  const centre = applySimilarity(sim, 0, HEAD_CENTRE_Y);
  const focal = W / 2 / Math.tan(((options.fovDeg ?? 60) * Math.PI) / 360);
  const distance = focal / scale;

  const n = MESH_VERTICES;
  const src = new Float32Array(2 * n);
  const pos = new Float32Array(3 * n);
  for (let i = 0; i < n; i++) {
    let x: number, y: number;
    if (i < 68) {
      x = landmarks[2 * i];
      y = landmarks[2 * i + 1];
    } else {
      [x, y] = applySimilarity(sim, MESH_LAYOUT[3 * i], MESH_LAYOUT[3 * i + 1]);
    }
    src[2 * i] = x;
    src[2 * i + 1] = y;
    // The head frame follows the image axes (a rolled photo is not un-rolled: its roll is small at a desk).
    pos[3 * i] = (x - centre[0]) / scale;
    pos[3 * i + 1] = (y - centre[1]) / scale;
    pos[3 * i + 2] = AXIS_BEHIND_NOSE - MESH_LAYOUT[3 * i + 2];
  }

  // Dense maps in the photo frame: rasterise the head triangles with depth as the attribute.
  const map = new WarpMap(W, H);
  const z = new Float32Array(n);
  for (let i = 0; i < n; i++) z[i] = pos[3 * i + 2];
  for (let t = 0; t < MESH_TRIANGLE_KIND.length; t++) {
    if (MESH_TRIANGLE_KIND[t] === TRIANGLE_STRETCH) continue;
    const [a, b, c] = [MESH_TRIANGLES[3 * t], MESH_TRIANGLES[3 * t + 1], MESH_TRIANGLES[3 * t + 2]];
    map.drawTriangle(src, src, a, b, c, 1, z);
  }
  const hard = new Float32Array(W * H);
  const depth = new Float32Array(W * H);
  for (let i = 0; i < W * H; i++) {
    if (map.tag[i]) {
      hard[i] = 1;
      depth[i] = map.w[i];
    }
  }
  // Smooth the piecewise-planar depth (radius ~ a sixth of the eye distance, twice: nearly Gaussian) so the
  // normals vary smoothly instead of in facets.
  const r = Math.max(1, Math.round(scale * 61 * 0.16));
  weightedBoxBlur(depth, hard, W, H, r);
  weightedBoxBlur(depth, hard, W, H, r);
  const normals = new Float32Array(W * H * 3);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const i = y * W + x;
      if (!hard[i]) {
        normals[3 * i + 2] = 1;
        continue;
      }
      // Central differences inside the head (one-sided at its edge); dZ/dX in mm per mm: a pixel is 1/scale mm.
      const l = x > 0 && hard[i - 1] ? depth[i - 1] : depth[i];
      const r2 = x < W - 1 && hard[i + 1] ? depth[i + 1] : depth[i];
      const u = y > 0 && hard[i - W] ? depth[i - W] : depth[i];
      const d = y < H - 1 && hard[i + W] ? depth[i + W] : depth[i];
      const zx = ((r2 - l) / 2) * scale;
      const zy = ((d - u) / 2) * scale;
      const len = sqrt(zx * zx + zy * zy + 1);
      normals[3 * i] = -zx / len;
      normals[3 * i + 1] = -zy / len;
      normals[3 * i + 2] = 1 / len;
    }
  }
  // A soft edge (a few pixels) so the lit head does not end in a hard line.
  const mask = Float32Array.from(hard);
  const ones = new Float32Array(W * H).fill(1);
  weightedBoxBlur(mask, ones, W, H, 2);

  return {
    width: W,
    height: H,
    frame,
    linear: toLinear(frame.data),
    landmarks: Float32Array.from({ length: 136 }, (_, k) => landmarks[k]),
    scale,
    similarity: sim,
    centre,
    focal,
    distance,
    src,
    pos,
    triangles: MESH_TRIANGLES,
    triangleKind: MESH_TRIANGLE_KIND,
    firstRing: FIRST_RING,
    firstStatic: FIRST_STATIC,
    mask,
    normals,
    depth,
  };
}

/** Inter-ocular distance (eye centres) of 68 landmarks, pixels. */
export function interOcular(lm: ArrayLike<number>): number {
  let lx = 0,
    ly = 0,
    rx = 0,
    ry = 0;
  for (let k = 0; k < 6; k++) {
    lx += lm[2 * (36 + k)];
    ly += lm[2 * (36 + k) + 1];
    rx += lm[2 * (42 + k)];
    ry += lm[2 * (42 + k) + 1];
  }
  return Math.hypot(rx - lx, ry - ly) / 6;
}

/** True when the triangle keeps its orientation from `src` to `dst` (false = seen from behind: cull it). */
export function frontFacing(src: ArrayLike<number>, dst: ArrayLike<number>, a: number, b: number, c: number): boolean {
  return signedArea(src, a, b, c) * signedArea(dst, a, b, c) > 0;
}

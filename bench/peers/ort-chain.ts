import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import {
  clampRect,
  fullRect,
  greyFromRgb,
  resizeBilinear,
  toPlanar,
  warpAffine,
  type Affine,
  type Image,
  type Rect,
} from './image';

/**
 * The engine's full-call chain on onnxruntime-node: decode (libjpeg-turbo via sharp), detect, 68 landmarks,
 * 5-point similarity alignment, embedding, passive liveness, with the engine's pre- and post-processing
 * (models/manifest.json and native/src/pipeline.cc): same crops, channel orders, normalisation, thresholds,
 * NMS and choice of the primary face. Eyes, pose and quality are left out, as in the OpenCV-Python peer.
 */

// One libvips thread per decode (a chain is one job) and no libvips cache of decoded frames.
sharp.concurrency(1);
sharp.cache(false);

const DETECT_W = 320;
const DETECT_H = 240;
const DETECT_THRESHOLD = 0.7;
const NMS_THRESHOLD = 0.3;
const LIVENESS_SCALE = 2.7;
/** ArcFace's 112x112 template: eye centres, nose tip, mouth corners. */
const TEMPLATE: ReadonlyArray<readonly [number, number]> = [
  [38.2946, 51.6963],
  [73.5318, 51.5014],
  [56.0252, 71.7366],
  [41.5493, 92.3655],
  [70.7299, 92.2041],
];
/** Channel indices of an RGB image in B, G, R order. */
const BGR = [2, 1, 0] as const;
const RGB = [0, 1, 2] as const;

export interface ChainTimings {
  decode: number;
  detect: number;
  landmarks: number;
  align: number;
  embedding: number;
  liveness: number;
  total: number;
}

export interface ChainAnswer {
  box: { x: number; y: number; width: number; height: number };
  embedding: Float32Array;
  liveness: number;
}

interface Box {
  x: number;
  y: number;
  width: number;
  height: number;
  score: number;
}

export class OrtChain {
  private constructor(
    private readonly detect: ort.InferenceSession,
    private readonly landmark: ort.InferenceSession,
    private readonly feature: ort.InferenceSession,
    private readonly liveness: ort.InferenceSession,
  ) {}

  /** Loads the four networks; `threads` is onnxruntime's intra-op thread count per network. */
  static async open(modelDir: string, threads: number): Promise<OrtChain> {
    const options: ort.InferenceSession.SessionOptions = {
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
      // No busy-waiting between kernels: on a shared 2-core machine spinning threads would steal the other's core.
      extra: { session: { intra_op: { allow_spinning: '0' } } },
    };
    const load = (file: string) => ort.InferenceSession.create(path.join(modelDir, file), options);
    const [d, l, f, v] = await Promise.all([
      load('fr_detect.onnx'),
      load('fr_landmark.onnx'),
      load('fr_feature.onnx'),
      load('fr_liveness.onnx'),
    ]);
    return new OrtChain(d, l, f, v);
  }

  async close(): Promise<void> {
    await Promise.all([
      this.detect.release(),
      this.landmark.release(),
      this.feature.release(),
      this.liveness.release(),
    ]);
  }

  /** The whole chain on one JPEG; the primary face's answer, or null when no face is found. */
  async run(jpeg: Uint8Array, t: ChainTimings): Promise<ChainAnswer | null> {
    const t0 = performance.now();
    const { data, info } = await sharp(jpeg).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    const img: Image = { data, width: info.width, height: info.height, channels: 3 };
    let mark = performance.now();
    t.decode += mark - t0;
    const lap = (key: keyof ChainTimings) => {
      const now = performance.now();
      t[key] += now - mark;
      mark = now;
    };

    const face = await this.primaryFace(img);
    lap('detect');
    if (!face) {
      t.total += performance.now() - t0;
      return null;
    }

    const crop = clampRect(
      { x: Math.round(face.x), y: Math.round(face.y), width: Math.round(face.width), height: Math.round(face.height) },
      img.width,
      img.height,
    );
    const landmarks = await this.landmarks(img, crop);
    lap('landmarks');
    const aligned = warpAffine(img, similarityToTemplate(fivePoints(landmarks)), 112, 112);
    lap('align');
    const embedding = await this.embedding(aligned);
    lap('embedding');
    const live = await this.livenessOf(img, face);
    lap('liveness');
    t.total += performance.now() - t0;
    return { box: { x: face.x, y: face.y, width: face.width, height: face.height }, embedding, liveness: live };
  }

  private async primaryFace(img: Image): Promise<Box | null> {
    const resized =
      img.width === DETECT_W && img.height === DETECT_H ? img : resizeBilinear(img, fullRect(img), DETECT_W, DETECT_H);
    const input = new ort.Tensor('float32', toPlanar(resized, BGR, 127, 128), [1, 3, DETECT_H, DETECT_W]);
    const out = await this.detect.run({ input });
    const scores = out.scores.data as Float32Array;
    const boxes = out.boxes.data as Float32Array;
    const W = img.width;
    const H = img.height;
    const candidates: Box[] = [];
    const clamp = (v: number, hi: number) => Math.min(Math.max(v, 0), hi);
    for (let i = 0; i < scores.length / 2; i++) {
      const score = scores[2 * i + 1];
      if (score < DETECT_THRESHOLD) continue;
      const x1 = clamp(boxes[4 * i] * W, W);
      const y1 = clamp(boxes[4 * i + 1] * H, H);
      const x2 = clamp(boxes[4 * i + 2] * W, W);
      const y2 = clamp(boxes[4 * i + 3] * H, H);
      if (x2 - x1 < 2 || y2 - y1 < 2) continue;
      candidates.push({ x: x1, y: y1, width: x2 - x1, height: y2 - y1, score });
    }
    const faces = nms(candidates, NMS_THRESHOLD);
    // The primary face: the largest, most central one.
    let best: Box | null = null;
    let bestWeight = -Infinity;
    for (const f of faces) {
      const dx = (f.x + f.width / 2) / W - 0.5;
      const dy = (f.y + f.height / 2) / H - 0.5;
      const weight = f.width * f.height * (1 - Math.sqrt(dx * dx + dy * dy));
      if (weight > bestWeight) {
        best = f;
        bestWeight = weight;
      }
    }
    return best;
  }

  /** 68 points in image coordinates: the face box in grey, 64x64, / 256. */
  private async landmarks(img: Image, crop: Rect): Promise<Float32Array> {
    const face = greyFromRgb(img, crop);
    const grey = resizeBilinear(face, fullRect(face), 64, 64);
    const input = new ort.Tensor('float32', toPlanar(grey, [0], 0, 256), [1, 1, 64, 64]);
    const v = (await this.landmark.run({ input })).output.data as Float32Array;
    const pts = new Float32Array(136);
    for (let j = 0; j < 68; j++) {
      pts[2 * j] = crop.x + v[2 * j] * crop.width;
      pts[2 * j + 1] = crop.y + v[2 * j + 1] * crop.height;
    }
    return pts;
  }

  private async embedding(aligned: Image): Promise<Float32Array> {
    const input = new ort.Tensor('float32', toPlanar(aligned, BGR, 127, 128), [1, 3, 112, 112]);
    const v = (await this.feature.run({ input })).output.data as Float32Array;
    let norm = 0;
    for (const x of v) norm += x * x;
    const inv = norm > 0 ? 1 / Math.sqrt(norm) : 0;
    return Float32Array.from(v, (x) => x * inv);
  }

  /** Softmax class 0 of the face box enlarged 2.7x (shifted to stay inside), 128x128, raw RGB values. */
  private async livenessOf(img: Image, box: Box): Promise<number> {
    const r = scaledBoxInside(box, LIVENESS_SCALE, img.width, img.height);
    if (r.width < 8 || r.height < 8) return -1;
    const patch = resizeBilinear(img, r, 128, 128);
    const input = new ort.Tensor('float32', toPlanar(patch, RGB, 0, 1), [1, 3, 128, 128]);
    const logits = (await this.liveness.run({ input })).output.data as Float32Array;
    const max = Math.max(...logits);
    const exps = Array.from(logits, (x) => Math.exp(x - max));
    return exps[0] / exps.reduce((a, b) => a + b, 0);
  }
}

/** Greedy non-maximum suppression by score: a box survives if it overlaps no kept box by more than `iou`. */
export function nms(boxes: Box[], iou: number): Box[] {
  const kept: Box[] = [];
  for (const b of [...boxes].sort((a, c) => c.score - a.score)) {
    if (kept.every((k) => intersectionOverUnion(k, b) <= iou)) kept.push(b);
  }
  return kept;
}

export function intersectionOverUnion(a: { x: number; y: number; width: number; height: number }, b: typeof a): number {
  const w = Math.min(a.x + a.width, b.x + b.width) - Math.max(a.x, b.x);
  const h = Math.min(a.y + a.height, b.y + b.height) - Math.max(a.y, b.y);
  if (w <= 0 || h <= 0) return 0;
  const inter = w * h;
  return inter / (a.width * a.height + b.width * b.height - inter);
}

type Point = [number, number];

/** Eye centres, nose tip and mouth corners from the 68 points (the image's left first). */
export function fivePoints(l: Float32Array): Point[] {
  const p = (i: number): Point => [l[2 * i], l[2 * i + 1]];
  const mean = (...idx: number[]): Point => {
    const pts = idx.map(p);
    return [pts.reduce((s, q) => s + q[0], 0) / pts.length, pts.reduce((s, q) => s + q[1], 0) / pts.length];
  };
  return [mean(37, 38, 40, 41), mean(43, 44, 46, 47), p(30), mean(48, 60), mean(54, 64)];
}

/** Least-squares similarity (rotation, uniform scale, translation) taking the points onto the ArcFace template. */
export function similarityToTemplate(src: Point[]): Affine {
  const n = src.length;
  const ms = [src.reduce((s, q) => s + q[0], 0) / n, src.reduce((s, q) => s + q[1], 0) / n];
  const md = [TEMPLATE.reduce((s, q) => s + q[0], 0) / n, TEMPLATE.reduce((s, q) => s + q[1], 0) / n];
  let dot = 0;
  let cross = 0;
  let energy = 0;
  for (let i = 0; i < n; i++) {
    const px = src[i][0] - ms[0];
    const py = src[i][1] - ms[1];
    const qx = TEMPLATE[i][0] - md[0];
    const qy = TEMPLATE[i][1] - md[1];
    dot += px * qx + py * qy;
    cross += px * qy - py * qx;
    energy += px * px + py * py;
  }
  energy = Math.max(energy, 1e-6);
  const a = dot / energy; // scale * cos(angle)
  const b = cross / energy; // scale * sin(angle)
  return [a, -b, md[0] - (a * ms[0] - b * ms[1]), b, a, md[1] - (b * ms[0] + a * ms[1])];
}

/** The box scaled about its centre (at most to the image's size), shifted, not cut, to stay inside the image. */
export function scaledBoxInside(
  box: { x: number; y: number; width: number; height: number },
  wanted: number,
  w: number,
  h: number,
): Rect {
  const scale = Math.min((h - 1) / box.height, (w - 1) / box.width, wanted);
  const nw = box.width * scale;
  const nh = box.height * scale;
  const cx = box.x + box.width / 2;
  const cy = box.y + box.height / 2;
  let x1 = cx - nw / 2;
  let y1 = cy - nh / 2;
  let x2 = cx + nw / 2;
  let y2 = cy + nh / 2;
  if (x1 < 0) {
    x2 -= x1;
    x1 = 0;
  }
  if (y1 < 0) {
    y2 -= y1;
    y1 = 0;
  }
  if (x2 > w - 1) {
    x1 -= x2 - w + 1;
    x2 = w - 1;
  }
  if (y2 > h - 1) {
    y1 -= y2 - h + 1;
    y2 = h - 1;
  }
  return clampRect(
    {
      x: Math.trunc(Math.max(x1, 0)),
      y: Math.trunc(Math.max(y1, 0)),
      width: Math.trunc(x2 - x1),
      height: Math.trunc(y2 - y1),
    },
    w,
    h,
  );
}

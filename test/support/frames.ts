import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { defaultFixtureDir } from '../../src/engine/models';
import { Rng as SeededRng } from '../../src/liveness/pad/random';

/*
 * Test frames made from the face-api sample photos (fetched by `npm run models` into the fixture folder):
 * webcam-like crops around one face, as JPEG or raw pixels, plus deterministic corruptions for fuzzing.
 * sharp is a test-only dependency; the product never touches it.
 */

export const SAMPLE_FILES = ['sample1.jpg', 'sample2.jpg', 'sample3.jpg', 'sample4.jpg', 'sample5.jpg', 'sample6.jpg'];

/** Where a fairly frontal face sits in each sample photo: centre and face height, as fractions of the photo. */
export interface FacePosition {
  cx: number;
  cy: number;
  /** Hairline-to-chin height / photo height. */
  h: number;
}

// Measured by eye on the 1920-px photos (group shots, several faces each); the first entry is the most frontal.
export const FACES: Readonly<Record<string, readonly FacePosition[]>> = {
  'sample1.jpg': [
    { cx: 0.265, cy: 0.37, h: 0.17 },
    { cx: 0.81, cy: 0.26, h: 0.17 },
  ],
  'sample2.jpg': [{ cx: 0.8, cy: 0.22, h: 0.17 }],
  'sample3.jpg': [
    { cx: 0.6, cy: 0.28, h: 0.18 },
    { cx: 0.35, cy: 0.37, h: 0.17 },
    { cx: 0.83, cy: 0.32, h: 0.17 },
  ],
  'sample4.jpg': [{ cx: 0.39, cy: 0.14, h: 0.14 }],
  'sample5.jpg': [
    { cx: 0.45, cy: 0.19, h: 0.14 },
    { cx: 0.6, cy: 0.25, h: 0.14 },
  ],
  'sample6.jpg': [
    { cx: 0.39, cy: 0.33, h: 0.16 },
    { cx: 0.19, cy: 0.4, h: 0.15 },
    { cx: 0.81, cy: 0.29, h: 0.16 },
  ],
};

/** The sample photos present in the fixture folder (FACEID_FIXTURE_DIR or the per-user cache). */
export function fixturePhotos(): string[] {
  const dir = defaultFixtureDir();
  return SAMPLE_FILES.map((f) => path.join(dir, f)).filter((p) => fs.existsSync(p));
}

/** Why frame-based tests are skipped, or null when every sample photo is there. */
export function missingFixturesReason(): string | null {
  const have = fixturePhotos().length;
  if (have === SAMPLE_FILES.length) return null;
  return `Test photos missing from ${defaultFixtureDir()} (${have}/${SAMPLE_FILES.length}): run \`npm run models\`.`;
}

export interface Size {
  width: number;
  height: number;
}

export const QVGA: Size = { width: 320, height: 240 };
export const VGA: Size = { width: 640, height: 480 };

export interface CropOptions extends Size {
  /** Which face of the photo (FACES order). Default 0. */
  face?: number;
  /** Face height / frame height. Default 0.4, a person sitting at a webcam. */
  faceFraction?: number;
  /** Shift of the window, as a fraction of its width / height (for frames that differ slightly). Default 0. */
  shiftX?: number;
  shiftY?: number;
}

export interface Rect {
  left: number;
  top: number;
  width: number;
  height: number;
}

/** The region of `photo` (its pixel size given) that makes a webcam-like frame centred on a face. */
export function faceCrop(photoFile: string, photo: Size, options: CropOptions): Rect {
  const faces = FACES[path.basename(photoFile)];
  if (!faces) throw new Error(`No face position known for ${path.basename(photoFile)}.`);
  const f = faces[(options.face ?? 0) % faces.length];
  const aspect = options.width / options.height;
  let h = Math.min(photo.height, (f.h * photo.height) / (options.faceFraction ?? 0.4));
  let w = h * aspect;
  if (w > photo.width) {
    w = photo.width;
    h = w / aspect;
  }
  const cx = f.cx * photo.width + (options.shiftX ?? 0) * w;
  const cy = f.cy * photo.height + (options.shiftY ?? 0) * h;
  const clamp = (v: number, lo: number, hi: number) => Math.min(Math.max(v, lo), hi);
  const width = Math.round(w);
  const height = Math.round(h);
  return {
    left: Math.round(clamp(cx - w / 2, 0, photo.width - width)),
    top: Math.round(clamp(cy - h / 2, 0, photo.height - height)),
    width,
    height,
  };
}

/** Raw interleaved pixels. */
export interface RawFrame extends Size {
  data: Buffer;
  channels: 3 | 4;
  order: 'rgb' | 'bgr' | 'rgba';
}

/** A webcam-like RGB frame from a sample photo (index into SAMPLE_FILES, or a path). */
export async function webcamRgb(photo: number | string, options: CropOptions = QVGA): Promise<RawFrame> {
  const file = typeof photo === 'number' ? path.join(defaultFixtureDir(), SAMPLE_FILES[photo]) : photo;
  const meta = await sharp(file).metadata();
  const rect = faceCrop(file, { width: meta.width ?? 0, height: meta.height ?? 0 }, options);
  const data = await sharp(file)
    .extract(rect)
    .resize(options.width, options.height, { fit: 'fill' })
    .removeAlpha()
    .raw()
    .toBuffer();
  return { data, width: options.width, height: options.height, channels: 3, order: 'rgb' };
}

/** RGB to BGR (a new buffer). */
export function toBgr(frame: RawFrame): RawFrame {
  if (frame.order !== 'rgb') throw new Error('toBgr expects an RGB frame.');
  const out = Buffer.allocUnsafe(frame.data.length);
  for (let i = 0; i < out.length; i += 3) {
    out[i] = frame.data[i + 2];
    out[i + 1] = frame.data[i + 1];
    out[i + 2] = frame.data[i];
  }
  return { ...frame, data: out, order: 'bgr' };
}

/** RGB to RGBA with opaque alpha (a new buffer). */
export function toRgba(frame: RawFrame): RawFrame {
  if (frame.order !== 'rgb') throw new Error('toRgba expects an RGB frame.');
  const n = frame.width * frame.height;
  const out = Buffer.allocUnsafe(n * 4);
  for (let i = 0; i < n; i++) {
    out[i * 4] = frame.data[i * 3];
    out[i * 4 + 1] = frame.data[i * 3 + 1];
    out[i * 4 + 2] = frame.data[i * 3 + 2];
    out[i * 4 + 3] = 255;
  }
  return { ...frame, data: out, channels: 4, order: 'rgba' };
}

export interface JpegOptions {
  /** 1-100. Default 85, a typical browser canvas.toBlob setting. */
  quality?: number;
  /** '4:2:0' (default, what browsers send) or '4:4:4'. */
  chromaSubsampling?: '4:2:0' | '4:4:4';
}

/** Encodes an RGB frame as a baseline JPEG. */
export function encodeJpeg(frame: RawFrame, options: JpegOptions = {}): Promise<Buffer> {
  if (frame.order !== 'rgb') throw new Error('encodeJpeg expects an RGB frame.');
  return sharp(frame.data, { raw: { width: frame.width, height: frame.height, channels: 3 } })
    .jpeg({ quality: options.quality ?? 85, chromaSubsampling: options.chromaSubsampling ?? '4:2:0' })
    .toBuffer();
}

/** A webcam-like JPEG frame (default 320x240, quality 85) from a sample photo. */
export async function webcamJpeg(photo: number | string, options: CropOptions & JpegOptions = QVGA): Promise<Buffer> {
  return encodeJpeg(await webcamRgb(photo, options), options);
}

// ---------------------------------------------------------------------------------------------------------------
// Deterministic corruptions for fuzzing: the same (input, seed) always gives the same bytes, so a failure names
// its seed and can be replayed.

/** Random bytes from the scene models' seeded generator (mulberry32; not for secrets). */
export class Rng extends SeededRng {
  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = this.int(0, 256);
    return b;
  }
}

// Mutations start after the 2-byte start-of-image marker, so they reach the decoder instead of the magic check.
const KEEP = 2;

/** Flips `count` random bits (default 1-8). */
export function flipBits(jpeg: Buffer, seed: number, count?: number): Buffer {
  const rng = new Rng(seed);
  const out = Buffer.from(jpeg);
  const n = count ?? rng.int(1, 9);
  for (let i = 0; i < n && out.length > KEEP; i++) out[rng.int(KEEP, out.length)] ^= 1 << rng.int(0, 8);
  return out;
}

/** Cuts the JPEG at a random length (at least the SOI marker is kept). */
export function truncate(jpeg: Buffer, seed: number): Buffer {
  const rng = new Rng(seed);
  return Buffer.from(jpeg.subarray(0, rng.int(KEEP, Math.max(KEEP + 1, jpeg.length))));
}

/** Inserts 1-4 runs of random bytes (sometimes 0xFF, which starts a marker) at random places. */
export function insertBytes(jpeg: Buffer, seed: number): Buffer {
  const rng = new Rng(seed);
  let out = Buffer.from(jpeg);
  const runs = rng.int(1, 5);
  for (let r = 0; r < runs; r++) {
    const at = rng.int(KEEP, out.length + 1);
    const run = rng.next() < 0.3 ? Buffer.from([0xff, rng.int(0, 256)]) : rng.bytes(rng.int(1, 33));
    out = Buffer.concat([out.subarray(0, at), run, out.subarray(at)]);
  }
  return out;
}

export type MutationKind = 'flip' | 'truncate' | 'insert';

export interface Mutation {
  kind: MutationKind;
  seed: number;
  data: Buffer;
}

/** One mutation, its kind chosen by the seed. */
export function mutateJpeg(jpeg: Buffer, seed: number): Mutation {
  const kinds: MutationKind[] = ['flip', 'truncate', 'insert'];
  const kind = kinds[new Rng(seed ^ 0x9e3779b9).int(0, kinds.length)];
  const data =
    kind === 'flip' ? flipBits(jpeg, seed) : kind === 'truncate' ? truncate(jpeg, seed) : insertBytes(jpeg, seed);
  return { kind, seed, data };
}

/** `count` mutations with seeds derived from `seed`. */
export function* jpegMutations(jpeg: Buffer, count: number, seed: number): Generator<Mutation> {
  const rng = new Rng(seed);
  for (let i = 0; i < count; i++) yield mutateJpeg(jpeg, rng.int(0, 0x7fffffff));
}

/** Offset of the first entropy-coded byte (just after the SOS header), or -1. */
export function entropyDataOffset(jpeg: Buffer): number {
  let i = 2;
  while (i + 4 <= jpeg.length) {
    if (jpeg[i] !== 0xff) return -1;
    const marker = jpeg[i + 1];
    if (marker === 0xff) {
      i++; // fill byte
      continue;
    }
    const len = jpeg.readUInt16BE(i + 2);
    if (marker === 0xda) return i + 2 + len;
    i += 2 + len;
  }
  return -1;
}

export { closeEyes } from '../../src/cli/synthetic';

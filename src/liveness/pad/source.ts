import { existsSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import * as path from 'node:path';
import type { FaceEngine } from '../../engine/engine';
import type { Box } from '../../engine/types';
import { defaultFixtureDir } from '../../engine/models';
import type { RgbFrame } from '../../cli/synthetic';
import { fitFace, interOcular, type FaceModel, type FaceModelOptions } from './face-model';

/*
 * Photos for the benchmark: the labelled face set when it is there (a CSV of file,identity[,source], paths relative
 * to the CSV), else the sample photos fetched by `npm run models`; `faceid simulate` and the end-to-end tests load
 * theirs here too. Frames are cut as a desk would see them (see deskFrame). Needs `sharp` (a devDependency) and the
 * engine, once per photo, for the landmarks.
 */

export const FRAME_WIDTH = 320;
export const FRAME_HEIGHT = 240;

export interface PadPhoto {
  file: string;
  identity: string;
}

const SAMPLES = ['sample1.jpg', 'sample2.jpg', 'sample3.jpg', 'sample4.jpg', 'sample5.jpg', 'sample6.jpg'];

/**
 * The photos to run: from `manifest` (a CSV, header `file,identity,...`) when it exists, else the fixture samples
 * present. Returns [] when there is neither (the caller says so and skips).
 */
export function padPhotos(manifest?: string): PadPhoto[] {
  if (manifest && existsSync(manifest)) {
    const dir = path.dirname(manifest);
    const lines = readFileSync(manifest, 'utf8')
      .split(/\r?\n/)
      .filter((l) => l.trim() !== '');
    const header = lines.shift()?.split(',') ?? [];
    const fi = header.indexOf('file'),
      ii = header.indexOf('identity');
    if (fi < 0 || ii < 0) throw new Error(`${manifest}: expected a header with file and identity columns.`);
    return lines
      .map((l) => l.split(','))
      .filter((c) => c[fi] && c[ii])
      .map((c) => ({ file: path.resolve(dir, c[fi]), identity: c[ii] }))
      .filter((p) => existsSync(p.file));
  }
  const dir = defaultFixtureDir();
  return SAMPLES.map((f) => path.join(dir, f))
    .filter((f) => existsSync(f))
    .map((file) => ({ file, identity: path.basename(file, '.jpg') }));
}

export interface PadFace {
  /** The photo's file, or `(in memory)` for a JPEG given as a buffer. */
  photo: string;
  /** The 320x240 frame and the engine's landmarks on it. */
  frame: RgbFrame;
  landmarks: Float32Array;
  model: FaceModel;
}

/**
 * Cuts the desk-like frame from a photo (a file, or the JPEG itself), finds its landmarks with the engine, and fits
 * the face model. Null when the engine finds no face in the photo or loses it in the frame.
 */
export async function loadPadFace(
  engine: FaceEngine,
  source: string | Buffer,
  options: FaceModelOptions = {},
): Promise<PadFace | null> {
  const sharp = (await import('sharp')).default;
  const photo = typeof source === 'string' ? await readFile(source) : source;
  const photoFile = typeof source === 'string' ? source : '(in memory)';
  // Upright first (EXIF orientation), so the engine and the crop see the same pixels.
  const upright = await sharp(photo).rotate().jpeg({ quality: 95 }).toBuffer();
  const meta = await sharp(upright).metadata();
  const W = meta.width ?? 0;
  const H = meta.height ?? 0;
  const found = await engine.analyze(Buffer.from(upright), { stages: [], maxFaces: 0 });
  const face = found.faces.find((f) => f.primary);
  if (!face) return null;
  const data = await deskFrame(upright, face.box, W, H);
  const frame: RgbFrame = { data, width: FRAME_WIDTH, height: FRAME_HEIGHT };
  // Landmarks on the frame as a desk would send it (a JPEG), which is what a session's engine sees.
  const jpeg = await sharp(data, { raw: { width: FRAME_WIDTH, height: FRAME_HEIGHT, channels: 3 } })
    .jpeg({ quality: 95 })
    .toBuffer();
  const tracked = await engine.analyze(jpeg, { stages: ['landmarks'] });
  const primary = tracked.faces.find((f) => f.primary);
  if (!primary?.landmarks) return null;
  const landmarks = Float32Array.from(primary.landmarks);
  return { photo: photoFile, frame, landmarks, model: fitFace(frame, landmarks, options) };
}

/** The frame is this many face-box widths wide: an eye distance of ~32-37 px at 320x240, a patient at a desk. */
export const REGION_FACE_WIDTHS = 4;

/**
 * The 320x240 frame a desk would see: a 4:3 region REGION_FACE_WIDTHS face-box widths wide around the face, never
 * shrunk to fit a tight portrait: where the region runs past the photo's edge, the photo's border is
 * extended and blurred into a smooth backdrop (a plain wall), so every face gets a desk-like size and a surround.
 */
export async function deskFrame(upright: Buffer, box: Box, W: number, H: number): Promise<Buffer> {
  const sharp = (await import('sharp')).default;
  const rw = Math.max(box.width * REGION_FACE_WIDTHS, FRAME_WIDTH);
  const rh = (rw * FRAME_HEIGHT) / FRAME_WIDTH;
  // Inside the photo when it fits (shifted like regionAround), else centred on the face.
  const place = (c: number, size: number, P: number) =>
    size <= P ? Math.min(Math.max(0, c - size / 2), P - size) : c - size / 2;
  const left = Math.floor(place(box.x + box.width / 2, rw, W));
  const top = Math.floor(place(box.y + box.height / 2, rh, H));
  const width = Math.round(rw),
    height = Math.round(rh);
  const pad = {
    left: Math.max(0, -left),
    top: Math.max(0, -top),
    right: Math.max(0, left + width - W),
    bottom: Math.max(0, top + height - H),
  };
  // Two pipelines: sharp runs extend after extract within one.
  const extended = await sharp(upright)
    .extend({ ...pad, extendWith: 'copy' })
    .png({ compressionLevel: 0 })
    .toBuffer();
  const sharpData = await sharp(extended)
    .extract({ left: left + pad.left, top: top + pad.top, width, height })
    .resize(FRAME_WIDTH, FRAME_HEIGHT, { fit: 'fill' })
    .removeAlpha()
    .raw()
    .toBuffer();
  if (!pad.left && !pad.top && !pad.right && !pad.bottom) return sharpData;
  const blurred = await sharp(sharpData, { raw: { width: FRAME_WIDTH, height: FRAME_HEIGHT, channels: 3 } })
    .blur(20)
    .raw()
    .toBuffer();
  // The photo's rectangle in the frame, and a 6-pixel blend from the photo into the backdrop.
  const k = FRAME_WIDTH / rw;
  const x0 = -left * k,
    x1 = (W - left) * k,
    y0 = -top * k,
    y1 = (H - top) * k;
  const out = Buffer.alloc(sharpData.length);
  for (let y = 0; y < FRAME_HEIGHT; y++) {
    for (let x = 0; x < FRAME_WIDTH; x++) {
      const d = Math.min(x - x0, x1 - x, y - y0, y1 - y);
      const a = Math.min(1, Math.max(0, d / 6));
      const o = 3 * (y * FRAME_WIDTH + x);
      for (let c = 0; c < 3; c++) out[o + c] = Math.round(a * sharpData[o + c] + (1 - a) * blurred[o + c]);
    }
  }
  return out;
}

/** A short description of a face's size in the frame, for logs. */
export function describeFace(f: PadFace): string {
  return `${path.basename(f.photo)}: inter-ocular ${interOcular(f.landmarks).toFixed(1)} px`;
}

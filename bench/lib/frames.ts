import * as fs from 'node:fs';
import * as path from 'node:path';
import { regionAround } from '../../src/cli/bench-engine';
import { closeEyes } from '../../src/cli/synthetic';
import type { FaceEngine } from '../../src/engine';
import { defaultFixtureDir } from '../../src/engine/models';

/**
 * The frames every benchmark uses, made at run time from a fixture photo (`npm run models` fetches it) and kept in
 * memory only: webcam-like 320x240 JPEGs of one real face (slightly shifted from one to the next, as a live person
 * moves), the same with the eyes shut (for the blink), and a 640x480 reference photo for enrollment.
 * Fixed frames, so the load's frame path costs the same every run; they answer the blink only (the load gateways
 * run the blink alone: see README). The light and turn challenges are measured by the `pad` phase.
 */

export const PATIENT_PHOTO = 'sample3.jpg';

export interface BenchFrames {
  source: string;
  open: Buffer[];
  closed: Buffer[];
  reference: Buffer;
}

export function photoPath(): string {
  return path.join(defaultFixtureDir(), PATIENT_PHOTO);
}

/** Why the benchmarks cannot run, or null. */
export function missingFixture(): string | null {
  return fs.existsSync(photoPath()) ? null : `The fixture photo ${photoPath()} is missing: run \`npm run models\`.`;
}

export async function makeFrames(engine: FaceEngine): Promise<BenchFrames> {
  const sharp = (await import('sharp')).default;
  const photo = fs.readFileSync(photoPath());
  const { open, closed } = await patientFrames(engine, photo);

  // The reference: the main face with some margin (no neighbour in view), as a 640x480 JPEG.
  const meta = await sharp(photo).metadata();
  const W = meta.width ?? 0;
  const H = meta.height ?? 0;
  const found = await engine.analyze(Buffer.from(photo), { stages: [], maxFaces: 0 });
  const face = found.faces.find((f) => f.primary);
  if (!face) throw new Error(`No face found in ${PATIENT_PHOTO}.`);
  const height = Math.min(H, face.box.height * 1.6);
  const width = Math.min(W, (height * 4) / 3);
  const left = Math.round(Math.min(Math.max(0, face.box.x + face.box.width / 2 - width / 2), W - width));
  const top = Math.round(Math.min(Math.max(0, face.box.y + face.box.height / 2 - height / 2), H - height));
  const reference = await sharp(photo)
    .extract({ left, top, width: Math.floor(Math.min(width, W - left)), height: Math.floor(Math.min(height, H - top)) })
    .resize(640, 480, { fit: 'fill' })
    .jpeg({ quality: 90 })
    .toBuffer();
  const check = await engine.analyze(Buffer.from(reference), { stages: [], maxFaces: 0 });
  if (check.faces.length !== 1) throw new Error(`The reference photo shows ${check.faces.length} faces, not 1.`);
  return { source: `${PATIENT_PHOTO} (fixture), 320x240 JPEG q85`, open, closed, reference };
}

/**
 * 320x240 JPEG frames cut around the main face of a photo, a little shifted from one to the next (a live person
 * moves), plus the same with a synthetic blink (the eyes painted shut). Needs `sharp` (a devDependency).
 */
export async function patientFrames(engine: FaceEngine, photo: Buffer): Promise<{ open: Buffer[]; closed: Buffer[] }> {
  const sharp = (await import('sharp')).default;
  const meta = await sharp(photo).metadata();
  const W = meta.width ?? 0;
  const H = meta.height ?? 0;
  const found = await engine.analyze(Buffer.from(photo), { stages: [], maxFaces: 0 });
  const face = found.faces.find((f) => f.primary);
  if (!face) throw new Error('No face found in the photo.');
  const frames = { open: [] as Buffer[], closed: [] as Buffer[] };
  for (const [dx, dy] of [
    [0, 0],
    [0.01, 0],
    [0, 0.01],
    [-0.01, 0.005],
  ]) {
    const r = regionAround(face.box, W, H);
    const left = Math.max(0, Math.min(W - r.width, Math.round(r.left + dx * r.width)));
    const top = Math.max(0, Math.min(H - r.height, Math.round(r.top + dy * r.height)));
    const data = await sharp(photo)
      .extract({ left, top, width: r.width, height: r.height })
      .resize(320, 240, { fit: 'fill' })
      .removeAlpha()
      .raw()
      .toBuffer();
    const rgb = { data, width: 320, height: 240 };
    const jpeg = (f: typeof rgb) =>
      sharp(f.data, { raw: { width: 320, height: 240, channels: 3 } })
        .jpeg({ quality: 85 })
        .toBuffer();
    const open = await jpeg(rgb);
    const a = await engine.track(Buffer.from(open));
    const primary = a.faces.find((f) => f.primary);
    if (!primary?.landmarks) throw new Error('The face is lost in the 320x240 frame.');
    frames.open.push(open);
    frames.closed.push(await jpeg(closeEyes(rgb, primary.landmarks)));
  }
  return frames;
}

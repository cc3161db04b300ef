import * as fs from 'node:fs';
import * as path from 'node:path';
import { patientFrames } from '../../src/cli/simulate';
import type { FaceEngine } from '../../src/engine';
import { defaultFixtureDir } from '../../src/engine/models';

/**
 * The frames every benchmark uses, made at run time from a fixture photo (`npm run models` fetches it) and kept in
 * memory only: webcam-like 320x240 JPEGs of one real face (slightly shifted from one to the next, as a live person
 * moves), the same with the eyes shut (for the blink), and a 640x480 reference photo for enrollment.
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

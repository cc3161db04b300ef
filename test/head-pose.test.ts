import * as fs from 'node:fs';
import sharp from 'sharp';
import { FaceEngine } from '../src/engine/engine';
import type { Analysis } from '../src/engine/types';
import { createModel, encodeJpeg } from '../src/liveness/pad/render';
import { loadPadFace } from '../src/liveness/pad/source';
import { sharedFaces, sharedFacesMissing } from './support/shared-faces';

// Head pose (solvePnP of the landmarks onto a generic 3D face) against faces whose turn is known: symmetric faces
// (frontal by construction) and faces turned by a known amount by the 3D face model of docs/liveness.md.
const missing = sharedFacesMissing();
if (missing) console.warn(`head-pose tests skipped: ${missing}`);

const yawOf = (a: Analysis): number | undefined => a.faces.find((f) => f.primary)?.pose?.yaw;

(missing ? describe.skip : describe)('head pose against known turns', () => {
  let engine: FaceEngine;
  /** One photo per person of the labelled set. */
  let photos: string[];
  beforeAll(async () => {
    engine = await FaceEngine.open({ workers: 2 });
    const seen = new Set<string>();
    photos = sharedFaces()
      .filter((e) => !seen.has(e.identity) && seen.add(e.identity))
      .map((e) => e.path);
  });
  afterAll(() => engine?.close());

  it('reads a face and its mirror image with the same |yaw| within 3 degrees, signs opposed', async () => {
    const diffs: number[] = [];
    for (const entry of sharedFaces()) {
      const photo = fs.readFileSync(entry.path);
      const mirrored = await sharp(photo).flop().jpeg({ quality: 95 }).toBuffer();
      const [a, b] = await Promise.all([engine.track(Buffer.from(photo)), engine.track(mirrored)]);
      if (a.faces.length !== 1 || b.faces.length !== 1) continue; // several people: the primary may differ
      const ya = a.faces[0].pose!.yaw;
      const yb = b.faces[0].pose!.yaw;
      diffs.push(Math.abs(Math.abs(ya) - Math.abs(yb)));
      if (Math.abs(ya) > 5) expect(Math.sign(ya)).toBe(-Math.sign(yb));
    }
    expect(diffs.length).toBeGreaterThanOrEqual(40);
    expect(Math.max(...diffs)).toBeLessThan(3);
  });

  it('reads a symmetric face (one half and its mirror image) as frontal, within 8 degrees', async () => {
    const yaws: number[] = [];
    for (const file of photos) {
      const photo = fs.readFileSync(file);
      const found = await engine.track(Buffer.from(photo));
      const face = found.faces.find((f) => f.primary);
      if (found.faces.length !== 1 || !face?.landmarks) continue;
      // Split at the midline of the eyes and the mouth, keep the image's left half and mirror it.
      const lm = face.landmarks;
      const mid = Math.round((lm[2 * 39] + lm[2 * 42] + lm[2 * 48] + lm[2 * 54]) / 4);
      const { width = 0, height = 0 } = await sharp(photo).metadata();
      const half = Math.min(mid, width - mid, Math.round(face.box.width * 1.5));
      if (half < 40) continue;
      const left = await sharp(photo)
        .extract({ left: mid - half, top: 0, width: half, height })
        .toBuffer();
      const composite = await sharp({ create: { width: 2 * half, height, channels: 3, background: '#000' } })
        .composite([
          { input: left, left: 0, top: 0 },
          { input: await sharp(left).flop().toBuffer(), left: half, top: 0 },
        ])
        .jpeg({ quality: 95 })
        .toBuffer();
      const yaw = yawOf(await engine.track(composite));
      if (yaw !== undefined) yaws.push(yaw);
    }
    expect(yaws.length).toBeGreaterThanOrEqual(15);
    expect(Math.max(...yaws.map(Math.abs))).toBeLessThan(8);
  });

  it('follows turns of known size: a rendered 28-31 degree turn reads the right way, within 6 degrees on average', async () => {
    const errors: number[] = [];
    for (const file of photos) {
      const face = await loadPadFace(engine, file);
      if (!face) continue;
      for (const direction of ['left', 'right'] as const) {
        const model = createModel('genuine', face.model, { seed: 7, spontaneousBlinks: false });
        const readings: { truth: number; read: number }[] = [];
        // The start, then around the peak (the model reacts in 400-900 ms, turns in 300-500 ms, holds 200-600 ms).
        for (const t of [0, 1000, 1100, 1200, 1300, 1400, 1500, 1600, 1700, 1800]) {
          const frame = model.frameAt(t, () => null, { turn: { at: 300, direction } });
          const read = yawOf(await engine.track(await encodeJpeg(frame, 90)));
          if (read !== undefined) readings.push({ truth: frame.truth.yaw, read });
        }
        const start = readings[0];
        // Only faces that read frontal to begin with: the model turns the photo's face, whatever its own pose.
        if (!start || Math.abs(start.read) > 8) continue;
        const peak = readings.reduce((p, r) => (Math.abs(r.truth) > Math.abs(p.truth) ? r : p));
        const truth = peak.truth - start.truth;
        const read = peak.read - start.read;
        expect(Math.sign(read)).toBe(direction === 'left' ? 1 : -1);
        errors.push(Math.abs(read - truth));
      }
    }
    expect(errors.length).toBeGreaterThanOrEqual(16);
    // Seen here: mean 4 degrees, worst 12.5 (the face model's generic depth, and the landmarks' own error).
    expect(errors.reduce((a, b) => a + b, 0) / errors.length).toBeLessThan(6);
    expect(Math.max(...errors)).toBeLessThan(15);
  }, 180_000);
});

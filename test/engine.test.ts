import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { cosineSimilarity, FaceEngine } from '../src/engine/engine';
import { EngineError } from '../src/engine/errors';
import { FRAME_JPEG_LIMITS, inspectJpeg } from '../src/engine/jpeg-structure';
import type { Analysis, Face } from '../src/engine/types';
import {
  encodeJpeg,
  fixturePhotos,
  jpegMutations,
  missingFixturesReason,
  toBgr,
  toRgba,
  webcamJpeg,
  webcamRgb,
  closeEyes,
  type RawFrame,
} from './support/frames';

// Real models and real photos. The photos come with `npm run models`; without them these tests cannot say anything.
// Locally they skip with the reason; in CI, whose set-up fetches them, a missing photo is a failure.
const missing = missingFixturesReason();
if (missing && process.env.CI) throw new Error(missing);
if (missing) console.warn(`engine tests skipped: ${missing}`);
const describeWithPhotos = missing ? describe.skip : describe;

/** Faces a person counts in each sample photo (checked by eye). */
const FACES_PER_PHOTO = [3, 3, 3, 4, 5, 4];

const primary = (a: Analysis): Face => {
  const f = a.faces.find((x) => x.primary);
  if (!f) throw new Error('no primary face');
  return f;
};

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (err) {
    expect(err).toBeInstanceOf(EngineError);
    return (err as EngineError).code;
  }
}

describeWithPhotos('face engine on real photos', () => {
  let engine: FaceEngine;
  let frame: Buffer; // 320x240 JPEG of one face
  let frameRgb: RawFrame;

  beforeAll(async () => {
    engine = await FaceEngine.open({ workers: 2, queueSize: 64 });
    frameRgb = await webcamRgb(2);
    frame = await encodeJpeg(frameRgb);
  });
  afterAll(() => engine?.close());

  it('finds every face in the sample photos and marks one primary', async () => {
    const photos = fixturePhotos();
    for (let i = 0; i < photos.length; i++) {
      const a = await engine.analyze(fs.readFileSync(photos[i]), { maxFaces: 16 });
      expect({ photo: i + 1, faces: a.faces.length }).toEqual({ photo: i + 1, faces: FACES_PER_PHOTO[i] });
      expect(a.faces.filter((f) => f.primary)).toHaveLength(1);
      for (const f of a.faces) {
        expect(f.score).toBeGreaterThanOrEqual(0.7);
        expect(f.box.x).toBeGreaterThanOrEqual(0);
        expect(f.box.x + f.box.width).toBeLessThanOrEqual(a.width);
        expect(f.landmarks).toHaveLength(136);
      }
    }
  });

  it('gives a unit-length 512-d embedding, eyes, pose, quality and light on a full call', async () => {
    const a = await engine.full(Buffer.from(frame));
    expect(a.width).toBe(320);
    expect(a.height).toBe(240);
    const f = primary(a);
    expect(f.embedding).toHaveLength(512);
    expect(cosineSimilarity(f.embedding!, f.embedding!)).toBeCloseTo(1, 4);
    // The passive model no longer runs on every full call (docs/liveness.md); it is still a stage of its own.
    expect(f.liveness).toBeUndefined();
    const passive = primary(await engine.analyze(Buffer.from(frame), { stages: ['liveness'] })).liveness!;
    expect(passive).toBeGreaterThanOrEqual(0);
    expect(passive).toBeLessThanOrEqual(1);
    for (const region of ['face', 'forehead', 'nose', 'leftCheek', 'rightCheek', 'chin', 'frame'] as const) {
      const rgb = f.light![region]!;
      expect(rgb).toHaveLength(3);
      for (const c of rgb) expect(c).toBeGreaterThan(0);
    }
    expect(f.eyes!.left).toBeGreaterThan(0.5); // eyes open in the photo
    expect(f.eyes!.right).toBeGreaterThan(0.5);
    expect(Math.abs(f.pose!.yaw)).toBeLessThan(45);
    expect(f.quality!.faceSize).toBeGreaterThan(15);
    expect(f.quality!.sharpness).toBeGreaterThan(0);
    expect(a.timings.total).toBeGreaterThan(0);
  });

  it('keeps the track call to detect, landmarks, eyes, pose, quality and light', async () => {
    const f = primary(await engine.track(Buffer.from(frame)));
    expect(f.landmarks).toHaveLength(136);
    expect(f.eyes).toBeDefined();
    expect(f.quality).toBeDefined();
    expect(f.light).toBeDefined();
    expect(f.embedding).toBeUndefined();
    expect(f.liveness).toBeUndefined();
  });

  it('keeps embeddings of the same face close across re-encoding, shift and scale', async () => {
    const ref = primary(await engine.full(Buffer.from(frame))).embedding!;
    const variants = {
      quality50: await encodeJpeg(frameRgb, { quality: 50 }),
      shifted: await webcamJpeg(2, { width: 320, height: 240, shiftX: 0.06, shiftY: -0.04 }),
      smaller: await webcamJpeg(2, { width: 320, height: 240, faceFraction: 0.3 }),
      vga: await webcamJpeg(2, { width: 640, height: 480 }),
    };
    for (const [name, jpeg] of Object.entries(variants)) {
      const sim = cosineSimilarity(ref, primary(await engine.full(jpeg)).embedding!);
      expect({ name, close: sim > 0.6 }).toEqual({ name, close: true });
    }
  });

  it('keeps different people apart', async () => {
    const embeddings: Float32Array[] = [];
    for (let i = 0; i < 6; i++) embeddings.push(primary(await engine.full(await webcamJpeg(i))).embedding!);
    for (let i = 0; i < embeddings.length; i++) {
      for (let j = i + 1; j < embeddings.length; j++) {
        const sim = cosineSimilarity(embeddings[i], embeddings[j]);
        expect({ pair: [i + 1, j + 1], apart: sim < 0.4 }).toEqual({ pair: [i + 1, j + 1], apart: true });
      }
    }
  });

  it('reads synthetically closed eyes as closed', async () => {
    const open = primary(await engine.track(Buffer.from(frame)));
    const closed = closeEyes(frameRgb, open.landmarks!);
    const f = primary(await engine.track(await encodeJpeg(closed)));
    expect(f.eyes!.left).toBeLessThan(0.5);
    expect(f.eyes!.right).toBeLessThan(0.5);
  });

  it('turns the yaw sign over in a mirrored frame', async () => {
    const turned = await webcamRgb(2, { width: 320, height: 240 });
    const a = primary(await engine.track(await encodeJpeg(turned)));
    const mirrored = await sharp(turned.data, { raw: { width: 320, height: 240, channels: 3 } })
      .flop()
      .jpeg()
      .toBuffer();
    const b = primary(await engine.track(mirrored));
    expect(Math.abs(a.pose!.yaw + b.pose!.yaw)).toBeLessThan(3);
    expect(Math.abs(a.pose!.roll + b.pose!.roll)).toBeLessThan(3);
  });

  it('tracks a face in a given box without the detector, with the same landmarks', async () => {
    const detected = primary(await engine.track(Buffer.from(frame)));
    const tracked = await engine.track(Buffer.from(frame), { box: detected.box });
    expect(tracked.faces).toHaveLength(1);
    const f = primary(tracked);
    expect(f.score).toBe(0);
    let worst = 0;
    for (let i = 0; i < 136; i++) worst = Math.max(worst, Math.abs(f.landmarks![i] - detected.landmarks![i]));
    expect(worst).toBeLessThan(0.01);
    expect(f.pose!.yaw).toBeCloseTo(detected.pose!.yaw, 3);
    await expect(
      engine.track(Buffer.from(frame), { box: { x: 0, y: 0, width: 4, height: NaN } }),
    ).rejects.toMatchObject({
      code: 'invalid_argument',
    });
  });

  it('reuses landmarks in the same box while the face stays put, and runs the network once it moved', async () => {
    const stages = ['landmarks', 'light', 'anchor'] as const;
    const detected = primary(await engine.track(Buffer.from(frame), { stages }));
    expect(detected.anchor).toHaveLength(64);
    expect(detected.landmarksReused).toBeUndefined();
    const reuseLandmarks = { landmarks: detected.landmarks!, anchor: detected.anchor!, maxShift: 2 };
    /** The frame with its content moved dx pixels to the right (the left edge repeated). */
    const shifted = (dx: number): Promise<Buffer> => {
      const out = { ...frameRgb, data: Buffer.alloc(frameRgb.data.length) };
      for (let y = 0; y < frameRgb.height; y++) {
        for (let x = 0; x < frameRgb.width; x++) {
          const from = (y * frameRgb.width + Math.max(0, x - dx)) * 3;
          frameRgb.data.copy(out.data, (y * frameRgb.width + x) * 3, from, from + 3);
        }
      }
      return encodeJpeg(out);
    };
    const box = detected.box;
    // Still, and one pixel over: the landmarks are the caller's, moved along with the face; no network ran.
    for (const dx of [0, 1]) {
      const f = primary(await engine.track(await shifted(dx), { box, stages, reuseLandmarks }));
      expect({ dx, reused: f.landmarksReused }).toEqual({ dx, reused: true });
      expect(Math.abs(f.landmarks![60] - detected.landmarks![60] - dx)).toBeLessThan(0.75);
      expect(f.light!.nose).not.toBeNull();
    }
    // Six pixels over: computed afresh, and they follow the face.
    const moved = primary(await engine.track(await shifted(6), { box, stages, reuseLandmarks }));
    expect(moved.landmarksReused).toBeUndefined();
    expect(moved.landmarks![60] - detected.landmarks![60]).toBeGreaterThan(4);
    // Reuse needs the box the anchor was taken in, and well-formed numbers.
    for (const bad of [
      { box: undefined, reuseLandmarks },
      { box, reuseLandmarks: { ...reuseLandmarks, anchor: new Float32Array(10) } },
      { box, reuseLandmarks: { ...reuseLandmarks, landmarks: new Float32Array(136).fill(NaN) } },
      { box, reuseLandmarks: { ...reuseLandmarks, maxShift: -1 } },
    ]) {
      await expect(engine.track(Buffer.from(frame), { stages, ...bad })).rejects.toMatchObject({
        code: 'invalid_argument',
      });
    }
  });

  it('lights the face region more than the frame when only the face is brightened', async () => {
    const f = primary(await engine.track(Buffer.from(frame)));
    const lit = { ...frameRgb, data: Buffer.from(frameRgb.data) };
    const { x, y, width, height } = f.box;
    for (let yy = Math.round(y); yy < Math.round(y + height); yy++) {
      for (let xx = Math.round(x); xx < Math.round(x + width); xx++) {
        const i = (yy * lit.width + xx) * 3; // RGB: add blue only
        lit.data[i + 2] = Math.min(255, lit.data[i + 2] + 40);
      }
    }
    const g = primary(await engine.track(await encodeJpeg(lit)));
    const gain = (r: 'face' | 'nose' | 'surround') => g.light![r]![2] - f.light![r]![2];
    expect(gain('face')).toBeGreaterThan(20);
    expect(gain('nose')).toBeGreaterThan(20);
    expect(Math.abs(gain('surround'))).toBeLessThan(5);
    expect(Math.abs(g.light!.face![0] - f.light!.face![0])).toBeLessThan(5); // red untouched
  });

  it('accepts raw RGBA, BGR and I420 frames and agrees with the JPEG result', async () => {
    const ref = primary(await engine.full(Buffer.from(frame))).embedding!;
    const rgba = toRgba(frameRgb);
    const bgr = toBgr(frameRgb);
    const i420 = toI420(frameRgb);
    for (const [format, data] of [
      ['rgba', rgba.data],
      ['bgr', bgr.data],
      ['i420', i420],
    ] as const) {
      const a = await engine.full(data, { format, width: 320, height: 240 });
      expect({ format, sim: cosineSimilarity(ref, primary(a).embedding!) > 0.9 }).toEqual({ format, sim: true });
    }
  });

  it('zeroes the caller buffer once copied, unless told not to', async () => {
    const a = Buffer.from(frame);
    await engine.track(a);
    expect(a.every((b) => b === 0)).toBe(true);
    const b = Buffer.from(frame);
    await engine.track(b, { wipeInput: false });
    expect(b.equals(frame)).toBe(true);
  });

  it('gives the same results for parallel calls as for serial ones', async () => {
    const frames = await Promise.all([0, 1, 2, 3, 4, 5].map((i) => webcamJpeg(i)));
    const serial: Analysis[] = [];
    const every = { stages: ['landmarks', 'embedding', 'liveness', 'eyes', 'pose', 'quality', 'light'] as const };
    for (const f of frames) serial.push(await engine.analyze(Buffer.from(f), every));
    const parallel = await Promise.all(
      Array.from({ length: 24 }, (_, k) => engine.analyze(Buffer.from(frames[k % frames.length]), every)),
    );
    parallel.forEach((p, k) => {
      const s = serial[k % frames.length];
      expect(p.faces.length).toBe(s.faces.length);
      const d = maxAbsDiff(primary(p).embedding!, primary(s).embedding!);
      expect(d).toBeLessThan(1e-5);
      expect(primary(p).liveness).toBeCloseTo(primary(s).liveness!, 5);
      expect(primary(p).landmarks).toEqual(primary(s).landmarks);
    });
  });

  it('refuses each kind of bad input with a typed error and carries on', async () => {
    const png = await sharp(frameRgb.data, { raw: { width: 320, height: 240, channels: 3 } })
      .png()
      .toBuffer();
    const tiff = await sharp(frameRgb.data, { raw: { width: 320, height: 240, channels: 3 } })
      .tiff()
      .toBuffer();
    const webp = await sharp(frameRgb.data, { raw: { width: 320, height: 240, channels: 3 } })
      .webp()
      .toBuffer();
    const cases: Array<[string, () => Promise<unknown>]> = [
      ['frame_empty', () => engine.analyze(Buffer.alloc(0))],
      ['frame_truncated', () => engine.analyze(Buffer.from(frame.subarray(0, Math.floor(frame.length * 0.6))))],
      [
        'frame_corrupt',
        () => engine.analyze(Buffer.concat([Buffer.from([0xff, 0xd8, 0xff]), Buffer.alloc(500, 0x37)])),
      ],
      ['frame_corrupt', () => engine.analyze(Buffer.from('not an image at all'))],
      ['frame_format_unsupported', () => engine.analyze(png)],
      ['frame_format_unsupported', () => engine.analyze(tiff)],
      ['frame_format_unsupported', () => engine.analyze(webp)],
      ['frame_too_large', () => engine.analyze(withDimensions(frame, 60000, 60000))],
      ['frame_dimensions_invalid', () => engine.analyze(withDimensions(frame, 0, 240))],
      ['frame_dimensions_invalid', () => engine.analyze(Buffer.alloc(16), { format: 'rgba', width: 0, height: 0 })],
      ['frame_size_mismatch', () => engine.analyze(Buffer.alloc(1000), { format: 'rgba', width: 320, height: 240 })],
      [
        'frame_size_mismatch',
        () => engine.analyze(Buffer.alloc(320 * 240 * 3), { format: 'i420', width: 320, height: 240 }),
      ],
      ['frame_too_large', () => engine.analyze(Buffer.alloc(16), { format: 'bgr', width: 60000, height: 60000 })],
      ['invalid_argument', () => engine.analyze(Buffer.from(frame), { format: 'png' as never })],
      ['invalid_argument', () => engine.analyze('abc' as unknown as Buffer)],
    ];
    for (const [expected, call] of cases) {
      expect(await codeOf(call())).toBe(expected);
    }
    expect(primary(await engine.track(Buffer.from(frame))).landmarks).toHaveLength(136);
  });

  // Fewer under AddressSanitizer, where each call is ~10x slower.
  const fuzzCount = Number(process.env.FACEID_FUZZ_COUNT ?? 3000);

  it('survives thousands of mutated JPEGs with typed errors and unchanged results after', async () => {
    const before = primary(await engine.full(Buffer.from(frame))).embedding!;
    const codes = new Map<string, number>();
    // The JavaScript structure check that runs before the engine on every desk frame (src/engine/jpeg-structure.ts)
    // must never refuse a frame the engine would decode: mutations it refuses that the engine took.
    const refusedButDecoded: string[] = [];
    const batch: Promise<string>[] = [];
    const flush = async () => {
      for (const c of await Promise.all(batch)) codes.set(c, (codes.get(c) ?? 0) + 1);
      batch.length = 0;
    };
    for (const m of jpegMutations(frame, fuzzCount, 20261128)) {
      let structure = 'ok';
      try {
        inspectJpeg(m.data, FRAME_JPEG_LIMITS);
      } catch (err) {
        structure = (err as EngineError).code;
      }
      batch.push(
        codeOf(engine.track(m.data)).then((code) => {
          if (structure !== 'ok' && code === 'ok') refusedButDecoded.push(`${m.kind} seed ${m.seed}: ${structure}`);
          return code;
        }),
      );
      if (batch.length === 8) await flush(); // stay under the queue bound
    }
    await flush();
    expect(refusedButDecoded).toEqual([]);
    for (const code of codes.keys()) {
      expect(['ok', 'frame_corrupt', 'frame_truncated', 'frame_too_large', 'frame_dimensions_invalid']).toContain(code);
    }
    expect([...codes.values()].reduce((a, b) => a + b, 0)).toBe(fuzzCount);
    const after = primary(await engine.full(Buffer.from(frame))).embedding!;
    expect(maxAbsDiff(before, after)).toBeLessThan(1e-6);
  });
});

describeWithPhotos('face engine capacity and lifecycle', () => {
  it('refuses work beyond the queue bound with busy, and keeps fs responsive while saturated', async () => {
    const engine = await FaceEngine.open({ workers: 1, queueSize: 2 });
    try {
      const frame = await webcamJpeg(0);
      const results = await Promise.all(Array.from({ length: 10 }, () => codeOf(engine.full(Buffer.from(frame)))));
      expect(results.filter((c) => c === 'busy').length).toBe(7); // 1 running + 2 queued
      expect(results.filter((c) => c === 'ok').length).toBe(3);
      expect(engine.stats().rejected).toBe(7);
    } finally {
      await engine.close();
    }
  });

  it('runs jobs off libuv threads: a file read finishes while the engine is still busy', async () => {
    const engine = await FaceEngine.open({ workers: 2, queueSize: 64 });
    try {
      const frame = await webcamJpeg(0);
      const jobs = Array.from({ length: 40 }, () => engine.full(Buffer.from(frame)));
      const file = path.join(os.tmpdir(), `faceid-fs-probe-${process.pid}`);
      fs.writeFileSync(file, 'probe');
      // Saturate libuv's default pool size (4) with reads: all must finish while inference is queued.
      await Promise.all(Array.from({ length: 8 }, () => fs.promises.readFile(file)));
      const pendingAfterReads = engine.stats().queued;
      fs.unlinkSync(file);
      await Promise.all(jobs);
      expect(pendingAfterReads).toBeGreaterThan(0);
    } finally {
      await engine.close();
    }
  });

  it('closes and reopens engines in turn, with jobs in flight, and each gives the same answer', async () => {
    // Under AddressSanitizer (bash scripts/dev.sh asan) this is the check on native destruction order: networks,
    // their recorded blocks and the frame copies are freed at every close.
    const frame = await webcamJpeg(0);
    let first: Float32Array | undefined;
    for (let round = 0; round < 3; round++) {
      const engine = await FaceEngine.open({ workers: 2 });
      const jobs = Array.from({ length: 4 }, () => engine.full(Buffer.from(frame)));
      const closing = engine.close();
      const results = await Promise.all(jobs);
      await closing;
      for (const r of results) {
        const embedding = r.faces[0]?.embedding;
        expect(embedding).toBeDefined();
        first ??= Float32Array.from(embedding!);
        expect(maxAbsDiff(first, embedding!)).toBeLessThan(1e-5);
      }
    }
  });

  it('keeps process-wide settings process-wide: one thread count among open engines, no wipe switch', async () => {
    // The default count, so that an engine another test file left open cannot make this one fail.
    const a = await FaceEngine.open({ workers: 1 });
    try {
      const other = a.options.threadsPerJob === 1 ? 2 : 1;
      expect(await codeOf(FaceEngine.open({ workers: 1, threadsPerJob: other }))).toBe('invalid_argument');
      const b = await FaceEngine.open({ workers: 1, threadsPerJob: a.options.threadsPerJob });
      await b.close();
    } finally {
      await a.close();
    }
    if (!process.env.FACEID_ADDON) {
      expect(await codeOf(FaceEngine.open({ workers: 1, unsafeDisableWipe: true }))).toBe('invalid_argument');
    }
  });

  it('finishes jobs in flight on close, then refuses new ones', async () => {
    const engine = await FaceEngine.open({ workers: 1 });
    const frame = await webcamJpeg(0);
    const inFlight = engine.full(Buffer.from(frame));
    await engine.close();
    expect((await inFlight).faces.length).toBeGreaterThan(0);
    expect(await codeOf(engine.analyze(Buffer.from(frame)))).toBe('engine_closed');
  });
});

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

/** Copies a JPEG and rewrites the dimensions in its start-of-frame header. */
function withDimensions(jpeg: Buffer, width: number, height: number): Buffer {
  const out = Buffer.from(jpeg);
  for (let i = 2; i + 9 < out.length; ) {
    const marker = out[i + 1];
    const len = out.readUInt16BE(i + 2);
    if (marker >= 0xc0 && marker <= 0xc2) {
      out.writeUInt16BE(height, i + 5);
      out.writeUInt16BE(width, i + 7);
      return out;
    }
    i += 2 + len;
  }
  throw new Error('no SOF marker');
}

/** RGB to I420 (BT.601, as browsers and webcams produce). */
function toI420(f: RawFrame): Buffer {
  const { width: w, height: h, data } = f;
  const out = Buffer.alloc((w * h * 3) / 2);
  const u0 = w * h;
  const v0 = u0 + (w * h) / 4;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = (y * w + x) * 3;
      const [r, g, b] = [data[i], data[i + 1], data[i + 2]];
      out[y * w + x] = Math.round(0.257 * r + 0.504 * g + 0.098 * b + 16);
      if (y % 2 === 0 && x % 2 === 0) {
        const c = (y / 2) * (w / 2) + x / 2;
        out[u0 + c] = Math.round(-0.148 * r - 0.291 * g + 0.439 * b + 128);
        out[v0 + c] = Math.round(0.439 * r - 0.368 * g - 0.071 * b + 128);
      }
    }
  }
  return out;
}

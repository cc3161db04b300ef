/*
 * The JPEG structure check (src/engine/jpeg-structure.ts) that bounds the work of a frame or photo before the
 * decoder sees it: real encoder output passes, every hostile kind is refused with its code, and thousands of mutated
 * JPEGs and bombs only ever give typed errors. No engine here: the check runs in JavaScript on the bytes alone (its
 * agreement with the engine on mutated frames is checked in test/engine.test.ts).
 */
import sharp from 'sharp';
import { EngineError } from '../src/engine/errors';
import {
  FRAME_JPEG_LIMITS,
  inspectJpeg,
  PHOTO_JPEG_LIMITS,
  type JpegLimits,
  type JpegStructure,
} from '../src/engine/jpeg-structure';
import { jpegMutations } from './support/frames';
import { EMPTY_SCAN_BYTES, hostileFrames, MAX_FRAME_PAYLOAD, scanBomb, SOF } from './support/jpeg-bombs';

/** A smooth synthetic picture (no fixture needed). */
function picture(width: number, height: number): Buffer {
  const px = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      px[i] = (x * 255) / width;
      px[i + 1] = (y * 255) / height;
      px[i + 2] = ((x + y) * 7) & 0xff;
    }
  }
  return px;
}

type JpegOptions = NonNullable<Parameters<ReturnType<typeof sharp>['jpeg']>[0]>;

const encode = (width: number, height: number, jpeg: JpegOptions, grey = false) => {
  const img = sharp(picture(width, height), { raw: { width, height, channels: 3 } });
  return (grey ? img.toColourspace('b-w') : img).jpeg(jpeg).toBuffer();
};

function outcome(data: Buffer, limits: JpegLimits): { code: string; structure?: JpegStructure | null } {
  try {
    return { code: 'ok', structure: inspectJpeg(data, limits) };
  } catch (err) {
    if (!(err instanceof EngineError)) throw err; // anything but a typed refusal fails the test
    return { code: err.code };
  }
}

describe('JPEG structure check', () => {
  it('passes what browsers and cameras encode: baseline frames, progressive photos', async () => {
    for (const [w, h] of [
      [320, 240],
      [640, 480],
      [1920, 1080],
    ]) {
      for (const chromaSubsampling of ['4:2:0', '4:4:4'] as const) {
        const s = inspectJpeg(await encode(w, h, { quality: 85, chromaSubsampling }), FRAME_JPEG_LIMITS);
        expect(s).toEqual({ width: w, height: h, components: 3, process: 'baseline', scans: 1 });
      }
    }
    expect(inspectJpeg(await encode(320, 240, { quality: 60 }, true), FRAME_JPEG_LIMITS)).toMatchObject({
      components: 1,
      scans: 1,
    });

    const progressive = await encode(1280, 960, { quality: 90, progressive: true });
    const photo = inspectJpeg(progressive, PHOTO_JPEG_LIMITS)!;
    expect(photo).toMatchObject({ width: 1280, height: 960, process: 'progressive' });
    expect(photo.scans).toBeGreaterThan(4);
    expect(photo.scans).toBeLessThanOrEqual(PHOTO_JPEG_LIMITS.maxScans);
    // mozjpeg's scan optimisation makes more scans than libjpeg's default script: still well within the limit.
    const mozjpeg = inspectJpeg(await encode(1280, 960, { quality: 90, mozjpeg: true }), PHOTO_JPEG_LIMITS)!;
    expect(mozjpeg.scans).toBeLessThanOrEqual(PHOTO_JPEG_LIMITS.maxScans);
    // A webcam frame never is progressive.
    expect(outcome(progressive, FRAME_JPEG_LIMITS).code).toBe('frame_too_complex');
  });

  it('leaves bytes that are not a JPEG to the engine (it names the format from the first bytes)', async () => {
    expect(inspectJpeg(Buffer.from('not a jpeg at all'), FRAME_JPEG_LIMITS)).toBeNull();
    expect(
      inspectJpeg(
        await sharp(picture(8, 8), { raw: { width: 8, height: 8, channels: 3 } })
          .png()
          .toBuffer(),
        FRAME_JPEG_LIMITS,
      ),
    ).toBeNull();
  });

  it('generates the progressive scan bomb as described: one WebSocket message, about 26,000 empty scans', () => {
    const bomb = scanBomb();
    expect(bomb.length).toBeLessThanOrEqual(MAX_FRAME_PAYLOAD);
    expect(bomb.length).toBeGreaterThan(MAX_FRAME_PAYLOAD - EMPTY_SCAN_BYTES);
    // Counted with the photo limits lifted: the structure is what it claims.
    const s = inspectJpeg(bomb, { maxPixels: 1920 * 1080, maxScans: 1e6, progressive: true })!;
    expect(s).toMatchObject({ width: 1920, height: 1080, process: 'progressive' });
    expect(s.scans).toBeGreaterThan(25_000);
  });

  it.each(hostileFrames().map((h) => [h.name, h] as const))('refuses %s', (_name, hostile) => {
    expect(outcome(hostile.data, FRAME_JPEG_LIMITS).code).toBe(hostile.code);
  });

  it('allows enrollment photos progressive with up to 64 scans, not more, not arithmetic-coded', () => {
    const photo = (scans: number) => scanBomb({ width: 640, height: 480, scans: scans - 1 });
    expect(outcome(photo(64), PHOTO_JPEG_LIMITS)).toMatchObject({
      code: 'ok',
      structure: { scans: 64, process: 'progressive' },
    });
    expect(outcome(photo(65), PHOTO_JPEG_LIMITS).code).toBe('frame_too_complex');
    expect(outcome(scanBomb(), PHOTO_JPEG_LIMITS).code).toBe('frame_too_complex');
    expect(
      outcome(scanBomb({ sof: SOF.arithmeticProgressive, width: 640, height: 480, scans: 3 }), PHOTO_JPEG_LIMITS).code,
    ).toBe('frame_too_complex');
    expect(outcome(scanBomb({ width: 4097, height: 4096, scans: 1 }), PHOTO_JPEG_LIMITS).code).toBe('frame_too_large');
  });

  // The same seed as the engine's fuzz test, so a failure there and here names the same bytes.
  const fuzzCount = Number(process.env.FACEID_FUZZ_COUNT ?? 3000);

  it('gives only typed answers on thousands of mutated frames and bombs, and never lets a bomb through', async () => {
    const frame = await encode(320, 240, { quality: 85 });
    const bomb = scanBomb();
    const codes = new Map<string, number>();
    const count = (c: string) => codes.set(c, (codes.get(c) ?? 0) + 1);
    for (const m of jpegMutations(frame, fuzzCount, 20261128)) count(outcome(m.data, FRAME_JPEG_LIMITS).code);
    for (const m of jpegMutations(bomb, 500, 7)) {
      const r = outcome(m.data, FRAME_JPEG_LIMITS);
      count(r.code);
      // Whatever a mutation turned the bomb into, what passes is cheap to decode: sequential, a few scans, small.
      if (r.structure) {
        expect(r.structure.process).not.toBe('progressive');
        expect(r.structure.scans).toBeLessThanOrEqual(FRAME_JPEG_LIMITS.maxScans);
        expect(r.structure.width * r.structure.height).toBeLessThanOrEqual(FRAME_JPEG_LIMITS.maxPixels);
      }
    }
    for (const code of codes.keys()) {
      expect([
        'ok',
        'frame_corrupt',
        'frame_truncated',
        'frame_too_complex',
        'frame_too_large',
        'frame_dimensions_invalid',
        'frame_format_unsupported',
      ]).toContain(code);
    }
    expect(codes.get('ok')).toBeGreaterThan(0);
    expect([...codes.values()].reduce((a, b) => a + b, 0)).toBe(fuzzCount + 500);
  });
});

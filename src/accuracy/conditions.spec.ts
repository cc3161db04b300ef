import sharp from 'sharp';
import type { RgbFrame } from '../cli/synthetic';
import {
  CONDITION_SPECS,
  CONDITIONS,
  ConditionRenderer,
  FRAME_HEIGHT,
  FRAME_WIDTH,
  parseConditions,
  resolveCondition,
  type ConditionName,
} from './conditions';

// A synthetic photo (no real face): a mid-grey textured background and a red "face" block where the box says, so
// that the geometry and the light can be measured on the frames.
const PHOTO_W = 400;
const PHOTO_H = 300;
const BOX = { x: 150, y: 90, width: 100, height: 120 };

function syntheticPhoto(): RgbFrame {
  const data = Buffer.alloc(PHOTO_W * PHOTO_H * 3);
  for (let y = 0; y < PHOTO_H; y++) {
    for (let x = 0; x < PHOTO_W; x++) {
      const i = (y * PHOTO_W + x) * 3;
      const inFace = x >= BOX.x && x < BOX.x + BOX.width && y >= BOX.y && y < BOX.y + BOX.height;
      // Texture: a checker of 8 px and a slow gradient, so blur and JPEG have something to act on.
      const t = ((x >> 3) + (y >> 3)) % 2 === 0 ? 12 : -12;
      if (inFace) {
        data[i] = 190 + t;
        data[i + 1] = 70 + t;
        data[i + 2] = 60 + t;
      } else {
        data[i] = data[i + 1] = data[i + 2] = 110 + t + Math.round((x / PHOTO_W) * 20);
      }
    }
  }
  return { data, width: PHOTO_W, height: PHOTO_H };
}

/** Red block mask: the "face" pixels of a frame. */
const isFace = (d: Buffer, i: number) => d[i] - d[i + 1] > 40;

/** Width of the face block along row y (first to last face pixel). */
function faceWidthAt(f: RgbFrame, y: number): number {
  let first = -1;
  let last = -1;
  for (let x = 0; x < f.width; x++) {
    if (isFace(f.data, (y * f.width + x) * 3)) {
      if (first < 0) first = x;
      last = x;
    }
  }
  return first < 0 ? 0 : last - first + 1;
}

/** Height of the face block along column x. */
function faceHeightAt(f: RgbFrame, x: number): number {
  let n = 0;
  for (let y = 0; y < f.height; y++) if (isFace(f.data, (y * f.width + x) * 3)) n++;
  return n;
}

/** Mean of all channels over pixels picked by `where`. */
function meanWhere(f: RgbFrame, where: (x: number, y: number) => boolean): number {
  let sum = 0;
  let n = 0;
  for (let y = 0; y < f.height; y++) {
    for (let x = 0; x < f.width; x++) {
      if (!where(x, y)) continue;
      const i = (y * f.width + x) * 3;
      sum += f.data[i] + f.data[i + 1] + f.data[i + 2];
      n += 3;
    }
  }
  return sum / n;
}

const all = () => true;
const cx = (FRAME_WIDTH - 1) / 2;
const cy = (FRAME_HEIGHT - 1) / 2;
/** Inside the face block of a frontal frame with a 120 px face (the block is 120 x 144 there). */
const inCentre = (x: number, y: number) => Math.abs(x - cx) < 40 && Math.abs(y - cy) < 50;
/** The frame's top corners: background (the bottom ones are the backlight's shoulders). */
const inCorner = (x: number, y: number) => (x < 30 || x >= FRAME_WIDTH - 30) && y < 30;

/** Sum of squared horizontal differences of green: falls when an image is blurred (|differences| would not). */
function edgeEnergy(f: RgbFrame): number {
  let e = 0;
  for (let y = 0; y < f.height; y++) {
    for (let x = 1; x < f.width; x++) {
      const i = (y * f.width + x) * 3;
      e += (f.data[i + 1] - f.data[i - 2]) ** 2;
    }
  }
  return e;
}

describe('parseConditions', () => {
  it('reads all, a list in the given order, and drops duplicates', () => {
    expect(parseConditions('all')).toEqual([...CONDITIONS]);
    expect(parseConditions(' webcam, clean ,webcam')).toEqual(['webcam', 'clean']);
  });

  it('refuses an unknown or empty list', () => {
    expect(() => parseConditions('clean,foggy')).toThrow(/Unknown condition "foggy"/);
    expect(() => parseConditions(' , ')).toThrow(/No condition/);
  });
});

describe('resolveCondition', () => {
  it('draws within the spec and depends on the seed only where the spec has a range', () => {
    for (let seed = 0; seed < 50; seed++) {
      const small = resolveCondition('small', seed);
      expect(small.faceWidth).toBeGreaterThanOrEqual(60);
      expect(small.faceWidth).toBeLessThan(70);
      const turn = resolveCondition('turn', seed);
      expect(Math.abs(turn.yawDeg)).toBeGreaterThanOrEqual(20);
      expect(Math.abs(turn.yawDeg)).toBeLessThan(25);
      expect(resolveCondition('clean', seed)).toMatchObject({ faceWidth: 120, yawDeg: 0 });
    }
    const sides = new Set(Array.from({ length: 50 }, (_, s) => Math.sign(resolveCondition('turn', s).yawDeg)));
    expect(sides).toEqual(new Set([-1, 1]));
  });
});

describe('ConditionRenderer on a synthetic photo', () => {
  const photo = syntheticPhoto();
  const frames = new Map<ConditionName, RgbFrame>();
  let renderer: ConditionRenderer;

  beforeAll(async () => {
    renderer = new ConditionRenderer(photo, BOX, 42);
    for (const c of CONDITIONS) frames.set(c, await renderer.frame(c));
  });
  afterAll(() => {
    renderer.dispose();
    for (const f of frames.values()) f.data.fill(0);
  });

  it('gives the same JPEG bytes for the same seed, for every condition', async () => {
    const a = new ConditionRenderer(syntheticPhoto(), BOX, 7);
    const b = new ConditionRenderer(syntheticPhoto(), BOX, 7);
    try {
      for (const c of CONDITIONS) {
        const [ja, jb] = [await a.jpeg(c), await b.jpeg(c)];
        expect({ c, same: ja.equals(jb) }).toEqual({ c, same: true });
        const meta = await sharp(ja).metadata();
        expect([meta.format, meta.width, meta.height]).toEqual(['jpeg', FRAME_WIDTH, FRAME_HEIGHT]);
      }
    } finally {
      a.dispose();
      b.dispose();
    }
  });

  it('differs with another seed where the condition draws from it, and only there', async () => {
    const a = new ConditionRenderer(photo, BOX, 1);
    const b = new ConditionRenderer(photo, BOX, 2);
    try {
      for (const c of CONDITIONS) {
        const seeded = ['small', 'noise', 'turn', 'webcam'].includes(c);
        const same = (await a.jpeg(c)).equals(await b.jpeg(c));
        expect({ c, same }).toEqual({ c, same: !seeded });
      }
    } finally {
      a.dispose();
      b.dispose();
    }
  });

  it('leaves the photo as it was', () => {
    expect(photo.data.equals(syntheticPhoto().data)).toBe(true);
  });

  it('makes 320x240 frames with the face box centred and 120 px wide (clean)', () => {
    const f = frames.get('clean')!;
    expect([f.width, f.height, f.data.length]).toEqual([320, 240, 320 * 240 * 3]);
    expect(Math.abs(faceWidthAt(f, 120) - 120)).toBeLessThanOrEqual(2);
    expect(Math.abs(faceHeightAt(f, 160) - 144)).toBeLessThanOrEqual(2); // the box keeps its aspect
    // Centred: as many face pixels left of the centre as right of it.
    let left = 0;
    let right = 0;
    for (let x = 0; x < 320; x++) {
      if (!isFace(f.data, (120 * 320 + x) * 3)) continue;
      if (x < 160) left++;
      else right++;
    }
    expect(Math.abs(left - right)).toBeLessThanOrEqual(2);
  });

  it('small: the face box 60-70 px wide, the width the seed drew', () => {
    const w = faceWidthAt(frames.get('small')!, 120);
    expect(w).toBeGreaterThanOrEqual(59);
    expect(w).toBeLessThanOrEqual(71);
    expect(Math.abs(w - renderer.resolve('small').faceWidth)).toBeLessThanOrEqual(2);
  });

  it('dark: the whole frame well below the clean one (x0.2 exposure, gamma 1.25)', () => {
    const clean = meanWhere(frames.get('clean')!, all);
    const dark = meanWhere(frames.get('dark')!, all);
    expect(dark).toBeLessThan(0.45 * clean);
    expect(dark).toBeGreaterThan(0.2 * clean);
  });

  it('backlight: the face darker and the background brighter than in the clean frame', () => {
    const clean = frames.get('clean')!;
    const back = frames.get('backlight')!;
    expect(meanWhere(back, inCentre)).toBeLessThan(0.75 * meanWhere(clean, inCentre));
    expect(meanWhere(back, inCorner)).toBeGreaterThan(1.4 * meanWhere(clean, inCorner));
  });

  it('noise: differs from the clean frame by Gaussian noise of sigma about 10 levels', () => {
    const clean = frames.get('clean')!.data;
    const noisy = frames.get('noise')!.data;
    let sum = 0;
    let sq = 0;
    for (let i = 0; i < clean.length; i++) {
      const d = noisy[i] - clean[i];
      sum += d;
      sq += d * d;
    }
    const mean = sum / clean.length;
    const sd = Math.sqrt(sq / clean.length - mean * mean);
    expect(Math.abs(mean)).toBeLessThan(0.3);
    expect(sd).toBeGreaterThan(9.5);
    expect(sd).toBeLessThan(10.5);
  });

  it('blur: much less edge energy than the clean frame', () => {
    expect(edgeEnergy(frames.get('blur')!)).toBeLessThan(0.6 * edgeEnergy(frames.get('clean')!));
  });

  it('jpeg: the clean frame, encoded at quality 45 (fewer bytes)', async () => {
    expect(frames.get('jpeg')!.data.equals(frames.get('clean')!.data)).toBe(true);
    expect(CONDITION_SPECS.jpeg.jpegQuality).toBe(45);
    expect((await renderer.jpeg('jpeg')).length).toBeLessThan(0.6 * (await renderer.jpeg('clean')).length);
  });

  it('turn: narrower than frontal, and the side turned away shorter (perspective)', () => {
    const f = frames.get('turn')!;
    const yaw = renderer.resolve('turn').yawDeg;
    const w = faceWidthAt(f, 120);
    // A plane turned 20-25 deg, seen from 3.5 widths away: about cos(yaw) of its width.
    expect(w).toBeLessThan(0.96 * 120);
    expect(w).toBeGreaterThan(0.85 * 120);
    const cols: number[] = [];
    for (let x = 0; x < 320; x++) if (isFace(f.data, (120 * 320 + x) * 3)) cols.push(x);
    const leftH = faceHeightAt(f, cols[0] + 3);
    const rightH = faceHeightAt(f, cols[cols.length - 1] - 3);
    // Positive yaw turns the image's right side away from the camera: it looks smaller.
    expect(Math.sign(leftH - rightH)).toBe(Math.sign(yaw));
    expect(Math.abs(leftH - rightH)).toBeGreaterThanOrEqual(8);
  });

  it('webcam: small, dim, noisy, and JPEG 45', () => {
    const f = frames.get('webcam')!;
    const w = faceWidthAt(f, 120);
    expect(w).toBeGreaterThanOrEqual(57); // noise can flip the block's edge pixels
    expect(w).toBeLessThanOrEqual(73);
    expect(meanWhere(f, all)).toBeLessThan(0.75 * meanWhere(frames.get('small')!, all));
    expect(CONDITION_SPECS.webcam).toMatchObject({ jpegQuality: 45, noiseSigma: 8, faceWidth: [60, 70] });
  });

  it('dispose() zeroes the kept crops and frames can be rendered again after it', async () => {
    const r = new ConditionRenderer(photo, BOX, 42);
    const first = await r.jpeg('clean');
    const kept = (r as unknown as { crops: Map<number, RgbFrame> }).crops;
    const crops = [...kept.values()];
    expect(crops.length).toBe(1);
    r.dispose();
    expect(crops.every((c) => c.data.every((b) => b === 0))).toBe(true);
    expect(kept.size).toBe(0);
    expect((await r.jpeg('clean')).equals(first)).toBe(true);
    r.dispose();
  });
});

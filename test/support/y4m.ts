import * as fs from 'node:fs';
import sharp from 'sharp';

/*
 * Fake-camera videos for Chromium (`--use-file-for-fake-video-capture=FILE.y4m`): YUV4MPEG2, 4:2:0 (C420), made
 * from JPEG frames (synthetic test data cut from the public sample photos). Chromium plays the file at the frame
 * rate of its header and loops it at the end.
 */

/** One planar I420 frame: Y (width x height), then U and V (width/2 x height/2 each). */
export interface I420Frame {
  data: Buffer;
  width: number;
  height: number;
}

/**
 * Interleaved 8-bit RGB to I420, BT.601 "studio" range (Y 16-235, U/V 16-240), as video decoders assume for
 * 4:2:0 content; each chroma sample is the mean of a 2x2 block. Width and height must be even.
 */
export function rgbToI420(rgb: Buffer, width: number, height: number): I420Frame {
  if (width % 2 || height % 2) throw new Error(`I420 needs an even size, not ${width}x${height}.`);
  if (rgb.length !== width * height * 3) throw new Error('The RGB buffer does not match the size.');
  const ySize = width * height;
  const cw = width / 2;
  const out = Buffer.alloc(ySize + 2 * (ySize / 4));
  for (let i = 0, p = 0; i < ySize; i++, p += 3) {
    out[i] = ((66 * rgb[p] + 129 * rgb[p + 1] + 25 * rgb[p + 2] + 128) >> 8) + 16;
  }
  const uOff = ySize;
  const vOff = ySize + ySize / 4;
  for (let cy = 0; cy < height / 2; cy++) {
    for (let cx = 0; cx < cw; cx++) {
      let r = 0;
      let g = 0;
      let b = 0;
      for (const [dx, dy] of [[0, 0], [1, 0], [0, 1], [1, 1]]) {
        const p = ((2 * cy + dy) * width + 2 * cx + dx) * 3;
        r += rgb[p];
        g += rgb[p + 1];
        b += rgb[p + 2];
      }
      r /= 4;
      g /= 4;
      b /= 4;
      out[uOff + cy * cw + cx] = clampByte(((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128);
      out[vOff + cy * cw + cx] = clampByte(((112 * r - 94 * g - 18 * b + 128) >> 8) + 128);
    }
  }
  return { data: out, width, height };
}

function clampByte(v: number): number {
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/** Decodes a JPEG (with sharp) and converts it to I420. */
export async function jpegToI420(jpeg: Buffer): Promise<I420Frame> {
  const { data, info } = await sharp(jpeg).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return rgbToI420(data, info.width, info.height);
}

/**
 * Frame order of a patient who blinks periodically: `openSeconds` of open eyes (cycling through the open variants,
 * a few frames each, like small head movements), then `closedSeconds` of closed eyes; `cycles` times.
 */
export function blinkingSequence<T>(
  open: readonly T[],
  closed: readonly T[],
  { fps, openSeconds, closedSeconds, cycles }: { fps: number; openSeconds: number; closedSeconds: number; cycles: number },
): T[] {
  const out: T[] = [];
  const openFrames = Math.max(1, Math.round(openSeconds * fps));
  const closedFrames = Math.max(1, Math.round(closedSeconds * fps));
  const hold = Math.max(1, Math.round(fps / 4)); // each open variant for ~0.25 s
  let k = 0;
  for (let c = 0; c < cycles; c++) {
    for (let i = 0; i < openFrames; i++) out.push(open[Math.floor(k++ / hold) % open.length]);
    for (let i = 0; i < closedFrames; i++) out.push(closed[(c + Math.floor(i / hold)) % closed.length]);
  }
  return out;
}

/**
 * Writes a YUV4MPEG2 file (`C420`, progressive, square pixels) of the given JPEG frames at `fps`. Frames that are
 * the same Buffer are decoded once.
 */
export async function writeY4m(file: string, jpegs: readonly Buffer[], fps: number): Promise<{ frames: number; width: number; height: number; bytes: number }> {
  if (jpegs.length === 0) throw new Error('A y4m needs at least one frame.');
  const decoded = new Map<Buffer, I420Frame>();
  for (const j of jpegs) if (!decoded.has(j)) decoded.set(j, await jpegToI420(j));
  const first = decoded.get(jpegs[0])!;
  for (const f of decoded.values()) {
    if (f.width !== first.width || f.height !== first.height) throw new Error('Every y4m frame must have the same size.');
  }
  const fd = fs.openSync(file, 'w');
  let bytes = 0;
  try {
    const header = Buffer.from(`YUV4MPEG2 W${first.width} H${first.height} F${fps}:1 Ip A1:1 C420\n`, 'latin1');
    const frameTag = Buffer.from('FRAME\n', 'latin1');
    bytes += fs.writeSync(fd, header);
    for (const j of jpegs) {
      bytes += fs.writeSync(fd, frameTag);
      bytes += fs.writeSync(fd, decoded.get(j)!.data);
    }
  } finally {
    fs.closeSync(fd);
  }
  return { frames: jpegs.length, width: first.width, height: first.height, bytes };
}

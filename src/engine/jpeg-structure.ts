/**
 * A cheap look at a JPEG's marker structure before any decoder sees it: how much work the image may cause.
 *
 * Why: libjpeg decodes a progressive JPEG scan by scan over the whole image, and a scan may be empty. 262 KB hold
 * about 26,000 empty scans: 4 s of CPU to decode at 1920x1080, about 33 s at the engine's 4096x4096 limit (README,
 * "Hostile load on the WebSocket path").
 * Webcams and browsers send baseline JPEGs; enrollment photos may be progressive, with a handful of scans. So an
 * image is judged from its markers alone, in one pass over its bytes (no allocation, no pixel decoded), and refused
 * when it is of a kind or size it has no reason to be: progressive where only baseline is expected, arithmetic-coded,
 * lossless or hierarchical, more scans or more pixels than the limits, or segments that run past its end.
 *
 * Anything that does not start like a JPEG (FF D8 FF) is left to the engine, which names the format and refuses it
 * from its first bytes, without decoding.
 */
import { EngineError } from './errors';

export interface JpegLimits {
  /** Largest width x height. */
  maxPixels: number;
  /** Most scans (SOS markers). A sequential JPEG has at most one per component (4). */
  maxScans: number;
  /** Whether progressive JPEGs are accepted (photos: yes; webcam frames: no). */
  progressive: boolean;
}

/** What a desk's webcam sends: baseline (or extended sequential) Huffman JPEG, at most 1920x1080. */
export const FRAME_JPEG_LIMITS: Readonly<JpegLimits> = Object.freeze({
  maxPixels: 1920 * 1080,
  maxScans: 4,
  progressive: false,
});

/** Photos uploaded for enrollment: progressive allowed (cameras and editors save them so), up to 64 scans. */
export const PHOTO_JPEG_LIMITS: Readonly<JpegLimits> = Object.freeze({
  maxPixels: 4096 * 4096,
  maxScans: 64,
  progressive: true,
});

export type JpegProcess = 'baseline' | 'extended' | 'progressive';

export interface JpegStructure {
  width: number;
  height: number;
  components: number;
  process: JpegProcess;
  scans: number;
}

// Start-of-frame markers by coding process (ITU T.81, table B.1).
const SOF_SEQUENTIAL: Record<number, JpegProcess> = { 0xc0: 'baseline', 0xc1: 'extended', 0xc2: 'progressive' };
const SOF_ARITHMETIC = new Set([0xc9, 0xca]);
const SOF_UNSUPPORTED = new Set([0xc3, 0xc5, 0xc6, 0xc7, 0xcb, 0xcd, 0xce, 0xcf]); // lossless, hierarchical

const SOI = 0xd8;
const EOI = 0xd9;
const SOS = 0xda;
const TEM = 0x01;
const isRst = (m: number) => m >= 0xd0 && m <= 0xd7;

/** True when `buf` starts like a JPEG (the engine refuses anything else from its first bytes). */
export function looksLikeJpeg(buf: Uint8Array): boolean {
  return buf.length >= 4 && buf[0] === 0xff && buf[1] === SOI && buf[2] === 0xff;
}

/**
 * Checks a JPEG's markers against `limits`. Returns its structure, or null when the bytes are not a JPEG at all
 * (left to the engine). Throws an EngineError:
 * - `frame_too_complex`: progressive (when not allowed), arithmetic-coded, or more scans than `maxScans`;
 * - `frame_too_large`: more pixels than `maxPixels`;
 * - `frame_format_unsupported`: a lossless or hierarchical JPEG (which the engine does not decode);
 * - `frame_dimensions_invalid`: a zero width or height;
 * - `frame_truncated`: a segment runs past the end, or the image ends before its end-of-image marker;
 * - `frame_corrupt`: anything else out of place (bytes between segments, a scan before the frame header, ...).
 * Never reads or copies pixel data; messages quote no byte of the image.
 */
export function inspectJpeg(buf: Uint8Array, limits: JpegLimits): JpegStructure | null {
  if (!looksLikeJpeg(buf)) return null;
  const n = buf.length;
  let frame: { width: number; height: number; components: number; process: JpegProcess } | null = null;
  let scans = 0;
  let i = 2; // just after SOI
  for (;;) {
    // A marker: 0xFF, any number of 0xFF fill bytes, then the marker code.
    if (i >= n) throw truncated('before its end-of-image marker');
    if (buf[i] !== 0xff) throw corrupt('Bytes between two JPEG segments.');
    while (i < n && buf[i] === 0xff) i++;
    if (i >= n) throw truncated('inside a marker');
    const marker = buf[i++];
    if (marker === EOI) break;
    if (marker === SOI) throw corrupt('A second start-of-image marker.');
    if (marker === TEM) continue;
    if (isRst(marker) || marker === 0x00) throw corrupt('A stuffed byte or restart marker outside scan data.');
    if (i + 2 > n) throw truncated('inside a segment length');
    const length = (buf[i] << 8) | buf[i + 1];
    if (length < 2) throw corrupt('A JPEG segment length below 2.');
    const end = i + length;
    if (end > n) throw truncated('inside a segment');

    if (marker in SOF_SEQUENTIAL || SOF_ARITHMETIC.has(marker) || SOF_UNSUPPORTED.has(marker)) {
      if (frame) throw corrupt('A second frame header (SOF).');
      if (SOF_ARITHMETIC.has(marker)) {
        throw new EngineError('frame_too_complex', 'Arithmetic-coded JPEG: send a baseline (Huffman-coded) JPEG.');
      }
      if (SOF_UNSUPPORTED.has(marker)) {
        throw new EngineError('frame_format_unsupported', 'Lossless or hierarchical JPEG: send a baseline JPEG.');
      }
      if (length < 8) throw corrupt('A frame header (SOF) too short.');
      const height = (buf[i + 3] << 8) | buf[i + 4];
      const width = (buf[i + 5] << 8) | buf[i + 6];
      const components = buf[i + 7];
      if (components < 1 || components > 4 || length !== 8 + 3 * components) {
        throw corrupt('A frame header (SOF) with a bad component count.');
      }
      if (width === 0 || height === 0) {
        throw new EngineError('frame_dimensions_invalid', 'The JPEG declares a zero dimension.');
      }
      if (width * height > limits.maxPixels) {
        throw new EngineError(
          'frame_too_large',
          `The JPEG declares ${width}x${height} pixels; the limit is ${limits.maxPixels} pixels.`,
        );
      }
      const process = SOF_SEQUENTIAL[marker];
      if (process === 'progressive' && !limits.progressive) {
        throw new EngineError('frame_too_complex', 'Progressive JPEG: a webcam frame must be a baseline JPEG.');
      }
      frame = { width, height, components, process };
    } else if (marker === SOS) {
      if (!frame) throw corrupt('A scan (SOS) before the frame header (SOF).');
      if (++scans > limits.maxScans) {
        throw new EngineError('frame_too_complex', `The JPEG has more than ${limits.maxScans} scans.`);
      }
      const count = length >= 3 ? buf[i + 2] : 0;
      if (count < 1 || count > 4 || length !== 6 + 2 * count)
        throw corrupt('A scan header (SOS) with a bad component count.');
      i = skipScanData(buf, end);
      continue;
    }
    i = end; // tables, restart interval, APPn, COM...: skipped by their length
  }
  if (!frame || scans === 0) throw corrupt('The JPEG holds no image (no frame header or no scan).');
  return { ...frame, scans };
}

/** The index of the 0xFF that starts the marker after a scan's entropy-coded data. */
function skipScanData(buf: Uint8Array, from: number): number {
  const n = buf.length;
  let p = from;
  for (;;) {
    p = buf.indexOf(0xff, p);
    if (p < 0) throw truncated('inside scan data');
    let q = p + 1;
    while (q < n && buf[q] === 0xff) q++; // fill bytes
    if (q >= n) throw truncated('inside scan data');
    const m = buf[q];
    if (m === 0x00 || isRst(m)) {
      p = q + 1; // a stuffed 0xFF byte, or a restart marker: still scan data
      continue;
    }
    return q - 1;
  }
}

function truncated(where: string): EngineError {
  return new EngineError('frame_truncated', `The JPEG ends ${where}.`);
}

function corrupt(message: string): EngineError {
  return new EngineError('frame_corrupt', message);
}

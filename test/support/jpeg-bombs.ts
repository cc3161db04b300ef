/*
 * Hostile JPEGs, generated (no binary is committed): images whose few bytes make a decoder work for long, or that
 * claim to be something a desk never sends. Each is built marker by marker, so its structure is exact:
 *
 * - scanBomb(): the "progressive scan bomb". A 1920x1080 progressive JPEG with one real DC scan, then as many empty
 *   AC scans as fit (about 26,000 in 262,124 bytes, one WebSocket message). libjpeg walks every block of the image
 *   for every scan, empty or not: about 4 s of CPU at 1920x1080 and half a minute at the engine's 4096x4096 limit,
 *   for a message a desk could send 15 times a second.
 * - the same builder makes baseline frames with too many scans, arithmetic-coded, lossless and oversized headers.
 *
 * The images hold no picture (every coefficient is 0: a flat grey), so they are safe to keep in logs and failures.
 */

/** Frame header markers (ITU T.81, table B.1). */
export const SOF = {
  baseline: 0xc0,
  extended: 0xc1,
  progressive: 0xc2,
  lossless: 0xc3,
  arithmetic: 0xc9,
  arithmeticProgressive: 0xca,
} as const;

/** Largest frame payload in one WebSocket message at the default WS_MAX_PAYLOAD (256 KiB, minus the 20-byte header). */
export const MAX_FRAME_PAYLOAD = 256 * 1024 - 20;

function segment(marker: number, body: number[] | Buffer): Buffer {
  const len = body.length + 2;
  return Buffer.concat([Buffer.from([0xff, marker, len >> 8, len & 0xff]), Buffer.from(body)]);
}

/** One quantisation table of all ones (8-bit). */
const DQT = segment(0xdb, [0x00, ...new Array(64).fill(1)]);

/** A Huffman table with a single 1-bit code for `value`: class 0 = DC, 1 = AC. */
function dht(tableClass: 0 | 1, value: number): Buffer {
  const counts = new Array(16).fill(0);
  counts[0] = 1;
  return segment(0xc4, [(tableClass << 4) | 0, ...counts, value]);
}

function sof(marker: number, width: number, height: number): Buffer {
  return segment(marker, [8, height >> 8, height & 0xff, width >> 8, width & 0xff, 1, 1, 0x11, 0]);
}

/** A one-component scan header: spectral selection ss..se, successive approximation ah/al. */
function sos(ss: number, se: number, ah = 0, al = 0): Buffer {
  return segment(0xda, [1, 1, 0x00, ss, se, (ah << 4) | al]);
}

/**
 * Entropy data of a first scan whose every block is zero: per block a 0 bit (DC difference 0), and for a sequential
 * scan another (end of block).
 */
function zeroData(width: number, height: number, bitsPerBlock: 1 | 2): Buffer {
  const bits = Math.ceil(width / 8) * Math.ceil(height / 8) * bitsPerBlock;
  const bytes = Buffer.alloc(Math.ceil(bits / 8), 0x00);
  const spare = bytes.length * 8 - bits;
  if (spare > 0) bytes[bytes.length - 1] = (1 << spare) - 1; // pad the last byte with 1 bits, as encoders do
  return bytes;
}

const SOI = Buffer.from([0xff, 0xd8]);
const EOI = Buffer.from([0xff, 0xd9]);
/** Bytes of one empty scan (its SOS segment, no data). */
export const EMPTY_SCAN_BYTES = 10;

export interface BombOptions {
  /** Default 1920x1080: the largest frame a desk may send (WS_FRAME_MAX_PIXELS). */
  width?: number;
  height?: number;
  /** Frame header marker; default progressive. */
  sof?: number;
  /** Total size to fill with empty scans (default MAX_FRAME_PAYLOAD); ignored when `scans` is given. */
  bytes?: number;
  /** Exact number of scans after the DC scan. */
  scans?: number;
}

/**
 * A JPEG of one grey component: a DC scan with data, then empty scans (AC first scans when progressive, repeated DC
 * scans otherwise). With defaults: the progressive scan bomb, 262,124 bytes, about 26,000 scans.
 */
export function scanBomb(options: BombOptions = {}): Buffer {
  const width = options.width ?? 1920;
  const height = options.height ?? 1080;
  const marker = options.sof ?? SOF.progressive;
  const progressive = marker === SOF.progressive || marker === SOF.arithmeticProgressive;
  const head = Buffer.concat([
    SOI,
    DQT,
    sof(marker, width, height),
    dht(0, 0),
    dht(1, 0),
    sos(0, progressive ? 0 : 63),
    zeroData(width, height, progressive ? 1 : 2),
  ]);
  const room = (options.bytes ?? MAX_FRAME_PAYLOAD) - head.length - EOI.length;
  const count = options.scans ?? Math.max(0, Math.floor(room / EMPTY_SCAN_BYTES));
  const empty = progressive ? sos(1, 63) : sos(0, 63);
  const scans = Buffer.alloc(count * EMPTY_SCAN_BYTES);
  for (let k = 0; k < count; k++) empty.copy(scans, k * EMPTY_SCAN_BYTES);
  return Buffer.concat([head, scans, EOI]);
}

/** A well-formed one-scan JPEG header of any frame kind and size (no real picture). */
export function headerOnly(marker: number, width: number, height: number): Buffer {
  return scanBomb({ sof: marker, width, height, scans: 0 });
}

/** Every hostile kind, with the code the structure check must refuse it with under webcam-frame limits. */
export function hostileFrames(): Array<{ name: string; data: Buffer; code: string }> {
  const bomb = scanBomb();
  const overrun = Buffer.from(headerOnly(SOF.baseline, 320, 240));
  overrun.writeUInt16BE(0xfff0, 4); // the DQT segment claims 65,520 bytes
  return [
    { name: 'progressive scan bomb (1920x1080, ~26,000 empty scans)', data: bomb, code: 'frame_too_complex' },
    { name: 'progressive, 3 scans', data: scanBomb({ width: 320, height: 240, scans: 2 }), code: 'frame_too_complex' },
    {
      name: 'baseline with 5,000 scans',
      data: scanBomb({ sof: SOF.baseline, width: 320, height: 240, scans: 5000 }),
      code: 'frame_too_complex',
    },
    { name: 'arithmetic-coded', data: headerOnly(SOF.arithmetic, 320, 240), code: 'frame_too_complex' },
    {
      name: 'arithmetic-coded progressive',
      data: headerOnly(SOF.arithmeticProgressive, 320, 240),
      code: 'frame_too_complex',
    },
    { name: 'lossless', data: headerOnly(SOF.lossless, 320, 240), code: 'frame_format_unsupported' },
    { name: '4096x4096 baseline header', data: headerOnly(SOF.baseline, 4096, 4096), code: 'frame_too_large' },
    { name: '1921x1080 baseline header', data: headerOnly(SOF.baseline, 1921, 1080), code: 'frame_too_large' },
    { name: 'zero height', data: headerOnly(SOF.baseline, 320, 0), code: 'frame_dimensions_invalid' },
    { name: 'segment longer than the image', data: overrun, code: 'frame_truncated' },
    { name: 'bomb cut short', data: bomb.subarray(0, 100_001), code: 'frame_too_complex' },
  ];
}

'use strict';
/*
 * Makes the signed test frames for the zeroing test, in a CHILD process, so the process under test never holds
 * plain signature bytes other than the frame buffers it hands to the engine.
 *
 *   node test/support/signature-frames.js '<spec json>'
 *   spec: { out, seed, width, height, frames: [{ photo, rect: { left, top, width, height } }] }
 *
 * For frame i it writes into `out`:
 *   frame-<i>.jpg  the face crop with random signature blocks in its corners, JPEG q95 4:4:4 (no chroma
 *                  subsampling, so decoded rows are exactly what any libjpeg-turbo IDCT produces);
 *   frame-<i>.bgr  the same crop with other signature blocks, as raw BGR (for the raw-input path);
 * and for all frames:
 *   needles.bin    the signatures, each byte XOR MASK, back to back;
 *   needles.json   { mask, width, height, needles: [{ frame, kind, offset, length }] } (offsets into needles.bin).
 * Needle kinds:
 *   jpeg-bytes    24 bytes of the JPEG's entropy-coded data (the compressed frame as received);
 *   jpeg-row-bgr  8 decoded BGR pixels of a signature row (the decoded image, e.g. a cv::Mat);
 *   jpeg-row-y    24 decoded luma samples of a grey signature row (libjpeg's planar working buffers: a grey block
 *                 has Cb = Cr = 128 exactly, so its Y samples equal its decoded pixel values);
 *   raw-row-bgr   8 BGR pixels of a signature row of the raw frame.
 * Prints one JSON line: { frames, needles: { kind: count }, jpegBytes }.
 * The files are synthetic test data; the test deletes them.
 */
const fs = require('node:fs');
const path = require('node:path');
const sharp = require('sharp');

const MASK = 0x5a;
const NEEDLE = 24;
const BLOCK_W = 32;
const BLOCK_H = 16; // two 8-row JPEG block rows; blocks are 8-aligned so they share no DCT block with the photo

/** mulberry32: deterministic noise from the seed (same generator as frames.ts). */
function rng(seed) {
  let s = seed >>> 0;
  return () => {
    let t = (s = (s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The four corner blocks; the bottom ones cover the last rows, which libjpeg's buffers hold at the end. */
function blocks(width, height) {
  return [
    { name: 'tl', x: 0, y: 0, grey: false },
    { name: 'bl', x: 0, y: height - BLOCK_H, grey: false },
    { name: 'tr', x: width - BLOCK_W, y: 0, grey: true },
    { name: 'br', x: width - BLOCK_W, y: height - BLOCK_H, grey: true },
  ];
}

/** Paints random noise (grey or colour) into the corner blocks of an RGB frame, in place. */
function stamp(rgb, width, height, rand) {
  for (const b of blocks(width, height)) {
    for (let y = b.y; y < b.y + BLOCK_H; y++) {
      for (let x = b.x; x < b.x + BLOCK_W; x++) {
        const i = (y * width + x) * 3;
        const v = Math.floor(rand() * 256);
        rgb[i] = v;
        rgb[i + 1] = b.grey ? v : Math.floor(rand() * 256);
        rgb[i + 2] = b.grey ? v : Math.floor(rand() * 256);
      }
    }
  }
}

function rgbToBgr(rgb) {
  const out = Buffer.allocUnsafe(rgb.length);
  for (let i = 0; i < rgb.length; i += 3) {
    out[i] = rgb[i + 2];
    out[i + 1] = rgb[i + 1];
    out[i + 2] = rgb[i];
  }
  return out;
}

/** Offset of the first entropy-coded byte (after the SOS header); also checks the JPEG is baseline. */
function entropyRange(jpeg) {
  let i = 2;
  let baseline = false;
  while (i + 4 <= jpeg.length && jpeg[i] === 0xff) {
    const marker = jpeg[i + 1];
    const len = jpeg.readUInt16BE(i + 2);
    if (marker === 0xc0) baseline = true;
    if (marker === 0xda) {
      if (!baseline) throw new Error('Expected a baseline (SOF0) JPEG.');
      return { start: i + 2 + len, end: jpeg.length - 2 }; // up to the EOI marker
    }
    i += 2 + len;
  }
  throw new Error('No SOS marker in the generated JPEG.');
}

/** Random-looking bytes: zero runs, fills and flat areas occur everywhere in memory, so they would mislead. */
function distinctive(bytes) {
  return new Set(bytes).size >= 6; // a grey BGR segment has at most 8 values (each byte three times)
}

async function main() {
  const spec = JSON.parse(process.argv[2]);
  const { out, seed, width, height } = spec;

  // 1. The frames.
  const frames = [];
  for (let f = 0; f < spec.frames.length; f++) {
    const { photo, rect } = spec.frames[f];
    const base = await sharp(photo).extract(rect).resize(width, height, { fit: 'fill' }).removeAlpha().raw().toBuffer();
    if (base.length !== width * height * 3) throw new Error('Unexpected crop size.');

    const rgb = Buffer.from(base);
    stamp(rgb, width, height, rng(seed * 1000 + f * 2));
    const jpeg = await sharp(rgb, { raw: { width, height, channels: 3 } })
      .jpeg({ quality: 95, chromaSubsampling: '4:4:4' })
      .toBuffer();
    // What libjpeg-turbo's decoder gives (same integer IDCT and colour conversion as the engine's libjpeg).
    const { data: decoded, info } = await sharp(jpeg).raw().toBuffer({ resolveWithObject: true });
    if (info.width !== width || info.height !== height || info.channels !== 3) throw new Error('Bad decode.');

    // The raw variant gets its own noise, so its rows say which path a hit came from.
    const rgbRaw = Buffer.from(base);
    stamp(rgbRaw, width, height, rng(seed * 1000 + f * 2 + 1));
    frames.push({ jpeg, decoded, decodedBgr: rgbToBgr(decoded), bgr: rgbToBgr(rgbRaw) });
  }

  // Each signature must occur at most once in everything generated (Y rows occur in none of these interleaved
  // buffers), so a hit can only mean a copy of that one frame's data.
  const material = frames.flatMap((fr) => [fr.jpeg, fr.decodedBgr, fr.bgr]);
  const occurrences = (plain) => {
    let count = 0;
    for (const m of material) {
      for (let at = m.indexOf(plain); at >= 0; at = m.indexOf(plain, at + 1)) count++;
    }
    return count;
  };

  // 2. The needles.
  const needles = []; // { frame, kind, plain }
  frames.forEach(({ jpeg, decoded, decodedBgr, bgr }, f) => {
    const ent = entropyRange(jpeg);
    for (const frac of [0.15, 0.4, 0.65, 0.9]) {
      let at = ent.start + Math.floor((ent.end - ent.start - NEEDLE) * frac);
      // Similar crops can share stretches of entropy-coded data: slide to bytes unique to this frame.
      while (!distinctive(jpeg.subarray(at, at + NEEDLE)) || occurrences(jpeg.subarray(at, at + NEEDLE)) > 1) {
        if (++at > ent.end - NEEDLE) throw new Error(`Frame ${f}: no unique JPEG bytes (is it a duplicate?).`);
      }
      needles.push({ frame: f, kind: 'jpeg-bytes', plain: jpeg.subarray(at, at + NEEDLE) });
    }
    for (const b of blocks(width, height)) {
      for (const dy of [3, 12]) {
        const at = ((b.y + dy) * width + b.x + 4) * 3;
        needles.push({ frame: f, kind: 'jpeg-row-bgr', plain: decodedBgr.subarray(at, at + NEEDLE) });
        needles.push({ frame: f, kind: 'raw-row-bgr', plain: bgr.subarray(at, at + NEEDLE) });
      }
      if (!b.grey) continue;
      // Grey in, grey out: chroma of an all-grey 8x8 block is exactly 128, so B = G = R = Y after decoding.
      for (let y = b.y; y < b.y + BLOCK_H; y++) {
        for (let x = b.x; x < b.x + BLOCK_W; x++) {
          const i = (y * width + x) * 3;
          if (decoded[i] !== decoded[i + 1] || decoded[i] !== decoded[i + 2]) {
            throw new Error(`Grey block ${b.name} decoded with colour at ${x},${y}.`);
          }
        }
      }
      for (const dy of [2, 5, 9, 14]) {
        const y = b.y + dy; // two rows in each 8-row block row: the last one stays in libjpeg's buffer at the end
        const luma = Buffer.alloc(NEEDLE);
        for (let k = 0; k < NEEDLE; k++) luma[k] = decoded[(y * width + b.x + 4 + k) * 3];
        needles.push({ frame: f, kind: 'jpeg-row-y', plain: luma });
      }
    }
  });
  for (const n of needles) {
    if (!distinctive(n.plain)) throw new Error(`A ${n.kind} needle of frame ${n.frame} is not distinctive.`);
    const count = occurrences(n.plain);
    if (count > 1) throw new Error(`A ${n.kind} needle of frame ${n.frame} occurs ${count} times.`);
  }

  // 3. The files.
  frames.forEach(({ jpeg, bgr }, f) => {
    fs.writeFileSync(path.join(out, `frame-${f}.jpg`), jpeg, { mode: 0o600 });
    fs.writeFileSync(path.join(out, `frame-${f}.bgr`), bgr, { mode: 0o600 });
  });
  const bin = Buffer.alloc(needles.length * NEEDLE);
  const index = [];
  needles.forEach((n, i) => {
    for (let k = 0; k < NEEDLE; k++) bin[i * NEEDLE + k] = n.plain[k] ^ MASK;
    index.push({ frame: n.frame, kind: n.kind, offset: i * NEEDLE, length: NEEDLE });
  });
  fs.writeFileSync(path.join(out, 'needles.bin'), bin, { mode: 0o600 });
  fs.writeFileSync(path.join(out, 'needles.json'), JSON.stringify({ mask: MASK, width, height, needles: index }), {
    mode: 0o600,
  });

  const perKind = {};
  for (const n of needles) perKind[n.kind] = (perKind[n.kind] ?? 0) + 1;
  const jpegBytes = frames.reduce((sum, fr) => sum + fr.jpeg.length, 0);
  process.stdout.write(`${JSON.stringify({ frames: frames.length, needles: perKind, jpegBytes })}\n`);
}

main().catch((err) => {
  process.stderr.write(`${err.stack ?? err}\n`);
  process.exit(1);
});

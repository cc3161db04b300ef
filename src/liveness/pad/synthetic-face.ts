import type { RgbFrame } from '../../cli/synthetic';
import { GENERIC_FACE } from './face-model';
import { Rng } from './random';

const { sin, abs, max, min, round } = Math;

/**
 * A drawn face (skin, hair, eyes, brows, nose, lips, neck, shirt) on a textured wall, with its exact 68 landmarks:
 * the generic face's layout scaled and placed. For specs that must run without the engine or the photos. It is not a
 * face the engine would necessarily find; only the scene models' geometry and light are checked with it.
 */
export function syntheticFace(options: { seed?: number; width?: number; height?: number; scale?: number } = {}): {
  frame: RgbFrame;
  landmarks: Float32Array;
} {
  const W = options.width ?? 320;
  const H = options.height ?? 240;
  const s = options.scale ?? 0.58; // px per mm: eye distance ~35 px, as at a desk at 320x240
  const tx = W / 2;
  const ty = H * 0.52;
  const rng = new Rng(options.seed ?? 1);
  const landmarks = new Float32Array(136);
  for (let i = 0; i < 68; i++) {
    landmarks[2 * i] = tx + s * GENERIC_FACE[3 * i];
    landmarks[2 * i + 1] = ty + s * GENERIC_FACE[3 * i + 1];
  }
  const data = Buffer.alloc(W * H * 3);
  const inEllipse = (x: number, y: number, cx: number, cy: number, a: number, b: number) =>
    ((x - cx) / a) ** 2 + ((y - cy) / b) ** 2 <= 1;
  const wallPhase = rng.range(0, 6);
  for (let py = 0; py < H; py++) {
    for (let px = 0; px < W; px++) {
      const x = (px - tx) / s;
      const y = (py - ty) / s;
      // A beige wall with a soft gradient and a faint pattern (so shifts and warps are visible).
      let c: [number, number, number] = [
        190 - 0.1 * py + 6 * sin(px * 0.11 + wallPhase),
        178 - 0.1 * py + 6 * sin(py * 0.13),
        160 - 0.1 * py,
      ];
      const shirt = y > 95 && abs(x) < 150 - max(0, 140 - y) * 0.8;
      if (shirt) c = [60, 70, 110];
      if (y > 45 && y < 110 && abs(x) < 36) c = [190, 140, 115]; // neck
      const head = inEllipse(x, y, 0, -20, 74, y < -20 ? 105 : 94);
      if (head) {
        c = [215, 165, 140];
        // Darker towards the outline: a little of the photo's own shading.
        const r = ((x / 74) ** 2 + ((y + 20) / 100) ** 2) ** 0.5;
        const k = 1 - 0.25 * max(0, r - 0.6);
        c = [c[0] * k, c[1] * k, c[2] * k];
        if (y < -78 + 0.004 * x * x || abs(x) > 68) c = [70, 50, 35]; // hair
      }
      for (const ex of [-30.5, 30.5]) {
        if (inEllipse(x, y, ex, -35.5, 12, 4.8)) c = [235, 232, 228];
        if (inEllipse(x, y, ex, -35.5, 4.5, 4.5)) c = [70, 50, 40];
        if (inEllipse(x, y, ex, -35.5, 1.8, 1.8)) c = [15, 15, 15];
        if (inEllipse(x, y, ex * 1.05, -60, 17, 3)) c = [80, 60, 45]; // brow
      }
      if (inEllipse(x, y, -7, 8.5, 3.5, 2)) c = [110, 70, 60];
      if (inEllipse(x, y, 7, 8.5, 3.5, 2)) c = [110, 70, 60];
      if (abs(x) < 4 && y > -30 && y < 0) c = [c[0] * 1.04, c[1] * 1.04, c[2] * 1.04]; // nose ridge highlight
      if (inEllipse(x, y, 0, 31, 25, 9)) c = [170, 80, 80];
      if (inEllipse(x, y, 0, 29.5, 21, 1.2)) c = [90, 40, 40];
      const o = 3 * (py * W + px);
      for (let ch = 0; ch < 3; ch++) data[o + ch] = max(0, min(255, round(c[ch] + rng.range(-2, 2))));
    }
  }
  return { frame: { data, width: W, height: H }, landmarks };
}

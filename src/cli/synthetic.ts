/**
 * Synthetic webcam frames from a photo, for demos, the walk-through and tests: never for patients' frames.
 * A blink is made by painting the eyes shut, which the eye model reads as closed (test/engine.test.ts checks it).
 */

/** Interleaved 8-bit RGB pixels. */
export interface RgbFrame {
  data: Buffer;
  width: number;
  height: number;
}

/**
 * Paints each eye over with the skin just below it: a synthetic blink. `lashRows`: rows of the dark lash line on each
 * side of the middle one (0: one row). At 320x240 a one-row line sometimes reads half open once a browser's video path
 * and JPEG have blurred it; three rows read closed.
 */
export function closeEyes<F extends RgbFrame>(f: F, lm: Float32Array, { lashRows = 0 }: { lashRows?: number } = {}): F {
  const data = Buffer.from(f.data);
  for (const first of [36, 42]) {
    const xs = [0, 1, 2, 3, 4, 5].map((k) => lm[2 * (first + k)]);
    const ys = [0, 1, 2, 3, 4, 5].map((k) => lm[2 * (first + k) + 1]);
    const x1 = Math.floor(Math.min(...xs)) - 2;
    const x2 = Math.ceil(Math.max(...xs)) + 2;
    const cy = ys.reduce((a, b) => a + b) / 6;
    const half = Math.ceil((x2 - x1) * 0.35);
    const srcY = Math.min(f.height - 1, Math.round(cy + half * 2.2));
    for (let y = Math.round(cy - half); y <= Math.round(cy + half); y++) {
      for (let x = x1; x <= x2; x++) {
        if (x < 0 || y < 0 || x >= f.width || y >= f.height) continue;
        const dst = (y * f.width + x) * 3;
        const src = (srcY * f.width + x) * 3;
        data[dst] = data[src];
        data[dst + 1] = data[src + 1];
        data[dst + 2] = data[src + 2];
      }
      // A dark lash line across the middle, as a closed lid shows.
      if (Math.abs(y - Math.round(cy)) <= lashRows) {
        for (let x = x1 + 1; x < x2; x++) {
          const dst = (y * f.width + x) * 3;
          data[dst] = data[dst + 1] = data[dst + 2] = 40;
        }
      }
    }
  }
  return { ...f, data };
}

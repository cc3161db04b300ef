import { BlinkDetector } from './blink';
import type { Eyes } from '../engine';

const eyes = (p: number): Eyes => ({ left: p, right: p });
const pair = ([left, right]: readonly [number, number]): Eyes => ({ left, right });

/** Feeds the frames; the index of the frame that completed the blink, or -1. */
function blinkAt(frames: readonly (Eyes | undefined)[]): number {
  const d = new BlinkDetector();
  const at = frames.findIndex((e) => d.observe(e));
  expect(d.blinked).toBe(at >= 0);
  return at;
}

// Eye readings (left, right) of rendered sessions of `faceid pad-eval`, from the frame before the prompt on, rounded.
const LIVE = {
  // One eye read shut while open (0.0-0.15): open eyes average about 0.5, below any fixed "open" level of 0.6.
  oneEyeMisread: [
    [0.94, 0.15],
    [0.99, 0.04],
    [1, 0.06],
    [1, 0.1],
    [1, 0.06],
    [0, 0],
    [0, 0],
    [1, 0.03],
    [1, 0.06],
    [0, 0],
  ],
  oneEyeMisread2: [
    [1, 0.07],
    [1, 0],
    [1, 0.01],
    [1, 0.01],
    [0.99, 0.01],
    [1, 0.01],
    [1, 0],
    [0, 0],
    [0, 0],
    [0, 0],
    [1, 0.01],
  ],
  // One eye reads about 0, the other anywhere from 0.08 to 0.97: only the two frames at 0 / 0 are the blink.
  noisy: [
    [0, 0.65],
    [0, 0.32],
    [0.01, 0.1],
    [0.02, 0.51],
    [0.02, 0.97],
    [0, 0.57],
    [0, 0],
    [0, 0],
    [0.02, 0.31],
    [0.34, 0.08],
    [0.12, 0.41],
    [0.01, 0.39],
    [0, 0.09],
    [0, 0.44],
    [0.03, 0.91],
  ],
  // A steady face whose first closed frame was read half-open (the lid was still coming down).
  halfReadClosure: [
    [1, 1],
    [1, 0.99],
    [1, 0.99],
    [1, 0.99],
    [1, 0.98],
    [1, 0.91],
    [1, 0.99],
    [1, 1],
    [0, 0.42],
    [0.03, 0.01],
    [0.93, 0.05],
    [0.62, 0.12],
    [1, 1],
  ],
} as const;

// Still photos (no closure at all) of faces the eye model reads noisily; the fixed 0.6 / 0.35 rule saw a blink in each.
const STILL = {
  oneEyeFlickers: [
    [0.74, 1],
    [0.94, 1],
    [0.64, 1],
    [0.82, 1],
    [0.18, 1],
    [0.17, 1],
    [0.4, 1],
    [0.96, 1],
    [0.42, 1],
    [0.54, 1],
    [0.02, 1],
    [0.01, 1],
    [0, 1],
    [0.16, 0.16],
    [0, 1],
    [0, 1],
    [0, 1],
    [0.74, 1],
    [0.24, 1],
    [0.13, 1],
  ],
  bothFlicker: [
    [0.55, 0.28],
    [0.38, 0.81],
    [0.59, 0.14],
    [0.23, 0.11],
    [0.66, 0.13],
    [0.3, 0.65],
    [0.64, 0.55],
    [0.24, 0.71],
    [0.46, 0.87],
    [0.21, 0.71],
    [0.38, 0.14],
    [0.56, 0.55],
    [0.04, 0.56],
    [0.28, 0.03],
    [0.13, 0.65],
    [0.58, 0.27],
    [0.93, 0.03],
    [0.97, 0.75],
    [0.53, 0.99],
    [0.98, 1],
  ],
  dipsToZero: [
    [1, 0.98],
    [0.04, 0.9],
    [0, 0.93],
    [0.23, 0.89],
    [0.06, 0.99],
    [0.96, 1],
    [0.05, 0.96],
    [0.98, 1],
    [0.97, 1],
    [0.02, 1],
    [1, 0.94],
    [1, 0.66],
    [0.01, 1],
    [0.67, 1],
    [1, 0.94],
    [0.24, 1],
    [0.2, 0.79],
    [1, 0.82],
    [0.99, 0.96],
    [1, 0.86],
    [0.98, 1],
    [0, 0.26],
    [0.05, 0.97],
    [0.01, 0.57],
    [0.01, 0.83],
    [0.97, 1],
    [0.97, 0.97],
    [1, 0.95],
  ],
  glasses: [
    [0, 0.03],
    [0.04, 0.26],
    [0.01, 0.56],
    [0, 0.89],
    [0.44, 0.88],
    [0.02, 0.56],
    [0.99, 0.02],
    [0.04, 0.01],
    [0.92, 0.8],
    [0.11, 0.43],
    [0.04, 0.01],
  ],
} as const;

describe('BlinkDetector', () => {
  it('sees open, closed, open as one blink', () => {
    const d = new BlinkDetector();
    const seen = [0.95, 0.9, 0.97, 0.96, 0.02, 0.01, 0.96].map((p) => d.observe(eyes(p)));
    expect(seen).toEqual([false, false, false, false, false, false, true]);
    expect(d.blinked).toBe(true);
    expect(d.observe(eyes(0.01))).toBe(true);
  });

  it('never blinks for a steady still photo, nor for eyes that were closed from the start', () => {
    expect(blinkAt(Array.from({ length: 50 }, (_, i) => eyes(0.97 - (i % 3) * 0.01)))).toBe(-1);
    expect(blinkAt([0.01, 0.02, 0.01, 0.0, 0.02].map(eyes))).toBe(-1);
  });

  it('finds the blink of faces whose open eyes read low or noisily', () => {
    expect(blinkAt(LIVE.oneEyeMisread.map(pair))).toBe(7);
    expect(blinkAt(LIVE.oneEyeMisread2.map(pair))).toBe(10);
    expect(blinkAt(LIVE.noisy.map(pair))).toBe(14);
  });

  it('counts a closure whose first frame was read half-open', () => {
    expect(blinkAt(LIVE.halfReadClosure.map(pair))).toBe(12);
  });

  it("does not see a blink in a still photo's noisy readings", () => {
    for (const frames of Object.values(STILL)) expect(blinkAt(frames.map(pair))).toBe(-1);
  });

  it("judges closed against the session's open readings: a noisy face's own dips are no closure", () => {
    // A steady face (open 0.98-1.00): 0.12 is far below anything its open eyes read.
    expect(blinkAt([1, 0.99, 1, 0.98, 0.12, 0.97].map(eyes))).toBe(5);
    // A face read 0.2-0.6 open: 0.03 is within its wobble; 0.005 (under a twentieth of its lowest) is not.
    expect(blinkAt([0.45, 0.2, 0.6, 0.5, 0.03, 0.5, 0.4].map(eyes))).toBe(-1);
    expect(blinkAt([0.45, 0.2, 0.6, 0.5, 0.005, 0.5].map(eyes))).toBe(5);
  });

  it('needs four open readings before a closure, and ignores frames without a face', () => {
    expect(blinkAt([0.98, 0.97, 0.99, 0.01, 0.99].map(eyes))).toBe(-1);
    const gaps = [eyes(0.98), undefined, eyes(0.97), eyes(0.99), eyes(0.01), eyes(0.99), undefined, eyes(0), undefined];
    expect(blinkAt([...gaps, eyes(0.97)])).toBe(9);
  });

  it('waits for the eyes to open again, to half their usual reading', () => {
    expect(blinkAt([0.98, 0.99, 0.97, 0.98, 0.0, 0.2, 0.4, 0.45, 0.6].map(eyes))).toBe(8);
  });
});

import { BlinkDetector } from './blink';

const eyes = (p: number) => ({ left: p, right: p });

describe('BlinkDetector', () => {
  it('sees open, closed, open as one blink', () => {
    const d = new BlinkDetector();
    expect([0.95, 0.9, 0.05, 0.02, 0.97].map((p) => d.observe(eyes(p)))).toEqual([false, false, false, false, true]);
    expect(d.blinked).toBe(true);
  });

  it('never blinks for a still photo, nor for eyes that were closed from the start', () => {
    const still = new BlinkDetector();
    for (let i = 0; i < 50; i++) still.observe(eyes(0.97));
    expect(still.blinked).toBe(false);
    const shut = new BlinkDetector();
    for (const p of [0.01, 0.02, 0.01]) shut.observe(eyes(p));
    expect(shut.blinked).toBe(false);
  });

  it('ignores half-closed eyes and frames without a face', () => {
    const d = new BlinkDetector();
    for (const e of [eyes(0.9), undefined, eyes(0.5), eyes(0.45), eyes(0.9)]) d.observe(e);
    expect(d.blinked).toBe(false);
    d.observe(eyes(0.1));
    d.observe(undefined);
    expect(d.observe(eyes(0.8))).toBe(true);
  });
});

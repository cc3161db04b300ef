import { regionAround } from './bench-engine';

describe('regionAround', () => {
  it('cuts a 4:3 region about 3.5 face-widths wide centred on the face', () => {
    const r = regionAround({ x: 900, y: 500, width: 120, height: 150 }, 1920, 1280);
    expect(r.width).toBe(420);
    expect(r.height).toBe(315);
    expect(Math.abs(r.left + r.width / 2 - 960)).toBeLessThanOrEqual(1);
    expect(Math.abs(r.top + r.height / 2 - 575)).toBeLessThanOrEqual(1);
  });

  it('stays inside the image', () => {
    const r = regionAround({ x: 0, y: 0, width: 100, height: 100 }, 800, 600);
    expect(r.left).toBe(0);
    expect(r.top).toBe(0);
    const s = regionAround({ x: 760, y: 560, width: 40, height: 40 }, 800, 600);
    expect(s.left + s.width).toBeLessThanOrEqual(800);
    expect(s.top + s.height).toBeLessThanOrEqual(600);
  });

  it('shrinks to the image when the face is huge', () => {
    const r = regionAround({ x: 100, y: 100, width: 500, height: 500 }, 800, 500);
    expect(r.width).toBeLessThanOrEqual(800);
    expect(r.height).toBeLessThanOrEqual(500);
    expect(r.width / r.height).toBeCloseTo(4 / 3, 1);
  });
});

import { LIGHT_PALETTE, planLightChallenge, secureRandom, validateShownReport, type LightPlan } from './light';
import { seeded } from './pad/random';

const plan = (ms: number[]): LightPlan => ({
  challengeId: 'c',
  colours: ms.map((m, i) => ({ rgb: [...LIGHT_PALETTE[i]] as [number, number, number], ms: m })),
});

describe('planLightChallenge', () => {
  it('draws 5 palette colours, consecutive ones different, at least 3 distinct, 220-380 ms each', () => {
    const random = seeded(1);
    const sequences = new Set<string>();
    for (let n = 0; n < 500; n++) {
      const p = planLightChallenge(random);
      expect(p.colours).toHaveLength(5);
      const keys = p.colours.map((c) => c.rgb.join(','));
      for (const c of p.colours) {
        expect(LIGHT_PALETTE.map((q) => q.join(','))).toContain(c.rgb.join(','));
        expect(Number.isInteger(c.ms)).toBe(true);
        expect(c.ms).toBeGreaterThanOrEqual(220);
        expect(c.ms).toBeLessThanOrEqual(380);
      }
      for (let i = 1; i < keys.length; i++) expect(keys[i]).not.toBe(keys[i - 1]);
      expect(new Set(keys).size).toBeGreaterThanOrEqual(3);
      sequences.add(keys.join('|'));
    }
    // Fresh: 500 draws over 6*5^4 (less the few with 2 distinct colours) possible orders are nearly all different.
    expect(sequences.size).toBeGreaterThan(450);
  });

  it('uses every palette colour in every position, and a new challenge id each time', () => {
    const random = seeded(2);
    const plans = Array.from({ length: 300 }, () => planLightChallenge(random));
    for (let pos = 0; pos < 4; pos++) {
      expect(new Set(plans.map((p) => p.colours[pos].rgb.join(','))).size).toBe(6);
    }
    expect(new Set(plans.map((p) => p.challengeId)).size).toBe(300);
    expect(plans[0].challengeId).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('takes other counts and durations, and refuses impossible ones', () => {
    const p = planLightChallenge(seeded(3), { count: 6, minMs: 300, maxMs: 300 });
    expect(p.colours.map((c) => c.ms)).toEqual([300, 300, 300, 300, 300, 300]);
    expect(() => planLightChallenge(seeded(3), { count: 2 })).toThrow(RangeError);
    expect(() => planLightChallenge(seeded(3), { minMs: 500, maxMs: 400 })).toThrow(RangeError);
  });

  it('copies the palette colours (a caller cannot change the palette)', () => {
    const p = planLightChallenge(seeded(4));
    p.colours[0].rgb[0] = 7;
    expect(LIGHT_PALETTE.every((c) => c[0] === 0 || c[0] === 255)).toBe(true);
  });

  it('defaults to the system CSPRNG', () => {
    const xs = Array.from({ length: 1000 }, secureRandom);
    expect(Math.min(...xs)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...xs)).toBeLessThan(1);
    expect(new Set(xs).size).toBe(1000);
    expect(planLightChallenge().colours).toHaveLength(5);
  });
});

describe('validateShownReport', () => {
  const p = plan([300, 400, 250, 350]);

  it('accepts a report as asked and returns the phases', () => {
    const r = validateShownReport(p, [1000, 1300, 1700, 1950, 2300], 500);
    expect(r).toEqual({
      ok: true,
      phases: [
        { rgb: [255, 0, 0], start: 1000, end: 1300 },
        { rgb: [0, 255, 0], start: 1300, end: 1700 },
        { rgb: [0, 0, 255], start: 1700, end: 1950 },
        { rgb: [255, 255, 0], start: 1950, end: 2300 },
      ],
    });
  });

  it('accepts 60 Hz rounding and a slow tab within the margins (-100 / +250 ms)', () => {
    expect(validateShownReport(p, [0, 201, 601, 1100, 1450], null).ok).toBe(true); // 201 (asked 300), 499 (asked 250)
    const refused = { ok: false, reason: 'light_out_of_order' };
    expect(validateShownReport(p, [0, 199, 599, 849, 1199], null)).toEqual(refused); // 199 (asked 300)
    expect(validateShownReport(p, [0, 551, 951, 1201, 1551], null)).toEqual(refused); // 551 (asked 300)
  });

  it('refuses reports of the wrong length, not increasing, or not numbers', () => {
    for (const shownAt of [
      [1000, 1300, 1700, 1950],
      [1000, 1300, 1700, 1950, 2300, 2600],
      [1000, 1300, 1300, 1550, 1900],
      [1300, 1000, 1400, 1650, 2000],
      [1000, 1300, NaN, 1950, 2300],
    ]) {
      expect(validateShownReport(p, shownAt, null)).toEqual({ ok: false, reason: 'light_out_of_order' });
    }
  });

  it('refuses a first colour shown more than 1500 ms after the challenge arrived; null skips that check', () => {
    const shownAt = [3000, 3300, 3700, 3950, 4300];
    expect(validateShownReport(p, shownAt, 1500).ok).toBe(true);
    expect(validateShownReport(p, shownAt, 1499)).toEqual({ ok: false, reason: 'light_late' });
    expect(validateShownReport(p, shownAt, null).ok).toBe(true);
  });
});

describe('planLightChallenge with a stuck random source', () => {
  it('throws instead of looping forever', () => {
    expect(() => planLightChallenge(() => 0.5)).toThrow(RangeError);
  });
});

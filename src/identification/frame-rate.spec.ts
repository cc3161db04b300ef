import { seeded } from '../liveness/pad/random';
import { FRAME_BURST, FRAME_FLOOD, FRAME_RATE } from '../transport/protocol';
import { DEFAULT_FRAME_RATE, FrameRateGate, type FrameAdmission } from './frame-rate';

/** Frames at `fps` for `seconds` on a fake clock, optionally jittered; returns each admission. */
function play(
  gate: FrameRateGate,
  clock: { t: number },
  fps: number,
  seconds: number,
  jitterMs = 0,
  seed = 1,
): FrameAdmission[] {
  const random = seeded(seed);
  const start = clock.t;
  const out: FrameAdmission[] = [];
  for (let k = 0; k < Math.round(fps * seconds); k++) {
    // Each frame's arrival may move by up to ±jitterMs around its due time (the network bunches and spreads them).
    const due = start + (k * 1000) / fps + (random() * 2 - 1) * jitterMs;
    clock.t = Math.max(clock.t, due);
    out.push(gate.admit());
  }
  return out;
}

const accepted = (xs: FrameAdmission[]) => xs.filter((x) => x.accepted).length;

describe('FrameRateGate (fps.max per session)', () => {
  it('uses the protocol constants: fps.max 15, a burst of 8, floods above 4x for 3 seconds', () => {
    expect(DEFAULT_FRAME_RATE).toEqual({
      maxFps: FRAME_RATE.max,
      burst: FRAME_BURST,
      floodFactor: FRAME_FLOOD.factor,
      floodSeconds: FRAME_FLOOD.seconds,
    });
    expect(DEFAULT_FRAME_RATE).toEqual({ maxFps: 15, burst: 8, floodFactor: 4, floodSeconds: 3 });
  });

  it('lets a client at fps.max through whole, even with 40 ms of jitter each way', () => {
    const clock = { t: 0 };
    const gate = new FrameRateGate(DEFAULT_FRAME_RATE, () => clock.t);
    const run = play(gate, clock, 15, 60, 40, 7);
    expect(run).toHaveLength(900);
    expect(accepted(run)).toBe(900);
    expect(run.every((x) => x.flood === null)).toBe(true);
  });

  it('takes a burst of 8 at once, then drops what comes before the next token', () => {
    const clock = { t: 0 };
    const gate = new FrameRateGate(DEFAULT_FRAME_RATE, () => clock.t);
    const burst = Array.from({ length: 20 }, () => gate.admit());
    expect(burst.map((x) => x.accepted)).toEqual([...Array(8).fill(true), ...Array(12).fill(false)]);
    clock.t += 1000 / 15;
    expect([gate.admit().accepted, gate.admit().accepted]).toEqual([true, false]);
  });

  it('drops the surplus of a faster client: at 30 fps for 10 s, 150 + the burst are analysed, the rest dropped', () => {
    const clock = { t: 0 };
    const gate = new FrameRateGate(DEFAULT_FRAME_RATE, () => clock.t);
    const run = play(gate, clock, 30, 10);
    // 10 s at 15 a second (the first frame at t=0, the last at 9.967 s), plus the 8 of the full bucket.
    expect(accepted(run)).toBe(8 + Math.floor(9.9667 * 15));
    expect(run.length - accepted(run)).toBe(300 - accepted(run));
    expect(gate.floodSeconds).toBe(0); // 2x is not a flood
  });

  it('warns a client far above it (4x and more) at its first flood second and closes it at the third', () => {
    const clock = { t: 0 };
    const gate = new FrameRateGate(DEFAULT_FRAME_RATE, () => clock.t);
    const run = play(gate, clock, 80, 300 / 80); // 300 frames at 80 a second
    const floods = run.map((x, i) => ({ i, flood: x.flood })).filter((x) => x.flood !== null);
    // The 61st frame (61 within 750 ms: more than 4 x 15 in a second) is the first flood; one a second after it
    // counts again (frame 61 + 80 is 1 s later), and the third closes.
    expect(floods.slice(0, 2)).toEqual([
      { i: 60, flood: 'warn' },
      { i: 60 + 160, flood: 'close' },
    ]);
    expect(floods.slice(2).every((f) => f.flood === 'close')).toBe(true); // had the connection stayed open
    expect(run[60 + 160].accepted).toBe(false);
    expect(gate.floodSeconds).toBe(3); // frames 60, 140 and 220; 300 would be the fourth
    // Whatever the flood, no more than the burst plus 15 a second got through.
    expect(accepted(run.slice(0, 221))).toBe(8 + Math.floor((220 / 80) * 15));
  });

  it('counts flood seconds over the session, not only in a row', () => {
    const clock = { t: 0 };
    const gate = new FrameRateGate(DEFAULT_FRAME_RATE, () => clock.t);
    const floods: Array<string | null> = [];
    for (let round = 0; round < 3; round++) {
      floods.push(
        ...play(gate, clock, 70, 1)
          .map((x) => x.flood)
          .filter((f) => f !== null),
      );
      play(gate, clock, 10, 5); // then calm
    }
    expect(floods).toEqual(['warn', 'close']);
  });
});

/**
 * Seeded randomness for the scene models: the same seed always renders the same session, so a benchmark run can be
 * repeated and a failing case named by its seed. Not for secrets.
 */

// Module-level aliases: hot loops then skip a global lookup per call (slow inside test runners' vm contexts).
const { imul, floor, sqrt, log, cos, sin, max, min, PI } = Math;

/** A seeded uniform [0, 1) source as a plain function (specs and plans take `() => number`). */
export function seeded(seed: number): () => number {
  const rng = new Rng(seed);
  return () => rng.next();
}

/** A standard normal draw from any uniform source (Box-Muller). */
export function gaussian(random: () => number): number {
  return sqrt(-2 * log(1 - random())) * cos(2 * PI * random());
}

/** mulberry32: small, fast, good enough for simulation. */
export class Rng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = imul(t ^ (t >>> 15), t | 1);
    t ^= t + imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Uniform in [lo, hi). */
  range(lo: number, hi: number): number {
    return lo + this.next() * (hi - lo);
  }

  /** Integer in [lo, hi). */
  int(lo: number, hi: number): number {
    return lo + floor(this.next() * (hi - lo));
  }

  /** Standard normal (Box-Muller). */
  gauss(): number {
    const u = 1 - this.next();
    const v = this.next();
    return sqrt(-2 * log(u)) * cos(2 * PI * v);
  }

  /** A new independent generator (so adding a draw in one part does not shift every other part). */
  fork(): Rng {
    return new Rng(floor(this.next() * 4294967296));
  }
}

/** Mixes numbers into one 32-bit seed: per-prompt randomness that does not depend on how many frames came before. */
export function hashSeed(...values: number[]): number {
  let h = 0x811c9dc5;
  for (const v of values) {
    // Two 32-bit halves of the value, so a time in ms and a fractional value both count.
    const lo = floor(v) >>> 0;
    const hi = floor((v - floor(v)) * 4294967296) >>> 0;
    for (const w of [lo, hi]) {
      h ^= w;
      h = imul(h, 0x01000193) >>> 0;
      h ^= h >>> 13;
      h = imul(h, 0x5bd1e995) >>> 0;
    }
  }
  return h >>> 0;
}

/**
 * A slow random wobble: a sum of a few sines of random frequency and phase, amplitude about `amplitude` (peak values
 * rarely exceed it). Smooth in time, so it reads like drift or a head's sway, not like noise.
 */
export class Wobble {
  private readonly parts: { f: number; phase: number; a: number }[] = [];

  constructor(
    rng: Rng,
    readonly amplitude: number,
    minHz: number,
    maxHz: number,
    count = 3,
  ) {
    for (let i = 0; i < count; i++) {
      this.parts.push({ f: rng.range(minHz, maxHz), phase: rng.range(0, 2 * PI), a: rng.range(0.5, 1) });
    }
    const sum = this.parts.reduce((s, p) => s + p.a, 0);
    // Sines rarely line up: scale so the typical peak (not the sum of peaks) is about the amplitude.
    for (const p of this.parts) p.a *= (amplitude / sum) * 1.6;
  }

  /** Value at time t (ms). */
  at(t: number): number {
    let v = 0;
    for (const p of this.parts) v += p.a * sin(2 * PI * p.f * (t / 1000) + p.phase);
    return max(-this.amplitude, min(this.amplitude, v));
  }
}

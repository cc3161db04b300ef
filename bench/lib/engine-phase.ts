import { performance } from 'node:perf_hooks';
import { FULL_STAGES, STAGE_TIMING_KEYS, type Analysis, type FaceEngine, type StageTimings } from '../../src/engine';
import { cpuSnapshot, otherCpuPercent } from './machine';
import { latencyOf, median, repeated } from './stats';
import type { EngineResult } from './types';

/**
 * The engine alone, in this process, on the same frames as the load: the denominator of the gateway's overhead
 * ratio. Every call gets a fresh copy of its frame (the engine wipes its input).
 */

export interface EngineRep {
  trackMs: number[];
  fullMs: number[];
  stages: Partial<Record<keyof StageTimings, number[]>>;
  trackPerS: number;
  fullPerS: number;
  /** CPU other processes used meanwhile, % of one core. */
  otherCpuPercent: number;
}

// Time in the native queue says nothing about the engine alone.
const STAGES = STAGE_TIMING_KEYS.filter((k) => k !== 'queued');

/** Calls `fn` one after another for `seconds`, cycling through the frames; wall time of each call. */
async function sequential(
  seconds: number,
  frames: Buffer[],
  fn: (f: Buffer) => Promise<Analysis>,
  onResult?: (a: Analysis) => void,
): Promise<number[]> {
  const out: number[] = [];
  const end = performance.now() + seconds * 1000;
  for (let i = 0; performance.now() < end; i++) {
    const copy = Buffer.from(frames[i % frames.length]);
    const t0 = performance.now();
    const a = await fn(copy);
    out.push(performance.now() - t0);
    onResult?.(a);
  }
  return out;
}

/** `inFlight` loops, each awaiting one call at a time, for `seconds`: calls per second. */
async function closedLoop(
  seconds: number,
  inFlight: number,
  frames: Buffer[],
  fn: (f: Buffer) => Promise<unknown>,
): Promise<number> {
  let calls = 0;
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  await Promise.all(
    Array.from({ length: inFlight }, async (_, k) => {
      for (let i = k; performance.now() < end; i += inFlight) {
        await fn(Buffer.from(frames[i % frames.length]));
        calls++;
      }
    }),
  );
  return calls / ((performance.now() - t0) / 1000);
}

export async function warmUp(engine: FaceEngine, frames: Buffer[]): Promise<void> {
  const n = engine.options.workers;
  for (let round = 0; round < 3; round++) {
    await Promise.all(Array.from({ length: n }, (_, k) => engine.full(Buffer.from(frames[k % frames.length]))));
    await engine.track(Buffer.from(frames[round % frames.length]));
  }
}

/** One repetition: track and full latency (1 in flight), then track and full throughput (`workers` in flight). */
export async function runEngineRep(engine: FaceEngine, frames: Buffer[], seconds: number): Promise<EngineRep> {
  const before = cpuSnapshot();
  const stages: EngineRep['stages'] = {};
  const trackMs = await sequential(seconds, frames, (f) => engine.track(f));
  const fullMs = await sequential(
    seconds,
    frames,
    (f) => engine.full(f),
    (a) => {
      for (const key of STAGES) (stages[key] ??= []).push(a.timings[key]);
      for (const face of a.faces) face.embedding?.fill(0);
    },
  );
  const n = engine.options.workers;
  const trackPerS = await closedLoop(seconds, n, frames, (f) => engine.track(f));
  const fullPerS = await closedLoop(seconds, n, frames, (f) => engine.full(f));
  return { trackMs, fullMs, stages, trackPerS, fullPerS, otherCpuPercent: otherCpuPercent(before, cpuSnapshot(), []) };
}

export function aggregateEngine(
  engine: FaceEngine,
  frames: Buffer[],
  threadsPerJob: number,
  reps: EngineRep[],
): EngineResult {
  const stages: Record<string, number> = {};
  for (const key of STAGES) stages[key] = Math.round(median(reps.flatMap((r) => r.stages[key] ?? [])) * 1000) / 1000;
  return {
    frame: { width: 320, height: 240, bytes: Math.round(median(frames.map((f) => f.length))), frames: frames.length },
    workers: engine.options.workers,
    threadsPerJob,
    trackP50: repeated(reps.map((r) => latencyOf(r.trackMs).p50)),
    trackP99: repeated(reps.map((r) => latencyOf(r.trackMs).p99)),
    fullP50: repeated(reps.map((r) => latencyOf(r.fullMs).p50)),
    fullP99: repeated(reps.map((r) => latencyOf(r.fullMs).p99)),
    stages,
    trackPerS: repeated(
      reps.map((r) => r.trackPerS),
      1,
    ),
    fullPerS: repeated(
      reps.map((r) => r.fullPerS),
      1,
    ),
    otherCpuPercent: repeated(
      reps.map((r) => r.otherCpuPercent),
      0,
    ),
  };
}

/** The engine's answer on one frame, for checking that a peer computes the same thing. */
export interface ReferenceAnswer {
  box: { x: number; y: number; width: number; height: number };
  embedding: Float32Array;
  liveness: number;
}

export async function referenceAnswer(engine: FaceEngine, frame: Buffer): Promise<ReferenceAnswer | null> {
  // The peers' chain ends with the passive liveness model, which the service's full call no longer runs: asked here.
  const a = await engine.analyze(Buffer.from(frame), { stages: [...FULL_STAGES, 'liveness'], maxFaces: 1 });
  const face = a.faces.find((f) => f.primary);
  if (!face?.embedding || face.liveness === undefined) return null;
  return { box: { ...face.box }, embedding: Float32Array.from(face.embedding), liveness: face.liveness };
}

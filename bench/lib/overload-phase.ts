import { benchIins, enroll } from './api';
import type { BenchFrames } from './frames';
import type { BenchServer } from './server-handle';
import { histogramLatency, mergeHistograms, parsePrometheus, promSum, repeated } from './stats';
import type { OverloadPoint, OverloadResult, OverloadSuite } from './types';
import type { LoadGenProcess, WsRep } from './ws-phase';

/**
 * The overload phase: what admission control (FACE_SESSIONS_MAX) does to goodput. Desks run one face session after
 * another at a comfortable load (C desks, C = the capacity) and at a multiple of it, against two gateways side by side:
 * one with admission control (`on`, FACE_SESSIONS_MAX = C) and one without (`off`, FACE_SESSIONS_MAX=0), interleaved.
 * A desk refused with 503 waits the time it was given (retryAfterMs, else Retry-After) and asks again for the same
 * patient; its patient blinks reactionMs after the prompt. Each desk has a patient of its own (as many patients as
 * desks at the highest load), so no desk's token supersedes another's.
 */

export interface OverloadRig {
  suite: OverloadSuite;
  on: BenchServer;
  off: BenchServer;
  capacity: number;
  engineWorkers: number;
  patients: string[];
}

export interface OverloadPointSpec {
  admission: 'on' | 'off';
  load: number;
  desks: number;
}

/** The gateways' settings: FACE_SESSIONS_MAX of each (the `on` one keeps the service's default unless set). */
export function overloadServerEnv(suite: OverloadSuite): { on: Record<string, string>; off: Record<string, string> } {
  const blinkOnly = { BENCH_BLINK_ONLY: '1' };
  return {
    on: { ...blinkOnly, ...(suite.capacity === undefined ? {} : { FACE_SESSIONS_MAX: String(suite.capacity) }) },
    off: { ...blinkOnly, FACE_SESSIONS_MAX: '0' },
  };
}

/** Reads C and the engine's workers from the `on` gateway, and enrolls a patient per desk of the highest load on both. */
export async function prepareOverload(
  suite: OverloadSuite,
  servers: { on: BenchServer; off: BenchServer },
  frames: BenchFrames,
): Promise<OverloadRig> {
  const metrics = parsePrometheus(await servers.on.metricsText());
  const capacity = promSum(metrics, 'faceid_face_sessions_max');
  if (!(capacity > 0)) throw new Error('The admission-controlled gateway reports no FACE_SESSIONS_MAX.');
  const health = (await (await fetch(`${servers.on.base}/health`)).json()) as { engine?: { workers?: number } };
  const patients = benchIins(Math.max(...suite.loads) * capacity, 2000);
  await Promise.all(
    [servers.on, servers.off].map(async (server) => {
      for (const iin of patients) await enroll(server.base, server.enrollKey, iin, frames.reference);
    }),
  );
  return { suite, ...servers, capacity, engineWorkers: health.engine?.workers ?? NaN, patients };
}

/** Every load, each on both gateways (off first, so that the two see the same conditions one after the other). */
export function overloadPoints(rig: Pick<OverloadRig, 'suite' | 'capacity'>): OverloadPointSpec[] {
  const out: OverloadPointSpec[] = [];
  for (const load of rig.suite.loads) {
    for (const admission of ['off', 'on'] as const)
      out.push({ admission, load, desks: Math.round(load * rig.capacity) });
  }
  return out;
}

export function runOverloadRep(
  gen: LoadGenProcess,
  rig: OverloadRig,
  frames: BenchFrames,
  point: OverloadPointSpec,
): Promise<WsRep> {
  const s = rig.suite;
  return gen.rep(
    point.admission === 'on' ? rig.on : rig.off,
    frames,
    rig.patients,
    { transport: 'ws', connections: point.desks, fps: s.fps },
    {
      warmupSeconds: s.warmupSeconds,
      measureSeconds: s.measureSeconds,
      probeIntervalMs: 0,
      reactionMs: s.reactionMs,
      blinkMs: s.blinkMs,
    },
  );
}

function sum(items: Array<Record<string, number>>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const counts of items) for (const [k, v] of Object.entries(counts)) out[k] = (out[k] ?? 0) + v;
  return out;
}

const total = (counts: Record<string, number>) => Object.values(counts).reduce((a, b) => a + b, 0);

export function aggregateOverloadPoint(point: OverloadPointSpec, capacity: number, reps: WsRep[]): OverloadPoint {
  const merged = (pick: (r: WsRep) => string) => histogramLatency(mergeHistograms(reps.map(pick)));
  // The generator's own window (its verdicts are counted there): verdicts per second of its seconds.
  const perS = (f: (r: WsRep) => number) =>
    repeated(
      reps.map((r) => f(r) / r.window.seconds),
      2,
    );
  return {
    admission: point.admission,
    desks: point.desks,
    load: point.desks / capacity,
    verdictsPerS: perS((r) => total(r.window.verdicts)),
    goodputPerS: perS((r) => r.window.verdicts.match ?? 0),
    verdicts: sum(reps.map((r) => r.window.verdicts)),
    timeToVerdict: merged((r) => r.window.timeToVerdict),
    visitToVerdict: merged((r) => r.window.visitToVerdict),
    admissionWait: merged((r) => r.window.admissionWait),
    refused: reps.reduce((a, r) => a + r.window.admissionRetries, 0),
    refusals: sum(reps.map((r) => r.window.refusals)),
    busy: reps.reduce((a, r) => a + r.window.busy, 0),
    unfinished: reps.reduce((a, r) => a + r.window.unfinished, 0),
    waiting: reps.reduce((a, r) => a + r.window.waitingAdmission, 0),
    errors: sum(
      reps.map((r) => ({
        ...r.window.errors,
        ...Object.fromEntries(Object.entries(r.window.closes).map(([k, v]) => [`close_${k}`, v])),
      })),
    ),
    analysedPerS: repeated(
      reps.map((r) => r.analysed / r.seconds),
      1,
    ),
    gatewayCpuPercent: repeated(
      reps.map((r) => r.server.cpuPercent),
      0,
    ),
    otherCpuPercent: repeated(
      reps.map((r) => r.otherCpuPercent),
      0,
    ),
  };
}

/** The points, and each gateway's goodput at the highest load over its goodput at the first, round by round. */
export function aggregateOverload(rig: OverloadRig, reps: Map<OverloadPointSpec, WsRep[]>): OverloadResult {
  const specs = [...reps.keys()];
  const points = specs.map((p) => aggregateOverloadPoint(p, rig.capacity, reps.get(p)!));
  const loads = rig.suite.loads;
  const ratio = (admission: 'on' | 'off') => {
    const low = specs.find((p) => p.admission === admission && p.load === loads[0]);
    const high = specs.find((p) => p.admission === admission && p.load === loads[loads.length - 1]);
    if (!low || !high) return repeated([]);
    const lows = reps.get(low)!;
    const highs = reps.get(high)!;
    const match = (r: WsRep) => (r.window.verdicts.match ?? 0) / r.window.seconds;
    return repeated(
      highs.map((h, i) => (i < lows.length && match(lows[i]) > 0 ? match(h) / match(lows[i]) : NaN)),
      3,
    );
  };
  return {
    capacity: rig.capacity,
    engineWorkers: rig.engineWorkers,
    fps: rig.suite.fps,
    points,
    goodputRatio: { on: ratio('on'), off: ratio('off') },
  };
}

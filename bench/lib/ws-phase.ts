import * as path from 'node:path';
import type { LoadConfig, LoadReply, LoadWindow } from '../ws-load';
import type { EngineRep } from './engine-phase';
import type { BenchFrames } from './frames';
import { cpuSnapshot, otherCpuPercent } from './machine';
import { forkScript, request, sibling, sleep, type Child } from './proc';
import type { BenchServer, ServerSample } from './server-handle';
import {
  bucketDelta,
  bucketQuantile,
  histogramLatency,
  mergeHistograms,
  parsePrometheus,
  promBuckets,
  promSum,
  repeated,
  type PromSamples,
} from './stats';
import type { WsPoint, WsResult } from './types';

/** One repetition of one load point: what the generator saw, what the gateway counted, how the gateway fared. */
export interface WsRep {
  window: LoadWindow;
  server: ServerSample;
  seconds: number;
  received: number;
  analysed: number;
  dropped: number;
  track: number;
  full: number;
  /** Face verdicts the gateway reached inside its window (its /metrics), whatever the generator saw of them. */
  verdicts: number;
  analysisP50: number;
  analysisP99: number;
  otherCpuPercent: number;
}

export interface WsTiming {
  warmupSeconds: number;
  measureSeconds: number;
  probeIntervalMs: number;
  /** How long the eyes stay shut when asked to blink; default 250 ms. */
  blinkMs?: number;
  /** How long after the prompt they shut (a person's reaction); default 0, at once. */
  reactionMs?: number;
  /** Ask for a per-frame ack and time each frame's round trip; default false. */
  acks?: boolean;
  /** One workstation key per desk (the fleet phase); default: the server's key for every desk. */
  apiKeys?: string[];
}

const isType =
  <T extends LoadReply['type']>(type: T) =>
  (m: unknown): m is Extract<LoadReply, { type: T }> | Extract<LoadReply, { type: 'failed' }> =>
    typeof m === 'object' && m !== null && [type, 'failed'].includes((m as { type: string }).type);

function check<T extends LoadReply>(m: T | Extract<LoadReply, { type: 'failed' }>): T {
  if (m.type === 'failed') throw new Error(`The load generator failed: ${m.message}`);
  return m as T;
}

/**
 * The load generator's process, kept for a whole sweep. Each `rep` runs one load point against a server for
 * warm-up + measure seconds. The measurement window opens after the warm-up: the generator's counters, the
 * server's event-loop/CPU accounting and a /metrics scrape all start there, and end together.
 */
export class LoadGenProcess {
  private constructor(private readonly child: Child) {}

  static start(): LoadGenProcess {
    return new LoadGenProcess(forkScript(sibling(path.join(__dirname, '..'), 'ws-load'), { quiet: true }));
  }

  async rep(
    server: BenchServer,
    frames: BenchFrames,
    patients: string[],
    point: WsPoint,
    timing: WsTiming,
  ): Promise<WsRep> {
    const proc = this.child.proc;
    try {
      const config: LoadConfig = {
        base: server.base,
        apiKey: server.apiKey,
        patients,
        connections: point.connections,
        fps: point.fps,
        probeIntervalMs: timing.probeIntervalMs,
        blinkMs: timing.blinkMs ?? 250,
        reactionMs: timing.reactionMs ?? 0,
        acks: timing.acks ?? false,
        ...(timing.apiKeys ? { apiKeys: timing.apiKeys } : {}),
      };
      check(
        await request(
          proc,
          { type: 'start', config, frames: { open: frames.open, closed: frames.closed } },
          isType('started'),
        ),
      );
      await sleep(timing.warmupSeconds * 1000);

      const [before] = await Promise.all([scrape(server), server.reset()]);
      check(await request(proc, { type: 'mark' }, isType('marked')));
      const cpuBefore = cpuSnapshot();
      await sleep(timing.measureSeconds * 1000);
      // The load stops first, then the gateway is read: a flooded gateway may take long to answer /metrics, and
      // the window must not stretch while the flood goes on. Its time base is its own, reset -> sample.
      const { result } = check(await request(proc, { type: 'pause' }, isType('result'), 30_000));
      const [after, sample] = await Promise.all([scrape(server), server.sample()]);
      const cpuAfter = cpuSnapshot();
      check(await request(proc, { type: 'stop' }, isType('stopped'), 30_000));
      await settle(server);

      const delta = (name: string, labels: Record<string, string> = {}) =>
        promSum(after, name, labels) - promSum(before, name, labels);
      const buckets = bucketDelta(
        promBuckets(after, 'faceid_analysis_seconds'),
        promBuckets(before, 'faceid_analysis_seconds'),
      );
      return {
        window: result,
        server: sample,
        seconds: sample.elapsedSeconds,
        received: delta('faceid_frames_received_total'),
        analysed: delta('faceid_frames_analysed_total'),
        dropped: delta('faceid_frames_dropped_total'),
        track: delta('faceid_analysis_seconds_count', { call: 'track' }),
        full: delta('faceid_analysis_seconds_count', { call: 'full' }),
        // Face verdicts; a lock-out (method face) is a refusal at admission, not a verdict of a session that ran.
        verdicts:
          delta('faceid_verdicts_total', { method: 'face' }) -
          delta('faceid_verdicts_total', { method: 'face', result: 'locked_out' }),
        analysisP50: bucketQuantile(buckets, 0.5) * 1000,
        analysisP99: bucketQuantile(buckets, 0.99) * 1000,
        otherCpuPercent: otherCpuPercent(cpuBefore, cpuAfter, [sample.cpuPercent, result.cpuPercent]),
      };
    } catch (err) {
      const tail = this.child.tail();
      throw new Error(`${(err as Error).message}${tail ? `\n${tail}` : ''}`);
    }
  }

  async close(): Promise<void> {
    const proc = this.child.proc;
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((resolve) => proc.once('exit', resolve));
    proc.send({ type: 'exit' });
    const timer = setTimeout(() => proc.kill(), 5000);
    await exited;
    clearTimeout(timer);
  }
}

async function scrape(server: BenchServer): Promise<PromSamples> {
  return parsePrometheus(await server.metricsText(60_000));
}

/** Waits (up to 5 s) until the previous load's connections are gone, so that points do not overlap. */
async function settle(server: BenchServer): Promise<void> {
  const end = Date.now() + 5000;
  while (Date.now() < end && (await server.sample()).connections > 0) await sleep(100);
  await sleep(300); // engine calls of the last frames finish
}

/** Engine-only capacity for a mix of track and full calls: the time of one of each, weighted. */
export function engineCapacity(engine: Pick<EngineRep, 'trackPerS' | 'fullPerS'>, fullShare: number): number {
  const t = engine.trackPerS;
  const f = engine.fullPerS;
  if (!(t > 0 && f > 0)) return NaN;
  return 1 / (fullShare / f + (1 - fullShare) / t);
}

function sumCounts(items: Array<Record<string, number>>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const counts of items) for (const [k, v] of Object.entries(counts)) out[k] = (out[k] ?? 0) + v;
  return out;
}

/**
 * The repetitions of one point as medians with their noise; latency histograms are merged. `engineReps[i]` is the
 * engine-alone repetition of the same round as `reps[i]`.
 */
export function aggregateWs(point: WsPoint, reps: WsRep[], engineReps: EngineRep[]): WsResult {
  const per = (f: (r: WsRep) => number, digits = 2) => repeated(reps.map(f), digits);
  const rate = (f: (r: WsRep) => number) => per((r) => f(r) / r.seconds, 1);
  const dropShare = per((r) => (r.received > 0 ? r.dropped / r.received : 0), 3);
  const fullShare = per((r) => (r.analysed > 0 ? r.full / r.analysed : 0), 3);
  const saturated = dropShare.value >= 0.05;
  const ratio =
    engineReps.length === reps.length && saturated
      ? repeated(
          reps.map(
            (r, i) => r.analysed / r.seconds / engineCapacity(engineReps[i], r.analysed > 0 ? r.full / r.analysed : 0),
          ),
          3,
        )
      : null;
  const ttvPerRep = reps.map((r) => histogramLatency(mergeHistograms([r.window.timeToVerdict])).p50);
  const probePerRep = reps.map((r) => histogramLatency(mergeHistograms([r.window.probe])).p99);
  const merged = (pick: (w: LoadWindow) => string) =>
    histogramLatency(mergeHistograms(reps.map((r) => pick(r.window))));
  // Per verdict: the gateway's CPU time and engine calls over its window, divided by the verdicts it reached in it
  // (NaN for a repetition without one).
  const perVerdict = (f: (r: WsRep) => number, digits: number) =>
    per((r) => (r.verdicts > 0 ? f(r) / r.verdicts : NaN), digits);
  const acked = reps.some((r) => Object.keys(r.window.ackOutcomes ?? {}).length > 0);
  return {
    point,
    offeredPerS: point.fps === 'closed' ? null : point.connections * point.fps,
    sentPerS: rate((r) => r.window.framesSent),
    receivedPerS: rate((r) => r.received),
    analysedPerS: rate((r) => r.analysed),
    droppedPerS: rate((r) => r.dropped),
    dropShare,
    fullShare,
    analysisP50: per((r) => r.analysisP50, 1),
    analysisP99: per((r) => r.analysisP99, 1),
    timeToVerdict: merged((w) => w.timeToVerdict),
    timeToVerdictP50: repeated(ttvPerRep, 0),
    verdicts: sumCounts(reps.map((r) => r.window.verdicts)),
    unfinished: reps.reduce((a, r) => a + r.window.unfinished, 0),
    sessionSetup: merged((w) => w.sessionSetup),
    probe: merged((w) => w.probe),
    probeP99: repeated(probePerRep, 2),
    generatorLag: merged((w) => w.lag),
    generatorCpuPercent: per((r) => r.window.cpuPercent, 0),
    server: {
      eldP50: per((r) => r.server.eld.p50, 2),
      eldP99: per((r) => r.server.eld.p99, 2),
      eldMax: per((r) => r.server.eld.max, 1),
      cpuPercent: per((r) => r.server.cpuPercent, 0),
      rssPeakMiB: per((r) => r.server.rssPeakMiB, 0),
      otherCpuPercent: per((r) => r.otherCpuPercent, 0),
    },
    engineRatio: ratio,
    saturated,
    busy: reps.reduce((a, r) => a + r.window.busy, 0),
    errors: sumCounts(reps.map((r) => ({ ...r.window.errors, ...prefixed('close_', r.window.closes) }))),
    sessionRefusals: sumCounts(reps.map((r) => r.window.refusals)),
    gatewayVerdicts: reps.reduce((a, r) => a + r.verdicts, 0),
    cpuMsPerVerdict: perVerdict((r) => r.server.cpuMs, 0),
    fullPerVerdict: perVerdict((r) => r.full, 2),
    trackPerVerdict: perVerdict((r) => r.track, 1),
    ...(acked
      ? {
          frameAck: merged((w) => w.frameAck),
          frameAckAnalysed: merged((w) => w.frameAckAnalysed),
          frameAckP99: repeated(
            reps.map((r) => histogramLatency(mergeHistograms([r.window.frameAck])).p99),
            2,
          ),
          ackOutcomes: sumCounts(reps.map((r) => r.window.ackOutcomes)),
          ackPending: reps.reduce((a, r) => a + r.window.ackPending, 0),
          ackLost: reps.reduce((a, r) => a + r.window.ackLost, 0),
        }
      : {}),
  };
}

function prefixed(prefix: string, counts: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(counts).map(([k, v]) => [prefix + k, v]));
}

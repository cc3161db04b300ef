import type { ConditionsReport } from '../../src/accuracy/report';
import type { PadReport } from '../../src/cli/pad-eval';
import type { Latency, Repeated } from './stats';

/** The shape of bench/results/<date>-<commit>.json. Bump `schema` when a field changes meaning. */

export type Mode = 'quick' | 'full' | 'smoke';
export type Transport = 'ws' | 'uws';
/** Frames per second per session, or `closed`: the next frame as soon as the previous one left (see README). */
export type Fps = number | 'closed';

export interface WsPoint {
  transport: Transport;
  connections: number;
  fps: Fps;
}

export interface Suite {
  mode: Mode;
  /** Every measurement is repeated this many times (interleaved) to estimate its noise. */
  reps: number;
  engineSeconds: number;
  peerSeconds: number;
  httpSeconds: number;
  httpConnections: { health: number; sessions: number; enroll: number; code: number };
  ws: { points: WsPoint[]; warmupSeconds: number; measureSeconds: number; probeIntervalMs: number };
  memory: { levels: number[]; transports: Transport[] };
  /** The presentation-attack benchmark (`faceid pad-eval` on the fixture photos): sessions per class and challenge set. */
  pad: { attempts: number; configs: string[]; fps: number };
  /** Absent in runs made before the overload phase existed. */
  overload?: OverloadSuite;
  /** One gateway against three behind HAProxy on PostgreSQL; absent in runs before it existed, and in smoke. */
  fleet?: FleetSuite;
  /** The condition table (`faceid eval --conditions`) on a face manifest; absent in runs before it existed, and in smoke. */
  accuracy?: AccuracySuite;
}

/** The accuracy phase: these conditions (src/accuracy/conditions.ts), seeded, at the service's MATCH_THRESHOLD. */
export interface AccuracySuite {
  conditions: string[];
  seed: number;
}

/** The fleet phase: the overload phase's desks (admission on, its default capacity) at each of `desks`. */
export interface FleetSuite {
  desks: number[];
  reps: number;
  fps: number;
  warmupSeconds: number;
  measureSeconds: number;
  reactionMs: number;
  blinkMs: number;
}

/** One load of the fleet phase: one gateway directly, or three behind HAProxy (their figures added up). */
export interface FleetPoint {
  target: 'one' | 'fleet';
  desks: number;
  goodputPerS: Repeated;
  verdictsPerS: Repeated;
  timeToVerdict: Latency;
  refused: number;
  busy: number;
  unfinished: number;
  /** Face verdicts each gateway reached over the repetitions, warm-up included (its /metrics): how the load was spread. */
  verdictsPerGateway: number[];
  gatewayCpuPercent: Repeated;
  otherCpuPercent: Repeated;
}

export interface FleetResult {
  cores: number;
  /** FACE_SESSIONS_MAX of each gateway (the default). */
  capacity: number;
  points: FleetPoint[];
  /** Why the phase did not run (no PostgreSQL, no haproxy). */
  skipped?: string;
}

/**
 * The overload phase: desks (connections) at `loads` x the admission capacity C, against a gateway with admission
 * control (FACE_SESSIONS_MAX = C: its default unless `capacity` is set) and one without (FACE_SESSIONS_MAX=0).
 */
export interface OverloadSuite {
  /** Multiples of C; the first is the comfortable load, the last the overload the goodput ratio is taken at. */
  loads: number[];
  fps: number;
  /** FACE_SESSIONS_MAX of the gateway with admission control; undefined = the service's default. */
  capacity?: number;
  warmupSeconds: number;
  measureSeconds: number;
  /** The patient's blink: how long after the prompt, for how long (ms). */
  reactionMs: number;
  blinkMs: number;
}

export interface Machine {
  cpu: string;
  cores: number;
  memoryGiB: number;
  node: string;
  os: string;
  opencv: string;
}

export interface LoadAverages {
  /** os.loadavg() (1, 5, 15 min) when the run started and ended. */
  start: number[];
  end: number[];
  /** The 1-minute load average at each phase boundary. */
  phases: Array<{ phase: string; load1: number }>;
}

export interface EngineResult {
  frame: { width: number; height: number; bytes: number; frames: number };
  workers: number;
  threadsPerJob: number;
  /** JS wall time of one call, 1 in flight, ms. */
  trackP50: Repeated;
  trackP99: Repeated;
  fullP50: Repeated;
  fullP99: Repeated;
  /** Native per-stage medians over every sequential full call of the run, ms. */
  stages: Record<string, number>;
  /** Closed loop with `workers` calls in flight. */
  trackPerS: Repeated;
  fullPerS: Repeated;
  /** CPU that other processes on the machine used during these measurements, % of one core. */
  otherCpuPercent: Repeated;
}

export interface PeerResult {
  name: string;
  description: string;
  /** Set when the peer could not run; the other fields are then absent. */
  skipped?: string;
  /** One chain (decode, detect, landmarks, align, embedding, liveness), 1 in flight, ms. */
  p50?: Repeated;
  p99?: Repeated;
  /** Chains per second with one chain in flight per core. */
  perS?: Repeated;
  stages?: Record<string, number>;
  /** The peer's answer on the first frame against the engine's full call on the same frame. */
  agreement?: { embeddingCosine: number; boxIoU: number; livenessEngine: number; livenessPeer: number };
  config?: Record<string, unknown>;
}

export interface HttpResult {
  name: string;
  method: string;
  path: string;
  connections: number;
  skipped?: string;
  rps?: Repeated;
  p50?: Repeated;
  p90?: Repeated;
  p99?: Repeated;
  /** Summed over the repetitions. */
  statuses?: Record<string, number>;
  errors?: number;
  /** The gateway's CPU during the load, and other processes' (autocannon runs in the benchmark's process). */
  serverCpuPercent?: Repeated;
  otherCpuPercent?: Repeated;
}

export interface ServerFigures {
  eldP50: Repeated;
  eldP99: Repeated;
  eldMax: Repeated;
  /** Process CPU, 100 = one core busy. */
  cpuPercent: Repeated;
  rssPeakMiB: Repeated;
  /** CPU used meanwhile by every other process (not the gateway, the generator or the benchmark). */
  otherCpuPercent: Repeated;
}

export interface WsResult {
  point: WsPoint;
  offeredPerS: number | null;
  sentPerS: Repeated;
  receivedPerS: Repeated;
  analysedPerS: Repeated;
  droppedPerS: Repeated;
  /** Dropped / received (latest frame wins). */
  dropShare: Repeated;
  /** Share of analyses that were full calls (the rest: track calls). */
  fullShare: Repeated;
  /** Server-side wall time of one engine call, queueing included, from /metrics buckets (coarse), ms. */
  analysisP50: Repeated;
  analysisP99: Repeated;
  /** Time from a session's first frame to its verdict, merged over the repetitions. */
  timeToVerdict: Latency;
  timeToVerdictP50: Repeated;
  verdicts: Record<string, number>;
  /** Sessions still running when the measurement window closed (their time to verdict is not counted). */
  unfinished: number;
  /** POST /sessions until `ready` on the socket, ms. */
  sessionSetup: Latency;
  /** Transport round trip of a header-only probe message (answered frame_empty, no engine), ms. */
  probe: Latency;
  probeP99: Repeated;
  /** How late the generator sent frames against its schedule, ms (its own health). */
  generatorLag: Latency;
  generatorCpuPercent: Repeated;
  server: ServerFigures;
  /**
   * analysed/s through the gateway / engine-only analyses/s for the same track/full mix, each repetition against
   * the engine-alone repetition of the same round; null when not saturated.
   */
  engineRatio: Repeated | null;
  saturated: boolean;
  busy: number;
  errors: Record<string, number>;
  sessionRefusals: Record<string, number>;
  /** Face verdicts the gateway reached inside its windows, all repetitions (absent in older runs). */
  gatewayVerdicts?: number;
  /**
   * The gateway process's CPU time (every thread: transport, sessions, storage and the engine's workers) over its
   * window, divided by the face verdicts it reached in it, ms. NaN without a verdict.
   */
  cpuMsPerVerdict?: Repeated;
  /** Engine calls per verdict over the same window (/metrics): full analyses (embedding) and track calls. */
  fullPerVerdict?: Repeated;
  trackPerVerdict?: Repeated;
  /** Frame sent -> its ack (hello `ack: true`), every frame of the windows, ms; absent where acks were not asked. */
  frameAck?: Latency;
  /** The same, for the frames acked `analysed`. */
  frameAckAnalysed?: Latency;
  frameAckP99?: Repeated;
  /** The windows' frames by ack outcome (analysed, dropped, refused), all repetitions. */
  ackOutcomes?: Record<string, number>;
  /** Frames still waiting for their ack when a window closed, and frames whose connection closed first. */
  ackPending?: number;
  ackLost?: number;
}

/** One load of the overload phase, on one of its two gateways. */
export interface OverloadPoint {
  admission: 'on' | 'off';
  /** Desks, each running one session after another (a refused one waits Retry-After and asks again). */
  desks: number;
  /** desks / C. */
  load: number;
  /** Every verdict in the window, per second. */
  verdictsPerS: Repeated;
  /** Goodput: `match` verdicts per second, the right answer for these enrolled patients. */
  goodputPerS: Repeated;
  verdicts: Record<string, number>;
  /** First frame to verdict, ms (p95 included). */
  timeToVerdict: Latency;
  /** The patient's first POST /sessions (waits for admission included) to the verdict, ms. */
  visitToVerdict: Latency;
  /** First POST /sessions to the one that admitted, ms (0 when admitted at once). */
  admissionWait: Latency;
  /** POST /sessions answered 503 (or 429) with a time to come back, all repetitions. */
  refused: number;
  /** The refusals by code. */
  refusals: Record<string, number>;
  /** Engine `busy` messages on the WebSockets, all repetitions. */
  busy: number;
  /** Sessions streaming without a verdict when the windows closed, all repetitions. */
  unfinished: number;
  /** Desks waiting to be admitted when the windows closed, all repetitions. */
  waiting: number;
  errors: Record<string, number>;
  analysedPerS: Repeated;
  gatewayCpuPercent: Repeated;
  otherCpuPercent: Repeated;
}

export interface OverloadResult {
  /** C: FACE_SESSIONS_MAX of the gateway with admission control. */
  capacity: number;
  engineWorkers: number;
  fps: number;
  points: OverloadPoint[];
  /**
   * Goodput at the highest load / goodput at the first (comfortable) load, each repetition within one round, for each
   * gateway.
   */
  goodputRatio: { on: Repeated; off: Repeated };
}

export interface MemoryLevel {
  sessions: number;
  open: number;
  rssMiB: number;
  heapUsedMiB: number;
  externalMiB: number;
}

export interface MemoryResult {
  transport: Transport;
  baselineRssMiB: number;
  levels: MemoryLevel[];
  /** (RSS at the largest level - RSS at the first) / sessions added, KiB. */
  perSessionKiB: number;
  failures: number;
}

/** The `pad` phase: `faceid pad-eval`'s report (the shape of its --json), or why it did not run. */
export interface PadResult {
  /** The photos the scene models were made from: `the labelled face set` when it is beside the project, else
   *  `the fixture photos`. Runs on different sets do not compare. */
  photoSet: string;
  skipped?: string;
  report?: PadReport;
}

/** The `accuracy` phase: `faceid eval --conditions`' report (the shape of its --json), or why it did not run. */
export interface AccuracyResult {
  /** Where the manifest was named (its path is not recorded): `FACEID_FACES_MANIFEST` or `--faces`. */
  source?: 'FACEID_FACES_MANIFEST' | '--faces';
  skipped?: string;
  report?: ConditionsReport;
  seconds?: number;
}

export interface Measurement {
  id: string;
  label: string;
  unit: string;
  better: 'higher' | 'lower';
  value: Repeated;
}

export interface BenchRun {
  schema: 1;
  mode: Mode;
  startedAt: string;
  finishedAt: string;
  durationSeconds: number;
  commit: string;
  dirty: boolean;
  machine: Machine;
  load: LoadAverages;
  suite: Suite;
  engine: EngineResult | null;
  peers: PeerResult[];
  http: HttpResult[];
  ws: WsResult[];
  memory: MemoryResult[];
  /** Absent in runs made before the phase existed. */
  pad?: PadResult;
  /** Absent in runs made before the phase existed, or when it did not run. */
  overload?: OverloadResult;
  /** Absent in runs made before the phase existed, or when it was not asked for. */
  fleet?: FleetResult;
  /** Absent in runs made before the phase existed. */
  accuracy?: AccuracyResult;
  notes: string[];
  /** Every repeated figure, flat, for bench:compare. */
  measurements: Measurement[];
}

/**
 * The benchmark suite: `npm run bench` (quick, about six to eight minutes), `npm run bench:full` (thorough),
 * `--smoke` (CI: every tool for a second). Progress goes to stderr, the markdown tables to stdout, and the run to
 * bench/results/<date>-<commit>.json and .md (or --out DIR). See bench/README.md for what each figure means.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { cosineSimilarity, FaceEngine } from '../src/engine';
import { loadNative } from '../src/engine/native';
import { benchIins, enroll } from './lib/api';
import {
  aggregateEngine,
  referenceAnswer,
  runEngineRep,
  warmUp,
  type EngineRep,
  type ReferenceAnswer,
} from './lib/engine-phase';
import { makeFrames, missingFixture, type BenchFrames } from './lib/frames';
import { aggregateHttp, httpTargets, runHttpRep, type HttpRep, type HttpTarget } from './lib/http-phase';
import { collectMeasurements } from './lib/measurements';
import { runMemory } from './lib/memory-phase';
import {
  aggregateOverload,
  overloadPoints,
  overloadServerEnv,
  prepareOverload,
  runOverloadRep,
  type OverloadPointSpec,
  type OverloadRig,
} from './lib/overload-phase';
import { runAccuracy } from './lib/accuracy-phase';
import { runFleet } from './lib/fleet-phase';
import { runPad } from './lib/pad-phase';
import { renderMarkdown } from './lib/report';
import { commitInfo, RESULTS_DIR, writeRun } from './lib/results';
import { BenchServer } from './lib/server-handle';
import { latencyOf, median, repeated } from './lib/stats';
import { suiteFor } from './lib/suite';
import type {
  AccuracyResult,
  BenchRun,
  FleetResult,
  HttpResult,
  LoadAverages,
  Mode,
  OverloadResult,
  PadResult,
  PeerResult,
  Suite,
  Transport,
  WsPoint,
  WsResult,
} from './lib/types';
import { aggregateWs, LoadGenProcess, type WsRep } from './lib/ws-phase';
import { intersectionOverUnion } from './peers/ort-chain';
import { OrtPeer, type OrtRep } from './peers/ort-peer';
import { runPythonPeer, type PythonPeerAnswer } from './peers/python-peer';

/** Optional phases (--only); the engine alone is always measured: the WebSocket ratio needs it. */
const PHASES = ['peers', 'memory', 'http', 'ws', 'overload', 'fleet', 'pad', 'accuracy'] as const;
type Phase = (typeof PHASES)[number];
/** Enrollments in flight per gateway at the start (each is a full engine call on the reference photo). */
const ENROLL_CONCURRENCY = 2;

const USAGE = `Usage: npm run bench [-- OPTIONS]     (quick suite)
       npm run bench:full [-- OPTIONS]
       ts-node --transpile-only bench/run.ts [--quick | --full | --smoke] [--out DIR] [--only LIST] [--faces CSV]

  --quick      About six to eight minutes (default): one or two to enroll a patient per idle session (1,000), two
               for the load, two for overload, one or two for pad.
  --full       Every load point: 1, 10, 50, 200 sessions x 5, 10, 15 fps and closed loop, both transports; overload at
               1, 2, 5 and 10 x the admission capacity; pad with 50 sessions per class.
  --smoke      Every benchmark for about a second (CI keeps the tools working; the figures mean nothing).
  --out DIR    Where to write <date>-<commit>.json and .md. Default: bench/results.
  --only LIST  Comma list of phases: ${PHASES.join(', ')}. Default: all. The engine alone always runs.
  --faces CSV  A labelled face set (file,identity CSV) for the accuracy phase, the condition table of
               \`faceid eval --conditions\`; default FACEID_FACES_MANIFEST. Without one the phase is skipped
               (also in smoke). About a minute on 84 photos.
`;

const t0 = performance.now();
function progress(line: string): void {
  const s = Math.round((performance.now() - t0) / 1000);
  process.stderr.write(`[${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}] ${line}\n`);
}

function pick(values: { quick?: boolean; full?: boolean; smoke?: boolean }): Mode {
  const chosen = (['quick', 'full', 'smoke'] as const).filter((m) => values[m]);
  if (chosen.length > 1) throw new UsageError('Choose one of --quick, --full, --smoke.');
  return chosen[0] ?? 'quick';
}

class UsageError extends Error {}

/** Everything that stays up for the whole run. */
interface Rig {
  suite: Suite;
  phases: Set<Phase>;
  frames: BenchFrames;
  notes: string[];
  load: LoadAverages;
  engine: FaceEngine;
  modelDir: string;
  ort: OrtPeer | null;
  ortSkipped?: string;
  servers: Map<string, BenchServer>;
  /**
   * Made-up patients; each gateway has the first `enrolled.get(key)` of them enrolled: one per session it holds at
   * once (a new face token supersedes the patient's earlier unused one, so concurrent sessions must not share one).
   */
  patients: string[];
  enrolled: Map<string, number>;
  gen: LoadGenProcess | null;
  overload: OverloadRig | null;
}

function markLoad(rig: Pick<Rig, 'load'>, phase: string): void {
  rig.load.phases.push({ phase, load1: Math.round(os.loadavg()[0] * 100) / 100 });
}

/** Which gateway processes the chosen phases need: keys idle-<transport> (memory, HTTP) and load-<transport>. */
function wantedServers(
  suite: Suite,
  phases: Set<Phase>,
): Array<{ key: string; transport: Transport; env?: Record<string, string> }> {
  const wanted: Array<{ key: string; transport: Transport; env?: Record<string, string> }> = [];
  // Idle sessions must outlive the memory phase; the load gateways keep the default session timeout. No admission
  // control: the memory phase holds up to 1,000 sessions open, and the HTTP phase creates sessions as fast as it can.
  const longTimeout = { SESSION_TIMEOUT_MS: '600000', FACE_SESSIONS_MAX: '0' };
  if (phases.has('http') || phases.has('memory')) wanted.push({ key: 'idle-ws', transport: 'ws', env: longTimeout });
  if (phases.has('memory') && suite.memory.transports.includes('uws'))
    wanted.push({ key: 'idle-uws', transport: 'uws', env: longTimeout });
  if (phases.has('ws')) {
    // The blink only: the load measures the frame path, and its fixed frames can answer the blink but not the light
    // or the turn (a refused or stalled session is not load). The challenges are measured by the pad phase.
    // No admission control (FACE_SESSIONS_MAX=0): this phase measures the frame path at every load; the overload
    // phase measures admission control.
    const env = { BENCH_BLINK_ONLY: '1', FACE_SESSIONS_MAX: '0' };
    for (const t of new Set(suite.ws.points.map((p) => p.transport)))
      wanted.push({ key: `load-${t}`, transport: t, env });
  }
  if (phases.has('overload') && suite.overload) {
    const env = overloadServerEnv(suite.overload);
    wanted.push(
      { key: 'overload-on', transport: 'ws', env: env.on },
      { key: 'overload-off', transport: 'ws', env: env.off },
    );
  }
  return wanted;
}

/**
 * Patients each gateway needs enrolled: the memory gateways one per idle session of the largest level (the HTTP phase
 * uses the first), the load gateways one per session of their largest load point. The overload gateways enroll
 * their own (prepareOverload).
 */
function patientsNeeded(suite: Suite, phases: Set<Phase>): Map<string, number> {
  const out = new Map<string, number>();
  const memory = phases.has('memory') ? Math.max(...suite.memory.levels) : 0;
  if (phases.has('http') || phases.has('memory')) out.set('idle-ws', Math.max(1, memory));
  if (phases.has('memory') && suite.memory.transports.includes('uws')) out.set('idle-uws', memory);
  if (phases.has('ws')) {
    for (const p of suite.ws.points)
      out.set(`load-${p.transport}`, Math.max(out.get(`load-${p.transport}`) ?? 0, p.connections));
  }
  return out;
}

/** Enrolls `iins` with the registry's key, a few at a time. */
async function enrollAll(server: BenchServer, iins: string[], reference: Buffer): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < iins.length) await enroll(server.base, server.enrollKey, iins[next++], reference);
  };
  await Promise.all(Array.from({ length: ENROLL_CONCURRENCY }, worker));
}

/** Boots the gateways (in parallel with the rest of the set-up); a gateway that cannot start is noted and left out. */
async function startServers(suite: Suite, phases: Set<Phase>, notes: string[]): Promise<Map<string, BenchServer>> {
  const wanted = wantedServers(suite, phases);
  const servers = new Map<string, BenchServer>();
  if (wanted.length === 0) return servers;
  progress(`starting ${wanted.length} gateway processes (${wanted.map((w) => w.key).join(', ')}) ...`);
  await Promise.all(
    wanted.map(async (w) => {
      try {
        servers.set(w.key, await BenchServer.start({ transport: w.transport, env: w.env }));
      } catch (err) {
        notes.push(
          `The ${w.key} gateway could not start, its measurements are missing: ${(err as Error).message.split('\n')[0]}`,
        );
        progress(`  ${w.key}: could not start: ${(err as Error).message}`);
      }
    }),
  );
  return servers;
}

/** The onnxruntime peer's answer on the first frame against the engine's. */
async function peerAgreement(rig: Rig): Promise<PeerResult['agreement']> {
  const reference: ReferenceAnswer | null = await referenceAnswer(rig.engine, rig.frames.open[0]);
  const answer = rig.ort ? await rig.ort.check() : null;
  if (!reference || !answer) return undefined;
  return {
    embeddingCosine: Math.round(cosineSimilarity(answer.embedding, reference.embedding) * 1e5) / 1e5,
    boxIoU: Math.round(intersectionOverUnion(answer.box, reference.box) * 1e4) / 1e4,
    livenessEngine: Math.round(reference.liveness * 1e4) / 1e4,
    livenessPeer: Math.round(answer.liveness * 1e4) / 1e4,
  };
}

function ortResult(rig: Rig, reps: OrtRep[], agreement: PeerResult['agreement']): PeerResult {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded only when the peer runs
  const version = (require('onnxruntime-node') as { env: { versions: { node?: string } } }).env.versions.node ?? '?';
  const name = `onnxruntime-node ${version}`;
  if (!rig.ort || reps.length === 0)
    return { name, description: 'onnxruntime-node peer', skipped: rig.ortSkipped ?? 'did not run' };
  const stages: Record<string, number> = {};
  for (const k of Object.keys(reps[0].stages))
    stages[k] = Math.round(median(reps.flatMap((r) => r.stages[k])) * 1000) / 1000;
  return {
    name,
    description:
      'the same ONNX models and pre/post-processing in TypeScript (bench/peers/ort-chain.ts), JPEG decoded by sharp; ' +
      `latency: one worker thread, ${rig.ort.config.latencyThreads} intra-op threads; throughput: ` +
      `${rig.ort.config.throughputWorkers} worker threads of 1 thread each. Stage medians (ms): ` +
      `${Object.entries(stages)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')}.`,
    p50: repeated(reps.map((r) => latencyOf(r.latencyMs).p50)),
    p99: repeated(reps.map((r) => latencyOf(r.latencyMs).p99)),
    perS: repeated(
      reps.map((r) => r.perS),
      1,
    ),
    stages,
    agreement,
    config: rig.ort.config,
  };
}

function pythonResult(reps: PythonPeerAnswer[]): PeerResult {
  const ok = reps.filter((p): p is Extract<PythonPeerAnswer, { ok: true }> => p.ok);
  if (ok.length === 0) {
    const reason = reps.find((p): p is Extract<PythonPeerAnswer, { ok: false }> => !p.ok)?.reason ?? 'did not run';
    return { name: 'OpenCV Python bindings', description: 'bench/peers/opencv_python.py', skipped: reason };
  }
  const stages: Record<string, number> = {};
  for (const k of ['detect', 'landmarks', 'embedding', 'liveness', 'total']) {
    const values = ok
      .map((p) => (p.run[k] as { median_ms?: number } | undefined)?.median_ms)
      .filter((v): v is number => v !== undefined);
    if (values.length) stages[k] = median(values);
  }
  return {
    name: `OpenCV ${ok[0].run.opencv} Python bindings`,
    description:
      'bench/peers/opencv_python.py (Debian python3-opencv), one thread, on the first frame only (piped on stdin); ' +
      `stage medians (ms): ${Object.entries(stages)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')}.`,
    p50: repeated(ok.map((p) => p.run.total.median_ms)),
    p99: repeated(ok.map((p) => p.run.total.p99_ms)),
    stages,
  };
}

interface Rounds {
  engine: EngineRep[];
  ort: OrtRep[];
  python: PythonPeerAnswer[];
  http: Map<HttpTarget, HttpRep[]>;
  ws: Map<WsPoint, WsRep[]>;
  overload: Map<OverloadPointSpec, WsRep[]>;
}

/**
 * The measurements proper, in rounds: each round runs one repetition of everything (engine alone, peers, HTTP,
 * every WebSocket point), so that a change in the machine's load hits every figure alike, shows up as their
 * spread, and each WebSocket repetition has an engine-alone repetition from the same round to be divided by.
 */
async function runRounds(
  rig: Rig,
  targets: HttpTarget[],
  points: WsPoint[],
  overload: OverloadPointSpec[],
): Promise<Rounds> {
  const { suite, phases, frames } = rig;
  const r: Rounds = {
    engine: [],
    ort: [],
    python: [],
    http: new Map(targets.map((t) => [t, []])),
    ws: new Map(points.map((p) => [p, []])),
    overload: new Map(overload.map((p) => [p, []])),
  };
  const idle = rig.servers.get('idle-ws');
  for (let rep = 1; rep <= suite.reps; rep++) {
    markLoad(rig, `round ${rep}`);
    progress(`round ${rep}/${suite.reps}: engine alone (${suite.engineSeconds} s per measure) ...`);
    const er = await runEngineRep(rig.engine, frames.open, suite.engineSeconds);
    r.engine.push(er);
    progress(
      `  engine: track p50 ${latencyOf(er.trackMs).p50} ms, full p50 ${latencyOf(er.fullMs).p50} ms, ` +
        `${er.trackPerS.toFixed(1)} track/s, ${er.fullPerS.toFixed(1)} full/s (other processes ${er.otherCpuPercent.toFixed(0)}% CPU)`,
    );
    if (rig.ort) {
      const o = await rig.ort.rep(suite.peerSeconds);
      r.ort.push(o);
      progress(`  onnxruntime peer: chain p50 ${latencyOf(o.latencyMs).p50} ms, ${o.perS.toFixed(1)} chains/s`);
    }
    if (phases.has('peers')) {
      const py = await runPythonPeer(frames.open[0], suite.peerSeconds, rig.modelDir);
      r.python.push(py);
      progress(
        py.ok
          ? `  OpenCV-Python peer: chain p50 ${py.run.total.median_ms} ms`
          : `  OpenCV-Python peer skipped: ${py.reason}`,
      );
    }
    for (const t of targets) {
      if (t.skipped || !idle) continue;
      const h = await runHttpRep(idle, t, suite.httpSeconds);
      r.http.get(t)!.push(h);
      progress(`  http ${t.method} ${t.route}: ${h.rps.toFixed(0)} req/s, p50 ${h.p50} ms, p99 ${h.p99} ms`);
    }
    for (const p of points) {
      // A patient of its own per session slot; every frame acknowledged (hello `ack: true`) and timed.
      const w = await rig.gen!.rep(
        rig.servers.get(`load-${p.transport}`)!,
        frames,
        rig.patients.slice(0, p.connections),
        p,
        {
          ...suite.ws,
          acks: true,
        },
      );
      r.ws.get(p)!.push(w);
      progress(
        `  ws ${p.transport} ${p.connections} sessions @ ${p.fps} fps: sent ${(w.window.framesSent / w.window.seconds).toFixed(0)}/s, ` +
          `analysed ${(w.analysed / w.seconds).toFixed(1)}/s, dropped ${w.received ? Math.round((100 * w.dropped) / w.received) : 0}%, ` +
          `verdicts ${JSON.stringify(w.window.verdicts)}, gateway CPU ${w.server.cpuPercent.toFixed(0)}%, ` +
          `other processes ${w.otherCpuPercent.toFixed(0)}%`,
      );
    }
    for (const p of overload) {
      const w = await runOverloadRep(rig.gen!, rig.overload!, frames, p);
      r.overload.get(p)!.push(w);
      const verdicts = Object.values(w.window.verdicts).reduce((a, b) => a + b, 0);
      progress(
        `  overload, admission ${p.admission}, ${p.desks} desks (${p.load} x ${rig.overload!.capacity}): ` +
          `${(verdicts / w.window.seconds).toFixed(2)} verdicts/s (match ${((w.window.verdicts.match ?? 0) / w.window.seconds).toFixed(2)}/s), ` +
          `503 ${w.window.admissionRetries}, busy ${w.window.busy}, unfinished ${w.window.unfinished}, ` +
          `gateway CPU ${w.server.cpuPercent.toFixed(0)}%, other processes ${w.otherCpuPercent.toFixed(0)}%`,
      );
    }
  }
  return r;
}

async function main(): Promise<number> {
  let values;
  try {
    values = parseArgs({
      options: {
        quick: { type: 'boolean' },
        full: { type: 'boolean' },
        smoke: { type: 'boolean' },
        out: { type: 'string' },
        only: { type: 'string' },
        faces: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      allowPositionals: false,
    }).values;
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const mode = pick(values);
  const phases = new Set<Phase>(values.only ? (values.only.split(',').map((s) => s.trim()) as Phase[]) : PHASES);
  for (const p of phases) if (!PHASES.includes(p)) throw new UsageError(`Unknown phase "${p}" in --only.`);
  const outDir = path.resolve(values.out ?? RESULTS_DIR);
  const missing = missingFixture();
  if (missing) {
    process.stderr.write(`${missing}\n`);
    return 1;
  }

  const suite = suiteFor(mode);
  const startedAt = new Date();
  const root = path.resolve(__dirname, '..');
  const { commit, dirty } = commitInfo(root);
  const load: LoadAverages = { start: os.loadavg().map((x) => Math.round(x * 100) / 100), end: [], phases: [] };
  const notes: string[] = [];
  progress(
    `faceid-gateway benchmarks: ${mode} suite, commit ${commit}${dirty ? ' (dirty)' : ''}, load average ${load.start.join(' ')}`,
  );

  // Set-up, nothing measured: the gateways boot while the frames are made and the peer loads.
  const serversStarting = startServers(suite, phases, notes);
  const cores = os.availableParallelism();
  const engine = await FaceEngine.open({ workers: cores, threadsPerJob: Math.min(2, cores) });
  const enrolled = patientsNeeded(suite, phases);
  const rig: Rig = {
    suite,
    phases,
    frames: { source: '', open: [], closed: [], reference: Buffer.alloc(0) },
    notes,
    load,
    engine,
    modelDir: path.dirname(engine.models.detect),
    ort: null,
    servers: new Map(),
    patients: benchIins(Math.max(1, ...enrolled.values())),
    enrolled,
    gen: null,
    overload: null,
  };
  let memory: BenchRun['memory'] = [];
  let pad: PadResult | undefined;
  let fleet: FleetResult | undefined;
  let accuracy: AccuracyResult | undefined;
  let rounds: Rounds;
  let targets: HttpTarget[] = [];
  let points: WsPoint[] = [];
  let overloadSpecs: OverloadPointSpec[] = [];
  let agreement: PeerResult['agreement'];
  try {
    progress('making frames from the fixture photo ...');
    rig.frames = await makeFrames(engine);
    if (phases.has('peers')) {
      progress('loading the onnxruntime-node peer (worker threads) ...');
      try {
        rig.ort = await OrtPeer.start(rig.modelDir, rig.frames.open, cores);
      } catch (err) {
        rig.ortSkipped = (err as Error).message;
      }
    }
    rig.servers = await serversStarting;
    const enrolling = [...rig.servers.entries()].filter(([key]) => enrolled.has(key));
    progress(
      `enrolling patients, one per concurrent session: ${enrolling.map(([key]) => `${enrolled.get(key)} on ${key}`).join(', ')} ...`,
    );
    await Promise.all(
      enrolling.map(([key, server]) =>
        enrollAll(server, rig.patients.slice(0, enrolled.get(key)), rig.frames.reference),
      ),
    );
    const overloadOn = rig.servers.get('overload-on');
    const overloadOff = rig.servers.get('overload-off');
    if (suite.overload && overloadOn && overloadOff) {
      rig.overload = await prepareOverload(suite.overload, { on: overloadOn, off: overloadOff }, rig.frames);
      overloadSpecs = overloadPoints(rig.overload);
      progress(
        `overload: admission capacity ${rig.overload.capacity} (FACE_SESSIONS_MAX, ${rig.overload.engineWorkers} engine workers); ` +
          `${rig.overload.patients.length} patients enrolled on both overload gateways`,
      );
    }
    if (rig.servers.has('load-ws') || rig.servers.has('load-uws') || rig.overload) rig.gen = LoadGenProcess.start();
    points = phases.has('ws') ? suite.ws.points.filter((p) => rig.servers.has(`load-${p.transport}`)) : [];
    progress(`warming up the engine's ${engine.options.workers} workers ...`);
    await warmUp(engine, rig.frames.open);
    agreement = await peerAgreement(rig);

    // Memory first, on a gateway that has seen no load yet.
    if (phases.has('memory')) {
      for (const t of suite.memory.transports) {
        const server = rig.servers.get(`idle-${t}`);
        if (!server) continue;
        markLoad(rig, `memory ${t}`);
        memory.push(
          await runMemory(server, rig.patients.slice(0, enrolled.get(`idle-${t}`)), suite.memory.levels, progress),
        );
      }
      await rig.servers.get('idle-uws')?.stop();
      rig.servers.delete('idle-uws');
    }
    const idle = rig.servers.get('idle-ws');
    if (phases.has('http') && idle) {
      targets = await httpTargets({
        server: idle,
        iin: rig.patients[0],
        enrollIin: benchIins(1, 5000)[0],
        reference: rig.frames.reference,
        connections: suite.httpConnections,
      });
      for (const t of targets) if (t.skipped) notes.push(`HTTP ${t.name}: skipped, ${t.skipped}.`);
    }

    rounds = await runRounds(rig, targets, points, overloadSpecs);

    if (phases.has('fleet') && suite.fleet) {
      // After the rounds, with their gateways stopped: it starts three of its own, on PostgreSQL, and HAProxy.
      await Promise.all([...rig.servers.values()].map((s) => s.stop()));
      rig.servers.clear();
      markLoad(rig, 'fleet');
      progress(
        `fleet: ${suite.fleet.desks.join(' and ')} desks, one gateway vs three behind HAProxy (on ${cores} cores) ...`,
      );
      rig.gen ??= LoadGenProcess.start();
      fleet = await runFleet(suite.fleet, rig.frames, rig.gen, progress);
      if (fleet.skipped) {
        progress(`fleet: skipped, ${fleet.skipped}`);
        notes.push(`The fleet phase did not run: ${fleet.skipped}.`);
      }
    }
  } finally {
    await rig.gen?.close();
    await rig.ort?.close();
    await Promise.all([...rig.servers.values()].map((s) => s.stop()));
    await engine.close();
  }
  if (phases.has('pad')) {
    // Last, alone: it keeps both cores busy, and nothing else here is timed against it.
    markLoad(rig, 'pad');
    progress(
      `presentation attacks: faceid pad-eval, ${suite.pad.attempts} sessions per class, ${suite.pad.configs.join(' / ')} ...`,
    );
    pad = await runPad(suite.pad, progress);
    if (pad.skipped) notes.push(`The pad phase did not run: ${pad.skipped}.`);
  }
  if (phases.has('accuracy')) {
    // Untimed, alone, like pad: the condition table of `faceid eval --conditions` on the named face set.
    markLoad(rig, 'accuracy');
    const named = values.faces ?? process.env.FACEID_FACES_MANIFEST?.trim();
    const faces = named
      ? { path: path.resolve(named), source: values.faces ? ('--faces' as const) : ('FACEID_FACES_MANIFEST' as const) }
      : null;
    if (suite.accuracy && faces)
      progress(`accuracy: faceid eval --conditions ${suite.accuracy.conditions.join(',')} (${faces.source}) ...`);
    accuracy = await runAccuracy(suite.accuracy, faces, progress);
    if (accuracy.skipped) {
      progress(`accuracy: skipped, ${accuracy.skipped}`);
      notes.push(`The accuracy phase did not run: ${accuracy.skipped}.`);
    }
  }
  load.end = os.loadavg().map((x) => Math.round(x * 100) / 100);

  const engineResult = aggregateEngine(engine, rig.frames.open, engine.options.threadsPerJob, rounds.engine);
  const peers: PeerResult[] = phases.has('peers')
    ? [ortResult(rig, rounds.ort, agreement), pythonResult(rounds.python)]
    : [];
  const http: HttpResult[] = targets.map((t) => aggregateHttp(t, rounds.http.get(t) ?? []));
  const ws: WsResult[] = points.map((p) => aggregateWs(p, rounds.ws.get(p)!, rounds.engine));
  const overload: OverloadResult | undefined = rig.overload
    ? aggregateOverload(rig.overload, rounds.overload)
    : undefined;
  if (!phases.has('memory')) memory = [];

  notes.push(
    `Everything ran on this one machine: the gateway, the load generator (its own process), autocannon and the peers ` +
      `share ${cores} cores, and other jobs may have been running: see the load averages, and the "other processes" ` +
      "CPU columns (the machine's busy time from /proc/stat minus the processes of the benchmark).",
    'The gateways ran with FACEID_BOOTSTRAP=false, RATE_LIMIT_PER_MINUTE=0, FACE_ATTEMPTS_MAX=100 per 1 minute ' +
      '(overloaded sessions fail, and would otherwise lock their patients out), SQLite in a fresh temporary folder, ' +
      'LOG_LEVEL=warn, and otherwise the defaults. Each gateway has a patient enrolled (with the same face) for every ' +
      `session it holds at once, so that no two running sessions share a patient: ` +
      `${[...enrolled.entries()].map(([key, n]) => `${n} on ${key}`).join(', ')}${rig.overload ? `, ${rig.overload.patients.length} on each overload gateway` : ''}.`,
  );
  if (overload) {
    notes.push(
      `The overload gateways (\`ws\`, blink only, each its own process) differ in FACE_SESSIONS_MAX alone: ` +
        `${overload.capacity} (admission on${suite.overload?.capacity === undefined ? ', the default' : ''}) and 0 (off). ` +
        'Their desks honour Retry-After (retryAfterMs) as a desk would, and have a patient each.',
    );
  }
  if (ws.length) {
    notes.push(
      'The WebSocket load gateways ran every session with the blink as its only challenge (the default is light,blink; ' +
        "the service refuses a blink alone as a setting, so the benchmark's gateway process sets it itself): the load " +
        'measures the frame path with fixed frames that can blink but cannot answer the light or a turn. The ' +
        "challenges' cost and accuracy are in the pad phase. They run without admission control " +
        '(FACE_SESSIONS_MAX=0), so that every load point streams all its sessions; the overload phase measures it.',
    );
  }
  if (fleet && !fleet.skipped) {
    notes.push(
      `The fleet phase ran three gateways and HAProxy on this machine's ${cores} cores, beside the one gateway it is ` +
        'compared with: the three share the same cores, so it shows what the fleet costs and how HAProxy spreads the ' +
        'desks, not more throughput. All on one fresh PostgreSQL database (dropped afterwards), each desk with a ' +
        'workstation key of its own (HAProxy balances HTTP on the Authorization header), admission control on with the ' +
        'default FACE_SESSIONS_MAX on every gateway, desks honouring Retry-After.',
    );
  }
  const finishedAt = new Date();
  const partial: Omit<BenchRun, 'measurements'> = {
    schema: 1,
    mode,
    startedAt: startedAt.toISOString(),
    finishedAt: finishedAt.toISOString(),
    durationSeconds: Math.round((finishedAt.getTime() - startedAt.getTime()) / 100) / 10,
    commit,
    dirty,
    machine: {
      cpu: os.cpus()[0]?.model?.trim() ?? 'unknown',
      cores,
      memoryGiB: Math.round(os.totalmem() / 2 ** 30),
      node: process.version,
      os: `${os.type()} ${os.release()}`,
      opencv: loadNative().opencvVersion,
    },
    load,
    suite,
    engine: engineResult,
    peers,
    http,
    ws,
    memory,
    ...(pad ? { pad } : {}),
    ...(overload ? { overload } : {}),
    ...(fleet ? { fleet } : {}),
    ...(accuracy ? { accuracy } : {}),
    notes,
  };
  const run: BenchRun = { ...partial, measurements: collectMeasurements(partial) };
  const files = writeRun(run, outDir);
  process.stdout.write(renderMarkdown(run));
  progress(`wrote ${path.relative(process.cwd(), files.json)} and ${path.relative(process.cwd(), files.md)}`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof UsageError) {
      process.stderr.write(`${err.message}\n${USAGE}`);
      process.exit(2);
    }
    process.stderr.write(`benchmark failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);

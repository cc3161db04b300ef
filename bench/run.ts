/**
 * The benchmark suite: `npm run bench` (quick, about two minutes), `npm run bench:full` (thorough),
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
import { aggregateEngine, referenceAnswer, runEngineRep, warmUp, type EngineRep, type ReferenceAnswer } from './lib/engine-phase';
import { makeFrames, missingFixture, type BenchFrames } from './lib/frames';
import { aggregateHttp, httpTargets, runHttpRep, type HttpRep } from './lib/http-phase';
import { collectMeasurements } from './lib/measurements';
import { runMemory } from './lib/memory-phase';
import { renderMarkdown } from './lib/report';
import { commitInfo, RESULTS_DIR, writeRun } from './lib/results';
import { BenchServer } from './lib/server-handle';
import { latencyOf, median, repeated } from './lib/stats';
import { suiteFor } from './lib/suite';
import type { BenchRun, EngineResult, HttpResult, LoadAverages, Mode, PeerResult, Suite, Transport, WsResult } from './lib/types';
import { aggregateWs, LoadGenProcess, type WsRep } from './lib/ws-phase';
import { intersectionOverUnion } from './peers/ort-chain';
import { OrtPeer, type OrtRep } from './peers/ort-peer';
import { runPythonPeer, type PythonPeerAnswer } from './peers/python-peer';

const PHASES = ['engine', 'peers', 'memory', 'http', 'ws'] as const;
type Phase = (typeof PHASES)[number];
/** Patients enrolled on each server; sessions take them in turn. */
const PATIENTS = 8;

const USAGE = `Usage: npm run bench [-- OPTIONS]     (quick suite)
       npm run bench:full [-- OPTIONS]
       ts-node --transpile-only bench/run.ts [--quick | --full | --smoke] [--out DIR] [--only LIST]

  --quick      About two minutes (default).
  --full       Every load point: 1, 10, 50, 200 sessions x 5, 10, 15 fps and closed loop, both transports.
  --smoke      Every benchmark for about a second (CI keeps the tools working; the figures mean nothing).
  --out DIR    Where to write <date>-<commit>.json and .md. Default: bench/results.
  --only LIST  Comma list of phases: ${PHASES.join(', ')}. Default: all.
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

interface Context {
  suite: Suite;
  phases: Set<Phase>;
  frames: BenchFrames;
  notes: string[];
  load: LoadAverages;
}

function markLoad(ctx: Context, phase: string): void {
  ctx.load.phases.push({ phase, load1: Math.round(os.loadavg()[0] * 100) / 100 });
}

/** Engine alone and the peers, interleaved repetition by repetition so that drift hits them alike. */
async function enginesAndPeers(ctx: Context, engine: FaceEngine): Promise<{ engine: EngineResult | null; peers: PeerResult[] }> {
  const { suite, frames } = ctx;
  const modelDir = path.dirname(engine.models.detect);
  const cores = os.availableParallelism();
  const wantPeers = ctx.phases.has('peers');
  const engineReps: EngineRep[] = [];
  const ortReps: OrtRep[] = [];
  const pyReps: PythonPeerAnswer[] = [];

  progress(`engine: warming up ${engine.options.workers} workers ...`);
  await warmUp(engine, frames.open);
  const reference: ReferenceAnswer | null = await referenceAnswer(engine, frames.open[0]);

  let ort: OrtPeer | null = null;
  let ortSkipped: string | undefined;
  if (wantPeers) {
    progress('peers: loading the onnxruntime-node peer (worker threads) ...');
    try {
      ort = await OrtPeer.start(modelDir, frames.open, cores);
    } catch (err) {
      ortSkipped = (err as Error).message;
    }
  }
  let agreement: PeerResult['agreement'];
  if (ort && reference) {
    const answer = await ort.check();
    if (answer) {
      agreement = {
        embeddingCosine: Math.round(cosineSimilarity(answer.embedding, reference.embedding) * 1e5) / 1e5,
        boxIoU: Math.round(intersectionOverUnion(answer.box, reference.box) * 1e4) / 1e4,
        livenessEngine: Math.round(reference.liveness * 1e4) / 1e4,
        livenessPeer: Math.round(answer.liveness * 1e4) / 1e4,
      };
    }
  }

  for (let rep = 1; rep <= suite.reps; rep++) {
    progress(`engine alone, repetition ${rep}/${suite.reps} (${suite.engineSeconds} s per measure) ...`);
    const er = await runEngineRep(engine, frames.open, suite.engineSeconds);
    engineReps.push(er);
    progress(
      `  track p50 ${latencyOf(er.trackMs).p50} ms, full p50 ${latencyOf(er.fullMs).p50} ms, ` +
        `${er.trackPerS.toFixed(1)} track/s, ${er.fullPerS.toFixed(1)} full/s`,
    );
    if (ort) {
      const r = await ort.rep(suite.peerSeconds);
      ortReps.push(r);
      progress(`  onnxruntime peer: chain p50 ${latencyOf(r.latencyMs).p50} ms, ${r.perS.toFixed(1)} chains/s`);
    }
    if (wantPeers) {
      const py = await runPythonPeer(frames.open[0], suite.peerSeconds, modelDir);
      pyReps.push(py);
      progress(py.ok ? `  OpenCV-Python peer: chain p50 ${py.run.total.median_ms} ms` : `  OpenCV-Python peer skipped: ${py.reason}`);
    }
  }
  await ort?.close();

  const result = aggregateEngine(engine, frames.open, engine.options.threadsPerJob, engineReps);
  const peers: PeerResult[] = [];
  if (wantPeers) {
    const ortVersion = (require('onnxruntime-node') as { env: { versions: { node?: string } } }).env.versions.node ?? '?';
    const ortName = `onnxruntime-node ${ortVersion}`;
    if (ort && ortReps.length) {
      const stages: Record<string, number> = {};
      for (const k of Object.keys(ortReps[0].stages)) {
        stages[k] = Math.round(median(ortReps.flatMap((r) => r.stages[k])) * 1000) / 1000;
      }
      peers.push({
        name: ortName,
        description:
          `the same ONNX models and pre/post-processing in TypeScript (bench/peers/ort-chain.ts), JPEG decoded by sharp; ` +
          `latency: one worker thread, ${ort.config.latencyThreads} intra-op threads; throughput: ${ort.config.throughputWorkers} ` +
          `worker threads of 1 thread each. Stage medians (ms): ${Object.entries(stages).map(([k, v]) => `${k} ${v}`).join(', ')}.`,
        p50: repeated(ortReps.map((r) => latencyOf(r.latencyMs).p50)),
        p99: repeated(ortReps.map((r) => latencyOf(r.latencyMs).p99)),
        perS: repeated(ortReps.map((r) => r.perS), 1),
        stages,
        agreement,
        config: ort.config,
      });
    } else {
      peers.push({ name: ortName, description: 'onnxruntime-node peer', skipped: ortSkipped ?? 'did not run' });
    }
    const pyOk = pyReps.filter((p): p is Extract<PythonPeerAnswer, { ok: true }> => p.ok);
    if (pyOk.length) {
      const first = pyOk[0].run;
      const stages: Record<string, number> = {};
      for (const k of ['detect', 'landmarks', 'embedding', 'liveness', 'total']) {
        const s = first[k] as { median_ms?: number } | undefined;
        if (s?.median_ms !== undefined) stages[k] = median(pyOk.map((p) => (p.run[k] as { median_ms: number }).median_ms));
      }
      peers.push({
        name: `OpenCV ${first.opencv} Python bindings`,
        description:
          'bench/peers/opencv_python.py (Debian python3-opencv), one thread, on the first frame only (piped on stdin); ' +
          `stage medians (ms): ${Object.entries(stages).map(([k, v]) => `${k} ${v}`).join(', ')}.`,
        p50: repeated(pyOk.map((p) => p.run.total.median_ms)),
        p99: repeated(pyOk.map((p) => p.run.total.p99_ms)),
        stages,
      });
    } else {
      const reason = pyReps.find((p): p is Extract<PythonPeerAnswer, { ok: false }> => !p.ok)?.reason ?? 'did not run';
      peers.push({ name: 'OpenCV Python bindings', description: 'bench/peers/opencv_python.py', skipped: reason });
    }
  }
  return { engine: result, peers };
}

async function startServers(ctx: Context, patients: string[]): Promise<Map<string, BenchServer>> {
  const wanted: Array<{ key: string; transport: Transport; env?: Record<string, string> }> = [];
  // Idle sessions must outlive the memory phase; the load servers keep the default session timeout.
  const longTimeout = { SESSION_TIMEOUT_MS: '600000' };
  if (ctx.phases.has('http') || ctx.phases.has('memory')) wanted.push({ key: 'idle-ws', transport: 'ws', env: longTimeout });
  if (ctx.phases.has('memory') && ctx.suite.memory.transports.includes('uws')) {
    wanted.push({ key: 'idle-uws', transport: 'uws', env: longTimeout });
  }
  if (ctx.phases.has('ws')) {
    for (const t of new Set(ctx.suite.ws.points.map((p) => p.transport))) wanted.push({ key: `load-${t}`, transport: t });
  }
  progress(`starting ${wanted.length} gateway processes (${wanted.map((w) => w.key).join(', ')}) ...`);
  const servers = new Map<string, BenchServer>();
  await Promise.all(
    wanted.map(async (w) => {
      try {
        const server = await BenchServer.start({ transport: w.transport, env: w.env });
        servers.set(w.key, server);
        for (const iin of patients) await enroll(server.base, server.apiKey, iin, ctx.frames.reference);
      } catch (err) {
        ctx.notes.push(`The ${w.key} gateway could not start, its measurements are missing: ${(err as Error).message.split('\n')[0]}`);
        progress(`  ${w.key}: could not start: ${(err as Error).message}`);
      }
    }),
  );
  return servers;
}

async function httpPhase(ctx: Context, server: BenchServer, patients: string[]): Promise<HttpResult[]> {
  const { suite } = ctx;
  const targets = await httpTargets({
    server,
    iin: patients[0],
    enrollIin: benchIins(1, 5000)[0],
    reference: ctx.frames.reference,
    connections: suite.httpConnections,
  });
  const reps = new Map(targets.map((t) => [t, [] as HttpRep[]]));
  for (let rep = 1; rep <= suite.reps; rep++) {
    for (const t of targets) {
      if (t.skipped) continue;
      const r = await runHttpRep(server, t, suite.httpSeconds);
      reps.get(t)!.push(r);
      progress(`http ${rep}/${suite.reps}: ${t.method} ${t.route}: ${r.rps.toFixed(0)} req/s, p50 ${r.p50} ms, p99 ${r.p99} ms`);
    }
  }
  for (const t of targets) if (t.skipped) ctx.notes.push(`HTTP ${t.name}: skipped, ${t.skipped}.`);
  return targets.map((t) => aggregateHttp(t, reps.get(t)!));
}

async function wsPhase(ctx: Context, servers: Map<string, BenchServer>, patients: string[], engine: EngineResult | null): Promise<WsResult[]> {
  const { suite } = ctx;
  const points = suite.ws.points.filter((p) => servers.has(`load-${p.transport}`));
  const reps = new Map(points.map((p) => [p, [] as WsRep[]]));
  const gen = LoadGenProcess.start();
  try {
    for (let rep = 1; rep <= suite.reps; rep++) {
      for (const p of points) {
        const r = await gen.rep(servers.get(`load-${p.transport}`)!, ctx.frames, patients, p, suite.ws);
        reps.get(p)!.push(r);
        progress(
          `ws ${rep}/${suite.reps}: ${p.transport} ${p.connections} sessions @ ${p.fps} fps: ` +
            `sent ${(r.window.framesSent / r.window.seconds).toFixed(0)}/s, analysed ${(r.analysed / r.seconds).toFixed(1)}/s, ` +
            `dropped ${r.received ? Math.round((100 * r.dropped) / r.received) : 0}%, verdicts ${JSON.stringify(r.window.verdicts)}, ` +
            `gateway CPU ${r.server.cpuPercent.toFixed(0)}%`,
        );
      }
    }
  } finally {
    await gen.close();
  }
  return points.map((p) => aggregateWs(p, reps.get(p)!, engine));
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
  const phases = new Set<Phase>(
    values.only ? (values.only.split(',').map((s) => s.trim()) as Phase[]) : PHASES,
  );
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
  progress(`faceid-gateway benchmarks: ${mode} suite, commit ${commit}${dirty ? ' (dirty)' : ''}, load average ${load.start.join(' ')}`);

  const cores = os.availableParallelism();
  const engine = await FaceEngine.open({ workers: cores, threadsPerJob: Math.min(2, cores) });
  let frames: BenchFrames;
  let engineResult: EngineResult | null = null;
  let peers: PeerResult[] = [];
  const notes: string[] = [];
  try {
    progress('making frames from the fixture photo ...');
    frames = await makeFrames(engine);
    const ctx: Context = { suite, phases, frames, notes, load };
    if (phases.has('engine') || phases.has('peers') || phases.has('ws')) {
      markLoad(ctx, 'engine');
      ({ engine: engineResult, peers } = await enginesAndPeers(ctx, engine));
    }
  } finally {
    await engine.close();
  }
  const ctx: Context = { suite, phases, frames, notes, load };

  let http: HttpResult[] = [];
  let ws: WsResult[] = [];
  const memory: BenchRun['memory'] = [];
  if (phases.has('http') || phases.has('memory') || phases.has('ws')) {
    const patients = benchIins(PATIENTS);
    const servers = await startServers(ctx, patients);
    try {
      if (phases.has('memory')) {
        for (const t of suite.memory.transports) {
          const server = servers.get(`idle-${t}`);
          if (!server) continue;
          markLoad(ctx, `memory ${t}`);
          memory.push(await runMemory(server, patients, suite.memory.levels, progress));
        }
      }
      const idle = servers.get('idle-ws');
      if (phases.has('http') && idle) {
        markLoad(ctx, 'http');
        http = await httpPhase(ctx, idle, patients);
      }
      for (const key of ['idle-ws', 'idle-uws']) {
        await servers.get(key)?.stop();
        servers.delete(key);
      }
      if (phases.has('ws')) {
        markLoad(ctx, 'ws');
        ws = await wsPhase(ctx, servers, patients, engineResult);
      }
    } finally {
      await Promise.all([...servers.values()].map((s) => s.stop()));
    }
  }
  load.end = os.loadavg().map((x) => Math.round(x * 100) / 100);

  notes.push(
    `Everything ran on this one machine: the gateway, the load generator (its own process), autocannon and the peers ` +
      `share ${cores} cores, and other jobs may have been running (see the load averages).`,
    'The gateways ran with FACEID_BOOTSTRAP=false, RATE_LIMIT_PER_MINUTE=0, FACE_ATTEMPTS_MAX=100 per 1 minute ' +
      '(overloaded sessions fail, and would otherwise lock their patients out), SQLite in a fresh temporary folder, ' +
      `LOG_LEVEL=warn, and otherwise the defaults; ${PATIENTS} patients enrolled with the same face.`,
  );
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

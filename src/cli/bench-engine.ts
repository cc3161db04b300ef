import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { FaceEngine } from '../engine/engine';
import { defaultFixtureDir } from '../engine/models';
import { loadNative } from '../engine/native';
import { STAGE_TIMING_KEYS, type Analysis, type Box } from '../engine/types';
import type { Command, CommandIo, OptionValues } from './main';
import { median, percentile } from './metrics';

const FRAME_WIDTH = 320;
const FRAME_HEIGHT = 240;
const FIXTURE = 'sample1.jpg';
const WARMUP_CALLS = 5;

export interface LatencySummary {
  n: number;
  median_ms: number;
  p99_ms: number;
}

export interface ThroughputResult {
  in_flight: number;
  calls: number;
  seconds: number;
  analyses_per_s: number;
}

export interface BenchResult {
  opencv: string;
  cpu: string;
  cores: number;
  node: string;
  frame: { source: string; width: number; height: number; bytes: number; faces: number };
  engine: { workers: number; threadsPerJob: number };
  seconds_per_phase: number;
  /** Native per-stage times over the sequential full calls. */
  stages: Record<string, LatencySummary>;
  /** Wall time of one call seen from JS, sequential, 1 job in flight. */
  track_call: LatencySummary;
  full_call: LatencySummary;
  throughput: ThroughputResult[];
  /** With --peer: the same chain through OpenCV's Python bindings, one thread. */
  peer_opencv_python?: PeerResult;
}

export const benchEngineCommand: Command = {
  name: 'bench-engine',
  summary: 'Measure the face engine: per-stage latency, track/full call latency, throughput.',
  usage: `faceid bench-engine [--json] [--seconds S] [--threads N] [--image FILE] [--peer]

Runs the engine on one ${FRAME_WIDTH}x${FRAME_HEIGHT} JPEG frame of a real face (default: made from the fixture photo
${FIXTURE}, cropped around its main face; fetch it with \`npm run models\`). Each phase lasts S seconds:
  1. track calls, sequential (1 job in flight): wall time per call from JS;
  2. full calls, sequential: wall time per call, and the engine's own time per stage;
  3. full calls, closed loop with 1 job in flight: analyses/s;
  4. full calls, closed loop with as many jobs in flight as cores (os.availableParallelism()): analyses/s.
Latencies are medians and 99th percentiles (linear between the two nearest ranks) in milliseconds.

Options:
  --json         Print one JSON object instead of tables.
  --seconds S    Length of each phase in seconds, 0.1-600. Default 5.
  --image FILE   Use this JPEG as the frame, as is (no resize).
  --threads N    OpenCV threads per job, 1-64. Default min(2, cores), as the service uses.
  --peer         Also time the same chain through OpenCV's Python bindings (Debian python3-opencv), one thread,
                 on the same frame (piped to it, never written to disk).
  -h, --help     Show this help.
`,
  options: {
    json: { type: 'boolean' },
    seconds: { type: 'string' },
    image: { type: 'string' },
    threads: { type: 'string' },
    peer: { type: 'boolean' },
  },
  allowPositionals: false,
  run: runBench,
};

async function runBench(values: OptionValues, _positionals: string[], io: CommandIo): Promise<number> {
  let seconds = 5;
  if (values.seconds !== undefined) {
    const s = Number(values.seconds);
    if (!/^\s*\d*\.?\d+\s*$/.test(values.seconds as string) || !(s >= 0.1 && s <= 600)) {
      return io.usageError('--seconds must be a number from 0.1 to 600.');
    }
    seconds = s;
  }
  const imagePath = values.image as string | undefined;
  const fixturePath = path.join(defaultFixtureDir(), FIXTURE);
  if (!imagePath && !existsSync(fixturePath)) {
    io.err(
      `faceid bench-engine: the fixture photo ${fixturePath} is missing. ` +
        'Run `npm run models` to fetch it, or pass --image FILE.\n',
    );
    return 1;
  }

  const native = loadNative();
  const cores = os.availableParallelism();
  const threads = values.threads === undefined ? Math.min(2, cores) : Number(values.threads);
  if (!Number.isInteger(threads) || threads < 1 || threads > 64) {
    return io.usageError('--threads must be an integer from 1 to 64.');
  }
  io.err(`opening the engine (${cores} workers, ${threads} OpenCV threads per job) ...\n`);
  const engine = await FaceEngine.open({ workers: cores, threadsPerJob: threads });
  try {
    const frame = imagePath ? await readFile(imagePath) : await frameFromPhoto(engine, fixturePath);
    const source = imagePath ?? `${FIXTURE} (cropped around its main face, ${FRAME_WIDTH}x${FRAME_HEIGHT})`;

    // Check the frame, and warm up every worker (first forwards allocate and tune).
    const check = await engine.full(Buffer.from(frame));
    if (check.faces.length === 0) {
      io.err('warning: no face found in the frame; the per-face stages will not run and the figures mean little.\n');
    }
    io.err(`warming up (${WARMUP_CALLS} rounds of ${cores} full calls in parallel, then track calls) ...\n`);
    for (let k = 0; k < WARMUP_CALLS; k++) {
      await Promise.all(Array.from({ length: cores }, () => engine.full(Buffer.from(frame))));
      await engine.track(Buffer.from(frame));
    }

    io.err(`1/4 track calls, sequential, ${seconds} s ...\n`);
    const track = await sequential(seconds, frame, (copy) => engine.track(copy));
    io.err(`2/4 full calls, sequential, ${seconds} s ...\n`);
    const full = await sequential(seconds, frame, (copy) => engine.full(copy));
    io.err(`3/4 full calls, closed loop, 1 in flight, ${seconds} s ...\n`);
    const one = await closedLoop(seconds, 1, () => engine.full(Buffer.from(frame)));
    io.err(`4/4 full calls, closed loop, ${cores} in flight, ${seconds} s ...\n`);
    const many = await closedLoop(seconds, cores, () => engine.full(Buffer.from(frame)));

    let peer: PeerResult | undefined;
    if (values.peer) {
      io.err(`peer: OpenCV Python bindings, one thread, ${seconds} s ...\n`);
      peer = await runPythonPeer(frame, seconds, path.dirname(engine.models.detect));
    }

    const stages: Record<string, LatencySummary> = {};
    for (const key of STAGE_TIMING_KEYS) stages[key] = summarize(full.analyses.map((a) => a.timings[key]));

    const result: BenchResult = {
      opencv: native.opencvVersion,
      cpu: os.cpus()[0]?.model ?? 'unknown',
      cores,
      node: process.version,
      frame: { source, width: check.width, height: check.height, bytes: frame.length, faces: check.faces.length },
      engine: { workers: engine.options.workers, threadsPerJob: threads },
      seconds_per_phase: seconds,
      stages,
      track_call: summarize(track.wallMs),
      full_call: summarize(full.wallMs),
      throughput: cores === 1 ? [one] : [one, many],
      ...(peer ? { peer_opencv_python: peer } : {}),
    };
    if (values.json) io.out(JSON.stringify(result));
    else printTables(result, io);
    return 0;
  } finally {
    await engine.close();
  }
}

/**
 * A webcam-like frame from a larger photo: find the main face, cut a 4:3 region about 3.5 face-widths wide
 * centred on it (kept inside the photo), scale it to 320x240 and encode it as JPEG (quality 90).
 * sharp is a development tool here, loaded only for this.
 */
async function frameFromPhoto(engine: FaceEngine, photoPath: string): Promise<Buffer> {
  let sharp: (typeof import('sharp'))['default'];
  try {
    sharp = (await import('sharp')).default;
  } catch {
    throw new Error('Making the default frame needs the `sharp` package (a devDependency); or pass --image FILE.');
  }
  const photo = await readFile(photoPath);
  const meta = await sharp(photo).metadata();
  const W = meta.width ?? 0;
  const H = meta.height ?? 0;
  const found = await engine.analyze(Buffer.from(photo), { stages: [], maxFaces: 0 });
  const face = found.faces.find((f) => f.primary) ?? found.faces[0];
  const region = face ? regionAround(face.box, W, H) : coverRegion(W, H);
  return sharp(photo)
    .extract(region)
    .resize(FRAME_WIDTH, FRAME_HEIGHT, { fit: 'fill' })
    .jpeg({ quality: 90 })
    .toBuffer();
}

interface Region {
  left: number;
  top: number;
  width: number;
  height: number;
}

/** A 4:3 region about 3.5 face-widths wide, centred on the box, clamped to the W x H image. */
export function regionAround(box: Box, W: number, H: number): Region {
  let width = Math.max(box.width * 3.5, FRAME_WIDTH);
  let height = (width * 3) / 4;
  if (width > W) {
    width = W;
    height = (W * 3) / 4;
  }
  if (height > H) {
    height = H;
    width = (H * 4) / 3;
  }
  const cx = box.x + box.width / 2;
  const cy = box.y + box.height / 2;
  const left = Math.min(Math.max(0, cx - width / 2), W - width);
  const top = Math.min(Math.max(0, cy - height / 2), H - height);
  return {
    left: Math.floor(left),
    top: Math.floor(top),
    width: Math.min(Math.round(width), W - Math.floor(left)),
    height: Math.min(Math.round(height), H - Math.floor(top)),
  };
}

/** The largest centred 4:3 region of a W x H image. */
function coverRegion(W: number, H: number): Region {
  const width = Math.min(W, Math.floor((H * 4) / 3));
  const height = Math.min(H, Math.floor((width * 3) / 4));
  return { left: Math.floor((W - width) / 2), top: Math.floor((H - height) / 2), width, height };
}

/** Calls `fn` one after another for `seconds` on a fresh copy of the frame; wall time of each call from JS. */
async function sequential(
  seconds: number,
  frame: Buffer,
  fn: (copy: Buffer) => Promise<Analysis>,
): Promise<{ wallMs: number[]; analyses: Analysis[] }> {
  const wallMs: number[] = [];
  const analyses: Analysis[] = [];
  const end = performance.now() + seconds * 1000;
  while (performance.now() < end) {
    const copy = Buffer.from(frame); // the engine zeroes its input
    const t0 = performance.now();
    const a = await fn(copy);
    wallMs.push(performance.now() - t0);
    analyses.push(a);
  }
  return { wallMs, analyses };
}

/** `inFlight` loops each awaiting one call at a time until `seconds` have passed; analyses per second. */
async function closedLoop(seconds: number, inFlight: number, fn: () => Promise<unknown>): Promise<ThroughputResult> {
  let calls = 0;
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (performance.now() < end) {
        await fn();
        calls++;
      }
    }),
  );
  const elapsed = (performance.now() - t0) / 1000;
  return { in_flight: inFlight, calls, seconds: round(elapsed, 3), analyses_per_s: round(calls / elapsed, 1) };
}

function summarize(xs: number[]): LatencySummary {
  return { n: xs.length, median_ms: round(median(xs), 3), p99_ms: round(percentile(xs, 99), 3) };
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

function printTables(r: BenchResult, io: CommandIo): void {
  io.out(`OpenCV ${r.opencv}, ${r.cpu} x ${r.cores} cores, Node ${r.node}`);
  const fr = r.frame;
  io.out(`frame: ${fr.source}: ${fr.width}x${fr.height}, ${fr.bytes} bytes, ${fr.faces} face(s)`);
  io.out(
    `engine: ${r.engine.workers} workers, ${r.engine.threadsPerJob} OpenCV threads per job; ${r.seconds_per_phase} s per phase`,
  );
  io.out('');
  io.out('| measure | n | median ms | p99 ms |');
  io.out('|---|---:|---:|---:|');
  for (const [name, s] of Object.entries(r.stages)) {
    io.out(`| stage ${name} (native, full call) | ${s.n} | ${s.median_ms.toFixed(3)} | ${s.p99_ms.toFixed(3)} |`);
  }
  for (const [name, s] of [
    ['track call (JS wall, 1 in flight)', r.track_call],
    ['full call (JS wall, 1 in flight)', r.full_call],
  ] as const) {
    io.out(`| ${name} | ${s.n} | ${s.median_ms.toFixed(3)} | ${s.p99_ms.toFixed(3)} |`);
  }
  io.out('');
  io.out('| full calls in flight | calls | seconds | analyses/s |');
  io.out('|---:|---:|---:|---:|');
  for (const t of r.throughput) io.out(`| ${t.in_flight} | ${t.calls} | ${t.seconds} | ${t.analyses_per_s} |`);
  const p = r.peer_opencv_python;
  if (p && 'total' in p) {
    io.out('');
    io.out(
      `peer, OpenCV ${p.opencv} Python bindings, 1 thread, same frame (detect, landmarks, align, embedding, liveness):`,
    );
    io.out(`| chain | ${p.n} | ${p.total.median_ms.toFixed(3)} | ${p.total.p99_ms.toFixed(3)} |`);
    io.out(`engine full call / peer chain (median): ${(r.full_call.median_ms / p.total.median_ms).toFixed(2)}`);
  } else if (p) {
    io.out('');
    io.out(`peer skipped: ${p.skipped}`);
  }
}

type PeerResult =
  | { opencv: string; n: number; total: { median_ms: number; p99_ms: number }; [stage: string]: unknown }
  | { skipped: string };

const PEER_SCRIPT = path.resolve(__dirname, '..', '..', 'bench', 'peers', 'opencv_python.py');

/** Runs the Python peer with the frame on stdin; a missing python3-opencv is reported, not fatal. */
function runPythonPeer(frame: Buffer, seconds: number, modelDir: string): Promise<PeerResult> {
  return new Promise((resolve) => {
    const child = execFile(
      '/usr/bin/python3',
      [PEER_SCRIPT, modelDir, '-', String(seconds)],
      { maxBuffer: 1 << 20, timeout: (seconds + 60) * 1000 },
      (err, stdout, stderr) => {
        if (err) {
          const hint = /No module named .cv2/.test(stderr)
            ? 'install python3-opencv (apt)'
            : stderr.trim().split('\n').pop();
          resolve({ skipped: hint || err.message });
          return;
        }
        resolve(JSON.parse(stdout) as PeerResult);
      },
    );
    child.stdin?.end(frame);
  });
}

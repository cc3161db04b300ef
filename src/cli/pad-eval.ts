import * as os from 'node:os';
import * as path from 'node:path';
import { FaceEngine } from '../engine/engine';
import { FULL_STAGES, type Analysis, type AnalyzeOptions } from '../engine/types';
import type { ChallengeKind } from '../liveness';
import { Rng, hashSeed } from '../liveness/pad/random';
import { createModel, encodeJpeg, MODEL_KINDS, type ModelKind } from '../liveness/pad/render';
import { loadPadFace, padPhotos, type PadFace } from '../liveness/pad/source';
import { quantile as quantileOf } from '../stats/quantile';
import { parseIntInRange } from './analyze';
import { Desk, playSession, type PlayResult } from './desk';
import type { Command, CommandIo, OptionValues } from './main';

/** The challenge sets compared; `before` is the blink alone with the passive model on every full call (as built before). */
export const PAD_CONFIGS: Record<string, { challenges: ChallengeKind[]; passive: boolean }> = {
  'light+blink': { challenges: ['light', 'blink'], passive: false },
  'turn+blink': { challenges: ['turn', 'blink'], passive: false },
  before: { challenges: ['blink'], passive: true },
};

export interface ClassReport {
  attempts: number;
  /** Sessions that ended `match`: an attack accepted, or a genuine patient identified. */
  accepted: number;
  /** ISO/IEC 30107-3: APCER for an attack class (accepted / attempts); BPCER for genuine (refused as a spoof / attempts). */
  rate: number;
  /** 95% upper bound of the rate (Clopper-Pearson for 0 events: 1 - 0.025^(1/n); else Wilson). */
  upper95: number;
  results: Record<string, number>;
  reasons: Record<string, number>;
}

export interface ConfigReport {
  challenges: ChallengeKind[];
  passive: boolean;
  genuine: ClassReport & {
    /** Genuine sessions that ended other than `match` for any reason (liveness, recognition, timeout). */
    notMatched: number;
    sessionMs: { p50: number; p90: number };
    engineMsPerVerdict: number;
    framesPerVerdict: number;
  };
  attacks: Record<string, ClassReport>;
  /** With --metrics: per class and challenge, quantiles (p0, p5, p50, p95, p100) of each measurement. */
  metrics?: Record<string, Record<string, number[]>>;
}

export interface PadReport {
  photos: number;
  /** People left out because their photo is not frontal (see maxYaw). */
  leftOutTurned: number;
  attemptsPerClass: number;
  fps: number;
  configs: Record<string, ConfigReport>;
  /** The passive model's score on one frame per attempt, per class: does it separate anything the challenges miss? */
  passive: Record<string, { mean: number; p10: number; p90: number; aboveGenuineP10: number }> | null;
  seconds: number;
}

const ATTACKS = MODEL_KINDS.filter((k) => k !== 'genuine');

export const padEvalCommand: Command = {
  name: 'pad-eval',
  summary: 'Presentation-attack benchmark: APCER per attack class and BPCER, through the real session logic.',
  usage: `faceid pad-eval [--manifest CSV] [--attempts N] [--configs LIST] [--classes LIST] [--fps N]
                [--max-yaw DEG] [--json] [--metrics]

Plays genuine sessions and presentation attacks through the real session runner and the real engine, on a
virtual clock (a frame every 1000/fps ms, the next one once the engine answered: nothing depends on the
machine's speed). Each session's frames are rendered by a scene model (docs/liveness.md): a live face lit by the
desk's screen from a 3D shape fitted to its landmarks, with webcam noise, exposure and white-balance drift; and the
attacks: still, painted_blink, replay, print, screen, warped_photo, tint_injector. Each attack uses the enrolled
person's own photo (the strongest case: any liveness pass is a match).

Reports, per challenge set, ISO/IEC 30107-3 style: APCER per attack class (attacks accepted / attempts) and
BPCER (genuine sessions refused as spoofs / attempts), with 95% upper bounds, the refusal reasons, time from the
first frame to the verdict (virtual clock) and engine time per verdict.

Options:
  --manifest CSV   Photos (columns file, identity). Default: ../shared/faces/manifest.csv when present, else the
                   fixture sample photos.
  --attempts N     Sessions per class and challenge set, 1-10000. Default 50.
  --configs LIST   Challenge sets: ${Object.keys(PAD_CONFIGS).join(', ')}. Default: all.
  --classes LIST   Attack classes: ${ATTACKS.join(', ')}. Default: all.
  --fps N          Frames per second the desk sends, 5-30. Default 10 (the browser client's), and 15 (fps.max)
                   while the light challenge runs, as the client does.
  --max-yaw DEG    People whose photo reads a larger |yaw| are left out (a patient at the desk faces the camera
                   when asked; a photo cannot). Default 10.
  --json           Print one JSON object (progress still goes to stderr).
  --metrics        Add quantiles of every challenge measurement per class (for calibrating thresholds).
  -h, --help       Show this help.
`,
  options: {
    manifest: { type: 'string' },
    attempts: { type: 'string' },
    configs: { type: 'string' },
    classes: { type: 'string' },
    fps: { type: 'string' },
    'max-yaw': { type: 'string' },
    json: { type: 'boolean' },
    metrics: { type: 'boolean' },
  },
  allowPositionals: false,
  run: runPadEval,
};

function list<T extends string>(value: unknown, allowed: readonly T[], name: string): T[] | string {
  if (value === undefined) return [...allowed];
  const items = String(value)
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const bad = items.filter((i) => !allowed.includes(i as T));
  return bad.length ? `unknown ${name}: ${bad.join(', ')} (known: ${allowed.join(', ')})` : (items as T[]);
}

async function runPadEval(values: OptionValues, _positionals: string[], io: CommandIo): Promise<number> {
  const attempts = values.attempts === undefined ? 50 : parseIntInRange(values.attempts as string, 1, 10_000);
  if (attempts === undefined) return io.usageError('--attempts must be a whole number from 1 to 10000.');
  const fps = values.fps === undefined ? 10 : parseIntInRange(values.fps as string, 5, 30);
  if (fps === undefined) return io.usageError('--fps must be a whole number from 5 to 30.');
  const maxYaw = values['max-yaw'] === undefined ? 10 : parseIntInRange(values['max-yaw'] as string, 0, 90);
  if (maxYaw === undefined) return io.usageError('--max-yaw must be a whole number of degrees from 0 to 90.');
  const configs = list(values.configs, Object.keys(PAD_CONFIGS), 'challenge set');
  if (typeof configs === 'string') return io.usageError(configs);
  const classes = list(values.classes, ATTACKS, 'attack class');
  if (typeof classes === 'string') return io.usageError(classes);
  const manifest =
    (values.manifest as string | undefined) ?? path.resolve(process.cwd(), '..', 'shared', 'faces', 'manifest.csv');
  const report = await padEval({
    manifest,
    attempts,
    fps,
    configs,
    classes,
    metrics: values.metrics === true,
    maxYaw,
    progress: (s) => io.err(s),
    tty: io.errIsTTY,
  });
  if (!report) {
    io.err('pad-eval: no usable photo (no manifest, and the fixture photos are missing: run `npm run models`).\n');
    return 1;
  }
  if (values.json) io.out(JSON.stringify(report));
  else for (const line of formatPadReport(report)) io.out(line);
  return 0;
}

export interface PadEvalOptions {
  manifest?: string;
  attempts: number;
  fps: number;
  configs: string[];
  classes: ModelKind[];
  /** Add the challenges' measurement quantiles per class (for calibrating thresholds). */
  metrics?: boolean;
  /** Leave out people whose photo reads a larger |yaw| (degrees). */
  maxYaw?: number;
  /** Limit the photos used (first N usable). */
  maxPhotos?: number;
  progress?: (text: string) => void;
  tty?: boolean;
}

/** Runs the benchmark; null when no photo could be used. */
export async function padEval(opts: PadEvalOptions): Promise<PadReport | null> {
  const started = performance.now();
  const workers = Math.min(2, os.availableParallelism());
  const engine = await FaceEngine.open({ workers, queueSize: 16 });
  const say = opts.progress ?? (() => undefined);
  try {
    const faces: { face: PadFace; template: Float32Array }[] = [];
    const seen = new Set<string>();
    let turned = 0;
    const maxYaw = opts.maxYaw ?? 10;
    for (const photo of padPhotos(opts.manifest)) {
      if (opts.maxPhotos !== undefined && faces.length >= opts.maxPhotos) break;
      if (seen.has(photo.identity)) continue; // one photo per person: attempts spread over people
      const face = await loadPadFace(engine, photo.file);
      if (!face) continue;
      // The reference: the clean frame, enrolled as the service enrolls (a full analysis of one good frame).
      const full = await engine.full(await encodeJpeg(face.frame, 95));
      const primary = full.faces.find((f) => f.primary);
      const embedding = primary?.embedding;
      if (!embedding) continue;
      if (Math.abs(primary.pose?.yaw ?? 90) > maxYaw) {
        embedding.fill(0);
        turned++;
        continue;
      }
      seen.add(photo.identity);
      faces.push({ face, template: embedding });
    }
    if (faces.length === 0) return null;
    say(
      `pad-eval: ${faces.length} people (${turned} left out: turned more than ${maxYaw} degrees), ` +
        `${opts.attempts} attempts per class, ${opts.configs.join(' / ')}\n`,
    );

    const report: PadReport = {
      photos: faces.length,
      leftOutTurned: turned,
      attemptsPerClass: opts.attempts,
      fps: opts.fps,
      configs: {},
      passive: null,
      seconds: 0,
    };
    // Every challenge set's sessions interleaved, so a busy machine slows them alike (engine time is compared).
    const kinds: ModelKind[] = ['genuine', ...opts.classes];
    const runs = new Map(opts.configs.map((name) => [name, new Map<ModelKind, PlayResult[]>()]));
    const jobs = Array.from({ length: opts.attempts }, (_, i) =>
      kinds.flatMap((kind) => opts.configs.map((name) => ({ name, kind, i }))),
    ).flat();
    let done = 0;
    await mapLimit(jobs, workers, async ({ name, kind, i }) => {
      const config = PAD_CONFIGS[name];
      const seed = hashSeed(Object.keys(PAD_CONFIGS).indexOf(name) + 1, MODEL_KINDS.indexOf(kind) + 1, i + 1);
      const rng = new Rng(seed);
      const person = faces[i % faces.length];
      const model = createModel(kind, person.face.model, { seed });
      const clientOffset = 1.7e12 + rng.next() * 1e9;
      const desk = new Desk(model, 20 + rng.next() * 60, (t) => t + clientOffset);
      const result = await playSession(passiveEngine(engine, config.passive), person.template.slice(), desk, {
        settings: { challenges: config.challenges },
        fps: opts.fps,
        random: () => rng.next(),
      });
      const byKind = runs.get(name)!;
      (byKind.get(kind) ?? byKind.set(kind, []).get(kind)!).push(result);
      done++;
      const line = `${done}/${jobs.length} sessions`;
      say(opts.tty ? `\r${line}\x1b[K` : done % 100 === 0 || done === jobs.length ? `${line}\n` : '');
    });
    if (opts.tty) say('\n');
    for (const name of opts.configs) {
      report.configs[name] = summarise(PAD_CONFIGS[name], runs.get(name)!);
      if (opts.metrics) report.configs[name].metrics = metricQuantiles(runs.get(name)!);
    }
    report.passive = await passiveScores(engine, faces, opts.classes);
    report.seconds = Math.round((performance.now() - started) / 100) / 10;
    return report;
  } finally {
    await engine.close();
  }
}

/** The engine as the session sees it; with `passive`, full calls also run the passive liveness model (as before). */
function passiveEngine(engine: FaceEngine, passive: boolean): FaceEngine {
  if (!passive) return engine;
  const stages = [...FULL_STAGES, 'liveness' as const];
  return Object.assign(Object.create(engine) as FaceEngine, {
    full: (frame: Buffer, options: Omit<AnalyzeOptions, 'stages'> = {}): Promise<Analysis> =>
      engine.analyze(frame, { ...options, stages }),
  });
}

function metricQuantiles(runs: Map<ModelKind, PlayResult[]>): NonNullable<ConfigReport['metrics']> {
  const out: NonNullable<ConfigReport['metrics']> = {};
  for (const [kind, list] of runs) {
    const byKey: Record<string, number[]> = {};
    for (const r of list) {
      for (const c of r.challenges) {
        for (const [k, v] of Object.entries(c.metrics ?? {})) if (v !== null) (byKey[`${c.kind}.${k}`] ??= []).push(v);
      }
    }
    out[kind] = {};
    for (const [k, xs] of Object.entries(byKey)) {
      xs.sort((a, b) => a - b);
      out[kind][k] = [0, 0.05, 0.5, 0.95, 1].map((q) => Math.round(quantile(xs, q) * 1000) / 1000);
    }
  }
  return out;
}

function classReport(runs: PlayResult[], attack: boolean): ClassReport {
  const results: Record<string, number> = {};
  const reasons: Record<string, number> = {};
  for (const r of runs) {
    results[r.outcome.result] = (results[r.outcome.result] ?? 0) + 1;
    if (r.outcome.reason) reasons[r.outcome.reason] = (reasons[r.outcome.reason] ?? 0) + 1;
  }
  const accepted = results.match ?? 0;
  const events = attack ? accepted : (results.spoof_suspected ?? 0) + (reasons.client_unsupported ?? 0);
  return {
    attempts: runs.length,
    accepted,
    rate: runs.length ? events / runs.length : 0,
    upper95: upper95(events, runs.length),
    results,
    reasons,
  };
}

function summarise(
  config: { challenges: ChallengeKind[]; passive: boolean },
  runs: Map<ModelKind, PlayResult[]>,
): ConfigReport {
  const genuine = runs.get('genuine') ?? [];
  const matched = genuine.filter((r) => r.outcome.result === 'match');
  const ms = matched.map((r) => r.sessionMs).sort((a, b) => a - b);
  const attacks: Record<string, ClassReport> = {};
  for (const [kind, list] of runs) if (kind !== 'genuine') attacks[kind] = classReport(list, true);
  return {
    challenges: config.challenges,
    passive: config.passive,
    genuine: {
      ...classReport(genuine, false),
      notMatched: genuine.length - matched.length,
      sessionMs: { p50: Math.round(quantile(ms, 0.5)), p90: Math.round(quantile(ms, 0.9)) },
      engineMsPerVerdict: round1(mean(matched.map((r) => r.engineMs))),
      framesPerVerdict: round1(mean(matched.map((r) => r.frames))),
    },
    attacks,
  };
}

/** One mid-session frame per person and class, scored by the passive model alone. */
async function passiveScores(
  engine: FaceEngine,
  faces: { face: PadFace }[],
  classes: ModelKind[],
): Promise<PadReport['passive']> {
  const out: NonNullable<PadReport['passive']> = {};
  let genuineP10 = 0;
  for (const kind of ['genuine', ...classes] as ModelKind[]) {
    const scores: number[] = [];
    for (let i = 0; i < faces.length; i++) {
      const model = createModel(kind, faces[i].face.model, {
        seed: hashSeed(99, MODEL_KINDS.indexOf(kind) + 1, i + 1),
      });
      const frame = model.frameAt(600, () => null, {});
      const a = await engine.analyze(await encodeJpeg(frame, model.jpegQuality), { stages: ['liveness'] });
      const p = a.faces.find((f) => f.primary)?.liveness;
      if (p !== undefined) scores.push(p);
    }
    scores.sort((a, b) => a - b);
    if (kind === 'genuine') genuineP10 = quantile(scores, 0.1);
    out[kind] = {
      mean: round3(mean(scores)),
      p10: round3(quantile(scores, 0.1)),
      p90: round3(quantile(scores, 0.9)),
      aboveGenuineP10: round3(scores.filter((s) => s >= genuineP10).length / Math.max(1, scores.length)),
    };
  }
  return out;
}

export function formatPadReport(r: PadReport): string[] {
  const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
  const lines = [
    `${r.photos} people (${r.leftOutTurned} with a turned photo left out), ${r.attemptsPerClass} attempts per class, ${r.fps} fps (15 during the light), ${r.seconds} s`,
  ];
  for (const [name, c] of Object.entries(r.configs)) {
    lines.push('', `${name} (${c.challenges.join(', ')}${c.passive ? ', passive model' : ''})`);
    const g = c.genuine;
    lines.push(
      `  genuine        BPCER ${pct(g.rate)} (95% <= ${pct(g.upper95)}), not matched ${g.notMatched}/${g.attempts}, ` +
        `first frame to verdict p50 ${g.sessionMs.p50} ms p90 ${g.sessionMs.p90} ms, engine ${g.engineMsPerVerdict} ms per verdict` +
        (Object.keys(g.reasons).length ? `, reasons ${JSON.stringify(g.reasons)}` : ''),
    );
    for (const [kind, a] of Object.entries(c.attacks)) {
      lines.push(
        `  ${kind.padEnd(14)} APCER ${pct(a.rate)} (${a.accepted}/${a.attempts}, 95% <= ${pct(a.upper95)})  ${JSON.stringify(a.reasons)}`,
      );
    }
  }
  if (r.passive) {
    lines.push('', 'passive model, one frame per person: mean [p10, p90], share at or above the genuine p10');
    for (const [kind, p] of Object.entries(r.passive))
      lines.push(`  ${kind.padEnd(14)} ${p.mean} [${p.p10}, ${p.p90}] ${pct(p.aboveGenuineP10)}`);
  }
  return lines;
}

function upper95(events: number, n: number): number {
  if (n === 0) return 1;
  if (events === 0) return round3(1 - Math.pow(0.025, 1 / n));
  const z = 1.96;
  const p = events / n;
  const centre = p + (z * z) / (2 * n);
  const margin = z * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n));
  return round3(Math.min(1, (centre + margin) / (1 + (z * z) / n)));
}

function quantile(sorted: number[], q: number): number {
  return quantileOf(sorted, q) ?? NaN;
}

function mean(xs: number[]): number {
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN;
}

const round1 = (x: number) => Math.round(x * 10) / 10;
const round3 = (x: number) => Math.round(x * 1000) / 1000;

async function mapLimit<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

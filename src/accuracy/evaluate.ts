/**
 * Accuracy as the service sees it: references enrolled as the enrollment service enrolls them (engine.full, the
 * primary face, the normalised mean of an identity's embeddings), probes analysed as a desk session analyses a frame
 * (engine.full, at most one face, the primary face), every probe compared with every enrolled identity by cosine
 * similarity. A session with one analysed frame matches when that score >= the threshold (decide() in
 * src/identification/session-runner.ts also asks it of the frames' centroid, the same number for one frame).
 *
 * Only scores leave this module. Every embedding is zeroed once scored, every template once all probes are scored;
 * every JPEG handed to the engine is zeroed by it, and every decoded photo and frame here once used.
 */
import { readFile } from 'node:fs/promises';
import { errorRecord } from '../cli/analyze';
import { scoreProbe, type ProbeScores, type Template } from '../cli/metrics';
import { cosineSimilarity } from '../engine/engine';
import type { Analysis, AnalyzeOptions, Box } from '../engine/types';
import { hashSeed } from '../liveness/pad/random';
import { ConditionRenderer, decodePhoto, type ConditionName } from './conditions';
import { accuracyFigures, type ConditionRow, type ConditionsReport } from './report';
import { mapLimit, type ManifestEntry } from './manifest';

/** The engine calls used here (FaceEngine has them; tests pass a stand-in). */
export interface AccuracyEngine {
  full(frame: Buffer, options?: AnalyzeOptions): Promise<Analysis>;
  analyze(frame: Buffer, options?: AnalyzeOptions): Promise<Analysis>;
}

export type FrameOutcome =
  | { kind: 'face'; embedding: Float32Array }
  | { kind: 'no_face' }
  | { kind: 'error'; code: string; message: string };

/** Progress of one step: `done` of `total` items; `note` says what became of the last one ('' = fine). */
export type Progress = (done: number, total: number, file: string, note: string) => void;

/** engine.full with at most one face (as a desk frame); the primary face's embedding. Zeroes `jpeg` (the engine does). */
export async function analyseFrame(engine: AccuracyEngine, jpeg: Buffer, file: string): Promise<FrameOutcome> {
  let analysis: Analysis | undefined;
  try {
    analysis = await engine.full(jpeg, { maxFaces: 1 });
    const face = analysis.faces.find((f) => f.primary) ?? analysis.faces[0];
    if (!face?.embedding) return { kind: 'no_face' };
    const embedding = face.embedding;
    face.embedding = undefined; // handed over: the caller zeroes it
    return { kind: 'face', embedding };
  } catch (err) {
    const { error } = errorRecord(file, err);
    return { kind: 'error', ...error };
  } finally {
    jpeg.fill(0); // already zero unless the engine refused it before copying
    for (const f of analysis?.faces ?? []) f.embedding?.fill(0);
  }
}

const noteOf = (o: FrameOutcome): string =>
  o.kind === 'face' ? '' : o.kind === 'no_face' ? 'no face' : `error ${o.code}`;

export interface Gallery {
  /** One normalised template per enrolled identity, in manifest order of first appearance. */
  templates: Template<Float32Array>[];
  images: number;
  identities: number;
  /** Images without a face (errors included). */
  ftd: number;
  errors: number;
  /** Identities with a template (at least one image with a face). */
  enrolled: number;
  /** Zeroes every template. */
  wipe(): void;
}

interface FileOptions {
  concurrency: number;
  progress?: Progress;
  onError?: (file: string, code: string, message: string) => void;
}

/** Reads and analyses each file as a frame (errors reported, progress counted), then maps its outcome with `then`. */
function analyseFiles<T>(
  engine: AccuracyEngine,
  entries: readonly ManifestEntry[],
  options: FileOptions,
  then: (outcome: FrameOutcome, entry: ManifestEntry) => T,
): Promise<T[]> {
  let done = 0;
  return mapLimit(entries, options.concurrency, async (entry): Promise<T> => {
    let outcome: FrameOutcome;
    try {
      outcome = await analyseFrame(engine, await readFile(entry.path), entry.file);
    } catch (err) {
      outcome = { kind: 'error', ...errorRecord(entry.file, err).error };
    }
    if (outcome.kind === 'error') options.onError?.(entry.file, outcome.code, outcome.message);
    options.progress?.(++done, entries.length, entry.file, noteOf(outcome));
    return then(outcome, entry);
  });
}

/**
 * Enrolls each identity as the enrollment service does: the embedding of the primary face of each of its images,
 * summed, divided by its norm (src/enrollment/enrollment.service.ts, embed()). An identity none of whose images shows a
 * face has no template. Failures go to `onError` (file and code only).
 */
export async function enrollGallery(
  engine: AccuracyEngine,
  entries: readonly ManifestEntry[],
  options: FileOptions,
): Promise<Gallery> {
  const outcomes = await analyseFiles(engine, entries, options, (outcome) => outcome);
  const sums = new Map<string, Float32Array>();
  let ftd = 0;
  let errors = 0;
  entries.forEach((entry, k) => {
    const o = outcomes[k];
    if (o.kind !== 'face') {
      ftd++;
      if (o.kind === 'error') errors++;
      return;
    }
    let sum = sums.get(entry.identity);
    if (!sum) sums.set(entry.identity, (sum = new Float32Array(o.embedding.length)));
    for (let i = 0; i < sum.length; i++) sum[i] += o.embedding[i];
    o.embedding.fill(0);
  });
  const templates: Template<Float32Array>[] = [];
  for (const [identity, sum] of sums) {
    let norm = 0;
    for (let i = 0; i < sum.length; i++) norm += sum[i] * sum[i];
    norm = Math.sqrt(norm);
    if (!(norm > 0)) {
      sum.fill(0);
      continue;
    }
    for (let i = 0; i < sum.length; i++) sum[i] /= norm;
    templates.push({ identity, template: sum });
  }
  return {
    templates,
    images: entries.length,
    identities: new Set(entries.map((e) => e.identity)).size,
    ftd,
    errors,
    enrolled: templates.length,
    wipe: () => {
      for (const t of templates) t.template.fill(0);
    },
  };
}

/** What became of a set of probes under one condition (or as they are). */
export interface ProbeRun {
  /** Scores of the probes with a face, in probe order. */
  scores: ProbeScores[];
  images: number;
  /** Probes without a face (errors included). */
  ftd: number;
  errors: number;
  /** Of `ftd`, probes whose identity is enrolled: a session that finds no face fails the patient too. */
  ftdGenuine: number;
  /** Probes whose identity has no template: they give impostor scores only. */
  unenrolled: number;
}

/** A probe frame's outcome once scored: only its scores are kept. */
type Scored =
  | { kind: 'scored'; scores: ProbeScores }
  | { kind: 'no_face' }
  | { kind: 'error'; code: string; message: string };

/** Scores a frame's embedding against the gallery and zeroes it at once. */
function score(outcome: FrameOutcome, identity: string, gallery: Gallery): Scored {
  if (outcome.kind !== 'face') return outcome;
  try {
    return { kind: 'scored', scores: scoreProbe(outcome.embedding, identity, gallery.templates, cosineSimilarity) };
  } finally {
    outcome.embedding.fill(0);
  }
}

function tally(outcomes: readonly Scored[], identities: readonly string[], gallery: Gallery): ProbeRun {
  const enrolled = new Set(gallery.templates.map((t) => t.identity));
  const run: ProbeRun = { scores: [], images: outcomes.length, ftd: 0, errors: 0, ftdGenuine: 0, unenrolled: 0 };
  outcomes.forEach((o, k) => {
    const known = enrolled.has(identities[k]);
    if (!known) run.unenrolled++;
    if (o.kind === 'scored') {
      run.scores.push(o.scores);
      return;
    }
    run.ftd++;
    if (o.kind === 'error') run.errors++;
    if (known) run.ftdGenuine++;
  });
  return run;
}

/** Analyses each probe file as a desk frame and scores it against the gallery. */
export async function scoreProbeFiles(
  engine: AccuracyEngine,
  entries: readonly ManifestEntry[],
  gallery: Gallery,
  options: FileOptions,
): Promise<ProbeRun> {
  const outcomes = await analyseFiles(engine, entries, options, (outcome, entry) =>
    score(outcome, entry.identity, gallery),
  );
  return tally(
    outcomes,
    entries.map((e) => e.identity),
    gallery,
  );
}

/**
 * The manifest split as the condition table uses it: per identity, its first labelled image (manifest order) is the
 * gallery reference, its others are probes. Identities with one image serve as impostors only.
 */
export function splitFirstAsGallery(entries: readonly ManifestEntry[]): {
  gallery: ManifestEntry[];
  probes: ManifestEntry[];
} {
  const seen = new Set<string>();
  const gallery: ManifestEntry[] = [];
  const probes: ManifestEntry[] = [];
  for (const e of entries) {
    if (seen.has(e.identity)) probes.push(e);
    else {
      seen.add(e.identity);
      gallery.push(e);
    }
  }
  return { gallery, probes };
}

/** The seed of probe `index` (its place in the probe list): its conditions' draws depend on nothing else. */
export const probeSeed = (seed: number, index: number): number => hashSeed(seed, index);

export interface ConditionsRun {
  runs: Map<ConditionName, ProbeRun>;
  /** Probes whose original photo showed no face: framed on a guessed box (centred, a third of the shorter side). */
  unframed: number;
}

/**
 * Renders each probe under each condition (src/accuracy/conditions.ts, seeded per probe by `probeSeed`), analyses the
 * frames as desk frames and scores them against the gallery. The face box that frames a probe is the detector's on its
 * original photo. Probes run `concurrency` at a time, each one's conditions in turn.
 */
export async function scoreConditions(
  engine: AccuracyEngine,
  probes: readonly ManifestEntry[],
  gallery: Gallery,
  conditions: readonly ConditionName[],
  options: {
    seed: number;
    concurrency: number;
    progress?: Progress;
    onError?: (file: string, code: string, message: string) => void;
  },
): Promise<ConditionsRun> {
  let done = 0;
  let unframed = 0;
  const perProbe = await mapLimit(probes, options.concurrency, async (entry, index): Promise<Scored[]> => {
    const outcomes: Scored[] = [];
    let file: Buffer | undefined;
    let photo: Awaited<ReturnType<typeof decodePhoto>> | undefined;
    let renderer: ConditionRenderer | undefined;
    try {
      file = await readFile(entry.path);
      photo = await decodePhoto(file);
      let box = await detectBox(engine, file); // zeroes `file`
      if (!box) {
        unframed++;
        const side = Math.min(photo.width, photo.height) / 3;
        box = { x: (photo.width - side) / 2, y: (photo.height - side) / 2, width: side, height: side };
      }
      renderer = new ConditionRenderer(photo, box, probeSeed(options.seed, index));
      for (const name of conditions) {
        const jpeg = await renderer.jpeg(name);
        outcomes.push(score(await analyseFrame(engine, jpeg, `${entry.file} (${name})`), entry.identity, gallery));
      }
    } catch (err) {
      const { error } = errorRecord(entry.file, err);
      while (outcomes.length < conditions.length) outcomes.push({ kind: 'error', ...error });
    } finally {
      file?.fill(0);
      photo?.data.fill(0);
      renderer?.dispose();
    }
    const failed = outcomes.find((o): o is Extract<Scored, { kind: 'error' }> => o.kind === 'error');
    if (failed) options.onError?.(entry.file, failed.code, failed.message);
    const misses = conditions.filter((_, k) => outcomes[k].kind !== 'scored');
    options.progress?.(++done, probes.length, entry.file, misses.length ? `no face: ${misses.join(', ')}` : '');
    return outcomes;
  });
  const runs = new Map<ConditionName, ProbeRun>();
  const identities = probes.map((e) => e.identity);
  conditions.forEach((name, c) =>
    runs.set(
      name,
      tally(
        perProbe.map((p) => p[c]),
        identities,
        gallery,
      ),
    ),
  );
  return { runs, unframed };
}

/** The detector's primary box on the original photo (detection only). Zeroes `jpeg` (the engine does). */
async function detectBox(engine: AccuracyEngine, jpeg: Buffer): Promise<Box | null> {
  try {
    const a = await engine.analyze(jpeg, { stages: [], maxFaces: 1 });
    const face = a.faces.find((f) => f.primary) ?? a.faces[0];
    for (const f of a.faces) f.embedding?.fill(0);
    return face ? { ...face.box } : null;
  } finally {
    jpeg.fill(0);
  }
}

/**
 * The condition table: per identity, its first labelled image (manifest order) enrolled as the gallery reference,
 * its others scored under each condition at `threshold`. `errors` counts images that could not be analysed.
 */
export async function conditionTableRun(
  engine: AccuracyEngine,
  labelled: readonly ManifestEntry[],
  conditions: readonly ConditionName[],
  options: {
    seed: number;
    threshold: number;
    thresholdSource: ConditionsReport['threshold_source'];
    concurrency: number;
    enrolling?: Progress;
    /** Called once the gallery is enrolled (e.g. to end a progress line). */
    enrolled?: () => void;
    probing?: Progress;
    onError?: (file: string, code: string, message: string) => void;
  },
): Promise<{ report: ConditionsReport; errors: number }> {
  const split = splitFirstAsGallery(labelled);
  let gallery: Gallery | undefined;
  let scored: ConditionsRun;
  try {
    gallery = await enrollGallery(engine, split.gallery, {
      concurrency: options.concurrency,
      progress: options.enrolling,
      onError: options.onError,
    });
    options.enrolled?.();
    scored = await scoreConditions(engine, split.probes, gallery, conditions, {
      seed: options.seed,
      concurrency: options.concurrency,
      progress: options.probing,
      onError: options.onError,
    });
  } finally {
    gallery?.wipe();
  }
  let errors = gallery.errors;
  const rows: ConditionRow[] = conditions.map((condition) => {
    const run = scored.runs.get(condition)!;
    errors += run.errors;
    return { condition, ...accuracyFigures(run, options.threshold, options.seed).figures };
  });
  return {
    errors,
    report: {
      mode: 'conditions',
      threshold: options.threshold,
      threshold_source: options.thresholdSource,
      seed: options.seed,
      images: labelled.length,
      identities: new Set(labelled.map((e) => e.identity)).size,
      gallery: { images: gallery.images, ftd: gallery.ftd, enrolled: gallery.enrolled },
      probes: split.probes.length,
      unframed: scored.unframed,
      conditions: rows,
    },
  };
}

import { readFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { cosineSimilarity, FaceEngine } from '../engine/engine';
import { FULL_STAGES } from '../engine/types';
import { errorRecord, parseIntInRange } from './analyze';
import type { Command, CommandIo, OptionValues } from './main';
import {
  scoreAllPairs,
  verificationReport,
  type Proportion,
  type TarAtFarResult,
  type TarAtFarWithCi,
  type Template,
} from './metrics';
import { CONDITION_HELP, CONDITIONS, parseConditions, type ConditionName } from '../accuracy/conditions';
import {
  conditionTableRun,
  enrollGallery,
  scoreProbeFiles,
  splitFirstAsGallery,
  type Gallery,
  type ProbeRun,
  type Progress,
} from '../accuracy/evaluate';
import { mapLimit, parseManifest, type ManifestEntry } from '../accuracy/manifest';
import { accuracyFigures, conditionTable } from '../accuracy/report';
import { loadConfig } from '../config/config';

export { mapLimit, parseCsv, parseManifest, type ManifestEntry } from '../accuracy/manifest';

type EmbedOutcome =
  | { kind: 'template'; embedding: Float32Array }
  | { kind: 'no_face' }
  | { kind: 'error'; code: string };

export interface EvalSummary {
  images: number;
  identities: number;
  ftd: number;
  genuine: number;
  impostor: number;
  eer: number | null;
  threshold_at_eer: number | null;
  'tar_at_far_1e-2': number | null;
  'tar_at_far_1e-3': number | null;
  'threshold_at_far_1e-3': number | null;
  dprime: number | null;
  genuine_mean: number | null;
  impostor_mean: number | null;
}

const num = (x: number): number | null => (Number.isFinite(x) ? x : null);

const DEFAULT_SEED = 1;

export const evalCommand: Command = {
  name: 'eval',
  summary: "Measure verification accuracy (EER, TAR@FAR, d', FRR/FAR at the threshold) on labelled face photos.",
  usage: `faceid eval --manifest CSV [--json] [--concurrency N]
            --gallery CSV --probes CSV [--threshold X] [--json] [--concurrency N]
            --manifest CSV --conditions all|LIST [--seed N] [--threshold X] [--json] [--concurrency N]

A CSV lists images with a header holding the columns "file" (relative to the CSV's folder) and "identity" (other
columns are ignored; an empty identity = unlabelled, skipped). A face is the primary face the engine finds; an image
without one is a failure to detect (ftd) and gives no template or score.

All pairs (--manifest): each labelled image gives one template; every pair is compared by cosine similarity: same
identity = genuine, different = impostor.

Gallery and probes (--gallery, --probes): the gallery is enrolled as the service enrolls (engine.full, the primary
face, the normalised mean of an identity's embeddings when it has several images); probes are analysed as desk
session frames are (engine.full, at most one face). Every probe is compared with every enrolled identity: its own =
genuine, the others = impostor. Probes of an identity with no template give impostor scores only.

Conditions (--manifest with --conditions): per identity, its first image (manifest order) is the gallery reference,
as is; its other images are probes, each reframed into a 320x240 desk frame and degraded under each condition
(seeded per probe, so a rerun gives the same frames), then scored as above. One table row per condition.
${CONDITIONS.map((c) => `  ${c.padEnd(10)} ${CONDITION_HELP[c]}`).join('\n')}
The face box that frames a probe is the detector's on its original photo; the conditions change only what they name.

Figures (a comparison is accepted when score >= threshold):
  frr, far   at the threshold: the service's MATCH_THRESHOLD (from the environment, as the service reads it) unless
             --threshold is given; with 95% Wilson score intervals (these take comparisons as independent, which a
             probe's comparisons are not quite, so the FAR interval is somewhat narrow). FRR+FTD also counts the
             enrolled probes without a face as rejected, as a desk session would be.
  eer        where FAR and FRR cross, found by sweeping every distinct score as a threshold and
             interpolating linearly between the two operating points where FAR - FRR changes sign.
  tar@far    TAR at the smallest threshold whose FAR <= target (just above the (floor(target*n)+1)-th highest
             impostor score). With fewer than 1/target impostor pairs the target cannot be resolved: the
             threshold then only sits above the highest impostor score (a warning says so). With probes: a 95%
             percentile-bootstrap interval, 1,000 resamples of the probes (each with all its comparisons), the
             threshold re-found in each; seeded by --seed, so reruns agree.
  dprime     (mean_gen - mean_imp) / sqrt((sd_gen^2 + sd_imp^2) / 2), population SDs.
  recommended threshold (gallery and probes): the lowest threshold with FAR <= 1e-3 on this set, i.e. the
             threshold of TAR@FAR 1e-3; trust it only when resolved (at least 1,000 impostor comparisons).

Options:
  --manifest CSV     The labelled set: all pairs, or with --conditions the condition table.
  --gallery CSV      The references, enrolled (with --probes).
  --probes CSV       The desk images, compared with every gallery identity (with --gallery).
  --conditions LIST  all, or a comma list of: ${CONDITIONS.join(', ')}.
  --seed N           Seeds the conditions and the bootstrap, 0-4294967295. Default: ${DEFAULT_SEED}.
  --threshold X      The match threshold, 0-1 (exclusive). Default: MATCH_THRESHOLD from the environment (0.46).
  --json             Print one JSON object instead of a table.
  --concurrency N    Images analysed at once, 1-64. Default: the number of cores.
  -h, --help         Show this help.
`,
  options: {
    manifest: { type: 'string' },
    gallery: { type: 'string' },
    probes: { type: 'string' },
    conditions: { type: 'string' },
    seed: { type: 'string' },
    threshold: { type: 'string' },
    json: { type: 'boolean' },
    concurrency: { type: 'string' },
  },
  allowPositionals: false,
  run: runEval,
};

async function runEval(values: OptionValues, _positionals: string[], io: CommandIo): Promise<number> {
  const manifest = values.manifest as string | undefined;
  const galleryCsv = values.gallery as string | undefined;
  const probesCsv = values.probes as string | undefined;
  const conditionsText = values.conditions as string | undefined;
  if ((galleryCsv === undefined) !== (probesCsv === undefined))
    return io.usageError('--gallery and --probes go together.');
  if (manifest !== undefined && galleryCsv !== undefined)
    return io.usageError('Give --manifest or --gallery/--probes, not both.');
  if (manifest === undefined && galleryCsv === undefined)
    return io.usageError('--manifest CSV is required (or --gallery CSV --probes CSV).');
  if (conditionsText !== undefined && manifest === undefined) return io.usageError('--conditions needs --manifest.');
  if (values.seed !== undefined && galleryCsv === undefined && conditionsText === undefined) {
    return io.usageError('--seed applies to --conditions and to --gallery/--probes.');
  }
  if (values.threshold !== undefined && galleryCsv === undefined && conditionsText === undefined) {
    return io.usageError('--threshold applies to --gallery/--probes and --conditions (all pairs report no threshold).');
  }
  let concurrency = os.availableParallelism();
  if (values.concurrency !== undefined) {
    const n = parseIntInRange(values.concurrency as string, 1, 64);
    if (n === undefined) return io.usageError('--concurrency must be a whole number from 1 to 64.');
    concurrency = n;
  }
  if (galleryCsv === undefined && conditionsText === undefined)
    return runAllPairs(manifest!, concurrency, values.json === true, io);

  let conditions: ConditionName[] = [];
  if (conditionsText !== undefined) {
    try {
      conditions = parseConditions(conditionsText);
    } catch (err) {
      return io.usageError((err as Error).message);
    }
  }
  let seed = DEFAULT_SEED;
  if (values.seed !== undefined) {
    const n = parseIntInRange(values.seed as string, 0, 2 ** 32 - 1);
    if (n === undefined) return io.usageError('--seed must be a whole number from 0 to 4294967295.');
    seed = n;
  }
  let threshold: ResolvedThreshold;
  if (values.threshold !== undefined) {
    const text = (values.threshold as string).trim();
    const x = Number(text);
    if (!/^\d*\.?\d+$/.test(text) || !(x > 0 && x < 1))
      return io.usageError('--threshold must be a number between 0 and 1 (exclusive).');
    threshold = { value: x, source: '--threshold' };
  } else {
    // As the service resolves it: the environment's MATCH_THRESHOLD, else its default.
    threshold = { value: loadConfig(io.env).MATCH_THRESHOLD, source: 'MATCH_THRESHOLD' };
  }
  const run: ProbeModeRun = { concurrency, seed, threshold, json: values.json === true };
  return galleryCsv !== undefined
    ? runGalleryProbes(galleryCsv, probesCsv!, run, io)
    : runConditions(manifest!, conditions, run, io);
}

interface ResolvedThreshold {
  value: number;
  source: 'MATCH_THRESHOLD' | '--threshold';
}

interface ProbeModeRun {
  concurrency: number;
  seed: number;
  threshold: ResolvedThreshold;
  json: boolean;
}

/** The labelled rows of a manifest; throws when there are none. */
async function readLabelled(csv: string, what: string, io: CommandIo): Promise<ManifestEntry[]> {
  const entries = parseManifest(await readFile(csv, 'utf8'), path.dirname(path.resolve(csv)));
  const labelled = entries.filter((e) => e.identity !== '');
  if (labelled.length === 0) throw new Error(`The ${what} has no labelled image.`);
  const skipped = entries.length - labelled.length;
  io.err(`${what}: ${labelled.length} labelled images${skipped > 0 ? ` (${skipped} unlabelled skipped)` : ''}\n`);
  return labelled;
}

/** A progress reporter on stderr: one line rewritten on a terminal, a line per item otherwise. */
function progressOn(io: Pick<CommandIo, 'err' | 'errIsTTY'>, label: string): { progress: Progress; end(): void } {
  return {
    progress: (done, total, file, note) =>
      io.err(
        io.errIsTTY
          ? `\r${label} ${done}/${total}${note ? ` (${note})` : ''}\x1b[K`
          : `${label} ${done}/${total} ${file}${note ? ` (${note})` : ''}\n`,
      ),
    end: () => {
      if (io.errIsTTY) io.err('\n');
    },
  };
}

async function openEngine(concurrency: number): Promise<FaceEngine> {
  // More jobs than workers wait in the engine's own queue, which must hold them.
  const workers = Math.min(concurrency, os.availableParallelism());
  return FaceEngine.open({ workers, queueSize: Math.max(workers * 4, concurrency) });
}

function onErrorTo(io: Pick<CommandIo, 'err' | 'errIsTTY'>): (file: string, code: string, message: string) => void {
  return (file, code, message) => io.err(`${io.errIsTTY ? '\n' : ''}${file}: ${code}: ${message}\n`);
}

async function runGalleryProbes(
  galleryCsv: string,
  probesCsv: string,
  run: ProbeModeRun,
  io: CommandIo,
): Promise<number> {
  const galleryEntries = await readLabelled(galleryCsv, 'gallery', io);
  const probeEntries = await readLabelled(probesCsv, 'probes', io);
  const engine = await openEngine(run.concurrency);
  let gallery: Gallery | undefined;
  let probes: ProbeRun;
  try {
    const g = progressOn(io, 'enrolling');
    gallery = await enrollGallery(engine, galleryEntries, {
      concurrency: run.concurrency,
      progress: g.progress,
      onError: onErrorTo(io),
    });
    g.end();
    const p = progressOn(io, 'probe');
    probes = await scoreProbeFiles(engine, probeEntries, gallery, {
      concurrency: run.concurrency,
      progress: p.progress,
      onError: onErrorTo(io),
    });
    p.end();
  } finally {
    gallery?.wipe();
    await engine.close();
  }
  const { figures, report } = accuracyFigures(probes, run.threshold.value, run.seed);
  for (const far of [report.far1e2, report.far1e3]) warnIfUnresolved(far, report.verification.impostor, io);
  const errors = gallery.errors + probes.errors;
  if (errors > 0) io.err(`${errors} image(s) could not be analysed; they are counted in ftd.\n`);

  if (run.json) {
    io.out(
      JSON.stringify({
        mode: 'gallery',
        threshold: run.threshold.value,
        threshold_source: run.threshold.source,
        seed: run.seed,
        gallery: {
          images: gallery.images,
          identities: gallery.identities,
          ftd: gallery.ftd,
          enrolled: gallery.enrolled,
        },
        ...figures,
        recommended_threshold: figures['threshold_at_far_1e-3'],
        recommended_threshold_rule: 'lowest threshold with FAR <= 1e-3 on this set',
      }),
    );
    return errors > 0 ? 1 : 0;
  }
  const pct = (x: number, d = 3): string => (Number.isFinite(x) ? `${(x * 100).toFixed(d)} %` : 'n/a');
  const f = (x: number, d = 4): string => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');
  const prop = (p: Proportion): string =>
    Number.isFinite(p.rate) ? `${pct(p.rate)}  (95% CI ${pct(p.lo)} - ${pct(p.hi)}; ${p.count} of ${p.n})` : 'n/a';
  const tarText = (r: TarAtFarWithCi): string =>
    `${pct(r.tar)}  (95% CI ${pct(r.ci.lo)} - ${pct(r.ci.hi)}; threshold ${f(r.threshold, 6)}, FAR ${pct(r.far)}` +
    `${r.resolved ? '' : ', unresolved'})`;
  const v = report.verification;
  const rec = report.recommended;
  const rows: [string, string][] = [
    ['gallery images', `${gallery.images} (${gallery.identities} identities, ${gallery.enrolled} enrolled)`],
    ['gallery failures to detect', `${gallery.ftd} (${pct(gallery.ftd / gallery.images)})`],
    ['probe images', String(probes.images)],
    ['probe failures to detect', `${probes.ftd} (${pct(probes.ftd / probes.images)})`],
    ['probes of unenrolled identities', String(probes.unenrolled)],
    ['genuine comparisons', String(v.genuine)],
    ['impostor comparisons', String(v.impostor)],
    ['threshold', `${run.threshold.value} (${run.threshold.source})`],
    ['FRR at threshold', prop(report.frr)],
    ['FRR incl. failures to detect', pct(figures.frr_with_ftd ?? NaN)],
    ['FAR at threshold', prop(report.far)],
    ['EER', pct(v.eer)],
    ['threshold at EER', f(v.thresholdAtEer)],
    ['TAR @ FAR 1e-2', tarText(report.far1e2)],
    ['TAR @ FAR 1e-3', tarText(report.far1e3)],
    ["d'", f(v.dprime, 3)],
    ['genuine score mean (sd)', `${f(v.genuineMean)} (${f(v.genuineSd)})`],
    ['impostor score mean (sd)', `${f(v.impostorMean)} (${f(v.impostorSd)})`],
    [
      'recommended threshold',
      Number.isFinite(rec.threshold)
        ? `${f(rec.threshold)} (lowest with FAR <= 1e-3 here${rec.resolved ? '' : ', unresolved'}; FRR there ${pct(rec.frr)})`
        : 'n/a',
    ],
  ];
  const w = Math.max(...rows.map((r) => r[0].length));
  for (const [k, val] of rows) io.out(`${k.padEnd(w)}  ${val}`);
  return errors > 0 ? 1 : 0;
}

async function runConditions(
  manifest: string,
  conditions: ConditionName[],
  run: ProbeModeRun,
  io: CommandIo,
): Promise<number> {
  const labelled = await readLabelled(manifest, 'manifest', io);
  const split = splitFirstAsGallery(labelled);
  io.err(
    `${split.gallery.length} gallery references, ${split.probes.length} probes x ${conditions.length} conditions\n`,
  );
  const engine = await openEngine(run.concurrency);
  let result: Awaited<ReturnType<typeof conditionTableRun>>;
  try {
    const g = progressOn(io, 'enrolling');
    const p = progressOn(io, 'probe');
    result = await conditionTableRun(engine, labelled, conditions, {
      seed: run.seed,
      threshold: run.threshold.value,
      thresholdSource: run.threshold.source,
      concurrency: run.concurrency,
      enrolling: g.progress,
      enrolled: g.end,
      probing: p.progress,
      onError: onErrorTo(io),
    });
    p.end();
  } finally {
    await engine.close();
  }
  if (result.errors > 0) io.err(`${result.errors} image(s) could not be analysed; they are counted in ftd.\n`);
  if (run.json) io.out(JSON.stringify(result.report));
  else {
    io.out(conditionTable(result.report));
    io.out('');
    io.out(
      `${result.report.images} images, ${result.report.identities} identities; gallery: ${result.report.gallery.enrolled} enrolled ` +
        `(ftd ${result.report.gallery.ftd}); threshold ${run.threshold.value} (${run.threshold.source}); seed ${run.seed}` +
        `${result.report.unframed ? `; ${result.report.unframed} probe(s) framed on a guessed box` : ''}`,
    );
  }
  return result.errors > 0 ? 1 : 0;
}

/** All pairs of a labelled set (the original mode, unchanged). */
async function runAllPairs(manifestPath: string, concurrency: number, json: boolean, io: CommandIo): Promise<number> {
  const cores = os.availableParallelism();

  const manifestText = await readFile(manifestPath, 'utf8');
  const entries = parseManifest(manifestText, path.dirname(path.resolve(manifestPath)));
  const labelled = entries.filter((e) => e.identity !== '');
  if (labelled.length === 0) throw new Error('The manifest has no labelled image.');
  const skipped = entries.length - labelled.length;
  io.err(
    `${labelled.length} labelled images` +
      (skipped > 0 ? ` (${skipped} unlabelled skipped)` : '') +
      `, ${concurrency} at a time\n`,
  );

  // More jobs than workers wait in the engine's own queue, which must hold them.
  const workers = Math.min(concurrency, cores);
  const engine = await FaceEngine.open({ workers, queueSize: Math.max(workers * 4, concurrency) });
  let done = 0;
  let outcomes: EmbedOutcome[];
  try {
    outcomes = await mapLimit(labelled, concurrency, async (entry): Promise<EmbedOutcome> => {
      let outcome: EmbedOutcome;
      try {
        const jpeg = await readFile(entry.path);
        const analysis = await engine.analyze(jpeg, { stages: FULL_STAGES, maxFaces: 1 }); // zeroes `jpeg`
        const face = analysis.faces.find((f) => f.primary) ?? analysis.faces[0];
        outcome = face?.embedding ? { kind: 'template', embedding: face.embedding } : { kind: 'no_face' };
      } catch (err) {
        const rec = errorRecord(entry.file, err);
        io.err(`\n${entry.file}: ${rec.error.code}: ${rec.error.message}\n`);
        outcome = { kind: 'error', code: rec.error.code };
      }
      done++;
      const note = outcome.kind === 'template' ? '' : outcome.kind === 'no_face' ? ' (no face)' : ' (error)';
      io.err(
        io.errIsTTY
          ? `\rembedding ${done}/${labelled.length}${note}\x1b[K`
          : `embedding ${done}/${labelled.length} ${entry.file}${note}\n`,
      );
      return outcome;
    });
  } finally {
    await engine.close();
  }
  if (io.errIsTTY) io.err('\n');

  const templates: Template<Float32Array>[] = [];
  let ftd = 0;
  let errors = 0;
  labelled.forEach((entry, k) => {
    const o = outcomes[k];
    if (o.kind === 'template') templates.push({ identity: entry.identity, template: o.embedding });
    else {
      ftd++;
      if (o.kind === 'error') errors++;
    }
  });

  const rep = verificationReport(scoreAllPairs(templates, cosineSimilarity));
  for (const far of [rep.far1e2, rep.far1e3]) warnIfUnresolved(far, rep.impostor, io);
  if (errors > 0) io.err(`${errors} image(s) could not be analysed; they are counted in ftd.\n`);

  const summary: EvalSummary = {
    images: labelled.length,
    identities: new Set(labelled.map((e) => e.identity)).size,
    ftd,
    genuine: rep.genuine,
    impostor: rep.impostor,
    eer: num(rep.eer),
    threshold_at_eer: num(rep.thresholdAtEer),
    'tar_at_far_1e-2': num(rep.far1e2.tar),
    'tar_at_far_1e-3': num(rep.far1e3.tar),
    'threshold_at_far_1e-3': num(rep.far1e3.threshold),
    dprime: num(rep.dprime),
    genuine_mean: num(rep.genuineMean),
    impostor_mean: num(rep.impostorMean),
  };

  if (json) {
    io.out(JSON.stringify(summary));
  } else {
    const pct = (x: number): string => (Number.isFinite(x) ? `${(x * 100).toFixed(3)} %` : 'n/a');
    const f = (x: number, d = 4): string => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');
    const tarText = (r: TarAtFarResult): string =>
      `${pct(r.tar)}  (threshold ${f(r.threshold, 6)}, FAR ${pct(r.far)}${r.resolved ? '' : ', unresolved'})`;
    const rows: [string, string][] = [
      ['images (labelled)', String(summary.images)],
      ['identities', String(summary.identities)],
      ['failures to detect (ftd)', `${ftd} (${pct(ftd / labelled.length)})`],
      ['templates', String(templates.length)],
      ['genuine pairs', String(rep.genuine)],
      ['impostor pairs', String(rep.impostor)],
      ['EER', pct(rep.eer)],
      ['threshold at EER', f(rep.thresholdAtEer)],
      ['TAR @ FAR 1e-2', tarText(rep.far1e2)],
      ['TAR @ FAR 1e-3', tarText(rep.far1e3)],
      ["d'", f(rep.dprime, 3)],
      ['genuine score mean (sd)', `${f(rep.genuineMean)} (${f(rep.genuineSd)})`],
      ['impostor score mean (sd)', `${f(rep.impostorMean)} (${f(rep.impostorSd)})`],
    ];
    const w = Math.max(...rows.map((r) => r[0].length));
    for (const [k, v] of rows) io.out(`${k.padEnd(w)}  ${v}`);
  }
  return errors > 0 ? 1 : 0;
}

function warnIfUnresolved(r: TarAtFarResult, impostors: number, io: CommandIo): void {
  if (impostors === 0 || r.resolved) return;
  io.err(
    `warning: FAR ${r.target} needs at least ${Math.ceil(1 / r.target)} impostor pairs, there are ${impostors}; ` +
      'the threshold only sits above the highest impostor score ' +
      `(true FAR may be up to ~${(3 / impostors).toPrecision(2)}).\n`,
  );
}

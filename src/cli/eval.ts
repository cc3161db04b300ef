import { readFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { cosineSimilarity, FaceEngine } from '../engine/engine';
import { FULL_STAGES } from '../engine/types';
import { errorRecord, parseIntInRange } from './analyze';
import type { Command, CommandIo, OptionValues } from './main';
import { scoreAllPairs, verificationReport, type TarAtFarResult, type Template } from './metrics';

/**
 * Parses CSV text (RFC 4180): comma-separated, fields optionally in double quotes, "" inside quotes is a quote,
 * quoted fields may hold commas and line breaks; CRLF or LF line ends; a leading UTF-8 BOM is ignored.
 * Blank lines are skipped. Throws on a quote that is never closed or text right after a closing quote.
 */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false; // the current field was written in quotes
  let atFieldStart = true;
  let line = 1;
  const endField = (): void => {
    row.push(field);
    field = '';
    atFieldStart = true;
  };
  const endRow = (): void => {
    const blank = row.length === 1 && row[0] === '' && !quoted;
    if (!blank) rows.push(row);
    row = [];
    quoted = false;
  };
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  while (i < text.length) {
    const c = text[i];
    if (c === '"' && atFieldStart) {
      const start = line;
      quoted = true;
      atFieldStart = false;
      i++;
      for (;;) {
        if (i >= text.length) throw new Error(`CSV line ${start}: a quoted field is never closed.`);
        const q = text[i++];
        if (q === '"') {
          if (text[i] !== '"') break;
          i++;
        } else if (q === '\n') line++;
        field += q;
      }
      const next = text[i];
      if (next !== undefined && next !== ',' && next !== '\n' && next !== '\r') {
        throw new Error(`CSV line ${line}: unexpected text after a closing quote.`);
      }
    } else if (c === ',') {
      endField();
      i++;
    } else if (c === '\r' || c === '\n') {
      endField();
      endRow();
      i += c === '\r' && text[i + 1] === '\n' ? 2 : 1;
      line++;
    } else {
      field += c;
      atFieldStart = false;
      i++;
    }
  }
  if (!atFieldStart || row.length > 0) {
    endField();
    endRow();
  }
  return rows;
}

export interface ManifestEntry {
  /** Path as written in the manifest. */
  file: string;
  /** Path resolved against the manifest's folder. */
  path: string;
  /** Empty = unlabelled. */
  identity: string;
}

/** Reads the header (columns `file` and `identity`, any order, others ignored) and the rows. */
export function parseManifest(text: string, manifestDir: string): ManifestEntry[] {
  const [header, ...rows] = parseCsv(text);
  if (!header) throw new Error('The manifest is empty.');
  const names = header.map((h) => h.trim().toLowerCase());
  const fileCol = names.indexOf('file');
  const idCol = names.indexOf('identity');
  if (fileCol < 0 || idCol < 0) throw new Error('The manifest header must have the columns "file" and "identity".');
  const entries: ManifestEntry[] = [];
  rows.forEach((r, k) => {
    const file = (r[fileCol] ?? '').trim();
    if (file === '') throw new Error(`Manifest row ${k + 2}: the file column is empty.`);
    entries.push({ file, path: path.resolve(manifestDir, file), identity: (r[idCol] ?? '').trim() });
  });
  return entries;
}

/** Runs `fn` over `items` with at most `limit` calls in flight; results keep the input order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>) {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const k = next++;
      results[k] = await fn(items[k], k);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

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

export const evalCommand: Command = {
  name: 'eval',
  summary: 'Measure verification accuracy (EER, TAR@FAR, d\') on a labelled set of face photos.',
  usage: `faceid eval --manifest CSV [--json] [--concurrency N]

The manifest is a CSV with a header holding the columns "file" (relative to the CSV's folder) and "identity"
(other columns are ignored; an empty identity = unlabelled, skipped). Each labelled image gives one template:
the embedding of its primary face. Images with no face found count as failures to detect (ftd) and give no
template. Every pair of templates is compared by cosine similarity: same identity = genuine, different =
impostor.

Figures (a pair is accepted when score >= threshold):
  eer        where FAR and FRR cross, found by sweeping every distinct score as a threshold and
             interpolating linearly between the two operating points where FAR - FRR changes sign.
  tar@far    TAR at the smallest threshold whose FAR <= target (just above the (floor(target*n)+1)-th highest
             impostor score). With fewer than 1/target impostor pairs the target cannot be resolved: the
             threshold then only sits above the highest impostor score (a warning says so).
  dprime     (mean_gen - mean_imp) / sqrt((sd_gen^2 + sd_imp^2) / 2), population SDs.

Options:
  --manifest CSV     The labelled set (required).
  --json             Print one JSON object instead of a table.
  --concurrency N    Images analysed at once, 1-64. Default: the number of cores.
  -h, --help         Show this help.
`,
  options: {
    manifest: { type: 'string' },
    json: { type: 'boolean' },
    concurrency: { type: 'string' },
  },
  allowPositionals: false,
  run: runEval,
};

async function runEval(values: OptionValues, _positionals: string[], io: CommandIo): Promise<number> {
  const manifestPath = values.manifest as string | undefined;
  if (!manifestPath) return io.usageError('--manifest CSV is required.');
  const cores = os.availableParallelism();
  let concurrency = cores;
  if (values.concurrency !== undefined) {
    const n = parseIntInRange(values.concurrency as string, 1, 64);
    if (n === undefined) return io.usageError('--concurrency must be a whole number from 1 to 64.');
    concurrency = n;
  }

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

  if (values.json) {
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

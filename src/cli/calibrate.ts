import { z } from 'zod';
import { assessClinic, type ClinicAssessment, type WorkstationAssessment } from '../calibration/assess';
import { addDays, byWorkstation, dayOf, DEFAULT_RULES, type CalibrationRules } from '../calibration/report';
import { loadConfig } from '../config';
import type { Clinic } from '../storage/ports';
import { CLI_ACTOR, IdOption, JsonFlag, parseOptions, table, withAdminStorage } from './admin';
import { parseIntInRange } from './analyze';
import type { Command, CommandIo, OptionValues } from './main';

const DEFAULT_DAYS = 30;
const MAX_DAYS = 366;
const r = DEFAULT_RULES;
const pct = (x: number) => `${Math.round(x * 1000) / 10}%`;

export const calibrateCommand: Command = {
  name: 'calibrate',
  summary: 'Score distributions per workstation, a suggested match threshold, desks that drift (admin).',
  usage: `faceid calibrate [--clinic ID] [--days N] [--json]

Reads the field calibration histograms of the last N UTC days (counts per workstation and day: match scores in
0.01 bins, liveness, the quality of the frames used, failures by cause; never an image, a patient, a session or
one verdict's score) and prints per workstation the match scores (median, p10, p2, p1, each within one 0.01
bin), the no_match verdicts and near misses (near), face verdicts that failed in the dark or without a face (dark),
the medians of its frames' face size (px), brightness and sharpness (coarse: from their bins), and its flags; then a
suggested MATCH_THRESHOLD for the clinic.

The threshold rule. Field scores have no ground truth: nobody checked who stood at the desk. A match is taken as
genuine, and a no_match scoring at most ${r.nearMissMargin} below MATCH_THRESHOLD (or above it: one of its frames fell below)
as a near miss, a likely genuine patient refused. A false accept, or an impostor scoring close to the threshold,
is counted wrongly, and field data cannot measure false accepts at all. So: keep MATCH_THRESHOLD unless near
misses are more than ${pct(r.maxRefusedShare)} of matches + near misses (with at least ${r.minLikelyGenuine} of those); then suggest the score below
which only ${pct(r.maxRefusedShare)} of them fall (the lower tail: p${Math.round(r.maxRefusedShare * 100)} of matches and near misses together), rounded down
to 0.01 and never below ${r.labFloor}, the lab threshold at FAR 1e-3 of \`faceid eval\` on the reference face set (0.3778,
README "Accuracy"). It never suggests a higher threshold. Before lowering it, run \`faceid eval\` on the clinic's
own consented captures.

Flags. score_drift: the workstation's median match score of the last ${r.recentDays} days is more than ${r.driftMargin} below its own
median of the days before them, or more than ${r.driftMargin} below the median of the clinic's other workstations over the
window, each side with at least ${r.minDriftVerdicts} match verdicts (a dirty lens, a failing webcam, changed light at that desk).
dark_or_no_face: more than ${pct(r.darkShare)} of its face verdicts (at least ${r.minFaceVerdicts}) timed out with most frames too dark or
without a face.
Works on the service's database and settings: the same FACEID_DATA_DIR / DATABASE_URL and MATCH_THRESHOLD.
Recorded in the audit trail (actor "cli").

Options:
  --clinic ID   Only this clinic. Default: every clinic.
  --days N      The window: the last N UTC days, today included (1-${MAX_DAYS}). Default ${DEFAULT_DAYS}.
  --json        One JSON object: per clinic its figures, the suggestion, and per workstation figures and flags.
  -h, --help    Show this help.
`,
  options: { clinic: { type: 'string' }, days: { type: 'string' }, json: { type: 'boolean' } },
  allowPositionals: false,
  run: runCalibrate,
};

async function runCalibrate(values: OptionValues, _positionals: string[], io: CommandIo): Promise<number> {
  const opts = parseOptions(
    z.object({ clinic: IdOption.optional(), days: z.string().optional(), json: JsonFlag }),
    values,
    io,
  );
  if (typeof opts === 'number') return opts;
  const days = opts.days === undefined ? DEFAULT_DAYS : parseIntInRange(opts.days, 1, MAX_DAYS);
  if (days === undefined) return io.usageError(`--days must be a whole number from 1 to ${MAX_DAYS}.`);
  const threshold = loadConfig(io.env).MATCH_THRESHOLD;
  const rules = DEFAULT_RULES;
  const now = new Date();
  const toDay = dayOf(now);
  const fromDay = addDays(toDay, -(days - 1));
  const recentFrom = days > rules.recentDays ? addDays(toDay, -(rules.recentDays - 1)) : fromDay;

  return withAdminStorage(io, async ({ storage, audit }) => {
    const repos = storage.repos;
    let clinics: Clinic[];
    if (opts.clinic) {
      const clinic = await repos.clinics.get(opts.clinic);
      if (!clinic) {
        io.err(`faceid calibrate: no clinic ${opts.clinic}.\n`);
        return 1;
      }
      clinics = [clinic];
    } else {
      clinics = await repos.clinics.list();
    }
    const reports: Array<{ clinic: Clinic; assessment: ClinicAssessment }> = [];
    for (const clinic of clinics) {
      // Three sums in the database: the window, its recent days, and the days before them.
      const window = byWorkstation(await repos.calibration.totals(clinic.id, { fromDay, toDay }));
      const recent = byWorkstation(await repos.calibration.totals(clinic.id, { fromDay: recentFrom, toDay }));
      const earlier =
        recentFrom > fromDay
          ? byWorkstation(await repos.calibration.totals(clinic.id, { fromDay, toDay: addDays(recentFrom, -1) }))
          : new Map();
      const names = new Map((await repos.keys.list('workstation', clinic.id, now)).map((w) => [w.id, w.name]));
      reports.push({ clinic, assessment: assessClinic({ window, recent, earlier }, names, threshold, rules) });
    }
    await audit.record(CLI_ACTOR, 'calibration.read', {
      clinicId: opts.clinic ?? null,
      detail: { clinics: clinics.length, days },
    });
    const header = { from: fromDay, to: toDay, days, recentFrom, matchThreshold: threshold };
    if (opts.json) {
      io.out(
        JSON.stringify({
          ...header,
          rules,
          clinics: reports.map(({ clinic, assessment }) => ({ clinicId: clinic.id, name: clinic.name, ...assessment })),
        }),
      );
    } else {
      if (reports.length === 0) io.out('No clinics.');
      for (const [i, { clinic, assessment }] of reports.entries()) {
        if (i > 0) io.out('');
        for (const line of formatClinic(clinic, assessment, header, rules)) io.out(line);
      }
    }
    return 0;
  });
}

const num = (x: number | null) => (x === null ? '-' : x.toFixed(3));

function workstationLabel(w: Pick<WorkstationAssessment, 'workstationId' | 'name'>): string {
  return `${w.name ?? 'workstation'} (${w.workstationId.slice(0, 8)})`;
}

/** The text report of one clinic. */
export function formatClinic(
  clinic: Pick<Clinic, 'id' | 'name'>,
  a: ClinicAssessment,
  header: { from: string; to: string; days: number; recentFrom: string; matchThreshold: number },
  rules: CalibrationRules = DEFAULT_RULES,
): string[] {
  const lines = [
    `Clinic "${clinic.name}" (${clinic.id}): UTC days ${header.from}..${header.to} (${header.days}), ` +
      `recent from ${header.recentFrom}; MATCH_THRESHOLD ${header.matchThreshold}`,
    '',
  ];
  const row = (label: string, f: ClinicAssessment['figures'], recent: string, flags: string) => [
    label,
    String(f.verdicts.face),
    String(f.genuine.count),
    num(f.genuine.median),
    num(f.genuine.p10),
    num(f.genuine.p2),
    num(f.genuine.p1),
    String(f.noMatch.count),
    String(f.noMatch.nearMisses),
    `${f.darkFailures}/${f.verdicts.face}`,
    [f.quality.faceSize, f.quality.brightness, f.quality.sharpness]
      .map((x) => (x === null ? '-' : String(Math.round(x))))
      .join('/'),
    recent,
    flags,
  ];
  const rows = a.workstations.map((w) =>
    row(
      workstationLabel(w),
      w.figures,
      `${num(w.drift.recent.median)} (${w.drift.recent.count})`,
      w.flags.length ? w.flags.join(',') : '-',
    ),
  );
  rows.push(row('(clinic)', a.figures, '', ''));
  lines.push(
    ...table(
      [
        'workstation',
        'face',
        'match',
        'median',
        'p10',
        'p2',
        'p1',
        'no_match',
        'near',
        'dark',
        'px/bright/sharp',
        'recent median (n)',
        'flags',
      ],
      rows,
    ),
  );
  lines.push('');
  const t = a.threshold;
  const tally =
    `${t.likelyGenuine} likely genuine verdicts (matches + near misses), ${t.nearMisses} near misses` +
    (t.refusedShare === null ? '' : ` (${pct(t.refusedShare)} refused)`);
  const why = {
    too_few: `too few to judge (the rule needs ${rules.minLikelyGenuine})`,
    within_target: `within the ${pct(rules.maxRefusedShare)} the rule accepts`,
    lowered: `more than ${pct(rules.maxRefusedShare)} refused: the p${Math.round(rules.maxRefusedShare * 100)} of their scores`,
    at_floor: `more than ${pct(rules.maxRefusedShare)} refused, but no lower than the lab floor ${rules.labFloor}`,
    not_below_threshold:
      'the refused ones score at or above the threshold (one of their frames fell below): not a threshold matter',
  }[t.why];
  lines.push(
    t.action === 'keep'
      ? `Threshold: keep ${t.current}: ${tally}; ${why}.`
      : `Threshold: suggest ${t.suggested} (now ${t.current}): ${tally}; ${why}.`,
  );
  const flagged = a.workstations.filter((w) => w.flags.length);
  if (flagged.length === 0) lines.push('Flags: none.');
  for (const w of flagged) {
    const parts: string[] = [];
    if (w.drift.flagged) {
      const against = w.drift.reasons
        .map((x) =>
          x === 'below_own_earlier'
            ? `its earlier ${num(w.drift.earlier.median)} (${w.drift.earlier.count})`
            : `the other desks' ${num(w.drift.clinic.median)} (${w.drift.clinic.count})`,
        )
        .join(' and ');
      parts.push(
        `score_drift: recent median ${num(w.drift.recent.median)} (${w.drift.recent.count} matches) vs ${against}: check the lens, the webcam and the light`,
      );
    }
    if (w.dark.flagged) {
      parts.push(
        `dark_or_no_face: ${w.dark.darkFailures} of ${w.dark.faceVerdicts} face verdicts (${pct(w.dark.share!)}) timed out too dark or without a face`,
      );
    }
    lines.push(`Flag ${workstationLabel(w)}: ${parts.join('; ')}.`);
  }
  lines.push(
    'Field scores have no ground truth: matches are taken as genuine; check a lower threshold with `faceid eval` first.',
  );
  return lines;
}

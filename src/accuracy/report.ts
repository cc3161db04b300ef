/**
 * The figures of `faceid eval --gallery/--probes` and `--conditions`, flat and rounded, so that two runs (before and
 * after an engine change) compare key by key; and the condition table as markdown (CLI, README, benchmark report).
 */
import { poolScores, probeReport, wilsonInterval, type ProbeReport } from '../cli/metrics';
import { quantile } from '../stats/quantile';
import type { ConditionName } from './conditions';
import type { ProbeRun } from './evaluate';

/** Rounded to 6 decimals; null where undefined (no scores). */
const r6 = (x: number): number | null => (Number.isFinite(x) ? Math.round(x * 1e6) / 1e6 : null);
const ci = (lo: number, hi: number): [number | null, number | null] => [r6(lo), r6(hi)];

/** Figures of a set of probes against the gallery at one threshold. Rates are fractions (0.0123 = 1.23%). */
export interface AccuracyFigures {
  /** Probe images. */
  probes: number;
  /** Probes with no face found (errors included). */
  ftd: number;
  /** Probes whose identity has no template (impostor scores only). */
  unenrolled: number;
  /** Genuine and impostor comparisons (probes with a face x gallery identities). */
  genuine: number;
  impostor: number;
  /** Genuine comparisons below the threshold / genuine comparisons, with the 95% Wilson interval. */
  frr: number | null;
  frr_ci: [number | null, number | null];
  /** (False rejects + enrolled probes without a face) / enrolled probes: what a desk session would fail. */
  frr_with_ftd: number | null;
  /** Impostor comparisons at or above the threshold / impostor comparisons, with the 95% Wilson interval. */
  far: number | null;
  far_ci: [number | null, number | null];
  eer: number | null;
  threshold_at_eer: number | null;
  'tar_at_far_1e-2': number | null;
  'tar_at_far_1e-2_ci': [number | null, number | null];
  'tar_at_far_1e-3': number | null;
  'tar_at_far_1e-3_ci': [number | null, number | null];
  /** The lowest threshold with FAR <= 1e-3 on these scores (the recommended threshold). */
  'threshold_at_far_1e-3': number | null;
  /** False below 1,000 impostor comparisons: the 1e-3 figures then only sit above the highest impostor score. */
  'far_1e-3_resolved': boolean;
  dprime: number | null;
  genuine_mean: number | null;
  genuine_sd: number | null;
  /** The 5th percentile of the genuine scores (src/stats/quantile.ts): the weak end the threshold meets first. */
  genuine_p05: number | null;
  impostor_mean: number | null;
  impostor_sd: number | null;
}

export function accuracyFigures(
  run: ProbeRun,
  threshold: number,
  seed: number,
): { figures: AccuracyFigures; report: ProbeReport } {
  const report = probeReport(run.scores, threshold, { seed });
  const v = report.verification;
  const attempts = report.frr.n + run.ftdGenuine;
  const withFtd = wilsonInterval(report.frr.count + run.ftdGenuine, attempts);
  const genuineAsc = poolScores(run.scores).genuine.sort((a, b) => a - b);
  return {
    report,
    figures: {
      probes: run.images,
      ftd: run.ftd,
      unenrolled: run.unenrolled,
      genuine: v.genuine,
      impostor: v.impostor,
      frr: r6(report.frr.rate),
      frr_ci: ci(report.frr.lo, report.frr.hi),
      frr_with_ftd: r6(withFtd.rate),
      far: r6(report.far.rate),
      far_ci: ci(report.far.lo, report.far.hi),
      eer: r6(v.eer),
      threshold_at_eer: r6(v.thresholdAtEer),
      'tar_at_far_1e-2': r6(report.far1e2.tar),
      'tar_at_far_1e-2_ci': ci(report.far1e2.ci.lo, report.far1e2.ci.hi),
      'tar_at_far_1e-3': r6(report.far1e3.tar),
      'tar_at_far_1e-3_ci': ci(report.far1e3.ci.lo, report.far1e3.ci.hi),
      'threshold_at_far_1e-3': r6(report.far1e3.threshold),
      'far_1e-3_resolved': report.far1e3.resolved,
      dprime: r6(v.dprime),
      genuine_mean: r6(v.genuineMean),
      genuine_sd: r6(v.genuineSd),
      genuine_p05: r6(quantile(genuineAsc, 0.05) ?? NaN),
      impostor_mean: r6(v.impostorMean),
      impostor_sd: r6(v.impostorSd),
    },
  };
}

export interface ConditionRow extends AccuracyFigures {
  condition: ConditionName;
}

/** The `--conditions` JSON: one object, keys in a fixed order, so two runs diff line by line once pretty-printed. */
export interface ConditionsReport {
  mode: 'conditions';
  threshold: number;
  /** Where the threshold came from: MATCH_THRESHOLD (the service's setting) or --threshold. */
  threshold_source: 'MATCH_THRESHOLD' | '--threshold';
  seed: number;
  images: number;
  identities: number;
  gallery: { images: number; ftd: number; enrolled: number };
  /** Probe images (each rendered under every condition). */
  probes: number;
  /** Probes whose original photo showed no face (framed on a guessed box). */
  unframed: number;
  conditions: ConditionRow[];
}

const pct = (x: number | null, d: number): string => (x === null ? 'n/a' : `${(x * 100).toFixed(d)}%`);
const pctRange = (c: [number | null, number | null], d: number): string =>
  c[0] === null || c[1] === null ? 'n/a' : `${(c[0] * 100).toFixed(d)}-${(c[1] * 100).toFixed(d)}`;
const fixed = (x: number | null, d: number): string => (x === null ? 'n/a' : x.toFixed(d));

/** The condition table as markdown, one row per condition (what the CLI prints and the README records). */
export function conditionTable(report: Pick<ConditionsReport, 'threshold' | 'conditions'>): string {
  const t = report.threshold.toFixed(2);
  const head = [
    'condition',
    'probes',
    'FTD',
    `FRR @${t} (95% CI)`,
    'FRR+FTD',
    `FAR @${t} (95% CI)`,
    'EER',
    'TAR @FAR 1e-3 (95% CI)',
    "d'",
    'genuine mean',
  ];
  const rows = report.conditions.map((c) => [
    c.condition,
    String(c.probes),
    String(c.ftd),
    `${pct(c.frr, 1)} (${pctRange(c.frr_ci, 1)})`,
    pct(c.frr_with_ftd, 1),
    `${pct(c.far, 2)} (${pctRange(c.far_ci, 2)})`,
    pct(c.eer, 2),
    `${pct(c['tar_at_far_1e-3'], 1)} (${pctRange(c['tar_at_far_1e-3_ci'], 1)})${c['far_1e-3_resolved'] ? '' : ' *'}`,
    fixed(c.dprime, 2),
    fixed(c.genuine_mean, 3),
  ]);
  const widths = head.map((h, k) => Math.max(h.length, ...rows.map((r) => r[k].length)));
  const line = (cells: string[]) =>
    `| ${cells.map((c, k) => (k === 0 ? c.padEnd(widths[k]) : c.padStart(widths[k]))).join(' | ')} |`;
  const rule = `|${widths.map((w, k) => (k === 0 ? `${'-'.repeat(w + 1)}-` : `${'-'.repeat(w + 1)}:`)).join('|')}|`;
  const out = [line(head), rule, ...rows.map(line)];
  if (report.conditions.some((c) => !c['far_1e-3_resolved'])) {
    out.push(
      '',
      '* fewer than 1,000 impostor comparisons: FAR 1e-3 is not resolved (the threshold sits above the highest impostor score).',
    );
  }
  return out.join('\n');
}

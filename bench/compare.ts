/**
 * Compares a benchmark run with the saved baseline and flags the changes that exceed the run-to-run noise both
 * runs measured: `npm run bench:compare [-- [RUN.json] [BASELINE.json] [--strict]]`.
 */
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { BASELINE, latestRun, readRun, RESULTS_DIR } from './lib/results';
import type { BenchRun, Measurement } from './lib/types';

/** Used when a figure was measured once (no noise estimate), and as the least threshold for any figure. */
export const SINGLE_SHOT_THRESHOLD = 0.1;
export const MIN_THRESHOLD = 0.02;

export type Verdict = 'better' | 'worse' | 'within noise';

export interface Comparison {
  id: string;
  label: string;
  unit: string;
  baseline: number;
  run: number;
  /** (run - baseline) / |baseline|. */
  change: number;
  /** The relative change a figure must exceed to count. */
  threshold: number;
  noiseMeasured: boolean;
  verdict: Verdict;
}

/**
 * A figure changed when |change| exceeds the larger of the two runs' noise, i.e. their relative range over the
 * repetitions, (max - min) / median. With 3 repetitions the range is a wide, conservative spread estimate.
 */
export function compareMeasurements(run: Measurement[], baseline: Measurement[]): Comparison[] {
  const base = new Map(baseline.map((m) => [m.id, m]));
  const out: Comparison[] = [];
  for (const m of run) {
    const b = base.get(m.id);
    if (!b || !Number.isFinite(m.value.value) || !Number.isFinite(b.value.value) || b.value.value === 0) continue;
    const noiseMeasured = m.value.reps.length > 1 && b.value.reps.length > 1;
    const threshold = noiseMeasured
      ? Math.max(MIN_THRESHOLD, finite(m.value.noise), finite(b.value.noise))
      : SINGLE_SHOT_THRESHOLD;
    const change = (m.value.value - b.value.value) / Math.abs(b.value.value);
    let verdict: Verdict = 'within noise';
    if (Math.abs(change) > threshold) verdict = change > 0 === (m.better === 'higher') ? 'better' : 'worse';
    out.push({
      id: m.id,
      label: m.label,
      unit: m.unit,
      baseline: b.value.value,
      run: m.value.value,
      change,
      threshold,
      noiseMeasured,
      verdict,
    });
  }
  return out;
}

function finite(x: number): number {
  return Number.isFinite(x) ? x : 0;
}

/** Differences in how the two runs were made that make the comparison weaker. */
export function caveats(run: BenchRun, baseline: BenchRun): string[] {
  const out: string[] = [];
  if (run.mode !== baseline.mode)
    out.push(`the suites differ (${run.mode} vs ${baseline.mode}): durations and load points differ`);
  if (run.machine.cpu !== baseline.machine.cpu || run.machine.cores !== baseline.machine.cores) {
    out.push(
      `the machines differ (${run.machine.cpu} x ${run.machine.cores} vs ${baseline.machine.cpu} x ${baseline.machine.cores})`,
    );
  }
  const l1 = (r: BenchRun) => Math.max(r.load.start[0] ?? 0, r.load.end[0] ?? 0);
  if (Math.abs(l1(run) - l1(baseline)) > 1) {
    out.push(
      `the machine was busier in one run (1-min load up to ${l1(run).toFixed(2)} vs ${l1(baseline).toFixed(2)})`,
    );
  }
  for (const [name, r] of [
    ['this run', run],
    ['the baseline', baseline],
  ] as const) {
    const worst = busiestOtherCpu(r);
    if (worst > 50) out.push(`other processes took up to ${worst.toFixed(0)}% of a core during ${name}'s measurements`);
  }
  return out;
}

/** The largest median CPU % other processes took during any measurement of a run. */
function busiestOtherCpu(r: BenchRun): number {
  const values = [
    r.engine?.otherCpuPercent?.value,
    ...r.http.map((h) => h.otherCpuPercent?.value),
    ...r.ws.map((w) => w.server.otherCpuPercent?.value),
  ].filter((x): x is number => typeof x === 'number' && Number.isFinite(x));
  return values.length ? Math.max(...values) : 0;
}

function pct(x: number): string {
  return `${x >= 0 ? '+' : ''}${(x * 100).toFixed(1)}%`;
}

export function renderComparison(
  runFile: string,
  baseFile: string,
  run: BenchRun,
  baseline: BenchRun,
  rows: Comparison[],
): string {
  const lines: string[] = [];
  lines.push(
    `# ${path.basename(runFile)} (commit ${run.commit}) against ${path.basename(baseFile)} (commit ${baseline.commit})`,
    '',
  );
  for (const c of caveats(run, baseline)) lines.push(`- Caveat: ${c}.`);
  if (lines[lines.length - 1] !== '') lines.push('');
  lines.push('| measure | baseline | this run | change | threshold | verdict |', '|---|---:|---:|---:|---:|---|');
  for (const r of rows) {
    const mark = r.verdict === 'worse' ? '**worse**' : r.verdict;
    lines.push(
      `| ${r.label} (${r.unit}) | ${r.baseline} | ${r.run} | ${pct(r.change)} | ${(r.threshold * 100).toFixed(0)}%${r.noiseMeasured ? '' : ' (single shot)'} | ${mark} |`,
    );
  }
  const worse = rows.filter((r) => r.verdict === 'worse').length;
  const better = rows.filter((r) => r.verdict === 'better').length;
  lines.push(
    '',
    `${rows.length} figures compared: ${worse} worse, ${better} better, ${rows.length - worse - better} within noise. ` +
      'Threshold = the larger run-to-run noise of the two runs, (max - min) / median over their repetitions ' +
      `(at least ${MIN_THRESHOLD * 100}%; ${SINGLE_SHOT_THRESHOLD * 100}% for figures measured once).`,
  );
  return `${lines.join('\n')}\n`;
}

const USAGE = `Usage: npm run bench:compare [-- [RUN.json] [BASELINE.json] [--strict]]
  RUN.json       Default: the newest result in bench/results (other than baseline.json).
  BASELINE.json  Default: bench/results/baseline.json.
  --strict       Exit 1 when a figure is worse beyond the noise (default: report only, exit 0).
`;

function main(): number {
  const { values, positionals } = parseArgs({
    options: { strict: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    allowPositionals: true,
  });
  if (values.help || positionals.length > 2) {
    (values.help ? process.stdout : process.stderr).write(USAGE);
    return values.help ? 0 : 2;
  }
  const runFile = positionals[0] ?? latestRun(RESULTS_DIR);
  const baseFile = positionals[1] ?? BASELINE;
  if (!runFile) {
    process.stderr.write('No benchmark result found in bench/results: run `npm run bench` first.\n');
    return 2;
  }
  const run = readRun(runFile);
  const baseline = readRun(baseFile);
  const rows = compareMeasurements(run.measurements, baseline.measurements);
  process.stdout.write(renderComparison(runFile, baseFile, run, baseline, rows));
  return values.strict && rows.some((r) => r.verdict === 'worse') ? 1 : 0;
}

if (require.main === module) {
  try {
    process.exit(main());
  } catch (err) {
    process.stderr.write(`bench:compare: ${(err as Error).message}\n`);
    process.exit(2);
  }
}

import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { renderMarkdown } from './report';
import type { BenchRun } from './types';

export const RESULTS_DIR = path.resolve(__dirname, '..', 'results');
export const BASELINE = path.join(RESULTS_DIR, 'baseline.json');

/** The short commit and whether the working tree differs from it ("nogit" outside a repository). */
export function commitInfo(cwd: string): { commit: string; dirty: boolean } {
  try {
    const commit = execFileSync('git', ['rev-parse', '--short=10', 'HEAD'], {
      cwd,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
    const status = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], {
      cwd,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    return { commit, dirty: status.trim() !== '' };
  } catch {
    return { commit: 'nogit', dirty: false };
  }
}

/** Writes <dir>/<date>-<commit>.json and .md (a -2, -3 ... suffix when that name is taken); returns both paths. */
export function writeRun(run: BenchRun, dir: string): { json: string; md: string } {
  fs.mkdirSync(dir, { recursive: true });
  const stem = `${run.startedAt.slice(0, 10)}-${run.commit}`;
  let name = stem;
  for (let i = 2; fs.existsSync(path.join(dir, `${name}.json`)); i++) name = `${stem}-${i}`;
  const json = path.join(dir, `${name}.json`);
  const md = path.join(dir, `${name}.md`);
  fs.writeFileSync(json, `${JSON.stringify(run, null, 2)}\n`);
  fs.writeFileSync(md, renderMarkdown(run));
  return { json, md };
}

export function readRun(file: string): BenchRun {
  const run = JSON.parse(fs.readFileSync(file, 'utf8')) as BenchRun;
  if (run.schema !== 1 || !Array.isArray(run.measurements))
    throw new Error(`${file} is not a benchmark result (schema 1).`);
  return run;
}

/** The newest result file in `dir` other than the baseline, or null. */
export function latestRun(dir: string): string | null {
  if (!fs.existsSync(dir)) return null;
  const files = fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.json') && f !== path.basename(BASELINE))
    .map((f) => path.join(dir, f))
    .sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs);
  return files[0] ?? null;
}

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseConditions } from '../../src/accuracy/conditions';
import { conditionTableRun } from '../../src/accuracy/evaluate';
import { parseManifest } from '../../src/accuracy/manifest';
import { loadConfig } from '../../src/config/config';
import { FaceEngine } from '../../src/engine';
import type { AccuracyResult, Suite } from './types';

/**
 * The accuracy phase: `faceid eval --manifest CSV --conditions ...` (the same code) on a labelled face set named by
 * `--faces CSV` or FACEID_FACES_MANIFEST, at the service's MATCH_THRESHOLD from this environment. Its figures depend on
 * the engine and the seed, not on the machine's speed. Run alone, after the timed phases: it keeps every core busy.
 */
export async function runAccuracy(
  suite: Suite['accuracy'],
  manifest: { path: string; source: NonNullable<AccuracyResult['source']> } | null,
  progress: (line: string) => void,
): Promise<AccuracyResult> {
  if (!suite) return { skipped: 'not in the smoke suite' };
  if (!manifest) {
    return { skipped: 'no face manifest given (--faces CSV or FACEID_FACES_MANIFEST, a file,identity CSV)' };
  }
  const { source } = manifest;
  if (!fs.existsSync(manifest.path)) return { source, skipped: `the face manifest named by ${source} does not exist` };
  const started = performance.now();
  const cores = os.availableParallelism();
  const engine = await FaceEngine.open({ workers: cores, queueSize: cores * 4 });
  try {
    const entries = parseManifest(fs.readFileSync(manifest.path, 'utf8'), path.dirname(path.resolve(manifest.path)));
    const labelled = entries.filter((e) => e.identity !== '');
    if (labelled.length === 0) return { source, skipped: 'the face manifest has no labelled image' };
    let last = 0;
    const { report, errors } = await conditionTableRun(engine, labelled, parseConditions(suite.conditions.join(',')), {
      seed: suite.seed,
      threshold: loadConfig(process.env).MATCH_THRESHOLD,
      thresholdSource: 'MATCH_THRESHOLD',
      concurrency: cores,
      probing: (done, total) => {
        // A line every tenth of the probes: the phase takes about a minute.
        if (done === total || done - last >= Math.max(1, Math.round(total / 10))) {
          last = done;
          progress(`  accuracy: probe ${done}/${total}`);
        }
      },
      onError: (file, code) => progress(`  accuracy: ${file}: ${code}`),
    });
    if (errors > 0) progress(`  accuracy: ${errors} image(s) could not be analysed (counted as failures to detect)`);
    return { source, report, seconds: Math.round((performance.now() - started) / 100) / 10 };
  } catch (err) {
    return { source, skipped: `failed: ${(err as Error).message.split('\n')[0]}` };
  } finally {
    await engine.close();
  }
}

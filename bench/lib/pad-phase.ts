import * as fs from 'node:fs';
import * as path from 'node:path';
import { padEval } from '../../src/cli/pad-eval';
import { MODEL_KINDS, type ModelKind } from '../../src/liveness/pad/render';
import type { PadResult, Suite } from './types';

/**
 * The labelled face set beside the project (`../shared/faces`, or FACEID_FACES_DIR), as `faceid pad-eval` and the
 * tests find it; null without it. Its photos are one frontal-ish face each, as at a desk; the fixture photos are
 * group shots whose faces are mostly turned away (a turn challenge never begins on them) or crowded.
 */
function faceSetManifest(): string | null {
  const dir = process.env.FACEID_FACES_DIR ?? path.resolve(__dirname, '..', '..', '..', 'shared', 'faces');
  const manifest = path.join(dir, 'manifest.csv');
  return fs.existsSync(manifest) ? manifest : null;
}

/**
 * The presentation-attack benchmark: `faceid pad-eval`, every attack class, through the real session runner and engine
 * on a virtual clock. Its rates and its time to verdict do not depend on the machine's speed; its engine time per
 * verdict does. Run once, after the timed phases: it keeps both cores busy. Only as many people are loaded as there
 * are sessions per class (each class's sessions take the people in turn).
 */
export async function runPad(pad: Suite['pad'], progress: (line: string) => void): Promise<PadResult> {
  const manifest = faceSetManifest();
  const photoSet = manifest ? 'the labelled face set' : 'the fixture photos';
  try {
    const report = await padEval({
      manifest: manifest ?? undefined,
      attempts: pad.attempts,
      fps: pad.fps,
      configs: pad.configs,
      classes: MODEL_KINDS.filter((k): k is Exclude<ModelKind, 'genuine'> => k !== 'genuine'),
      maxPhotos: pad.attempts,
      progress: (text) => {
        for (const line of text.split('\n')) if (line.trim()) progress(`  ${line.trim()}`);
      },
      tty: false,
    });
    return report ? { photoSet, report } : { photoSet, skipped: `no usable photo in ${photoSet}` };
  } catch (err) {
    return { photoSet, skipped: `failed: ${(err as Error).message.split('\n')[0]}` };
  }
}

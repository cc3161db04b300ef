import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseManifest, type ManifestEntry } from '../../src/cli/eval';

/**
 * The labelled face set that sits beside the project in CI (`../shared/faces`, or FACEID_FACES_DIR). A clone of the
 * project does not have it: tests that need it skip, saying so.
 */
export function sharedFacesDir(): string {
  return process.env.FACEID_FACES_DIR ?? path.resolve(__dirname, '..', '..', '..', 'shared', 'faces');
}

export function sharedFacesMissing(): string | null {
  const manifest = path.join(sharedFacesDir(), 'manifest.csv');
  return fs.existsSync(manifest)
    ? null
    : `the labelled face set is absent (${manifest}); set FACEID_FACES_DIR to use it`;
}

/** The labelled entries (identity set), in manifest order. */
export function sharedFaces(): ManifestEntry[] {
  const dir = sharedFacesDir();
  return parseManifest(fs.readFileSync(path.join(dir, 'manifest.csv'), 'utf8'), dir).filter(
    (e) => e.identity && !e.identity.startsWith('_'),
  );
}

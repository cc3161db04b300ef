import * as fs from 'node:fs';
import * as path from 'node:path';
import { defaultModelDir, readManifest } from '../../src/engine/models';
import type { ModelPaths } from '../../src/engine/types';
import { missingFixturesReason } from './frames';
import type { ScanSummary } from './zeroing-run';

const ROOT = path.resolve(__dirname, '..', '..');
export const ADDON = process.env.FACEID_ADDON ?? path.join(ROOT, 'native', 'build', 'Release', 'faceid.node');
const PIPELINE_MODELS: (keyof ModelPaths)[] = ['detect', 'landmark', 'feature', 'liveness', 'eye'];

/** Why a test on the real engine cannot run here (photos, addon or models missing), or null. */
export function missingAssets(): string | null {
  const fixtures = missingFixturesReason();
  if (fixtures) return fixtures;
  if (!fs.existsSync(ADDON)) return `The native addon is not built (${ADDON}): run \`npm run build:native\`.`;
  const dir = defaultModelDir();
  const entries = readManifest().models.filter((e) => (PIPELINE_MODELS as string[]).includes(e.name));
  const missing = entries.filter((e) => !fs.existsSync(path.join(dir, e.file))).map((e) => e.file);
  if (missing.length) return `Models missing from ${dir} (${missing.join(', ')}): run \`npm run models\`.`;
  return null;
}

/**
 * `describe` for a memory-scan proof: skipped under AddressSanitizer (the scan would walk terabytes of shadow
 * mappings; the normal run covers the proof), skipped with the reason locally when an asset is missing, and run in
 * CI (which fetches and builds everything) so that a missing asset fails there.
 */
export function describeZeroing(label: string): jest.Describe {
  const reason = missingAssets();
  const underAsan = Boolean(process.env.FACEID_ASAN);
  if (underAsan) console.warn(`${label}: skipped under AddressSanitizer (see npm test).`);
  else if (reason) console.warn(`${label}: ${reason}`);
  return underAsan || (reason && !process.env.CI) ? describe.skip : describe;
}

/** Kinds of needle with hits, e.g. { 'jpeg-row-bgr': 3 }: {} when a zeroing scan found nothing. */
export function leaks(scan: ScanSummary): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [kind, c] of Object.entries(scan.kinds)) if (c.hits > 0) out[kind] = c.hits;
  return out;
}

/** How many needles of one kind a zeroing scan found. */
export function found(scan: ScanSummary, kind: string): number {
  return scan.kinds[kind]?.found ?? 0;
}

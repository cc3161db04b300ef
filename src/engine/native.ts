import * as path from 'node:path';
import type {
  Analysis,
  Box,
  Detector,
  FaceNormalisation,
  FrameFormat,
  LandmarkReuse,
  ModelPaths,
  EngineStats,
  Stage,
} from './types';

/**
 * What the addon's constructor reads: every option validated and filled in by FaceEngine.open (engine.ts), plain
 * data only, as sharp's JavaScript hands its options to its C++. The addon checks types only, never ranges, and has
 * no defaults of its own.
 */
export interface NativeEngineOptions {
  workers: number;
  queueSize: number;
  threadsPerJob: number;
  parallelStages: boolean;
  detectThreshold: number;
  maxPixels: number;
  trackDetector: Detector;
  faceNormalisation: FaceNormalisation;
  mirrorEmbedding: boolean;
  unsafeDisableWipe: boolean;
}

/** What the addon's analyze reads: validated and filled in by FaceEngine.analyze. */
export interface NativeAnalyzeOptions {
  format: FrameFormat;
  /** 0 for JPEG (the frame says). */
  width: number;
  height: number;
  stages: readonly Stage[];
  maxFaces: number;
  detector: Detector;
  wipeInput: boolean;
  mirrorLandmarks: boolean;
  box?: Box;
  /** Only with box. */
  reuseLandmarks?: LandmarkReuse;
}

/** The addon's surface, as built from native/src/addon.cc. */
export interface NativeEngine {
  analyze(frame: Buffer, options: NativeAnalyzeOptions): Promise<Analysis>;
  stats(): EngineStats;
  close(): Promise<void>;
}

export interface NativeModule {
  Engine: new (models: ModelPaths, options: NativeEngineOptions) => NativeEngine;
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

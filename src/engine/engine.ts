import * as os from 'node:os';
import { EngineError } from './errors';
import { resolveModels } from './models';
import { loadNative, type NativeAnalyzeOptions, type NativeEngine, type NativeEngineOptions } from './native';
import {
  DETECTORS,
  FACE_NORMALISATIONS,
  FULL_STAGES,
  TRACK_STAGES,
  type Analysis,
  type AnalyzeOptions,
  type Detector,
  type EngineOptions,
  type EngineStats,
  type FaceNormalisation,
  type FrameFormat,
  type ModelPaths,
  type Stage,
} from './types';

const FORMATS: readonly FrameFormat[] = ['jpeg', 'rgba', 'bgr', 'i420'];
const STAGES: readonly Stage[] = ['landmarks', 'embedding', 'liveness', 'eyes', 'pose', 'quality', 'light', 'anchor'];

/** The options an open engine reports (its `options`), defaults filled in. */
type OptionsInUse =
  | 'workers'
  | 'queueSize'
  | 'threadsPerJob'
  | 'trackDetector'
  | 'faceNormalisation'
  | 'mirrorEmbedding';

export interface OpenOptions extends EngineOptions {
  /** Folder holding the fetched models. Default: see models.ts (FACEID_MODEL_DIR or the per-user cache). */
  modelDir?: string;
}

/**
 * The face engine: validates options in JS, runs the pipeline on native worker threads.
 * Only numbers come back; the caller's frame buffer is zeroed once copied (wipeInput, on by default).
 */
export class FaceEngine {
  private closed = false;

  private constructor(
    private readonly native: NativeEngine,
    readonly options: Required<Pick<EngineOptions, OptionsInUse>>,
    /** The verified model files in use. */
    readonly models: ModelPaths,
  ) {}

  static async open(options: OpenOptions = {}): Promise<FaceEngine> {
    const { modelDir, ...engineOptions } = options;
    // Every option first, so that a bad one is refused as such whatever the state of the model files.
    const trackDetector = checkDetector('trackDetector', engineOptions.trackDetector ?? 'default');
    const workers = checkInt('workers', engineOptions.workers ?? os.availableParallelism(), 1, 64);
    const queueSize = checkInt('queueSize', engineOptions.queueSize ?? workers * 4, 0, 100_000);
    // Two OpenCV threads per job cut single-call latency by about a fifth and cost under a tenth of peak
    // throughput here (README, "Engine speed").
    const threadsPerJob = checkInt(
      'threadsPerJob',
      engineOptions.threadsPerJob ?? Math.min(2, os.availableParallelism()),
      1,
      64,
    );
    const faceNormalisation = engineOptions.faceNormalisation ?? 'none';
    if (!FACE_NORMALISATIONS.includes(faceNormalisation as FaceNormalisation)) {
      throw new EngineError('invalid_argument', `faceNormalisation must be one of ${FACE_NORMALISATIONS.join(', ')}.`);
    }
    const mirrorEmbedding = checkBool('mirrorEmbedding', engineOptions.mirrorEmbedding ?? false);
    const detectThreshold = engineOptions.detectThreshold ?? 0.7;
    if (typeof detectThreshold !== 'number' || !(detectThreshold > 0 && detectThreshold < 1)) {
      throw new EngineError('invalid_argument', 'detectThreshold must be a number between 0 and 1 (both excluded).');
    }
    // Every option the addon reads, checked and filled in here: it has no defaults and checks no ranges of its own.
    const chosen = { workers, queueSize, threadsPerJob, trackDetector, faceNormalisation, mirrorEmbedding };
    const nativeOptions: NativeEngineOptions = {
      ...chosen,
      parallelStages: checkBool('parallelStages', engineOptions.parallelStages ?? true),
      detectThreshold,
      maxPixels: checkInt('maxPixels', engineOptions.maxPixels ?? 4096 * 4096, 1, 65_535 * 65_535),
      unsafeDisableWipe: checkBool('unsafeDisableWipe', engineOptions.unsafeDisableWipe ?? false),
    };
    const models = await resolveModels(modelDir, trackDetector === 'blazeface' ? ['blazeface'] : []);
    const { Engine } = loadNative();
    try {
      const native = new Engine(models, nativeOptions);
      return new FaceEngine(native, chosen, models);
    } catch (err) {
      throw EngineError.from(err);
    }
  }

  /** Detect (always) plus the stages asked for. Rejects with an EngineError on bad input or overload. */
  async analyze(frame: Buffer | Uint8Array, options: AnalyzeOptions = {}): Promise<Analysis> {
    if (this.closed) throw new EngineError('engine_closed', 'The engine has been closed.');
    if (!(frame instanceof Uint8Array)) throw new EngineError('invalid_argument', 'The frame must be a Buffer.');
    const format = options.format ?? 'jpeg';
    if (!FORMATS.includes(format)) {
      throw new EngineError('invalid_argument', `format must be one of ${FORMATS.join(', ')}.`);
    }
    const stages = options.stages ?? TRACK_STAGES;
    if (!Array.isArray(stages)) throw new EngineError('invalid_argument', 'stages must be an array of stage names.');
    for (const s of stages) {
      if (!STAGES.includes(s)) throw new EngineError('invalid_argument', `Unknown stage "${s}".`);
    }
    const detector = checkDetector('detector', options.detector ?? 'default');
    if (detector === 'blazeface' && this.options.trackDetector !== 'blazeface') {
      throw new EngineError(
        'invalid_argument',
        "detector 'blazeface' needs an engine opened with trackDetector 'blazeface'.",
      );
    }
    // Every option the addon reads, checked and filled in (see NativeAnalyzeOptions).
    const opts: NativeAnalyzeOptions = {
      format,
      width: 0,
      height: 0,
      detector,
      stages,
      maxFaces: checkInt('maxFaces', options.maxFaces ?? 1, 0, 64),
      wipeInput: checkBool('wipeInput', options.wipeInput ?? true),
      mirrorLandmarks: checkBool('mirrorLandmarks', options.mirrorLandmarks ?? true),
    };
    if (options.box) {
      const { x, y, width, height } = options.box;
      if (![x, y, width, height].every((v) => Number.isFinite(v) && Math.abs(v) <= 65_535) || width < 8 || height < 8) {
        throw new EngineError('invalid_argument', 'box must hold finite x, y and a width and height of at least 8.');
      }
      opts.box = { x, y, width, height };
    }
    if (options.reuseLandmarks) {
      const { landmarks, anchor, maxShift } = options.reuseLandmarks;
      // By tag, not instanceof: arrays made in another realm (the addon's, a test runner's) are Float32Arrays too.
      const finite = (v: unknown, n: number) =>
        Object.prototype.toString.call(v) === '[object Float32Array]' &&
        (v as Float32Array).length === n &&
        (v as Float32Array).every(Number.isFinite);
      if (
        !opts.box ||
        !finite(landmarks, 136) ||
        !finite(anchor, 64) ||
        !(Number.isFinite(maxShift) && maxShift >= 0)
      ) {
        throw new EngineError(
          'invalid_argument',
          'reuseLandmarks needs a box, 136 landmarks and a 64-number anchor (Float32Arrays of finite numbers) and a maxShift >= 0.',
        );
      }
      opts.reuseLandmarks = { landmarks, anchor, maxShift };
    }
    if (format !== 'jpeg') {
      opts.width = checkInt('width', options.width ?? 0, 0, 65_535);
      opts.height = checkInt('height', options.height ?? 0, 0, 65_535);
    }
    const buf = Buffer.isBuffer(frame) ? frame : Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
    try {
      return await this.native.analyze(buf, opts);
    } catch (err) {
      throw EngineError.from(err);
    }
  }

  /** The cheap per-frame call: detect, landmarks, eyes, pose, quality, light (or the stages given, e.g. fewer). */
  track(frame: Buffer, options: AnalyzeOptions = {}): Promise<Analysis> {
    return this.analyze(frame, {
      ...options,
      stages: options.stages ?? TRACK_STAGES,
      detector: options.detector ?? this.options.trackDetector,
    });
  }

  /** Every stage, for candidate frames and enrollment (or the stages given, e.g. with the anchor). */
  full(frame: Buffer, options: AnalyzeOptions = {}): Promise<Analysis> {
    return this.analyze(frame, { ...options, stages: options.stages ?? FULL_STAGES });
  }

  stats(): EngineStats {
    return this.native.stats();
  }

  /** Waits for jobs in flight, then frees the networks. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.native.close();
  }
}

function checkDetector(name: string, value: unknown): Detector {
  if (!DETECTORS.includes(value as Detector)) {
    throw new EngineError('invalid_argument', `${name} must be one of ${DETECTORS.join(', ')}.`);
  }
  return value as Detector;
}

function checkBool(name: string, value: unknown): boolean {
  if (typeof value !== 'boolean') throw new EngineError('invalid_argument', `${name} must be true or false.`);
  return value;
}

function checkInt(name: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new EngineError('invalid_argument', `${name} must be an integer from ${min} to ${max}.`);
  }
  return value;
}

/** Cosine similarity of two L2-normalised embeddings (their dot product). */
export function cosineSimilarity(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new EngineError('invalid_argument', 'Embeddings differ in length.');
  let dot = 0;
  for (let i = 0; i < a.length; i++) dot += a[i] * b[i];
  return dot;
}

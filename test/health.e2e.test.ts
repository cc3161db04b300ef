import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { createApp } from '../src/app.factory';
import { loadConfig } from '../src/config';
import { EngineService } from '../src/engine';
import { JsonLogger, type LogLine } from '../src/json-logger';

// The real app with the real engine: needs `npm run build:native` and `npm run models` (CI setup does both).
// No skip on purpose: a missing addon or model must fail this test, with the engine's error code in the body.
describe('GET /health (real engine)', () => {
  const raw: string[] = [];
  let app: NestExpressApplication;
  let url: string;
  let closed = false;

  beforeAll(async () => {
    const config = loadConfig({
      ...process.env,
      ...isolated(),
      PORT: '0',
      HOST: '127.0.0.1',
      LOG_LEVEL: 'debug',
      ENGINE_WORKERS: '1',
    });
    app = await createApp({ config, logger: new JsonLogger(config.LOG_LEVEL, (line) => raw.push(line)) });
    await app.listen(config.PORT, config.HOST);
    url = await app.getUrl();
  });

  afterAll(async () => {
    if (!closed) await app?.close();
  });

  it('answers 200 with the engine counters', async () => {
    const res = await fetch(`${url}/health`);
    const body = await res.json();
    // Status and body together, so a failure shows the engine's error code.
    expect({ status: res.status, body }).toEqual({
      status: 200,
      body: {
        status: 'ok',
        engine: { workers: 1, queued: 0, inFlight: 0, completed: 0, failed: 0, rejected: 0 },
        opencv: expect.stringMatching(/^4\.\d+\.\d+/),
        uptimeSeconds: expect.any(Number),
      },
    });
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(res.headers.get('x-powered-by')).toBeNull();
  });

  it('logs JSON lines only, including the engine start', () => {
    const lines = raw.map((l) => JSON.parse(l) as LogLine);
    for (const line of lines)
      expect(line).toEqual(
        expect.objectContaining({ time: expect.any(String), level: expect.any(String), msg: expect.any(String) }),
      );
    expect(lines).toContainEqual(
      expect.objectContaining({ level: 'info', context: 'Engine', msg: expect.stringMatching(/^Face engine ready/) }),
    );
  });

  it('closes the engine on shutdown', async () => {
    const engine = app.get(EngineService);
    await app.close();
    closed = true;
    expect(engine.status()).toEqual({ ready: false, code: 'engine_closed' });
    expect(() => engine.get()).toThrow(expect.objectContaining({ code: 'engine_closed' }));
    expect(raw.join('')).toContain('Face engine closed');
  });
});

describe('GET /health without models', () => {
  let app: NestExpressApplication;
  let dir: string;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'faceid-empty-'));
    const config = loadConfig({ ...process.env, ...isolated(), PORT: '0', HOST: '127.0.0.1', FACEID_MODEL_DIR: dir });
    app = await createApp({ config, logger: new JsonLogger('fatal', () => undefined) });
    await app.listen(config.PORT, config.HOST);
  });

  afterAll(async () => {
    await app?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('stays up and answers 503 with the engine error code', async () => {
    const res = await fetch(`${await app.getUrl()}/health`);
    expect({ status: res.status, body: await res.json() }).toEqual({
      status: 503,
      body: { status: 'error', code: 'model_missing' },
    });
  });
});

/** A throwaway data folder and no demo bootstrap, so tests never touch the user's real database. */
function isolated(): Record<string, string> {
  return {
    FACEID_DATA_DIR: fs.mkdtempSync(path.join(os.tmpdir(), 'faceid-health-')),
    FACEID_BOOTSTRAP: 'false',
    DATABASE_URL: '',
  };
}

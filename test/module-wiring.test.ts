import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { createApp } from '../src/app.factory';
import { loadConfig } from '../src/config';
import { DrainService } from '../src/fleet';
import { HealthController } from '../src/health/health.controller';
import { JsonLogger } from '../src/json-logger';
import { TransportService } from '../src/transport/transport.module';

/** Every *.module.ts under src/, relative to the repository. */
function moduleFiles(dir = path.join(__dirname, '../src')): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return e.name === 'generated' ? [] : moduleFiles(p);
    return e.name.endsWith('.module.ts') ? [path.relative(path.join(__dirname, '..'), p)] : [];
  });
}

describe('the Nest modules', () => {
  it('are global only for the infrastructure: config, storage, metrics and the drain state', () => {
    const global = moduleFiles()
      .filter((f) => /^@Global\(\)/m.test(fs.readFileSync(path.join(__dirname, '..', f), 'utf8')))
      .sort();
    expect(global).toEqual([
      'src/config/config.module.ts',
      'src/fleet/fleet.module.ts',
      'src/metrics/metrics.module.ts',
      'src/storage/storage.module.ts',
    ]);
  });

  describe('of the app', () => {
    let app: NestExpressApplication;
    let dataDir: string;

    beforeAll(async () => {
      dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'faceid-wiring-'));
      const config = loadConfig({
        ...process.env,
        FACEID_DATA_DIR: dataDir,
        FACEID_BOOTSTRAP: 'false',
        DATABASE_URL: '',
      });
      // Built, not started: the wiring is resolved when the modules are, the engine opens only on init.
      app = await createApp({ config, logger: new JsonLogger('fatal', () => undefined) });
    });

    afterAll(async () => {
      await app?.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
    });

    // Both take the drain as optional: were it out of their reach, they would silently never drain.
    it('give the transport and the health check the one drain state', async () => {
      const drain = app.get(DrainService);
      expect((app.get(TransportService) as unknown as { drain?: DrainService }).drain).toBe(drain);
      drain.begin('test');
      await expect(app.get(HealthController).ready()).rejects.toMatchObject({
        response: { status: 'error', code: 'draining', draining: true },
      });
    });
  });
});

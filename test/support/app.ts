import type { NestExpressApplication } from '@nestjs/platform-express';
import { createApp } from '../../src/app.factory';
import { loadConfig } from '../../src/config';
import type { TestDatabase } from './databases';

/**
 * The real app on a test database, listening on 127.0.0.1 at a free port, and its base URL. No bootstrap clinic (each
 * test makes its own), one engine worker, and a rate limit no test reaches; `extra` adds or overrides settings.
 */
export async function listenOnTestDatabase(
  db: TestDatabase,
  extra: Record<string, string> = {},
): Promise<{ app: NestExpressApplication; base: string }> {
  const app = await createApp({
    config: loadConfig({
      ...db.env,
      PORT: '0',
      HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
      FACEID_BOOTSTRAP: 'false',
      ENGINE_WORKERS: '1',
      RATE_LIMIT_PER_MINUTE: '100000',
      ...extra,
    }),
  });
  try {
    await app.listen(0, '127.0.0.1');
    return { app, base: await app.getUrl() };
  } catch (err) {
    await app.close(); // the caller never gets it to close
    throw err;
  }
}

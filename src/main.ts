import type { INestApplication } from '@nestjs/common';
import { createApp } from './app.factory';
import { ConfigError, loadConfig } from './config';
import { stopOnSignals } from './fleet';
import { JsonLogger } from './json-logger';

async function main(): Promise<void> {
  // Until the config is read, log at the default level so a config error is still reported as JSON.
  let logger = new JsonLogger('info');
  let app: INestApplication | undefined;
  try {
    const config = loadConfig(process.env);
    logger = new JsonLogger(config.LOG_LEVEL);
    // SIGTERM/SIGINT drain first (no new sessions, the running ones finish within DRAIN_TIMEOUT_S), then exit 0.
    app = await createApp({ config, logger, shutdownHooks: false });
    stopOnSignals(app, logger);
    await app.listen(config.PORT, config.HOST);
    logger.log(`Listening on ${await app.getUrl()}`, 'Bootstrap');
  } catch (err) {
    // A config error is the operator's to fix: its key list is the message, a stack would only hide it.
    logger.fatal(err instanceof ConfigError ? err.message : err, 'Bootstrap');
    await app?.close().catch(() => undefined);
    process.exit(1);
  }
}

void main();

import type { LoggerService } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { AppModule } from './app.module';
import { loadConfig, type Config } from './config';
import { compileTrustedProxies } from './config/proxies';
import { JsonLogger } from './json-logger';
import { FaceidSocketAdapter } from './transport/socket.adapter';

export interface CreateAppOptions {
  /** Default: loadConfig(process.env). */
  config?: Config;
  /** Default: a JsonLogger at config.LOG_LEVEL. */
  logger?: LoggerService;
  /**
   * Nest's handling of SIGTERM/SIGINT: close at once, then end by the signal (default true, for tests and tools).
   * main.ts turns it off and drains first (stopOnSignals in src/fleet).
   */
  shutdownHooks?: boolean;
}

/**
 * Builds the application without listening, for main.ts and the e2e tests alike.
 * The engine opens on `app.init()` / `app.listen()` and closes on `app.close()` or SIGTERM/SIGINT (see shutdownHooks).
 */
export async function createApp(options: CreateAppOptions = {}): Promise<NestExpressApplication> {
  const config = options.config ?? loadConfig(process.env);
  const app = await NestFactory.create<NestExpressApplication>(AppModule.forRoot(config), {
    logger: options.logger ?? new JsonLogger(config.LOG_LEVEL),
    // Throw instead of process.abort() on a wiring error, so main.ts and tests can report it.
    abortOnError: false,
  });
  app.disable('x-powered-by');
  // The WebSocket gateways (/ws/identify, /ws/events): one upgrade router, the frame protocol, ws or uWS.
  app.useWebSocketAdapter(new FaceidSocketAdapter(app));
  // req.ip: the peer, or what a trusted proxy (TRUSTED_PROXIES) forwarded; rate limits per address depend on it.
  const trusted = compileTrustedProxies(config.TRUSTED_PROXIES);
  app.set('trust proxy', (address: string) => trusted(address));
  if (options.shutdownHooks !== false) app.enableShutdownHooks();
  return app;
}

import type { INestApplication, LoggerService } from '@nestjs/common';
import { DrainService } from './drain.service';

export interface StopOnSignalsOptions {
  /** Default: process.exit. */
  exit?: (code: number) => void;
  signals?: NodeJS.Signals[];
}

/**
 * The gateway's own handling of SIGTERM and SIGINT (instead of Nest's shutdown hooks, which stop at once and end the
 * process by the signal): drain (DrainService: no new sessions, the running ones finish within DRAIN_TIMEOUT_S), close
 * the application (WebSockets with 1001, the engine, the database), exit 0. A second signal cuts the wait short.
 * A failure while closing exits 1.
 */
export function stopOnSignals(
  app: INestApplication,
  logger: LoggerService,
  options: StopOnSignalsOptions = {},
): () => void {
  const exit = options.exit ?? ((code: number) => process.exit(code));
  const signals = options.signals ?? ['SIGTERM', 'SIGINT'];
  const drain = app.get(DrainService);
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn?.(`${signal} again: no more waiting for running sessions`, 'Bootstrap');
      drain.cutShort();
      return;
    }
    stopping = true;
    void (async () => {
      const started = Date.now();
      await drain.drain(signal);
      await app.close();
      logger.log(`Stopped in ${Date.now() - started} ms (${signal})`, 'Bootstrap');
      exit(0);
    })().catch((err: unknown) => {
      logger.error(`Stopping failed: ${(err as Error)?.message ?? String(err)}`, undefined, 'Bootstrap');
      exit(1);
    });
  };
  for (const s of signals) process.on(s, onSignal);
  return () => {
    for (const s of signals) process.off(s, onSignal);
  };
}

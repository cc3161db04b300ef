import { Global, Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { DrainGuard } from './drain.guard';
import { DrainService } from './drain.service';

/**
 * Running as one of several gateways behind a load balancer: the graceful drain on a stop signal (DrainService, the
 * global DrainGuard, stopOnSignals()). The signals between gateways live with the storage (src/storage/signals.ts).
 * Global, as process-lifecycle infrastructure (the stop signal, like the config): the transport, the health check and
 * the app-wide DrainGuard read the drain state. The first two take it as optional: behind an import, a forgotten one
 * would silently turn the drain off for them (test/module-wiring.test.ts checks that both see it).
 */
@Global()
@Module({
  providers: [DrainService, { provide: APP_GUARD, useClass: DrainGuard }],
  exports: [DrainService],
})
export class FleetModule {}

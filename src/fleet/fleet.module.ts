import { Global, Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { DrainGuard } from './drain.guard';
import { DrainService } from './drain.service';

/**
 * Running as one of several gateways behind a load balancer: the graceful drain on a stop signal (DrainService, the
 * global DrainGuard, stopOnSignals()). The signals between gateways live with the storage (src/storage/signals.ts).
 * Global, so the transport and the health check see the drain state without importing this module.
 */
@Global()
@Module({
  providers: [DrainService, { provide: APP_GUARD, useClass: DrainGuard }],
  exports: [DrainService],
})
export class FleetModule {}

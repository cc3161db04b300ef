// Public surface of running as a fleet: the graceful drain. Signals between gateways: src/storage/signals.ts.
export { FleetModule } from './fleet.module';
export { DrainService, DrainingError, type DrainResult } from './drain.service';
export { DrainGuard, ADMISSION_ROUTES } from './drain.guard';
export { stopOnSignals, type StopOnSignalsOptions } from './shutdown';

import { Module } from '@nestjs/common';
import { AuditModule } from '../audit/audit.module';
import { CONFIG, type Config } from '../config';
import { ApiKeyGuard } from './api-key.guard';
import { AuthBootstrap } from './bootstrap';
import { MisAuth, MisKeyGuard } from './mis-key.guard';
import { RateLimiter } from './rate-limiter';
import { WorkstationsService } from './workstations.service';

/**
 * Workstation and MIS API keys. A module whose controllers use `@WorkstationAuth()`, `@MisKeyAuth()` (or
 * `@UseGuards(ApiKeyGuard)`) or whose guards count failed checks imports it: every guard shares its one rate limiter.
 */
@Module({
  // The demo bootstrap (AuthBootstrap) records what it created.
  imports: [AuditModule],
  providers: [
    ApiKeyGuard,
    MisAuth,
    MisKeyGuard,
    WorkstationsService,
    AuthBootstrap,
    {
      provide: RateLimiter,
      useFactory: (config: Config) => new RateLimiter(config.RATE_LIMIT_PER_MINUTE),
      inject: [CONFIG],
    },
  ],
  exports: [ApiKeyGuard, MisAuth, MisKeyGuard, WorkstationsService, RateLimiter],
})
export class AuthModule {}

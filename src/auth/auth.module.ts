import { Global, Module } from '@nestjs/common';
import { CONFIG, type Config } from '../config';
import { ApiKeyGuard } from './api-key.guard';
import { AuthBootstrap } from './bootstrap';
import { MisAuth, MisKeyGuard } from './mis-key.guard';
import { RateLimiter } from './rate-limiter';
import { WorkstationsService } from './workstations.service';

/**
 * Workstation and MIS API keys. Global, so any controller can use `@WorkstationAuth()` (or `@UseGuards(ApiKeyGuard)`)
 * without importing it, and every guard shares the one rate limiter.
 */
@Global()
@Module({
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

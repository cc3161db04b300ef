import { Global, Module } from '@nestjs/common';
import { CONFIG, type Config } from '../config';
import { ApiKeyGuard } from './api-key.guard';
import { AuthBootstrap } from './bootstrap';
import { RateLimiter } from './rate-limiter';
import { WorkstationsService } from './workstations.service';

/**
 * Workstation API keys. Global, so any controller can use `@WorkstationAuth()` (or `@UseGuards(ApiKeyGuard)`)
 * without importing it, and every guard shares the one rate limiter.
 */
@Global()
@Module({
  providers: [
    ApiKeyGuard,
    WorkstationsService,
    AuthBootstrap,
    {
      provide: RateLimiter,
      useFactory: (config: Config) => new RateLimiter(config.RATE_LIMIT_PER_MINUTE),
      inject: [CONFIG],
    },
  ],
  exports: [ApiKeyGuard, WorkstationsService, RateLimiter],
})
export class AuthModule {}

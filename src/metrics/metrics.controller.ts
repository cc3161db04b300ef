import { createHash, timingSafeEqual } from 'node:crypto';
import { Controller, Get, Header, Headers, Inject } from '@nestjs/common';
import { Registry } from 'prom-client';
import { CONFIG, type Config } from '../config';
import { AppError } from '../http';
import { MetricsService } from './metrics.service';

/** Constant-time: sha256 of both sides, so neither their length nor a common prefix shows in the timing. */
function sameToken(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

@Controller('metrics')
export class MetricsController {
  constructor(
    private readonly metrics: MetricsService,
    @Inject(CONFIG) private readonly config: Config,
  ) {}

  /**
   * Prometheus scrape endpoint (text format). Counters and process figures only: no ids, no biometrics, no clinic
   * labels. With METRICS_TOKEN set, only a scraper that sends `Authorization: Bearer <token>` gets them (401 else).
   */
  @Get()
  @Header('Content-Type', Registry.PROMETHEUS_CONTENT_TYPE)
  @Header('Cache-Control', 'no-store')
  scrape(@Headers('authorization') authorization: string | undefined): Promise<string> {
    const token = this.config.METRICS_TOKEN;
    if (token !== undefined) {
      const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
      if (!m || !sameToken(m[1], token)) {
        throw new AppError('unauthorized', 'The metrics need the scrape token: Authorization: Bearer <METRICS_TOKEN>.');
      }
    }
    return this.metrics.registry.metrics();
  }
}

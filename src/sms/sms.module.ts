import { Logger, Module } from '@nestjs/common';
import { AuthModule } from '../auth/auth.module';
import { CONFIG, ConfigError, type Config } from '../config';
import { DevSmsOutbox } from './dev-sms.outbox';
import { MetricsService } from '../metrics/metrics.service';
import { HttpSmsGateway } from './http-sms.gateway';
import { MeteredSmsGateway } from './metered-sms.gateway';
import { OutboxController } from './outbox.controller';
import { OutboxService } from './outbox.service';
import { SMS_GATEWAY, type SmsGateway } from './sms-gateway';

/** The adapter SMS_ADAPTER names. SMS_ADAPTER=http without SMS_HTTP_URL stops the start with a config error. */
export function smsGatewayFromConfig(config: Config, logger = new Logger('Sms')): SmsGateway {
  if (config.SMS_ADAPTER === 'dev') {
    logger.warn('SMS_ADAPTER=dev: codes are not sent to phones; GET /dev/outbox shows them (development only).');
    return new DevSmsOutbox();
  }
  if (!config.SMS_HTTP_URL) {
    throw new ConfigError([{ key: 'SMS_HTTP_URL', expects: 'an http(s) URL: it is required when SMS_ADAPTER=http' }]);
  }
  if (!config.SMS_HTTP_TOKEN) logger.warn('SMS_HTTP_TOKEN is not set: calls to the SMS gateway carry no credentials.');
  return new HttpSmsGateway({
    url: config.SMS_HTTP_URL,
    token: config.SMS_HTTP_TOKEN,
    timeoutMs: config.SMS_HTTP_TIMEOUT_MS,
    retries: config.SMS_HTTP_RETRIES,
  });
}

/**
 * Text messages to patients (the six-digit codes), and the development outbox `GET /dev/outbox`. The adapter's
 * failures are counted on /metrics (faceid_sms_failures_total) when the metrics module is there.
 */
@Module({
  // Auth: the outbox is read with a workstation key.
  imports: [AuthModule],
  controllers: [OutboxController],
  providers: [
    OutboxService,
    {
      provide: SMS_GATEWAY,
      useFactory: (config: Config, metrics?: MetricsService) => {
        const adapter = smsGatewayFromConfig(config);
        return metrics ? new MeteredSmsGateway(adapter, metrics) : adapter;
      },
      inject: [CONFIG, { token: MetricsService, optional: true }],
    },
  ],
  exports: [SMS_GATEWAY],
})
export class SmsModule {}

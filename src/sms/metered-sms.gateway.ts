import type { SmsMetrics } from '../metrics/metrics.service';
import { SmsError, type SmsGateway, type SmsMessage } from './sms-gateway';

/**
 * Counts the messages an adapter failed to send (faceid_sms_failures_total) by purpose and a coarse reason, then
 * passes the failure on unchanged. Nothing of the message (IIN, text, code, reference) reaches the metrics.
 */
export class MeteredSmsGateway implements SmsGateway {
  constructor(
    /** The adapter that sends (HttpSmsGateway, DevSmsOutbox). */
    readonly inner: SmsGateway,
    private readonly metrics: SmsMetrics,
  ) {}

  async send(message: SmsMessage): Promise<void> {
    try {
      await this.inner.send(message);
    } catch (err) {
      this.metrics.smsFailure(message.purpose ?? 'identification', err instanceof SmsError ? err.reason : 'other');
      throw err;
    }
  }
}

/** The adapter behind a gateway as the SMS module provides it (metered, or not). */
export function smsAdapterOf(gateway: SmsGateway): SmsGateway {
  return gateway instanceof MeteredSmsGateway ? gateway.inner : gateway;
}

import { Logger } from '@nestjs/common';
import { maskIin, type SmsGateway, type SmsMessage } from './sms-gateway';

export interface OutboxMessage extends SmsMessage {
  createdAt: Date;
}

/**
 * The development SMS adapter: keeps the last messages in memory for `GET /dev/outbox` (the demo page reads the
 * code there) and logs that one was sent. The log line leaves the text out: it holds the code, and codes never
 * go to logs.
 */
export class DevSmsOutbox implements SmsGateway {
  static readonly CAPACITY = 100;
  private readonly log = new Logger('Sms');
  private readonly messages: OutboxMessage[] = [];

  async send(message: SmsMessage): Promise<void> {
    this.messages.push({ ...message, createdAt: new Date() });
    if (this.messages.length > DevSmsOutbox.CAPACITY) this.messages.shift();
    this.log.log(
      `Development SMS outbox: a code for ${maskIin(message.iin)} ` +
        `(${message.purpose === 'enrollment' ? 'enrollment confirmation' : 'session'} ${message.reference}); ` +
        'GET /dev/outbox shows it.',
    );
  }

  /** Oldest first. */
  list(): readonly OutboxMessage[] {
    return [...this.messages];
  }
}

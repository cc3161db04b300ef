import { AppError } from '../http';

/** What a code is for: a session's identification, or the confirmation of a new reference photo. */
export type SmsPurpose = 'identification' | 'enrollment';

/**
 * Why the gateway did not take a message, coarsely (the `reason` label of faceid_sms_failures_total): no answer in
 * time, no connection, a 4xx (the request was refused), a 5xx, or anything else.
 */
export const SMS_FAILURE_REASONS = ['timeout', 'connection', 'rejected', 'server_error', 'other'] as const;
export type SmsFailureReason = (typeof SMS_FAILURE_REASONS)[number];

/** One text message to a patient, addressed by IIN (the e-government gateway knows the patient's phone). */
export interface SmsMessage {
  iin: string;
  text: string;
  /**
   * Our id for the message (the session id, or the id of a template replacement waiting for the patient's code): lets
   * the gateway drop a duplicate of a retried call.
   */
  reference: string;
  /** What the code is for (default `identification`); the development outbox shows it. Not sent to the gateway. */
  purpose?: SmsPurpose;
}

/** How six-digit codes reach patients. Implementations: HttpSmsGateway (production), DevSmsOutbox (development). */
export interface SmsGateway {
  /** Resolves once the gateway accepted the message; rejects with SmsError. */
  send(message: SmsMessage): Promise<void>;
}

/** DI token: `@Inject(SMS_GATEWAY) sms: SmsGateway`. */
export const SMS_GATEWAY = Symbol('SmsGateway');

/**
 * The SMS gateway did not take the message (HTTP 502 `sms_unavailable`). The message names the HTTP status or the
 * timeout, never the text (it holds the code) nor the IIN.
 */
export class SmsError extends AppError {
  // The e-government gateway failed us: a bad gateway from the caller's point of view.
  static override readonly status = { sms_unavailable: 502 };

  constructor(
    message: string,
    /** Why, coarsely (for the metrics): set by the adapter that failed. */
    readonly reason: SmsFailureReason = 'other',
  ) {
    super('sms_unavailable', message);
    this.name = 'SmsError';
  }
}

/** An IIN as shown to people in logs and the outbox: the last four digits only, e.g. `********1234`. */
export function maskIin(iin: string): string {
  return '*'.repeat(Math.max(0, iin.length - 4)) + iin.slice(-4);
}

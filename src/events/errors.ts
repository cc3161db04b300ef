import { AppError, type ErrorDetails } from '../http';

export type EventsErrorCode =
  | 'cursor_unknown'
  | 'event_not_found'
  | 'webhook_not_found'
  | 'webhook_url_invalid'
  | 'webhook_destination_refused'
  | 'webhook_limit_reached';

/** Errors of the events module. Messages name no URL, key or event content. */
export class EventsError extends AppError {
  static override readonly status: Readonly<Record<EventsErrorCode, number>> = {
    // Another clinic's event is "unknown" too: ids of other clinics are never confirmed.
    cursor_unknown: 404,
    event_not_found: 404,
    webhook_not_found: 404,
    webhook_url_invalid: 400,
    // The URL's host is (or spells) a loopback, private, link-local or other non-public address: `rule` says which.
    webhook_destination_refused: 400,
    webhook_limit_reached: 409,
  };

  constructor(code: EventsErrorCode, message: string, details?: ErrorDetails) {
    super(code, message, details);
    this.name = 'EventsError';
  }
}

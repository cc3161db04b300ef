// Public surface of MIS event delivery: the module, the event schemas and the webhook signatures.
export { EventsModule } from './events.module';
export {
  ApiEventSchema,
  EVENT_SCHEMAS,
  EVENT_TYPES,
  EVENT_VERSION,
  EventSchema,
  eventJsonSchema,
  schemaFileName,
  VERDICT_RESULTS,
} from './schemas';
export {
  DEFAULT_TOLERANCE_SECONDS,
  generateWebhookSecret,
  sign,
  signatureHeaders,
  verify,
  WEBHOOK_HEADERS,
  WEBHOOK_SECRET_PREFIX,
  type VerifyFailure,
  type VerifyResult,
} from './signature';
export { EVENTS_SUBPROTOCOL, EVENTS_WS_CLOSE, EVENTS_WS_PATH, KEY_SUBPROTOCOL_PREFIX } from './events.socket';
export { EventsError, type EventsErrorCode } from './errors';

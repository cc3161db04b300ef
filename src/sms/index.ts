// Text messages to patients: the SmsGateway port, its adapters and the development outbox.
export {
  SMS_FAILURE_REASONS,
  SMS_GATEWAY,
  SmsError,
  maskIin,
  type SmsFailureReason,
  type SmsGateway,
  type SmsMessage,
  type SmsPurpose,
} from './sms-gateway';
export { MeteredSmsGateway, smsAdapterOf } from './metered-sms.gateway';
export { HttpSmsGateway, type HttpSmsOptions } from './http-sms.gateway';
export { DevSmsOutbox, type OutboxMessage } from './dev-sms.outbox';
export { SmsModule, smsGatewayFromConfig } from './sms.module';
export { OutboxService, type ClinicOutboxMessage } from './outbox.service';
export {
  DEFAULT_SMS_LANGUAGES,
  MAX_CLINIC_NAME,
  SMS_LANGUAGES,
  clinicNameForSms,
  smsParts,
  smsText,
  type SmsLanguages,
  type SmsTextInput,
} from './texts';

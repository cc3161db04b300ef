// Text messages to patients: the SmsGateway port, its adapters and the development outbox.
export { SMS_GATEWAY, SmsError, maskIin, type SmsGateway, type SmsMessage } from './sms-gateway';
export { HttpSmsGateway, type HttpSmsOptions } from './http-sms.gateway';
export { DevSmsOutbox, type OutboxMessage } from './dev-sms.outbox';
export { SmsModule, smsGatewayFromConfig } from './sms.module';
export { smsText, type SmsPurpose, type SmsTextInput } from './texts';

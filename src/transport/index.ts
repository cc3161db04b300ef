// Public surface of the WebSocket transport: the wire protocol, the adapter contract and the Nest module.
export * from './protocol';
export * from './connection';
export { TransportModule, TransportService, TRANSPORT_CLOCK } from './transport.module';
export { DEFAULT_CONNECTION_LIMITS, TokenBucket, type Clock, type ConnectionLimits } from './limits';
export { TransportError, TRANSPORT_ERROR_CODES, type TransportErrorCode, type TransportKind } from './transport';

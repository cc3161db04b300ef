// Public surface of the WebSocket transport: the wire protocol, the adapter contract and the Nest module.
export * from './protocol';
export * from './connection';
export { TransportModule, TransportService } from './transport.module';
export { TransportError, TRANSPORT_ERROR_CODES, type TransportErrorCode, type TransportKind } from './transport';

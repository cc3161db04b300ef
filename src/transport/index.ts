// Public surface of the WebSocket transport: the wire protocol, frames, the Nest adapter and its module.
export * from './protocol';
export * from './connection';
export { Frame, takeFrame, releaseFrame, type FrameMessage, type MalformedFrame } from './frame';
export { FRAME_EVENT, TEXT_EVENT, FrameClient, FrameSocketServer, type Authenticator } from './frame-socket';
export { FaceidSocketAdapter, type SocketGatewayOptions } from './socket.adapter';
export { TransportModule, TransportService, TRANSPORT_CLOCK } from './transport.module';
export { DEFAULT_CONNECTION_LIMITS, TokenBucket, type Clock, type ConnectionLimits } from './limits';
export { TransportError, TRANSPORT_ERROR_CODES, type TransportErrorCode, type TransportKind } from './transport';

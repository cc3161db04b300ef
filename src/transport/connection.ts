/**
 * The transport-neutral contract between a WebSocket transport (ws or uWS) and what serves its connections.
 *
 * The frame socket is a Nest gateway on FaceidSocketAdapter (socket.adapter.ts): the transport calls a
 * SessionTransportHandler, which FrameSocketServer (frame-socket.ts) turns into the gateway's handleConnection,
 * message handlers and handleDisconnect. This contract stays below Nest because the protocol is a binary stream with
 * per-connection authentication during the upgrade, and uWS needs its own port and copy-then-wipe semantics.
 */
import type { FrameMessage } from './frame';
import type { ServerMessage } from './protocol';

/** One client connection, whatever the transport. */
export interface FrameConnection {
  /** Random per connection; not the session id. For logs and maps. */
  readonly id: string;
  readonly remoteAddress: string;
  /**
   * Validates (against the zod schema), serialises and sends one control message; dropped once the connection is
   * closed. An invalid message is a bug: it throws a TypeError naming the bad fields. The connection's limits apply:
   * a refusal (an `error` of a protocol_* or frame_* code) beyond WS_ERRORS_PER_MINUTE closes it with 4008 instead,
   * a message that would fill the send buffer beyond WS_SEND_BUFFER_MAX closes it with 4012.
   */
  sendJson(msg: ServerMessage): void;
  /**
   * Bytes queued for sending and not yet handed to the network. Sends that would take it past WS_SEND_BUFFER_MAX
   * close the connection instead (`send_buffer_full`): a client that stops reading cannot make the server queue more.
   */
  readonly bufferedAmount: number;
  /** Closes with a WS_CLOSE code. Idempotent. `reason` must be short (< 123 bytes) and hold no personal data. */
  close(code: number, reason: string): void;
  readonly open: boolean;
}

export interface AuthRequest {
  /** From the `token.<token>` subprotocol, else the `?token=` query parameter; null when neither. */
  token: string | null;
  /** The Origin header (already checked against WS_ALLOWED_ORIGINS); null for non-browser clients. */
  origin: string | null;
  remoteAddress: string;
}

export type AuthResult = { ok: true; sessionId: string } | { ok: false; closeCode: number; reason: string };

/**
 * What the transports call. Calls for one connection never overlap and come in order:
 * authenticate -> onOpen -> (onFrame | onText)* -> onClose.
 * - onFrame and onText may return a promise (Nest runs gateway handlers asynchronously): the connection's next
 *   message, and onClose, wait until it settled. A rejection counts as a throw.
 * - onOpen comes exactly once for every authenticate() that returned ok. If the client left while authenticate()
 *   ran (or the server began stopping), onOpen still comes, with a connection that is already closed (`open`
 *   false, sends dropped), followed by onClose(1006): per-session state set up in authenticate() is always released.
 * - onClose comes exactly once for every onOpen, on a later tick than the close() call that caused it.
 * - Nothing comes after onClose, and no frame or text comes after the handler called close().
 * - A throw from a callback is logged and closes that connection with 1011 (other connections are unaffected).
 */
export interface SessionTransportHandler {
  /**
   * Called during the upgrade, before the socket is a WebSocket. On `ok: false` the adapter completes the handshake
   * and closes at once with `closeCode` (so browsers see the code; an HTTP refusal would only show a generic error).
   * A throw counts as a refusal with 1011. Not called for a forbidden Origin.
   */
  authenticate(req: AuthRequest): Promise<AuthResult>;
  onOpen(conn: FrameConnection, sessionId: string): void;
  /**
   * One binary message, its header decoded by the transport (frame.ts). A Frame is the handler's from this call on:
   * nothing else reads or writes its bytes, they stay valid after the call returns, and the handler (or whatever it
   * hands the frame to) calls release() when done with it. If the call throws, the transport releases it. A
   * MalformedFrame has been wiped already and is passed on for the handler's answer (an error, an ack, a close).
   */
  onFrame(conn: FrameConnection, frame: FrameMessage): void | Promise<void>;
  /** One text message (parse with parseClientMessage). */
  onText(conn: FrameConnection, text: string): void | Promise<void>;
  /** `code` as received or sent (1006 when the connection dropped without a close frame). */
  onClose(conn: FrameConnection, code: number): void;
}

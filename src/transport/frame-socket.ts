/**
 * The frame socket (/ws/identify) as a Nest gateway sees it, on the FaceidSocketAdapter (socket.adapter.ts).
 *
 * A gateway declared `@WebSocketGateway<SocketGatewayOptions>({ path, protocol: 'frames' })` is served by the ws or
 * uWS transport (WS_TRANSPORT) and gets:
 * - afterInit(server: FrameSocketServer): it registers its authenticate() there (server.authenticateWith). That runs
 *   during the upgrade, before the socket is a WebSocket, so a refusal is a close code and no frame is ever taken
 *   from an unauthenticated client (see SessionTransportHandler.authenticate in connection.ts).
 * - handleConnection(client: FrameClient, sessionId): once for every authenticate() that said yes, also when the
 *   client left meanwhile (the client is then already closed, and handleDisconnect follows).
 * - @SubscribeMessage(FRAME_EVENT) (client, frame: FrameMessage): one binary message, its header decoded by the
 *   transport. A Frame is the handler's to release (frame.ts).
 * - @SubscribeMessage(TEXT_EVENT) (client, text: string): one text message.
 * - handleDisconnect(client): once per connection, after its last message; client.closeCode tells how it closed.
 *
 * Nest runs a message handler behind the app's guards, asynchronously: the transport hands a connection's messages
 * over one at a time, each once the previous one's handler has returned (Inbox in transport.ts), so a message that
 * finds the connection closed (by the handler, or a limit) is dropped, and a frame released, instead. A handler that
 * throws ends its connection with 1011 (`handler_failed`), and the frame it was given is released: Nest's exception
 * layer reports the throw through client.emit('exception').
 */
import type { WsMessageHandler } from '@nestjs/common';
import type { AuthRequest, AuthResult, FrameConnection, SessionTransportHandler } from './connection';
import { releaseFrame, type FrameMessage } from './frame';
import { WS_CLOSE, type ServerMessage } from './protocol';
import type { WebSocketTransport } from './transport';

/** The message pattern of binary messages (frames). */
export const FRAME_EVENT = 'frame';
/** The message pattern of text messages (JSON control messages, see parseClientMessage). */
export const TEXT_EVENT = 'text';

export type Authenticator = (req: AuthRequest) => Promise<AuthResult>;

type Payload = FrameMessage | string;

/** One connection, as the gateway's handlers get it: a FrameConnection, plus what Nest needs of a client. */
export class FrameClient implements FrameConnection {
  /** How the connection closed (1006 when it dropped without a close frame); null while it is open. */
  closeCode: number | null = null;
  private readonly handlers = new Map<string, WsMessageHandler['callback']>();
  private readonly disconnectCallbacks: Array<() => void> = [];
  private failed = false;

  constructor(
    private readonly conn: FrameConnection,
    private readonly onFailure: (client: FrameClient, detail: string) => void,
  ) {}

  get id(): string {
    return this.conn.id;
  }

  get remoteAddress(): string {
    return this.conn.remoteAddress;
  }

  get open(): boolean {
    return this.conn.open;
  }

  get bufferedAmount(): number {
    return this.conn.bufferedAmount;
  }

  sendJson(msg: ServerMessage): void {
    this.conn.sendJson(msg);
  }

  close(code: number, reason: string): void {
    this.conn.close(code, reason);
  }

  /**
   * How Nest's WebSocket exception layer tells a client that its handler threw: emit('exception', { message }). This
   * protocol has no such message: the connection is closed with 1011 instead. Other events do not exist here.
   */
  emit(event: string, payload?: unknown): void {
    if (event !== 'exception') return;
    const message = (payload as { message?: unknown } | undefined)?.message;
    this.fail(typeof message === 'string' ? message : 'the handler threw');
  }

  /** The adapter's bindMessageHandlers. */
  bindHandlers(handlers: readonly WsMessageHandler[]): void {
    for (const h of handlers) this.handlers.set(String(h.message), h.callback);
  }

  /** The adapter's bindClientDisconnect. */
  onDisconnect(callback: () => void): void {
    this.disconnectCallbacks.push(callback);
  }

  /** Hands one message to its handler; settles once the handler is done with it. */
  async deliver(event: string, data: Payload): Promise<void> {
    const handler = this.handlers.get(event);
    if (!handler) {
      if (typeof data !== 'string') releaseFrame(data);
      return;
    }
    try {
      await handler(data);
    } catch (err) {
      // Nest's exception layer itself failed (it catches the handler's own throws).
      this.fail((err as Error)?.message ?? String(err));
    }
    if (this.failed && typeof data !== 'string') releaseFrame(data);
  }

  /** The transport's onClose (after the connection's last message). */
  closed(code: number): void {
    this.closeCode = code;
    for (const callback of this.disconnectCallbacks.splice(0)) callback();
  }

  private fail(detail: string): void {
    if (this.failed) return;
    this.failed = true;
    this.onFailure(this, detail);
    this.conn.close(WS_CLOSE.internal_error, 'internal_error');
  }
}

/**
 * The server object of a frames gateway: the SessionTransportHandler its transport calls, turned into Nest's
 * connection, message and disconnect callbacks.
 */
export class FrameSocketServer implements SessionTransportHandler {
  private authenticator: Authenticator | undefined;
  private readonly connectCallbacks: Array<(client: FrameClient, sessionId: string) => void> = [];
  private readonly clients = new Map<string, FrameClient>();
  private transport: WebSocketTransport | undefined;
  private unroute: (() => void) | undefined;

  constructor(
    readonly path: string,
    private readonly onFailure: (client: FrameClient, detail: string) => void,
  ) {}

  /** The gateway's authenticate(), for each upgrade request (register it in afterInit). */
  authenticateWith(authenticator: Authenticator): void {
    this.authenticator = authenticator;
  }

  /** The adapter's bindClientConnect. */
  onConnection(callback: (client: FrameClient, sessionId: string) => void): void {
    this.connectCallbacks.push(callback);
  }

  /** The transport serving this path (set by TransportService when it starts it), and how to unroute it. */
  serveWith(transport: WebSocketTransport, unroute?: () => void): void {
    this.transport = transport;
    this.unroute = unroute;
  }

  get kind(): WebSocketTransport['kind'] | undefined {
    return this.transport?.kind;
  }

  /** See WebSocketTransport.port(). */
  port(): number | null {
    return this.transport?.port() ?? null;
  }

  /** Connections past the handshake and not yet closed. */
  get connections(): number {
    return this.transport?.connections ?? 0;
  }

  /** Closes every connection with 1001 (see WebSocketTransport.stop), then stops taking upgrades. */
  async stop(): Promise<void> {
    const transport = this.transport;
    this.transport = undefined;
    this.unroute?.();
    this.unroute = undefined;
    await transport?.stop();
  }

  // SessionTransportHandler: what the transport calls.

  async authenticate(req: AuthRequest): Promise<AuthResult> {
    if (!this.authenticator) {
      throw new Error(
        `The gateway on ${this.path} registered no authenticate() (server.authenticateWith in afterInit).`,
      );
    }
    return this.authenticator(req);
  }

  onOpen(conn: FrameConnection, sessionId: string): void {
    const client = new FrameClient(conn, this.onFailure);
    this.clients.set(conn.id, client);
    for (const callback of this.connectCallbacks) callback(client, sessionId);
  }

  onFrame(conn: FrameConnection, frame: FrameMessage): Promise<void> | void {
    const client = this.clients.get(conn.id);
    if (client) return client.deliver(FRAME_EVENT, frame);
    releaseFrame(frame);
  }

  onText(conn: FrameConnection, text: string): Promise<void> | void {
    return this.clients.get(conn.id)?.deliver(TEXT_EVENT, text);
  }

  onClose(conn: FrameConnection, code: number): void {
    const client = this.clients.get(conn.id);
    if (!client) return;
    this.clients.delete(conn.id);
    client.closed(code);
  }
}

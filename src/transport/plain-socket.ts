/**
 * A JSON WebSocket endpoint on the HTTP server (ws, noServer), for gateways declared
 * `@WebSocketGateway<SocketGatewayOptions>({ path, maxPayload, subprotocols })` on the FaceidSocketAdapter: the
 * /ws/events stream. Its upgrade requests come from the UpgradeRouter; the gateway gets ws's WebSocket and the
 * upgrade request in handleConnection(socket, req), and authenticates there (the handshake has completed, so a
 * refusal is a close code a browser can see). Text messages go to @SubscribeMessage(TEXT_EVENT) (socket, text);
 * binary ones are dropped. On shutdown every connection is closed with 1001, briefly waiting for the closing
 * handshakes.
 */
import type { IncomingMessage } from 'node:http';
import type { WsMessageHandler } from '@nestjs/common';
import { WebSocket, WebSocketServer } from 'ws';
import { TEXT_EVENT } from './frame-socket';
import type { UpgradeHandler } from './upgrade-router';

/** How long stop() waits for clients to answer the 1001 close before cutting them off. */
const STOP_GRACE_MS = 1000;

export interface PlainSocketOptions {
  path: string;
  /** Largest message a client may send, bytes (default 4096): above it ws closes with 1009. */
  maxPayload?: number;
  /** Subprotocols the server answers with, the first one offered by the client that is in this list. */
  subprotocols?: readonly string[];
}

export class PlainSocketServer {
  readonly path: string;
  private readonly wss: WebSocketServer;
  private readonly sockets = new Set<WebSocket>();
  private readonly connectCallbacks: Array<(socket: WebSocket, req: IncomingMessage) => void> = [];
  private started = false;
  private unroute: (() => void) | undefined;

  constructor(options: PlainSocketOptions) {
    this.path = options.path;
    const subprotocols = options.subprotocols ?? [];
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: options.maxPayload ?? 4096,
      perMessageDeflate: false,
      clientTracking: false,
      handleProtocols: (offered) => subprotocols.find((p) => offered.has(p)) ?? false,
    });
  }

  /** The adapter's bindClientConnect. */
  onConnection(callback: (socket: WebSocket, req: IncomingMessage) => void): void {
    this.connectCallbacks.push(callback);
  }

  /** The adapter's bindMessageHandlers: text messages to TEXT_EVENT, when the gateway has such a handler. */
  static bindHandlers(socket: WebSocket, handlers: readonly WsMessageHandler[]): void {
    const text = handlers.find((h) => h.message === TEXT_EVENT);
    if (!text) return;
    socket.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary && socket.readyState === WebSocket.OPEN) void text.callback(data.toString('utf8'));
    });
  }

  /** Open connections. */
  get connections(): number {
    return this.sockets.size;
  }

  /** Takes upgrades from now on (`unroute` removes this endpoint from the router on stop). */
  start(unroute: () => void): void {
    this.started = true;
    this.unroute = unroute;
  }

  readonly handleUpgrade: UpgradeHandler = (req, socket, head) => {
    if (!this.started) {
      socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      this.sockets.add(ws);
      ws.on('error', () => undefined); // ws closes the socket itself; 'close' follows
      ws.on('close', () => this.sockets.delete(ws));
      for (const callback of this.connectCallbacks) callback(ws, req);
    });
  };

  /** Closes every connection with 1001 (waiting briefly for the closing handshakes), then stops. */
  async stop(): Promise<void> {
    if (!this.started) return;
    this.started = false;
    this.unroute?.();
    this.unroute = undefined;
    const closed = [...this.sockets].map(
      (socket) =>
        new Promise<void>((resolve) => {
          socket.once('close', () => resolve());
          socket.close(1001, 'server_stopping');
        }),
    );
    await Promise.race([Promise.all(closed), new Promise((r) => setTimeout(r, STOP_GRACE_MS).unref())]);
    for (const socket of this.sockets) socket.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }
}

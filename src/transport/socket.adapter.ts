/**
 * Nest's WebSocket adapter for this service's gateways (app.useWebSocketAdapter(new FaceidSocketAdapter(app)), see
 * src/app.factory.ts). It keeps what Nest's stock adapters do not offer: the binary frame protocol with its
 * authentication during the upgrade, the copy-then-wipe of every frame (frame.ts, ws-wipe.ts), the per-connection
 * limits, and uWS on its own port; and it serves every path on the HTTP server through one UpgradeRouter.
 *
 * A gateway picks its kind of endpoint by its options:
 * - `{ path, protocol: 'frames' }`: the frame socket (frame-socket.ts), served by the transport WS_TRANSPORT names;
 * - `{ path, maxPayload?, subprotocols? }`: a JSON socket on the HTTP server (plain-socket.ts).
 * The adapter only hands the calls on: TransportService (transport.module.ts) owns the endpoints, their options and
 * their start and stop.
 */
import type { INestApplicationContext, WebSocketAdapter, WsMessageHandler } from '@nestjs/common';
import type { Observable } from 'rxjs';
import { WebSocket } from 'ws';
import { FrameClient, type FrameSocketServer } from './frame-socket';
import { PlainSocketServer, type PlainSocketOptions } from './plain-socket';
import { TransportService } from './transport.module';

/** The options of `@WebSocketGateway<SocketGatewayOptions>(...)` on this adapter. */
export type SocketGatewayOptions = { path: string; protocol: 'frames' } | (PlainSocketOptions & { protocol?: 'json' });

export type SocketServer = FrameSocketServer | PlainSocketServer;
export type SocketClient = FrameClient | WebSocket;

export class FaceidSocketAdapter implements WebSocketAdapter<SocketServer, SocketClient, SocketGatewayOptions> {
  constructor(private readonly app: INestApplicationContext) {}

  private transport(): TransportService {
    try {
      return this.app.get(TransportService, { strict: false });
    } catch {
      throw new Error('A WebSocket gateway needs TransportModule in the application (it owns the endpoints).');
    }
  }

  create(port: number, options?: SocketGatewayOptions): SocketServer {
    if (!options?.path) throw new Error('A WebSocket gateway on FaceidSocketAdapter needs a path.');
    return this.transport().createServer(port, options);
  }

  bindClientConnect(server: SocketServer, callback: (...args: unknown[]) => void): void {
    server.onConnection(callback);
  }

  bindClientDisconnect(client: SocketClient, callback: () => void): void {
    if (client instanceof FrameClient) client.onDisconnect(callback);
    else client.once('close', () => callback());
  }

  bindMessageHandlers(
    client: SocketClient,
    handlers: WsMessageHandler[],
    _transform: (data: unknown) => Observable<unknown>,
  ): void {
    // Handlers answer through the client (sendJson, send); what they return is not sent.
    if (client instanceof FrameClient) client.bindHandlers(handlers);
    else PlainSocketServer.bindHandlers(client, handlers);
  }

  async close(server: SocketServer): Promise<void> {
    await this.transport().closeServer(server);
  }

  async dispose(): Promise<void> {
    this.transport().dispose();
  }
}

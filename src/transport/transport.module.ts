import {
  Inject,
  Injectable,
  Logger,
  Module,
  Optional,
  type BeforeApplicationShutdown,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import { HttpAdapterHost, ModuleRef } from '@nestjs/core';
import type { Server } from 'node:http';
import { CONFIG, type Config } from '../config';
import { DrainService } from '../fleet/drain.service';
import { MetricsService } from '../metrics/metrics.service';
import type { AuthResult, SessionTransportHandler } from './connection';
import { FrameSocketServer } from './frame-socket';
import type { Clock } from './limits';
import { PlainSocketServer } from './plain-socket';
import { WS_CLOSE } from './protocol';
import type { SocketGatewayOptions, SocketServer } from './socket.adapter';
import { report, type TransportKind, type TransportOptions } from './transport';
import { UpgradeRouter } from './upgrade-router';
import { UwsTransport } from './uws.transport';
import { WsTransport } from './ws.transport';

/**
 * DI token of an optional Clock (ms) for the connections' limits, looked up app-wide; tests provide one they move
 * themselves.
 */
export const TRANSPORT_CLOCK = Symbol('TRANSPORT_CLOCK');

/**
 * Owns the WebSocket endpoints of the app's gateways (FaceidSocketAdapter creates them through createServer, at
 * app.init()) and the HTTP server's one UpgradeRouter. On bootstrap, after every module is initialised, it starts
 * them: a frames endpoint on the transport WS_TRANSPORT names (ws: routed on the HTTP server; uws: its own port,
 * WS_PORT_UWS), a JSON endpoint on the router; then the router takes the server's upgrades. Nest stops the endpoints
 * (adapter.close) after every beforeApplicationShutdown hook and before the HTTP server closes, since open
 * WebSockets would otherwise hold that close up.
 */
@Injectable()
export class TransportService implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger('Transport');
  private readonly servers: SocketServer[] = [];
  private router: UpgradeRouter | undefined;
  private started = false;
  /** Upgrades of the frame socket whose token is being checked (not yet connections): a drain waits for them too. */
  private authenticating = 0;
  private untrack: (() => void) | undefined;

  constructor(
    @Inject(CONFIG) private readonly config: Config,
    private readonly adapterHost: HttpAdapterHost,
    private readonly moduleRef: ModuleRef,
    @Optional() private readonly metrics?: MetricsService,
    @Optional() private readonly drain?: DrainService,
  ) {}

  /** The endpoint of a gateway (FaceidSocketAdapter.create). Gateways share the HTTP server's port (port 0). */
  createServer(port: number, options: SocketGatewayOptions): SocketServer {
    if (port !== 0) {
      throw new Error(
        `WebSocket gateway on ${options.path}: no own port on this adapter (uWS takes WS_PORT_UWS from the config).`,
      );
    }
    if (this.servers.some((s) => s.path === options.path)) {
      throw new Error(`Two WebSocket gateways on the path ${options.path}.`);
    }
    if (options.protocol === 'frames' && this.frameServer()) {
      throw new Error('One frames gateway per application: its transport and limits are configured app-wide.');
    }
    const server =
      options.protocol === 'frames'
        ? new FrameSocketServer(options.path, (client, detail) =>
            report(
              { metrics: this.metrics, logger: this.logger },
              'handler_failed',
              `A handler failed on connection ${client.id}: ${detail}`,
              'error',
            ),
          )
        : new PlainSocketServer(options);
    this.servers.push(server);
    return server;
  }

  /** Stops an endpoint (FaceidSocketAdapter.close, at app.close()). */
  async closeServer(server: SocketServer): Promise<void> {
    const i = this.servers.indexOf(server);
    if (i >= 0) this.servers.splice(i, 1);
    await server.stop();
  }

  /** FaceidSocketAdapter.dispose: the router lets the server's upgrades go. */
  dispose(): void {
    this.router?.detach();
  }

  /**
   * The handler as the transport sees it: while the gateway drains, a new connection is refused with 1013 `draining`
   * before its token is looked at (so it stays unused, for another gateway); the rest is passed through.
   */
  private gated(handler: SessionTransportHandler): SessionTransportHandler {
    const drain = this.drain;
    if (!drain) return handler;
    const refusal: AuthResult = { ok: false, closeCode: WS_CLOSE.draining, reason: 'draining' };
    return {
      authenticate: async (req) => {
        if (drain.draining) return refusal;
        this.authenticating++;
        try {
          return await handler.authenticate(req);
        } finally {
          this.authenticating--;
        }
      },
      onOpen: (conn, sessionId) => handler.onOpen(conn, sessionId),
      onFrame: (conn, frame) => handler.onFrame(conn, frame),
      onText: (conn, text) => handler.onText(conn, text),
      onClose: (conn, code) => handler.onClose(conn, code),
    };
  }

  /** The clock of the connections' limits: a TRANSPORT_CLOCK provider anywhere in the app, else undefined (real). */
  private clock(): Clock | undefined {
    try {
      return this.moduleRef.get<Clock>(TRANSPORT_CLOCK, { strict: false });
    } catch {
      return undefined;
    }
  }

  private httpServer(): Server {
    return this.adapterHost.httpAdapter.getHttpServer() as Server;
  }

  private transportOptions(handler: SessionTransportHandler): TransportOptions {
    const c = this.config;
    const server = this.httpServer();
    const httpPort = (): number | null => {
      const address = server.address();
      return address && typeof address === 'object' ? address.port : c.PORT || null;
    };
    return {
      handler,
      maxPayload: c.WS_MAX_PAYLOAD,
      origins: { allowed: c.WS_ALLOWED_ORIGINS, httpPort },
      limits: {
        messagesPerSecond: c.WS_MESSAGES_PER_SECOND,
        errorsPerMinute: c.WS_ERRORS_PER_MINUTE,
        sendBufferMax: c.WS_SEND_BUFFER_MAX,
      },
      now: this.clock(),
      metrics: this.metrics,
      logger: this.logger,
    };
  }

  private frameServer(): FrameSocketServer | undefined {
    return this.servers.find((s): s is FrameSocketServer => s instanceof FrameSocketServer);
  }

  async onApplicationBootstrap(): Promise<void> {
    if (this.started || this.servers.length === 0) return;
    this.started = true;
    const router = (this.router ??= new UpgradeRouter(this.httpServer()));
    for (const server of this.servers) {
      if (server instanceof PlainSocketServer) {
        server.start(router.route(server.path, server.handleUpgrade));
        continue;
      }
      const options = this.transportOptions(this.gated(server));
      if (this.config.WS_TRANSPORT === 'uws') {
        const transport = new UwsTransport({
          ...options,
          host: this.config.HOST,
          port: this.config.WS_PORT_UWS,
          path: server.path,
        });
        await transport.start();
        server.serveWith(transport);
      } else {
        const transport = new WsTransport(this.httpServer(), options, server.path);
        await transport.start();
        server.serveWith(transport, router.route(server.path, transport.handleUpgrade));
      }
      // A drain waits for the face sessions running here: open connections and those being admitted.
      this.untrack = this.drain?.track('face sessions', () => this.connections() + this.authenticating);
    }
    router.attach();
  }

  async beforeApplicationShutdown(): Promise<void> {
    this.untrack?.();
    this.untrack = undefined;
  }

  /** Where the frame socket's clients connect: the kind, the port (null for ws before the HTTP server listens) and the path. */
  info(): { kind: TransportKind; port: number | null; path: string } | null {
    const server = this.frameServer();
    const kind = server?.kind;
    return server && kind ? { kind, port: server.port(), path: server.path } : null;
  }

  /** Open connections of the frame socket (past the handshake). */
  connections(): number {
    return this.frameServer()?.connections ?? 0;
  }
}

/**
 * Import it from the module of a gateway on FaceidSocketAdapter. Needs ConfigModule (global); MetricsService and
 * DrainService are used when the app has them.
 */
@Module({
  providers: [TransportService],
  exports: [TransportService],
})
export class TransportModule {}

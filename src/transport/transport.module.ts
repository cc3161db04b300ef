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
import { SESSION_TRANSPORT_HANDLER, type AuthResult, type SessionTransportHandler } from './connection';
import type { Clock } from './limits';
import { WS_CLOSE, WS_PATH } from './protocol';
import type { TransportKind, WebSocketTransport } from './transport';
import { UwsTransport } from './uws.transport';
import { WsTransport } from './ws.transport';

/**
 * DI token of an optional Clock (ms) for the connections' limits, looked up app-wide like the handler; tests provide
 * one they move themselves.
 */
export const TRANSPORT_CLOCK = Symbol('TRANSPORT_CLOCK');

/**
 * Starts the WebSocket transport chosen by WS_TRANSPORT and connects it to the SessionTransportHandler that some
 * module provides under SESSION_TRANSPORT_HANDLER (looked up app-wide, so that module can import this one
 * without a cycle). Starts on bootstrap, after every module is initialised; stops before the HTTP server closes,
 * because open WebSockets would otherwise hold that close up.
 */
@Injectable()
export class TransportService implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger('Transport');
  private transport: WebSocketTransport | undefined;
  /** Upgrades whose token is being checked (not yet connections): a drain waits for them too. */
  private authenticating = 0;
  private untrack: (() => void) | undefined;

  constructor(
    @Inject(CONFIG) private readonly config: Config,
    private readonly adapterHost: HttpAdapterHost,
    private readonly moduleRef: ModuleRef,
    @Optional() private readonly metrics?: MetricsService,
    @Optional() private readonly drain?: DrainService,
  ) {}

  /**
   * The handler as the adapters see it: while the gateway drains, a new connection is refused with 1013 `draining`
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

  async onApplicationBootstrap(): Promise<void> {
    let handler: SessionTransportHandler;
    try {
      handler = this.moduleRef.get<SessionTransportHandler>(SESSION_TRANSPORT_HANDLER, { strict: false });
    } catch {
      throw new Error('TransportModule is imported but no provider is registered under SESSION_TRANSPORT_HANDLER.');
    }
    const c = this.config;
    const server = this.adapterHost.httpAdapter.getHttpServer() as Server;
    const httpPort = (): number | null => {
      const address = server.address();
      return address && typeof address === 'object' ? address.port : c.PORT || null;
    };
    const common = {
      handler: this.gated(handler),
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
    const transport: WebSocketTransport =
      c.WS_TRANSPORT === 'uws'
        ? new UwsTransport({ ...common, host: c.HOST, port: c.WS_PORT_UWS })
        : new WsTransport(server, common);
    await transport.start();
    this.transport = transport;
    // A drain waits for the face sessions running here: open identification connections and those being admitted.
    this.untrack = this.drain?.track('face sessions', () => this.connections() + this.authenticating);
  }

  async beforeApplicationShutdown(): Promise<void> {
    this.untrack?.();
    const transport = this.transport;
    this.transport = undefined;
    await transport?.stop();
  }

  /** Where clients connect: the kind, the port (null for ws before the HTTP server listens) and the path. */
  info(): { kind: TransportKind; port: number | null; path: string } | null {
    const t = this.transport;
    return t ? { kind: t.kind, port: t.port(), path: WS_PATH } : null;
  }

  /** Open WebSocket connections (past the handshake). */
  connections(): number {
    return this.transport?.connections ?? 0;
  }
}

/** Import it from the module that provides SESSION_TRANSPORT_HANDLER. Needs ConfigModule (global). */
@Module({
  providers: [TransportService],
  exports: [TransportService],
})
export class TransportModule {}

/**
 * `/ws/events` on the HTTP server (ws, noServer): a clinic's events pushed to its MIS or workstations, in seq order,
 * from a cursor. Protocol (docs/mis-integration.md):
 * - subprotocols `faceid.events.v1` (echoed) and `key.<apiKey>`, or an `Authorization: Bearer <apiKey>` header;
 *   an MIS key or a workstation key, each limited to its clinic;
 * - `?after=<eventId>`: everything after that event, then live events; without it, live events only;
 * - first `{"type":"ready","cursor":<id of the event the stream starts after, or null>}`, so a client that drops
 *   before its first event can still resume without a gap; then `{"type":"event","event":{...}}` messages;
 *   on a refusal `{"type":"error","code","message"}`
 *   and a close (see EVENTS_WS_CLOSE). The client sends nothing (pings are answered by the library).
 * The handshake always completes and refusals are close codes, because browsers hide HTTP refusals from scripts.
 */
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import {
  Inject,
  Injectable,
  Logger,
  type BeforeApplicationShutdown,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import { WebSocket, WebSocketServer } from 'ws';
import { bearerToken } from '../auth';
import { CONFIG, type Config } from '../config';
import { MetricsService } from '../metrics/metrics.service';
import { EVENTS, type EventRepository } from '../storage/ports';
import { WS_PATH as IDENTIFY_WS_PATH } from '../transport';
import { EventFeed } from './event-feed';
import { EventReaderAuth, type EventReader } from './reader-auth';

export const EVENTS_WS_PATH = '/ws/events';
export const EVENTS_SUBPROTOCOL = 'faceid.events.v1';
export const KEY_SUBPROTOCOL_PREFIX = 'key.';

export const EVENTS_WS_CLOSE = {
  going_away: 1001,
  internal: 1011,
  unauthorized: 4001,
  invalid_request: 4400,
  cursor_unknown: 4404,
  /** rate_limited or too_many_connections: try again later. */
  try_later: 4429,
} as const;

/** Connections per clinic: an MIS needs a few, each workstation's page may hold one. */
export const MAX_CONNECTIONS_PER_CLINIC = 100;
/** Events read per query. */
const BATCH = 100;
/** Above this many bytes queued for a client, no more events are read for it until they are written out. */
export const HIGH_WATER_BYTES = 1 << 20;
/** Ping every this often; a client that did not answer the previous ping is cut off. */
const HEARTBEAT_MS = 30_000;
/** How long stop() waits for clients to answer the 1001 close. */
const STOP_GRACE_MS = 1000;

export interface EventsServerMessage {
  type: 'ready' | 'event' | 'error';
  [key: string]: unknown;
}

/** What a subscriber needs of a socket (ws's WebSocket; a fake in the unit test). */
export interface SubscriberSocket {
  readonly readyState: number;
  readonly bufferedAmount: number;
  send(data: string, cb?: (err?: Error) => void): void;
  close(code: number, reason: string): void;
  once(event: 'close', listener: () => void): unknown;
}

/**
 * One connection's delivery: reads the clinic's events after its position, sends them, moves on. Pumps are serial
 * (a wake while pumping just asks for another pass), so messages leave strictly in seq order with no gap.
 */
export class Subscriber {
  private pumping = false;
  private dirty = false;
  private closed = false;
  private readonly gone: Promise<void>;

  constructor(
    readonly socket: SubscriberSocket,
    readonly reader: EventReader,
    /** seq of the last event sent (or skipped, for a live-only start). */
    public seq: number,
    private readonly events: Pick<EventRepository, 'after'>,
    private readonly onFailure: (err: unknown) => void,
  ) {
    this.gone = new Promise<void>((resolve) =>
      socket.once('close', () => {
        this.closed = true;
        resolve();
      }),
    );
  }

  get open(): boolean {
    return !this.closed && this.socket.readyState === WebSocket.OPEN;
  }

  /** New events may exist. */
  wake(): void {
    if (!this.open) return;
    if (this.pumping) {
      this.dirty = true;
      return;
    }
    this.pumping = true;
    void this.pump().finally(() => {
      this.pumping = false;
    });
  }

  private async pump(): Promise<void> {
    try {
      do {
        this.dirty = false;
        while (this.open) {
          const batch = await this.events.after(this.reader.clinicId, this.seq, BATCH);
          if (!this.open || batch.length === 0) break;
          let flushed: Promise<void> | undefined;
          for (const [i, e] of batch.entries()) {
            const text = JSON.stringify({ type: 'event', event: e.payload });
            if (i < batch.length - 1) this.socket.send(text);
            else flushed = new Promise<void>((resolve) => this.socket.send(text, () => resolve()));
            this.seq = e.seq;
          }
          // Backpressure: no more reading while a slow client has more than HIGH_WATER_BYTES queued; the last send's
          // callback runs once its bytes reached the OS.
          if (this.socket.bufferedAmount > HIGH_WATER_BYTES) await Promise.race([flushed, this.gone]);
          if (batch.length < BATCH) break;
        }
      } while (this.dirty && this.open);
    } catch (err) {
      this.onFailure(err);
    }
  }
}

interface Refusal {
  code: string;
  message: string;
  close: number;
}

function refusalOf(err: unknown): Refusal {
  const code = (err as { code?: unknown })?.code;
  const message = (err as Error)?.message ?? '';
  if (code === 'unauthorized') return { code, message, close: EVENTS_WS_CLOSE.unauthorized };
  if (code === 'rate_limited') return { code, message, close: EVENTS_WS_CLOSE.try_later };
  if (code === 'cursor_unknown') return { code, message, close: EVENTS_WS_CLOSE.cursor_unknown };
  return { code: 'internal', message: 'Internal error.', close: EVENTS_WS_CLOSE.internal };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The events WebSocket server, attached to the HTTP server's 'upgrade' for its one path. */
@Injectable()
export class EventsSocketServer implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger('EventsSocket');
  private readonly wss = new WebSocketServer({
    noServer: true,
    maxPayload: 4096, // clients send nothing but control frames
    perMessageDeflate: false,
    clientTracking: false,
    handleProtocols: (offered) => (offered.has(EVENTS_SUBPROTOCOL) ? EVENTS_SUBPROTOCOL : false),
  });
  /** Every open socket, subscribed or still being admitted. */
  private readonly sockets = new Set<WebSocket>();
  private readonly byClinic = new Map<string, Set<Subscriber>>();
  private readonly alive = new WeakSet<WebSocket>();
  private server: Server | undefined;
  private unsubscribe: (() => void) | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private polling = false;
  private started = false;

  constructor(
    @Inject(CONFIG) private readonly config: Config,
    @Inject(EVENTS) private readonly events: EventRepository,
    private readonly adapterHost: HttpAdapterHost,
    private readonly auth: EventReaderAuth,
    private readonly feed: EventFeed,
    private readonly metrics: MetricsService,
  ) {}

  onApplicationBootstrap(): void {
    this.server = this.adapterHost.httpAdapter.getHttpServer() as Server;
    this.server.on('upgrade', this.onUpgrade);
    this.unsubscribe = this.events.onCommitted((clinicId) => this.wakeClinic(clinicId));
    this.pollTimer = setInterval(() => void this.poll(), this.config.EVENTS_POLL_MS);
    this.pollTimer.unref();
    this.heartbeatTimer = setInterval(() => this.heartbeat(), HEARTBEAT_MS);
    this.heartbeatTimer.unref();
    this.started = true;
  }

  /** Closes every connection with 1001 (waiting briefly for the closing handshakes), then stops. */
  async beforeApplicationShutdown(): Promise<void> {
    if (!this.started) return;
    this.started = false;
    this.server?.off('upgrade', this.onUpgrade);
    this.unsubscribe?.();
    clearInterval(this.pollTimer);
    clearInterval(this.heartbeatTimer);
    const closed = [...this.sockets].map(
      (socket) =>
        new Promise<void>((resolve) => {
          socket.once('close', () => resolve());
          socket.close(EVENTS_WS_CLOSE.going_away, 'server_stopping');
        }),
    );
    await Promise.race([Promise.all(closed), new Promise((r) => setTimeout(r, STOP_GRACE_MS).unref())]);
    for (const socket of this.sockets) socket.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }

  /** Open connections (subscribed or being admitted). */
  get connections(): number {
    return this.sockets.size;
  }

  private readonly onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname !== EVENTS_WS_PATH) {
      // The identification transport serves its path on this server too; other paths get a 404 from here, since
      // each listener leaves paths it does not own to the others.
      const servedElsewhere = url.pathname === IDENTIFY_WS_PATH && (this.server?.listenerCount('upgrade') ?? 0) > 1;
      if (!servedElsewhere) socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    socket.on('error', () => socket.destroy()); // a reset during the handshake must not crash the process
    this.wss.handleUpgrade(req, socket, head, (ws) => void this.admit(ws, req, url.searchParams));
  };

  private async admit(socket: WebSocket, req: IncomingMessage, query: URLSearchParams): Promise<void> {
    this.sockets.add(socket);
    this.alive.add(socket);
    socket.on('pong', () => this.alive.add(socket));
    socket.on('error', () => undefined); // ws closes the socket itself; the 'close' handler cleans up
    socket.on('close', () => this.sockets.delete(socket));
    try {
      const reader = await this.auth.authenticate(keyOf(req), req.socket.remoteAddress ?? 'unknown');
      const after = query.get('after');
      if (after !== null && !UUID.test(after)) {
        return this.refuse(socket, {
          code: 'invalid_request',
          message: 'after must be an event id (a UUID).',
          close: EVENTS_WS_CLOSE.invalid_request,
        });
      }
      const seq = after === null ? await this.feed.latestSeq(reader.clinicId) : await this.feed.seqOf(reader.clinicId, after);
      if (socket.readyState !== WebSocket.OPEN || !this.started) return;
      const clinic = this.byClinic.get(reader.clinicId) ?? new Set<Subscriber>();
      if (clinic.size >= MAX_CONNECTIONS_PER_CLINIC) {
        return this.refuse(socket, {
          code: 'too_many_connections',
          message: `At most ${MAX_CONNECTIONS_PER_CLINIC} event connections per clinic.`,
          close: EVENTS_WS_CLOSE.try_later,
        });
      }
      const sub = new Subscriber(socket, reader, seq, this.events, (err) => {
        this.logger.error(`Event delivery failed on a ${reader.kind} connection: ${(err as Error)?.message ?? String(err)}`);
        this.refuse(socket, refusalOf(err));
      });
      clinic.add(sub);
      this.byClinic.set(reader.clinicId, clinic);
      this.metrics.eventSubscriberOpened();
      socket.once('close', () => {
        this.metrics.eventSubscriberClosed();
        clinic.delete(sub);
        if (clinic.size === 0 && this.byClinic.get(reader.clinicId) === clinic) this.byClinic.delete(reader.clinicId);
      });
      // The position as an id: a client that drops before its first event resumes from here, not from "live".
      const cursor = after ?? (seq > 0 ? ((await this.events.after(reader.clinicId, seq - 1, 1))[0]?.id ?? null) : null);
      if (socket.readyState !== WebSocket.OPEN) return;
      socket.send(JSON.stringify({ type: 'ready', cursor }));
      this.logger.debug(`Events subscriber (${reader.kind}) connected${after === null ? ', live' : ', resuming'}`);
      sub.wake(); // also catches events committed between reading the position and registering
    } catch (err) {
      const refusal = refusalOf(err);
      if (refusal.code === 'internal') {
        this.logger.error(`Events subscription failed: ${(err as Error)?.message ?? String(err)}`);
      }
      this.refuse(socket, refusal);
    }
  }

  private refuse(socket: WebSocket, r: Refusal): void {
    if (socket.readyState !== WebSocket.OPEN) return;
    socket.send(JSON.stringify({ type: 'error', code: r.code, message: r.message }));
    socket.close(r.close, r.code);
  }

  private wakeClinic(clinicId: string): void {
    for (const sub of this.byClinic.get(clinicId) ?? []) sub.wake();
  }

  /** Events other instances wrote: one query per clinic with subscribers. */
  private async poll(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      for (const [clinicId, subs] of [...this.byClinic]) {
        const latest = await this.events.latestSeq(clinicId);
        for (const sub of subs) if (sub.seq < latest) sub.wake();
      }
    } catch (err) {
      this.logger.warn(`Polling for events failed: ${(err as Error).message}`);
    } finally {
      this.polling = false;
    }
  }

  private heartbeat(): void {
    for (const socket of this.sockets) {
      if (!this.alive.has(socket)) {
        socket.terminate();
        continue;
      }
      this.alive.delete(socket);
      socket.ping();
    }
  }
}

/** The API key: `Authorization: Bearer`, else the `key.<apiKey>` subprotocol (browsers cannot set headers). */
function keyOf(req: IncomingMessage): string | undefined {
  const header = bearerToken(req.headers);
  if (header) return header;
  const offered = String(req.headers['sec-websocket-protocol'] ?? '')
    .split(',')
    .map((p) => p.trim());
  return offered.find((p) => p.startsWith(KEY_SUBPROTOCOL_PREFIX))?.slice(KEY_SUBPROTOCOL_PREFIX.length) || undefined;
}

/**
 * `/ws/events` on the HTTP server (ws, noServer): a clinic's events pushed to its MIS or workstations, in seq order,
 * from a cursor. Protocol (docs/mis-integration.md):
 * - subprotocols `faceid.events.v1` (echoed) and `key.<apiKey>`, or an `Authorization: Bearer <apiKey>` header;
 *   an MIS key (every event of its clinic) or a workstation key (the identification outcomes of its own sessions);
 *   a few connections per key, and the workstations of a clinic share a pool the MIS never competes for;
 * - a connection whose key is revoked (or whose grace after a rotation ends) is closed with 4003;
 * - `?after=<eventId>`: everything after that event, then live events; without it, live events only;
 * - first `{"type":"ready","cursor":<id of the event the stream starts after, or null>}`, so a client that drops
 *   before its first event can still resume without a gap; then `{"type":"event","event":{...}}` messages;
 *   on a refusal `{"type":"error","code","message"}`
 *   and a close (see EVENTS_WS_CLOSE). The client sends nothing (pings are answered by the library).
 * The handshake always completes and refusals are close codes, because browsers hide HTTP refusals from scripts.
 *
 * A Nest gateway on FaceidSocketAdapter (src/transport/socket.adapter.ts): the HTTP server's upgrade router sends this
 * path here, the adapter's JSON endpoint runs the handshake (subprotocol, 4 KiB message limit) and closes every
 * connection with 1001 on shutdown.
 */
import type { IncomingMessage } from 'node:http';
import { Inject, Logger, type BeforeApplicationShutdown, type OnApplicationBootstrap } from '@nestjs/common';
import { WebSocketGateway, type OnGatewayConnection } from '@nestjs/websockets';
import { WebSocket } from 'ws';
import { bearerToken, hashApiKey } from '../auth';
import { CONFIG, type Config } from '../config';
import { clientAddress, compileTrustedProxies } from '../config/proxies';
import { KeysService } from '../keys/keys.service';
import { MetricsService } from '../metrics/metrics.service';
import { EVENTS, KEYS, type EventFilter, type EventRepository, type KeyRepository } from '../storage/ports';
import { SIGNALS, type EventsNotice, type StorageSignals } from '../storage/signals';
import type { SocketGatewayOptions } from '../transport/socket.adapter';
import { EventFeed } from './event-feed';
import { EventReaderAuth, filterOf, type EventReader } from './reader-auth';

export const EVENTS_WS_PATH = '/ws/events';
export const EVENTS_SUBPROTOCOL = 'faceid.events.v1';
export const KEY_SUBPROTOCOL_PREFIX = 'key.';

export const EVENTS_WS_CLOSE = {
  going_away: 1001,
  internal: 1011,
  unauthorized: 4001,
  /** key_revoked or key_expired: the key of an open connection was revoked, or its grace after a rotation ended. */
  key_revoked: 4003,
  invalid_request: 4400,
  cursor_unknown: 4404,
  /** rate_limited or too_many_connections: try again later. */
  try_later: 4429,
} as const;

/**
 * Connections per key holder (its current key and any previous one in its grace together): an MIS needs a few, each
 * page of a desk holds one (a few tabs, a reconnect). One key cannot take a clinic's connections.
 */
export const MAX_CONNECTIONS_PER_MIS_CLIENT = 10;
export const MAX_CONNECTIONS_PER_WORKSTATION = 16;
/** The workstations of one clinic together; MIS connections never count against it. */
export const MAX_WORKSTATION_CONNECTIONS_PER_CLINIC = 200;
/** Events read per query. */
const BATCH = 100;
/** Above this many bytes queued for a client, no more events are read for it until they are written out. */
export const HIGH_WATER_BYTES = 1 << 20;
/** Ping every this often; a client that did not answer the previous ping is cut off. */
const HEARTBEAT_MS = 30_000;

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
 * (a wake while pumping just asks for another pass), so messages leave strictly in seq order with no gap. A
 * workstation's subscriber reads its own sessions' events only, and moves its position past the others it skipped.
 */
export class Subscriber {
  private pumping = false;
  private dirty = false;
  private closed = false;
  private readonly gone: Promise<void>;
  private readonly filter: EventFilter | undefined;

  constructor(
    readonly socket: SubscriberSocket,
    readonly reader: EventReader,
    /** seq of the last event sent (or skipped: for a live-only start, or hidden from this reader). */
    public seq: number,
    private readonly events: Pick<EventRepository, 'after'> & Partial<Pick<EventRepository, 'latestSeq'>>,
    private readonly onFailure: (err: unknown) => void,
  ) {
    this.filter = filterOf(reader);
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
        // A filtered reader first notes the clinic's newest seq: every event up to it has committed (one clinic's
        // events commit in seq order), so once its own are sent, the others up to it are behind it too.
        const latest = this.filter && this.events.latestSeq ? await this.events.latestSeq(this.reader.clinicId) : 0;
        let drained = false;
        while (this.open) {
          const batch = await this.events.after(this.reader.clinicId, this.seq, BATCH, this.filter);
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
          if (batch.length < BATCH) {
            drained = true;
            break;
          }
        }
        if (drained && latest > this.seq) this.seq = latest;
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
  if (code === 'key_revoked' || code === 'key_expired') return { code, message, close: EVENTS_WS_CLOSE.key_revoked };
  if (code === 'rate_limited') return { code, message, close: EVENTS_WS_CLOSE.try_later };
  if (code === 'cursor_unknown') return { code, message, close: EVENTS_WS_CLOSE.cursor_unknown };
  return { code: 'internal', message: 'Internal error.', close: EVENTS_WS_CLOSE.internal };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The events WebSocket gateway (/ws/events). */
@WebSocketGateway<SocketGatewayOptions>({
  path: EVENTS_WS_PATH,
  maxPayload: 4096, // clients send nothing but control frames
  subprotocols: [EVENTS_SUBPROTOCOL],
})
export class EventsSocketServer
  implements OnGatewayConnection<WebSocket>, OnApplicationBootstrap, BeforeApplicationShutdown
{
  private readonly logger = new Logger('EventsSocket');
  /** Every open socket, subscribed or still being admitted. */
  private readonly sockets = new Set<WebSocket>();
  private readonly byClinic = new Map<string, Set<Subscriber>>();
  /** Subscribers per key holder (`mis:<id>`, `workstation:<id>`), for the per-key cap. */
  private readonly byHolder = new Map<string, Set<Subscriber>>();
  /** Workstation subscribers per clinic, for the clinic's workstation pool. */
  private readonly workstationsByClinic = new Map<string, number>();
  /** The sha256 of the key each subscriber connected with: checked again on every poll and after key changes. */
  private readonly keyHashes = new Map<Subscriber, string>();
  private readonly trusted: (address: string) => boolean;
  private unsubscribeKeys: (() => void) | undefined;
  private checkingKeys = false;
  private checkKeysAgain = false;
  private readonly alive = new WeakSet<WebSocket>();
  private unsubscribe: (() => void) | undefined;
  private unsubscribeResync: (() => void) | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private polling = false;
  private started = false;

  constructor(
    @Inject(CONFIG) private readonly config: Config,
    @Inject(EVENTS) private readonly events: EventRepository,
    private readonly auth: EventReaderAuth,
    private readonly feed: EventFeed,
    private readonly metrics: MetricsService,
    @Inject(KEYS) private readonly keys: KeyRepository,
    private readonly keyChanges: KeysService,
    @Inject(SIGNALS) private readonly signals: StorageSignals,
  ) {
    this.trusted = compileTrustedProxies(config.TRUSTED_PROXIES);
  }

  onApplicationBootstrap(): void {
    // This process's commits at once; with PostgreSQL, other gateways' and the CLI's too (LISTEN/NOTIFY).
    this.unsubscribe = this.signals.onEvents((notice) => this.onEvents(notice));
    // The listener (re)connected: what was committed while it was not listening is found now, not at the next poll.
    this.unsubscribeResync = this.signals.onResync(() => void this.poll());
    // A revocation in this process closes its connections at once; another process's (the admin CLI, another
    // gateway) too with PostgreSQL, by its key_changed event's notification; otherwise the poll finds it.
    this.unsubscribeKeys = this.keyChanges.onChanged((notice) => {
      if (notice.change !== 'created') void this.checkKeys();
    });
    this.pollTimer = setInterval(() => void this.poll(), this.config.EVENTS_POLL_MS);
    this.pollTimer.unref();
    this.heartbeatTimer = setInterval(() => this.heartbeat(), HEARTBEAT_MS);
    this.heartbeatTimer.unref();
    this.started = true;
  }

  /**
   * Stops the polls, the heartbeat and the signals; no connection is admitted from here on. The adapter then closes
   * every connection with 1001 (EVENTS_WS_CLOSE.going_away), before the HTTP server and the database close.
   */
  beforeApplicationShutdown(): void {
    if (!this.started) return;
    this.started = false;
    this.unsubscribe?.();
    this.unsubscribeResync?.();
    this.unsubscribeKeys?.();
    clearInterval(this.pollTimer);
    clearInterval(this.heartbeatTimer);
  }

  /** Open connections (subscribed or being admitted). */
  get connections(): number {
    return this.sockets.size;
  }

  /** A connection past the handshake: admitted by its key (or refused with a close code). */
  handleConnection(socket: WebSocket, req: IncomingMessage): void {
    void this.admit(socket, req, new URL(req.url ?? '/', 'http://localhost').searchParams);
  }

  private async admit(socket: WebSocket, req: IncomingMessage, query: URLSearchParams): Promise<void> {
    this.sockets.add(socket);
    this.alive.add(socket);
    socket.on('pong', () => this.alive.add(socket));
    socket.on('close', () => this.sockets.delete(socket));
    try {
      const key = keyOf(req);
      const ip = clientAddress(req.socket.remoteAddress, req.headers['x-forwarded-for'], this.trusted);
      const reader = await this.auth.authenticate(key, ip);
      const keyHash = hashApiKey(key!); // authenticate() accepted it, so there is one
      const filter = filterOf(reader);
      const after = query.get('after');
      if (after !== null && !UUID.test(after)) {
        return this.refuse(socket, {
          code: 'invalid_request',
          message: 'after must be an event id (a UUID).',
          close: EVENTS_WS_CLOSE.invalid_request,
        });
      }
      const seq =
        after === null
          ? await this.feed.latestSeq(reader.clinicId)
          : await this.feed.seqOf(reader.clinicId, after, filter);
      if (socket.readyState !== WebSocket.OPEN || !this.started) return;
      // No await from these checks to the registration below: concurrent admissions cannot both take a last slot.
      const holder = `${reader.kind}:${reader.id}`;
      const perKey = reader.kind === 'mis' ? MAX_CONNECTIONS_PER_MIS_CLIENT : MAX_CONNECTIONS_PER_WORKSTATION;
      if ((this.byHolder.get(holder)?.size ?? 0) >= perKey) {
        return this.refuse(socket, {
          code: 'too_many_connections',
          message: `At most ${perKey} event connections per ${reader.kind === 'mis' ? 'MIS' : 'workstation'} key.`,
          close: EVENTS_WS_CLOSE.try_later,
        });
      }
      const desks = this.workstationsByClinic.get(reader.clinicId) ?? 0;
      if (reader.kind === 'workstation' && desks >= MAX_WORKSTATION_CONNECTIONS_PER_CLINIC) {
        return this.refuse(socket, {
          code: 'too_many_connections',
          message: `At most ${MAX_WORKSTATION_CONNECTIONS_PER_CLINIC} workstation event connections per clinic.`,
          close: EVENTS_WS_CLOSE.try_later,
        });
      }
      const sub = new Subscriber(socket, reader, seq, this.events, (err) => {
        this.logger.error(
          `Event delivery failed on a ${reader.kind} connection: ${(err as Error)?.message ?? String(err)}`,
        );
        this.refuse(socket, refusalOf(err));
      });
      const clinic = this.byClinic.get(reader.clinicId) ?? new Set<Subscriber>();
      clinic.add(sub);
      this.byClinic.set(reader.clinicId, clinic);
      const ofHolder = this.byHolder.get(holder) ?? new Set<Subscriber>();
      ofHolder.add(sub);
      this.byHolder.set(holder, ofHolder);
      if (reader.kind === 'workstation') this.workstationsByClinic.set(reader.clinicId, desks + 1);
      this.keyHashes.set(sub, keyHash);
      this.metrics.eventSubscriberOpened();
      socket.once('close', () => {
        this.metrics.eventSubscriberClosed();
        clinic.delete(sub);
        if (clinic.size === 0 && this.byClinic.get(reader.clinicId) === clinic) this.byClinic.delete(reader.clinicId);
        ofHolder.delete(sub);
        if (ofHolder.size === 0 && this.byHolder.get(holder) === ofHolder) this.byHolder.delete(holder);
        if (reader.kind === 'workstation') {
          const left = (this.workstationsByClinic.get(reader.clinicId) ?? 1) - 1;
          if (left > 0) this.workstationsByClinic.set(reader.clinicId, left);
          else this.workstationsByClinic.delete(reader.clinicId);
        }
        this.keyHashes.delete(sub);
      });
      // The position as an id: a client that drops before its first event resumes from here, not from "live". For
      // a workstation, its own last event (another's id would be no cursor for it).
      const cursor = after ?? (await this.feed.cursorAt(reader.clinicId, seq, filter));
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

  /** New events of a clinic (up to `seq` when known): its subscribers behind it read them. */
  private onEvents(notice: EventsNotice): void {
    for (const sub of this.byClinic.get(notice.clinicId) ?? []) {
      if (notice.seq === null || sub.seq < notice.seq) sub.wake();
    }
    // Another process rotated or revoked a key: the connections holding it may have to close.
    if (notice.type?.endsWith('.key_changed') && this.keyHashes.size > 0) void this.checkKeys();
  }

  /**
   * The safety net for events no signal announced (SQLite: another process such as the CLI; PostgreSQL: a
   * notification lost while the listener was reconnecting): one query per clinic with subscribers. Then the keys of
   * the open connections.
   */
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
    await this.checkKeys();
  }

  /**
   * Closes the connections whose key no longer works: revoked (4003 `key_revoked`), or a previous key whose grace
   * ended (4003 `key_expired`). One query for all open connections; runs on every poll (revocations by the admin CLI
   * or another instance) and at once after a key change in this process.
   */
  private async checkKeys(): Promise<void> {
    if (this.checkingKeys) {
      this.checkKeysAgain = true;
      return;
    }
    this.checkingKeys = true;
    try {
      do {
        this.checkKeysAgain = false;
        if (this.keyHashes.size === 0) continue;
        // The connections open now: one admitted while the query runs is checked next time, not judged unknown.
        const open = [...this.keyHashes];
        const states = await this.keys.states(
          open.map(([, hash]) => hash),
          new Date(),
        );
        for (const [sub, hash] of open) {
          if (!this.keyHashes.has(sub)) continue; // closed meanwhile
          const state = states.get(hash);
          if (state === 'current' || state === 'previous') continue;
          const expired = state === 'expired';
          this.logger.log(
            `Closing a ${sub.reader.kind} event connection: its key ${expired ? 'expired' : 'was revoked'}`,
          );
          this.keyHashes.delete(sub); // closed once
          this.refuse(sub.socket as WebSocket, {
            code: expired ? 'key_expired' : 'key_revoked',
            message: expired
              ? 'This key was replaced by a rotation and its grace has ended: connect with the current key.'
              : 'This key was revoked.',
            close: EVENTS_WS_CLOSE.key_revoked,
          });
        }
      } while (this.checkKeysAgain);
    } catch (err) {
      this.logger.warn(`Checking the keys of event connections failed: ${(err as Error).message}`);
    } finally {
      this.checkingKeys = false;
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

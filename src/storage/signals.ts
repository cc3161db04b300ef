/**
 * Signals between the gateway processes of a fleet: "a clinic has new events", "a session changed state".
 *
 * - SQLite (one machine, one gateway process): in-process only. The repositories emit after their commits; another
 *   process writing to the same file (the `faceid` CLI) is found by the readers' poll (EVENTS_POLL_MS), as before.
 * - PostgreSQL: the same in-process signals, plus LISTEN/NOTIFY. Transactions that write an event or change a
 *   session's state queue a pg_notify (notifyInTx in db.ts), which PostgreSQL delivers only on commit. Each process
 *   holds ONE dedicated listening connection (this file), reconnected with backoff when it drops (a PostgreSQL
 *   restart); after every (re)connection the readers are told to look at once (`onResync`), since notifications sent
 *   while it was down are lost. The readers keep a slow safety poll for the same reason.
 *
 * Payloads carry ids, a seq, an event type or a session state, never an IIN or biometric data:
 *   faceid_events    {"c": clinicId, "s": seq, "t": event type, "o": origin}
 *   faceid_sessions  {"id": sessionId, "st": new state, "o": origin}
 * `o` is the writing Db's random origin: a process skips its own notifications (its in-process signal came first).
 */
import { Client } from 'pg';
import type { EventType, SessionState } from './ports';

/** DI token of the application's StorageSignals (provided by StorageModule). */
export const SIGNALS = Symbol('StorageSignals');

export const EVENTS_CHANNEL = 'faceid_events';
export const SESSIONS_CHANNEL = 'faceid_sessions';

/** A clinic has events up to `seq` (null: unknown, look). `type` is known for other processes' events. */
export interface EventsNotice {
  clinicId: string;
  seq: number | null;
  type: EventType | null;
}

/** A session's state changed in another process. */
export interface SessionNotice {
  sessionId: string;
  state: SessionState;
}

/**
 * in_process: SQLite, nothing crosses processes; listening: the PostgreSQL listener is connected; connecting: it is
 * (re)connecting (the readers' safety poll covers the gap); stopped: closed.
 */
export type SignalsState = 'in_process' | 'listening' | 'connecting' | 'stopped';

export interface StorageSignals {
  /** Events were committed: by this process (at once) or, on PostgreSQL, by another. Returns the unsubscribe. */
  onEvents(listener: (notice: EventsNotice) => void): () => void;
  /** Another process changed a session's state (PostgreSQL only; this process's own changes are its callers'). */
  onSessionChanged(listener: (notice: SessionNotice) => void): () => void;
  /** The listener (re)connected: notifications may have been missed meanwhile, so look now. */
  onResync(listener: () => void): () => void;
  readonly state: SignalsState;
  /** Opens the PostgreSQL listening connection (no-op on SQLite or when started). The CLI never calls it. */
  start(): void;
  close(): Promise<void>;
}

/** What the listener needs to know of its process's writes (the repositories' in-process signal, the Db's origin). */
export interface SignalsSource {
  /** The repositories' in-process event signal (EventRepository.onCommitted). */
  onCommitted(listener: (clinicId: string) => void): () => void;
  /** The Db's origin: notifications carrying it are this process's own. */
  origin: string;
}

export interface PgListenerOptions {
  /** The PostgreSQL URL (the service's DATABASE_URL). */
  url: string;
  /** First reconnection delay, doubled per failed attempt up to maxDelayMs, with jitter (default 250 ms, 10 s). */
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** Checks the idle listening connection this often (a query with a timeout; default 30 s). */
  checkEveryMs?: number;
  /** Warnings and notes (never the URL). */
  log?: { warn(message: string): void; log(message: string): void };
  random?: () => number;
}

class Listeners<T> {
  private readonly set = new Set<(value: T) => void>();

  add(listener: (value: T) => void): () => void {
    this.set.add(listener);
    return () => this.set.delete(listener);
  }

  emit(value: T): void {
    for (const l of [...this.set]) {
      try {
        l(value);
      } catch {
        // A reader's failure is its own.
      }
    }
  }
}

const SESSION_STATES = new Set<string>(['created', 'connected', 'code_pending', 'finished', 'expired']);
const ID = /^[0-9A-Za-z_-]{1,64}$/;

/** Parses one notification; null for anything malformed (it is then ignored). */
export function parseNotice(
  channel: string,
  payload: string | undefined,
):
  | { kind: 'events'; notice: EventsNotice; origin: string | null }
  | { kind: 'session'; notice: SessionNotice; origin: string | null }
  | null {
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(payload ?? '') as Record<string, unknown>;
  } catch {
    return null;
  }
  if (typeof body !== 'object' || body === null) return null;
  const origin = typeof body.o === 'string' ? body.o : null;
  if (channel === EVENTS_CHANNEL) {
    if (typeof body.c !== 'string' || !ID.test(body.c)) return null;
    const seq = Number.isSafeInteger(body.s) ? (body.s as number) : null;
    const type = typeof body.t === 'string' && /^[a-z_]+\.[a-z_]+$/.test(body.t) ? (body.t as EventType) : null;
    return { kind: 'events', notice: { clinicId: body.c, seq, type }, origin };
  }
  if (channel === SESSIONS_CHANNEL) {
    if (typeof body.id !== 'string' || !ID.test(body.id)) return null;
    if (typeof body.st !== 'string' || !SESSION_STATES.has(body.st)) return null;
    return { kind: 'session', notice: { sessionId: body.id, state: body.st as SessionState }, origin };
  }
  return null;
}

/** Delay before reconnection attempt `attempt` (0 first): exponential with full jitter above half of it. */
export function reconnectDelayMs(
  attempt: number,
  baseMs: number,
  maxMs: number,
  random: () => number = Math.random,
): number {
  const cap = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.round(cap / 2 + (random() * cap) / 2);
}

/** The signals of one Storage: in-process always, and the PostgreSQL listener when `listener` options are given. */
export class Signals implements StorageSignals {
  private readonly events = new Listeners<EventsNotice>();
  private readonly sessions = new Listeners<SessionNotice>();
  private readonly resyncs = new Listeners<void>();
  private readonly unsubscribeLocal: () => void;
  private client: Client | null = null;
  private connecting = false;
  private attempt = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private checkTimer: NodeJS.Timeout | undefined;
  private started = false;
  private stopped = false;
  private lostOnce = false;

  constructor(
    private readonly source: SignalsSource,
    private readonly listener?: PgListenerOptions,
  ) {
    this.unsubscribeLocal = source.onCommitted((clinicId) => this.events.emit({ clinicId, seq: null, type: null }));
  }

  get state(): SignalsState {
    if (this.stopped) return 'stopped';
    if (!this.listener) return 'in_process';
    return this.client ? 'listening' : 'connecting';
  }

  onEvents(listener: (notice: EventsNotice) => void): () => void {
    return this.events.add(listener);
  }

  onSessionChanged(listener: (notice: SessionNotice) => void): () => void {
    return this.sessions.add(listener);
  }

  onResync(listener: () => void): () => void {
    return this.resyncs.add(listener);
  }

  start(): void {
    if (!this.listener || this.started || this.stopped) return;
    this.started = true;
    void this.connect();
  }

  async close(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.unsubscribeLocal();
    clearTimeout(this.retryTimer);
    clearInterval(this.checkTimer);
    const client = this.client;
    this.client = null;
    if (client) await endQuietly(client);
  }

  /** Handles one notification (exposed for tests; the listening connection calls it). */
  deliver(channel: string, payload: string | undefined): void {
    const parsed = parseNotice(channel, payload);
    if (!parsed || parsed.origin === this.source.origin) return; // malformed, or this process's own
    if (parsed.kind === 'events') this.events.emit(parsed.notice);
    else this.sessions.emit(parsed.notice);
  }

  private async connect(): Promise<void> {
    const opts = this.listener!;
    if (this.stopped || this.connecting) return;
    this.connecting = true;
    const client = new Client({
      connectionString: opts.url,
      application_name: 'faceid-gateway listener',
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
      connectionTimeoutMillis: 10_000,
    });
    let lost = false;
    const onLost = (err?: Error) => {
      if (lost) return;
      lost = true;
      this.connecting = false;
      if (this.client === client) this.client = null;
      void endQuietly(client);
      if (this.stopped) return;
      clearInterval(this.checkTimer);
      this.lostOnce = true;
      opts.log?.warn(
        `The database's notification connection was lost${err ? ` (${describe(err)})` : ''}: reconnecting; ` +
          "meanwhile other gateways' events are found by the safety poll.",
      );
      this.scheduleReconnect();
    };
    client.on('notification', (msg) => this.deliver(msg.channel, msg.payload));
    client.on('error', onLost);
    client.on('end', () => onLost());
    try {
      await client.connect();
      await client.query(`LISTEN ${EVENTS_CHANNEL}; LISTEN ${SESSIONS_CHANNEL}`);
    } catch (err) {
      this.connecting = false;
      if (!lost) {
        lost = true;
        void endQuietly(client);
        if (!this.stopped) {
          // The first failure, then every 2^n-th: a database down for minutes does not flood the log.
          if ((this.attempt & (this.attempt - 1)) === 0) {
            opts.log?.warn(`Listening for database notifications failed (${describe(err as Error)}); retrying.`);
          }
          this.scheduleReconnect();
        }
      }
      return;
    }
    this.connecting = false;
    if (this.stopped || lost) {
      void endQuietly(client);
      return;
    }
    this.client = client;
    if (this.attempt > 0 || this.lostOnce) opts.log?.log('Listening for database notifications again.');
    this.attempt = 0;
    this.checkTimer = setInterval(() => void this.check(client, onLost), opts.checkEveryMs ?? 30_000);
    this.checkTimer.unref();
    // Whatever was sent before LISTEN took effect (at start, or while disconnected) was not received: look now.
    this.resyncs.emit();
  }

  /** A query on the idle connection: a dead peer that sent no FIN (a cut network) shows up here, not in TCP. */
  private async check(client: Client, onLost: (err?: Error) => void): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('no answer within 5 s')), 5000);
    });
    try {
      await Promise.race([client.query('SELECT 1'), timeout]);
    } catch (err) {
      onLost(err as Error);
    } finally {
      clearTimeout(timer);
    }
  }

  private scheduleReconnect(): void {
    clearTimeout(this.retryTimer);
    const opts = this.listener!;
    const delay = reconnectDelayMs(this.attempt++, opts.baseDelayMs ?? 250, opts.maxDelayMs ?? 10_000, opts.random);
    this.retryTimer = setTimeout(() => void this.connect(), delay);
    this.retryTimer.unref();
  }
}

/** Ends a client without waiting on a dead socket. */
async function endQuietly(client: Client): Promise<void> {
  const stream = (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream;
  const ended = client.end().catch(() => undefined);
  const timer = setTimeout(() => stream?.destroy(), 1000);
  timer.unref();
  await ended;
  clearTimeout(timer);
}

/** An error's code or message, without connection details (the URL, a password). */
function describe(err: Error): string {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' ? code : err.message.replace(/postgres(ql)?:\/\/\S+/gi, 'postgresql://…');
}

/** What both adapters share: options, the lifecycle contract, typed errors and the call guards around the handler. */
import { randomUUID } from 'node:crypto';
import type { FaceidMetrics } from '../metrics/metrics.service';
import type { AuthResult, FrameConnection, SessionTransportHandler } from './connection';
import type { OriginPolicy } from './handshake';
import {
  ConnectionGuard,
  DEFAULT_CONNECTION_LIMITS,
  type Clock,
  type ConnectionLimits,
  type LimitBreach,
} from './limits';
import { ServerMessage, WS_CLOSE } from './protocol';

export type TransportKind = 'ws' | 'uws';

export interface TransportOptions {
  handler: SessionTransportHandler;
  /** WS_MAX_PAYLOAD. */
  maxPayload: number;
  origins: OriginPolicy;
  /** WS_MESSAGES_PER_SECOND, WS_ERRORS_PER_MINUTE, WS_SEND_BUFFER_MAX; default DEFAULT_CONNECTION_LIMITS. */
  limits?: ConnectionLimits;
  /** The limits' clock, in ms (default performance.now); tests pass one they move themselves. */
  now?: Clock;
  /** Only wsError() is called here; frames and sessions are counted by the identification code. */
  metrics?: Pick<FaceidMetrics, 'wsError'>;
  logger: TransportLogger;
}

/** Nest's Logger fits; messages are short texts or TransportErrors (the JSON logger prints their `code`). */
export interface TransportLogger {
  log(message: unknown): void;
  warn(message: unknown): void;
  error(message: unknown): void;
  debug(message: unknown): void;
}

/** A running WebSocket server for /ws/identify. */
export interface WebSocketTransport {
  readonly kind: TransportKind;
  start(): Promise<void>;
  /** Closes every connection with 1001 (waiting briefly for the closing handshakes), then stops accepting. */
  stop(): Promise<void>;
  /** Port clients connect to: the HTTP server's for ws (null before it listens), the own one for uws. */
  port(): number | null;
  /** Connections past the handshake and not yet closed. */
  readonly connections: number;
}

export const TRANSPORT_ERROR_CODES = [
  'payload_too_large',
  'origin_forbidden',
  'token_invalid',
  /** RFC 6455 violations caught by the WebSocket library (bad opcode, invalid UTF-8, unmasked frame...). */
  'ws_protocol_violation',
  /** authenticate() or a handler callback threw. */
  'handler_failed',
  /** WS_TRANSPORT=uws without its native build, or the port could not be bound. */
  'transport_unavailable',
  /** A connection went over one of its limits (limits.ts) and was closed. */
  'message_rate_exceeded',
  'too_many_errors',
  'send_buffer_full',
] as const;
export type TransportErrorCode = (typeof TRANSPORT_ERROR_CODES)[number];

/** Logged (the JSON logger prints `code`) and counted. Messages name no token, address or frame byte. */
export class TransportError extends Error {
  constructor(
    readonly code: TransportErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'TransportError';
  }
}

/** Close code -> stable name, for metrics and logs ("4001" means little on a dashboard). */
const CLOSE_NAMES = new Map<number, string>(Object.entries(WS_CLOSE).map(([name, code]) => [code, name]));
export function closeCodeName(code: number): string {
  return CLOSE_NAMES.get(code) ?? 'other';
}

/** The reason in a close frame is at most 123 bytes; longer ones make the libraries throw. */
export function clampReason(reason: string): string {
  return Buffer.byteLength(reason) <= 123 ? reason : Buffer.from(reason).subarray(0, 120).toString('utf8');
}

/**
 * Serialises a server message after checking it against its schema: a malformed message is a bug in our own code,
 * and a client would otherwise receive it. Throws a TypeError listing the bad fields (never their values).
 */
export function serialiseServerMessage(msg: ServerMessage): string {
  const checked = ServerMessage.safeParse(msg);
  if (!checked.success) {
    const fields = checked.error.issues.map((i) => i.path.join('.') || '(root)').join(', ');
    throw new TypeError(`Invalid server message '${String((msg as { type?: unknown }).type)}': ${fields}`);
  }
  return JSON.stringify(checked.data);
}

/** Runs authenticate() and turns a throw into a refusal, so a failing store cannot hang the upgrade. */
export async function authenticateSafely(
  options: TransportOptions,
  req: Parameters<SessionTransportHandler['authenticate']>[0],
): Promise<AuthResult> {
  try {
    return await options.handler.authenticate(req);
  } catch (err) {
    report(options, 'handler_failed', `authenticate() failed: ${(err as Error)?.message ?? String(err)}`, 'error');
    return { ok: false, closeCode: WS_CLOSE.internal_error, reason: 'internal_error' };
  }
}

/**
 * Calls a handler method for a connection. A throw (or the rejection of the promise it returned) is logged and closes
 * that connection with 1011; other connections are unaffected. `cleanup` runs then (e.g. releasing a frame the
 * handler may not have reached). Returns the handler's promise, if it returned one, settled either way.
 */
export function callHandler(
  options: TransportOptions,
  conn: FrameConnection,
  what: string,
  fn: () => void | Promise<void>,
  cleanup?: () => void,
): void | Promise<void> {
  const fail = (err: unknown): void => {
    cleanup?.();
    report(
      options,
      'handler_failed',
      `${what} failed on connection ${conn.id}: ${(err as Error)?.message ?? String(err)}`,
      'error',
    );
    conn.close(WS_CLOSE.internal_error, 'internal_error');
  };
  try {
    const result = fn();
    if (result && typeof result.then === 'function') return result.then(undefined, fail);
  } catch (err) {
    fail(err);
  }
}

/**
 * One connection's incoming messages, processed one at a time in arrival order: a message waits until the handler
 * call of the one before it has returned, and, when that call returned a promise (a Nest gateway's handlers do), until
 * it settled. So a message is checked (open? within the limits?) only once everything before it was handled, exactly
 * as when every call is synchronous, and nothing reaches the handler after it closed the connection. While a call is
 * pending, new messages wait here (at most what one socket read holds: the message limit is checked as they come out).
 */
export class Inbox<T> {
  private readonly waiting: T[] = [];
  private running = false;
  private readonly idleWaiters: Array<() => void> = [];

  constructor(private readonly process: (item: T) => void | Promise<void>) {}

  push(item: T): void {
    this.waiting.push(item);
    if (!this.running) this.drain();
  }

  /** Resolves once no message waits or is being handled (then, for a closed connection, none will come). */
  whenIdle(): Promise<void> {
    if (!this.running && this.waiting.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private drain(): void {
    while (this.waiting.length > 0) {
      const result = this.process(this.waiting.shift()!);
      if (result) {
        this.running = true;
        const next = (): void => {
          this.running = false;
          this.drain();
        };
        void result.then(next, next);
        return;
      }
    }
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }
}

/** Logs a TransportError and counts it under its code. */
export function report(
  options: Pick<TransportOptions, 'metrics' | 'logger'>,
  code: TransportErrorCode,
  message: string,
  level: 'warn' | 'error' | 'debug' = 'warn',
): void {
  options.metrics?.wsError(code);
  options.logger[level](new TransportError(code, message));
}

/**
 * Counts a refused upgrade under the close code's name (token_invalid, session_finished...). Origin refusals and
 * authenticate() failures were already reported where they happened.
 */
export function reportRefusal(options: TransportOptions, closeCode: number): void {
  if (
    closeCode === WS_CLOSE.origin_forbidden ||
    closeCode === WS_CLOSE.internal_error ||
    closeCode === WS_CLOSE.going_away
  ) {
    return;
  }
  const name = closeCodeName(closeCode);
  options.metrics?.wsError(name);
  options.logger.debug(`Session refused at the handshake (${name})`);
}

/** The limits of a new connection. */
export function connectionGuard(options: TransportOptions): ConnectionGuard {
  return new ConnectionGuard(options.limits ?? DEFAULT_CONNECTION_LIMITS, options.now ?? (() => performance.now()));
}

/** Close code and reason for a broken limit. */
export const BREACH_CLOSE: Record<LimitBreach, { code: number; reason: string }> = {
  message_rate_exceeded: { code: WS_CLOSE.message_rate_exceeded, reason: 'message_rate_exceeded' },
  too_many_errors: { code: WS_CLOSE.protocol_error, reason: 'too_many_errors' },
  send_buffer_full: { code: WS_CLOSE.send_buffer_full, reason: 'send_buffer_full' },
};

/** Logs and counts a broken limit (the caller closes the connection). */
export function reportBreach(options: TransportOptions, breach: LimitBreach, connId: string, detail: string): void {
  report(options, breach, `Connection ${connId} closed with ${BREACH_CLOSE[breach].code}: ${detail}`);
}

/** Stands in for a connection that was gone (or refused by a stopping server) before it could open. */
class GoneConnection implements FrameConnection {
  readonly id = randomUUID();
  readonly open = false;
  readonly bufferedAmount = 0;

  constructor(readonly remoteAddress: string) {}

  sendJson(msg: ServerMessage): void {
    serialiseServerMessage(msg); // same validation as a live connection, then dropped
  }

  close(): void {}
}

/**
 * authenticate() said yes but the client left (or the server began stopping) before the WebSocket opened.
 * The handler may already hold state for the session, so it still gets onOpen, with a closed connection, and
 * onClose(1006) on a later tick: its clean-up path runs as for any other connection.
 */
export function openGone(options: TransportOptions, sessionId: string, remoteAddress: string): void {
  const conn = new GoneConnection(remoteAddress);
  callHandler(options, conn, 'onOpen', () => options.handler.onOpen(conn, sessionId));
  setImmediate(() => callHandler(options, conn, 'onClose', () => options.handler.onClose(conn, 1006)));
}

/**
 * Per-connection bounds of the identification WebSocket, the same for both transports: how many messages a client
 * may send a second, how many refused ones (each answered with an `error`) it may cause, and how many bytes the
 * server may hold for it while it does not read. Pure logic on an injected clock, so tests count instead of waiting.
 */

/** WS_MESSAGES_PER_SECOND, WS_ERRORS_PER_MINUTE, WS_SEND_BUFFER_MAX. */
export interface ConnectionLimits {
  /** Messages (binary and text) a second, bursts up to the same number. */
  messagesPerSecond: number;
  /** Error replies a minute, bursts up to the same number. */
  errorsPerMinute: number;
  /** Bytes that may wait to be sent (the socket's bufferedAmount plus the message about to go). */
  sendBufferMax: number;
}

/** The configuration's defaults (src/config/config.ts), for transports built without a configuration (tests). */
export const DEFAULT_CONNECTION_LIMITS: Readonly<ConnectionLimits> = Object.freeze({
  messagesPerSecond: 100,
  errorsPerMinute: 30,
  sendBufferMax: 256 * 1024,
});

/** Milliseconds from some fixed point (performance.now by default). */
export type Clock = () => number;

/**
 * A token bucket: holds at most `capacity` tokens, starts full, gains `perSecond` a second. take() spends one if
 * there is one. Time that runs backwards (a test clock set back) adds nothing.
 */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private readonly capacity: number,
    private readonly perSecond: number,
    now: number,
  ) {
    this.tokens = capacity;
    this.last = now;
  }

  take(now: number): boolean {
    if (now > this.last) {
      this.tokens = Math.min(this.capacity, this.tokens + ((now - this.last) * this.perSecond) / 1000);
      this.last = now;
    }
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

/**
 * Whether an `error` reply refuses something the client sent (a malformed message, a bad or hostile frame: codes
 * `protocol_*` and `frame_*`), which counts against WS_ERRORS_PER_MINUTE. Errors of the server's own making
 * (`internal`, an engine fault) or about the session (`session_refused`...) do not.
 */
export function isRefusal(code: string): boolean {
  return code.startsWith('protocol_') || code.startsWith('frame_');
}

/** Which bound a connection broke; the transport closes it with the matching code (docs/protocol.md). */
export type LimitBreach = 'message_rate_exceeded' | 'too_many_errors' | 'send_buffer_full';

/** The bounds of one connection. */
export class ConnectionGuard {
  private readonly messages: TokenBucket;
  private readonly errors: TokenBucket;
  /** Most bytes seen waiting to be sent on this connection (for logs and tests). */
  peakBuffered = 0;

  constructor(
    readonly limits: ConnectionLimits,
    private readonly now: Clock,
  ) {
    const t = now();
    this.messages = new TokenBucket(limits.messagesPerSecond, limits.messagesPerSecond, t);
    this.errors = new TokenBucket(limits.errorsPerMinute, limits.errorsPerMinute / 60, t);
  }

  /** A message arrived. False: over WS_MESSAGES_PER_SECOND (close with message_rate_exceeded). */
  message(): boolean {
    return this.messages.take(this.now());
  }

  /** A refusal (isRefusal) is about to go out. False: over WS_ERRORS_PER_MINUTE (close with protocol_error). */
  errorReply(): boolean {
    return this.errors.take(this.now());
  }

  /**
   * `bytes` are about to be queued behind `buffered` bytes not yet sent. False: that would pass WS_SEND_BUFFER_MAX
   * (the client stopped reading): drop the connection instead.
   */
  mayQueue(buffered: number, bytes: number): boolean {
    if (buffered + bytes > this.limits.sendBufferMax) return false;
    this.peakBuffered = Math.max(this.peakBuffered, buffered + bytes);
    return true;
  }
}

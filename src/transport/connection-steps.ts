/**
 * Steps the ws and uWS connections take the same way. What differs (socket state, and when and how each transport
 * wipes its bytes) stays in the transports.
 */
import type { FrameConnection } from './connection';
import { releaseFrame, takeFrame } from './frame';
import { isRefusal, type ConnectionGuard, type LimitBreach } from './limits';
import type { ServerMessage } from './protocol';
import { callHandler, type Inbox, type TransportOptions } from './transport';

interface GuardedConnection {
  readonly guard: ConnectionGuard;
  readonly bufferedAmount: number;
  breach(breach: LimitBreach, detail: string): void;
}

/**
 * The send limits of a serialised message: false when it must not be sent, the connection then being closed for
 * the limit it broke (too many refusals a minute, or a send buffer that would grow past WS_SEND_BUFFER_MAX).
 */
export function mayQueueJson(conn: GuardedConnection, msg: ServerMessage, text: string): boolean {
  if (msg.type === 'error' && isRefusal(msg.code) && !conn.guard.errorReply()) {
    conn.breach('too_many_errors', `more than ${conn.guard.limits.errorsPerMinute} refused messages a minute`);
    return false;
  }
  const buffered = conn.bufferedAmount;
  if (!conn.guard.mayQueue(buffered, Buffer.byteLength(text))) {
    conn.breach('send_buffer_full', `${buffered} bytes wait to be sent (limit ${conn.guard.limits.sendBufferMax})`);
    return false;
  }
  return true;
}

/** Hands a binary message to the handler as a Frame, which owns `bytes` from here; released if the handler throws. */
export function handFrame(options: TransportOptions, conn: FrameConnection, bytes: Buffer): void | Promise<void> {
  const frame = takeFrame(bytes);
  return callHandler(
    options,
    conn,
    'onFrame',
    () => options.handler.onFrame(conn, frame),
    () => releaseFrame(frame),
  );
}

/** onClose, once the messages already taken were handled (those still waiting find the connection closed). */
export function handCloseWhenIdle<T>(
  options: TransportOptions,
  conn: FrameConnection,
  inbox: Inbox<T>,
  code: number,
): void {
  void inbox.whenIdle().then(() => callHandler(options, conn, 'onClose', () => options.handler.onClose(conn, code)));
}

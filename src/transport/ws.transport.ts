/**
 * /ws/identify on Node's own HTTP server, with `ws` 8 (+ bufferutil for unmasking). Upgrade requests for its path come
 * from the server's UpgradeRouter (upgrade-router.ts), which owns the server's 'upgrade' event.
 *
 * Choices, and why:
 * - perMessageDeflate off: JPEG and raw frames do not compress, and inflating would add buffers we must wipe.
 * - allowSynchronousEvents on (ws's default since 8.17): all messages parsed from one socket read are emitted in
 *   the same tick, in order. So a message can arrive after we decided to close (e.g. the verdict was sent while
 *   the next frame sat in the same read): such messages are wiped and dropped here, never passed on.
 * - The handshake always completes, even for a bad token or Origin, and then closes with 4001/4003: browsers
 *   hide HTTP refusal codes from scripts, a close code they do show. No handler call is made for a bad Origin.
 * - ws's receiver is patched to wipe the copies it leaves (see ws-wipe.ts).
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer } from 'ws';
import type { AuthResult, FrameConnection } from './connection';
import { handCloseWhenIdle, handFrame, mayQueueJson } from './connection-steps';
import { wipeBytes } from './frame';
import { extractToken, isOriginAllowed, parseSubprotocols, selectSubprotocol, splitUrl } from './handshake';
import { WS_CLOSE, WS_PATH, type ServerMessage } from './protocol';
import type { UpgradeHandler } from './upgrade-router';
import type { ConnectionGuard, LimitBreach } from './limits';
import {
  authenticateSafely,
  BREACH_CLOSE,
  callHandler,
  clampReason,
  connectionGuard,
  Inbox,
  openGone,
  report,
  reportBreach,
  reportRefusal,
  serialiseServerMessage,
  type TransportOptions,
  type WebSocketTransport,
} from './transport';
import { installWsReceiverWiping, wipeReceiverLeftovers } from './ws-wipe';

/** How long stop() waits for clients to answer the 1001 close before cutting them off. */
const STOP_GRACE_MS = 1000;

class WsConnection implements FrameConnection {
  readonly id = randomUUID();
  /** Set when we start closing (or the peer did): from then on nothing goes to or comes from the handler. */
  private closing = false;

  constructor(
    private readonly socket: WebSocket,
    readonly remoteAddress: string,
    readonly guard: ConnectionGuard,
    private readonly onBreach: (breach: LimitBreach, detail: string) => void,
  ) {}

  get open(): boolean {
    return !this.closing && this.socket.readyState === WebSocket.OPEN;
  }

  get bufferedAmount(): number {
    return this.socket.bufferedAmount;
  }

  sendJson(msg: ServerMessage): void {
    const text = serialiseServerMessage(msg); // validates even when closed, so bugs show in every test
    if (!this.open || !mayQueueJson(this, msg, text)) return;
    this.socket.send(text);
  }

  /** Closes for a broken limit. The close frame queues behind what waits; ws drops the socket if it is not answered. */
  breach(breach: LimitBreach, detail: string): void {
    if (this.closing) return;
    this.onBreach(breach, detail);
    this.close(BREACH_CLOSE[breach].code, BREACH_CLOSE[breach].reason);
  }

  close(code: number, reason: string): void {
    if (this.closing) return;
    this.closing = true;
    if (this.socket.readyState === WebSocket.OPEN || this.socket.readyState === WebSocket.CONNECTING) {
      this.socket.close(code, clampReason(reason));
    }
  }

  markClosing(): void {
    this.closing = true;
  }
}

/** Returns the text of bufferutil's state, for the start-up log line; ws uses bufferutil when it can load it. */
export function wsUnmaskingImplementation(): 'bufferutil (native)' | 'JavaScript' {
  if (process.env.WS_NO_BUFFER_UTIL) return 'JavaScript';
  try {
    // bufferutil itself falls back to JavaScript when no native build loads; its fallback is a separate module.
    /* eslint-disable @typescript-eslint/no-require-imports -- optional native module, probed at run time */
    const native = require('bufferutil') as { unmask: unknown };
    const fallback = require('bufferutil/fallback') as { unmask: unknown };
    /* eslint-enable @typescript-eslint/no-require-imports */
    return native.unmask !== fallback.unmask ? 'bufferutil (native)' : 'JavaScript';
  } catch {
    return 'JavaScript';
  }
}

export class WsTransport implements WebSocketTransport {
  readonly kind = 'ws';
  private readonly wss: WebSocketServer;
  /** Outcome of authenticate() per upgrade request, from verifyClient to the connection callback. */
  private readonly admissions = new WeakMap<IncomingMessage, AuthResult>();
  private readonly live = new Set<WebSocket>();
  private started = false;

  constructor(
    private readonly server: Server,
    private readonly options: TransportOptions,
    /** For the log line only: the router decides which requests come here. */
    private readonly path: string = WS_PATH,
  ) {
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: options.maxPayload,
      perMessageDeflate: false,
      allowSynchronousEvents: true,
      clientTracking: false,
      handleProtocols: (offered) => selectSubprotocol([...offered]) ?? false,
      // Always "verified": refusals are sent as close codes after the handshake (see onConnection).
      verifyClient: (info, done) =>
        void this.admit(info.req).then(
          () => done(true),
          () => done(false, 500),
        ),
    });
  }

  get connections(): number {
    return this.live.size;
  }

  port(): number | null {
    const address = this.server.address() as AddressInfo | string | null;
    return address && typeof address === 'object' ? address.port : null;
  }

  async start(): Promise<void> {
    if (this.started) return;
    installWsReceiverWiping();
    this.started = true;
    this.options.logger.log(
      `WebSocket transport: ws on the HTTP server, path ${this.path}, max payload ${this.options.maxPayload} B, ` +
        `unmasking: ${wsUnmaskingImplementation()}`,
    );
  }

  async stop(): Promise<void> {
    if (!this.started) return;
    this.started = false;
    const closed = [...this.live].map(
      (socket) =>
        new Promise<void>((resolve) => {
          socket.once('close', () => resolve());
          socket.close(WS_CLOSE.going_away, 'server_stopping');
        }),
    );
    const grace = new Promise<void>((resolve) => setTimeout(resolve, STOP_GRACE_MS).unref());
    await Promise.race([Promise.all(closed), grace]);
    for (const socket of this.live) socket.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }

  /** An upgrade request for this transport's path (from the UpgradeRouter, which handles the socket's errors). */
  readonly handleUpgrade: UpgradeHandler = (req, socket, head) => {
    if (!this.started) {
      socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.onConnection(ws, req));
  };

  /** Runs after ws validated the handshake headers and before it answers 101. */
  private async admit(req: IncomingMessage): Promise<void> {
    const origin = req.headers.origin ?? null;
    const remoteAddress = req.socket.remoteAddress ?? '';
    if (!isOriginAllowed(origin, req.headers.host, this.options.origins)) {
      report(this.options, 'origin_forbidden', 'WebSocket upgrade from a page whose Origin is not allowed');
      this.admissions.set(req, { ok: false, closeCode: WS_CLOSE.origin_forbidden, reason: 'origin_forbidden' });
      return;
    }
    const offered = parseSubprotocols(req.headers['sec-websocket-protocol']);
    const token = extractToken(offered, splitUrl(req.url ?? '').query);
    const result = await authenticateSafely(this.options, { token, origin, remoteAddress });
    // ws completes the upgrade right after this returns, and silently drops a socket that is no longer usable.
    if (result.ok && (!req.socket.readable || !req.socket.writable || !this.started)) {
      openGone(this.options, result.sessionId, remoteAddress);
      this.admissions.set(req, { ok: false, closeCode: WS_CLOSE.going_away, reason: 'server_stopping' });
      return;
    }
    this.admissions.set(req, result);
  }

  private onConnection(socket: WebSocket, req: IncomingMessage): void {
    const admission = this.admissions.get(req) ?? {
      ok: false,
      closeCode: WS_CLOSE.internal_error,
      reason: 'internal_error',
    };
    this.admissions.delete(req);
    const { handler } = this.options;
    const conn = new WsConnection(
      socket,
      req.socket.remoteAddress ?? '',
      connectionGuard(this.options),
      (breach, detail) => reportBreach(this.options, breach, conn.id, detail),
    );
    let opened = false;
    this.live.add(socket);

    // One message at a time (see Inbox): each is checked and handed over once the handler is done with the previous.
    const inbox = new Inbox<{ data: Buffer; isBinary: boolean }>(({ data, isBinary }) => {
      if (!opened || !conn.open) {
        wipeBytes(data); // late or unauthenticated: not for the handler, and not to be left in memory
        return;
      }
      if (!conn.guard.message()) {
        wipeBytes(data);
        conn.breach('message_rate_exceeded', `more than ${conn.guard.limits.messagesPerSecond} messages a second`);
        return;
      }
      if (isBinary) return handFrame(this.options, conn, data);
      const text = data.toString('utf8');
      wipeBytes(data);
      return callHandler(this.options, conn, 'onText', () => handler.onText(conn, text));
    });
    socket.on('message', (data: Buffer, isBinary: boolean) => {
      // Refused or closed: nothing more goes to the handler, so no need to wait for a turn.
      if (!opened || !conn.open) wipeBytes(data);
      else inbox.push({ data, isBinary });
    });

    socket.on('error', (err: Error & { code?: string }) => {
      conn.markClosing(); // ws is already closing the connection (with 1009, 1002, 1007...)
      // ws stops reading after a protocol error but keeps draining the socket: wipe what still arrives.
      (socket as unknown as { _socket?: Duplex })._socket?.on('data', (chunk: Buffer) => wipeBytes(chunk));
      if (err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') {
        report(
          this.options,
          'payload_too_large',
          `Message above ${this.options.maxPayload} bytes on connection ${conn.id}; closed with 1009`,
        );
      } else {
        report(
          this.options,
          'ws_protocol_violation',
          `WebSocket protocol error on connection ${conn.id}: ${err.code ?? err.message}`,
        );
      }
    });

    socket.on('close', (code: number) => {
      conn.markClosing();
      this.live.delete(socket);
      wipeReceiverLeftovers(socket);
      // After the messages already taken (those still waiting find the connection closed and are wiped).
      if (opened) handCloseWhenIdle(this.options, conn, inbox, code);
    });

    if (!admission.ok) {
      reportRefusal(this.options, admission.closeCode);
      conn.close(admission.closeCode, admission.reason);
      return;
    }
    opened = true;
    callHandler(this.options, conn, 'onOpen', () => handler.onOpen(conn, admission.sessionId));
  }
}

/**
 * /ws/identify on uWebSockets.js (@trufflesuite/uws-js-unofficial, the build on npm that loads on Node 20 /
 * Debian 12), on its own port: uWS runs its own HTTP stack and cannot share Node's server.
 *
 * uWS facts this code is built around:
 * - The package quietly falls back to a slow JavaScript implementation (built on `ws`) when its native build does
 *   not load. We load the native binary directly and refuse to start without it.
 * - A message's ArrayBuffer points into uWS's own receive/fragment buffer and is neutered when the callback
 *   returns: each frame is copied out, then uWS's bytes are zeroed so its buffer does not keep the frame.
 *   What JS cannot reach: uWS unmasks in place in its native buffers (a 512 KiB receive buffer per loop, and
 *   per-socket buffers for messages that span reads); a few recent frames survive there (2-4 of 16 in
 *   test/transport.zeroing.test.ts). The ws transport has no such residue, which is why it is the default.
 * - Request headers are readable only synchronously inside `upgrade`; they are read before authenticate() awaits.
 * - Any call on a closed WebSocket throws: the connection tracks its state and guards every call.
 * - Above maxPayloadLength uWS drops the TCP connection without a close frame (the client sees 1006). So uWS's own
 *   limit is set to twice WS_MAX_PAYLOAD and we enforce WS_MAX_PAYLOAD ourselves, closing with 1009 like `ws`;
 *   only messages above twice the limit get the bare 1006.
 * - `end()` runs the close callback synchronously; onClose is deferred to a later tick so the handler is never
 *   re-entered from its own conn.close() call (the ws adapter behaves the same way).
 */
import { randomUUID } from 'node:crypto';
import * as path from 'node:path';
import type * as Uws from '@trufflesuite/uws-js-unofficial';
import type { AuthResult, FrameConnection } from './connection';
import { handCloseWhenIdle, handFrame, mayQueueJson } from './connection-steps';
import { wipeBytes } from './frame';
import { extractToken, isOriginAllowed, parseSubprotocols, selectSubprotocol } from './handshake';
import { DEFAULT_CONNECTION_LIMITS, type ConnectionGuard, type LimitBreach } from './limits';
import { WS_CLOSE, WS_PATH, type ServerMessage } from './protocol';
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
  TransportError,
  type TransportOptions,
  type WebSocketTransport,
} from './transport';

type UwsModule = typeof Uws;

const PACKAGE = '@trufflesuite/uws-js-unofficial';

let native: UwsModule | undefined;

/**
 * Loads uWS's native build for this platform and Node ABI, bypassing the package's entry point (which would fall
 * back to JavaScript). Throws TransportError('transport_unavailable') when it cannot. `abi` is for tests.
 */
export function loadNativeUws(abi: string = process.versions.modules): UwsModule {
  const current = abi === process.versions.modules;
  if (native && current) return native;
  const file = `uws_${process.platform}_${process.arch}_${abi}.node`;
  let loaded: Partial<UwsModule>;
  try {
    const dir = path.join(path.dirname(require.resolve(`${PACKAGE}/package.json`)), 'binaries');
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- a native binary chosen at run time
    loaded = require(path.join(dir, file)) as Partial<UwsModule>;
  } catch (err) {
    throw new TransportError(
      'transport_unavailable',
      `WS_TRANSPORT=uws needs the native uWebSockets.js build ${file} from ${PACKAGE}, which did not load ` +
        `(${(err as Error).message.split('\n')[0]}). Its JavaScript fallback is not used on purpose (slower, and ` +
        'not covered by the wiping tests). Use WS_TRANSPORT=ws, or a Node version the package ships a build for.',
    );
  }
  if (typeof loaded.App !== 'function' || typeof loaded.us_listen_socket_close !== 'function') {
    throw new TransportError(
      'transport_unavailable',
      `${PACKAGE}: ${file} loaded but does not look like uWebSockets.js.`,
    );
  }
  if (current) native = loaded as UwsModule;
  return loaded as UwsModule;
}

interface UserData {
  admission: AuthResult;
  remoteAddress: string;
  conn?: UwsConnection;
}

/** A message copied out of uWS's buffer (bytes: a binary one, text: a text one), waiting for its turn. */
interface UwsMessage {
  size: number;
  bytes?: Buffer;
  text?: string;
}

class UwsConnection implements FrameConnection {
  readonly id = randomUUID();
  private closed = false;
  /** Handed to the handler (onOpen called). */
  opened = false;
  readonly inbox: Inbox<UwsMessage>;

  constructor(
    private readonly ws: Uws.WebSocket<UserData>,
    readonly remoteAddress: string,
    readonly guard: ConnectionGuard,
    private readonly onBreach: (breach: LimitBreach, detail: string) => void,
    process: (item: UwsMessage) => void | Promise<void>,
  ) {
    this.inbox = new Inbox(process);
  }

  get open(): boolean {
    return !this.closed;
  }

  get bufferedAmount(): number {
    if (this.closed) return 0;
    try {
      return this.ws.getBufferedAmount();
    } catch {
      return 0;
    }
  }

  sendJson(msg: ServerMessage): void {
    const text = serialiseServerMessage(msg);
    if (this.closed || !mayQueueJson(this, msg, text)) return;
    try {
      this.ws.send(text, false);
    } catch {
      this.closed = true; // closed underneath us: uWS throws rather than ignoring the send
    }
  }

  /** Closes for a broken limit (uWS sends the close frame after what waits, then drops the socket). */
  breach(breach: LimitBreach, detail: string): void {
    if (this.closed) return;
    this.onBreach(breach, detail);
    this.close(BREACH_CLOSE[breach].code, BREACH_CLOSE[breach].reason);
  }

  close(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.ws.end(code, clampReason(reason));
    } catch {
      // already closed by the peer
    }
  }

  /** From uWS's close callback: the socket must not be touched any more. */
  markClosed(): void {
    this.closed = true;
  }
}

export interface UwsTransportOptions extends TransportOptions {
  host: string;
  /** WS_PORT_UWS; 0 = any free port. */
  port: number;
  /** The one path served on that port (default WS_PATH); any other is answered 404. */
  path?: string;
}

export class UwsTransport implements WebSocketTransport {
  readonly kind = 'uws';
  private app: Uws.TemplatedApp | undefined;
  private listenSocket: Uws.us_listen_socket | undefined;
  private boundPort: number | null = null;
  private readonly live = new Set<UwsConnection>();
  private stopping = false;

  constructor(private readonly options: UwsTransportOptions) {}

  get connections(): number {
    return this.live.size;
  }

  port(): number | null {
    return this.boundPort;
  }

  async start(): Promise<void> {
    if (this.listenSocket) return;
    const uws = loadNativeUws();
    const { maxPayload, handler } = this.options;
    const app = uws.App();

    const wsPath = this.options.path ?? WS_PATH;
    app.ws<UserData>(wsPath, {
      maxPayloadLength: maxPayload * 2,
      compression: uws.DISABLED,
      idleTimeout: 120,
      sendPingsAutomatically: true,
      // uWS silently drops sends above this per-socket backlog (default 64 KiB); a verdict must never be dropped.
      // The connection's own WS_SEND_BUFFER_MAX check closes it before uWS would drop anything.
      maxBackpressure: Math.max(1024 * 1024, (this.options.limits ?? DEFAULT_CONNECTION_LIMITS).sendBufferMax),

      upgrade: (res, req, context) => {
        // `req` is stack-allocated: everything needed later is read now.
        const origin = req.getHeader('origin') || null;
        const host = req.getHeader('host');
        const key = req.getHeader('sec-websocket-key');
        const extensions = req.getHeader('sec-websocket-extensions');
        const offered = parseSubprotocols(req.getHeader('sec-websocket-protocol'));
        const token = extractToken(offered, req.getQuery());
        const remoteAddress = Buffer.from(res.getRemoteAddressAsText()).toString();
        const protocol = selectSubprotocol(offered) ?? '';
        let aborted = false;
        res.onAborted(() => {
          aborted = true;
        });

        const finish = (admission: AuthResult): void => {
          // The client left during authenticate(), or we are stopping: no WebSocket, but the handler hears of it.
          if (aborted || this.stopping) {
            if (admission.ok) openGone(this.options, admission.sessionId, remoteAddress);
            if (!aborted) res.cork(() => res.writeStatus('503 Service Unavailable').end());
            return;
          }
          res.cork(() => res.upgrade<UserData>({ admission, remoteAddress }, key, protocol, extensions, context));
        };
        if (!isOriginAllowed(origin, host, this.options.origins)) {
          report(this.options, 'origin_forbidden', 'WebSocket upgrade from a page whose Origin is not allowed');
          finish({ ok: false, closeCode: WS_CLOSE.origin_forbidden, reason: 'origin_forbidden' });
          return;
        }
        void authenticateSafely(this.options, { token, origin, remoteAddress }).then(finish);
      },

      open: (ws) => {
        const data = ws.getUserData();
        const conn: UwsConnection = new UwsConnection(
          ws,
          data.remoteAddress,
          connectionGuard(this.options),
          (breach, detail) => reportBreach(this.options, breach, conn.id, detail),
          (item) => this.onMessage(conn, item),
        );
        data.conn = conn;
        this.live.add(conn);
        if (!data.admission.ok) {
          reportRefusal(this.options, data.admission.closeCode);
          conn.close(data.admission.closeCode, data.admission.reason);
          return;
        }
        conn.opened = true;
        const { sessionId } = data.admission;
        callHandler(this.options, conn, 'onOpen', () => handler.onOpen(conn, sessionId));
      },

      message: (ws, message, isBinary) => {
        const view = new Uint8Array(message);
        const conn = ws.getUserData().conn;
        if (!conn || !conn.opened || !conn.open) {
          wipeBytes(view); // refused or closed: nothing more goes to the handler
          return;
        }
        // uWS's bytes are zeroed before its buffer is reused: a frame is copied out first (the Frame owns the copy).
        const size = view.length;
        let item: UwsMessage;
        if (isBinary) {
          const copy = Buffer.allocUnsafe(size);
          copy.set(view);
          item = { size, bytes: copy };
        } else {
          item = { size, text: Buffer.from(message).toString('utf8') };
        }
        wipeBytes(view);
        conn.inbox.push(item);
      },

      close: (ws, code, message) => {
        const conn = ws.getUserData().conn;
        if (!conn) return;
        conn.markClosed();
        this.live.delete(conn);
        if (code === 1006 && Buffer.from(message).toString().includes('too big')) {
          report(
            this.options,
            'payload_too_large',
            `Message above ${maxPayload * 2} bytes on connection ${conn.id}; uWS dropped it (1006)`,
          );
        }
        // On a later tick, after the messages already taken (those still waiting find the connection closed).
        if (conn.opened) {
          setImmediate(() => handCloseWhenIdle(this.options, conn, conn.inbox, code));
        }
      },
    });

    // Anything else on this port is not ours.
    app.any('/*', (res) => {
      res.writeStatus('404 Not Found').end();
    });

    const { host, port } = this.options;
    this.listenSocket = await new Promise<Uws.us_listen_socket>((resolve, reject) => {
      app.listen(host, port, (socket) => {
        if (socket) resolve(socket);
        else reject(new TransportError('transport_unavailable', `uWS could not listen on ${host}:${port} (in use?).`));
      });
    });
    this.app = app;
    this.boundPort = uws.us_socket_local_port(this.listenSocket as unknown as Uws.us_socket);
    this.stopping = false;
    this.options.logger.log(
      `WebSocket transport: uWebSockets.js (native) on ${host}:${this.boundPort}, path ${wsPath}, ` +
        `max payload ${maxPayload} B`,
    );
  }

  /** One message of a connection, in turn (see Inbox): checked, then handed over. */
  private onMessage(conn: UwsConnection, item: UwsMessage): void | Promise<void> {
    const { maxPayload, handler } = this.options;
    const discard = (): void => {
      if (item.bytes) wipeBytes(item.bytes);
    };
    if (!conn.opened || !conn.open) {
      discard();
      return;
    }
    if (!conn.guard.message()) {
      discard();
      conn.breach('message_rate_exceeded', `more than ${conn.guard.limits.messagesPerSecond} messages a second`);
      return;
    }
    if (item.size > maxPayload) {
      discard();
      report(
        this.options,
        'payload_too_large',
        `Message above ${maxPayload} bytes on connection ${conn.id}; closed with 1009`,
      );
      conn.close(WS_CLOSE.payload_too_large, 'payload_too_large');
      return;
    }
    if (item.bytes) return handFrame(this.options, conn, item.bytes);
    const text = item.text ?? '';
    return callHandler(this.options, conn, 'onText', () => handler.onText(conn, text));
  }

  async stop(): Promise<void> {
    if (!this.listenSocket) return;
    this.stopping = true;
    loadNativeUws().us_listen_socket_close(this.listenSocket);
    this.listenSocket = undefined;
    this.boundPort = null;
    // uWS sends the close frame and closes at once (no waiting for the peer's reply).
    for (const conn of [...this.live]) conn.close(WS_CLOSE.going_away, 'server_stopping');
    // app.close() (in the native build, missing from the package's typings) drops whatever is left, including
    // half-open upgrades, so no native callback into this app's handlers can outlive the transport.
    (this.app as unknown as { close?: () => void } | undefined)?.close?.();
    this.app = undefined;
  }
}

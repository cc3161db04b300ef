/*
 * The WebSocket transport over real `ws` clients, against both transports (ws on the HTTP server, uWS on its own
 * port). The app is minimal: config + metrics + TransportModule on FaceidSocketAdapter, a tiny frames gateway whose
 * handler echoes each frame's byte length (as an `error` message with code `echo`, the one server message with free
 * text) and releases the frame, and a JSON gateway on another path of the same HTTP server (the upgrade router).
 */
import { Inject, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import {
  SubscribeMessage,
  WebSocketGateway,
  type OnGatewayConnection,
  type OnGatewayDisconnect,
  type OnGatewayInit,
} from '@nestjs/websockets';
import type { IncomingMessage } from 'node:http';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocket } from 'ws';
import { ConfigModule, loadConfig, type Config } from '../src/config';
import { JsonLogger } from '../src/json-logger';
import { MetricsModule } from '../src/metrics';
import {
  FaceidSocketAdapter,
  FRAME_EVENT,
  SUBPROTOCOL,
  TEXT_EVENT,
  TRANSPORT_CLOCK,
  TransportModule,
  TransportService,
  WS_CLOSE,
  WS_PATH,
  encodeFrameMessage,
  FRAME_HEADER_BYTES,
  parseClientMessage,
  ProtocolError,
  releaseFrame,
  type AuthRequest,
  type AuthResult,
  type FrameClient,
  type FrameConnection,
  type FrameSocketServer,
  type FrameMessage,
  type ServerMessage,
  type SessionTransportHandler,
  type SocketGatewayOptions,
} from '../src/transport';
import { loadNativeUws } from '../src/transport/uws.transport';
import { setFragmentObserver } from '../src/transport/ws-wipe';

const GOOD_TOKEN = 'good-Token_1.x~';

class EchoHandler implements SessionTransportHandler {
  readonly auths: AuthRequest[] = [];
  readonly opened: string[] = [];
  readonly closed: { id: string; code: number }[] = [];
  /** Per frame: its connection, length and seq (null when the header did not decode). */
  readonly frames: { conn: string; length: number; seq: number | null }[] = [];
  readonly texts: { conn: string; type: string }[] = [];
  /** Connection ids of the text messages that did not parse. */
  readonly badTexts: string[] = [];
  /** Frames handed to onFrame, kept (after their release) so tests can check their bytes are zeros. */
  readonly frameBuffers: FrameMessage[] = [];
  keepBuffers = false;
  /** Test switch: make onFrame throw. */
  throwOnFrame = false;
  /** Test switch: answer a malformed control message with an error and keep the connection (as the gateway does). */
  keepOpenOnBadText = false;
  /**
   * Per `hello` with client "flood": how many server messages it sent before the connection closed, and the most
   * bytes it saw waiting to be sent (conn.bufferedAmount) after a send.
   */
  readonly floods: { conn: string; sent: number; maxBuffered: number; stoppedByClose: boolean }[] = [];

  constructor(private readonly maxPayload: number) {}

  async authenticate(req: AuthRequest): Promise<AuthResult> {
    this.auths.push(req);
    await new Promise((r) => setTimeout(r, 5)); // like a database lookup
    return req.token?.startsWith('good')
      ? { ok: true, sessionId: `s-${this.auths.length}` }
      : { ok: false, closeCode: WS_CLOSE.token_invalid, reason: 'token_invalid' };
  }

  onOpen(conn: FrameConnection, sessionId: string): void {
    this.opened.push(conn.id);
    conn.sendJson({ type: 'ready', sessionId, maxPayload: this.maxPayload, fps: { min: 5, max: 15 } });
  }

  onFrame(conn: FrameConnection, frame: FrameMessage): void {
    if (this.keepBuffers) this.frameBuffers.push(frame);
    try {
      if (this.throwOnFrame) throw new Error('test handler failure');
      const seq = frame.kind === 'frame' ? frame.header.seq : null;
      const length = frame.kind === 'frame' ? FRAME_HEADER_BYTES + frame.payload.length : 0;
      this.frames.push({ conn: conn.id, length, seq });
      conn.sendJson({ type: 'error', code: 'echo', message: String(length), ...(seq === null ? {} : { seq }) });
    } finally {
      releaseFrame(frame);
    }
  }

  onText(conn: FrameConnection, text: string): void {
    try {
      const msg = parseClientMessage(text);
      this.texts.push({ conn: conn.id, type: msg.type });
      if (msg.type === 'cancel') conn.close(WS_CLOSE.normal, 'cancelled');
      if (msg.type === 'hello' && msg.client === 'flood') this.flood(conn);
    } catch (err) {
      const e = err as ProtocolError;
      this.badTexts.push(conn.id);
      conn.sendJson({ type: 'error', code: e.code, message: e.message });
      if (!this.keepOpenOnBadText) conn.close(WS_CLOSE.protocol_error, e.code);
    }
  }

  /** Sends large server messages (light challenges of 1000 colours, ~30 KB) until the connection closes, at most 5000. */
  private flood(conn: FrameConnection): void {
    const colours = Array.from({ length: 1000 }, (_, k) => ({
      rgb: [k % 256, 255 - (k % 256), 128] as [number, number, number],
      ms: 100 + k,
    }));
    const record = { conn: conn.id, sent: 0, maxBuffered: 0, stoppedByClose: false };
    for (let k = 0; k < 5000; k++) {
      conn.sendJson({ type: 'challenge', kind: 'light', challengeId: `c${k}`, colours });
      if (!conn.open) {
        record.stoppedByClose = true;
        break;
      }
      record.sent++;
      record.maxBuffered = Math.max(record.maxBuffered, conn.bufferedAmount);
    }
    this.floods.push(record);
  }

  onClose(conn: FrameConnection, code: number): void {
    this.closed.push({ id: conn.id, code });
  }
}

const ECHO = Symbol('ECHO');
const JSON_PATH = '/ws/test-json';

/** The frames gateway of the test app: every call goes to the EchoHandler. */
@WebSocketGateway<SocketGatewayOptions>({ path: WS_PATH, protocol: 'frames' })
class EchoGateway
  implements OnGatewayInit<FrameSocketServer>, OnGatewayConnection<FrameClient>, OnGatewayDisconnect<FrameClient>
{
  constructor(@Inject(ECHO) private readonly handler: EchoHandler) {}

  afterInit(server: FrameSocketServer): void {
    server.authenticateWith((req) => this.handler.authenticate(req));
  }

  handleConnection(client: FrameClient, sessionId: string): void {
    this.handler.onOpen(client, sessionId);
  }

  handleDisconnect(client: FrameClient): void {
    this.handler.onClose(client, client.closeCode ?? 1006);
  }

  @SubscribeMessage(FRAME_EVENT)
  onFrame(client: FrameClient, frame: FrameMessage): void {
    this.handler.onFrame(client, frame);
  }

  @SubscribeMessage(TEXT_EVENT)
  onText(client: FrameClient, text: string): void {
    this.handler.onText(client, text);
  }
}

/** A JSON gateway on another path of the same HTTP server: greets with the query, echoes texts upper-cased. */
@WebSocketGateway<SocketGatewayOptions>({ path: JSON_PATH, subprotocols: ['test.json'] })
class JsonEchoGateway implements OnGatewayConnection<WebSocket> {
  handleConnection(socket: WebSocket, req: IncomingMessage): void {
    socket.send(JSON.stringify({ type: 'hello', url: req.url }));
  }

  @SubscribeMessage(TEXT_EVENT)
  onText(socket: WebSocket, text: string): void {
    socket.send(text.toUpperCase());
  }
}

interface TestApp {
  app: NestExpressApplication;
  config: Config;
  handler: EchoHandler;
  httpUrl: string;
  /** ws://127.0.0.1:<port>/ws/identify */
  wsUrl: string;
  /** http://127.0.0.1:<http port>, an allowed Origin. */
  origin: string;
  logs: string[];
  close(): Promise<void>;
}

/** `now`: the clock of the connections' limits (default: the real one). */
async function startTestApp(env: Record<string, string>, now?: () => number): Promise<TestApp> {
  const config = loadConfig({ PORT: '0', HOST: '127.0.0.1', WS_PORT_UWS: '0', LOG_LEVEL: 'debug', ...env });
  const handler = new EchoHandler(config.WS_MAX_PAYLOAD);

  @Module({
    imports: [ConfigModule.forRoot(config), MetricsModule, TransportModule],
    providers: [
      { provide: ECHO, useValue: handler },
      EchoGateway,
      JsonEchoGateway,
      ...(now ? [{ provide: TRANSPORT_CLOCK, useValue: now }] : []),
    ],
  })
  class TransportTestModule {}

  const logs: string[] = [];
  const app = await NestFactory.create<NestExpressApplication>(TransportTestModule, {
    logger: new JsonLogger('debug', (line) => logs.push(line)),
    abortOnError: false,
  });
  app.useWebSocketAdapter(new FaceidSocketAdapter(app));
  await app.listen(0, '127.0.0.1');
  const httpPort = (app.getHttpServer().address() as AddressInfo).port;
  const info = app.get(TransportService).info();
  const wsPort = config.WS_TRANSPORT === 'ws' ? httpPort : info?.port;
  return {
    app,
    config,
    handler,
    httpUrl: `http://127.0.0.1:${httpPort}`,
    wsUrl: `ws://127.0.0.1:${wsPort}${WS_PATH}`,
    origin: `http://127.0.0.1:${httpPort}`,
    logs,
    close: () => app.close(),
  };
}

interface ClientOptions {
  token?: string | null;
  /** Put the token in ?token= instead of the subprotocol. */
  inQuery?: boolean;
  origin?: string;
  /** Default: a random mask per frame, like browsers. */
  generateMask?: (mask: Buffer) => void;
}

/** A `ws` client as a browser would connect (subprotocols `faceid.v1, token.<token>`). */
function connect(url: string, o: ClientOptions = {}): WebSocket {
  const token = o.token === undefined ? GOOD_TOKEN : o.token;
  const protocols = [SUBPROTOCOL];
  let target = url;
  if (token !== null && o.inQuery) target += `?token=${encodeURIComponent(token)}`;
  else if (token !== null) protocols.push(`token.${token}`);
  return new WebSocket(target, o.inQuery ? [] : protocols, {
    headers: o.origin ? { Origin: o.origin } : {},
    perMessageDeflate: false,
    ...(o.generateMask ? { generateMask: o.generateMask } : {}),
  });
}

/** Collects a client's messages and close event. */
class Client {
  readonly messages: ServerMessage[] = [];
  private waiters: (() => void)[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  readonly opened: Promise<void>;

  constructor(readonly ws: WebSocket) {
    ws.on('message', (data, isBinary) => {
      if (!isBinary) this.messages.push(JSON.parse(String(data)) as ServerMessage);
      for (const w of this.waiters.splice(0)) w();
    });
    this.opened = new Promise((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    this.closed = new Promise((resolve) =>
      ws.once('close', (code, reason) => resolve({ code, reason: String(reason) })),
    );
    ws.on('error', () => undefined);
  }

  /** Resolves once `n` messages have arrived (rejects after `ms`). */
  async waitFor(n: number, ms = 5000): Promise<ServerMessage[]> {
    const deadline = Date.now() + ms;
    while (this.messages.length < n) {
      if (Date.now() > deadline) throw new Error(`timeout: ${this.messages.length}/${n} messages`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 50);
      });
    }
    return this.messages;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------------------------

const MAX = 64 * 1024;

function frame(seq: number, bytes: number): Buffer {
  const payload = Buffer.alloc(bytes, seq & 0xff);
  payload[0] = 0xff; // a JPEG would start with FF D8: the content is irrelevant to the transport
  return encodeFrameMessage({ format: 'jpeg', seq, captureTime: Date.now() }, payload);
}

async function openClient(t: TestApp, o: ClientOptions = {}): Promise<Client> {
  const c = new Client(connect(t.wsUrl, { origin: t.origin, ...o }));
  await c.opened;
  await c.waitFor(1); // ready
  return c;
}

/** A client of the JSON gateway (on the HTTP server whatever the frame transport), once it got its greeting. */
async function openJson(t: TestApp): Promise<{ ws: WebSocket; messages: string[]; closed: Promise<{ code: number }> }> {
  const ws = new WebSocket(`${t.httpUrl.replace(/^http/, 'ws')}${JSON_PATH}?x=1`, ['test.json']);
  const messages: string[] = [];
  ws.on('message', (data) => messages.push(String(data)));
  const closed = new Promise<{ code: number }>((resolve) => ws.once('close', (code) => resolve({ code })));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  await until(() => messages.length >= 1);
  return { ws, messages, closed };
}

/** Resolves once `cond` holds (polling), or fails the test after `ms`. */
async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

function logLines(t: TestApp): { level: string; msg: string; code?: string }[] {
  return t.logs.map((l) => JSON.parse(l) as { level: string; msg: string; code?: string });
}

describe.each(['ws', 'uws'] as const)('WebSocket transport: %s', (kind) => {
  let t: TestApp;

  beforeAll(async () => {
    t = await startTestApp({ WS_TRANSPORT: kind, WS_MAX_PAYLOAD: String(MAX) });
  });

  afterAll(async () => {
    await t?.close();
  });

  it('logs which transport (and, for ws, which unmasking) is in use', () => {
    const start = logLines(t).find((l) => l.msg.startsWith('WebSocket transport:'));
    expect(start?.msg).toMatch(
      kind === 'ws' ? /ws on the HTTP server.*unmasking: bufferutil \(native\)/ : /uWebSockets\.js \(native\)/,
    );
  });

  it('accepts the token in the subprotocol, answers faceid.v1, and passes frames and texts in order', async () => {
    const c = await openClient(t);
    expect(c.ws.protocol).toBe('faceid.v1');
    expect(c.messages[0]).toEqual({
      type: 'ready',
      sessionId: expect.stringMatching(/^s-/),
      maxPayload: MAX,
      fps: { min: 5, max: 15 },
    });
    const auth = t.handler.auths[t.handler.auths.length - 1];
    expect(auth).toEqual({ token: GOOD_TOKEN, origin: t.origin, remoteAddress: expect.stringMatching(/127\.0\.0\.1/) });

    const sizes = [1, 100, 5000, 40000];
    c.ws.send(JSON.stringify({ type: 'hello', client: 'test/1' }));
    sizes.forEach((n, i) => c.ws.send(frame(i, n)));
    await c.waitFor(1 + sizes.length);
    expect(c.messages.slice(1)).toEqual(
      sizes.map((n, i) => ({ type: 'error', code: 'echo', message: String(n + 20), seq: i })),
    );
    expect(t.handler.texts.at(-1)).toEqual({ conn: expect.any(String), type: 'hello' });

    c.ws.send(JSON.stringify({ type: 'cancel' }));
    expect(await c.closed).toEqual({ code: 1000, reason: 'cancelled' });
    await until(() => t.handler.closed.length >= 1);
  });

  it('accepts ?token= from non-browser tools (no Origin, no subprotocol)', async () => {
    const c = new Client(connect(t.wsUrl, { inQuery: true }));
    await c.opened;
    expect(c.ws.protocol).toBe('');
    await c.waitFor(1);
    expect(c.messages[0].type).toBe('ready');
    expect(t.handler.auths.at(-1)).toMatchObject({ token: GOOD_TOKEN, origin: null });
    c.ws.close();
    await c.closed;
  });

  it('closes with 4001 for a wrong or missing token, without opening a session', async () => {
    for (const token of ['bad-token', null]) {
      const opened = t.handler.opened.length;
      const c = new Client(connect(t.wsUrl, { origin: t.origin, token }));
      const closed = await c.closed;
      expect(closed).toEqual({ code: 4001, reason: 'token_invalid' });
      expect(t.handler.opened.length).toBe(opened);
    }
  });

  it('refuses a foreign Origin with 4003 without calling authenticate', async () => {
    const auths = t.handler.auths.length;
    const evil = new Client(connect(t.wsUrl, { origin: 'https://evil.example' }));
    expect(await evil.closed).toEqual({ code: 4003, reason: 'origin_forbidden' });
    expect(t.handler.auths.length).toBe(auths);

    const port = new URL(t.origin).port;
    const wrongPort = new Client(connect(t.wsUrl, { origin: `http://127.0.0.1:${Number(port) + 7}` }));
    expect((await wrongPort.closed).code).toBe(4003);
  });

  it('closes an oversized message with 1009, logs a typed error, and keeps serving others', async () => {
    const bystander = await openClient(t);
    const c = await openClient(t);
    const before = t.handler.frames.length;
    c.ws.send(frame(1, MAX)); // header + MAX > MAX
    expect((await c.closed).code).toBe(1009);
    expect(t.handler.frames.length).toBe(before);
    await until(() => logLines(t).some((l) => l.code === 'payload_too_large'));

    bystander.ws.send(frame(2, 10));
    await bystander.waitFor(2);
    expect(bystander.messages[1]).toMatchObject({ code: 'echo', seq: 2 });
    const next = await openClient(t);
    next.ws.send(frame(3, MAX - 20)); // exactly at the limit: accepted
    await next.waitFor(2);
    expect(next.messages[1]).toMatchObject({ code: 'echo', message: String(MAX) });
    for (const x of [bystander, next]) x.ws.close();
    await Promise.all([bystander.closed, next.closed]);
  });

  it('delivers a fragmented binary message whole (ws: and wipes its fragments)', async () => {
    const seen: Buffer[][] = [];
    setFragmentObserver((fragments) => seen.push([...fragments]));
    try {
      const c = await openClient(t);
      const whole = frame(9, 30000);
      const parts = [whole.subarray(0, 7), whole.subarray(7, 10000), whole.subarray(10000)];
      c.ws.send(parts[0], { binary: true, fin: false });
      c.ws.send(parts[1], { binary: true, fin: false });
      c.ws.send(parts[2], { binary: true, fin: true });
      await c.waitFor(2);
      expect(c.messages[1]).toEqual({ type: 'error', code: 'echo', message: String(whole.length), seq: 9 });
      if (kind === 'ws') {
        expect(seen).toHaveLength(1); // one multi-fragment message, seen by the wrapped receiver
        expect(seen[0].map((f) => f.length)).toEqual(parts.map((p) => p.length));
        for (const f of seen[0]) expect(f.every((b) => b === 0)).toBe(true);
      }
      c.ws.close();
      await c.closed;
    } finally {
      setFragmentObserver(undefined);
    }
  });

  it('hands the handler buffers it can wipe, and never passes messages after close()', async () => {
    t.handler.keepBuffers = true;
    try {
      const c = await openClient(t);
      const id = t.handler.opened.at(-1);
      // One write: both frames and the cancel usually arrive in one socket read, so the last frame is "late".
      c.ws.send(frame(1, 3000));
      c.ws.send(JSON.stringify({ type: 'cancel' }));
      c.ws.send(frame(2, 3000));
      expect((await c.closed).code).toBe(1000);
      const mine = t.handler.frames.filter((f) => f.conn === id);
      expect(mine.map((f) => f.seq)).toEqual([1]);
      expect(t.handler.frameBuffers.length).toBeGreaterThan(0);
      for (const f of t.handler.frameBuffers) {
        expect(f.kind).toBe('frame');
        if (f.kind === 'frame') {
          expect(f.released).toBe(true);
          expect(f.payload.every((x) => x === 0)).toBe(true);
        }
      }
    } finally {
      t.handler.keepBuffers = false;
      t.handler.frameBuffers.length = 0;
    }
  });

  it('closes with 1011 when the handler throws, and the handler still gets onClose', async () => {
    const c = await openClient(t);
    const id = t.handler.opened.at(-1);
    t.handler.throwOnFrame = true;
    try {
      c.ws.send(frame(1, 10));
      expect((await c.closed).code).toBe(1011);
    } finally {
      t.handler.throwOnFrame = false;
    }
    await until(() => t.handler.closed.some((x) => x.id === id));
    expect(logLines(t).some((l) => l.code === 'handler_failed' && l.level === 'error')).toBe(true);
  });

  it('answers 404 for other paths', async () => {
    const url = new URL(t.wsUrl);
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpRequest({
        agent: false,
        host: url.hostname,
        port: url.port,
        path: '/ws/other',
        headers: {
          Connection: 'Upgrade',
          Upgrade: 'websocket',
          'Sec-WebSocket-Version': '13',
          'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==',
        },
      });
      const done = (code: number | undefined) => {
        req.destroy();
        resolve(code ?? 0);
      };
      req.on('response', (res) => done(res.statusCode));
      req.on('upgrade', (res) => done(res.statusCode));
      req.on('error', reject);
      req.end();
    });
    expect(status).toBe(404);
  });

  it('serves a JSON gateway on another path of the HTTP server through the same upgrade router', async () => {
    const c = await openJson(t);
    expect(c.ws.protocol).toBe('test.json');
    c.ws.send('ping');
    await until(() => c.messages.length >= 2);
    expect(c.messages).toEqual([JSON.stringify({ type: 'hello', url: `${JSON_PATH}?x=1` }), 'PING']);
    c.ws.close();
    expect((await c.closed).code).toBe(1005);
  });

  it('counts errors in /metrics under stable codes', async () => {
    const res = await fetch(`${t.httpUrl}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain;.*version=0\.0\.4/);
    const body = await res.text();
    expect(body).toMatch(/faceid_ws_errors_total\{code="payload_too_large"\} 1/);
    expect(body).toMatch(/faceid_ws_errors_total\{code="origin_forbidden"\} 2/);
    expect(body).toMatch(/faceid_ws_errors_total\{code="token_invalid"\} 2/);
    expect(body).not.toMatch(/good-Token|127\.0\.0\.1|s-\d/); // no tokens, addresses or session ids
  });

  it('closes open connections with 1001 on shutdown, and onClose follows', async () => {
    const c = await openClient(t);
    const json = await openJson(t);
    const id = t.handler.opened.at(-1);
    await t.close();
    expect((await c.closed).code).toBe(1001);
    expect((await json.closed).code).toBe(1001);
    expect(t.handler.closed.some((x) => x.id === id)).toBe(true);
  });
});

// Per-connection limits (src/transport/limits.ts). The limits run on a clock the test moves, so every count below is
// exact whatever this machine's speed: nothing refills unless the test says so.
describe.each(['ws', 'uws'] as const)('per-connection limits: %s', (kind) => {
  const clock = { t: 0 };
  let t: TestApp;

  beforeAll(async () => {
    t = await startTestApp(
      {
        WS_TRANSPORT: kind,
        WS_MAX_PAYLOAD: String(MAX),
        WS_ERRORS_PER_MINUTE: '10',
        WS_MESSAGES_PER_SECOND: '50',
        WS_SEND_BUFFER_MAX: String(64 * 1024),
      },
      () => clock.t,
    );
    t.handler.keepOpenOnBadText = true;
  });

  afterAll(async () => {
    await t?.close();
  });

  const texts = (conn: string | undefined) => t.handler.texts.filter((x) => x.conn === conn).length;
  const errors = (c: Client) => c.messages.filter((m) => m.type === 'error').length;
  const metric = async (code: string) => {
    const body = await (await fetch(`${t.httpUrl}/metrics`)).text();
    return Number(new RegExp(`faceid_ws_errors_total\\{code="${code}"\\} (\\d+)`).exec(body)?.[1] ?? 0);
  };

  it('answers 10 of 1000 bad messages (WS_ERRORS_PER_MINUTE=10), then closes with 4008 too_many_errors', async () => {
    const c = await openClient(t);
    const id = t.handler.opened.at(-1);
    const bad = JSON.stringify({ type: 'no_such_message' });
    for (let k = 0; k < 1000; k++) c.ws.send(bad);
    expect(await c.closed).toEqual({ code: 4008, reason: 'too_many_errors' });
    expect(errors(c)).toBe(10);
    expect(
      c.messages
        .filter((m) => m.type === 'error')
        .every((m) => m.type === 'error' && m.code === 'protocol_bad_message'),
    ).toBe(true);
    // Not one message after the one that closed it reached the handler: 10 answered, the 11th closed.
    await until(() => t.handler.closed.some((x) => x.id === id));
    expect(t.handler.badTexts.filter((x) => x === id)).toHaveLength(11);
    expect(await metric('too_many_errors')).toBe(1);
  });

  it('refills the error budget at WS_ERRORS_PER_MINUTE: one more answer 6 s later', async () => {
    const c = await openClient(t);
    const bad = JSON.stringify({ type: 'no_such_message' });
    for (let k = 0; k < 10; k++) c.ws.send(bad);
    await c.waitFor(1 + 10);
    clock.t += 6000; // 10 a minute: one every 6 s
    c.ws.send(bad);
    await c.waitFor(1 + 11);
    expect(c.ws.readyState).toBe(WebSocket.OPEN);
    c.ws.send(bad);
    expect(await c.closed).toEqual({ code: 4008, reason: 'too_many_errors' });
    expect(errors(c)).toBe(11);
  });

  it('passes 50 of 1000 messages in one instant (WS_MESSAGES_PER_SECOND=50), then closes with 4020', async () => {
    const c = await openClient(t);
    const id = t.handler.opened.at(-1);
    const hello = JSON.stringify({ type: 'hello', client: 'test/1' });
    for (let k = 0; k < 1000; k++) c.ws.send(hello);
    expect(await c.closed).toEqual({ code: 4020, reason: 'message_rate_exceeded' });
    await until(() => t.handler.closed.some((x) => x.id === id));
    expect(texts(id)).toBe(50);
    expect(await metric('message_rate_exceeded')).toBe(1);
  });

  it('refills the message budget at WS_MESSAGES_PER_SECOND: 50 more a second later', async () => {
    const c = await openClient(t);
    const id = t.handler.opened.at(-1);
    const hello = JSON.stringify({ type: 'hello', client: 'test/1' });
    for (let k = 0; k < 50; k++) c.ws.send(hello);
    await until(() => texts(id) === 50);
    clock.t += 1000;
    for (let k = 0; k < 50; k++) c.ws.send(hello);
    await until(() => texts(id) === 100);
    expect(c.ws.readyState).toBe(WebSocket.OPEN);
    c.ws.send(hello);
    expect(await c.closed).toMatchObject({ code: 4020 });
    expect(texts(id)).toBe(100);
  });

  it('bounds what waits for a client that stopped reading (WS_SEND_BUFFER_MAX=64 KiB): closes with 4012', async () => {
    const c = await openClient(t);
    const id = t.handler.opened.at(-1);
    c.ws.pause(); // the client stops reading; the kernel's buffers fill, then the server's
    c.ws.send(JSON.stringify({ type: 'hello', client: 'flood' }));
    await until(() => t.handler.floods.some((f) => f.conn === id), 30_000);
    const flood = t.handler.floods.find((f) => f.conn === id)!;
    // The server stopped queueing at the limit (the kernel took a few MB first), long before 5000 messages.
    expect(flood.stoppedByClose).toBe(true);
    expect(flood.sent).toBeLessThan(5000);
    expect(flood.maxBuffered).toBeLessThanOrEqual(64 * 1024);
    expect(await metric('send_buffer_full')).toBe(1);
    // Reading again, the client gets every message that was queued, then the close.
    c.ws.resume();
    expect(await c.closed).toMatchObject({ code: 4012 });
    expect(c.messages.filter((m) => m.type === 'challenge')).toHaveLength(flood.sent);
  });
});

describe('GET /metrics', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({});
  });
  afterAll(async () => {
    await t?.close();
  });

  it('exposes every faceid metric and the default process metrics', async () => {
    const res = await fetch(`${t.httpUrl}/metrics`);
    const body = await res.text();
    for (const name of [
      'faceid_frames_received_total',
      'faceid_frames_analysed_total',
      'faceid_frames_dropped_total',
      'faceid_analysis_seconds',
      'faceid_verdicts_total',
      'faceid_sessions_open',
      'faceid_ws_errors_total',
      'process_cpu_seconds_total',
      'nodejs_eventloop_lag_seconds',
    ]) {
      expect(body).toContain(`# TYPE ${name} `);
    }
    expect(body).toContain('faceid_analysis_seconds_bucket{le="0.015",call="track"} 0');
    expect(res.headers.get('cache-control')).toBe('no-store');
  });
});

describe('uWS native build check', () => {
  it('loads the native build here', () => {
    expect(typeof loadNativeUws().App).toBe('function');
  });

  it('refuses with transport_unavailable when no native build matches (instead of the JS fallback)', () => {
    expect(() => loadNativeUws('999')).toThrow(
      expect.objectContaining({ code: 'transport_unavailable', message: expect.stringMatching(/WS_TRANSPORT=ws/) }),
    );
  });
});

import { spawn, type ChildProcess } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import type { INestApplication } from '@nestjs/common';
import WebSocket from 'ws';
import { z } from 'zod';
import { createApp } from '../src/app.factory';
import { createMisClient, createWorkstation } from '../src/auth';
import { loadConfig } from '../src/config';
import { EVENT_TYPES, schemaFileName, verify } from '../src/events';
import { WebhookDispatcher } from '../src/events/webhook-dispatcher';
import { openStorage, type Repositories, type Storage } from '../src/storage';
import {
  CLINICS,
  EVENTS,
  MIS_CLIENTS,
  SESSIONS,
  VERDICTS,
  WORKSTATIONS,
  type EventPayload,
  type EventType,
  type VerdictResult,
} from '../src/storage/ports';
import { createTestDatabase, TEST_DATABASES, type TestDatabase } from './support/databases';
import { makeIin } from './support/iin';
import { openFaceSession } from './support/sessions';
import { until } from './support/waits';

// MIS event delivery end to end: the real app over real HTTP and WebSockets, real webhook receivers (node:http), on
// SQLite and on PostgreSQL (skipped with FACEID_TEST_PG=0). Verdicts are written with the storage call the gateway
// makes (VerdictRepository.finish), so no camera frames are needed. The restart test runs the service as a child
// process and SIGKILLs it.

const ROOT = path.join(__dirname, '..');

// ---- Checking events against the committed JSON Schemas --------------------------------------------------------

const committedSchemas = new Map<EventType, z.ZodType>(
  EVENT_TYPES.map((t) => [
    t,
    z.fromJSONSchema(JSON.parse(fs.readFileSync(path.join(ROOT, 'docs/events', schemaFileName(t)), 'utf8'))),
  ]),
);
const schemaKeys = new Map<EventType, string[]>(
  EVENT_TYPES.map((t) => [
    t,
    Object.keys(
      JSON.parse(fs.readFileSync(path.join(ROOT, 'docs/events', schemaFileName(t)), 'utf8')).properties,
    ).sort(),
  ]),
);
let eventsChecked = 0;

/** Valid against docs/events/<type>.v1.schema.json, and nothing in it could be an image, embedding or code. */
function checkEvent(e: EventPayload): void {
  const schema = committedSchemas.get(e.type);
  if (!schema) throw new Error(`unknown event type ${e.type}`);
  const parsed = schema.safeParse(e);
  if (!parsed.success) throw new Error(`event ${e.id} fails its schema: ${JSON.stringify(parsed.error.issues)}`);
  expect(Object.keys(e).sort()).toEqual(schemaKeys.get(e.type));
  noBiometricData(e, 'event');
  eventsChecked++;
}

function noBiometricData(value: unknown, where: string): void {
  if (Array.isArray(value)) throw new Error(`${where} is an array`);
  if (typeof value === 'string') {
    expect(value.length).toBeLessThanOrEqual(64);
    if (/^[A-Za-z0-9+/=_-]{32,}$/.test(value) && !/^[0-9a-f-]{36}$/.test(value))
      throw new Error(`${where} looks like base64`);
    return;
  }
  if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) noBiometricData(v, `${where}.${k}`);
  }
}

// ---- Helpers ---------------------------------------------------------------------------------------------------

/** The service's environment on a test database: fast polls and retries, plain-http receivers on 127.0.0.1 allowed. */
function serviceEnv(database: TestDatabase, extra: Record<string, string> = {}): Record<string, string> {
  return {
    ...database.env,
    PORT: '0',
    FACEID_BOOTSTRAP: 'false',
    ENGINE_WORKERS: '1',
    RATE_LIMIT_PER_MINUTE: '100000',
    LOG_LEVEL: 'warn',
    EVENTS_POLL_MS: '200',
    WEBHOOK_ALLOW_HTTP: 'true',
    WEBHOOK_ALLOWED_PRIVATE_HOSTS: '127.0.0.1', // the receivers below; loopback is refused otherwise
    WEBHOOK_TIMEOUT_MS: '1000',
    WEBHOOK_RETRY_BASE_MS: '50',
    WEBHOOK_RETRY_MAX_MS: '400',
    WEBHOOK_MAX_ATTEMPTS: '4',
    ...extra,
  };
}

interface Received {
  headers: http.IncomingHttpHeaders;
  body: string;
  status: number;
}

/** A webhook receiver on node:http. `answer` picks each request's status (from 1 for the first request). */
class Receiver {
  readonly requests: Received[] = [];
  answer: (n: number) => number = () => 200;
  private server: http.Server | null = null;

  constructor(public port = 0) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}/hooks/faceid`;
  }

  async start(): Promise<this> {
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const status = this.answer(this.requests.length + 1);
        this.requests.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), status });
        res.writeHead(status, { 'content-type': 'text/plain' }).end('RECEIVER-BODY-NEVER-STORED');
      });
    });
    await new Promise<void>((resolve) => server.listen(this.port, '127.0.0.1', resolve));
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
    return this;
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()).closeAllConnections());
  }

  /** Bodies answered 2xx, deduplicated by webhook-id (at least once), in arrival order. */
  delivered(): EventPayload[] {
    const seen = new Set<string>();
    const out: EventPayload[] = [];
    for (const r of this.requests) {
      if (r.status < 200 || r.status >= 300) continue;
      const id = String(r.headers['webhook-id']);
      if (seen.has(id)) continue;
      seen.add(id);
      const event = JSON.parse(r.body) as EventPayload;
      checkEvent(event);
      out.push(event);
    }
    return out;
  }
}

/** A free port with nothing listening on it (connections are refused). */
async function freePort(): Promise<number> {
  const r = await new Receiver().start();
  const port = r.port;
  await r.stop();
  return port;
}

/** A /ws/events client that records everything it receives. */
class EventsClient {
  readonly events: EventPayload[] = [];
  readonly errors: Array<{ code: string; message: string }> = [];
  /** The cursors of `ready` messages (one per connection, before any event). */
  readonly ready: Array<string | null> = [];
  closeCode: number | null = null;
  protocol = '';
  private constructor(readonly ws: WebSocket) {}

  static connect(
    base: string,
    key: string | null,
    options: { after?: string; via?: 'protocol' | 'header'; protocols?: string[] } = {},
  ): Promise<EventsClient> {
    const url = `${base.replace(/^http/, 'ws')}/ws/events${options.after ? `?after=${options.after}` : ''}`;
    const via = options.via ?? 'protocol';
    const protocols = options.protocols ?? ['faceid.events.v1', ...(key && via === 'protocol' ? [`key.${key}`] : [])];
    const ws = new WebSocket(
      url,
      protocols,
      key && via === 'header' ? { headers: { authorization: `Bearer ${key}` } } : {},
    );
    const client = new EventsClient(ws);
    ws.on('message', (data) => {
      const msg = JSON.parse(data.toString());
      if (msg.type === 'event') {
        if (client.ready.length === 0) throw new Error('an event came before the ready message');
        checkEvent(msg.event);
        client.events.push(msg.event);
      } else if (msg.type === 'ready') client.ready.push(msg.cursor);
      else if (msg.type === 'error') client.errors.push(msg);
      else throw new Error(`unexpected message ${msg.type}`);
    });
    ws.on('close', (code) => (client.closeCode = code));
    return new Promise((resolve, reject) => {
      ws.once('open', () => {
        client.protocol = ws.protocol;
        resolve(client);
      });
      ws.once('error', reject);
    });
  }

  waitForEvents(n: number, timeoutMs = 15_000): Promise<EventPayload[]> {
    return until(
      () => `${n} events (have ${this.events.length})`,
      () => this.events.length >= n && this.events,
      timeoutMs,
    );
  }

  waitForReady(timeoutMs = 10_000): Promise<string | null> {
    return until('ready', () => (this.ready.length > 0 ? { cursor: this.ready[0] } : undefined), timeoutMs).then(
      (r) => r.cursor,
    );
  }

  waitForClose(timeoutMs = 10_000): Promise<number> {
    return until('close', () => this.closeCode ?? undefined, timeoutMs);
  }

  close(): Promise<number> {
    this.ws.close(1000);
    return this.waitForClose();
  }
}

/** Each event seen once, in order of first arrival (receivers must dedupe: delivery is at least once). */
function dedupe(events: EventPayload[]): EventPayload[] {
  const seen = new Set<string>();
  return events.filter((e) => !seen.has(e.id) && seen.add(e.id));
}

interface ClinicKeys {
  clinicId: string;
  workstationId: string;
  wsKey: string;
  misKey: string;
}

async function newClinic(
  repos: Pick<Repositories, 'clinics' | 'workstations' | 'misClients'>,
  name: string,
): Promise<ClinicKeys> {
  const clinic = await repos.clinics.create(name);
  const { apiKey: wsKey, workstation } = await createWorkstation(repos.workstations, clinic.id, `${name} desk`);
  const { apiKey: misKey } = await createMisClient(repos.misClients, clinic.id, `${name} MIS`);
  return { clinicId: clinic.id, workstationId: workstation.id, wsKey, misKey };
}

let iinSerial = 100;
const LIVENESS = { passive: 0.912, blink: true };
const TIMINGS = { firstFrameToVerdictMs: 1830, framesReceived: 21, framesAnalysed: 6, framesDropped: 0 };

/** Delivery records in the order they were made (createdAt can tie within a millisecond). */
const attemptOrder = (deliveries: Json[]): Json[] =>
  [...deliveries].sort(
    (a, b) => a.createdAt.localeCompare(b.createdAt) || a.eventSeq - b.eventSeq || a.attempt - b.attempt,
  );

type Json = any; // response bodies are checked field by field

// ---- The examples of docs/mis-integration.md, run as they are ---------------------------------------------------

function docExamples(): Map<string, string> {
  const md = fs.readFileSync(path.join(ROOT, 'docs/mis-integration.md'), 'utf8');
  const out = new Map<string, string>();
  for (const m of md.matchAll(/<!-- example: ([\w.-]+) -->\n```js\n([\s\S]*?)```/g)) out.set(m[1], m[2]);
  return out;
}

interface Script {
  proc: ChildProcess;
  lines: string[];
  exited: Promise<number | null>;
  waitFor(line: string): Promise<void>;
}

/** Runs a file with node; `ws` resolves from this repository's node_modules, as after `npm install ws`. */
function runScript(file: string, args: string[], env: Record<string, string>): Script {
  const proc = spawn(process.execPath, [file, ...args], {
    cwd: path.dirname(file),
    env: { ...(process.env as Record<string, string>), NODE_PATH: path.join(ROOT, 'node_modules'), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  let partial = '';
  const collect = (d: Buffer) => {
    partial += d.toString();
    const parts = partial.split('\n');
    partial = parts.pop()!;
    lines.push(...parts);
  };
  proc.stdout!.on('data', collect);
  proc.stderr!.on('data', collect);
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  return {
    proc,
    lines,
    exited,
    waitFor: (line) =>
      until(`"${line}" (have ${JSON.stringify(lines)})`, () => lines.includes(line)).then(() => undefined),
  };
}

// (The examples print result and appointmentId, which only identification events have; '-' for other events.)
const exampleLine = (e: EventPayload) =>
  `${e.seq} ${e.type} ${'result' in e ? e.result : '-'} ${'appointmentId' in e ? e.appointmentId : '-'} ${e.id}`;

// ---- The app in this process ------------------------------------------------------------------------------------

for (const db of TEST_DATABASES) {
  describe(`MIS events (${db})`, () => {
    let app: INestApplication;
    let base: string;
    let database: TestDatabase;
    let repos: Pick<Repositories, 'clinics' | 'workstations' | 'misClients'>;
    const receivers: Receiver[] = [];
    const clients: EventsClient[] = [];

    const api = async (
      method: string,
      url: string,
      key: string | null,
      body?: unknown,
    ): Promise<{ status: number; body: Json }> => {
      const res = await fetch(base + url, {
        method,
        headers: { ...(key ? { authorization: `Bearer ${key}` } : {}), 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : null };
    };

    /** A verdict the way the gateway writes one: a face session of the desk (stored as POST /sessions stores one for
     *  an enrolled patient, without the template's own event), finished through VerdictRepository. */
    const verdict = async (
      c: ClinicKeys,
      result: VerdictResult = 'match',
      via: INestApplication = app,
    ): Promise<string> => {
      const s = await openFaceSession(app, c.wsKey, { iin: makeIin('1979-03-08', iinSerial++) });
      const face = result !== 'expired';
      const v = await via.get(VERDICTS).finish({
        clinicId: c.clinicId,
        sessionId: s.sessionId,
        result,
        method: face ? 'face' : 'none',
        score: face ? 0.8123 : null,
        liveness: face ? LIVENESS : null,
        timings: face ? TIMINGS : null,
      });
      expect(v).not.toBeNull();
      return s.sessionId;
    };
    const verdicts = async (c: ClinicKeys, n: number) => {
      for (let i = 0; i < n; i++) await verdict(c);
    };
    const allEvents = async (c: ClinicKeys): Promise<EventPayload[]> => {
      const r = await api('GET', '/events?limit=1000', c.misKey);
      expect(r.status).toBe(200);
      r.body.events.forEach(checkEvent);
      return r.body.events;
    };
    const receiver = async (port?: number) => {
      const r = await new Receiver(port).start();
      receivers.push(r);
      return r;
    };
    const connect = async (...args: Parameters<typeof EventsClient.connect>) => {
      const c = await EventsClient.connect(...args);
      clients.push(c);
      return c;
    };
    /** connect(), then its `ready`: a live stream starts at the position the server read, so write after it. */
    const subscribe = async (...args: Parameters<typeof EventsClient.connect>) => {
      const c = await connect(...args);
      await c.waitForReady();
      return c;
    };

    beforeAll(async () => {
      database = await createTestDatabase(db, 'events');
      const started = Date.now();
      app = await createApp({ config: loadConfig(serviceEnv(database)) });
      await app.listen(0, '127.0.0.1');
      base = `http://127.0.0.1:${(app.getHttpServer().address() as AddressInfo).port}`;
      console.log(`[${db}] app started in ${Date.now() - started} ms`);
      repos = { clinics: app.get(CLINICS), workstations: app.get(WORKSTATIONS), misClients: app.get(MIS_CLIENTS) };
    });

    afterAll(async () => {
      for (const c of clients) c.ws.terminate();
      for (const r of receivers) await r.stop();
      await app?.close();
      await database?.drop();
    });

    it('serves the event schemas (as committed in docs/events) and documents the routes in OpenAPI', async () => {
      const r = await api('GET', '/events/schemas', null);
      expect(r.status).toBe(200);
      expect(r.body.version).toBe(1);
      for (const t of EVENT_TYPES) {
        expect(r.body.schemas[t]).toEqual(
          JSON.parse(fs.readFileSync(path.join(ROOT, 'docs/events', schemaFileName(t)), 'utf8')),
        );
      }
      const doc = (await api('GET', '/openapi.json', null)).body;
      for (const p of [
        '/events',
        '/events/schemas',
        '/webhooks',
        '/webhooks/{id}',
        '/webhooks/{id}/replay',
        '/webhooks/{id}/deliveries',
      ]) {
        expect(doc.paths[p]).toBeDefined();
      }
      expect(Object.keys(doc.components.schemas)).toEqual(
        expect.arrayContaining(['IdentificationVerdictEventV1', 'IdentificationRefusedEventV1', 'Webhook']),
      );
      expect(doc.paths['/webhooks'].post.security).toEqual([{ misKey: [] }]);
      expect(doc.paths['/events'].get.security).toEqual([{ eventReaderKey: [] }]);
    });

    it('authenticates WebSocket subscribers by subprotocol or header, MIS or workstation key, and refuses the rest', async () => {
      const c = await newClinic(repos, 'Auth clinic');
      const byProtocol = await subscribe(base, c.misKey);
      expect(byProtocol.protocol).toBe('faceid.events.v1');
      const byHeader = await subscribe(base, c.wsKey, { via: 'header' });
      await verdict(c);
      await byProtocol.waitForEvents(1);
      await byHeader.waitForEvents(1);
      expect(byHeader.events).toEqual(byProtocol.events);

      const refused = async (key: string | null, after: string | undefined, code: string, close: number) => {
        const client = await connect(base, key, { after });
        expect(await client.waitForClose()).toBe(close);
        expect(client.errors).toEqual([{ type: 'error', code, message: expect.any(String) }]);
        expect(client.events).toEqual([]);
      };
      await refused(null, undefined, 'unauthorized', 4001);
      await refused(`fid_mis_${randomBytes(32).toString('base64url')}`, undefined, 'unauthorized', 4001);
      await refused('not-a-key', undefined, 'unauthorized', 4001);
      await refused(c.misKey, 'not-a-uuid', 'invalid_request', 4400);
      await refused(c.misKey, '00000000-0000-4000-8000-000000000000', 'cursor_unknown', 4404);

      // Other paths on the same server still upgrade (identification) or get a 404.
      const other = new WebSocket(base.replace(/^http/, 'ws') + '/ws/nothing-here');
      other.on('error', () => undefined);
      const status = await new Promise<number>((resolve) =>
        other.on('unexpected-response', (req, res) => {
          resolve(res.statusCode ?? 0);
          req.destroy();
        }),
      );
      expect(status).toBe(404);
      const identify = new WebSocket(base.replace(/^http/, 'ws') + '/ws/identify', ['faceid.v1', 'token.nope']);
      expect(await new Promise((resolve) => identify.on('close', resolve))).toBe(4001);
    });

    it('tells a live subscriber where its stream starts, so a drop before the first event loses nothing', async () => {
      const c = await newClinic(repos, 'Ready clinic');
      const empty = await connect(base, c.misKey);
      expect(await empty.waitForReady()).toBeNull();
      await empty.close();
      await verdicts(c, 2);
      const live = await connect(base, c.misKey);
      const cursor = await live.waitForReady();
      expect(cursor).toBe((await allEvents(c))[1].id);
      await live.close(); // dropped before any event
      await verdicts(c, 3);
      const resumed = await connect(base, c.misKey, { after: cursor! });
      expect(await resumed.waitForReady()).toBe(cursor);
      expect((await resumed.waitForEvents(3)).map((e) => e.seq)).toEqual([3, 4, 5]);
      await resumed.close();
    });

    it('gives an offline subscriber everything after its cursor in order, then live events', async () => {
      const c = await newClinic(repos, 'Resume clinic');
      const first = await subscribe(base, c.misKey);
      await verdict(c);
      const [seen] = await first.waitForEvents(1);
      expect(seen.seq).toBe(1);
      expect(await first.close()).toBe(1000);

      const t0 = Date.now();
      await verdicts(c, 20); // nobody listening
      const written = Date.now() - t0;

      const t1 = Date.now();
      const resumed = await connect(base, c.wsKey, { after: seen.id, via: 'header' });
      const replayed = await resumed.waitForEvents(20);
      console.log(
        `[${db}] 20 verdicts written in ${written} ms; replayed to the resumed subscriber in ${Date.now() - t1} ms`,
      );
      expect(dedupe(replayed).map((e) => e.seq)).toEqual(Array.from({ length: 20 }, (_, i) => i + 2));
      expect(new Set(replayed.map((e) => e.id)).size).toBe(replayed.length); // one connection: no duplicate at all
      expect(replayed).toEqual((await allEvents(c)).slice(1));

      // Live events follow, also when written concurrently: still in seq order, no gap.
      await Promise.all(Array.from({ length: 8 }, () => verdict(c)));
      const all = await resumed.waitForEvents(28);
      expect(all.map((e) => e.seq)).toEqual(Array.from({ length: 28 }, (_, i) => i + 2));
    });

    it('pages GET /events by cursor, for MIS and workstation keys', async () => {
      const c = await newClinic(repos, 'Paging clinic');
      await verdicts(c, 7);
      const pages: EventPayload[][] = [];
      let cursor: string | null = null;
      for (;;) {
        const r: { status: number; body: Json } = await api(
          'GET',
          `/events?limit=3${cursor ? `&after=${cursor}` : ''}`,
          pages.length % 2 ? c.wsKey : c.misKey,
        );
        expect(r.status).toBe(200);
        r.body.events.forEach(checkEvent);
        if (r.body.events.length === 0) {
          expect(r.body.cursor).toBe(cursor);
          break;
        }
        pages.push(r.body.events);
        cursor = r.body.cursor;
      }
      expect(pages.map((p) => p.length)).toEqual([3, 3, 1]);
      expect(pages.flat().map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7]);
      expect((await api('GET', '/events', null)).status).toBe(401);
      expect((await api('GET', '/events?limit=0', c.misKey)).status).toBe(400);
      expect((await api('GET', '/events?after=00000000-0000-4000-8000-000000000000', c.misKey)).body.error.code).toBe(
        'cursor_unknown',
      );
    });

    it('retries a failing receiver and signs each delivery (Standard Webhooks)', async () => {
      const c = await newClinic(repos, 'Signed clinic');
      const rx = await receiver();
      rx.answer = (n) => (n <= 3 ? 500 : 200);
      const created = await api('POST', '/webhooks', c.misKey, { url: rx.url });
      expect(created.status).toBe(201);
      expect(created.body).toMatchObject({ url: rx.url, state: 'active', cursor: null, cursorSeq: 0, failures: 0 });
      const secret: string = created.body.secret;
      expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
      expect(Buffer.from(secret.slice(6), 'base64')).toHaveLength(32);
      const shown = await api('GET', `/webhooks/${created.body.id}`, c.misKey);
      expect(shown.body).not.toHaveProperty('secret');
      expect(JSON.stringify((await api('GET', '/webhooks', c.misKey)).body)).not.toContain(secret.slice(6));

      const t0 = Date.now();
      await verdict(c);
      await until('a 2xx delivery', () => rx.requests.some((r) => r.status === 200));
      console.log(`[${db}] verdict to delivered webhook after 3 failures (base 50 ms): ${Date.now() - t0} ms`);
      const [event] = await allEvents(c);
      expect(rx.requests.map((r) => r.status)).toEqual([500, 500, 500, 200]);
      for (const r of rx.requests) {
        expect(r.headers['webhook-id']).toBe(event.id);
        expect(r.headers['content-type']).toBe('application/json');
        expect(r.headers['user-agent']).toMatch(/^faceid-gateway-webhooks\//);
        expect(JSON.parse(r.body)).toEqual(event);
        // Our verify() and an independent recomputation agree.
        expect(verify(secret, r.headers, r.body)).toMatchObject({ ok: true, id: event.id });
        const ts = String(r.headers['webhook-timestamp']);
        expect(Math.abs(Number(ts) - Date.now() / 1000)).toBeLessThan(60);
        const mac = createHmac('sha256', Buffer.from(secret.slice('whsec_'.length), 'base64'))
          .update(`${event.id}.${ts}.${r.body}`)
          .digest('base64');
        expect(r.headers['webhook-signature']).toBe(`v1,${mac}`);
        // Any change to the body breaks it.
        const tampered = r.body.replace('"match"', '"no_match"');
        expect(tampered).not.toBe(r.body);
        expect(verify(secret, r.headers, tampered)).toEqual({ ok: false, reason: 'signature_mismatch' });
      }
      checkEvent(JSON.parse(rx.requests[3].body));

      const deliveries = await until('4 delivery records', async () => {
        const d = await api('GET', `/webhooks/${created.body.id}/deliveries`, c.misKey);
        return d.body.deliveries.length === 4 && d.body.deliveries;
      });
      expect(attemptOrder(deliveries).map((d) => [d.attempt, d.outcome, d.status, d.error, d.eventId])).toEqual([
        [1, 'failed', 500, 'http_status', event.id],
        [2, 'failed', 500, 'http_status', event.id],
        [3, 'failed', 500, 'http_status', event.id],
        [4, 'delivered', 200, null, event.id],
      ]);
      expect(JSON.stringify(deliveries)).not.toContain('RECEIVER-BODY');
      // The operator's view: attempts by outcome on /metrics (other tests of this app add to them).
      const metrics = await (await fetch(`${base}/metrics`)).text();
      const count = (outcome: string) =>
        Number(new RegExp(`faceid_webhook_attempts_total\\{outcome="${outcome}"\\} (\\d+)`).exec(metrics)?.[1]);
      expect(count('failed')).toBeGreaterThanOrEqual(3);
      expect(count('delivered')).toBeGreaterThanOrEqual(1);
      expect((await api('GET', `/webhooks/${created.body.id}`, c.misKey)).body).toMatchObject({
        state: 'active',
        cursor: event.id,
        cursorSeq: 1,
        failures: 0,
      });
    });

    it('marks a subscriber dead after WEBHOOK_MAX_ATTEMPTS failures; resume delivers the backlog in order', async () => {
      const c = await newClinic(repos, 'Dead clinic');
      const rx = await receiver();
      rx.answer = () => 503;
      const hook = (await api('POST', '/webhooks', c.misKey, { url: rx.url })).body;
      await verdict(c);
      const dead = await until('dead', async () => {
        const h = await api('GET', `/webhooks/${hook.id}`, c.misKey);
        return h.body.state === 'dead' && h.body;
      });
      expect(dead).toMatchObject({ failures: 4, cursor: null, deadAt: expect.any(String) });
      expect(rx.requests).toHaveLength(4);
      await verdicts(c, 3); // the backlog grows while it is dead
      // A dead subscriber gets nothing: not once its retry time has passed, nor in a complete dispatcher pass after
      // that (one that claims whatever is due and waits for every delivery it started).
      const due = new Date(dead.nextAttemptAt).getTime();
      await until('its retry time', () => Date.now() > due);
      await app.get(WebhookDispatcher).waitForPasses(1);
      expect(rx.requests).toHaveLength(4);

      rx.answer = () => 204;
      const resumed = await api('POST', `/webhooks/${hook.id}/resume`, c.misKey);
      expect(resumed.status).toBe(200);
      expect(resumed.body).toMatchObject({ state: 'active', failures: 0, cursor: null });
      await until('the backlog', () => rx.delivered().length === 4);
      const events = await allEvents(c);
      expect(rx.delivered()).toEqual(events);
      expect(rx.delivered().map((e) => e.seq)).toEqual([1, 2, 3, 4]);
      const d = attemptOrder((await api('GET', `/webhooks/${hook.id}/deliveries`, c.misKey)).body.deliveries);
      expect(d.map((x) => `${x.eventSeq}:${x.attempt}:${x.outcome}`)).toEqual([
        '1:1:failed',
        '1:2:failed',
        '1:3:failed',
        '1:4:failed',
        '1:1:delivered',
        '2:1:delivered',
        '3:1:delivered',
        '4:1:delivered',
      ]);
    });

    it('pauses, resumes, replays from an event and deletes a subscription', async () => {
      const c = await newClinic(repos, 'Replay clinic');
      await verdict(c); // before the subscription: not delivered unless asked for
      const rx = await receiver();
      const hook = (await api('POST', '/webhooks', c.misKey, { url: rx.url })).body;
      expect(hook.cursorSeq).toBe(1);
      await verdicts(c, 2);
      await until('2 deliveries', () => rx.delivered().length === 2);
      expect(rx.delivered().map((e) => e.seq)).toEqual([2, 3]);

      expect((await api('POST', `/webhooks/${hook.id}/pause`, c.misKey)).body.state).toBe('paused');
      await verdict(c);
      // A complete dispatcher pass after the event (it was due at once: its last delivery succeeded) sends nothing.
      await app.get(WebhookDispatcher).waitForPasses(1);
      expect(rx.delivered()).toHaveLength(2);
      expect((await api('POST', `/webhooks/${hook.id}/resume`, c.misKey)).body.state).toBe('active');
      await until('the event written while paused', () => rx.delivered().length === 3);

      const events = await allEvents(c);
      rx.requests.length = 0;
      const replay = await api('POST', `/webhooks/${hook.id}/replay`, c.misKey, { fromEventId: events[0].id });
      expect(replay.status).toBe(200);
      expect(replay.body).toMatchObject({ cursorSeq: 0, cursor: null, state: 'active' });
      await until('the replay', () => rx.delivered().length === 4);
      expect(rx.delivered()).toEqual(events);

      // A subscription that starts at a given event.
      const rx2 = await receiver();
      const from = await api('POST', '/webhooks', c.misKey, { url: rx2.url, fromEventId: events[2].id });
      expect(from.body).toMatchObject({ cursorSeq: 2, cursor: events[1].id });
      await until('deliveries from event 3', () => rx2.delivered().length === 2);
      expect(rx2.delivered()).toEqual(events.slice(2));

      const unknown = '00000000-0000-4000-8000-000000000000';
      expect(
        (await api('POST', `/webhooks/${hook.id}/replay`, c.misKey, { fromEventId: unknown })).body.error.code,
      ).toBe('event_not_found');
      expect((await api('POST', '/webhooks', c.misKey, { url: 'ftp://x.example/' })).body.error.code).toBe(
        'webhook_url_invalid',
      );
      expect((await api('POST', '/webhooks', c.wsKey, { url: rx.url })).status).toBe(401); // MIS keys only
      expect((await api('DELETE', `/webhooks/${hook.id}`, c.misKey)).status).toBe(204);
      expect((await api('GET', `/webhooks/${hook.id}`, c.misKey)).status).toBe(404);
      expect((await api('GET', `/webhooks/${hook.id}/deliveries`, c.misKey)).status).toBe(404);
      expect((await api('DELETE', `/webhooks/${hook.id}`, c.misKey)).status).toBe(404);
    });

    it('keeps clinics apart: events, cursors and webhooks', async () => {
      const a = await newClinic(repos, 'Clinic A');
      const b = await newClinic(repos, 'Clinic B');
      const bMis = await subscribe(base, b.misKey);
      const bDesk = await subscribe(base, b.wsKey, { via: 'header' });
      const rxA = await receiver();
      const hookA = (await api('POST', '/webhooks', a.misKey, { url: rxA.url })).body;
      await verdicts(a, 3);
      await until('A delivered', () => rxA.delivered().length === 3);
      // B's event is a marker: it was written after A's three had committed (and reached A's webhook), while B's
      // sockets were open. Each socket reads and sends its clinic's events serially, in order, so anything of A's
      // that reached B would have come before it, or with it.
      await verdict(b);
      await bMis.waitForEvents(1);
      await bDesk.waitForEvents(1);
      for (const client of [bMis, bDesk]) {
        expect(client.events.map((e) => e.clinicId)).toEqual([b.clinicId]);
      }
      const aEvents = await allEvents(a);
      expect(aEvents.every((e) => e.clinicId === a.clinicId)).toBe(true);
      // A's cursor means nothing in B.
      const cross = await connect(base, b.misKey, { after: aEvents[0].id });
      expect(await cross.waitForClose()).toBe(4404);
      expect(cross.errors[0].code).toBe('cursor_unknown');
      expect(cross.events).toEqual([]);
      const crossDesk = await connect(base, b.wsKey, { after: aEvents[0].id });
      expect(await crossDesk.waitForClose()).toBe(4404);
      expect((await api('GET', `/events?after=${aEvents[0].id}`, b.misKey)).body.error.code).toBe('cursor_unknown');
      expect((await api('GET', `/events?after=${aEvents[0].id}`, b.wsKey)).status).toBe(404);
      const bAll = await allEvents(b);
      expect(bAll.map((e) => e.clinicId)).toEqual([b.clinicId]);
      // A's webhook is invisible to B and out of its reach.
      expect((await api('GET', '/webhooks', b.misKey)).body.webhooks).toEqual([]);
      for (const [method, suffix] of [
        ['GET', ''],
        ['GET', '/deliveries'],
        ['POST', '/pause'],
        ['POST', '/resume'],
        ['DELETE', ''],
      ]) {
        expect((await api(method, `/webhooks/${hookA.id}${suffix}`, b.misKey)).status).toBe(404);
      }
      expect((await api('POST', `/webhooks/${hookA.id}/replay`, b.misKey, { fromEventId: aEvents[0].id })).status).toBe(
        404,
      );
      expect((await api('GET', `/webhooks/${hookA.id}`, a.misKey)).body.state).toBe('active');
    });

    it('sends every event type with exactly the schema’s keys and no biometric data', async () => {
      const c = await newClinic(repos, 'Types clinic');
      const client = await subscribe(base, c.misKey);
      const rx = await receiver();
      await api('POST', '/webhooks', c.misKey, { url: rx.url });
      await verdict(c, 'match');
      await verdict(c, 'no_match');
      await verdict(c, 'expired');
      // A refusal and a lock-out, through the storage calls the code path makes.
      const s = await openFaceSession(app, c.wsKey, {
        iin: makeIin('1991-11-30', iinSerial++),
        appointmentId: 'apt-refusal',
      });
      const codeHash = createHmac('sha256', randomBytes(32)).update('123456').digest('hex');
      await app.get(SESSIONS).beginCodePath({
        clinicId: c.clinicId,
        sessionId: s.sessionId,
        codeHash,
        codeExpiresAt: new Date(Date.now() + 60_000),
        refusal: { reason: 'patient_refused_photo' },
      });
      await app.get(VERDICTS).finish({
        clinicId: c.clinicId,
        sessionId: s.sessionId,
        result: 'locked_out',
        method: 'code',
        score: null,
        liveness: null,
        timings: null,
      });
      const patient = await app.get(SESSIONS).get(c.clinicId, s.sessionId);
      await app.get(EVENTS).appendLockout({
        clinicId: c.clinicId,
        patientId: patient!.patientId,
        appointmentId: 'apt-face-lock',
        channel: 'in_person',
      });

      const received = await client.waitForEvents(6);
      await until('6 webhook deliveries', () => rx.delivered().length === 6);
      expect(received.map((e) => e.type)).toEqual([
        'identification.verdict',
        'identification.verdict',
        'identification.expired',
        'identification.refused',
        'identification.locked_out',
        'identification.locked_out',
      ]);
      expect(rx.delivered()).toEqual(received);
      rx.delivered().forEach(checkEvent);
      expect(received[3]).toMatchObject({
        method: 'none',
        result: 'refused',
        reason: 'patient_refused_photo',
        score: null,
      });
      expect(received[5]).toMatchObject({ sessionId: null, method: 'face' });
      expect(received[0]).toMatchObject({ liveness: LIVENESS, timings: TIMINGS });
      const text = JSON.stringify(received);
      expect(text).not.toContain(codeHash);
      expect(text).not.toMatch(/embedding|template|image|jpeg|"frame"/i);
      console.log(`[${db}] events checked against the committed JSON Schemas so far: ${eventsChecked}`);
    });
    // Several instances share one PostgreSQL. (Two SQLite apps in one process would block each other's transactions:
    // better-sqlite3 waits for locks synchronously, on the one thread both share.)
    (db === 'postgres' ? it : it.skip)(
      'shares the webhook work of two instances on one database without posting an event twice',
      async () => {
        const second = await createApp({ config: loadConfig(serviceEnv(database)) });
        await second.listen(0, '127.0.0.1');
        try {
          const c = await newClinic(repos, 'Two instances clinic');
          const rxs = await Promise.all([receiver(), receiver(), receiver()]);
          for (const rx of rxs) expect((await api('POST', '/webhooks', c.misKey, { url: rx.url })).status).toBe(201);
          // Written through both instances: each wakes its own dispatcher, and both poll.
          for (let i = 0; i < 12; i++) await verdict(c, 'match', i % 2 ? second : app);
          const events = await allEvents(c);
          for (const rx of rxs) await until('12 deliveries', () => rx.requests.length >= 12);
          // A second post of an event would come from a delivery still in flight or a later claim: a complete pass of
          // each instance settles the first and makes the second.
          await Promise.all([app, second].map((a) => a.get(WebhookDispatcher).waitForPasses(1)));
          for (const rx of rxs) {
            expect(rx.requests.map((r) => JSON.parse(r.body).seq)).toEqual(events.map((e) => e.seq)); // each once, in order
            expect(rx.delivered()).toEqual(events);
          }
        } finally {
          await second.close();
        }
      },
    );

    it('runs the examples of docs/mis-integration.md against the service', async () => {
      const examples = docExamples();
      expect([...examples.keys()].sort()).toEqual(['pull.js', 'subscribe.js', 'webhook-receiver.js']);
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'faceid-mis-examples-'));
      const scripts: Script[] = [];
      try {
        for (const [name, code] of examples) fs.writeFileSync(path.join(dir, name), code);
        const c = await newClinic(repos, 'Docs clinic');
        const env = { FACEID_URL: base, FACEID_KEY: c.misKey, CURSOR_FILE: path.join(dir, 'cursor') };
        const run = (name: string, args: string[] = [], extra: Record<string, string> = {}) => {
          const s = runScript(path.join(dir, name), args, { ...env, ...extra });
          scripts.push(s);
          return s;
        };
        await verdicts(c, 2);
        let events = await allEvents(c);

        // pull.js: from the start, then after a cursor.
        const pull = run('pull.js');
        expect(await pull.exited).toBe(0);
        expect(pull.lines.filter(Boolean)).toEqual([...events.map(exampleLine), `cursor: ${events[1].id}`]);
        const pullAfter = run('pull.js', [events[0].id]);
        expect(await pullAfter.exited).toBe(0);
        expect(pullAfter.lines.filter(Boolean)).toEqual([exampleLine(events[1]), `cursor: ${events[1].id}`]);

        // subscribe.js: resumes after its stored cursor, goes on live, and again after a restart.
        fs.writeFileSync(env.CURSOR_FILE, events[0].id);
        const sub = run('subscribe.js');
        await sub.waitFor(exampleLine(events[1]));
        await verdict(c);
        events = await allEvents(c);
        await sub.waitFor(exampleLine(events[2]));
        await until('the cursor file', () => fs.readFileSync(env.CURSOR_FILE, 'utf8') === events[2].id);
        sub.proc.kill('SIGTERM');
        await sub.exited;
        const again = run('subscribe.js');
        await verdict(c); // connected yet or not: it resumes after its cursor

        events = await allEvents(c);
        await again.waitFor(exampleLine(events[3]));
        expect(again.lines.filter(Boolean)).toEqual([exampleLine(events[3])]);
        again.proc.kill('SIGTERM');

        // webhook-receiver.js: registered through the API, verifies what the service sends, refuses a forgery.
        const port = await freePort();
        const hook = await api('POST', '/webhooks', c.misKey, { url: `http://127.0.0.1:${port}/faceid/events` });
        expect(hook.status).toBe(201);
        const rx = run('webhook-receiver.js', [], { FACEID_WEBHOOK_SECRET: hook.body.secret, PORT: String(port) });
        await rx.waitFor('listening');
        await verdict(c);
        events = await allEvents(c);
        await rx.waitFor(exampleLine(events[4]));
        const forged = await fetch(`http://127.0.0.1:${port}/faceid/events`, {
          method: 'POST',
          headers: {
            'webhook-id': events[4].id,
            'webhook-timestamp': String(Math.floor(Date.now() / 1000)),
            'webhook-signature': `v1,${randomBytes(32).toString('base64')}`,
          },
          body: JSON.stringify({ ...events[4], result: 'no_match' }),
        });
        expect(forged.status).toBe(401);
        // The receiver has the event; the gateway records the delivery once the response is in (a moment later).
        const d = await until('the delivery record', async () => {
          const list = (await api('GET', `/webhooks/${hook.body.id}/deliveries`, c.misKey)).body.deliveries;
          return list.length > 0 && list;
        });
        expect(d).toEqual([expect.objectContaining({ eventId: events[4].id, outcome: 'delivered', status: 204 })]);
        expect(rx.lines.filter((l) => l !== 'listening')).toEqual([exampleLine(events[4])]);
      } finally {
        for (const s of scripts) if (s.proc.exitCode === null && s.proc.signalCode === null) s.proc.kill('SIGKILL');
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  });
}

// ---- The service as a child process, killed and restarted -------------------------------------------------------

interface Child {
  proc: ChildProcess;
  base: string;
  output: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

async function startService(env: Record<string, string>): Promise<Child> {
  const started = Date.now();
  const proc = spawn(
    process.execPath,
    ['-r', 'ts-node/register/transpile-only', path.join(ROOT, 'test/support/events-server.ts')],
    {
      cwd: ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const output: string[] = [];
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const port = await new Promise<number>((resolve, reject) => {
    let buffered = '';
    const timer = setTimeout(() => reject(new Error(`service did not start:\n${output.join('')}`)), 60_000);
    proc.stdout!.on('data', (d: Buffer) => {
      output.push(d.toString());
      buffered += d.toString();
      const m = /FACEID_READY (\d+)/.exec(buffered);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    proc.stderr!.on('data', (d: Buffer) => output.push(d.toString()));
    void exited.then(() => reject(new Error(`service exited before it was ready:\n${output.join('')}`)));
  });
  console.log(`service (pid ${proc.pid}) ready in ${Date.now() - started} ms`);
  return { proc, base: `http://127.0.0.1:${port}`, output, exited };
}

for (const db of TEST_DATABASES) {
  describe(`MIS events across a killed service (${db})`, () => {
    let database: TestDatabase;
    let env: Record<string, string>;
    let storage: Storage;
    const children: Child[] = [];
    const receivers: Receiver[] = [];
    const sockets: EventsClient[] = [];

    beforeAll(async () => {
      database = await createTestDatabase(db, 'events-kill');
      // No retry cap here: the subscriber must still be active when the receiver comes back.
      env = serviceEnv(database, { WEBHOOK_MAX_ATTEMPTS: '100', WEBHOOK_RETRY_MAX_MS: '300' });
      storage = await openStorage(loadConfig(env));
    });

    afterAll(async () => {
      for (const s of sockets) s.ws.terminate();
      for (const c of children) if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill('SIGKILL');
      for (const r of receivers) await r.stop();
      await storage?.close();
      await database?.drop();
    });

    it('delivers every event written before, during and after a SIGKILL, by webhook and to a resuming WebSocket', async () => {
      const repos = storage.repos;
      const c = await newClinic(repos, 'Restart clinic');
      /** What the gateway does for one face verdict, straight on the shared database (another process). */
      const write = async (n: number) => {
        for (let i = 0; i < n; i++) {
          const patient = await repos.patients.upsert(c.clinicId, makeIin('1983-05-17', iinSerial++));
          const session = await repos.sessions.create({
            clinicId: c.clinicId,
            workstationId: c.workstationId,
            patientId: patient.id,
            appointmentId: `apt-${randomBytes(3).toString('hex')}`,
            channel: 'in_person',
            tokenHash: randomBytes(32).toString('hex'),
            tokenExpiresAt: new Date(Date.now() + 60_000),
          });
          const v = await repos.verdicts.finish({
            clinicId: c.clinicId,
            sessionId: session.id,
            result: 'match',
            method: 'face',
            score: 0.77,
            liveness: LIVENESS,
            timings: TIMINGS,
          });
          expect(v).not.toBeNull();
        }
      };
      const stored = async () => (await repos.events.after(c.clinicId, 0, 1000)).map((e) => e.payload);

      const first = await startService(env);
      children.push(first);
      const port = await freePort(); // the receiver is down: connections are refused
      const rx = new Receiver(port);
      receivers.push(rx);
      const res = await fetch(`${first.base}/webhooks`, {
        method: 'POST',
        headers: { authorization: `Bearer ${c.misKey}`, 'content-type': 'application/json' },
        body: JSON.stringify({ url: rx.url }),
      });
      expect(res.status).toBe(201);
      const hook = (await res.json()) as { id: string; secret: string };
      const ws1 = await EventsClient.connect(first.base, c.misKey);
      sockets.push(ws1);
      await ws1.waitForReady(); // a live stream starts where the service read the position: write after that

      await write(2);
      const seenBefore = await ws1.waitForEvents(2); // found by polling: written by another process
      // Failing attempts (nobody listens) are recorded before the kill; nothing was delivered.
      const failed = await until('failed attempts', async () => {
        const d = await fetch(`${first.base}/webhooks/${hook.id}/deliveries`, {
          headers: { authorization: `Bearer ${c.misKey}` },
        });
        const body = (await d.json()) as { deliveries: Array<{ outcome: string; error: string; eventSeq: number }> };
        return body.deliveries.length >= 2 && body.deliveries;
      });
      expect(failed.every((d) => d.outcome === 'failed' && d.error === 'unreachable' && d.eventSeq === 1)).toBe(true);

      first.proc.kill('SIGKILL');
      expect((await first.exited).signal).toBe('SIGKILL');
      expect(await ws1.waitForClose()).toBe(1006);
      await write(4); // while the service is down

      await rx.start(); // the receiver is back, on the same URL
      const t0 = Date.now();
      const second = await startService(env);
      children.push(second);
      const ws2 = await EventsClient.connect(second.base, c.misKey, { after: seenBefore[seenBefore.length - 1].id });
      sockets.push(ws2);
      await ws2.waitForEvents(4);
      await until('6 webhook deliveries', () => rx.delivered().length === 6, 30_000);
      console.log(`[${db}] restart to all 6 events redelivered: ${Date.now() - t0} ms (includes the start)`);

      let events = await stored();
      expect(events.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6]);
      expect(rx.delivered()).toEqual(events);
      for (const r of rx.requests) expect(verify(hook.secret, r.headers, r.body).ok).toBe(true);
      expect([...seenBefore, ...ws2.events]).toEqual(events);

      // Live again: an event written now reaches both.
      await write(1);
      events = await stored();
      await ws2.waitForEvents(5);
      await until('the 7th delivery', () => rx.delivered().length === 7);
      expect(rx.delivered()).toEqual(events);
      expect([...seenBefore, ...ws2.events]).toEqual(events);

      // A clean stop closes subscribers with 1001.
      second.proc.kill('SIGTERM');
      expect(await ws2.waitForClose(15_000)).toBe(1001);
      const exit = await second.exited;
      expect(exit.code === 0 || exit.signal === 'SIGTERM').toBe(true);
    }, 180_000);
  });
}

import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as net from 'node:net';
import type { INestApplication } from '@nestjs/common';
import { createApp } from '../src/app.factory';
import { createMisClient, createWorkstation } from '../src/auth';
import { loadConfig } from '../src/config';
import { HostResolver, type ResolvedAddress } from '../src/events/host-resolver';
import { CLINICS, MIS_CLIENTS, VERDICTS, WORKSTATIONS } from '../src/storage/ports';
import { createTestDatabase, TEST_DATABASES, type TestDatabase } from './support/databases';
import { makeIin } from './support/iin';
import { openFaceSession } from './support/sessions';
import { until } from './support/waits';

// Webhook destinations end to end: the real app over real HTTP, on SQLite and PostgreSQL. An MIS key registers
// webhooks at loopback, private and link-local addresses in every spelling (refused with the rule), and at names
// that resolve to loopback only when the gateway delivers (DNS rebinding): a local listener must never see a
// connection. Name resolution alone is replaced (the app's HostResolver answers names of this test's making);
// the policy, the connection and the records are the app's own.

type Json = any; // answers are checked field by field

/** An HTTP receiver on 127.0.0.1 that counts every TCP connection made to it, and the requests it answered. */
class Listener {
  connections = 0;
  readonly requests: Array<{ host: string | undefined; id: string | undefined }> = [];
  private readonly server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      this.requests.push({ host: req.headers.host, id: req.headers['webhook-id'] as string | undefined });
      res.writeHead(204).end();
    });
  });

  async start(): Promise<this> {
    this.server.on('connection', () => this.connections++);
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return this;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  stop(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()).closeAllConnections());
  }
}

/** A port that accepts connections and resets them at once (an open port that speaks no HTTP). */
async function resettingPort(): Promise<net.Server> {
  const server = net.createServer((socket) => socket.resetAndDestroy());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

/** A port nothing listens on (connections are refused). */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

// As an MIS could type them, with the rule each must be refused under.
const BAD_URLS: Array<[string, string]> = [
  ['https://127.0.0.1:9443/hooks', 'loopback'],
  ['https://127.1:9443/hooks', 'loopback'],
  ['https://2130706433:9443/hooks', 'loopback'],
  ['https://0x7f000001/hooks', 'loopback'],
  ['https://0177.0.0.01/hooks', 'loopback'],
  ['https://127.0.0.1./hooks', 'loopback'],
  ['https://[::1]:9443/hooks', 'loopback'],
  ['https://[0:0:0:0:0:0:0:1]/hooks', 'loopback'],
  ['https://LOCALHOST:9443/hooks', 'loopback'],
  ['https://localhost./hooks', 'loopback'],
  ['https://api.localhost/hooks', 'loopback'],
  ['https://169.254.169.254/latest/meta-data/', 'link_local'],
  ['https://2852039166/latest/meta-data/', 'link_local'],
  ['https://[fe80::1]/hooks', 'link_local'],
  ['https://[::ffff:127.0.0.1]/hooks', 'ipv4_mapped'],
  ['https://[::ffff:a9fe:a9fe]/hooks', 'ipv4_mapped'],
  ['https://[64:ff9b::7f00:1]/hooks', 'nat64'],
  ['https://10.0.0.5/hooks', 'private'],
  ['https://172.16.3.4/hooks', 'private'],
  ['https://192.168.0.10/hooks', 'private'],
  ['https://0xc0a8000a/hooks', 'private'],
  ['https://100.64.1.1/hooks', 'shared_address'],
  ['https://[fd00:ec2::254]/hooks', 'unique_local'],
  ['https://0.0.0.0:9443/hooks', 'unspecified'],
  ['https://0/hooks', 'unspecified'],
  ['https://[::]/hooks', 'unspecified'],
  ['https://224.0.0.1/hooks', 'multicast'],
  ['https://255.255.255.255/hooks', 'broadcast'],
  ['https://mis.internal/hooks', 'local_name'],
];

for (const kind of TEST_DATABASES) {
  describe(`webhook destinations (${kind})`, () => {
    let db: TestDatabase;
    let app: INestApplication;
    let base: string;
    let clinicId = '';
    let wsKey = '';
    let misKey = '';
    let serial = 300;
    const lookups: string[] = [];
    const listeners: Listener[] = [];
    const servers: net.Server[] = [];

    const api = async (
      method: string,
      url: string,
      key: string,
      body?: unknown,
    ): Promise<{ status: number; body: Json }> => {
      const res = await fetch(base + url, {
        method,
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : null };
    };

    /** A verdict the way the gateway writes one (its event is what the webhooks deliver). */
    const verdict = async () => {
      const s = await openFaceSession(app, wsKey, { iin: makeIin('1981-07-14', serial++) });
      const v = await app.get(VERDICTS).finish({
        clinicId,
        sessionId: s.sessionId,
        result: 'match',
        method: 'face',
        score: 0.8,
        liveness: { passive: 0.9, blink: true },
        timings: { firstFrameToVerdictMs: 1500, framesReceived: 20, framesAnalysed: 5, framesDropped: 0 },
      });
      expect(v).not.toBeNull();
    };

    const deliveries = async (hookId: string, n: number): Promise<Json[]> =>
      until(`${n} delivery records`, async () => {
        const d = await api('GET', `/webhooks/${hookId}/deliveries`, misKey);
        return d.body.deliveries.length >= n && d.body.deliveries;
      });

    beforeAll(async () => {
      db = await createTestDatabase(kind, 'destinations');
      const config = loadConfig({
        ...db.env,
        PORT: '0',
        FACEID_BOOTSTRAP: 'false',
        ENGINE_WORKERS: '1',
        RATE_LIMIT_PER_MINUTE: '100000',
        LOG_LEVEL: 'error',
        EVENTS_POLL_MS: '200',
        WEBHOOK_ALLOW_HTTP: 'true',
        WEBHOOK_TIMEOUT_MS: '3000',
        WEBHOOK_RETRY_BASE_MS: '60000', // one attempt per event in these tests: no retry comes before the checks
        WEBHOOK_RETRY_MAX_MS: '60000',
        // Local receivers by name only (names of this test that resolve to 127.0.0.1). Nothing else private.
        WEBHOOK_ALLOWED_PRIVATE_HOSTS: 'pinned.faceid.test,local.faceid.test',
      });
      expect(config.WEBHOOK_ALLOWED_PRIVATE_HOSTS).toEqual(['pinned.faceid.test', 'local.faceid.test']);
      app = await createApp({ config });
      // Names of this test resolve to loopback; `pinned` resolves elsewhere on any second lookup, so a connection
      // made after a second resolution would miss the listener.
      const resolver = app.get(HostResolver);
      const system = resolver.lookup.bind(resolver);
      let pinnedCalls = 0;
      resolver.lookup = async (host: string): Promise<ResolvedAddress[]> => {
        lookups.push(host);
        if (host === 'rebind.faceid.test' || host === 'local.faceid.test') return [{ address: '127.0.0.1', family: 4 }];
        if (host === 'mixed.faceid.test')
          return [
            { address: '93.184.216.34', family: 4 },
            { address: '127.0.0.1', family: 4 },
          ];
        if (host === 'metadata.faceid.test') return [{ address: '::ffff:169.254.169.254', family: 6 }];
        if (host === 'pinned.faceid.test')
          return [{ address: ++pinnedCalls % 2 === 1 ? '127.0.0.1' : '127.0.0.2', family: 4 }];
        return system(host);
      };
      await app.listen(0, '127.0.0.1');
      base = `http://127.0.0.1:${(app.getHttpServer().address() as AddressInfo).port}`;
      const clinic = await app.get(CLINICS).create('Destinations clinic');
      clinicId = clinic.id;
      wsKey = (await createWorkstation(app.get(WORKSTATIONS), clinicId, 'Desk')).apiKey;
      misKey = (await createMisClient(app.get(MIS_CLIENTS), clinicId, 'MIS')).apiKey;
    });

    afterAll(async () => {
      for (const l of listeners) await l.stop();
      for (const s of servers) await new Promise((r) => s.close(r));
      await app?.close();
      await db?.drop();
    });

    it('refuses every loopback, private and link-local spelling at registration, with the rule', async () => {
      const answers = [];
      for (const [url] of BAD_URLS) answers.push(await api('POST', '/webhooks', misKey, { url }));
      expect(answers.map((a, i) => [BAD_URLS[i][0], a.status, a.body.error.code, a.body.error.rule])).toEqual(
        BAD_URLS.map(([url, rule]) => [url, 400, 'webhook_destination_refused', rule]),
      );
      // The message names the rule, never the URL: every spelling refused under one rule gets the same message.
      const byRule = new Map<string, Set<string>>();
      answers.forEach((a, i) => {
        expect(a.body.error.message).toMatch(/the gateway does not post there/);
        byRule.set(BAD_URLS[i][1], (byRule.get(BAD_URLS[i][1]) ?? new Set()).add(a.body.error.message));
      });
      for (const messages of byRule.values()) expect(messages.size).toBe(1);
      expect((await api('GET', '/webhooks', misKey)).body.webhooks).toEqual([]);
      // The operator's exception: a listed name registers (its addresses are checked when it is resolved).
      const allowed = await api('POST', '/webhooks', misKey, { url: 'http://local.faceid.test:9/hooks' });
      expect(allowed.status).toBe(201);
      expect((await api('DELETE', `/webhooks/${allowed.body.id}`, misKey)).status).toBe(204);
    });

    it('does not connect to a name that resolves to loopback at delivery (DNS rebinding), and records why', async () => {
      const listener = await new Listener().start();
      listeners.push(listener);
      const hooks = [];
      // The names are public-looking when registered: the URL alone shows nothing to refuse.
      for (const name of ['rebind', 'mixed', 'metadata']) {
        const created = await api('POST', '/webhooks', misKey, {
          url: `http://${name}.faceid.test:${listener.port}/hooks`,
        });
        expect(created.status).toBe(201);
        hooks.push(created.body.id as string);
      }
      await verdict();
      const records = await Promise.all(hooks.map((id) => deliveries(id, 1)));
      for (const [d] of records) {
        expect(d).toMatchObject({
          outcome: 'failed',
          status: null,
          error: 'refused_destination',
          attempt: 1,
          eventSeq: 1,
        });
      }
      // Every attempt is recorded and finished: had any connected, the listener would have counted it by now.
      expect(listener.connections).toBe(0);
      expect(listener.requests).toEqual([]);
      expect(lookups).toEqual(
        expect.arrayContaining(['rebind.faceid.test', 'mixed.faceid.test', 'metadata.faceid.test']),
      );
      for (const id of hooks) expect((await api('DELETE', `/webhooks/${id}`, misKey)).status).toBe(204);
    });

    it('connects to exactly the address it checked: the name is resolved once per attempt', async () => {
      const listener = await new Listener().start();
      listeners.push(listener);
      const url = `http://pinned.faceid.test:${listener.port}/hooks`;
      const created = await api('POST', '/webhooks', misKey, { url });
      expect(created.status).toBe(201);
      const before = lookups.filter((h) => h === 'pinned.faceid.test').length;
      await verdict();
      const [d] = await deliveries(created.body.id, 1);
      // Resolved once (127.0.0.1, checked and allowed by name); a second resolution would have given 127.0.0.2.
      expect(d).toMatchObject({ outcome: 'delivered', status: 204, error: null });
      expect(lookups.filter((h) => h === 'pinned.faceid.test').length - before).toBe(1);
      expect(listener.requests).toHaveLength(1);
      expect(listener.requests[0].host).toBe(`pinned.faceid.test:${listener.port}`); // the name, as the URL says
      expect((await api('DELETE', `/webhooks/${created.body.id}`, misKey)).status).toBe(204);
    });

    it('tells the MIS the same coarse class for an open port that resets and a closed one', async () => {
      const open = await resettingPort();
      servers.push(open);
      const closed = await closedPort();
      const resetHook = await api('POST', '/webhooks', misKey, {
        url: `http://local.faceid.test:${(open.address() as AddressInfo).port}/h`,
      });
      const closedHook = await api('POST', '/webhooks', misKey, { url: `http://local.faceid.test:${closed}/h` });
      expect([resetHook.status, closedHook.status]).toEqual([201, 201]);
      await verdict();
      const [[reset], [refused]] = await Promise.all([
        deliveries(resetHook.body.id, 1),
        deliveries(closedHook.body.id, 1),
      ]);
      for (const d of [reset, refused])
        expect(d).toMatchObject({ outcome: 'failed', status: null, error: 'unreachable' });
      const shown = JSON.stringify([reset, refused]);
      expect(shown).not.toMatch(/ECONN|connection_re|127\.0\.0\.1/);
    });
  });
}

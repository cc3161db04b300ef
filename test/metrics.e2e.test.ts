import { randomBytes } from 'node:crypto';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { INestApplication } from '@nestjs/common';
import { createApp } from '../src/app.factory';
import { createMisClient, createWorkstation } from '../src/auth';
import { loadConfig } from '../src/config';
import { smsText } from '../src/sms';
import { CLINICS, MIS_CLIENTS, VERDICTS, WORKSTATIONS } from '../src/storage/ports';
import { createTestDatabase, TEST_DATABASES, type TestDatabase } from './support/databases';
import { makeIin } from './support/iin';
import { openFaceSession } from './support/sessions';
import { until } from './support/waits';

// GET /metrics on the real app over real HTTP: with METRICS_TOKEN set only a scraper with the token reads it, and
// after a clinic's sessions, verdicts and webhook deliveries nothing on it names a clinic, a desk, an MIS client, a
// session, an event or a patient. Verdicts by the six-digit code and lock-outs are counted with their method, and
// texts the SMS gateway (a local server here, as SMS_ADAPTER=http) refuses by purpose and reason.

type Json = any; // answers are checked field by field

const TOKEN = randomBytes(24).toString('hex');

/** Label names of every sample line of a Prometheus text exposition. */
function labelNames(text: string): Set<string> {
  const names = new Set<string>();
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || !line.includes('{')) continue;
    const labels = line.slice(line.indexOf('{') + 1, line.lastIndexOf('}'));
    for (const m of labels.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="/g)) names.add(m[1]);
  }
  return names;
}

for (const kind of TEST_DATABASES) {
  describe(`GET /metrics (${kind})`, () => {
    let db: TestDatabase;
    let app: INestApplication;
    let base: string;
    let receiver: http.Server;
    let delivered = 0;
    /** What the SMS gateway received ({iin, text, reference}), and the status it answers. */
    const sms: Array<{ iin: string; text: string; reference: string }> = [];
    let smsStatus = 200;

    const scrape = (authorization?: string) =>
      fetch(`${base}/metrics`, { headers: authorization === undefined ? {} : { authorization } });

    beforeAll(async () => {
      db = await createTestDatabase(kind, 'metrics');
      // Both the MIS's webhook receiver and the e-government SMS gateway.
      receiver = http.createServer((req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          if (req.url === '/sms') {
            if (smsStatus === 200) sms.push(JSON.parse(Buffer.concat(chunks).toString('utf8')));
            res.writeHead(smsStatus).end();
            return;
          }
          delivered++;
          res.writeHead(204).end();
        });
      });
      await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
      app = await createApp({
        config: loadConfig({
          ...db.env,
          PORT: '0',
          FACEID_BOOTSTRAP: 'false',
          ENGINE_WORKERS: '1',
          LOG_LEVEL: 'error',
          EVENTS_POLL_MS: '200',
          WEBHOOK_ALLOW_HTTP: 'true',
          WEBHOOK_ALLOWED_PRIVATE_HOSTS: '127.0.0.1',
          METRICS_TOKEN: TOKEN,
          SMS_ADAPTER: 'http',
          SMS_HTTP_URL: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/sms`,
          SMS_HTTP_RETRIES: '0',
          CODE_ATTEMPTS_MAX: '2',
        }),
      });
      await app.listen(0, '127.0.0.1');
      base = `http://127.0.0.1:${(app.getHttpServer().address() as AddressInfo).port}`;
    });

    afterAll(async () => {
      await app?.close();
      await new Promise((r) => receiver?.close(r));
      await db?.drop();
    });

    it('answers 401 without the token, with a wrong one or another scheme; 200 with it', async () => {
      for (const authorization of [
        undefined,
        'Bearer wrong-token-of-some-length',
        `Basic ${TOKEN}`,
        `Bearer ${TOKEN}x`,
        TOKEN,
        'Bearer ',
      ]) {
        const res = await scrape(authorization);
        const body = (await res.json()) as Json;
        expect({ status: res.status, code: body.error.code }).toEqual({ status: 401, code: 'unauthorized' });
        expect(JSON.stringify(body)).not.toContain('faceid_');
        expect(body.error.message).not.toContain(TOKEN);
      }
      const ok = await scrape(`Bearer ${TOKEN}`);
      expect(ok.status).toBe(200);
      expect(ok.headers.get('content-type')).toMatch(/^text\/plain/);
      expect(await ok.text()).toContain('faceid_webhook_attempts_total');
      expect((await scrape(`bearer ${TOKEN}`)).status).toBe(200); // the scheme is case-insensitive
    });

    it('names no clinic, desk, MIS client, session, event or patient after real traffic', async () => {
      const clinic = await app.get(CLINICS).create('Metrics clinic');
      const { apiKey: wsKey, workstation } = await createWorkstation(app.get(WORKSTATIONS), clinic.id, 'Metrics desk');
      const { apiKey: misKey, client } = await createMisClient(app.get(MIS_CLIENTS), clinic.id, 'Metrics MIS');
      const call = async (method: string, url: string, key: string, body?: unknown): Promise<Json> => {
        const res = await fetch(base + url, {
          method,
          headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
          body: body === undefined ? undefined : JSON.stringify(body),
        });
        expect(res.status).toBeLessThan(300);
        return res.json();
      };
      const hook = await call('POST', '/webhooks', misKey, {
        url: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks`,
      });
      const iin = makeIin('1977-02-03', 777);
      // The desk asks for a face session of a patient with no template yet: 409 no_template (traffic carrying the
      // IIN and the appointment); then a face session as POST /sessions stores one for an enrolled patient.
      const noTemplate = await fetch(`${base}/sessions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${wsKey}`, 'content-type': 'application/json' },
        body: JSON.stringify({ iin, appointmentId: 'apt-metrics-1', channel: 'in_person' }),
      });
      expect(noTemplate.status).toBe(409);
      const session = await openFaceSession(app, wsKey, { iin, appointmentId: 'apt-metrics-1' });
      await app.get(VERDICTS).finish({
        clinicId: clinic.id,
        sessionId: session.sessionId,
        result: 'match',
        method: 'face',
        score: 0.81,
        liveness: { passive: 0.9, blink: true },
        timings: { firstFrameToVerdictMs: 1400, framesReceived: 18, framesAnalysed: 5, framesDropped: 0 },
      });
      await until('the webhook delivery', () => delivered >= 1);
      const events = (await call('GET', '/events', misKey)).events as Array<{ id: string }>;
      expect(events).toHaveLength(1);

      const text = await until('the delivery counted', async () => {
        const t = await (await scrape(`Bearer ${TOKEN}`)).text();
        return /faceid_webhook_attempts_total\{outcome="delivered"\} [1-9]/.test(t) && t;
      });
      for (const id of [
        clinic.id,
        workstation.id,
        client.id,
        session.sessionId,
        hook.id,
        events[0].id,
        iin,
        'Metrics clinic',
        'apt-metrics-1',
      ]) {
        expect(text).not.toContain(id);
      }
      // Fixed label sets only (ours, and prom-client's process and Node.js figures).
      const names = [...labelNames(text)];
      expect(
        names.filter((n) => /clinic|workstation|desk|mis|client|session|patient|iin|event|hook|id$|url|host/i.test(n)),
      ).toEqual([]);
      expect(
        names.every((n) =>
          [
            'call',
            'result',
            'method',
            'code',
            'outcome',
            'purpose',
            'reason',
            'le',
            'version',
            'major',
            'minor',
            'patch',
            'space',
            'kind',
            'type',
            'quantile',
            'state',
          ].includes(n),
        ),
      ).toBe(true);
    });

    it('counts code verdicts and lock-outs (method code), and the texts the SMS gateway refused', async () => {
      const clinic = await app.get(CLINICS).create('Code clinic');
      await app.get(CLINICS).setSmsLanguages(clinic.id, 'ru');
      const { apiKey: key } = await createWorkstation(app.get(WORKSTATIONS), clinic.id, 'Code desk');
      const post = (url: string, body: unknown) =>
        fetch(base + url, {
          method: 'POST',
          headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
      /** A remote appointment (straight to the code path): its session and the code the SMS gateway got. */
      const remote = async (iin: string) => {
        const res = await post('/sessions', { iin, appointmentId: `apt-${iin.slice(-4)}`, channel: 'remote' });
        expect(res.status).toBe(201);
        const { sessionId } = (await res.json()) as Json;
        const text = sms.find((m) => m.reference === sessionId)!.text;
        const code = /\b(\d{6})\b/.exec(text)![1];
        // The clinic's setting: Russian only.
        expect(text).toBe(smsText('identification', { code, clinicName: 'Code clinic', languages: 'ru' }));
        return { sessionId, code };
      };
      const value = async (series: string) => {
        const line = (await (await scrape(`Bearer ${TOKEN}`)).text())
          .split('\n')
          .find((l) => l.startsWith(`${series} `));
        return line === undefined ? 0 : Number(line.slice(series.length + 1));
      };
      const series = [
        'faceid_verdicts_total{result="match",method="code"}',
        'faceid_verdicts_total{result="locked_out",method="code"}',
        'faceid_sms_failures_total{purpose="identification",reason="server_error"}',
        'faceid_sms_failures_total{purpose="identification",reason="timeout"}',
      ];
      const before = await Promise.all(series.map(value));

      // The right code: a verdict by code.
      const a = await remote(makeIin('1980-05-06', 311));
      const entered = await post(`/sessions/${a.sessionId}/code`, { code: a.code });
      expect(((await entered.json()) as Json).verdict).toMatchObject({ result: 'match', method: 'code' });
      // Wrong codes until the attempts run out (CODE_ATTEMPTS_MAX 2): the session is locked out.
      const b = await remote(makeIin('1981-06-07', 312));
      const wrong = String((Number(b.code) + 1) % 1_000_000).padStart(6, '0');
      expect((await post(`/sessions/${b.sessionId}/code`, { code: wrong })).status).toBe(422);
      expect((await post(`/sessions/${b.sessionId}/code`, { code: wrong })).status).toBe(429);
      // The SMS gateway answers 503: the desk gets 502 sms_unavailable, and the failure is counted.
      smsStatus = 503;
      const refusedIin = makeIin('1982-07-08', 313);
      try {
        const failed = await post('/sessions', { iin: refusedIin, appointmentId: 'apt-refused', channel: 'remote' });
        expect(failed.status).toBe(502);
      } finally {
        smsStatus = 200;
      }

      const after = await Promise.all(series.map(value));
      expect(after.map((v, i) => v - before[i])).toEqual([1, 1, 1, 0]);
      const text = await (await scrape(`Bearer ${TOKEN}`)).text();
      for (const secret of [a.code, b.code, refusedIin, a.sessionId, b.sessionId, clinic.id, 'Code clinic']) {
        expect(text).not.toContain(secret);
      }
    });
  });
}

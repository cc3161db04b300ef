import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { NestExpressApplication } from '@nestjs/platform-express';
import WebSocket from 'ws';
import { createApp } from '../src/app.factory';
import { WorkstationsService } from '../src/auth';
import { loadConfig } from '../src/config';
import { FaceCapacity } from '../src/identification';
import { JsonLogger } from '../src/json-logger';
import { CLINICS, type ClinicRepository } from '../src/storage/ports';
import { createTestDatabase, TEST_DATABASES, type TestDatabase } from './support/databases';
import { makeIin } from './support/iin';
import { storeTemplate } from './support/templates';

// Admission control of face sessions (FACE_SESSIONS_MAX) end to end: the real app over HTTP and a WebSocket, with a
// capacity of 2. No frames and no timing: each step waits for what it needs to have happened.

const TEST_TEMPLATE_KEY = `t1:${randomBytes(32).toString('base64')}`;

describe('face sessions admission control (FACE_SESSIONS_MAX=2)', () => {
  let app: NestExpressApplication;
  let database: TestDatabase;
  let base: string;
  let key: string;
  let clinicId: string;
  let serial = 100;

  const api = async (method: string, url: string, body?: unknown) => {
    const res = await fetch(base + url, {
      method,
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : null };
  };
  /** A new patient with an enrolled template (random numbers, sealed as enrollment seals them). */
  const enrolled = () => storeTemplate(app, TEST_TEMPLATE_KEY, clinicId, makeIin('1983-06-21', serial++));
  const byFace = (iin: string) =>
    api('POST', '/sessions', { iin, appointmentId: `apt-${randomBytes(3).toString('hex')}`, channel: 'in_person' });
  const expectBusy = (res: Awaited<ReturnType<typeof api>>) => {
    expect(res.status).toBe(503);
    expect(res.body.error).toEqual({
      code: 'capacity_exceeded',
      message: expect.any(String),
      retryAfterMs: expect.any(Number),
    });
    expect(res.body.error.retryAfterMs).toBeGreaterThanOrEqual(250);
    expect(Number(res.headers.get('retry-after'))).toBe(Math.max(1, Math.ceil(res.body.error.retryAfterMs / 1000)));
  };
  const usage = () => app.get(FaceCapacity).usage();
  /** Waits (up to 10 s) until the condition holds: for the server's side of a WebSocket close. */
  const until = async (what: string, cond: () => boolean) => {
    const deadline = Date.now() + 10_000;
    while (!cond()) {
      if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  };

  beforeAll(async () => {
    database = await createTestDatabase('sqlite', 'capacity');
    const config = loadConfig({
      ...database.env,
      PORT: '0',
      FACEID_BOOTSTRAP: 'false',
      ENGINE_WORKERS: '1',
      RATE_LIMIT_PER_MINUTE: '100000',
      TEMPLATE_KEYS: TEST_TEMPLATE_KEY,
      FACE_SESSIONS_MAX: '2',
    });
    app = await createApp({ config, logger: new JsonLogger('error', () => undefined) });
    await app.listen(0, '127.0.0.1');
    base = `http://127.0.0.1:${(app.getHttpServer().address() as AddressInfo).port}`;
    clinicId = (await app.get<ClinicRepository>(CLINICS).create('Clinic C')).id;
    key = (await app.get(WorkstationsService).createWorkstation(clinicId, 'desk')).apiKey;
  });

  afterAll(async () => {
    await app?.close();
    await database?.drop();
  });

  it('refuses the third face session with Retry-After, never a session by code, and admits again once one ends', async () => {
    const [p1, p2, p3, p4, p5] = [
      await enrolled(),
      await enrolled(),
      await enrolled(),
      await enrolled(),
      await enrolled(),
    ];
    const a = await byFace(p1);
    const b = await byFace(p2);
    expect([a.status, b.status]).toEqual([201, 201]);
    expect(usage()).toMatchObject({ limit: 2, streaming: 0, held: 2 });
    expectBusy(await byFace(p3));

    // Sessions by code run no engine work: never refused for it.
    const remote = await api('POST', '/sessions', { iin: p3, appointmentId: 'apt-remote', channel: 'remote' });
    expect([remote.status, remote.body.state]).toEqual([201, 'code_pending']);
    const byCode = await api('POST', '/sessions', {
      iin: p4,
      appointmentId: 'apt-code',
      channel: 'in_person',
      method: 'code',
      reason: 'camera_unavailable',
    });
    expect([byCode.status, byCode.body.state]).toEqual([201, 'code_pending']);

    // The desk reloads its page for the same patient: the new token supersedes its own, no extra place is needed.
    const again = await byFace(p2);
    expect(again.status).toBe(201);
    expect(usage()).toMatchObject({ limit: 2, streaming: 0, held: 2 });

    // A streams: its place stays taken.
    const ws = new WebSocket(a.body.wsUrl, a.body.protocols);
    const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
    await new Promise<void>((resolve, reject) => {
      ws.on('message', (data) => {
        if (JSON.parse(String(data)).type === 'ready') resolve();
      });
      ws.on('error', reject);
    });
    expect(usage()).toMatchObject({ limit: 2, streaming: 1, held: 1 });
    expectBusy(await byFace(p5));

    // B's patient refuses the photo: B goes on by code, its unused token's place is free at once.
    const refused = await api('POST', `/sessions/${again.body.sessionId}/refusal`, { reason: 'patient_refused_photo' });
    expect(refused.status).toBe(200);
    expect(usage()).toMatchObject({ limit: 2, streaming: 1, held: 0 });
    const c = await byFace(p5);
    expect(c.status).toBe(201);
    expectBusy(await byFace(p3));

    // A ends (the desk cancels): once the server has seen its connection close, the next desk is admitted.
    ws.send(JSON.stringify({ type: 'cancel' }));
    expect(await closed).toBe(1000);
    await until('the server to release the session', () => usage().streaming === 0);
    expect((await byFace(p3)).status).toBe(201);
    expectBusy(await byFace(p1));
  });
});

// A fleet: two gateways on one PostgreSQL. A desk's token from gateway A is used on gateway B (a balancer spreads the
// WebSockets): B counts the session, and A gives its place back when PostgreSQL tells it the token was used.
(TEST_DATABASES.includes('postgres') ? describe : describe.skip)(
  'face sessions admission control in a fleet (PostgreSQL)',
  () => {
    const apps: NestExpressApplication[] = [];
    const bases: string[] = [];
    let database: TestDatabase;
    let key: string;
    let clinicId: string;
    let serial = 300;

    const post = async (gw: number, body: unknown) => {
      const res = await fetch(`${bases[gw]}/sessions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      return { status: res.status, body: (await res.json()) as { wsUrl: string; protocols: string[] } };
    };
    const until = async (what: string, cond: () => boolean) => {
      const deadline = Date.now() + 15_000;
      while (!cond()) {
        if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    };

    beforeAll(async () => {
      database = await createTestDatabase('postgres', 'capacity-fleet');
      const env = {
        ...database.env,
        PORT: '0',
        FACEID_BOOTSTRAP: 'false',
        ENGINE_WORKERS: '1',
        RATE_LIMIT_PER_MINUTE: '100000',
        TEMPLATE_KEYS: TEST_TEMPLATE_KEY,
        FACE_SESSIONS_MAX: '1',
      };
      for (let i = 0; i < 2; i++) {
        const app = await createApp({ config: loadConfig(env), logger: new JsonLogger('error', () => undefined) });
        await app.listen(0, '127.0.0.1');
        apps.push(app);
        bases.push(`http://127.0.0.1:${(app.getHttpServer().address() as AddressInfo).port}`);
      }
      clinicId = (await apps[0].get<ClinicRepository>(CLINICS).create('Clinic F')).id;
      key = (await apps[0].get(WorkstationsService).createWorkstation(clinicId, 'desk')).apiKey;
    });

    afterAll(async () => {
      for (const app of apps) await app.close();
      await database?.drop();
    });

    it('gives the place back on the gateway that issued a token used on another', async () => {
      const iins: string[] = [];
      for (let i = 0; i < 2; i++) {
        iins.push(await storeTemplate(apps[0], TEST_TEMPLATE_KEY, clinicId, makeIin('1983-06-21', serial++)));
      }
      const a = await post(0, { iin: iins[0], appointmentId: 'apt-a', channel: 'in_person' });
      expect(a.status).toBe(201);
      expect((await post(0, { iin: iins[1], appointmentId: 'apt-b', channel: 'in_person' })).status).toBe(503);

      // The token is used on gateway B.
      const wsUrl = String(a.body.wsUrl).replace(new URL(bases[0]).host, new URL(bases[1]).host);
      const ws = new WebSocket(wsUrl, a.body.protocols);
      await new Promise<void>((resolve, reject) => {
        ws.on('message', (data) => {
          if (JSON.parse(String(data)).type === 'ready') resolve();
        });
        ws.on('error', reject);
      });
      expect(apps[1].get(FaceCapacity).usage()).toMatchObject({ streaming: 1, held: 0 });
      await until('gateway A to hear that the token was used', () => apps[0].get(FaceCapacity).usage().held === 0);
      expect((await post(0, { iin: iins[1], appointmentId: 'apt-b2', channel: 'in_person' })).status).toBe(201);
      // B is full: its one place streams.
      expect((await post(1, { iin: iins[0], appointmentId: 'apt-c', channel: 'in_person' })).status).toBe(503);
      ws.close();
    });
  },
);

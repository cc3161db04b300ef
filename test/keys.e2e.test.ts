import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { INestApplication } from '@nestjs/common';
import WebSocket from 'ws';
import { z } from 'zod';
import { createMisClient, createWorkstation, hashApiKey } from '../src/auth';
import { MAX_CONNECTIONS_PER_MIS_CLIENT, MAX_CONNECTIONS_PER_WORKSTATION } from '../src/events/events.socket';
import { schemaFileName } from '../src/events';
import {
  AUDIT,
  CLINICS,
  EVENTS,
  KEYS,
  MIS_CLIENTS,
  SESSIONS,
  VERDICTS,
  WORKSTATIONS,
  type AuditRepository,
  type ClinicRepository,
  type EventPayload,
  type EventRepository,
  type EventType,
  type KeyRepository,
  type SessionRepository,
} from '../src/storage/ports';
import { listenOnTestDatabase } from './support/app';
import { createTestDatabase, TEST_DATABASES, type TestDatabase } from './support/databases';
import { makeIin } from './support/iin';
import { openFaceSession } from './support/sessions';
import { until } from './support/waits';

// Trust boundaries of the keys, on the real app over real HTTP and WebSockets, on SQLite and PostgreSQL:
// - the operator's key lifecycle for workstations and MIS clients (admin HTTP routes with ADMIN_TOKEN, and the admin
//   CLI against a running service): create, list, rotate with a grace that no later rotation can shorten, revoke at
//   once (guards and open WebSockets), each audited and told to the MIS as an event;
// - the event stream is for the MIS: a workstation key reads only its own sessions' outcomes;
// - event connections are capped per key, so one key cannot take the clinic's connections.

const ROOT = path.join(__dirname, '..');
const HOUR_MS = 3_600_000;
const WAIT_MS = 20_000; // the limit of every wait here, above until's default of 15 s
type Json = any; // response bodies are checked field by field

const committed = (type: EventType) =>
  z.fromJSONSchema(JSON.parse(fs.readFileSync(path.join(ROOT, 'docs/events', schemaFileName(type)), 'utf8')));

/** Valid against its committed JSON Schema (docs/events), and no key or hash in it. */
function checkEvent(e: EventPayload, secrets: string[] = []): void {
  const parsed = committed(e.type).safeParse(e);
  if (!parsed.success) throw new Error(`event ${e.type} fails its schema: ${JSON.stringify(parsed.error.issues)}`);
  const text = JSON.stringify(e);
  for (const s of secrets) {
    expect(text).not.toContain(s);
    expect(text).not.toContain(hashApiKey(s));
  }
}

/** A /ws/events client that records what it receives. */
class EventsClient {
  readonly events: EventPayload[] = [];
  readonly errors: Array<{ type: string; code: string; message: string }> = [];
  readonly ready: Array<string | null> = [];
  closeCode: number | null = null;
  private constructor(readonly ws: WebSocket) {}

  static connect(
    base: string,
    key: string,
    options: { after?: string; headers?: Record<string, string> } = {},
  ): Promise<EventsClient> {
    const url = `${base.replace(/^http/, 'ws')}/ws/events${options.after ? `?after=${options.after}` : ''}`;
    const ws = new WebSocket(url, ['faceid.events.v1', `key.${key}`], { headers: options.headers ?? {} });
    const client = new EventsClient(ws);
    ws.on('message', (data) => {
      const msg = JSON.parse(data.toString());
      if (msg.type === 'event') client.events.push(msg.event);
      else if (msg.type === 'ready') client.ready.push(msg.cursor);
      else if (msg.type === 'error') client.errors.push(msg);
    });
    ws.on('close', (code) => (client.closeCode = code));
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(client));
      ws.once('error', reject);
    });
  }

  waitForReady(): Promise<string | null> {
    return until('ready', () => (this.ready.length > 0 ? { c: this.ready[0] } : undefined), WAIT_MS).then((r) => r.c);
  }

  waitFor(what: string, pred: (events: EventPayload[]) => boolean): Promise<EventPayload[]> {
    return until(
      `${what} (have ${this.events.map((e) => e.type).join(', ')})`,
      () => pred(this.events) && this.events,
      WAIT_MS,
    );
  }

  waitForClose(): Promise<number> {
    return until('close', () => this.closeCode ?? undefined, WAIT_MS);
  }
}

for (const db of TEST_DATABASES) {
  describe(`keys and the event stream (${db})`, () => {
    const ADMIN_TOKEN = randomBytes(32).toString('base64url');
    let app: INestApplication;
    let base: string;
    let database: TestDatabase;
    const clients: EventsClient[] = [];
    let iinSerial = 300;

    const call = async (
      method: string,
      url: string,
      auth: string | null,
      body?: unknown,
    ): Promise<{ status: number; body: Json }> => {
      const res = await fetch(base + url, {
        method,
        headers: {
          ...(auth ? { authorization: `Bearer ${auth}` } : {}),
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : null };
    };
    const admin = (method: string, url: string, body?: unknown) => call(method, `/admin${url}`, ADMIN_TOKEN, body);
    /** A request any working workstation key may make: 404 session_not_found when the key works, 401 when not. */
    const deskStatus = async (key: string) =>
      (await call('GET', `/sessions/${'0'.repeat(8)}-0000-4000-8000-${'0'.repeat(12)}`, key)).status;
    const misStatus = async (key: string) => (await call('GET', '/mis/me', key)).status;
    const connect = async (key: string, options?: { after?: string }) => {
      const c = await EventsClient.connect(base, key, options);
      clients.push(c);
      return c;
    };
    const newClinic = async (name: string) => (await app.get<ClinicRepository>(CLINICS).create(name)).id;
    /** A verdict the way the gateway writes one: a face session of the workstation with that key (stored as
     *  POST /sessions stores one for an enrolled patient, without the template's own event), finished in storage. */
    const verdict = async (clinicId: string, wsKey: string): Promise<string> => {
      const s = await openFaceSession(app, wsKey, { iin: makeIin('1984-06-02', iinSerial++) });
      const v = await app.get(VERDICTS).finish({
        clinicId,
        sessionId: s.sessionId,
        result: 'match',
        method: 'face',
        score: 0.81,
        liveness: { blink: true },
        timings: { firstFrameToVerdictMs: 1500 },
      });
      expect(v).not.toBeNull();
      return s.sessionId;
    };

    beforeAll(async () => {
      database = await createTestDatabase(db, 'keys');
      ({ app, base } = await listenOnTestDatabase(database, { EVENTS_POLL_MS: '200', ADMIN_TOKEN }));
    });

    afterAll(async () => {
      for (const c of clients) c.ws.terminate();
      await app?.close();
      await database?.drop();
    });

    it('admin routes take the operator token only, and are documented', async () => {
      const clinicId = await newClinic('Token clinic');
      const { apiKey: wsKey } = await createWorkstation(app.get(WORKSTATIONS), clinicId, 'Desk');
      const { apiKey: misKey } = await createMisClient(app.get(MIS_CLIENTS), clinicId, 'MIS');
      const url = `/admin/clinics/${clinicId}/workstations`;
      for (const auth of [
        null,
        'x'.repeat(ADMIN_TOKEN.length),
        `${ADMIN_TOKEN}x`,
        ADMIN_TOKEN.slice(0, -1),
        wsKey,
        misKey,
      ]) {
        expect(await call('GET', url, auth)).toEqual({
          status: 401,
          body: { error: { code: 'unauthorized', message: expect.any(String) } },
        });
      }
      expect(await admin('GET', `/clinics/${clinicId}/workstations`)).toMatchObject({
        status: 200,
        body: { workstations: [{ name: 'Desk' }] },
      });
      expect((await admin('GET', '/clinics')).body.clinics).toEqual(
        expect.arrayContaining([expect.objectContaining({ id: clinicId, smsLanguages: 'kk+ru' })]),
      );
      const unknownClinic = await admin(
        'GET',
        `/clinics/${'1'.repeat(8)}-1111-4111-8111-${'1'.repeat(12)}/mis-clients`,
      );
      expect(unknownClinic).toMatchObject({ status: 404, body: { error: { code: 'clinic_not_found' } } });
      expect((await admin('POST', `/clinics/${clinicId}/workstations`, { name: '' })).status).toBe(400);

      const doc = (await call('GET', '/openapi.json', null)).body;
      expect(doc.components.securitySchemes.adminToken).toMatchObject({ type: 'http', scheme: 'bearer' });
      for (const [p, method] of [
        ['/admin/clinics', 'get'],
        ['/admin/clinics/{clinicId}/workstations', 'get'],
        ['/admin/clinics/{clinicId}/workstations', 'post'],
        ['/admin/clinics/{clinicId}/workstations/{id}/rotate', 'post'],
        ['/admin/clinics/{clinicId}/workstations/{id}/revoke', 'post'],
        ['/admin/clinics/{clinicId}/mis-clients', 'get'],
        ['/admin/clinics/{clinicId}/mis-clients', 'post'],
        ['/admin/clinics/{clinicId}/mis-clients/{id}/rotate', 'post'],
        ['/admin/clinics/{clinicId}/mis-clients/{id}/revoke', 'post'],
      ]) {
        expect({ p, method, security: doc.paths[p]?.[method]?.security }).toEqual({
          p,
          method,
          security: [{ adminToken: [] }],
        });
      }
      expect(
        doc.paths['/admin/clinics/{clinicId}/workstations/{id}/rotate'].post.responses['409'].description,
      ).toContain('key_rotation_limit');
    });

    it('workstation keys: create, rotate twice (the first key keeps its own grace), rotate without grace, revoke; audited, and told to the MIS', async () => {
      const clinicId = await newClinic('Desk keys clinic');
      const { apiKey: misKey } = await createMisClient(app.get(MIS_CLIENTS), clinicId, 'MIS');
      const mis = await connect(misKey);
      await mis.waitForReady();

      const created = await admin('POST', `/clinics/${clinicId}/workstations`, { name: 'Room 12' });
      expect(created).toEqual({
        status: 201,
        body: {
          id: expect.any(String),
          clinicId,
          name: 'Room 12',
          createdAt: expect.any(String),
          apiKey: expect.stringMatching(/^fid_ws_[A-Za-z0-9_-]{43}$/),
        },
      });
      const id: string = created.body.id;
      const k0: string = created.body.apiKey;
      expect(await deskStatus(k0)).toBe(404);

      const t1 = Date.now();
      const r1 = await admin('POST', `/clinics/${clinicId}/workstations/${id}/rotate`);
      expect(r1).toEqual({
        status: 200,
        body: { id, clinicId, apiKey: expect.stringMatching(/^fid_ws_/), previousKeyValidUntil: expect.any(String) },
      });
      const k1: string = r1.body.apiKey;
      const k0Until = Date.parse(r1.body.previousKeyValidUntil);
      expect(k0Until).toBeGreaterThanOrEqual(t1 + 24 * HOUR_MS - 1000);
      expect(k0Until).toBeLessThanOrEqual(Date.now() + 24 * HOUR_MS + 1000);

      // A second rotation: the first key keeps the end it had; the second gets a grace of its own.
      const r2 = await admin('POST', `/clinics/${clinicId}/workstations/${id}/rotate`, { graceHours: 2 });
      expect(r2.status).toBe(200);
      const k2: string = r2.body.apiKey;
      for (const k of [k0, k1, k2]) expect(await deskStatus(k)).toBe(404);
      const listed = (await admin('GET', `/clinics/${clinicId}/workstations`)).body.workstations;
      expect(listed).toEqual([
        {
          id,
          clinicId,
          name: 'Room 12',
          state: 'active',
          createdAt: created.body.createdAt,
          rotatedAt: expect.any(String),
          revokedAt: null,
          previousKeys: [
            { id: expect.any(String), retiredAt: expect.any(String), validUntil: r2.body.previousKeyValidUntil },
            { id: expect.any(String), retiredAt: expect.any(String), validUntil: r1.body.previousKeyValidUntil },
          ],
        },
      ]);
      expect(Date.parse(r2.body.previousKeyValidUntil) - Date.now()).toBeLessThanOrEqual(2 * HOUR_MS);
      // Each key ends when its own grace does (the clock moved forward, not waited for).
      const keys = app.get<KeyRepository>(KEYS);
      const stateAt = async (key: string, at: number) =>
        (await keys.states([hashApiKey(key)], new Date(at))).get(hashApiKey(key));
      expect(await stateAt(k1, Date.parse(r2.body.previousKeyValidUntil) + 1)).toBe('expired');
      expect(await stateAt(k0, Date.parse(r2.body.previousKeyValidUntil) + 1)).toBe('previous');
      expect(await stateAt(k0, k0Until + 1)).toBe('expired');
      expect(await stateAt(k2, k0Until + 1)).toBe('current');

      // Without grace (a leaked key): every earlier key stops at once.
      const r3 = await admin('POST', `/clinics/${clinicId}/workstations/${id}/rotate`, { graceHours: 0 });
      expect(r3.body).toMatchObject({ id, previousKeyValidUntil: null });
      const k3: string = r3.body.apiKey;
      for (const k of [k0, k1, k2]) expect(await deskStatus(k)).toBe(401);
      expect(await deskStatus(k3)).toBe(404);
      expect((await admin('GET', `/clinics/${clinicId}/workstations`)).body.workstations[0].previousKeys).toEqual([]);

      const revoked = await admin('POST', `/clinics/${clinicId}/workstations/${id}/revoke`);
      expect(revoked).toMatchObject({
        status: 200,
        body: { id, state: 'revoked', revokedAt: expect.any(String), previousKeys: [] },
      });
      expect(await deskStatus(k3)).toBe(401);
      expect((await admin('POST', `/clinics/${clinicId}/workstations/${id}/revoke`)).body.error.code).toBe(
        'workstation_not_found',
      );
      expect((await admin('POST', `/clinics/${clinicId}/workstations/${id}/rotate`)).status).toBe(404);

      // The MIS heard of each change, as it happened, by the operator; never a key.
      const events = await mis.waitFor('5 key events', (e) => e.length >= 5);
      expect(events.map((e) => [e.type, 'change' in e ? e.change : null, 'by' in e ? e.by : null])).toEqual([
        ['workstation.key_changed', 'created', 'operator'],
        ['workstation.key_changed', 'rotated', 'operator'],
        ['workstation.key_changed', 'rotated', 'operator'],
        ['workstation.key_changed', 'rotated', 'operator'],
        ['workstation.key_changed', 'revoked', 'operator'],
      ]);
      for (const e of events) checkEvent(e, [k0, k1, k2, k3]);
      expect(events.map((e) => ('previousKeyValidUntil' in e ? e.previousKeyValidUntil : undefined))).toEqual([
        null,
        r1.body.previousKeyValidUntil,
        r2.body.previousKeyValidUntil,
        null,
        null,
      ]);
      expect(events.every((e) => 'workstationId' in e && e.workstationId === id)).toBe(true);

      // And the audit trail, actor `admin`, never a key.
      const audit = (await app.get<AuditRepository>(AUDIT).list(clinicId, 100))
        .filter((e) => e.subject === id)
        .reverse();
      expect(audit.map((e) => [e.actor, e.action])).toEqual([
        ['admin', 'workstation.created'],
        ['admin', 'workstation.key_rotated'],
        ['admin', 'workstation.key_rotated'],
        ['admin', 'workstation.key_rotated'],
        ['admin', 'workstation.revoked'],
      ]);
      expect(audit[1].detail).toMatchObject({ previousKeyValidUntil: r1.body.previousKeyValidUntil, by: 'operator' });
      const text = JSON.stringify(audit);
      for (const k of [k0, k1, k2, k3]) {
        expect(text).not.toContain(k);
        expect(text).not.toContain(hashApiKey(k));
      }
    });

    it('an MIS key rotating itself cannot cut the original key off; the MIS is told; the operator ends them all', async () => {
      const clinicId = await newClinic('Leaked MIS clinic');
      const created = await admin('POST', `/clinics/${clinicId}/mis-clients`, { name: 'Central MIS' });
      expect(created).toMatchObject({
        status: 201,
        body: { name: 'Central MIS', apiKey: expect.stringMatching(/^fid_mis_/) },
      });
      const original: string = created.body.apiKey;
      const misId: string = created.body.id;
      const listener = await connect(original);
      await listener.waitForReady();

      // Whoever holds the key rotates it, and again with the key the first rotation gave.
      const first = await call('POST', '/mis/keys/rotate', original);
      expect(first.status).toBe(200);
      const second = await call('POST', '/mis/keys/rotate', first.body.apiKey);
      expect(second.status).toBe(200);
      // The original key still works, until its own grace ends (not cut short by the second rotation).
      expect(await misStatus(original)).toBe(200);
      expect(await misStatus(first.body.apiKey)).toBe(200);
      expect(await misStatus(second.body.apiKey)).toBe(200);
      const list = (await admin('GET', `/clinics/${clinicId}/mis-clients`)).body.misClients;
      expect(list[0].previousKeys.map((k: Json) => k.validUntil)).toEqual([
        first.body.previousKeyValidUntil,
        second.body.previousKeyValidUntil,
      ]);
      // Not without end: a third rotation leaves MAX_PREVIOUS_KEYS keys in their grace; a fourth is refused.
      const third = await call('POST', '/mis/keys/rotate', second.body.apiKey);
      expect(third.status).toBe(200);
      const fourth = await call('POST', '/mis/keys/rotate', third.body.apiKey);
      expect(fourth).toMatchObject({ status: 409, body: { error: { code: 'key_rotation_limit' } } });
      expect(await misStatus(original)).toBe(200);

      // The legitimate MIS learns of each rotation by `self`, on the stream its original key still reads.
      const events = await listener.waitFor(
        '3 rotations',
        (e) => e.filter((x) => x.type === 'mis_client.key_changed').length >= 3,
      );
      const rotations = events.filter((e) => e.type === 'mis_client.key_changed');
      expect(rotations.map((e) => ('by' in e ? [e.change, e.by, e.misClientId] : null))).toEqual([
        ['rotated', 'self', misId],
        ['rotated', 'self', misId],
        ['rotated', 'self', misId],
      ]);
      for (const e of rotations) checkEvent(e, [original, first.body.apiKey, second.body.apiKey, third.body.apiKey]);
      const audit = (await app.get<AuditRepository>(AUDIT).list(clinicId, 100)).filter(
        (e) => e.action === 'mis_client.key_rotated',
      );
      expect(audit.map((e) => e.actor)).toEqual([`mis:${misId}`, `mis:${misId}`, `mis:${misId}`]);

      // The operator's answer: a rotation without grace ends every earlier key, and the listener's connection.
      const fixed = await admin('POST', `/clinics/${clinicId}/mis-clients/${misId}/rotate`, { graceHours: 0 });
      expect(fixed.body.previousKeyValidUntil).toBeNull();
      for (const k of [original, first.body.apiKey, second.body.apiKey, third.body.apiKey])
        expect(await misStatus(k)).toBe(401);
      expect(await misStatus(fixed.body.apiKey)).toBe(200);
      expect(await listener.waitForClose()).toBe(4003);
      expect(listener.errors).toEqual([{ type: 'error', code: 'key_expired', message: expect.any(String) }]);
    });

    it('revocation is immediate: requests and open event WebSockets of the key (4003 key_revoked)', async () => {
      const clinicId = await newClinic('Revoked clinic');
      const desk = (await admin('POST', `/clinics/${clinicId}/workstations`, { name: 'Desk' })).body;
      const mis = (await admin('POST', `/clinics/${clinicId}/mis-clients`, { name: 'MIS' })).body;
      const other = (await admin('POST', `/clinics/${clinicId}/mis-clients`, { name: 'Other MIS' })).body;
      const deskSocket = await connect(desk.apiKey);
      const misSocket = await connect(mis.apiKey);
      const otherSocket = await connect(other.apiKey);
      for (const c of [deskSocket, misSocket, otherSocket]) await c.waitForReady();

      await admin('POST', `/clinics/${clinicId}/workstations/${desk.id}/revoke`);
      expect(await deskSocket.waitForClose()).toBe(4003);
      expect(deskSocket.errors).toEqual([{ type: 'error', code: 'key_revoked', message: 'This key was revoked.' }]);
      expect(await deskStatus(desk.apiKey)).toBe(401);
      await admin('POST', `/clinics/${clinicId}/mis-clients/${mis.id}/revoke`);
      expect(await misSocket.waitForClose()).toBe(4003);
      expect(await misStatus(mis.apiKey)).toBe(401);
      // A revoked key cannot connect again; the other client's connection stays and hears of both.
      const again = await connect(mis.apiKey);
      expect(await again.waitForClose()).toBe(4001);
      const heard = await otherSocket.waitFor('2 revocations', (e) => e.length >= 2);
      expect(heard.map((e) => [e.type, 'change' in e ? e.change : null])).toEqual([
        ['workstation.key_changed', 'revoked'],
        ['mis_client.key_changed', 'revoked'],
      ]);
      expect(otherSocket.closeCode).toBeNull();
    });

    it('the admin CLI (another process) revokes a key of the running service: refused at once, its WebSocket closed', async () => {
      const clinicId = await newClinic('CLI clinic');
      const desk = (await admin('POST', `/clinics/${clinicId}/workstations`, { name: 'Desk' })).body;
      const socket = await connect(desk.apiKey);
      await socket.waitForReady();
      const cli = spawn(
        process.execPath,
        [
          '-r',
          'ts-node/register/transpile-only',
          path.join(ROOT, 'src/cli/main.ts'),
          'workstation',
          'revoke',
          '--clinic',
          clinicId,
          '--id',
          desk.id,
        ],
        { cwd: ROOT, env: database.env, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let out = '';
      let err = '';
      cli.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      cli.stderr!.on('data', (d: Buffer) => (err += d.toString()));
      const code = await new Promise<number | null>((resolve) => cli.once('exit', resolve));
      expect({ code, out, err: err.includes(desk.apiKey) }).toEqual({
        code: 0,
        out: `workstation ${desk.id} revoked\n`,
        err: false,
      });
      expect(await deskStatus(desk.apiKey)).toBe(401);
      // Found by the service's next poll (EVENTS_POLL_MS), not by a signal in its own process.
      expect(await socket.waitForClose()).toBe(4003);
      expect(socket.errors[0].code).toBe('key_revoked');
      const audit = (await app.get<AuditRepository>(AUDIT).list(clinicId, 10)).find(
        (e) => e.action === 'workstation.revoked',
      );
      expect(audit).toMatchObject({ actor: 'cli', subject: desk.id });
    });

    it('a workstation key reads only its own sessions’ outcomes; the MIS reads them all', async () => {
      const clinicId = await newClinic('Two desks clinic');
      const a = (await admin('POST', `/clinics/${clinicId}/workstations`, { name: 'Desk A' })).body;
      const b = (await admin('POST', `/clinics/${clinicId}/workstations`, { name: 'Desk B' })).body;
      const mis = (await admin('POST', `/clinics/${clinicId}/mis-clients`, { name: 'MIS' })).body;
      const deskA = await connect(a.apiKey);
      const misSocket = await connect(mis.apiKey);
      await deskA.waitForReady();
      await misSocket.waitForReady();

      const a1 = await verdict(clinicId, a.apiKey);
      const b1 = await verdict(clinicId, b.apiKey);
      const a2 = await verdict(clinicId, a.apiKey);
      await app.get<EventRepository>(EVENTS).appendLockout({
        clinicId,
        patientId: (await app.get<SessionRepository>(SESSIONS).get(clinicId, b1))!.patientId,
        appointmentId: 'apt-locked',
        channel: 'in_person',
        workstationId: b.id,
      });
      await admin('POST', `/clinics/${clinicId}/workstations/${b.id}/rotate`);

      const all = await misSocket.waitFor('every event', (e) => e.length >= 5);
      expect(all.map((e) => e.type)).toEqual([
        'identification.verdict',
        'identification.verdict',
        'identification.verdict',
        'identification.locked_out',
        'workstation.key_changed',
      ]);
      const mine = await deskA.waitFor('its own 2', (e) => e.length >= 2);
      expect(mine.map((e) => ('sessionId' in e ? e.sessionId : e.type))).toEqual([a1, a2]);

      // Pull: the same view; another desk's event is no cursor for it.
      const pulled = await call('GET', '/events?limit=100', a.apiKey);
      expect(pulled.status).toBe(200);
      expect(pulled.body.events.map((e: Json) => e.sessionId)).toEqual([a1, a2]);
      expect(JSON.stringify(pulled.body)).not.toContain(all[1].id);
      const bEvent = all.find((e) => 'sessionId' in e && e.sessionId === b1)!;
      expect((await call('GET', `/events?after=${bEvent.id}`, a.apiKey)).body.error.code).toBe('cursor_unknown');
      expect((await call('GET', `/events?after=${bEvent.id}`, mis.apiKey)).status).toBe(200);
      const cross = await connect(a.apiKey, { after: bEvent.id });
      expect(await cross.waitForClose()).toBe(4404);
      // Its position is its own last event, so it can resume from it without a gap (or another desk's id).
      const live = await connect(a.apiKey);
      expect(await live.waitForReady()).toBe(all[2].id);
      const a3 = await verdict(clinicId, a.apiKey);
      await verdict(clinicId, b.apiKey);
      const resumed = await connect(a.apiKey, { after: all[0].id });
      const replayed = await resumed.waitFor('a2 and a3', (e) => e.length >= 2);
      expect(replayed.map((e) => ('sessionId' in e ? e.sessionId : null))).toEqual([a2, a3]);
      expect(
        (await live.waitFor('a3', (e) => e.length >= 1)).map((e) => ('sessionId' in e ? e.sessionId : null)),
      ).toEqual([a3]);
      const seen = await deskA.waitFor('a3 too', (e) => e.length >= 3);
      expect(seen.map((e) => ('sessionId' in e ? e.sessionId : null))).toEqual([a1, a2, a3]);
    });

    it('event connections are capped per key: one key cannot take the clinic’s, the MIS still connects', async () => {
      const clinicId = await newClinic('Crowded clinic');
      const desk = (await admin('POST', `/clinics/${clinicId}/workstations`, { name: 'Busy desk' })).body;
      const otherDesk = (await admin('POST', `/clinics/${clinicId}/workstations`, { name: 'Other desk' })).body;
      const mis = (await admin('POST', `/clinics/${clinicId}/mis-clients`, { name: 'MIS' })).body;
      const open: EventsClient[] = [];
      for (let i = 0; i < MAX_CONNECTIONS_PER_WORKSTATION; i++) open.push(await connect(desk.apiKey));
      await Promise.all(open.map((c) => c.waitForReady()));
      const over = await connect(desk.apiKey);
      expect(await over.waitForClose()).toBe(4429);
      expect(over.errors).toEqual([
        { type: 'error', code: 'too_many_connections', message: expect.stringContaining('per workstation key') },
      ]);
      // Other keys of the clinic are not affected.
      const other = await connect(otherDesk.apiKey);
      expect(await other.waitForReady()).toBeNull();
      const misOpen: EventsClient[] = [];
      for (let i = 0; i < MAX_CONNECTIONS_PER_MIS_CLIENT; i++) misOpen.push(await connect(mis.apiKey));
      await Promise.all(misOpen.map((c) => c.waitForReady()));
      const misOver = await connect(mis.apiKey);
      expect(await misOver.waitForClose()).toBe(4429);
      // A slot freed is a slot again.
      open[0].ws.close(1000);
      await open[0].waitForClose();
      const back = await until(
        'a freed slot',
        async () => {
          const c = await connect(desk.apiKey);
          await until('an answer', () => c.ready.length > 0 || c.closeCode !== null, WAIT_MS);
          return c.ready.length > 0 && c;
        },
        WAIT_MS,
      );
      expect(back.closeCode).toBeNull();
    });
  });
}

describe('admin routes without ADMIN_TOKEN', () => {
  let app: INestApplication;
  let database: TestDatabase;

  beforeAll(async () => {
    database = await createTestDatabase('sqlite', 'noadmin');
    ({ app } = await listenOnTestDatabase(database, { ADMIN_TOKEN: '' }));
  });
  afterAll(async () => {
    await app?.close();
    await database?.drop();
  });

  it('answer 404 admin_disabled, whatever the token', async () => {
    const base = await app.getUrl();
    const clinicId = (await app.get<ClinicRepository>(CLINICS).create('Clinic')).id;
    for (const [method, url] of [
      ['GET', '/admin/clinics'],
      ['GET', `/admin/clinics/${clinicId}/workstations`],
      ['POST', `/admin/clinics/${clinicId}/mis-clients`],
    ]) {
      for (const auth of [undefined, `Bearer ${'a'.repeat(40)}`]) {
        const res = await fetch(base + url, { method, headers: auth ? { authorization: auth } : {} });
        expect({ url, status: res.status, body: await res.json() }).toEqual({
          url,
          status: 404,
          body: { error: { code: 'admin_disabled', message: expect.stringContaining('ADMIN_TOKEN') } },
        });
      }
    }
  });
});

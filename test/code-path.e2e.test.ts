import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import type { NestExpressApplication } from '@nestjs/platform-express';
import WebSocket from 'ws';
import { createApp } from '../src/app.factory';
import { WorkstationsService } from '../src/auth';
import { loadConfig } from '../src/config';
import { smsText } from '../src/sms';
import { SessionSweep } from '../src/identification';
import { JsonLogger } from '../src/json-logger';
import {
  AUDIT,
  CLINICS,
  EVENTS,
  PATIENTS,
  TEMPLATES,
  VERDICTS,
  type AuditRepository,
  type ClinicRepository,
  type EventRepository,
  type PatientRepository,
  type StoredEvent,
  type TemplateRepository,
  type VerdictRepository,
} from '../src/storage/ports';
import { SUBPROTOCOL, TOKEN_SUBPROTOCOL_PREFIX } from '../src/transport/protocol';
import { createTestDatabase, TEST_DATABASES, type TestDatabaseKind } from './support/databases';
import { makeIin } from './support/iin';
import { storeTemplate } from './support/templates';

// The six-digit code path end to end: the real app over real HTTP and WebSockets, real storage (SQLite, and
// PostgreSQL unless FACEID_TEST_PG=0), the development SMS outbox, and once the HTTP SMS adapter against a real
// local receiver standing in for the e-government gateway. No face frames are needed.

/** Known to the test, so it can store a template for a patient without a camera or the engine. */
const TEST_TEMPLATE_KEY = `t1:${randomBytes(32).toString('base64')}`;
const ATTEMPTS_MAX = 3;
const PATIENT_FAILURES_MAX = 5;
const WORKSTATION_FAILURES_MAX = 8;
const RESENDS_MAX = 1;
const FACE_ATTEMPTS_MAX = 3;

interface Reply {
  status: number;
  headers: Headers;
  /** Parsed JSON, shape checked by each test. */
  body: any;
}

interface Harness {
  app: NestExpressApplication;
  base: string;
  logs: string[];
  /** Raw SQL outside the app, `?` placeholders. */
  sql(text: string, params?: unknown[]): Promise<Record<string, unknown>[]>;
  close(): Promise<void>;
}

async function startApp(db: TestDatabaseKind, env: Record<string, string>): Promise<Harness> {
  const database = await createTestDatabase(db, 'code');
  const full: Record<string, string> = {
    ...database.env,
    PORT: '0',
    FACEID_BOOTSTRAP: 'false',
    ENGINE_WORKERS: '1',
    RATE_LIMIT_PER_MINUTE: '100000',
    // These tests open many face sessions that nobody connects (each holds a place for 30 s): no admission limit
    // here; test/face-capacity.e2e.test.ts tests it.
    FACE_SESSIONS_MAX: '0',
    TEMPLATE_KEYS: TEST_TEMPLATE_KEY,
    LOG_LEVEL: 'debug',
    ...env,
  };
  const logs: string[] = [];
  const config = loadConfig(full);
  const app = await createApp({ config, logger: new JsonLogger(config.LOG_LEVEL, (line) => logs.push(line)) });
  await app.listen(0, '127.0.0.1');
  const base = `http://127.0.0.1:${(app.getHttpServer().address() as AddressInfo).port}`;
  const sql = async (text: string, params: unknown[] = []) => {
    if (db === 'sqlite') {
      const conn = new Database(database.location, { timeout: 10_000 });
      try {
        const stmt = conn.prepare(text);
        return stmt.reader
          ? (stmt.all(...params) as Record<string, unknown>[])
          : [{ changes: stmt.run(...params).changes }];
      } finally {
        conn.close();
      }
    }
    const { Client } = await import('pg');
    const client = new Client({ connectionString: database.location });
    await client.connect();
    try {
      let n = 0;
      return (
        await client.query(
          text.replace(/\?/g, () => `$${++n}`),
          params,
        )
      ).rows;
    } finally {
      await client.end();
    }
  };
  const close = async () => {
    await app.close();
    await database.drop();
  };
  return { app, base, logs, sql, close };
}

function client(base: string) {
  return async (method: string, url: string, key: string, body?: unknown): Promise<Reply> => {
    const res = await fetch(base + url, {
      method,
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : null };
  };
}

/** Another code than `code`: same length, one more modulo a million. */
const wrongFor = (code: string) => String((Number(code) + 1) % 1_000_000).padStart(6, '0');

/** Every stored row of every table, as text (the code must appear in none). */
async function dumpTables(h: Harness, db: string): Promise<string> {
  const tables =
    db === 'sqlite'
      ? (await h.sql(`SELECT name FROM sqlite_master WHERE type = 'table'`)).map((r) => String(r.name))
      : (await h.sql(`SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'public'`)).map(
          (r) => String(r.name),
        );
  let text = '';
  for (const t of tables) text += JSON.stringify(await h.sql(`SELECT * FROM "${t}"`)) + '\n';
  return text;
}

/**
 * The code as a value of its own ("code: 123456.", "\"123456\""): not inside a longer run of digits (timestamps) nor
 * of hex (hashes, ids), where six digits turn up by chance.
 */
const standalone = (code: string) => new RegExp(`(^|[^0-9a-fA-F])${code}([^0-9a-fA-F]|$)`);

for (const db of TEST_DATABASES) {
  describe(`code path with the development outbox (${db})`, () => {
    let h: Harness;
    let api: ReturnType<typeof client>;
    let clinicA: string;
    let keyA: string;
    let keyB: string;
    let serial = 3000;
    const codesSeen: string[] = [];

    /** A new patient without a template: face sessions are refused (no_template), the code path is open. */
    const newIin = () => makeIin('1979-03-15', (serial += 3));
    /** A new patient with an enrolled template (face sessions wait for frames). */
    const enrolledIin = () => storeTemplate(h.app, TEST_TEMPLATE_KEY, clinicA, newIin());
    const newDesk = async (clinicId = clinicA) =>
      (await h.app.get(WorkstationsService).createWorkstation(clinicId, `desk ${serial++}`)).apiKey;
    const startSession = (key: string, iin: string, channel = 'in_person') =>
      api('POST', '/sessions', key, { iin, appointmentId: `apt-${randomBytes(4).toString('hex')}`, channel });
    /** In person, by the six-digit code from the start (no face session), with the reason why not by face. */
    const startByCode = (key: string, iin: string, reason: string) =>
      api('POST', '/sessions', key, {
        iin,
        appointmentId: `apt-${randomBytes(4).toString('hex')}`,
        channel: 'in_person',
        method: 'code',
        reason,
      });
    const refuse = (key: string, sessionId: string) =>
      api('POST', `/sessions/${sessionId}/refusal`, key, { reason: 'patient_refused_photo' });
    const enter = (key: string, sessionId: string, code: string) =>
      api('POST', `/sessions/${sessionId}/code`, key, { code });
    /** The code the outbox holds for a session (read as the demo page does). */
    const codeOf = async (key: string, sessionId: string): Promise<string> => {
      const res = await api('GET', '/dev/outbox', key);
      expect(res.status).toBe(200);
      const mine = res.body.messages.filter((m: { sessionId: string }) => m.sessionId === sessionId);
      expect(mine).toHaveLength(1);
      // Kazakh then Russian (the clinic's default setting), naming the clinic (see src/sms/texts.ts).
      const code = /код (\d{6}) для приёма\./.exec(mine[0].text)![1];
      expect(mine[0].text).toBe(smsText('identification', { code, clinicName: 'Clinic A', languages: 'kk+ru' }));
      codesSeen.push(code);
      return code;
    };
    const eventsOf = async (sessionId: string): Promise<StoredEvent[]> =>
      (await h.app.get<EventRepository>(EVENTS).after(clinicA, 0, 10_000)).filter(
        (e) => 'sessionId' in e.payload && e.payload.sessionId === sessionId,
      );
    /** A session of a fresh patient on the code path: its id and code. */
    const refused = async (key: string, iin?: string) => {
      iin ??= await enrolledIin();
      const s = await startSession(key, iin);
      expect(s.status).toBe(201);
      const r = await refuse(key, s.body.sessionId);
      expect(r.status).toBe(200);
      return { sessionId: s.body.sessionId as string, code: await codeOf(key, s.body.sessionId), iin };
    };

    beforeAll(async () => {
      h = await startApp(db, {
        SMS_ADAPTER: 'dev',
        CODE_ATTEMPTS_MAX: String(ATTEMPTS_MAX),
        CODE_PATIENT_FAILURES_MAX: String(PATIENT_FAILURES_MAX),
        CODE_WORKSTATION_FAILURES_MAX: String(WORKSTATION_FAILURES_MAX),
        CODE_RESENDS_MAX: String(RESENDS_MAX),
        FACE_ATTEMPTS_MAX: String(FACE_ATTEMPTS_MAX),
      });
      api = client(h.base);
      const clinics = h.app.get<ClinicRepository>(CLINICS);
      clinicA = (await clinics.create('Clinic A')).id;
      keyA = await newDesk(clinicA);
      keyB = await newDesk((await clinics.create('Clinic B')).id);
    });

    afterAll(async () => {
      await h?.close();
    });

    it('refusal then the right code: match by code, shown by GET, refused and verdict events in order', async () => {
      const iin = await enrolledIin();
      const s = await startSession(keyA, iin);
      expect(s.status).toBe(201);
      const before = Date.now();
      const r = await refuse(keyA, s.body.sessionId);
      expect(r.status).toBe(200);
      expect(r.body).toEqual({ sessionId: s.body.sessionId, state: 'code_pending', codeExpiresAt: expect.any(String) });
      const ttl = Date.parse(r.body.codeExpiresAt) - before;
      expect(ttl).toBeGreaterThan(290_000);
      expect(ttl).toBeLessThan(310_000);

      const pending = await api('GET', `/sessions/${s.body.sessionId}`, keyA);
      expect(pending.body).toMatchObject({
        state: 'code_pending',
        refusalReason: 'patient_refused_photo',
        codeExpiresAt: r.body.codeExpiresAt,
        verdict: null,
      });
      const outbox = await api('GET', '/dev/outbox', keyA);
      const msg = outbox.body.messages.find((m: { sessionId: string }) => m.sessionId === s.body.sessionId);
      expect(msg).toEqual({
        purpose: 'identification',
        sessionId: s.body.sessionId,
        to: `********${iin.slice(-4)}`,
        text: expect.any(String),
        createdAt: expect.any(String),
      });

      const code = await codeOf(keyA, s.body.sessionId);
      const ok = await enter(keyA, s.body.sessionId, code);
      expect(ok.status).toBe(200);
      expect(ok.body).toEqual({
        sessionId: s.body.sessionId,
        verdict: { result: 'match', method: 'code', createdAt: expect.any(String) },
      });
      const done = await api('GET', `/sessions/${s.body.sessionId}`, keyA);
      expect(done.body).toMatchObject({
        state: 'finished',
        verdict: { result: 'match', method: 'code', liveness: null },
      });
      expect(done.body.verdict).not.toHaveProperty('score');
      expect(done.body.verdict.timings).toEqual({ codeAgeMs: expect.any(Number), wrongAttempts: 0 });

      const events = await eventsOf(s.body.sessionId);
      expect(events.map((e) => e.type)).toEqual(['identification.refused', 'identification.verdict']);
      expect(events[1].seq).toBeGreaterThan(events[0].seq);
      expect(events[0].payload).toMatchObject({
        result: 'refused',
        reason: 'patient_refused_photo',
        iin,
        channel: 'in_person',
      });
      expect(events[1].payload).toMatchObject({ result: 'match', method: 'code', score: null, reason: null });
      expect(JSON.stringify(events)).not.toMatch(standalone(code));

      // Used: neither the code nor a new refusal works on that session.
      expect((await enter(keyA, s.body.sessionId, code)).body.error.code).toBe('code_used');
      const again = await refuse(keyA, s.body.sessionId);
      expect([again.status, again.body.error.code]).toEqual([409, 'session_finished']);
    });

    it('resends a lost code: the old one stops working, wrong attempts still count, at most CODE_RESENDS_MAX times', async () => {
      const desk = await newDesk();
      const { sessionId, code: first } = await refused(desk);
      const wrong = await enter(desk, sessionId, wrongFor(first));
      expect(wrong.body.error).toMatchObject({ code: 'code_invalid', attemptsLeft: ATTEMPTS_MAX - 1 });

      const before = Date.now();
      const again = await api('POST', `/sessions/${sessionId}/code/resend`, desk);
      expect(again.status).toBe(200);
      expect(again.body).toEqual({
        sessionId,
        state: 'code_pending',
        codeExpiresAt: expect.any(String),
        resendsLeft: RESENDS_MAX - 1,
      });
      expect(Date.parse(again.body.codeExpiresAt) - before).toBeGreaterThan(290_000);
      const outbox = await api('GET', '/dev/outbox', desk);
      const texts = outbox.body.messages
        .filter((m: { sessionId: string }) => m.sessionId === sessionId)
        .map((m: { text: string }) => m.text);
      expect(texts).toHaveLength(2);
      const second = /(\d{6})/.exec(texts[1])![1];
      codesSeen.push(second);
      if (second !== first) {
        // The first code is now just a wrong code (one chance in a million that the new one is the same).
        const old = await enter(desk, sessionId, first);
        expect(old.body.error).toMatchObject({ code: 'code_invalid', attemptsLeft: ATTEMPTS_MAX - 2 });
      }
      const limit = await api('POST', `/sessions/${sessionId}/code/resend`, desk);
      expect([limit.status, limit.body.error.code]).toEqual([429, 'code_resend_limit']);

      const ok = await enter(desk, sessionId, second);
      expect(ok.status).toBe(200);
      expect(ok.body.verdict).toMatchObject({ result: 'match', method: 'code' });
      const used = await api('POST', `/sessions/${sessionId}/code/resend`, desk);
      expect([used.status, used.body.error.code]).toEqual([409, 'code_used']);
      const notPending = await api(
        'POST',
        `/sessions/${(await startSession(desk, await enrolledIin())).body.sessionId}/code/resend`,
        desk,
      );
      expect([notPending.status, notPending.body.error.code]).toEqual([409, 'code_not_requested']);
      expect((await api('POST', `/sessions/${sessionId}/code/resend`, keyB)).status).toBe(404);
    });

    it('a wrong code answers attemptsLeft; the last one locks the session out', async () => {
      const { sessionId, code } = await refused(await newDesk());
      const wrong = wrongFor(code);
      for (let left = ATTEMPTS_MAX - 1; left > 0; left--) {
        const res = await enter(keyA, sessionId, wrong);
        expect(res.status).toBe(422);
        expect(res.body.error).toEqual({ code: 'code_invalid', message: expect.any(String), attemptsLeft: left });
      }
      const last = await enter(keyA, sessionId, wrong);
      expect(last.status).toBe(429);
      expect(last.body.error).toMatchObject({ code: 'code_locked_out', attemptsLeft: 0 });
      const stored = await api('GET', `/sessions/${sessionId}`, keyA);
      expect(stored.body).toMatchObject({ state: 'finished', verdict: { result: 'locked_out', method: 'code' } });
      const events = await eventsOf(sessionId);
      expect(events.map((e) => e.type)).toEqual(['identification.refused', 'identification.locked_out']);
      expect(events[1].payload).toMatchObject({ method: 'code', result: 'locked_out' });
      // The right code no longer helps.
      const late = await enter(keyA, sessionId, code);
      expect([late.status, late.body.error.code]).toEqual([409, 'session_finished']);
    });

    it('an expired code is refused, and the sweep ends its session as expired', async () => {
      const { sessionId, code } = await refused(await newDesk());
      // Age the code in the database (the service compares with the clock; nothing is faked in the app).
      await h.sql(`UPDATE "OneTimeCode" SET "expiresAt" = "createdAt" WHERE "sessionId" = ?`, [sessionId]);
      const res = await enter(keyA, sessionId, code);
      expect([res.status, res.body.error.code]).toEqual([410, 'code_expired']);
      expect(await h.app.get(SessionSweep).sweepOnce()).toBeGreaterThanOrEqual(1);
      const stored = await api('GET', `/sessions/${sessionId}`, keyA);
      expect(stored.body).toMatchObject({ state: 'expired', verdict: { result: 'expired', method: 'none' } });
      expect((await eventsOf(sessionId)).map((e) => e.type)).toEqual([
        'identification.refused',
        'identification.expired',
      ]);
      expect((await enter(keyA, sessionId, code)).body.error.code).toBe('session_finished');
    });

    it('the periodic sweep expires a session whose token was never used', async () => {
      const s = await startSession(keyA, await enrolledIin());
      await h.sql(`UPDATE "IdentificationSession" SET "tokenExpiresAt" = "createdAt" WHERE "id" = ?`, [
        s.body.sessionId,
      ]);
      const deadline = Date.now() + 15_000; // the app's sweep runs every few seconds
      let state = '';
      while (Date.now() < deadline) {
        state = (await api('GET', `/sessions/${s.body.sessionId}`, keyA)).body.state;
        if (state === 'expired') break;
        await new Promise((r) => setTimeout(r, 250));
      }
      expect(state).toBe('expired');
      expect((await eventsOf(s.body.sessionId)).map((e) => 'result' in e.payload && e.payload.result)).toEqual([
        'expired',
      ]);
    });

    it('caps wrong codes per patient, across sessions, with Retry-After', async () => {
      const desk = await newDesk();
      const iin = await enrolledIin();
      const first = await refused(desk, iin);
      for (let i = 0; i < ATTEMPTS_MAX; i++) await enter(desk, first.sessionId, wrongFor(first.code));
      const second = await refused(desk, iin);
      for (let i = ATTEMPTS_MAX; i < PATIENT_FAILURES_MAX; i++) {
        expect((await enter(desk, second.sessionId, wrongFor(second.code))).status).toBe(422);
      }
      // At the cap even the right code is not looked at.
      const capped = await enter(desk, second.sessionId, second.code);
      expect(capped.status).toBe(429);
      expect(capped.body.error.code).toBe('code_attempts_exceeded');
      expect(capped.headers.get('retry-after')).toBe('3600');
      // No new code goes out for that patient, from any desk.
      const third = await startSession(keyA, iin);
      const refusedAgain = await refuse(keyA, third.body.sessionId);
      expect([refusedAgain.status, refusedAgain.body.error.code]).toEqual([429, 'code_attempts_exceeded']);
      const outbox = await api('GET', '/dev/outbox', keyA);
      expect(outbox.body.messages.some((m: { sessionId: string }) => m.sessionId === third.body.sessionId)).toBe(false);
      expect((await api('GET', `/sessions/${third.body.sessionId}`, keyA)).body.state).toBe('created');
      // Another patient at the same desk is not affected.
      expect((await refused(desk)).code).toMatch(/^\d{6}$/);
    });

    it('caps wrong codes per workstation, whoever enters them', async () => {
      const desk = await newDesk();
      const other = await newDesk();
      let failures = 0;
      let open: { sessionId: string; code: string } | null = null;
      while (failures < WORKSTATION_FAILURES_MAX) {
        const s = await refused(desk);
        const n = Math.min(ATTEMPTS_MAX, WORKSTATION_FAILURES_MAX - failures);
        for (let i = 0; i < n; i++) await enter(desk, s.sessionId, wrongFor(s.code));
        failures += n;
        open = n < ATTEMPTS_MAX ? s : null;
      }
      expect(open).not.toBeNull(); // 8 = 3 + 3 + 2: the last session is still pending
      const capped = await enter(desk, open!.sessionId, open!.code);
      expect([capped.status, capped.body.error.code]).toEqual([429, 'code_attempts_exceeded']);
      // The cap follows the code's workstation too: another desk cannot finish the guessing.
      const viaOther = await enter(other, open!.sessionId, open!.code);
      expect([viaOther.status, viaOther.body.error.code]).toEqual([429, 'code_attempts_exceeded']);
      // The capped desk gets no new code; another desk of the clinic does.
      const s = await startSession(desk, await enrolledIin());
      expect((await refuse(desk, s.body.sessionId)).body.error.code).toBe('code_attempts_exceeded');
      expect((await refuse(other, s.body.sessionId)).status).toBe(200);
    });

    it('a remote appointment goes straight to the code path', async () => {
      const iin = newIin();
      const s = await startSession(keyA, iin, 'remote');
      expect(s.status).toBe(201);
      expect(s.body).toEqual({
        sessionId: expect.any(String),
        state: 'code_pending',
        codeExpiresAt: expect.any(String),
      });
      const pending = await api('GET', `/sessions/${s.body.sessionId}`, keyA);
      expect(pending.body).toMatchObject({ state: 'code_pending', channel: 'remote', refusalReason: null });
      const ok = await enter(keyA, s.body.sessionId, await codeOf(keyA, s.body.sessionId));
      expect(ok.body.verdict).toMatchObject({ result: 'match', method: 'code' });
      const events = await eventsOf(s.body.sessionId);
      expect(events.map((e) => e.type)).toEqual(['identification.verdict']);
      expect(events[0].payload).toMatchObject({ channel: 'remote', method: 'code', result: 'match', iin });
    });

    it('keeps clinics apart: clinic B cannot refuse, enter a code or read the outbox of clinic A', async () => {
      const s = await startSession(keyA, await enrolledIin());
      const r = await refuse(keyB, s.body.sessionId);
      expect([r.status, r.body.error.code]).toEqual([404, 'session_not_found']);
      expect((await api('GET', `/sessions/${s.body.sessionId}`, keyA)).body.state).toBe('created');
      expect((await refuse(keyA, s.body.sessionId)).status).toBe(200);
      const code = await codeOf(keyA, s.body.sessionId);
      const c = await enter(keyB, s.body.sessionId, code);
      expect([c.status, c.body.error.code]).toEqual([404, 'session_not_found']);
      const outboxB = await api('GET', '/dev/outbox', keyB);
      expect(outboxB.status).toBe(200);
      expect(outboxB.body.messages.some((m: { sessionId: string }) => m.sessionId === s.body.sessionId)).toBe(false);
      expect((await enter(keyA, s.body.sessionId, code)).status).toBe(200);
    });

    /** Opens a session's face WebSocket: `ready` resolves true on the server's ready message, false if it closed first. */
    const openFace = (session: { wsUrl: string; token: string }) => {
      const ws = new WebSocket(session.wsUrl, [SUBPROTOCOL, TOKEN_SUBPROTOCOL_PREFIX + session.token]);
      const messages: Array<Record<string, unknown>> = [];
      const closed = new Promise<{ code: number; reason: string }>((resolve) =>
        ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })),
      );
      const ready = new Promise<boolean>((resolve, reject) => {
        ws.on('error', reject);
        ws.on('message', (d) => {
          const m = JSON.parse(d.toString());
          messages.push(m);
          if (m.type === 'ready') resolve(true);
        });
        void closed.then(() => resolve(false));
      });
      return { ws, messages, closed, ready };
    };

    it('keeps one face token per patient and counts face attempts when a token is used, not only when it is issued', async () => {
      const iin = await enrolledIin();
      // A second session for the patient ends the first one's unused token.
      const first = await startSession(keyA, iin);
      const second = await startSession(keyA, iin);
      const stale = openFace(first.body);
      expect(await stale.ready).toBe(false);
      expect(await stale.closed).toMatchObject({ code: 4001 });
      // Two failed face sessions, recorded through the real repository, and the second session running: three of
      // FACE_ATTEMPTS_MAX (3), so a session issued now (two failures < 3) is refused when its token is used.
      for (let i = 0; i < 2; i++) {
        const f = await startSession(keyA, iin);
        const verdict = { result: 'no_match', method: 'face', score: 0.1, liveness: null, timings: null } as const;
        expect(
          await h.app
            .get<VerdictRepository>(VERDICTS)
            .finish({ clinicId: clinicA, sessionId: f.body.sessionId, ...verdict }),
        ).not.toBeNull();
      }
      const running = openFace((await startSession(keyA, iin)).body);
      expect(await running.ready).toBe(true);
      const late = await startSession(keyA, iin);
      expect(late.status).toBe(201);
      const refused = openFace(late.body);
      expect(await refused.ready).toBe(false);
      expect(await refused.closed).toMatchObject({ code: 4029 });
      // No dead end: the refused session is still open for the six-digit code.
      expect((await api('GET', `/sessions/${late.body.sessionId}`, keyA)).body).toMatchObject({ state: 'created' });
      expect((await refuse(keyA, late.body.sessionId)).status).toBe(200);
      expect((await enter(keyA, late.body.sessionId, await codeOf(keyA, late.body.sessionId))).status).toBe(200);
      running.ws.close();
      await running.closed;
      expect(second.status).toBe(201);
    });

    it('a refusal stops a running face WebSocket and says why', async () => {
      const s = await startSession(keyA, await enrolledIin());
      const { closed, messages, ready } = openFace(s.body);
      expect(await ready).toBe(true);
      expect((await api('GET', `/sessions/${s.body.sessionId}`, keyA)).body.state).toBe('connected');
      expect((await refuse(keyA, s.body.sessionId)).status).toBe(200);
      expect(await closed).toEqual({ code: 4010, reason: 'refused' });
      expect(messages.at(-1)).toMatchObject({ type: 'error', code: 'session_refused' });
      expect((await api('GET', `/sessions/${s.body.sessionId}`, keyA)).body.state).toBe('code_pending');
      expect((await enter(keyA, s.body.sessionId, await codeOf(keyA, s.body.sessionId))).status).toBe(200);
    });

    it('answers bad input and wrong states with typed errors', async () => {
      const s = await startSession(keyA, await enrolledIin());
      const id = s.body.sessionId;
      const badReason = await api('POST', `/sessions/${id}/refusal`, keyA, { reason: 'Patient Refused!' });
      expect([badReason.status, badReason.body.error.code]).toEqual([400, 'invalid_request']);
      for (const code of ['12345', '1234567', 'abcdef', 123456]) {
        const bad = await api('POST', `/sessions/${id}/code`, keyA, { code });
        expect([bad.status, bad.body.error.code]).toEqual([400, 'invalid_request']);
      }
      const notRequested = await enter(keyA, id, '123456');
      expect([notRequested.status, notRequested.body.error.code]).toEqual([409, 'code_not_requested']);
      expect((await refuse(keyA, id)).status).toBe(200);
      const twice = await refuse(keyA, id);
      expect([twice.status, twice.body.error.code]).toEqual([409, 'code_already_sent']);
      const unknown = await refuse(keyA, '00000000-0000-4000-8000-000000000000');
      expect([unknown.status, unknown.body.error.code]).toEqual([404, 'session_not_found']);
      const noKey = await fetch(`${h.base}/sessions/${id}/code`, { method: 'POST' });
      expect(noKey.status).toBe(401);
      codesSeen.push(await codeOf(keyA, id));
    });

    it('tells the MIS about a face lock-out (no session opened); the desk goes on by code in person, and the code matches', async () => {
      const iin = await enrolledIin();
      const verdicts = h.app.get<VerdictRepository>(VERDICTS);
      // FACE_ATTEMPTS_MAX failed face sessions, recorded through the real repository (no camera needed for the policy).
      for (let i = 0; i < FACE_ATTEMPTS_MAX; i++) {
        const s = await startSession(keyA, iin);
        expect(s.status).toBe(201);
        await verdicts.finish({
          clinicId: clinicA,
          sessionId: s.body.sessionId,
          result: 'no_match',
          method: 'face',
          score: 0.1,
          liveness: null,
          timings: null,
        });
      }
      const latest = await h.app.get<EventRepository>(EVENTS).latestSeq(clinicA);
      const lockAudits = async () =>
        (await h.app.get<AuditRepository>(AUDIT).list(clinicA, 10_000)).filter(
          (a) => a.action === 'session.locked_out',
        );
      const auditedBefore = (await lockAudits()).length;
      const locked = await startSession(keyA, iin);
      expect(locked.status).toBe(429);
      // Its audit entry was written with the event (one transaction): no session, so its subject is the patient.
      const audited = await lockAudits();
      expect(audited.length).toBe(auditedBefore + 1);
      expect(audited.find((a) => a.detail?.failed === FACE_ATTEMPTS_MAX)).toMatchObject({
        actor: expect.any(String),
        detail: { failed: FACE_ATTEMPTS_MAX, windowMinutes: expect.any(Number) },
      });
      // The desk can offer the code at once.
      expect(locked.body.error).toEqual({
        code: 'attempts_exceeded',
        message: expect.any(String),
        codeAvailable: true,
      });
      // This patient's events only: the sweep may expire an earlier test's session meanwhile (another patient).
      const after = (await h.app.get<EventRepository>(EVENTS).after(clinicA, latest, 100)).filter(
        (e) => 'iin' in e.payload && e.payload.iin === iin,
      );
      expect(after.map((e) => e.payload)).toEqual([
        expect.objectContaining({
          type: 'identification.locked_out',
          sessionId: null,
          iin,
          method: 'face',
          result: 'locked_out',
        }),
      ]);

      // No dead end: the patient is at the desk, so the session is by code, in person, with the reason. The face
      // attempts limit does not apply to it.
      const byCode = await startByCode(keyA, iin, 'face_failed');
      expect(byCode.status).toBe(201);
      expect(byCode.body).toEqual({
        sessionId: expect.any(String),
        state: 'code_pending',
        codeExpiresAt: expect.any(String),
      });
      const id = byCode.body.sessionId as string;
      const ok = await enter(keyA, id, await codeOf(keyA, id));
      expect(ok.status).toBe(200);
      expect(ok.body.verdict).toMatchObject({ result: 'match', method: 'code' });
      expect((await api('GET', `/sessions/${id}`, keyA)).body).toMatchObject({
        channel: 'in_person',
        state: 'finished',
        refusalReason: 'face_failed',
        verdict: { result: 'match', method: 'code' },
      });
      const events = await eventsOf(id);
      expect(events.map((e) => e.type)).toEqual(['identification.refused', 'identification.verdict']);
      expect(events[0].payload).toMatchObject({
        channel: 'in_person',
        method: 'none',
        result: 'refused',
        reason: 'face_failed',
        iin,
      });
      expect(events[1].payload).toMatchObject({ channel: 'in_person', method: 'code', result: 'match', iin });
      // A match by code does not reopen the face path within the window.
      const still = await startSession(keyA, iin);
      expect([still.status, still.body.error.code]).toEqual([429, 'attempts_exceeded']);
    });

    it('answers 409 no_template with codeAvailable before any token for a patient without a template, and the desk goes on by code', async () => {
      const iin = newIin();
      const events = h.app.get<EventRepository>(EVENTS);
      const latest = await events.latestSeq(clinicA);
      const face = await startSession(keyA, iin);
      expect(face.status).toBe(409);
      expect(face.body.error).toEqual({ code: 'no_template', message: expect.any(String), codeAvailable: true });
      // Nothing was opened: no session (no token), no event; the audit trail has the check.
      const patient = (await h.app.get<PatientRepository>(PATIENTS).find(clinicA, iin))!;
      expect(await h.sql(`SELECT "id" FROM "IdentificationSession" WHERE "patientId" = ?`, [patient.id])).toEqual([]);
      expect(await events.latestSeq(clinicA)).toBe(latest);
      const audit = (await h.app.get<AuditRepository>(AUDIT).list(clinicA, 10_000)).filter(
        (a) => a.subject === patient.id,
      );
      expect(audit.map((a) => a.action)).toContain('session.no_template');

      // By code at once, here because the camera does not work: recorded as a refusal is (event, audit, session).
      const byCode = await startByCode(keyA, iin, 'camera_unavailable');
      expect(byCode.status).toBe(201);
      expect(byCode.body).toEqual({
        sessionId: expect.any(String),
        state: 'code_pending',
        codeExpiresAt: expect.any(String),
      });
      const id = byCode.body.sessionId as string;
      expect((await api('GET', `/sessions/${id}`, keyA)).body).toMatchObject({
        channel: 'in_person',
        state: 'code_pending',
        refusalReason: 'camera_unavailable',
        codeExpiresAt: byCode.body.codeExpiresAt,
        verdict: null,
      });
      const trail = (await h.app.get<AuditRepository>(AUDIT).list(clinicA, 10_000)).filter((a) => a.subject === id);
      expect(trail.map((a) => [a.action, a.detail]).sort()).toEqual([
        ['code.sent', { adapter: 'dev', ttlSeconds: 300 }],
        ['session.created', { channel: 'in_person', method: 'code' }],
        ['session.refused', { reason: 'camera_unavailable', faceSessionAborted: false }],
      ]);
      const ok = await enter(keyA, id, await codeOf(keyA, id));
      expect(ok.body.verdict).toMatchObject({ result: 'match', method: 'code' });
      const mine = await eventsOf(id);
      expect(mine.map((e) => e.type)).toEqual(['identification.refused', 'identification.verdict']);
      expect(mine[0].payload).toMatchObject({
        channel: 'in_person',
        method: 'none',
        result: 'refused',
        reason: 'camera_unavailable',
        iin,
      });
      expect(mine[1].payload).toMatchObject({ channel: 'in_person', method: 'code', result: 'match' });
    });

    it('still ends a face session no_template on the WebSocket when the template is revoked after the token was issued', async () => {
      const iin = await enrolledIin();
      const s = await startSession(keyA, iin);
      expect(s.status).toBe(201);
      const patient = (await h.app.get<PatientRepository>(PATIENTS).find(clinicA, iin))!;
      expect(
        await h.app.get<TemplateRepository>(TEMPLATES).revoke(clinicA, patient.id, { kind: 'admin', id: null }),
      ).toBe(1);
      const face = openFace(s.body);
      expect(await face.closed).toMatchObject({ code: 1000 });
      expect(face.messages).toContainEqual(expect.objectContaining({ type: 'verdict', result: 'no_template' }));
      expect((await api('GET', `/sessions/${s.body.sessionId}`, keyA)).body).toMatchObject({
        state: 'finished',
        verdict: { result: 'no_template', method: 'face' },
      });
      // The next face session is refused before its token.
      expect((await startSession(keyA, iin)).body.error).toMatchObject({ code: 'no_template', codeAvailable: true });
    });

    it('validates the method and the reason of POST /sessions before anything happens', async () => {
      const iin = newIin();
      const cases: Array<[Record<string, unknown>, string]> = [
        [{ channel: 'remote', method: 'face' }, 'body.method'],
        [{ channel: 'in_person', method: 'code' }, 'body.reason'],
        [{ channel: 'in_person', method: 'code', reason: 'patient_was_tired' }, 'body.reason'],
        [{ channel: 'in_person', method: 'code', reason: 'Face failed' }, 'body.reason'],
        [{ channel: 'in_person', reason: 'face_failed' }, 'body.reason'],
        [{ channel: 'in_person', method: 'face', reason: 'face_failed' }, 'body.reason'],
        [{ channel: 'remote', method: 'code', reason: 'patient_refused_photo' }, 'body.reason'],
        [{ channel: 'in_person', method: 'sms', reason: 'face_failed' }, 'body.method'],
      ];
      for (const [extra, where] of cases) {
        const res = await api('POST', '/sessions', keyA, { iin, appointmentId: 'apt-validation', ...extra });
        expect([
          JSON.stringify(extra),
          res.status,
          res.body.error.code,
          res.body.error.issues.map((i: { path: string }) => i.path),
        ]).toEqual([JSON.stringify(extra), 400, 'invalid_request', [where]]);
      }
      // Refused at the edge: the patient was not even created.
      expect(await h.app.get<PatientRepository>(PATIENTS).find(clinicA, iin)).toBeNull();
      // A remote appointment may name its method, which is the code.
      const remote = await api('POST', '/sessions', keyA, {
        iin,
        appointmentId: 'apt-validation',
        channel: 'remote',
        method: 'code',
      });
      expect([remote.status, remote.body.state]).toEqual([201, 'code_pending']);
      codesSeen.push(await codeOf(keyA, remote.body.sessionId));
    });

    it('documents the routes in /openapi.json', async () => {
      const doc = (await (await fetch(`${h.base}/openapi.json`)).json()) as { paths: Record<string, any> };
      expect(Object.keys(doc.paths)).toEqual(
        expect.arrayContaining(['/sessions/{id}/refusal', '/sessions/{id}/code', '/dev/outbox']),
      );
      const create = doc.paths['/sessions'].post;
      expect(create.responses['409'].description).toContain('`no_template`');
      expect(create.responses['429'].description).toContain('`attempts_exceeded`');
      const body = create.requestBody.content['application/json'].schema;
      expect(body.properties.method.enum).toEqual(['face', 'code']);
      expect(body.properties.reason.enum).toEqual(['patient_refused_photo', 'face_failed', 'camera_unavailable']);
      expect(body.required).not.toContain('method');
    });

    // Last: scans what every test above left behind.
    it('never stores or logs a code: only keyed hashes', async () => {
      expect(codesSeen.length).toBeGreaterThan(0);
      const tables = await dumpTables(h, db);
      expect(tables).toMatch(/"codeHash":"[A-Za-z0-9_-]+:[0-9a-f]{64}"/);
      const logs = h.logs.join('\n');
      expect(logs).toContain('Development SMS outbox');
      for (const code of codesSeen) {
        expect(tables).not.toMatch(standalone(code));
        expect(logs).not.toMatch(standalone(code));
      }
    });
  });
}

describe('code path with the HTTP SMS adapter and a real receiver (sqlite)', () => {
  let h: Harness;
  let api: ReturnType<typeof client>;
  let key: string;
  let clinicId: string;
  let receiver: http.Server;
  let failNext = 0;
  const received: Array<{ authorization?: string; body: { iin: string; text: string; reference: string } }> = [];

  beforeAll(async () => {
    // The e-government gateway's stand-in: takes JSON, answers 500 while told to fail.
    receiver = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        received.push({ authorization: req.headers.authorization, body: JSON.parse(Buffer.concat(chunks).toString()) });
        if (failNext > 0) {
          failNext--;
          res.writeHead(500).end();
        } else {
          res.writeHead(202, { 'content-type': 'application/json' }).end('{"accepted":true}');
        }
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    h = await startApp('sqlite', {
      SMS_ADAPTER: 'http',
      SMS_HTTP_URL: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/send`,
      SMS_HTTP_TOKEN: 'egov-test-token',
      SMS_HTTP_RETRIES: '1',
      SMS_HTTP_TIMEOUT_MS: '2000',
    });
    api = client(h.base);
    clinicId = (await h.app.get<ClinicRepository>(CLINICS).create('Clinic H')).id;
    key = (await h.app.get(WorkstationsService).createWorkstation(clinicId, 'desk')).apiKey;
  });

  afterAll(async () => {
    await h?.close();
    receiver?.closeAllConnections();
    await new Promise((resolve) => receiver?.close(resolve));
  });

  /** A face session of an enrolled patient, for the refusal to move to the code path. */
  const session = async (iin: string) => {
    await storeTemplate(h.app, TEST_TEMPLATE_KEY, clinicId, iin);
    const s = await api('POST', '/sessions', key, {
      iin,
      appointmentId: `apt-${randomBytes(3).toString('hex')}`,
      channel: 'in_person',
    });
    expect(s.status).toBe(201);
    return s.body.sessionId as string;
  };

  it('sends the code to the gateway, which is then typed in', async () => {
    const iin = makeIin('1991-11-30', 40);
    const id = await session(iin);
    const r = await api('POST', `/sessions/${id}/refusal`, key, { reason: 'patient_refused_photo' });
    expect(r.status).toBe(200);
    const msg = received.at(-1)!;
    expect(msg.authorization).toBe('Bearer egov-test-token');
    const code = /(\d{6})/.exec(msg.body.text)![1];
    expect(msg.body).toEqual({ iin, reference: id, text: smsText('identification', { code, clinicName: 'Clinic H' }) });
    const ok = await api('POST', `/sessions/${id}/code`, key, { code });
    expect(ok.body.verdict).toMatchObject({ result: 'match', method: 'code' });
    expect(h.logs.join('\n')).not.toMatch(standalone(code));
  });

  it('retries a 5xx, and a gateway that keeps failing is a typed 502 with the session left on the code path', async () => {
    failNext = 1;
    const id = await session(makeIin('1991-11-30', 60));
    const count = received.length;
    expect((await api('POST', `/sessions/${id}/refusal`, key, { reason: 'patient_refused_photo' })).status).toBe(200);
    expect(received.length - count).toBe(2); // 500, then 202

    failNext = 10;
    const id2 = await session(makeIin('1991-11-30', 80));
    const failed = await api('POST', `/sessions/${id2}/refusal`, key, { reason: 'patient_refused_photo' });
    failNext = 0;
    expect(failed.status).toBe(502);
    expect(failed.body.error.code).toBe('sms_unavailable');
    expect(failed.body.error.message).toMatch(/HTTP 500 \(2 attempts\)/);
    const sent = received.at(-1)!.body.text;
    expect(JSON.stringify(failed.body)).not.toContain(/(\d{6})/.exec(sent)![1]);
    expect((await api('GET', `/sessions/${id2}`, key)).body.state).toBe('code_pending');
  });

  it('has no development outbox', async () => {
    const res = await api('GET', '/dev/outbox', key);
    expect([res.status, res.body.error.code]).toEqual([404, 'not_found']);
  });

  it('refuses to start with SMS_ADAPTER=http and no SMS_HTTP_URL', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'faceid-code-nourl-'));
    try {
      const config = loadConfig({
        ...process.env,
        FACEID_DATA_DIR: dir,
        DATABASE_URL: '',
        FACEID_BOOTSTRAP: 'false',
        SMS_ADAPTER: 'http',
        SMS_HTTP_URL: '',
      });
      await expect(createApp({ config, logger: new JsonLogger('fatal', () => undefined) })).rejects.toThrow(
        /SMS_HTTP_URL.*required when SMS_ADAPTER=http/,
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

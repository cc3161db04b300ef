import { randomBytes } from 'node:crypto';
import type { INestApplication } from '@nestjs/common';
import WebSocket from 'ws';
import { createApp } from '../src/app.factory';
import { createWorkstation } from '../src/auth';
import { loadConfig } from '../src/config';
import { EngineService } from '../src/engine';
import { CLINICS, WORKSTATIONS, type ClinicRepository, type WorkstationRepository } from '../src/storage/ports';
import { encodeFrameMessage, SUBPROTOCOL, TOKEN_SUBPROTOCOL_PREFIX } from '../src/transport/protocol';
import { missingFixturesReason, webcamJpeg } from './support/frames';
import { createTestDatabase, TEST_DATABASES, type TestDatabase } from './support/databases';
import { makeIin } from './support/iin';
import { faceFrames, runPatient, type FaceFrames } from './support/patient';

// End to end over real WebSockets: the real app, engine, storage and HTTP. Runs once per database:
// SQLite (embedded default) and PostgreSQL (the local server) when FACEID_TEST_PG is not "0".
const missing = missingFixturesReason();
if (missing && process.env.CI) throw new Error(missing);
if (missing) console.warn(`identification e2e skipped: ${missing}`);

for (const db of TEST_DATABASES) {
  (missing ? describe.skip : describe)(`identification over WebSocket (${db})`, () => {
    let app: INestApplication;
    let base: string;
    let database: TestDatabase | undefined;
    let keyA: string;
    let keyB: string;
    let same: FaceFrames; // the enrolled patient
    let other: FaceFrames; // somebody else
    const patientIin = makeIin('1985-04-12', 1201);

    const api = async (method: string, url: string, key: string, body?: unknown, type = 'application/json') => {
      const res = await fetch(base + url, {
        method,
        headers: { authorization: `Bearer ${key}`, 'content-type': type },
        body: body === undefined ? undefined : type === 'application/json' ? JSON.stringify(body) : (body as Buffer),
      });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : null };
    };
    let serial = 2000;
    /** A new patient of clinic A enrolled with the `same` face: failing tests use their own, so that the
     *  attempts limit of one patient never leaks into another test. */
    const enrollNew = async () => {
      const iin = makeIin('1988-07-21', serial++ * 7);
      const res = await api('POST', `/patients/${iin}/template`, keyA, await webcamJpeg(2), 'image/jpeg');
      expect(res.status).toBe(201);
      return iin;
    };
    const startSession = (key: string, iin = patientIin, channel = 'in_person') =>
      api('POST', '/sessions', key, { iin, appointmentId: `apt-${randomBytes(4).toString('hex')}`, channel });

    beforeAll(async () => {
      database = await createTestDatabase(db, 'e2e');
      const env: Record<string, string> = {
        ...database.env,
        PORT: '0',
        FACEID_BOOTSTRAP: 'false',
        BLINK_WINDOW_MS: '2500',
        SESSION_TIMEOUT_MS: '9000',
        ENGINE_WORKERS: '2',
        RATE_LIMIT_PER_MINUTE: '10000',
      };
      app = await createApp({ config: loadConfig(env) });
      await app.listen(0, '127.0.0.1');
      const addr = app.getHttpServer().address() as { port: number };
      base = `http://127.0.0.1:${addr.port}`;

      const clinics = app.get<ClinicRepository>(CLINICS);
      const stations = app.get<WorkstationRepository>(WORKSTATIONS);
      const key = async (name: string) =>
        (await createWorkstation(stations, (await clinics.create(name)).id, `${name} desk 1`)).apiKey;
      keyA = await key('Clinic A');
      keyB = await key('Clinic B');

      const engine = app.get(EngineService).get();
      same = await faceFrames(engine, 2);
      other = await faceFrames(engine, 3);
      const enrolled = await api('POST', `/patients/${patientIin}/template`, keyA, await webcamJpeg(2, { width: 640, height: 480 }), 'image/jpeg');
      expect(enrolled.status).toBe(201);
    });

    afterAll(async () => {
      await app?.close();
      await database?.drop();
    });

    it('gives match to the enrolled patient who blinks when asked', async () => {
      const s = await startSession(keyA);
      expect(s.status).toBe(201);
      expect(s.body.protocols).toEqual([SUBPROTOCOL, TOKEN_SUBPROTOCOL_PREFIX + s.body.token]);
      const run = await runPatient(s.body.wsUrl, s.body.token, same, { fps: 10 });
      expect(run.verdict).toMatchObject({ type: 'verdict', result: 'match', liveness: { blink: true } });
      expect(run.verdict!.score as number).toBeGreaterThan(0.46);
      expect(run.closeCode).toBe(1000);
      const codes = run.messages.filter((m) => m.type === 'guidance').map((m) => m.code);
      expect(codes).toContain('blink_now');
      // The time from first frame to verdict of a cooperative patient at 10 fps (README "Identification").
      console.log(`[${db}] first frame to verdict at 10 fps: ${Math.round(run.firstFrameToVerdictMs!)} ms, ` +
        `${JSON.stringify(run.verdict!.timings)}`);
      const stored = await api('GET', `/sessions/${s.body.sessionId}`, keyA);
      expect(stored.body).toMatchObject({ state: 'finished', verdict: { result: 'match', method: 'face' } });
    });

    it('gives no_match to another person', async () => {
      const s = await startSession(keyA, makeIin('1990-01-02', 77));
      // That patient has no template; enroll the first patient's IIN instead with another face below.
      expect(s.status).toBe(201);
      const noTemplate = await runPatient(s.body.wsUrl, s.body.token, other);
      expect(noTemplate.verdict).toMatchObject({ result: 'no_template' });

      const s2 = await startSession(keyA, await enrollNew());
      const run = await runPatient(s2.body.wsUrl, s2.body.token, other);
      expect(run.verdict).toMatchObject({ result: 'no_match', liveness: { blink: true } });
      expect(run.verdict!.score as number).toBeLessThan(0.46);
    });

    it('rejects a still photo that never blinks', async () => {
      const s = await startSession(keyA, await enrollNew());
      const run = await runPatient(s.body.wsUrl, s.body.token, same, { behaviour: 'still_photo' });
      expect(run.verdict).toMatchObject({ result: 'spoof_suspected', liveness: { blink: false } });
    });

    it('times out a session that sends nothing', async () => {
      const s = await startSession(keyA, await enrollNew());
      const run = await runPatient(s.body.wsUrl, s.body.token, same, { behaviour: 'silent' });
      expect(run.verdict).toMatchObject({ result: 'timeout', timings: { framesReceived: 0 } });
    });

    it('never opens the camera for remote appointments: they start on the code path', async () => {
      const s = await startSession(keyA, patientIin, 'remote');
      expect(s.status).toBe(201);
      expect(s.body).toEqual({ sessionId: expect.any(String), state: 'code_pending', codeExpiresAt: expect.any(String) });
    });

    it('refuses a reused token and an unknown one with close code 4001', async () => {
      const s = await startSession(keyA);
      await runPatient(s.body.wsUrl, s.body.token, same);
      const reused = await runPatient(s.body.wsUrl, s.body.token, same);
      expect(reused.closeCode).toBe(4001);
      expect(reused.verdict).toBeNull();
      const unknown = await runPatient(s.body.wsUrl, randomBytes(32).toString('base64url'), same);
      expect(unknown.closeCode).toBe(4001);
    });

    it('keeps clinics apart: another clinic sees no template, no session', async () => {
      const a = await startSession(keyA);
      const fromB = await api('GET', `/sessions/${a.body.sessionId}`, keyB);
      expect(fromB.status).toBe(404);
      // Clinic B's patient with the same IIN is a different record, without clinic A's template.
      const b = await startSession(keyB);
      const run = await runPatient(b.body.wsUrl, b.body.token, same);
      expect(run.verdict).toMatchObject({ result: 'no_template' });
      await runPatient(a.body.wsUrl, a.body.token, same); // let A's session finish
    });

    it('answers bad frames with typed errors and goes on to a verdict', async () => {
      const s = await startSession(keyA);
      const errors: Array<Record<string, unknown>> = [];
      const ws = new WebSocket(s.body.wsUrl, [SUBPROTOCOL, TOKEN_SUBPROTOCOL_PREFIX + s.body.token]);
      await new Promise<void>((resolve) => ws.on('message', (d, bin) => {
        const m = JSON.parse(d.toString());
        if (m.type === 'ready') resolve();
      }));
      ws.on('message', (d) => {
        const m = JSON.parse(d.toString());
        if (m.type === 'error') errors.push(m);
      });
      const send = (format: 'jpeg' | 'rgba', payload: Buffer, w = 0, h = 0) =>
        ws.send(encodeFrameMessage({ format, seq: errors.length + 100, captureTime: Date.now(), width: w, height: h }, payload));
      send('jpeg', Buffer.from([0xff, 0xd8, 0xff, 0x00, 1, 2, 3]));
      send('jpeg', Buffer.from('not a jpeg at all'));
      send('rgba', Buffer.alloc(100), 320, 240);
      await new Promise((r) => setTimeout(r, 1500));
      ws.close();
      expect(errors.map((e) => e.code).sort()).toEqual(['frame_corrupt', 'frame_corrupt', 'frame_size_mismatch']);
      // The same kind of session then completes normally.
      const s2 = await startSession(keyA);
      const run = await runPatient(s2.body.wsUrl, s2.body.token, same);
      expect(run.verdict).toMatchObject({ result: 'match' });
    });

    it('drops stale frames under a flood (latest frame wins) instead of queueing them', async () => {
      const s = await startSession(keyA);
      const run = await runPatient(s.body.wsUrl, s.body.token, same, { fps: 200 });
      const t = run.verdict!.timings as { framesReceived: number; framesAnalysed: number; framesDropped: number };
      expect(run.verdict).toMatchObject({ result: 'match' });
      expect(t.framesDropped).toBeGreaterThan(0);
      expect(t.framesAnalysed).toBeLessThan(t.framesReceived / 2);
      expect(t.framesAnalysed + t.framesDropped).toBeLessThanOrEqual(t.framesReceived);
    });

    it('locks the face path after repeated failures for a patient', async () => {
      const iin = await enrollNew();
      for (let i = 0; i < 3; i++) {
        const s = await startSession(keyA, iin);
        expect(s.status).toBe(201);
        const run = await runPatient(s.body.wsUrl, s.body.token, other);
        expect(run.verdict).toMatchObject({ result: 'no_match' });
      }
      const locked = await startSession(keyA, iin);
      expect(locked.status).toBe(429);
      expect(locked.body.error.code).toBe('attempts_exceeded');
    });
  });
}

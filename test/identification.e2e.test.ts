import { randomBytes } from 'node:crypto';
import type { INestApplication } from '@nestjs/common';
import WebSocket from 'ws';
import { createApp } from '../src/app.factory';
import { createWorkstation } from '../src/auth';
import { deskHello } from '../src/cli/desk';
import { loadConfig } from '../src/config';
import { EngineService } from '../src/engine';
import { SessionSweep } from '../src/identification';
import { IdentificationGateway } from '../src/identification/identification.gateway';
import {
  CLINICS,
  EVENTS,
  SESSIONS,
  VERDICTS,
  WORKSTATIONS,
  type ClinicRepository,
  type EventRepository,
  type SessionRepository,
  type SessionState,
  type VerdictRepository,
  type WorkstationRepository,
} from '../src/storage/ports';
import { encodeFrameMessage, SUBPROTOCOL, TOKEN_SUBPROTOCOL_PREFIX } from '../src/transport/protocol';
import { missingFixturesReason, QVGA, VGA, webcamJpeg } from './support/frames';
import { runCli } from './support/cli';
import { createTestDatabase, TEST_DATABASES, type TestDatabase } from './support/databases';
import { makeIin } from './support/iin';
import { faceFrames, runPatient, type FaceFrames, type SessionRun } from './support/patient';

// End to end over real WebSockets: the real app, engine, storage and HTTP. Runs once per database:
// SQLite (embedded default) and PostgreSQL (the local server) when FACEID_TEST_PG is not "0".
// Sessions run the server's default challenges (light, blink); one workstation runs turn, blink. The patient is a
// scene model of a fixture photo played in real time, as `faceid simulate` plays it: a live face (lit by the screen,
// turning and blinking when asked) or a still photo.
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
    let clinicAId: string;
    const storedVerdict = (sessionId: string) => app.get<VerdictRepository>(VERDICTS).forSession(clinicAId, sessionId);
    let keyTurn: string; // a desk of clinic A whose monitor faces the doctor: turn, blink
    // The faces: a scene model of a fixture photo's face passes the challenges most of the time, not always (the
    // light check refuses a few per cent of live faces: `faceid pad-eval`, BPCER); these were the surest on it
    // (support/patient.ts also lights them at the top of the model's range).
    let same: FaceFrames; // the enrolled patient (sample3.jpg, second face)
    let other: FaceFrames; // somebody else (sample6.jpg, second face)
    // The turn begins only while the face looks at the camera (|yaw| <= 12 degrees): the enrolled patient's face is
    // turned 13-15, so the turn desk's patient is another photo's frontal face (sample1.jpg, second face; cut looser,
    // where its painted blink read surest).
    let frontal: FaceFrames;
    const patientIin = makeIin('1985-04-12', 1201);
    const frontalIin = makeIin('1979-11-03', 1402);
    const reference = (size = QVGA) => webcamJpeg(2, { ...size, face: 1 });
    const frontalReference = () => webcamJpeg(0, { ...VGA, face: 1 });

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
    const enrollNew = async (photo?: Buffer) => {
      const iin = makeIin('1988-07-21', serial++ * 7);
      const res = await api('POST', `/patients/${iin}/template`, keyA, photo ?? (await reference()), 'image/jpeg');
      expect(res.status).toBe(201);
      return iin;
    };
    const startSession = (key: string, iin = patientIin, channel = 'in_person') =>
      api('POST', '/sessions', key, { iin, appointmentId: `apt-${randomBytes(4).toString('hex')}`, channel });

    let env: Record<string, string>;

    beforeAll(async () => {
      database = await createTestDatabase(db, 'e2e');
      env = {
        ...database.env,
        PORT: '0',
        FACEID_BOOTSTRAP: 'false',
        BLINK_WINDOW_MS: '2500',
        // Room for two challenges in real time (a turn and a blink take 4-6 s) on a busy machine.
        SESSION_TIMEOUT_MS: '12000',
        ENGINE_WORKERS: '2',
        RATE_LIMIT_PER_MINUTE: '10000',
      };
      app = await createApp({ config: loadConfig(env) });
      await app.listen(0, '127.0.0.1');
      const addr = app.getHttpServer().address() as { port: number };
      base = `http://127.0.0.1:${addr.port}`;

      const clinics = app.get<ClinicRepository>(CLINICS);
      const stations = app.get<WorkstationRepository>(WORKSTATIONS);
      const clinicA = await clinics.create('Clinic A');
      await clinics.setDeskEnrollment(clinicA.id, true); // its desk enrolls the patients (first enrollments)
      clinicAId = clinicA.id;
      keyA = (await createWorkstation(stations, clinicA.id, 'Clinic A desk 1')).apiKey;
      keyB = (await createWorkstation(stations, (await clinics.create('Clinic B')).id, 'Clinic B desk 1')).apiKey;
      // Set as an operator would: `faceid workstation challenges ID turn,blink`, against the same database.
      const turnDesk = await createWorkstation(stations, clinicA.id, 'Clinic A desk 2');
      keyTurn = turnDesk.apiKey;
      const cli = await runCli(['workstation', 'challenges', turnDesk.workstation.id, 'turn,blink'], database.env);
      expect({ code: cli.code, err: cli.err }).toEqual({ code: 0, err: '' });

      const engine = app.get(EngineService).get();
      same = await faceFrames(engine, 2, 1);
      other = await faceFrames(engine, 5, 1);
      frontal = await faceFrames(engine, 0, 1, 0.3);
      const enrolled = await api('POST', `/patients/${patientIin}/template`, keyA, await reference(VGA), 'image/jpeg');
      expect(enrolled.status).toBe(201);
      const enrolledFrontal = await api(
        'POST',
        `/patients/${frontalIin}/template`,
        keyA,
        await frontalReference(),
        'image/jpeg',
      );
      expect(enrolledFrontal.status).toBe(201);
    });

    afterAll(async () => {
      await app?.close();
      await database?.drop();
    });

    type Timings = { framesReceived: number; framesAnalysed: number; framesDropped: number };
    const challenges = (run: SessionRun) => run.messages.filter((m) => m.type === 'challenge').map((m) => m.kind);

    it('gives match to the enrolled patient who answers the light and blinks when asked', async () => {
      const s = await startSession(keyA);
      expect(s.status).toBe(201);
      expect(s.body.protocols).toEqual([SUBPROTOCOL, TOKEN_SUBPROTOCOL_PREFIX + s.body.token]);
      const run = await runPatient(s.body.wsUrl, s.body.token, same, { fps: 15 });
      expect(run.verdict).toMatchObject({
        type: 'verdict',
        result: 'match',
        reason: null,
        liveness: { blink: true, light: true, turn: null },
      });
      // The score is the MIS's (stored with the verdict, sent in its event), never the desk's.
      expect(run.verdict).not.toHaveProperty('score');
      expect((await storedVerdict(s.body.sessionId))!.score).toBeGreaterThan(0.46);
      expect(run.closeCode).toBe(1000);
      expect(challenges(run)).toEqual(['light']);
      const codes = run.messages.filter((m) => m.type === 'guidance').map((m) => m.code);
      expect(codes).toEqual(expect.arrayContaining(['watch_screen', 'blink_now']));
      // The time from first frame to verdict of a cooperative patient at 15 fps (README "Identification").
      console.log(
        `[${db}] first frame to verdict at 15 fps (light, blink): ${Math.round(run.firstFrameToVerdictMs!)} ms, ` +
          `${JSON.stringify(run.verdict!.timings)}`,
      );
      const stored = await api('GET', `/sessions/${s.body.sessionId}`, keyA);
      expect(stored.body).toMatchObject({ state: 'finished', verdict: { result: 'match', method: 'face' } });
    });

    it('gives no_match to another person', async () => {
      // A patient without a template gets no face session at all (no camera opens): the desk is offered the code.
      const noTemplate = await startSession(keyA, makeIin('1990-01-02', 77));
      expect(noTemplate.status).toBe(409);
      expect(noTemplate.body.error).toEqual({ code: 'no_template', message: expect.any(String), codeAvailable: true });

      const s2 = await startSession(keyA, await enrollNew());
      const run = await runPatient(s2.body.wsUrl, s2.body.token, other);
      expect(run.verdict).toMatchObject({ result: 'no_match', reason: null, liveness: { blink: true, light: true } });
      // A desk that saw this score could hill-climb on it: it gets only the result.
      expect(run.verdict).not.toHaveProperty('score');
      const stored = await api('GET', `/sessions/${s2.body.sessionId}`, keyA);
      expect(stored.body.verdict).toMatchObject({ result: 'no_match' });
      expect(stored.body.verdict).not.toHaveProperty('score');
      expect((await storedVerdict(s2.body.sessionId))!.score).toBeLessThan(0.46);
    });

    it('rejects a still photo: its face does not answer the light', async () => {
      const s = await startSession(keyA, await enrollNew());
      const run = await runPatient(s.body.wsUrl, s.body.token, same, { behaviour: 'still_photo' });
      expect(run.verdict).toMatchObject({
        result: 'spoof_suspected',
        reason: 'light_no_response',
        liveness: { blink: false, light: false, turn: null },
      });
    });

    it('times out a session that sends nothing', async () => {
      const s = await startSession(keyA, await enrollNew());
      const run = await runPatient(s.body.wsUrl, s.body.token, same, { behaviour: 'silent' });
      expect(run.verdict).toMatchObject({ result: 'timeout', timings: { framesReceived: 0 } });
    });

    it('refuses a client without hello (it cannot run the light) on its first frame: error client_unsupported', async () => {
      const s = await startSession(keyA, await enrollNew());
      const run = await runPatient(s.body.wsUrl, s.body.token, same, { hello: null });
      expect(run.verdict).toMatchObject({
        result: 'error',
        reason: 'client_unsupported',
        timings: { framesReceived: 1, framesAnalysed: 0 },
      });
      expect(run.messages).toContainEqual(expect.objectContaining({ type: 'error', code: 'client_unsupported' }));
      expect(run.closeCode).toBe(1000);
    });

    it('refuses a virtual camera named in the hello before any analysis: spoof_suspected virtual_camera', async () => {
      const s = await startSession(keyA, await enrollNew());
      const run = await runPatient(s.body.wsUrl, s.body.token, same, { hello: deskHello('OBS Virtual Camera') });
      expect(run.verdict).toMatchObject({
        result: 'spoof_suspected',
        reason: 'virtual_camera',
        timings: { framesAnalysed: 0 },
      });
      expect(run.closeCode).toBe(1000);
    });

    it('runs turn, blink on a workstation set so: a live face turns and matches', async () => {
      const s = await startSession(keyTurn, frontalIin);
      expect(s.status).toBe(201);
      const run = await runPatient(s.body.wsUrl, s.body.token, frontal);
      expect(challenges(run)).toEqual(['turn']);
      expect(run.messages).toContainEqual(
        expect.objectContaining({
          type: 'challenge',
          kind: 'turn',
          direction: expect.stringMatching(/^(left|right)$/),
        }),
      );
      expect(run.verdict).toMatchObject({
        result: 'match',
        reason: null,
        liveness: { blink: true, light: null, turn: true },
      });
      console.log(
        `[${db}] first frame to verdict at 15 fps (turn, blink): ${Math.round(run.firstFrameToVerdictMs!)} ms`,
      );
    });

    it('runs turn, blink on a workstation set so: a still photo never turns', async () => {
      const s = await startSession(keyTurn, await enrollNew(await frontalReference()));
      const run = await runPatient(s.body.wsUrl, s.body.token, frontal, { behaviour: 'still_photo' });
      expect(challenges(run)).toEqual(['turn']);
      expect(run.verdict).toMatchObject({ result: 'spoof_suspected', liveness: { turn: false, light: null } });
      expect(run.verdict!.reason).toMatch(/^turn_/);
    });

    it('never opens the camera for remote appointments: they start on the code path', async () => {
      const s = await startSession(keyA, patientIin, 'remote');
      expect(s.status).toBe(201);
      expect(s.body).toEqual({
        sessionId: expect.any(String),
        state: 'code_pending',
        codeExpiresAt: expect.any(String),
      });
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
      expect([b.status, b.body.error.code]).toEqual([409, 'no_template']);
      await runPatient(a.body.wsUrl, a.body.token, same); // let A's session finish
    });

    it('answers bad frames with typed errors and goes on to a verdict', async () => {
      const s = await startSession(keyA);
      const ws = new WebSocket(s.body.wsUrl, [SUBPROTOCOL, TOKEN_SUBPROTOCOL_PREFIX + s.body.token]);
      const errors: Array<Record<string, unknown>> = [];
      let seq = 100;
      const send = (format: 'jpeg' | 'rgba', payload: Buffer, w = 0, h = 0) =>
        ws.send(encodeFrameMessage({ format, seq: seq++, captureTime: Date.now(), width: w, height: h }, payload));
      // Resolves once the three bad frames have been answered (the session itself goes on).
      const answered = new Promise<void>((resolve) =>
        ws.on('message', (d) => {
          const m = JSON.parse(d.toString());
          if (m.type === 'ready') {
            ws.send(JSON.stringify(deskHello())); // a client that can run the challenges, else its first frame is refused
            send('jpeg', Buffer.from([0xff, 0xd8, 0xff, 0x00, 1, 2, 3]));
            send('jpeg', Buffer.from('not a jpeg at all'));
            send('rgba', Buffer.alloc(100), 320, 240);
          }
          if (m.type === 'error') errors.push(m);
          if (errors.length === 3) resolve();
        }),
      );
      await answered;
      ws.close();
      expect(errors.map((e) => e.code).sort()).toEqual(['frame_corrupt', 'frame_corrupt', 'frame_size_mismatch']);
      // The same kind of session then runs to a face verdict: the service took no harm. (Whether this live face is
      // accepted is the light check's own question, asked elsewhere: it was refused in 2 of about 16 runs of this
      // real-time session on a loaded machine, while the same sessions on the virtual clock all matched; reason not
      // caught. So a liveness refusal with its reason is accepted here too.)
      const s2 = await startSession(keyA);
      const run = await runPatient(s2.body.wsUrl, s2.body.token, same);
      const verdict = run.verdict as { result: string; reason: string | null } | null;
      expect(verdict).not.toBeNull();
      if (verdict!.result !== 'match')
        expect(verdict).toMatchObject({ result: 'spoof_suspected', reason: expect.any(String) });
    });

    // Latest frame wins (a newer frame replaces the one waiting; nothing queues) is proven deterministically in
    // src/identification/session-runner.spec.ts. Over a real socket how many frames a flood drops depends on this
    // machine's speed, so here only what does not is checked: the counters add up and a verdict arrives. 30 fps is
    // twice fps.max: the surplus is dropped unread; 4x and more is a flood that ends the session (4021), tested in
    // test/hostile-load.e2e.test.ts.
    it('takes a flood of frames without queueing them: the counters add up and a verdict arrives', async () => {
      const s = await startSession(keyA, await enrollNew());
      const run = await runPatient(s.body.wsUrl, s.body.token, same, { fps: 30 });
      expect(run.verdict).toMatchObject({ type: 'verdict', result: expect.any(String) });
      const t = run.verdict!.timings as Timings;
      expect(t.framesReceived).toBeGreaterThan(0);
      expect(t.framesReceived).toBeLessThanOrEqual(run.framesSent);
      expect(t.framesAnalysed + t.framesDropped).toBeLessThanOrEqual(t.framesReceived);
    });

    /** A face WebSocket of the session, open once `ready` came (and the hello went out). */
    const openFace = async (session: { wsUrl: string; token: string }) => {
      const ws = new WebSocket(session.wsUrl, [SUBPROTOCOL, TOKEN_SUBPROTOCOL_PREFIX + session.token]);
      const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
      await new Promise<void>((resolve, reject) => {
        ws.on('error', reject);
        ws.on('message', (d) => {
          if (JSON.parse(d.toString()).type !== 'ready') return;
          ws.send(JSON.stringify(deskHello()));
          resolve();
        });
      });
      return { ws, closed };
    };
    /** Resolves once the session is in `state`: checked now and after every commit of clinic A's events (the hook
     *  storage calls), failing after 20 s. */
    const untilState = (sessionId: string, state: SessionState) =>
      new Promise<void>((resolve, reject) => {
        const sessions = app.get<SessionRepository>(SESSIONS);
        let done = false;
        const check = () =>
          void sessions.get(clinicAId, sessionId).then((s) => {
            if (done || s?.state !== state) return;
            done = true;
            off();
            clearTimeout(guard);
            resolve();
          }, reject);
        const off = app.get<EventRepository>(EVENTS).onCommitted((clinicId) => clinicId === clinicAId && check());
        const guard = setTimeout(() => {
          off();
          reject(new Error(`session ${sessionId} did not become ${state}`));
        }, 20_000);
        check();
      });

    it('ends a session whose connection drops (or is cancelled) before its verdict at once: expired, with its event', async () => {
      for (const how of ['dropped', 'cancelled'] as const) {
        const s = await startSession(keyA, await enrollNew());
        const since = await app.get<EventRepository>(EVENTS).latestSeq(clinicAId);
        const { ws, closed } = await openFace(s.body);
        expect((await api('GET', `/sessions/${s.body.sessionId}`, keyA)).body.state).toBe('connected');
        if (how === 'dropped')
          ws.terminate(); // no close frame: the server sees 1006
        else ws.send(JSON.stringify({ type: 'cancel' }));
        expect(await closed).toBe(how === 'dropped' ? 1006 : 1000);
        await untilState(s.body.sessionId, 'expired');
        const stored = await api('GET', `/sessions/${s.body.sessionId}`, keyA);
        expect(stored.body).toMatchObject({ state: 'expired', verdict: { result: 'expired', method: 'none' } });
        const events = await app.get<EventRepository>(EVENTS).after(clinicAId, since, 100);
        expect(
          events
            .filter((e) => 'sessionId' in e.payload && e.payload.sessionId === s.body.sessionId)
            .map((e) => e.payload),
        ).toEqual([expect.objectContaining({ type: 'identification.expired', result: 'expired', method: 'none' })]);
      }
    });

    it('does not expire a session whose face connection closed because the patient refused the photo', async () => {
      const s = await startSession(keyA, await enrollNew());
      const gateway = app.get(IdentificationGateway);
      const expire = jest.spyOn(app.get(SessionSweep), 'expire');
      // The hook: the gateway's onClose has run for this connection (it decides there, synchronously).
      const onClose = jest.spyOn(gateway, 'onClose');
      const handled = new Promise<void>((resolve) =>
        onClose.mockImplementation((conn, code) => {
          IdentificationGateway.prototype.onClose.call(gateway, conn, code);
          resolve();
        }),
      );
      try {
        const { closed } = await openFace(s.body);
        const refused = await api('POST', `/sessions/${s.body.sessionId}/refusal`, keyA, {
          reason: 'patient_refused_photo',
        });
        expect(refused.status).toBe(200);
        expect(await closed).toBe(4010);
        await handled;
        expect(expire.mock.calls.filter(([session]) => session.id === s.body.sessionId)).toEqual([]);
        expect((await api('GET', `/sessions/${s.body.sessionId}`, keyA)).body.state).toBe('code_pending');
      } finally {
        onClose.mockRestore();
        expire.mockRestore();
      }
    });

    it('leaves a session cut off by a server shutdown to the sweep: still connected once the server has stopped', async () => {
      const iin = await enrollNew();
      // A second gateway process on the same database, stopped while the session runs.
      const other = await createApp({ config: loadConfig({ ...env, ENGINE_WORKERS: '1' }) });
      await other.listen(0, '127.0.0.1');
      const otherBase = `http://127.0.0.1:${(other.getHttpServer().address() as { port: number }).port}`;
      const res = await fetch(`${otherBase}/sessions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${keyA}`, 'content-type': 'application/json' },
        body: JSON.stringify({ iin, appointmentId: 'apt-shutdown', channel: 'in_person' }),
      });
      const s = (await res.json()) as { sessionId: string; wsUrl: string; token: string };
      expect(res.status).toBe(201);
      const { closed } = await openFace(s);
      // close() returns once every connection has closed and every shutdown hook (expiries included) has run.
      await other.close();
      expect(await closed).toBe(1001);
      expect((await api('GET', `/sessions/${s.sessionId}`, keyA)).body).toMatchObject({
        state: 'connected',
        verdict: null,
      });
    });

    it('locks the face path after repeated failures for a patient', async () => {
      const iin = await enrollNew();
      const outcomes: string[] = [];
      for (let i = 0; i < 3; i++) {
        const s = await startSession(keyA, iin);
        expect(s.status).toBe(201);
        const run = await runPatient(s.body.wsUrl, s.body.token, other);
        outcomes.push(`${run.verdict?.result}${run.verdict?.reason ? ` (${run.verdict.reason})` : ''}`);
        // Another person: no_match, or now and then spoof_suspected when a challenge misses the live face. Both
        // count towards the limit; which one is not what this test is about.
        expect(['no_match', 'spoof_suspected']).toContain(run.verdict?.result);
      }
      console.log(`[${db}] another person's three attempts: ${outcomes.join(', ')}`);
      const locked = await startSession(keyA, iin);
      expect(locked.status).toBe(429);
      expect(locked.body.error).toMatchObject({ code: 'attempts_exceeded', codeAvailable: true });
      // No dead end: the patient is still at the desk, identified by the six-digit code in person.
      const byCode = await api('POST', '/sessions', keyA, {
        iin,
        appointmentId: `apt-${randomBytes(4).toString('hex')}`,
        channel: 'in_person',
        method: 'code',
        reason: 'face_failed',
      });
      expect([byCode.status, byCode.body.state]).toEqual([201, 'code_pending']);
      const outbox = await api('GET', '/dev/outbox', keyA);
      const sms = outbox.body.messages.find((m: { sessionId: string }) => m.sessionId === byCode.body.sessionId);
      const code = /(?<!\d)(\d{6})(?!\d)/.exec(sms.text)![1]; // the six digits (the texts are src/sms's)
      const ok = await api('POST', `/sessions/${byCode.body.sessionId}/code`, keyA, { code });
      expect(ok.body.verdict).toMatchObject({ result: 'match', method: 'code' });
      expect((await api('GET', `/sessions/${byCode.body.sessionId}`, keyA)).body).toMatchObject({
        channel: 'in_person',
        refusalReason: 'face_failed',
        verdict: { result: 'match', method: 'code' },
      });
    });
  });
}

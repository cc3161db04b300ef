import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import { loadConfig } from '../src/config';
import { EMBEDDING_LENGTH, TemplateCipher } from '../src/enrollment';
import { openStorage, type Storage } from '../src/storage';
import { notifyInTx, openDb, type Db } from '../src/storage/db';
import { EVENTS_CHANNEL, type EventsNotice, type SessionNotice } from '../src/storage/signals';
import { createTestDatabase, TEST_DATABASES, type TestDatabase } from './support/databases';
import { makeIin } from './support/iin';
import { until } from './support/waits';

// The signals between gateway processes on PostgreSQL (src/storage/signals.ts), on a real server: two Storage
// objects stand for two gateways (each its own origin). Notifications are sent on commit only, a process ignores its
// own, and the listening connection comes back after the server cut it, telling its readers to look again.

const KEY = `k1:${randomBytes(32).toString('base64')}`;

(TEST_DATABASES.includes('postgres') ? describe : describe.skip)('signals between gateways on PostgreSQL', () => {
  let database: TestDatabase;
  let writer: Storage; // "gateway A"
  let listener: Storage; // "gateway B"
  let rawDb: Db;
  const events: EventsNotice[] = [];
  const sessions: SessionNotice[] = [];
  let resyncs = 0;
  let clinicId: string;
  let serial = 10;

  /** A template event written by `storage` (its transaction sends faceid_events on commit). */
  async function enroll(storage: Storage): Promise<number> {
    const patient = await storage.repos.patients.upsert(clinicId, makeIin('1985-11-02', (serial += 3)));
    const cipher = new TemplateCipher(loadConfig({ TEMPLATE_KEYS: KEY }).TEMPLATE_KEYS!);
    const embedding = Float32Array.from({ length: EMBEDDING_LENGTH }, () => Math.random() - 0.5);
    const { event } = await storage.repos.templates.replace(
      clinicId,
      patient.id,
      cipher.encrypt(embedding, { clinicId, patientId: patient.id }),
      { actor: { kind: 'admin', id: null }, images: 1, confirmation: null },
    );
    return event.seq;
  }

  beforeAll(async () => {
    database = await createTestDatabase('postgres', 'signals');
    const env = { ...database.env, TEMPLATE_KEYS: KEY };
    writer = await openStorage(loadConfig(env));
    listener = await openStorage(loadConfig(env), { signals: { baseDelayMs: 50, maxDelayMs: 200 } });
    rawDb = await openDb({ provider: 'postgres', url: database.env.DATABASE_URL });
    clinicId = (await writer.repos.clinics.create('Signals clinic')).id;
    listener.signals.onEvents((n) => events.push(n));
    listener.signals.onSessionChanged((n) => sessions.push(n));
    listener.signals.onResync(() => resyncs++);
    expect(listener.signals.state).toBe('connecting');
    listener.signals.start();
    await until('the listener to listen', () => listener.signals.state === 'listening' && resyncs === 1);
  });

  afterAll(async () => {
    await rawDb?.close();
    await writer?.close();
    await listener?.close();
    await database?.drop();
  });

  it('tells the other process of a committed event: clinic, seq and type', async () => {
    const seq = await enroll(writer);
    await until('the notice', () => events.some((e) => e.seq === seq));
    expect(events.filter((e) => e.seq === seq)).toEqual([{ clinicId, seq, type: 'template.enrolled' }]);
  });

  it('sends nothing for a transaction that rolls back', async () => {
    const before = events.length;
    await expect(
      rawDb.tx(async (tx) => {
        await notifyInTx(tx, EVENTS_CHANNEL, { c: clinicId, s: 90_001, t: 'template.enrolled' });
        throw new Error('rolled back');
      }),
    ).rejects.toThrow('rolled back');
    await rawDb.tx((tx) => notifyInTx(tx, EVENTS_CHANNEL, { c: clinicId, s: 90_002, t: 'template.enrolled' }));
    // Notifications arrive in commit order on one connection: the committed one is the first after `before`.
    await until('the committed notice', () => events.some((e) => e.seq === 90_002));
    expect(events.slice(before).map((e) => e.seq)).toEqual([90_002]);
  });

  it('hears its own commits once, in process, and drops their notifications', async () => {
    const before = events.length;
    const own = await enroll(listener);
    const theirs = await enroll(writer);
    await until("the other process's notice", () => events.some((e) => e.seq === theirs));
    // Its own: the in-process signal (no seq), never the notification (which would carry seq `own`).
    expect(events.slice(before)).toEqual([
      { clinicId, seq: null, type: null },
      { clinicId, seq: theirs, type: 'template.enrolled' },
    ]);
    expect(events.some((e) => e.seq === own)).toBe(false);
  });

  it('tells the other process when a session is admitted and when it goes on to the code path', async () => {
    const workstation = await writer.repos.workstations.create(clinicId, 'Desk', randomBytes(32).toString('hex'));
    const patient = await writer.repos.patients.upsert(clinicId, makeIin('1985-11-02', (serial += 3)));
    const tokenHash = randomBytes(32).toString('hex');
    const session = await writer.repos.sessions.create({
      clinicId,
      workstationId: workstation.id,
      patientId: patient.id,
      appointmentId: 'apt-1',
      channel: 'in_person',
      tokenHash,
      tokenExpiresAt: new Date(Date.now() + 60_000),
    });
    await writer.repos.sessions.consumeToken(tokenHash, new Date());
    await writer.repos.sessions.beginCodePath({
      clinicId,
      sessionId: session.id,
      codeHash: randomBytes(32).toString('hex'),
      codeExpiresAt: new Date(Date.now() + 300_000),
      refusal: { reason: 'patient_refused_photo' },
    });
    await until('the session notice', () =>
      sessions.some((s) => s.sessionId === session.id && s.state === 'code_pending'),
    );
    // Its admission too (the token used: the gateway that issued it may be another one), in commit order.
    expect(sessions.filter((s) => s.sessionId === session.id)).toEqual([
      { sessionId: session.id, state: 'connected' },
      { sessionId: session.id, state: 'code_pending' },
    ]);
  });

  it('listens again after the server cut its connection, and asks its readers to look', async () => {
    const admin = new Client({ connectionString: database.env.DATABASE_URL });
    await admin.connect();
    try {
      const cut = await admin.query(
        `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
          WHERE application_name = 'faceid-gateway listener' AND datname = current_database()`,
      );
      expect(cut.rowCount).toBe(1);
    } finally {
      await admin.end();
    }
    await until('the listener to come back', () => resyncs === 2 && listener.signals.state === 'listening');
    const seq = await enroll(writer);
    await until('a notice after the reconnection', () => events.some((e) => e.seq === seq));
  });
});

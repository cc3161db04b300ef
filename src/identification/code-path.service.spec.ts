import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { randomUUID } from 'node:crypto';
import { AuditService } from '../audit';
import { CONFIG, loadConfig, type Config } from '../config';
import { KeyRing } from '../keyring';
import { MetricsService } from '../metrics';
import { SMS_GATEWAY, SmsError, smsText, type SmsGateway, type SmsMessage } from '../sms';
import {
  CLINICS,
  CODES,
  PATIENTS,
  SESSIONS,
  UNIT_OF_WORK,
  VERDICTS,
  type AuditEntry,
  type AuditRepository,
  type Channel,
  type Clinic,
  type ClinicRepository,
  type CodeRepository,
  type IdentificationSession,
  type OneTimeCode,
  type Patient,
  type PatientRepository,
  type SessionRepository,
  type SmsLanguages,
  type UnitOfWork,
  type Verdict,
  type VerdictRepository,
  type Work,
} from '../storage/ports';
import { CodeHasher } from './code-hash';
import {
  CODE_PATH_CLOCK,
  CODE_PATH_CODES,
  CodePathService,
  IN_PERSON_CODE_REASONS,
  type CodePrincipal,
} from './code-path.service';
import { IdentificationError } from './errors';
import { IdentificationGateway } from './identification.gateway';
import { finalState, finishableStates } from './session-state';

// The face gateway (engine, transports) is not under test: the code path only asks it to stop a face session.
jest.mock('./identification.gateway', () => ({ IdentificationGateway: class IdentificationGateway {} }));

const T0 = Date.UTC(2026, 0, 15, 9, 0, 0);
const TTL_S = 300;
const ATTEMPTS = 3;
const WINDOW_MIN = 60;

/** The settings under test: small limits, so each runs out in a few calls. */
function config(env: Record<string, string> = {}): Config {
  return loadConfig({
    CODE_TTL_S: String(TTL_S),
    CODE_ATTEMPTS_MAX: String(ATTEMPTS),
    CODE_RESENDS_MAX: '2',
    CODE_PATIENT_FAILURES_MAX: '5',
    CODE_WORKSTATION_FAILURES_MAX: '8',
    CODE_FAILURES_WINDOW_MIN: String(WINDOW_MIN),
    ...env,
  });
}

/**
 * Sessions, codes, verdicts, patients, clinics and the audit trail in memory, with the conditional updates of the
 * Prisma repositories (src/storage/repositories/codes.ts, sessions.ts, the rules of session-state.ts) and the test's
 * clock. A unit of work undoes its own writes when it throws, as a rolled back transaction would. `before` hooks let
 * a test change the store between the service's read and its write, as a concurrent request or the sweep would (such
 * a change is another transaction's: a unit that rolls back keeps it).
 */
class FakeStore {
  readonly clinics = new Map<string, Clinic>();
  readonly patients = new Map<string, Patient>();
  readonly sessionRows = new Map<string, IdentificationSession>();
  readonly codeRows = new Map<string, OneTimeCode>();
  readonly verdictRows: Array<{ verdict: Verdict; options: unknown }> = [];
  readonly audit: AuditEntry[] = [];
  /** Units of work that threw (and were undone). */
  rolledBack = 0;
  /** The `identification.refused` events beginCodePath writes. */
  readonly refusals: Array<{ sessionId: string; reason: string }> = [];
  readonly before: {
    beginCodePath?: (sessionId: string) => void;
    markUsed?: (id: string) => void;
    replace?: (id: string) => void;
    finish?: (sessionId: string) => void;
  } = {};

  constructor(private readonly now: () => number) {}

  clinic(name: string, smsLanguages: SmsLanguages = 'kk+ru'): Clinic {
    const clinic: Clinic = { id: randomUUID(), name, createdAt: new Date(this.now()), smsLanguages };
    this.clinics.set(clinic.id, clinic);
    return clinic;
  }

  patient(clinicId: string, iin: string): Patient {
    const patient: Patient = { id: randomUUID(), clinicId, iin, createdAt: new Date(this.now()) };
    this.patients.set(patient.id, patient);
    return patient;
  }

  /** A face session as POST /sessions leaves it (`created`), or after its WebSocket connected. */
  faceSession(
    principal: CodePrincipal,
    patient: Patient,
    state: 'created' | 'connected' = 'created',
  ): IdentificationSession {
    const session: IdentificationSession = {
      id: randomUUID(),
      clinicId: principal.clinicId,
      workstationId: principal.workstationId,
      patientId: patient.id,
      appointmentId: 'A-1',
      channel: 'in_person',
      state,
      tokenExpiresAt: new Date(this.now() + 60_000),
      tokenUsedAt: state === 'connected' ? new Date(this.now()) : null,
      createdAt: new Date(this.now()),
      finishedAt: null,
      refusalReason: null,
    };
    this.sessionRows.set(session.id, session);
    return session;
  }

  codeOf(sessionId: string): OneTimeCode {
    const code = [...this.codeRows.values()].find((c) => c.sessionId === sessionId);
    if (!code) throw new Error(`no code for session ${sessionId}`);
    return code;
  }

  verdictOf(sessionId: string): Verdict | undefined {
    return this.verdictRows.find((v) => v.verdict.sessionId === sessionId)?.verdict;
  }

  readonly sessions: Pick<SessionRepository, 'create' | 'get' | 'beginCodePath'> = {
    create: async (input) => {
      const session: IdentificationSession = {
        id: randomUUID(),
        clinicId: input.clinicId,
        workstationId: input.workstationId,
        patientId: input.patientId,
        appointmentId: input.appointmentId,
        channel: input.channel,
        state: 'created',
        tokenExpiresAt: input.tokenExpiresAt,
        tokenUsedAt: null,
        createdAt: new Date(this.now()),
        finishedAt: null,
        refusalReason: null,
      };
      this.sessionRows.set(session.id, session);
      return { ...session };
    },
    get: async (clinicId, id) => {
      const s = this.sessionRows.get(id);
      return s && s.clinicId === clinicId ? { ...s } : null;
    },
    beginCodePath: async (input) => {
      this.before.beginCodePath?.(input.sessionId);
      const s = this.sessionRows.get(input.sessionId);
      if (!s || s.clinicId !== input.clinicId || (s.state !== 'created' && s.state !== 'connected')) return null;
      const now = new Date(this.now());
      s.state = 'code_pending';
      s.tokenExpiresAt = now;
      if (input.refusal) {
        s.refusalReason = input.refusal.reason;
        this.refusals.push({ sessionId: s.id, reason: input.refusal.reason });
      }
      const code: OneTimeCode = {
        id: randomUUID(),
        clinicId: s.clinicId,
        sessionId: s.id,
        patientId: s.patientId,
        workstationId: s.workstationId,
        codeHash: input.codeHash,
        expiresAt: input.codeExpiresAt,
        attempts: 0,
        sends: 1,
        usedAt: null,
        createdAt: now,
      };
      this.codeRows.set(code.id, code);
      return { ...s };
    },
  };

  readonly codes: CodeRepository = {
    forSession: async (clinicId, sessionId) => {
      const c = [...this.codeRows.values()].find((x) => x.sessionId === sessionId && x.clinicId === clinicId);
      return c ? { ...c } : null;
    },
    recordFailure: async (id, maxAttempts, now) => {
      const c = this.codeRows.get(id);
      if (!c || c.usedAt || c.expiresAt.getTime() <= now.getTime() || c.attempts >= maxAttempts) return null;
      c.attempts += 1;
      return c.attempts;
    },
    replace: async (id, input) => {
      this.before.replace?.(id);
      const c = this.codeRows.get(id);
      if (!c || c.usedAt || c.attempts >= input.maxAttempts || c.sends >= input.maxSends) return null;
      c.codeHash = input.codeHash;
      c.expiresAt = input.expiresAt;
      c.sends += 1;
      return { ...c };
    },
    failedAttempts: async (clinicId, by, since) =>
      [...this.codeRows.values()]
        .filter((c) => c.clinicId === clinicId && c.createdAt.getTime() >= since.getTime())
        .filter((c) => ('patientId' in by ? c.patientId === by.patientId : c.workstationId === by.workstationId))
        .reduce((sum, c) => sum + c.attempts, 0),
  };

  appendAudit(e: Parameters<AuditRepository['append']>[0]): AuditEntry {
    const entry: AuditEntry = {
      ...e,
      seq: this.audit.length + 1,
      at: new Date(this.now()),
      prevHash: '',
      hash: '',
      keyId: null,
    };
    this.audit.push(entry);
    return entry;
  }

  readonly verdicts: Pick<VerdictRepository, 'finish'> = {
    finish: async (input, options) => {
      this.before.finish?.(input.sessionId);
      const s = this.sessionRows.get(input.sessionId);
      if (!s || s.clinicId !== input.clinicId) throw new Error('reference_not_found');
      if (!finishableStates(input.method, options?.from).includes(s.state)) return null;
      s.state = finalState(input.result);
      s.finishedAt = new Date(this.now());
      const verdict: Verdict = { ...input, id: randomUUID(), createdAt: new Date(this.now()) };
      this.verdictRows.push({ verdict, options });
      if (options?.audit) this.appendAudit(options.audit);
      return { ...verdict };
    },
  };

  /** Marks a code used (Work.codes.markUsed, the only way). */
  private async markUsed(id: string, maxAttempts: number, now: Date): Promise<boolean> {
    this.before.markUsed?.(id);
    const c = this.codeRows.get(id);
    if (!c || c.usedAt || c.expiresAt.getTime() <= now.getTime() || c.attempts >= maxAttempts) return false;
    c.usedAt = now;
    return true;
  }

  /** One transaction: what the unit wrote is undone when it throws. */
  readonly work: UnitOfWork = {
    run: async <T>(fn: (work: Work) => Promise<T>): Promise<T> => {
      const undo: Array<() => void> = [];
      const work: Work = {
        codes: {
          markUsed: async (id, maxAttempts, now) => {
            const won = await this.markUsed(id, maxAttempts, now);
            if (won) undo.push(() => (this.codeRows.get(id)!.usedAt = null));
            return won;
          },
        },
        verdicts: {
          finish: async (input, options) => {
            const s = this.sessionRows.get(input.sessionId);
            const before = s && { state: s.state, finishedAt: s.finishedAt };
            const audits = this.audit.length;
            const verdict = await this.verdicts.finish(input, options);
            if (verdict) {
              undo.push(() => {
                Object.assign(s!, before);
                this.verdictRows.splice(
                  this.verdictRows.findIndex((v) => v.verdict.id === verdict.id),
                  1,
                );
                this.audit.splice(audits);
              });
            }
            return verdict;
          },
        },
      };
      try {
        return await fn(work);
      } catch (err) {
        for (const u of undo.reverse()) u();
        this.rolledBack++;
        throw err;
      }
    },
  };

  readonly patientRepo: Pick<PatientRepository, 'get'> = {
    get: async (clinicId, id) => {
      const p = this.patients.get(id);
      return p && p.clinicId === clinicId ? { ...p } : null;
    },
  };

  readonly clinicRepo: Pick<ClinicRepository, 'get'> = {
    get: async (id) => this.clinics.get(id) ?? null,
  };
}

/** Takes every message, or fails the way the test says. */
class FakeSms implements SmsGateway {
  readonly sent: SmsMessage[] = [];
  failWith: Error | null = null;
  async send(message: SmsMessage): Promise<void> {
    if (this.failWith) throw this.failWith;
    this.sent.push(message);
  }
  last(): SmsMessage {
    const m = this.sent.at(-1);
    if (!m) throw new Error('no SMS sent');
    return m;
  }
}

interface Harness {
  service: CodePathService;
  store: FakeStore;
  sms: FakeSms;
  clock: { t: number };
  /** The codes the service will hand out next (the test's random source); each test pushes what it needs. */
  nextCodes: string[];
  /** Every code handed out so far. */
  issued: string[];
  audit: AuditEntry[];
  verdictMetrics: Array<[string, string]>;
  aborted: string[];
  clinic: Clinic;
  desk: CodePrincipal;
  otherDesk: CodePrincipal;
  patient: Patient;
  /** Every value a test thrown or returned, to check that no code leaks into them. */
  seen: unknown[];
}

function harness(env: Record<string, string> = {}, languages: SmsLanguages = 'kk+ru'): Harness {
  const clock = { t: T0 };
  const store = new FakeStore(() => clock.t);
  const sms = new FakeSms();
  const nextCodes: string[] = [];
  const issued: string[] = [];
  let counter = 0;
  const codeSource = () => {
    // A fresh six-digit code each time unless the test queued one.
    const code = nextCodes.shift() ?? String(100_000 + 7919 * ++counter).slice(-6);
    issued.push(code);
    return code;
  };
  const audit = store.audit;
  const auditRepo: AuditRepository = {
    append: async (e) => store.appendAudit(e),
    list: async () => audit,
  };
  const verdictMetrics: Array<[string, string]> = [];
  const metrics = { verdict: (result: string, method: string) => verdictMetrics.push([result, method]) };
  const aborted: string[] = [];
  const gateway = {
    abortSession: (id: string) => {
      aborted.push(id);
      return store.sessionRows.get(id)?.tokenUsedAt != null; // a connected face session was running
    },
  };
  const clinic = store.clinic('Емхана №5', languages);
  const patient = store.patient(clinic.id, '900101300123');
  const service = new CodePathService(
    config(env),
    store.sessions as SessionRepository,
    store.patientRepo as PatientRepository,
    store.clinicRepo as ClinicRepository,
    store.codes,
    store.verdicts as VerdictRepository,
    store.work,
    sms,
    new CodeHasher(new KeyRing([{ id: 'k1', key: Buffer.alloc(32, 7) }])),
    gateway as unknown as IdentificationGateway,
    new AuditService(auditRepo),
    metrics as unknown as MetricsService,
    () => clock.t,
    codeSource,
  );
  return {
    service,
    store,
    sms,
    clock,
    nextCodes,
    issued,
    audit,
    verdictMetrics,
    aborted,
    clinic,
    desk: { clinicId: clinic.id, workstationId: 'ws-1' },
    otherDesk: { clinicId: clinic.id, workstationId: 'ws-2' },
    patient,
    seen: [],
  };
}

/** The typed error a call rejects with (and remembers it for the leak check). */
async function failure(h: Harness, call: Promise<unknown>): Promise<IdentificationError | SmsError> {
  const err = await call.then(
    () => {
      throw new Error('expected the call to fail');
    },
    (e: unknown) => e,
  );
  if (!(err instanceof IdentificationError) && !(err instanceof SmsError)) throw err;
  h.seen.push({ code: err.code, message: err.message, details: (err as { details?: unknown }).details });
  return err;
}

async function refused(h: Harness, reason = 'patient_refused_photo', state: 'created' | 'connected' = 'created') {
  const session = h.store.faceSession(h.desk, h.patient, state);
  const sent = await h.service.refuse(h.desk, session.id, reason);
  h.seen.push(sent);
  return { session, sent, code: h.issued.at(-1)! };
}

const actions = (h: Harness) => h.audit.map((e) => e.action);
const wrong = (code: string) => String((Number(code) + 1) % 1_000_000).padStart(6, '0');

/** No code handed out may appear in storage (other than as a keyed hash), the audit trail, errors or answers. */
function expectNoCodeLeaked(h: Harness): void {
  const stored = JSON.stringify({
    sessions: [...h.store.sessionRows.values()],
    codes: [...h.store.codeRows.values()],
    verdicts: h.store.verdictRows,
    refusals: h.store.refusals,
    audit: h.audit,
    seen: h.seen,
  });
  for (const code of h.issued) expect(stored).not.toContain(code);
}

describe('CodePathService', () => {
  describe('refuse: the patient refuses the photo', () => {
    it('moves the session to the code path and sends a code that expires CODE_TTL_S later by the clock', async () => {
      const h = harness();
      h.nextCodes.push('042137');
      const { session, sent } = await refused(h);

      expect(sent).toEqual({
        sessionId: session.id,
        state: 'code_pending',
        codeExpiresAt: new Date(T0 + TTL_S * 1000),
      });
      expect(h.store.sessionRows.get(session.id)).toMatchObject({
        state: 'code_pending',
        refusalReason: 'patient_refused_photo',
      });
      // One SMS, to the patient's IIN, with the session as the gateway's duplicate key, carrying the code.
      expect(h.sms.sent).toHaveLength(1);
      expect(h.sms.last()).toMatchObject({ iin: '900101300123', reference: session.id });
      expect(h.sms.last().text).toContain('042137');
      // Stored only as a keyed hash bound to the session.
      const code = h.store.codeOf(session.id);
      expect(code).toMatchObject({ attempts: 0, sends: 1, usedAt: null, expiresAt: new Date(T0 + TTL_S * 1000) });
      expect(code.codeHash).toMatch(/^k1:[0-9a-f]{64}$/);
      expect(h.aborted).toEqual([session.id]);
      expect(actions(h)).toEqual(['session.refused', 'code.sent']);
      expect(h.audit[0]).toMatchObject({
        actor: 'workstation:ws-1',
        subject: session.id,
        detail: { reason: 'patient_refused_photo', faceSessionAborted: false },
      });
      expect(h.audit[1]).toMatchObject({ actor: 'system', detail: { adapter: 'dev', ttlSeconds: TTL_S } });
      expectNoCodeLeaked(h);
    });

    it('stops a connected face session and says so in the audit trail', async () => {
      const h = harness();
      const { session } = await refused(h, 'patient_refused_photo', 'connected');
      expect(h.aborted).toEqual([session.id]);
      expect(h.audit[0].detail).toEqual({ reason: 'patient_refused_photo', faceSessionAborted: true });
    });

    it.each(IN_PERSON_CODE_REASONS)(
      'records the reason %s as the refusal, in storage and the audit trail',
      async (reason) => {
        const h = harness();
        const { session } = await refused(h, reason);
        expect(h.store.refusals).toEqual([{ sessionId: session.id, reason }]);
        expect(h.store.sessionRows.get(session.id)!.refusalReason).toBe(reason);
        expect(h.audit.find((e) => e.action === 'session.refused')!.detail).toMatchObject({ reason });
      },
    );

    it("refuses a session already on the code path, a finished one and another clinic's, sending nothing", async () => {
      const h = harness();
      const { session } = await refused(h);
      expect((await failure(h, h.service.refuse(h.desk, session.id, 'patient_refused_photo'))).code).toBe(
        'code_already_sent',
      );

      const finished = h.store.faceSession(h.desk, h.patient);
      h.store.sessionRows.get(finished.id)!.state = 'finished';
      expect((await failure(h, h.service.refuse(h.desk, finished.id, 'patient_refused_photo'))).code).toBe(
        'session_finished',
      );

      const other = h.store.clinic('Другая');
      const fresh = h.store.faceSession(h.desk, h.patient);
      const foreign = { clinicId: other.id, workstationId: 'ws-9' };
      expect((await failure(h, h.service.refuse(foreign, fresh.id, 'patient_refused_photo'))).code).toBe(
        'session_not_found',
      );
      expect((await failure(h, h.service.refuse(h.desk, randomUUID(), 'patient_refused_photo'))).code).toBe(
        'session_not_found',
      );

      expect(h.sms.sent).toHaveLength(1);
      expect(h.store.sessionRows.get(fresh.id)!.state).toBe('created');
    });

    it('answers for the state the session is in when a face verdict wins the race, and sends nothing', async () => {
      const h = harness();
      const session = h.store.faceSession(h.desk, h.patient, 'connected');
      h.store.before.beginCodePath = (id) => (h.store.sessionRows.get(id)!.state = 'finished');
      expect((await failure(h, h.service.refuse(h.desk, session.id, 'patient_refused_photo'))).code).toBe(
        'session_finished',
      );
      expect(h.sms.sent).toHaveLength(0);
      expect(h.aborted).toHaveLength(0);
    });

    it('a failed SMS is a typed error naming the session and its expiry (not the code), and the session waits on the code path', async () => {
      const h = harness();
      h.sms.failWith = new SmsError('The SMS gateway answered 503.', 'server_error');
      const session = h.store.faceSession(h.desk, h.patient);
      const err = await failure(h, h.service.refuse(h.desk, session.id, 'patient_refused_photo'));
      expect(err).toBeInstanceOf(SmsError);
      expect(err.code).toBe('sms_unavailable');
      expect(err.message).toContain('The SMS gateway answered 503.');
      expect(err.message).toContain(session.id);
      expect(err.message).toContain(new Date(T0 + TTL_S * 1000).toISOString());
      expect(err.message).not.toContain(h.patient.iin);
      expect(h.store.sessionRows.get(session.id)!.state).toBe('code_pending');
      expect(actions(h)).toEqual(['session.refused', 'code.send_failed']);
      expect(h.audit[1].detail).toEqual({ adapter: 'dev', reason: 'The SMS gateway answered 503.' });

      // Anything else the adapter throws is reported without its message.
      h.sms.failWith = new Error('socket hang up at 10.0.0.7');
      const second = h.store.faceSession(h.desk, h.patient);
      const other = await failure(h, h.service.refuse(h.desk, second.id, 'patient_refused_photo'));
      expect(other.message).toMatch(/^The SMS gateway failed\. No code reached the patient/);
      expect(h.audit.at(-1)!.detail).toEqual({ adapter: 'dev', reason: 'The SMS gateway failed.' });
      expectNoCodeLeaked(h);
    });
  });

  describe('start: a session on the code path from the start', () => {
    it('a remote appointment: a new session, a code, no refusal recorded', async () => {
      const h = harness();
      const sent = await h.service.start(h.desk, h.patient, { appointmentId: 'R-7', channel: 'remote' });
      const session = h.store.sessionRows.get(sent.sessionId)!;
      expect(session).toMatchObject({
        channel: 'remote',
        appointmentId: 'R-7',
        state: 'code_pending',
        refusalReason: null,
      });
      expect(sent).toEqual({
        sessionId: session.id,
        state: 'code_pending',
        codeExpiresAt: new Date(T0 + TTL_S * 1000),
      });
      expect(h.store.refusals).toEqual([]);
      expect(h.aborted).toEqual([]);
      expect(actions(h)).toEqual(['session.created', 'code.sent']);
      expect(h.audit[0].detail).toEqual({ channel: 'remote', method: 'code' });
      expect(h.sms.last()).toMatchObject({ iin: h.patient.iin, reference: session.id });
    });

    it.each(IN_PERSON_CODE_REASONS)('in person, by code because %s: recorded exactly as a refusal', async (reason) => {
      const h = harness();
      const sent = await h.service.start(h.desk, h.patient, { appointmentId: 'A-2', channel: 'in_person', reason });
      expect(h.store.refusals).toEqual([{ sessionId: sent.sessionId, reason }]);
      expect(actions(h)).toEqual(['session.created', 'session.refused', 'code.sent']);
      expect(h.audit[1].detail).toEqual({ reason, faceSessionAborted: false });
      expect(h.aborted).toEqual([]); // no face path was ever open
    });

    it('its code matches like any other', async () => {
      const h = harness();
      h.nextCodes.push('000042'); // leading zeros kept
      const sent = await h.service.start(h.desk, h.patient, { appointmentId: 'R-8', channel: 'remote' as Channel });
      expect(h.sms.last().text).toContain('000042');
      await expect(h.service.verify(h.desk, sent.sessionId, '000042')).resolves.toMatchObject({
        result: 'match',
        method: 'code',
      });
    });
  });

  describe('verify: the desk types the code', () => {
    it("the right code: a match by code, the code marked used at the clock's time, counted and audited", async () => {
      const h = harness();
      const { session, code } = await refused(h);
      h.clock.t += 42_000;
      const verdict = await h.service.verify(h.desk, session.id, code);
      h.seen.push(verdict);

      expect(verdict).toMatchObject({
        sessionId: session.id,
        result: 'match',
        method: 'code',
        score: null,
        liveness: null,
        timings: { codeAgeMs: 42_000, wrongAttempts: 0 },
      });
      expect(h.store.codeOf(session.id).usedAt).toEqual(new Date(T0 + 42_000));
      expect(h.store.sessionRows.get(session.id)!.state).toBe('finished');
      expect(h.verdictMetrics).toEqual([['match', 'code']]);
      expect(actions(h)).toEqual(['session.refused', 'code.sent', 'session.verdict']);
      expect(h.audit[2].detail).toEqual({ result: 'match', method: 'code', wrongAttempts: 0 });
      // The audit entry is the verdict's own, written in its transaction.
      expect(h.store.verdictRows[0].options).toMatchObject({
        audit: { actor: 'workstation:ws-1', action: 'session.verdict', subject: session.id },
      });
      expectNoCodeLeaked(h);
    });

    it('a used code cannot be used again, nor resent', async () => {
      const h = harness();
      const { session, code } = await refused(h);
      await h.service.verify(h.desk, session.id, code);
      expect((await failure(h, h.service.verify(h.desk, session.id, code))).code).toBe('code_used');
      expect((await failure(h, h.service.resend(h.desk, session.id))).code).toBe('code_used');
      expect(h.store.verdictRows).toHaveLength(1);
      expect(h.sms.sent).toHaveLength(1);
    });

    it('a wrong code answers attemptsLeft; the last wrong one locks the session out', async () => {
      const h = harness();
      const { session, code } = await refused(h);

      const first = await failure(h, h.service.verify(h.desk, session.id, wrong(code)));
      expect(first).toMatchObject({ code: 'code_invalid', message: 'Wrong code; 2 attempts left.' });
      expect((first as IdentificationError).details).toEqual({ attemptsLeft: 2 });
      const second = await failure(h, h.service.verify(h.desk, session.id, wrong(code)));
      expect(second).toMatchObject({ code: 'code_invalid', message: 'Wrong code; 1 attempt left.' });
      expect(h.store.sessionRows.get(session.id)!.state).toBe('code_pending');

      const last = await failure(h, h.service.verify(h.desk, session.id, wrong(code)));
      expect(last.code).toBe('code_locked_out');
      expect((last as IdentificationError).details).toEqual({ attemptsLeft: 0 });
      expect(h.store.verdictOf(session.id)).toMatchObject({
        result: 'locked_out',
        method: 'code',
        timings: { codeAgeMs: 0, wrongAttempts: ATTEMPTS },
      });
      expect(h.store.sessionRows.get(session.id)!.state).toBe('finished');
      expect(h.verdictMetrics).toEqual([['locked_out', 'code']]);
      expect(actions(h).slice(2)).toEqual(['code.rejected', 'code.rejected', 'code.rejected', 'session.locked_out']);
      expect(h.audit.map((e) => e.detail?.attemptsLeft).slice(2, 5)).toEqual([2, 1, 0]);
      expect(h.audit.at(-1)).toMatchObject({ actor: 'system', detail: { method: 'code', wrongAttempts: ATTEMPTS } });
      expect(h.store.verdictRows.at(-1)!.options).toMatchObject({ audit: { action: 'session.locked_out' } });

      // Over: even the right code no longer matches, and nothing more is counted.
      expect((await failure(h, h.service.verify(h.desk, session.id, code))).code).toBe('session_finished');
      expect(h.store.codeOf(session.id)).toMatchObject({ attempts: ATTEMPTS, usedAt: null });
      expectNoCodeLeaked(h);
    });

    it('wrong entries before the right one are reported with the match', async () => {
      const h = harness();
      const { session, code } = await refused(h);
      await failure(h, h.service.verify(h.desk, session.id, wrong(code)));
      await failure(h, h.service.verify(h.desk, session.id, '12345')); // malformed counts as wrong too
      const verdict = await h.service.verify(h.desk, session.id, code);
      expect(verdict.timings).toEqual({ codeAgeMs: 0, wrongAttempts: 2 });
      expect(h.audit.at(-1)!.detail).toEqual({ result: 'match', method: 'code', wrongAttempts: 2 });
    });

    it('finishes an interrupted lock-out: a pending session whose code has no attempts left ends locked_out now', async () => {
      const h = harness();
      const { session, code } = await refused(h);
      h.store.codeOf(session.id).attempts = ATTEMPTS; // counted, but the lock-out's verdict was never written
      const err = await failure(h, h.service.verify(h.desk, session.id, code));
      expect(err.code).toBe('code_locked_out');
      expect(h.store.verdictOf(session.id)).toMatchObject({
        result: 'locked_out',
        timings: { wrongAttempts: ATTEMPTS },
      });
      expect(h.verdictMetrics).toEqual([['locked_out', 'code']]);
    });

    it('expires exactly CODE_TTL_S after it was sent; an expired code counts no attempt and the sweep ends the session', async () => {
      const h = harness();
      const a = await refused(h);
      const b = await refused(h);
      h.clock.t = T0 + TTL_S * 1000 - 1;
      await expect(h.service.verify(h.desk, a.session.id, a.code)).resolves.toMatchObject({ result: 'match' });

      h.clock.t = T0 + TTL_S * 1000;
      expect((await failure(h, h.service.verify(h.desk, b.session.id, b.code))).code).toBe('code_expired');
      expect((await failure(h, h.service.verify(h.desk, b.session.id, wrong(b.code)))).code).toBe('code_expired');
      expect(h.store.codeOf(b.session.id)).toMatchObject({ attempts: 0, usedAt: null });
      expect(h.store.sessionRows.get(b.session.id)!.state).toBe('code_pending'); // expiry is the sweep's to record
      expect(h.verdictMetrics).toEqual([['match', 'code']]);
    });

    it('answers the state the code is in when it changes between the check and the write', async () => {
      const h = harness();
      // Another desk typed the same code a moment earlier.
      const a = await refused(h);
      h.store.before.markUsed = (id) => (h.store.codeRows.get(id)!.usedAt = new Date(h.clock.t));
      expect((await failure(h, h.service.verify(h.desk, a.session.id, a.code))).code).toBe('code_used');
      // Concurrent wrong entries used up the last attempt meanwhile (the one that did locks the session out).
      const b = await refused(h);
      h.store.before.markUsed = (id) => (h.store.codeRows.get(id)!.attempts = ATTEMPTS);
      expect((await failure(h, h.service.verify(h.desk, b.session.id, b.code))).code).toBe('code_locked_out');
      delete h.store.before.markUsed;
      // The sweep ended the session at the very moment its code expired, after the code was marked used: the mark
      // is undone with the verdict that could not be stored (a code is never used without its verdict).
      const c = await refused(h);
      h.store.before.finish = (id) => (h.store.sessionRows.get(id)!.state = 'expired');
      expect((await failure(h, h.service.verify(h.desk, c.session.id, c.code))).code).toBe('session_finished');
      expect(h.store.verdictRows).toHaveLength(0);
      expect(h.store.codeOf(c.session.id).usedAt).toBeNull();
      expect(h.store.sessionRows.get(c.session.id)!.state).toBe('expired');
      expect(h.store.rolledBack).toBe(1);
      expect(actions(h)).not.toContain('session.verdict');
      expect(h.verdictMetrics).toEqual([]);
    });

    it('refuses sessions with no code to check', async () => {
      const h = harness();
      const face = h.store.faceSession(h.desk, h.patient);
      expect((await failure(h, h.service.verify(h.desk, face.id, '123456'))).code).toBe('code_not_requested');
      expect((await failure(h, h.service.verify(h.desk, randomUUID(), '123456'))).code).toBe('session_not_found');
      const { session, code } = await refused(h);
      const other = h.store.clinic('Другая');
      const foreign = { clinicId: other.id, workstationId: 'ws-1' };
      expect((await failure(h, h.service.verify(foreign, session.id, code))).code).toBe('session_not_found');
      expect(h.store.codeOf(session.id)).toMatchObject({ attempts: 0, usedAt: null });
    });
  });

  describe('resend: the SMS did not arrive', () => {
    it('sends a new code with a full TTL: the old one stops working, wrong attempts still count, at most CODE_RESENDS_MAX times', async () => {
      const h = harness();
      const { session, code: first } = await refused(h);
      await failure(h, h.service.verify(h.desk, session.id, wrong(first)));

      h.clock.t = T0 + 100_000;
      const again = await h.service.resend(h.desk, session.id);
      h.seen.push(again);
      const second = h.issued.at(-1)!;
      expect(second).not.toBe(first);
      expect(again).toEqual({
        sessionId: session.id,
        state: 'code_pending',
        codeExpiresAt: new Date(T0 + 100_000 + TTL_S * 1000),
        resendsLeft: 1,
      });
      expect(h.sms.last()).toMatchObject({ iin: h.patient.iin, reference: session.id });
      expect(h.sms.last().text).toContain(second);
      expect(h.store.codeOf(session.id)).toMatchObject({ sends: 2, attempts: 1 });
      expect(h.audit.find((e) => e.action === 'code.resent')!.detail).toEqual({ sends: 2, wrongAttempts: 1 });

      // The first code is now a wrong one (and counts as such).
      const old = await failure(h, h.service.verify(h.desk, session.id, first));
      expect((old as IdentificationError).details).toEqual({ attemptsLeft: 1 });

      expect((await h.service.resend(h.desk, session.id)).resendsLeft).toBe(0);
      const limit = await failure(h, h.service.resend(h.desk, session.id));
      expect(limit).toMatchObject({ code: 'code_resend_limit', message: expect.stringContaining('3 times') });
      expect(h.sms.sent).toHaveLength(3);

      // The newest code matches, past the first code's expiry but within its own.
      h.clock.t = T0 + TTL_S * 1000 + 50_000;
      await expect(h.service.verify(h.desk, session.id, h.issued.at(-1)!)).resolves.toMatchObject({
        result: 'match',
        timings: { wrongAttempts: 2 },
      });
      expectNoCodeLeaked(h);
    });

    it('gives an expired code a new lifetime while the sweep has not ended its session', async () => {
      const h = harness();
      const { session } = await refused(h);
      h.clock.t = T0 + TTL_S * 1000 + 1;
      const again = await h.service.resend(h.desk, session.id);
      expect(again.codeExpiresAt).toEqual(new Date(h.clock.t + TTL_S * 1000));
      await expect(h.service.verify(h.desk, session.id, h.issued.at(-1)!)).resolves.toMatchObject({ result: 'match' });
    });

    it('with CODE_RESENDS_MAX=0 the first send is the only one', async () => {
      const h = harness({ CODE_RESENDS_MAX: '0' });
      const { session } = await refused(h);
      const err = await failure(h, h.service.resend(h.desk, session.id));
      expect(err).toMatchObject({ code: 'code_resend_limit', message: expect.stringContaining('1 times') });
      expect(h.sms.sent).toHaveLength(1);
    });

    it('refuses a session with no code, and answers lost races by what happened', async () => {
      const h = harness();
      const face = h.store.faceSession(h.desk, h.patient);
      expect((await failure(h, h.service.resend(h.desk, face.id))).code).toBe('code_not_requested');

      // Another desk's resend took the last send meanwhile.
      const a = await refused(h);
      h.store.codeOf(a.session.id).sends = 2;
      h.store.before.replace = (id) => (h.store.codeRows.get(id)!.sends = 3);
      expect((await failure(h, h.service.resend(h.desk, a.session.id))).code).toBe('code_resend_limit');
      // The code was used meanwhile.
      const b = await refused(h);
      h.store.before.replace = (id) => (h.store.codeRows.get(id)!.usedAt = new Date(h.clock.t));
      expect((await failure(h, h.service.resend(h.desk, b.session.id))).code).toBe('code_used');
      // The session was locked out meanwhile (its code's attempts ran out).
      const c = await refused(h);
      h.store.before.replace = (id) => (h.store.codeRows.get(id)!.attempts = ATTEMPTS);
      expect((await failure(h, h.service.resend(h.desk, c.session.id))).code).toBe('code_locked_out');
      expect(h.sms.sent).toHaveLength(3); // the three first sends only
    });

    it('a failed resend is a typed SMS error; the replaced code is the one the session waits for', async () => {
      const h = harness();
      const { session, code } = await refused(h);
      h.sms.failWith = new SmsError('The SMS gateway timed out.', 'timeout');
      const err = await failure(h, h.service.resend(h.desk, session.id));
      expect(err.code).toBe('sms_unavailable');
      expect(h.store.codeOf(session.id).sends).toBe(2);
      expect((await failure(h, h.service.verify(h.desk, session.id, code))).code).toBe('code_invalid');
      expectNoCodeLeaked(h);
    });
  });

  describe('caps on wrong codes within CODE_FAILURES_WINDOW_MIN', () => {
    it('per patient, across sessions: no new code, no entry, until the window slides past', async () => {
      const h = harness(); // CODE_PATIENT_FAILURES_MAX = 5
      const a = await refused(h);
      for (let i = 0; i < ATTEMPTS; i++) await failure(h, h.service.verify(h.desk, a.session.id, wrong(a.code)));
      h.clock.t += 60_000;
      const b = await refused(h);
      await failure(h, h.service.verify(h.desk, b.session.id, wrong(b.code)));
      await failure(h, h.service.verify(h.desk, b.session.id, wrong(b.code))); // 5 wrong entries in all

      const sends = h.sms.sent.length;
      const capped = await failure(h, h.service.verify(h.desk, b.session.id, b.code));
      expect(capped).toMatchObject({ code: 'code_attempts_exceeded', retryAfterSeconds: WINDOW_MIN * 60 });
      expect(capped.message).toContain('patient');
      expect(h.audit.at(-1)).toMatchObject({
        action: 'code.capped',
        subject: h.patient.id,
        detail: { by: 'patient', windowMinutes: WINDOW_MIN },
      });
      expect((await failure(h, h.service.resend(h.desk, b.session.id))).code).toBe('code_attempts_exceeded');
      const c = h.store.faceSession(h.desk, h.patient);
      expect((await failure(h, h.service.refuse(h.desk, c.id, 'patient_refused_photo'))).code).toBe(
        'code_attempts_exceeded',
      );
      expect(
        (await failure(h, h.service.start(h.desk, h.patient, { appointmentId: 'R', channel: 'remote' }))).code,
      ).toBe('code_attempts_exceeded');
      expect(h.sms.sent).toHaveLength(sends);
      expect(h.store.sessionRows.get(c.id)!.state).toBe('created');

      // Another patient at the same desk is not capped.
      const other = h.store.patient(h.clinic.id, '850505400456');
      await expect(h.service.start(h.desk, other, { appointmentId: 'R', channel: 'remote' })).resolves.toMatchObject({
        state: 'code_pending',
      });

      // Once the first session's failures leave the window, the patient may get codes again.
      h.clock.t = T0 + WINDOW_MIN * 60_000 + 1;
      await expect(h.service.refuse(h.desk, c.id, 'patient_refused_photo')).resolves.toMatchObject({
        state: 'code_pending',
      });
    });

    it('per workstation: the desk that asked for the code counts too, whoever types it', async () => {
      const h = harness({ CODE_WORKSTATION_FAILURES_MAX: '3', CODE_ATTEMPTS_MAX: '2' });
      // Three patients, one wrong entry each at ws-1: no patient reaches its own cap, the desk reaches its cap.
      const entries: Array<{ session: IdentificationSession; code: string }> = [];
      for (const iin of ['900101300123', '850505400456', '770707500789']) {
        const patient = iin === h.patient.iin ? h.patient : h.store.patient(h.clinic.id, iin);
        const sent = await h.service.start(h.desk, patient, {
          appointmentId: 'A',
          channel: 'in_person',
          reason: 'face_failed',
        });
        const session = h.store.sessionRows.get(sent.sessionId)!;
        entries.push({ session, code: h.issued.at(-1)! });
        await failure(h, h.service.verify(h.desk, session.id, wrong(h.issued.at(-1)!)));
      }
      // The other desk cannot finish a code ws-1 asked for...
      const viaOther = await failure(h, h.service.verify(h.otherDesk, entries[0].session.id, entries[0].code));
      expect(viaOther).toMatchObject({
        code: 'code_attempts_exceeded',
        message: expect.stringContaining('workstation'),
      });
      expect(h.audit.at(-1)!.detail).toEqual({ by: 'workstation', windowMinutes: WINDOW_MIN });
      // ...but may start its own, for a patient with no failures.
      const fresh = h.store.patient(h.clinic.id, '660606600111');
      await expect(
        h.service.start(h.otherDesk, fresh, { appointmentId: 'B', channel: 'remote' }),
      ).resolves.toBeDefined();
      expect(h.store.verdictRows).toHaveLength(0);
    });
  });

  describe("the SMS text, in the clinic's languages", () => {
    it.each<[SmsLanguages, string[], string[]]>([
      ['kk+ru', ['қабылдауға арналған код', 'для приёма'], []],
      ['kk', ['қабылдауға арналған код'], ['для приёма']],
      ['ru', ['для приёма'], ['қабылдауға']],
    ])('%s', async (languages, has, hasNot) => {
      const h = harness({}, languages);
      h.nextCodes.push('314159');
      await refused(h);
      const text = h.sms.last().text;
      expect(text).toBe(smsText('identification', { code: '314159', clinicName: 'Емхана №5', languages }));
      for (const s of [...has, 'Емхана №5', '314159']) expect(text).toContain(s);
      for (const s of hasNot) expect(text).not.toContain(s);
      if (languages === 'kk+ru') expect(text.indexOf('қабылдауға')).toBeLessThan(text.indexOf('для приёма'));
    });

    it('a clinic with no row reads as no name, in both languages', async () => {
      const h = harness();
      h.store.clinics.delete(h.clinic.id);
      h.nextCodes.push('271828');
      await refused(h);
      expect(h.sms.last().text).toBe(smsText('identification', { code: '271828', clinicName: '' }));
    });
  });

  describe('dependency injection', () => {
    function moduleWith(extra: Array<{ provide: symbol; useValue: unknown }>) {
      const clock = { t: T0 };
      const store = new FakeStore(() => clock.t);
      const sms = new FakeSms();
      @Module({
        providers: [
          CodePathService,
          { provide: CONFIG, useValue: config() },
          { provide: SESSIONS, useValue: store.sessions },
          { provide: PATIENTS, useValue: store.patientRepo },
          { provide: CLINICS, useValue: store.clinicRepo },
          { provide: CODES, useValue: store.codes },
          { provide: VERDICTS, useValue: store.verdicts },
          { provide: UNIT_OF_WORK, useValue: store.work },
          { provide: SMS_GATEWAY, useValue: sms },
          { provide: CodeHasher, useValue: new CodeHasher(new KeyRing([{ id: 'k1', key: Buffer.alloc(32, 1) }])) },
          { provide: IdentificationGateway, useValue: { abortSession: () => false } },
          { provide: AuditService, useValue: { record: async () => undefined } },
          { provide: MetricsService, useValue: { verdict: () => undefined } },
          ...extra,
        ],
      })
      class TestModule {}
      return { TestModule, store, sms };
    }

    it('takes the clock and the codes from their tokens, and defaults to the wall clock and the CSPRNG', async () => {
      const injected = moduleWith([
        { provide: CODE_PATH_CLOCK, useValue: () => T0 },
        { provide: CODE_PATH_CODES, useValue: () => '777777' },
      ]);
      const app = await NestFactory.createApplicationContext(injected.TestModule, { logger: false });
      try {
        const clinic = injected.store.clinic('C');
        const patient = injected.store.patient(clinic.id, '900101300123');
        const sent = await app.get(CodePathService).start({ clinicId: clinic.id, workstationId: 'w' }, patient, {
          appointmentId: 'A',
          channel: 'remote',
        });
        expect(sent.codeExpiresAt).toEqual(new Date(T0 + 300_000)); // the default CODE_TTL_S of config() is 300
        expect(injected.sms.last().text).toContain('777777');
      } finally {
        await app.close();
      }

      const plain = moduleWith([]);
      const app2 = await NestFactory.createApplicationContext(plain.TestModule, { logger: false });
      try {
        const clinic = plain.store.clinic('C');
        const patient = plain.store.patient(clinic.id, '900101300123');
        const before = Date.now();
        const sent = await app2.get(CodePathService).start({ clinicId: clinic.id, workstationId: 'w' }, patient, {
          appointmentId: 'A',
          channel: 'remote',
        });
        expect(sent.codeExpiresAt.getTime()).toBeGreaterThanOrEqual(before + TTL_S * 1000);
        expect(sent.codeExpiresAt.getTime()).toBeLessThanOrEqual(Date.now() + TTL_S * 1000);
        expect(plain.sms.last().text).toMatch(/(^|\D)\d{6}(\D|$)/);
      } finally {
        await app2.close();
      }
    });
  });
});

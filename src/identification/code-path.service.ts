import { Inject, Injectable, Optional } from '@nestjs/common';
import { AuditService } from '../audit';
import { outcomeBins } from '../calibration/bins';
import { CONFIG, type Config } from '../config';
import { MetricsService } from '../metrics';
import { SMS_GATEWAY, SmsError, smsText, type SmsGateway } from '../sms';
import {
  CLINICS,
  CODES,
  PATIENTS,
  SESSIONS,
  UNIT_OF_WORK,
  VERDICTS,
  type Channel,
  type ClinicRepository,
  type CodeRepository,
  type IdentificationSession,
  type OneTimeCode,
  type Patient,
  type PatientRepository,
  type SessionRepository,
  type UnitOfWork,
  type Verdict,
  type VerdictRepository,
} from '../storage/ports';
import { CodeHasher, newCode } from './code-hash';
import { IdentificationError } from './errors';
import { IdentificationGateway } from './identification.gateway';
import { newSessionToken } from './tokens';

export interface CodePrincipal {
  clinicId: string;
  workstationId: string;
}

/** A session on the code path whose code went out. */
export interface CodeSent {
  sessionId: string;
  state: 'code_pending';
  codeExpiresAt: Date;
}

/** The code path's wall clock (epoch ms); tests inject their own. */
export const CODE_PATH_CLOCK = Symbol('CODE_PATH_CLOCK');
/** Where the code path's six-digit codes come from (default: newCode, the CSPRNG); tests inject their own. */
export const CODE_PATH_CODES = Symbol('CODE_PATH_CODES');

/** A session that starts on the code path holds an unusable face token this long, until the code path starts a moment later. */
const CODE_SESSION_TOKEN_GRACE_MS = 60_000;

/**
 * Why a patient at the desk is identified by code from the start (POST /sessions with method `code`), recorded as a
 * refusal: the patient refused the photo, face identification did not succeed (failed attempts, no template), or the
 * desk's camera does not work.
 */
export const IN_PERSON_CODE_REASONS = ['patient_refused_photo', 'face_failed', 'camera_unavailable'] as const;
export type InPersonCodeReason = (typeof IN_PERSON_CODE_REASONS)[number];

/**
 * The six-digit code path: a patient who refuses the photo (or a remote appointment) gets a code by SMS and the
 * desk types it in. Codes are random (CSPRNG), stored only as keyed hashes bound to their session, expire after
 * CODE_TTL_S, allow CODE_ATTEMPTS_MAX wrong entries (then the session ends `locked_out`), and wrong entries are capped
 * per patient and per workstation. The code itself never reaches storage, logs, audit or errors.
 */
@Injectable()
export class CodePathService {
  private readonly now: () => number;
  private readonly newCode: () => string;

  constructor(
    @Inject(CONFIG) private readonly config: Config,
    @Inject(SESSIONS) private readonly sessions: SessionRepository,
    @Inject(PATIENTS) private readonly patients: PatientRepository,
    @Inject(CLINICS) private readonly clinics: ClinicRepository,
    @Inject(CODES) private readonly codes: CodeRepository,
    @Inject(VERDICTS) private readonly verdicts: VerdictRepository,
    @Inject(UNIT_OF_WORK) private readonly work: UnitOfWork,
    @Inject(SMS_GATEWAY) private readonly sms: SmsGateway,
    private readonly hasher: CodeHasher,
    private readonly gateway: IdentificationGateway,
    private readonly audit: AuditService,
    private readonly metrics: MetricsService,
    @Optional() @Inject(CODE_PATH_CLOCK) now?: () => number,
    @Optional() @Inject(CODE_PATH_CODES) codeSource?: () => string,
  ) {
    this.now = now ?? Date.now;
    this.newCode = codeSource ?? newCode;
  }

  /** The patient refused the photo: stop any face session, move to the code path, send the code. */
  async refuse(principal: CodePrincipal, sessionId: string, reason: string): Promise<CodeSent> {
    const session = await this.session(principal, sessionId);
    if (session.state !== 'created' && session.state !== 'connected') throw this.notOnFacePath(session);
    await this.checkCaps(principal, session.patientId);
    const patient = await this.patient(principal, session.patientId);
    const code = this.newCode();
    const codeExpiresAt = new Date(this.now() + this.config.CODE_TTL_S * 1000);
    const begun = await this.sessions.beginCodePath({
      clinicId: principal.clinicId,
      sessionId,
      codeHash: this.hasher.hash(sessionId, code),
      codeExpiresAt,
      refusal: { reason },
    });
    // Lost a race (a face verdict, the sweep, another refusal): answer for the state it is in now.
    if (!begun) throw this.notOnFacePath(await this.session(principal, sessionId));
    // Its frames and embeddings are wiped, and the browser is told why the camera stopped.
    const aborted = this.gateway.abortSession(sessionId);
    await this.audit.record(this.actor(principal), 'session.refused', {
      clinicId: principal.clinicId,
      subject: sessionId,
      detail: { reason, faceSessionAborted: aborted },
    });
    await this.deliver(principal, sessionId, patient.iin, code, codeExpiresAt);
    return { sessionId, state: 'code_pending', codeExpiresAt };
  }

  /**
   * A session that starts on the code path, with no face path at all: a remote appointment, or a patient at the desk
   * identified by code from the start (`reason`: why not by face). Such a reason is recorded exactly as a refusal
   * (the session's refusal, the `identification.refused` event, the `session.refused` audit entry). Only the code's
   * own limits apply, not the face attempts limit.
   */
  async start(
    principal: CodePrincipal,
    patient: Patient,
    input: { appointmentId: string; channel: Channel; reason?: string },
  ): Promise<CodeSent> {
    await this.checkCaps(principal, patient.id);
    const now = this.now();
    // The session row needs a token; this one is never shown to anybody, and the code path ends it at once.
    const session = await this.sessions.create({
      clinicId: principal.clinicId,
      workstationId: principal.workstationId,
      patientId: patient.id,
      appointmentId: input.appointmentId,
      channel: input.channel,
      tokenHash: newSessionToken().hash,
      tokenExpiresAt: new Date(now + CODE_SESSION_TOKEN_GRACE_MS),
    });
    const code = this.newCode();
    const codeExpiresAt = new Date(now + this.config.CODE_TTL_S * 1000);
    const begun = await this.sessions.beginCodePath({
      clinicId: principal.clinicId,
      sessionId: session.id,
      codeHash: this.hasher.hash(session.id, code),
      codeExpiresAt,
      ...(input.reason === undefined ? {} : { refusal: { reason: input.reason } }),
    });
    if (!begun) throw new Error(`The new session ${session.id} could not start the code path.`);
    await this.audit.record(this.actor(principal), 'session.created', {
      clinicId: principal.clinicId,
      subject: session.id,
      detail: { channel: input.channel, method: 'code' },
    });
    if (input.reason !== undefined) {
      await this.audit.record(this.actor(principal), 'session.refused', {
        clinicId: principal.clinicId,
        subject: session.id,
        detail: { reason: input.reason, faceSessionAborted: false },
      });
    }
    await this.deliver(principal, session.id, patient.iin, code, codeExpiresAt);
    return { sessionId: session.id, state: 'code_pending', codeExpiresAt };
  }

  /**
   * Sends the session's code again, as a new code (the SMS did not arrive): the old code stops working, the new one
   * gets a full CODE_TTL_S, and the wrong attempts so far still count. At most CODE_RESENDS_MAX times.
   */
  async resend(principal: CodePrincipal, sessionId: string): Promise<CodeSent & { resendsLeft: number }> {
    const session = await this.session(principal, sessionId);
    const current = await this.codes.forSession(principal.clinicId, sessionId);
    if (session.state !== 'code_pending' || !current) throw this.notPending(session, current);
    if (current.usedAt) throw new IdentificationError('code_used', 'This code was already used.');
    const maxSends = this.config.CODE_RESENDS_MAX + 1;
    if (current.sends >= maxSends) throw this.resendLimit();
    await this.checkCaps(principal, session.patientId, current.workstationId);
    const patient = await this.patient(principal, session.patientId);
    const code = this.newCode();
    const codeExpiresAt = new Date(this.now() + this.config.CODE_TTL_S * 1000);
    const replaced = await this.codes.replace(current.id, {
      codeHash: this.hasher.hash(sessionId, code),
      expiresAt: codeExpiresAt,
      maxAttempts: this.config.CODE_ATTEMPTS_MAX,
      maxSends,
    });
    if (!replaced) {
      // Used, locked out or resent meanwhile.
      const now = await this.codes.forSession(principal.clinicId, sessionId);
      if (now && now.sends >= maxSends) throw this.resendLimit();
      throw await this.lostRace(principal, session);
    }
    await this.audit.record(this.actor(principal), 'code.resent', {
      clinicId: principal.clinicId,
      subject: sessionId,
      detail: { sends: replaced.sends, wrongAttempts: replaced.attempts },
    });
    await this.deliver(principal, sessionId, patient.iin, code, codeExpiresAt);
    return { sessionId, state: 'code_pending', codeExpiresAt, resendsLeft: maxSends - replaced.sends };
  }

  /** Checks a code typed at the desk. Right: the session ends `match` by code. Wrong: `code_invalid` with attemptsLeft. */
  async verify(principal: CodePrincipal, sessionId: string, input: string): Promise<Verdict> {
    const session = await this.session(principal, sessionId);
    const code = await this.codes.forSession(principal.clinicId, sessionId);
    if (session.state !== 'code_pending' || !code) throw this.notPending(session, code);
    const now = new Date(this.now());
    const unusable = this.unusable(code, now);
    if (unusable) {
      // Out of attempts but still pending (the lock-out was interrupted): finish it now. Expiry is the sweep's.
      if (unusable.code === 'code_locked_out') await this.lockOut(principal, code, code.attempts, now);
      throw unusable;
    }
    await this.checkCaps(principal, session.patientId, code.workstationId);
    const max = this.config.CODE_ATTEMPTS_MAX;

    if (this.hasher.verify(code.codeHash, sessionId, input)) {
      const audit = this.audit.entry(this.actor(principal), 'session.verdict', {
        clinicId: principal.clinicId,
        subject: sessionId,
        detail: { result: 'match', method: 'code', wrongAttempts: code.attempts },
      });
      // The code is used, the session ends `match` by code, and the audit trail says so: all in one transaction.
      const verdict = await this.work.run(async (work) => {
        if (!(await work.codes.markUsed(code.id, max, now))) return null;
        const stored = await work.verdicts.finish(
          {
            clinicId: principal.clinicId,
            sessionId,
            result: 'match',
            method: 'code',
            score: null,
            liveness: null,
            timings: { codeAgeMs: now.getTime() - code.createdAt.getTime(), wrongAttempts: code.attempts },
          },
          { calibration: outcomeBins('code', 'match'), audit },
        );
        // Ended meanwhile by the sweep, at the very moment the code expired: the code stays unused (this rolls back).
        if (!stored) throw new IdentificationError('session_finished', 'The session is already finished.');
        return stored;
      });
      // The code was used, locked out or expired meanwhile.
      if (!verdict) throw await this.lostRace(principal, session);
      this.metrics.verdict('match', 'code');
      return verdict;
    }

    const attempts = await this.codes.recordFailure(code.id, max, now);
    if (attempts === null) throw await this.lostRace(principal, session);
    const attemptsLeft = Math.max(0, max - attempts);
    await this.audit.record(this.actor(principal), 'code.rejected', {
      clinicId: principal.clinicId,
      subject: sessionId,
      detail: { attempts, attemptsLeft },
    });
    if (attemptsLeft > 0) {
      throw new IdentificationError(
        'code_invalid',
        `Wrong code; ${attemptsLeft} ${attemptsLeft === 1 ? 'attempt' : 'attempts'} left.`,
        { attemptsLeft },
      );
    }
    await this.lockOut(principal, code, attempts, now);
    throw new IdentificationError(
      'code_locked_out',
      'Wrong code, and the last attempt: the session is locked out. Start a new session for this patient.',
      { attemptsLeft: 0 },
    );
  }

  /** The code's attempts ran out: the session ends `locked_out` (its MIS event and audit entry in the same transaction). */
  private async lockOut(principal: CodePrincipal, code: OneTimeCode, attempts: number, now: Date): Promise<void> {
    const verdict = await this.verdicts.finish(
      {
        clinicId: principal.clinicId,
        sessionId: code.sessionId,
        result: 'locked_out',
        method: 'code',
        score: null,
        liveness: null,
        timings: { codeAgeMs: now.getTime() - code.createdAt.getTime(), wrongAttempts: attempts },
      },
      {
        calibration: outcomeBins('code', 'locked_out'),
        audit: this.audit.entry('system', 'session.locked_out', {
          clinicId: principal.clinicId,
          subject: code.sessionId,
          detail: { method: 'code', wrongAttempts: attempts },
        }),
      },
    );
    if (!verdict) return; // already finished (a concurrent entry locked it out first)
    this.metrics.verdict('locked_out', 'code');
  }

  /** Sends the SMS. A failure leaves the session on the code path (it expires with its code) and is answered typed. */
  private async deliver(principal: CodePrincipal, sessionId: string, iin: string, code: string, expiresAt: Date) {
    const clinic = await this.clinics.get(principal.clinicId);
    const text = smsText('identification', { code, clinicName: clinic?.name ?? '', languages: clinic?.smsLanguages });
    try {
      await this.sms.send({ iin, text, reference: sessionId });
    } catch (err) {
      const reason = err instanceof SmsError ? err.message : 'The SMS gateway failed.';
      await this.audit.record('system', 'code.send_failed', {
        clinicId: principal.clinicId,
        subject: sessionId,
        detail: { adapter: this.config.SMS_ADAPTER, reason: reason.slice(0, 200) },
      });
      throw new SmsError(
        `${reason} No code reached the patient; session ${sessionId} waits for a code until ` +
          `${expiresAt.toISOString()} and then expires. Start a new session to try again.`,
      );
    }
    await this.audit.record('system', 'code.sent', {
      clinicId: principal.clinicId,
      subject: sessionId,
      detail: { adapter: this.config.SMS_ADAPTER, ttlSeconds: this.config.CODE_TTL_S },
    });
  }

  /**
   * Refuses while the patient, or the workstation, has had too many wrong codes within CODE_FAILURES_WINDOW_MIN.
   * The workstation is the caller's, and the one that asked for the code when that is another.
   */
  private async checkCaps(principal: CodePrincipal, patientId: string, codeWorkstationId?: string): Promise<void> {
    const windowMin = this.config.CODE_FAILURES_WINDOW_MIN;
    const since = new Date(this.now() - windowMin * 60_000);
    const capped = async (what: string) => {
      await this.audit.record(this.actor(principal), 'code.capped', {
        clinicId: principal.clinicId,
        subject: patientId,
        detail: { by: what, windowMinutes: windowMin },
      });
      // The window slides: the oldest counted failure leaves it within this time at the latest.
      return new IdentificationError(
        'code_attempts_exceeded',
        `Too many wrong codes for this ${what} within ${windowMin} minutes; retry later.`,
        { retryAfterSeconds: windowMin * 60 },
      );
    };
    const patient = await this.codes.failedAttempts(principal.clinicId, { patientId }, since);
    if (patient >= this.config.CODE_PATIENT_FAILURES_MAX) throw await capped('patient');
    for (const workstationId of new Set([principal.workstationId, codeWorkstationId ?? principal.workstationId])) {
      const n = await this.codes.failedAttempts(principal.clinicId, { workstationId }, since);
      if (n >= this.config.CODE_WORKSTATION_FAILURES_MAX) throw await capped('workstation');
    }
  }

  /** Why the code can no longer be tried (used, out of attempts, expired), or null. */
  private unusable(code: OneTimeCode, now: Date): IdentificationError | null {
    if (code.usedAt) return new IdentificationError('code_used', 'This code was already used.');
    if (code.attempts >= this.config.CODE_ATTEMPTS_MAX) {
      return new IdentificationError('code_locked_out', 'This code has no attempts left; start a new session.', {
        attemptsLeft: 0,
      });
    }
    if (code.expiresAt.getTime() <= now.getTime()) {
      return new IdentificationError('code_expired', 'The code has expired; start a new session for this patient.');
    }
    return null;
  }

  /** The code changed under us (a concurrent entry, expiry, the sweep): answer for its state now. */
  private async lostRace(principal: CodePrincipal, session: IdentificationSession): Promise<IdentificationError> {
    const code = await this.codes.forSession(principal.clinicId, session.id);
    const unusable = code && this.unusable(code, new Date(this.now()));
    if (unusable) return unusable;
    return new IdentificationError('session_finished', 'The session is already finished.');
  }

  private async session(principal: CodePrincipal, sessionId: string): Promise<IdentificationSession> {
    const session = await this.sessions.get(principal.clinicId, sessionId);
    if (!session) throw new IdentificationError('session_not_found', 'No such session in this clinic.');
    return session;
  }

  private async patient(principal: CodePrincipal, patientId: string): Promise<Patient> {
    const patient = await this.patients.get(principal.clinicId, patientId);
    if (!patient) throw new Error(`The patient of a session of clinic ${principal.clinicId} is missing.`);
    return patient;
  }

  private notOnFacePath(session: IdentificationSession): IdentificationError {
    return session.state === 'code_pending'
      ? new IdentificationError('code_already_sent', 'This session is already on the code path: enter the code.')
      : new IdentificationError('session_finished', 'The session is already finished; start a new one.');
  }

  private notPending(session: IdentificationSession, code: OneTimeCode | null): IdentificationError {
    if (session.state === 'created' || session.state === 'connected' || !code) {
      return new IdentificationError(
        'code_not_requested',
        'No code was sent for this session: record the refusal first (POST /sessions/{id}/refusal).',
      );
    }
    if (code.usedAt) return new IdentificationError('code_used', 'This code was already used.');
    return new IdentificationError('session_finished', 'The session is already finished; start a new one.');
  }

  private resendLimit(): IdentificationError {
    return new IdentificationError(
      'code_resend_limit',
      `The code was already sent ${this.config.CODE_RESENDS_MAX + 1} times for this session; start a new session.`,
    );
  }

  private actor(principal: CodePrincipal): string {
    return `workstation:${principal.workstationId}`;
  }
}

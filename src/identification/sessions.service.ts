import { Inject, Injectable } from '@nestjs/common';
import { CONFIG, type Config } from '../config';
import {
  EVENTS,
  PATIENTS,
  SESSIONS,
  type EventRepository,
  type PatientRepository,
  type SessionRepository,
} from '../storage/ports';
import {
  CODES,
  VERDICTS,
  type CodeRepository,
  type IdentificationSession,
  type Verdict,
  type VerdictRepository,
} from '../storage/ports';
import { AuditService } from '../audit';
import { EnrollmentService } from '../enrollment';
import { MetricsService } from '../metrics';
import { validateIin } from '../patients';
import { CodePathService, type CodeSent, type InPersonCodeReason } from './code-path.service';
import { IdentificationError } from './errors';
import { FaceCapacity } from './face-capacity';
import { newSessionToken } from './tokens';

export interface SessionPrincipal {
  clinicId: string;
  workstationId: string;
}

/** A face session (in person): the single-use WebSocket token. */
export interface CreatedFaceSession {
  kind: 'face';
  sessionId: string;
  token: string;
  expiresAt: Date;
}

/** A session on the code path from the start (remote, or in person by code): the code is on its way. */
export type CreatedSession = CreatedFaceSession | ({ kind: 'code' } & CodeSent);

/**
 * What the desk asks for. In person: by face (the default), or by code with the reason why not by face. A remote
 * appointment is never photographed: always by code, with no reason (nobody refused anything).
 */
export type SessionRequest = { iin: string; appointmentId: string } & (
  | { channel: 'in_person'; method: 'face' }
  | { channel: 'in_person'; method: 'code'; reason: InPersonCodeReason }
  | { channel: 'remote'; method: 'code' }
);

/** Creates identification sessions: policy (channel, method, template, attempts), the single-use token, the audit trail. */
@Injectable()
export class SessionsService {
  constructor(
    @Inject(CONFIG) private readonly config: Config,
    @Inject(PATIENTS) private readonly patients: PatientRepository,
    @Inject(SESSIONS) private readonly sessions: SessionRepository,
    @Inject(EVENTS) private readonly events: EventRepository,
    private readonly codePath: CodePathService,
    private readonly enrollment: EnrollmentService,
    private readonly audit: AuditService,
    private readonly metrics: MetricsService,
    private readonly capacity: FaceCapacity,
  ) {}

  async create(principal: SessionPrincipal, input: SessionRequest): Promise<CreatedSession> {
    const iin = validateIin(input.iin);
    const actor = `workstation:${principal.workstationId}`;
    const patient = await this.patients.upsert(principal.clinicId, iin);
    if (input.channel === 'remote') {
      // Policy: only a patient physically present is photographed; online appointments use the code path.
      const sent = await this.codePath.start(principal, patient, {
        appointmentId: input.appointmentId,
        channel: 'remote',
      });
      return { kind: 'code', ...sent };
    }
    if (input.method === 'code') {
      // The desk moves to the code: the patient's unused face tokens end, and the face attempts limit does not
      // apply (the code path has its own limits). The reason is recorded as a refusal.
      await this.supersedeFaceTokens(principal, patient.id);
      const sent = await this.codePath.start(principal, patient, {
        appointmentId: input.appointmentId,
        channel: 'in_person',
        reason: input.reason,
      });
      return { kind: 'code', ...sent };
    }
    // Face: checked before any token is issued, so the desk can offer the code at once instead of opening the
    // camera. (A template revoked after this check still ends the session `no_template` on the WebSocket.)
    if (!(await this.enrollment.hasTemplate(principal.clinicId, patient.id))) {
      await this.audit.record(actor, 'session.no_template', { clinicId: principal.clinicId, subject: patient.id });
      throw new IdentificationError(
        'no_template',
        'This patient has no enrolled reference photo, so face identification cannot run; identify them by the ' +
          'six-digit code (method "code") or enroll a reference photo first.',
        { codeAvailable: true },
      );
    }
    const since = new Date(Date.now() - this.config.FACE_ATTEMPTS_WINDOW_MIN * 60_000);
    const failed = await this.sessions.countFailedFace(principal.clinicId, patient.id, since);
    if (failed >= this.config.FACE_ATTEMPTS_MAX) {
      // No session is opened, but the MIS learns of the lock-out (its event and audit entry in one transaction).
      await this.events.appendLockout(
        {
          clinicId: principal.clinicId,
          patientId: patient.id,
          appointmentId: input.appointmentId,
          channel: input.channel,
          workstationId: principal.workstationId,
        },
        {
          audit: this.audit.entry(actor, 'session.locked_out', {
            clinicId: principal.clinicId,
            subject: patient.id,
            detail: { failed, windowMinutes: this.config.FACE_ATTEMPTS_WINDOW_MIN },
          }),
        },
      );
      this.metrics.verdict('locked_out', 'face');
      throw new IdentificationError(
        'attempts_exceeded',
        `Too many failed face identifications for this patient; identify them by the six-digit code (method "code") ` +
          `or retry by face after ${this.config.FACE_ATTEMPTS_WINDOW_MIN} minutes.`,
        { codeAvailable: true },
      );
    }
    // Admission control: a place among the face sessions this process serves at once (FACE_SESSIONS_MAX), taken
    // before anything is written (503 `capacity_exceeded` with Retry-After when none is free) and held by the token.
    const { session, token, expiresAt } = await this.capacity.admit(principal.clinicId, patient.id, async () => {
      // One face token per patient at a time: a new session ends the patient's earlier unused ones (a desk that
      // reloaded the page starts again; nobody stockpiles tokens to run in parallel).
      await this.supersedeFaceTokens(principal, patient.id);
      const { token, hash } = newSessionToken();
      const expiresAt = new Date(Date.now() + this.config.SESSION_TOKEN_TTL_S * 1000);
      const session = await this.sessions.create({
        clinicId: principal.clinicId,
        workstationId: principal.workstationId,
        patientId: patient.id,
        appointmentId: input.appointmentId,
        channel: input.channel,
        tokenHash: hash,
        tokenExpiresAt: expiresAt,
      });
      return { session, sessionId: session.id, token, expiresAt };
    });
    await this.audit.record(actor, 'session.created', {
      clinicId: principal.clinicId,
      subject: session.id,
      detail: { channel: input.channel },
    });
    return { kind: 'face', sessionId: session.id, token, expiresAt };
  }

  /** Ends the patient's unused face tokens (their sessions are swept as expired). */
  private async supersedeFaceTokens(principal: SessionPrincipal, patientId: string): Promise<void> {
    const superseded = await this.sessions.supersedeFaceTokens(principal.clinicId, patientId, new Date());
    this.capacity.tokensSuperseded(principal.clinicId, patientId);
    if (superseded > 0) {
      await this.audit.record(`workstation:${principal.workstationId}`, 'session.superseded', {
        clinicId: principal.clinicId,
        subject: patientId,
        detail: { superseded },
      });
    }
  }

  // ---- Reading a session (GET /sessions/{id}) --------------------------------------------------------------------
  // Its repositories are injected as properties, so this block stays apart from the creation policy above.

  @Inject(VERDICTS) private readonly verdicts!: VerdictRepository;
  @Inject(CODES) private readonly codes!: CodeRepository;

  /** The clinic's session, its verdict and when its code expires; 404 `session_not_found`. */
  async view(clinicId: string, sessionId: string): Promise<SessionView> {
    const session = await this.sessions.get(clinicId, sessionId);
    if (!session) throw new IdentificationError('session_not_found', 'No such session in this clinic.');
    const verdict = await this.verdicts.forSession(clinicId, session.id);
    const code = await this.codes.forSession(clinicId, session.id);
    return { session, verdict, codeExpiresAt: code?.expiresAt ?? null };
  }
}

/** A session as GET /sessions/{id} shows it (SessionsService.view). */
export interface SessionView {
  session: IdentificationSession;
  /** null until the session is decided. */
  verdict: Verdict | null;
  /** When the six-digit code expires (code path only; the code itself never leaves the service). */
  codeExpiresAt: Date | null;
}

import { Inject, Injectable } from '@nestjs/common';
import { CONFIG, type Config } from '../config';
import {
  EVENTS,
  PATIENTS,
  SESSIONS,
  type Channel,
  type EventRepository,
  type PatientRepository,
  type SessionRepository,
} from '../storage/ports';
import { AuditService } from '../audit';
import { validateIin } from '../patients';
import { CodePathService, type CodeSent } from './code-path.service';
import { IdentificationError } from './errors';
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

/** A remote appointment: straight to the code path, the code is on its way. */
export type CreatedSession = CreatedFaceSession | ({ kind: 'code' } & CodeSent);

/** Creates identification sessions: policy (channel, attempts), the single-use token, the audit trail. */
@Injectable()
export class SessionsService {
  constructor(
    @Inject(CONFIG) private readonly config: Config,
    @Inject(PATIENTS) private readonly patients: PatientRepository,
    @Inject(SESSIONS) private readonly sessions: SessionRepository,
    @Inject(EVENTS) private readonly events: EventRepository,
    private readonly codePath: CodePathService,
    private readonly audit: AuditService,
  ) {}

  async create(
    principal: SessionPrincipal,
    input: { iin: string; appointmentId: string; channel: Channel },
  ): Promise<CreatedSession> {
    const iin = validateIin(input.iin);
    const actor = `workstation:${principal.workstationId}`;
    const patient = await this.patients.upsert(principal.clinicId, iin);
    if (input.channel === 'remote') {
      // Policy: only a patient physically present is photographed; online appointments use the code path.
      return { kind: 'code', ...(await this.codePath.startRemote(principal, patient, input.appointmentId)) };
    }
    const since = new Date(Date.now() - this.config.FACE_ATTEMPTS_WINDOW_MIN * 60_000);
    const failed = await this.sessions.countFailedFace(principal.clinicId, patient.id, since);
    if (failed >= this.config.FACE_ATTEMPTS_MAX) {
      await this.audit.record(actor, 'session.locked_out', {
        clinicId: principal.clinicId,
        subject: patient.id,
        detail: { failed, windowMinutes: this.config.FACE_ATTEMPTS_WINDOW_MIN },
      });
      // No session is opened, but the MIS learns of the lock-out.
      await this.events.appendLockout({
        clinicId: principal.clinicId,
        patientId: patient.id,
        appointmentId: input.appointmentId,
        channel: input.channel,
        workstationId: principal.workstationId,
      });
      throw new IdentificationError(
        'attempts_exceeded',
        `Too many failed face identifications for this patient; use the code path or retry after ` +
          `${this.config.FACE_ATTEMPTS_WINDOW_MIN} minutes.`,
      );
    }
    // One face token per patient at a time: a new session ends the patient's earlier unused ones (a desk that
    // reloaded the page starts again; nobody stockpiles tokens to run in parallel).
    const superseded = await this.sessions.supersedeFaceTokens(principal.clinicId, patient.id, new Date());
    if (superseded > 0) {
      await this.audit.record(actor, 'session.superseded', { clinicId: principal.clinicId, subject: patient.id, detail: { superseded } });
    }
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
    await this.audit.record(actor, 'session.created', {
      clinicId: principal.clinicId,
      subject: session.id,
      detail: { channel: input.channel },
    });
    return { kind: 'face', sessionId: session.id, token, expiresAt };
  }
}

import { Inject, Injectable } from '@nestjs/common';
import { CONFIG, type Config } from '../config';
import { PATIENTS, SESSIONS, type PatientRepository, type SessionRepository, type Channel } from '../storage/ports';
import { AuditService } from '../audit';
import { validateIin } from '../patients';
import { IdentificationError } from './errors';
import { newSessionToken } from './tokens';

export interface SessionPrincipal {
  clinicId: string;
  workstationId: string;
}

export interface CreatedSession {
  sessionId: string;
  token: string;
  expiresAt: Date;
}

/** Creates identification sessions: policy (channel, attempts), the single-use token, the audit trail. */
@Injectable()
export class SessionsService {
  constructor(
    @Inject(CONFIG) private readonly config: Config,
    @Inject(PATIENTS) private readonly patients: PatientRepository,
    @Inject(SESSIONS) private readonly sessions: SessionRepository,
    private readonly audit: AuditService,
  ) {}

  async create(
    principal: SessionPrincipal,
    input: { iin: string; appointmentId: string; channel: Channel },
  ): Promise<CreatedSession> {
    const iin = validateIin(input.iin);
    const actor = `workstation:${principal.workstationId}`;
    if (input.channel === 'remote') {
      // Policy: only a patient physically present is photographed; online appointments use the code path.
      await this.audit.record(actor, 'session.refused', {
        clinicId: principal.clinicId,
        subject: input.appointmentId,
        detail: { reason: 'face_id_not_applicable', channel: 'remote' },
      });
      throw new IdentificationError(
        'face_id_not_applicable',
        'Face identification is only for patients present at the desk; remote appointments use the code path.',
      );
    }
    const patient = await this.patients.upsert(principal.clinicId, iin);
    const since = new Date(Date.now() - this.config.FACE_ATTEMPTS_WINDOW_MIN * 60_000);
    const failed = await this.sessions.countFailedFace(principal.clinicId, patient.id, since);
    if (failed >= this.config.FACE_ATTEMPTS_MAX) {
      await this.audit.record(actor, 'session.locked_out', {
        clinicId: principal.clinicId,
        subject: patient.id,
        detail: { failed, windowMinutes: this.config.FACE_ATTEMPTS_WINDOW_MIN },
      });
      throw new IdentificationError(
        'attempts_exceeded',
        `Too many failed face identifications for this patient; use the code path or retry after ` +
          `${this.config.FACE_ATTEMPTS_WINDOW_MIN} minutes.`,
      );
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
    return { sessionId: session.id, token, expiresAt };
  }
}

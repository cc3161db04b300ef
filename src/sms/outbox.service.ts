import { Inject, Injectable } from '@nestjs/common';
import { AppError } from '../http';
import {
  PENDING_ENROLLMENTS,
  SESSIONS,
  type PendingEnrollmentRepository,
  type SessionRepository,
} from '../storage/ports';
import { DevSmsOutbox } from './dev-sms.outbox';
import { smsAdapterOf } from './metered-sms.gateway';
import { maskIin, SMS_GATEWAY, type SmsGateway, type SmsPurpose } from './sms-gateway';

/** One message of the development outbox as a clinic may see it. */
export interface ClinicOutboxMessage {
  purpose: SmsPurpose;
  /** The session of an identification code; else null. */
  sessionId: string | null;
  /** The patient's IIN, masked: `********1234`. */
  to: string;
  text: string;
  createdAt: Date;
}

/** The development outbox (SMS_ADAPTER=dev), one clinic at a time. */
@Injectable()
export class OutboxService {
  constructor(
    @Inject(SMS_GATEWAY) private readonly sms: SmsGateway,
    @Inject(SESSIONS) private readonly sessions: SessionRepository,
    @Inject(PENDING_ENROLLMENTS) private readonly pendings: PendingEnrollmentRepository,
  ) {}

  /** The outbox's messages to patients of this clinic, oldest first; 404 `not_found` unless SMS_ADAPTER=dev. */
  async list(clinicId: string): Promise<ClinicOutboxMessage[]> {
    const outbox = smsAdapterOf(this.sms);
    if (!(outbox instanceof DevSmsOutbox)) throw new AppError('not_found', 'No such resource.');
    const messages: ClinicOutboxMessage[] = [];
    // A message's reference is its session (or its template replacement request): only the clinic's own show.
    for (const m of outbox.list()) {
      const purpose = m.purpose ?? 'identification';
      const ours =
        purpose === 'enrollment'
          ? await this.pendings.get(clinicId, m.reference)
          : await this.sessions.get(clinicId, m.reference);
      if (!ours) continue;
      messages.push({
        purpose,
        sessionId: purpose === 'identification' ? m.reference : null,
        to: maskIin(m.iin),
        text: m.text,
        createdAt: m.createdAt,
      });
    }
    return messages;
  }
}

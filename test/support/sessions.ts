import { randomBytes } from 'node:crypto';
import type { INestApplication } from '@nestjs/common';
import { hashApiKey } from '../../src/auth';
import {
  PATIENTS,
  SESSIONS,
  WORKSTATIONS,
  type PatientRepository,
  type SessionRepository,
  type WorkstationRepository,
} from '../../src/storage/ports';

export interface OpenedSession {
  sessionId: string;
  patientId: string;
  clinicId: string;
  workstationId: string;
}

/**
 * An in-person face session of the workstation with this key, stored as POST /sessions stores one for an enrolled
 * patient, for tests that finish it in storage (VerdictRepository.finish) to get its MIS events, webhooks or
 * statistics. POST /sessions itself answers 409 `no_template` for a patient without a template, and enrolling one
 * would add a `template.enrolled` event that these tests do not count. The token is never shown (nobody connects).
 */
export async function openFaceSession(
  app: INestApplication,
  apiKey: string,
  input: { iin: string; appointmentId?: string },
): Promise<OpenedSession> {
  const workstation = await app.get<WorkstationRepository>(WORKSTATIONS).findByKeyHash(hashApiKey(apiKey));
  if (!workstation || workstation.revokedAt) throw new Error('openFaceSession: not a working workstation key.');
  const patient = await app.get<PatientRepository>(PATIENTS).upsert(workstation.clinicId, input.iin);
  const session = await app.get<SessionRepository>(SESSIONS).create({
    clinicId: workstation.clinicId,
    workstationId: workstation.id,
    patientId: patient.id,
    appointmentId: input.appointmentId ?? `apt-${randomBytes(3).toString('hex')}`,
    channel: 'in_person',
    tokenHash: randomBytes(32).toString('hex'),
    tokenExpiresAt: new Date(Date.now() + 60_000),
  });
  return {
    sessionId: session.id,
    patientId: patient.id,
    clinicId: workstation.clinicId,
    workstationId: workstation.id,
  };
}

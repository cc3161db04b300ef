import type { Prisma } from '../generated/sqlite/client';
import type {
  AuditEntry,
  Channel,
  Clinic,
  IdentificationSession,
  Patient,
  SessionState,
  TemplateRecord,
  Verdict,
  VerdictMethod,
  VerdictResult,
  Workstation,
} from '../ports';

/** Rows as Prisma returns them, mapped to the port types (which never expose key or token hashes). */

type Row<M extends Prisma.ModelName> = Prisma.TypeMap['model'][M]['payload']['scalars'];

const jsonObject = (v: unknown): Record<string, unknown> | null =>
  v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;

/** A JSON object for a Json column: undefined (= NULL) for null, else a plain-JSON copy. */
export const jsonInput = (v: Record<string, unknown> | null | undefined): Prisma.InputJsonValue | undefined =>
  v == null ? undefined : (JSON.parse(JSON.stringify(v)) as Prisma.InputJsonValue);

export const toClinic = (r: Row<'Clinic'>): Clinic => ({ id: r.id, name: r.name, createdAt: r.createdAt });

export const toWorkstation = (r: Row<'Workstation'>): Workstation => ({
  id: r.id,
  clinicId: r.clinicId,
  name: r.name,
  createdAt: r.createdAt,
  revokedAt: r.revokedAt,
});

export const toPatient = (r: Row<'Patient'>): Patient => ({
  id: r.id,
  clinicId: r.clinicId,
  iin: r.iin,
  createdAt: r.createdAt,
});

export const toTemplate = (r: Row<'Template'>): TemplateRecord => ({
  id: r.id,
  clinicId: r.clinicId,
  patientId: r.patientId,
  keyId: r.keyId,
  iv: Buffer.from(r.iv),
  ciphertext: Buffer.from(r.ciphertext),
  tag: Buffer.from(r.tag),
  createdAt: r.createdAt,
  revokedAt: r.revokedAt,
});

export const toSession = (r: Row<'IdentificationSession'>): IdentificationSession => ({
  id: r.id,
  clinicId: r.clinicId,
  workstationId: r.workstationId,
  patientId: r.patientId,
  appointmentId: r.appointmentId,
  channel: r.channel as Channel,
  state: r.state as SessionState,
  tokenExpiresAt: r.tokenExpiresAt,
  tokenUsedAt: r.tokenUsedAt,
  createdAt: r.createdAt,
  finishedAt: r.finishedAt,
});

export const toVerdict = (r: Row<'Verdict'>): Verdict => ({
  id: r.id,
  clinicId: r.clinicId,
  sessionId: r.sessionId,
  result: r.result as VerdictResult,
  method: r.method as VerdictMethod,
  score: r.score,
  liveness: jsonObject(r.liveness),
  timings: jsonObject(r.timings),
  createdAt: r.createdAt,
});

export const toAuditEntry = (r: Row<'AuditLog'>): AuditEntry => ({
  seq: r.seq,
  clinicId: r.clinicId,
  actor: r.actor,
  action: r.action,
  subject: r.subject,
  detail: jsonObject(r.detail),
  at: r.at,
  prevHash: r.prevHash,
  hash: r.hash,
});

import type { Prisma } from '../generated/sqlite/client';
import type {
  AuditEntry,
  Channel,
  EventPayload,
  EventType,
  MisClient,
  OneTimeCode,
  StoredEvent,
  WebhookDelivery,
  WebhookState,
  WebhookSubscription,
  Clinic,
  EncryptedTemplate,
  EnrollmentKey,
  IdentificationSession,
  PendingEnrollment,
  PendingEnrollmentState,
  Patient,
  SessionState,
  TemplateRecord,
  Verdict,
  VerdictMethod,
  VerdictResult,
  Workstation,
  SmsLanguages,
} from '../ports';
import { SMS_LANGUAGES } from '../ports';

/** Rows as Prisma returns them, mapped to the port types (which never expose key or token hashes). */

type Row<M extends Prisma.ModelName> = Prisma.TypeMap['model'][M]['payload']['scalars'];

const jsonObject = (v: unknown): Record<string, unknown> | null =>
  v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;

/** A JSON object for a Json column: undefined (= NULL) for null, else a plain-JSON copy. */
export const jsonInput = (v: Record<string, unknown> | null | undefined): Prisma.InputJsonValue | undefined =>
  v == null ? undefined : (JSON.parse(JSON.stringify(v)) as Prisma.InputJsonValue);

/** Sealed bytes as the ports hold them: Prisma's Uint8Arrays copied into Buffers (templates, webhook secrets). */
const encrypted = (keyId: string, iv: Uint8Array, ciphertext: Uint8Array, tag: Uint8Array): EncryptedTemplate => ({
  keyId,
  iv: Buffer.from(iv),
  ciphertext: Buffer.from(ciphertext),
  tag: Buffer.from(tag),
});

export const toClinic = (r: Row<'Clinic'>): Clinic => ({
  id: r.id,
  name: r.name,
  createdAt: r.createdAt,
  // A value this version does not know (written by a newer one) reads as the default.
  smsLanguages: (SMS_LANGUAGES as readonly string[]).includes(r.smsLanguages)
    ? (r.smsLanguages as SmsLanguages)
    : 'kk+ru',
});

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
  ...encrypted(r.keyId, r.iv, r.ciphertext, r.tag),
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
  refusalReason: r.refusalReason,
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
  keyId: r.keyId,
});

export const toStoredEvent = (r: Row<'Event'>): StoredEvent => ({
  id: r.id,
  clinicId: r.clinicId,
  seq: r.seq,
  type: r.type as EventType,
  payload: r.payload as unknown as EventPayload,
  createdAt: r.createdAt,
});

export const toCode = (r: Row<'OneTimeCode'>): OneTimeCode => ({
  id: r.id,
  clinicId: r.clinicId,
  sessionId: r.sessionId,
  patientId: r.patientId,
  workstationId: r.workstationId,
  codeHash: r.codeHash,
  expiresAt: r.expiresAt,
  attempts: r.attempts,
  sends: r.sends,
  usedAt: r.usedAt,
  createdAt: r.createdAt,
});

export const toMisClient = (r: Row<'MisClient'>): MisClient => ({
  id: r.id,
  clinicId: r.clinicId,
  name: r.name,
  createdAt: r.createdAt,
  rotatedAt: r.rotatedAt,
  revokedAt: r.revokedAt,
});

export const toWebhook = (r: Row<'WebhookSubscription'>): WebhookSubscription => ({
  id: r.id,
  clinicId: r.clinicId,
  url: r.url,
  secret: encrypted(r.secretKeyId, r.secretIv, r.secretCiphertext, r.secretTag),
  state: r.state as WebhookState,
  cursorSeq: r.cursorSeq,
  failures: r.failures,
  nextAttemptAt: r.nextAttemptAt,
  createdAt: r.createdAt,
  deadAt: r.deadAt,
});

export const toDelivery = (r: Row<'WebhookDelivery'>): WebhookDelivery => ({
  id: r.id,
  clinicId: r.clinicId,
  subscriptionId: r.subscriptionId,
  eventId: r.eventId,
  eventSeq: r.eventSeq,
  attempt: r.attempt,
  outcome: r.outcome as WebhookDelivery['outcome'],
  status: r.status,
  error: r.error,
  durationMs: r.durationMs,
  createdAt: r.createdAt,
});

export const toEnrollmentKey = (r: Row<'EnrollmentKey'>): EnrollmentKey => ({
  id: r.id,
  clinicId: r.clinicId,
  name: r.name,
  createdAt: r.createdAt,
  revokedAt: r.revokedAt,
});

export const toPendingEnrollment = (r: Row<'PendingEnrollment'>): PendingEnrollment => ({
  id: r.id,
  clinicId: r.clinicId,
  patientId: r.patientId,
  workstationId: r.workstationId,
  codeHash: r.codeHash,
  expiresAt: r.expiresAt,
  attempts: r.attempts,
  sends: r.sends,
  images: r.images,
  state: r.state as PendingEnrollmentState,
  template:
    r.templateKeyId !== null && r.templateIv !== null && r.templateCiphertext !== null && r.templateTag !== null
      ? encrypted(r.templateKeyId, r.templateIv, r.templateCiphertext, r.templateTag)
      : null,
  createdAt: r.createdAt,
  closedAt: r.closedAt,
});

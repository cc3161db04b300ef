/**
 * What the feature modules need from storage. src/storage implements these over Prisma (SQLite or PostgreSQL);
 * features depend on these types only, never on Prisma's.
 * Every method that reads or writes clinic data takes the clinic id: cross-clinic access is impossible by API.
 */

export type Channel = 'in_person' | 'remote';
export type SessionState = 'created' | 'connected' | 'finished' | 'expired';
export type VerdictResult = 'match' | 'no_match' | 'spoof_suspected' | 'no_template' | 'timeout' | 'error';
export type VerdictMethod = 'face' | 'code' | 'none';

export interface Clinic {
  id: string;
  name: string;
  createdAt: Date;
}

export interface Workstation {
  id: string;
  clinicId: string;
  name: string;
  createdAt: Date;
  revokedAt: Date | null;
}

export interface Patient {
  id: string;
  clinicId: string;
  iin: string;
  createdAt: Date;
}

/** An encrypted embedding. The plaintext never reaches storage. */
export interface EncryptedTemplate {
  keyId: string;
  /** AES-256-GCM nonce (12 bytes), ciphertext and tag (16 bytes). */
  iv: Buffer;
  ciphertext: Buffer;
  tag: Buffer;
}

export interface TemplateRecord extends EncryptedTemplate {
  id: string;
  clinicId: string;
  patientId: string;
  createdAt: Date;
  revokedAt: Date | null;
}

export interface IdentificationSession {
  id: string;
  clinicId: string;
  workstationId: string;
  patientId: string;
  appointmentId: string;
  channel: Channel;
  state: SessionState;
  tokenExpiresAt: Date;
  tokenUsedAt: Date | null;
  createdAt: Date;
  finishedAt: Date | null;
}

export interface Verdict {
  id: string;
  clinicId: string;
  sessionId: string;
  result: VerdictResult;
  method: VerdictMethod;
  /** Cosine similarity, or null when no comparison was made. */
  score: number | null;
  /** Small JSON objects of numbers (no biometric data). */
  liveness: Record<string, unknown> | null;
  timings: Record<string, unknown> | null;
  createdAt: Date;
}

export interface AuditEntry {
  seq: number;
  clinicId: string | null;
  actor: string;
  action: string;
  subject: string | null;
  /** Small JSON object, never biometric data. */
  detail: Record<string, unknown> | null;
  at: Date;
  prevHash: string;
  hash: string;
}

export interface ClinicRepository {
  create(name: string): Promise<Clinic>;
  get(id: string): Promise<Clinic | null>;
  /** How many clinics exist (a fresh install has none: see the demo bootstrap in src/auth). */
  count(): Promise<number>;
}

export interface WorkstationRepository {
  /** apiKeyHash: sha256 hex of the key; the key itself is never stored. */
  create(clinicId: string, name: string, apiKeyHash: string): Promise<Workstation>;
  findByKeyHash(apiKeyHash: string): Promise<Workstation | null>;
}

export interface PatientRepository {
  /** Finds or creates the patient of this clinic with this IIN. */
  upsert(clinicId: string, iin: string): Promise<Patient>;
  find(clinicId: string, iin: string): Promise<Patient | null>;
}

export interface TemplateRepository {
  /** Revokes any active template of the patient and stores this one, in one transaction. */
  replace(clinicId: string, patientId: string, template: EncryptedTemplate): Promise<TemplateRecord>;
  active(clinicId: string, patientId: string): Promise<TemplateRecord | null>;
  /** Returns how many were revoked (0 or 1). */
  revoke(clinicId: string, patientId: string): Promise<number>;
}

export interface SessionRepository {
  create(input: {
    clinicId: string;
    workstationId: string;
    patientId: string;
    appointmentId: string;
    channel: Channel;
    tokenHash: string;
    tokenExpiresAt: Date;
  }): Promise<IdentificationSession>;
  get(clinicId: string, id: string): Promise<IdentificationSession | null>;
  /**
   * Marks the token used and the session connected, atomically, only if it is unused and not expired at `now`.
   * Returns the session, or null when the token is unknown, used or expired (the caller cannot tell which).
   */
  consumeToken(tokenHash: string, now: Date): Promise<IdentificationSession | null>;
  /** Sessions of the patient finished with a failed face verdict since `since` (for the attempts limit). */
  countFailedFace(clinicId: string, patientId: string, since: Date): Promise<number>;
}

export interface VerdictRepository {
  /** Stores the verdict and finishes its session in one transaction. Returns null if it already has one. */
  finish(input: Omit<Verdict, 'id' | 'createdAt'>): Promise<Verdict | null>;
  forSession(clinicId: string, sessionId: string): Promise<Verdict | null>;
}

export interface AuditRepository {
  /** Appends an entry whose hash chains to the previous one (serialised, so the chain never forks). */
  append(entry: Pick<AuditEntry, 'clinicId' | 'actor' | 'action' | 'subject' | 'detail'>): Promise<AuditEntry>;
  list(clinicId: string | null, limit: number): Promise<AuditEntry[]>;
}

/** DI tokens: `@Inject(CLINICS) clinics: ClinicRepository`, and so on. */
export const CLINICS = Symbol('ClinicRepository');
export const WORKSTATIONS = Symbol('WorkstationRepository');
export const PATIENTS = Symbol('PatientRepository');
export const TEMPLATES = Symbol('TemplateRepository');
export const SESSIONS = Symbol('SessionRepository');
export const VERDICTS = Symbol('VerdictRepository');
export const AUDIT = Symbol('AuditRepository');

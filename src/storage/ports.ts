/**
 * What the feature modules need from storage. src/storage implements these over Prisma (SQLite or PostgreSQL);
 * features depend on these types only, never on Prisma's.
 * Every method that reads or writes clinic data takes the clinic id: cross-clinic access is impossible by API.
 */

export type Channel = 'in_person' | 'remote';
/** code_pending: the patient refused the photo (or the appointment is remote) and a six-digit code was sent. */
export type SessionState = 'created' | 'connected' | 'code_pending' | 'finished' | 'expired';
/** expired: nobody finished the session in time (a sweep ends it); locked_out: the code's attempts ran out. */
export type VerdictResult =
  | 'match'
  | 'no_match'
  | 'spoof_suspected'
  | 'no_template'
  | 'timeout'
  | 'error'
  | 'expired'
  | 'locked_out';
export type VerdictMethod = 'face' | 'code' | 'none';

/** The languages of a clinic's SMS texts to patients: both (Kazakh first, the default), or only one of them. */
export const SMS_LANGUAGES = ['kk+ru', 'kk', 'ru'] as const;
export type SmsLanguages = (typeof SMS_LANGUAGES)[number];

export interface Clinic {
  id: string;
  name: string;
  createdAt: Date;
  /** The languages of the clinic's SMS texts (`faceid clinic sms-languages`). */
  smsLanguages: SmsLanguages;
}

export interface Workstation {
  id: string;
  clinicId: string;
  name: string;
  createdAt: Date;
  revokedAt: Date | null;
}

/**
 * A key of a clinic's enrollment role (the registry, e.g. the import from the state database of individuals): it
 * enrolls, replaces and revokes templates at once. The key itself is never stored, only its sha256.
 */
export interface EnrollmentKey {
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
  /** Why the patient refused the photo, when they did. */
  refusalReason: string | null;
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
  /** HMAC-SHA256 under the chain key `keyId` (see audit-chain.ts); plain SHA-256 for legacy entries. */
  hash: string;
  /** The key ring key id whose derived chain key made `hash`; null for legacy entries written before the chain was keyed. */
  keyId: string | null;
}

/**
 * The MIS events (version 1) and their types: inferred from the zod schemas of the contract in src/events, so what
 * storage writes and what the contract says cannot drift. Storage picks an identification event's type from the
 * outcome (eventTypeOf() in src/events/payloads.ts).
 */
import type { EventPayload, EventType, IdentificationEventType } from '../events/payloads';

export type {
  EventType,
  IdentificationEventType,
  TemplateEventType,
  KeyEventType,
  IdentificationEventPayload,
  CameraChangedEventPayload,
  TemplateEventPayload,
  WorkstationKeyChangedEventPayload,
  MisClientKeyChangedEventPayload,
  KeyChangedEventPayload,
  EventPayload,
} from '../events/payloads';

/** Who changed a template: an enrollment key, a workstation (desk enrollment), or an administrator (`faceid enroll`). */
export type TemplateActorKind = 'enrollment_key' | 'workstation' | 'admin';

export interface TemplateActor {
  kind: TemplateActorKind;
  /** The enrollment key's or the workstation's id; null for an administrator. */
  id: string | null;
}

/** What happened to a key: a new holder with its first key, a rotation (a new key), a revocation (every key ends). */
export type KeyChange = 'created' | 'rotated' | 'revoked';

/** Which events a reader may see: a workstation key reads only the identification events of its own sessions. */
export interface EventFilter {
  workstationId: string;
}

export interface StoredEvent {
  id: string;
  clinicId: string;
  seq: number;
  type: EventType;
  payload: EventPayload;
  createdAt: Date;
}

/**
 * How many identification events of a window share these outcome columns (statistics read these, never the payload's
 * scores or liveness). Counted by the database (GROUP BY), so a window's size does not reach the process's memory.
 */
export interface OutcomeCount {
  type: IdentificationEventType;
  method: VerdictMethod;
  result: string;
  reason: string | null;
  count: number;
}

/** `count` durations d (whole ms) with lo <= d < hi. */
export interface DurationBucket {
  lo: number;
  hi: number;
  count: number;
}

/**
 * The times to verdict (ms) of a set of verdicts, as the database can give them: the asked quantiles computed exactly
 * (PostgreSQL's percentile_cont: linear interpolation between the closest ranks), or, where there is no such function
 * (SQLite), a histogram counted in SQL whose buckets are 1 ms wide below 2^bits ms and at most 2^(1 - bits) of their
 * lower bound above it (ascending, empty buckets left out).
 */
export type DurationDistribution =
  | { kind: 'exact'; count: number; quantiles: Array<{ q: number; value: number | null }> }
  | { kind: 'histogram'; count: number; buckets: DurationBucket[] };

/**
 * Time to verdict of the face verdicts (first frame to verdict), the code verdicts (code sent to verdict) and both,
 * counting only verdicts with a known duration.
 */
export interface VerdictDurations {
  face: DurationDistribution;
  code: DurationDistribution;
  all: DurationDistribution;
}

/** A six-digit code sent for a session; only its keyed hash is stored. */
export interface OneTimeCode {
  id: string;
  clinicId: string;
  sessionId: string;
  patientId: string;
  workstationId: string;
  codeHash: string;
  expiresAt: Date;
  attempts: number;
  /** How many times a code went out (1, then one more per resend). */
  sends: number;
  usedAt: Date | null;
  createdAt: Date;
}

export type MisClientState = 'active' | 'revoked';

/** A hospital information system that reads one clinic's events with its own API key. */
export interface MisClient {
  id: string;
  clinicId: string;
  name: string;
  createdAt: Date;
  rotatedAt: Date | null;
  revokedAt: Date | null;
}

export type WebhookState = 'active' | 'dead' | 'paused';

/** A webhook subscriber of one clinic. The signing secret is stored encrypted, like templates. */
export interface WebhookSubscription {
  id: string;
  clinicId: string;
  url: string;
  secret: EncryptedTemplate;
  state: WebhookState;
  /** seq of the clinic's last event delivered; the next delivery is the first event after it. */
  cursorSeq: number;
  /** Failed attempts in a row at the event after cursorSeq. */
  failures: number;
  nextAttemptAt: Date;
  createdAt: Date;
  deadAt: Date | null;
}

export interface WebhookDelivery {
  id: string;
  clinicId: string;
  subscriptionId: string;
  eventId: string;
  eventSeq: number;
  attempt: number;
  outcome: 'delivered' | 'failed';
  /** The receiver's HTTP status, null when none came (timeout, refused connection). */
  status: number | null;
  /** Short reason of a failure (never the response body). */
  error: string | null;
  durationMs: number;
  createdAt: Date;
}

/** A desk's camera as its browser reports it: the label, and a hash of the device id made by the client (hex). */
export interface ReportedCamera {
  label: string;
  deviceIdHash: string;
}

/**
 * What a camera report did. first: no camera was known for the workstation (now this one is; no event).
 * changed: a different camera replaced the known one (a `workstation.camera_changed` event was written).
 * Both false: the same camera again (its label is refreshed if it differs).
 */
export interface CameraReportResult {
  changed: boolean;
  first: boolean;
}

/** The stored liveness challenge settings of a workstation and its clinic (normalised comma lists; null = inherit). */
export interface LivenessChallengeSettings {
  workstation: string | null;
  clinic: string | null;
}

export interface ClinicRepository {
  create(name: string): Promise<Clinic>;
  /** Creates the clinic only if the database has none, atomically (several gateways may start at once); else null. */
  createFirst(name: string): Promise<Clinic | null>;
  get(id: string): Promise<Clinic | null>;
  /** Every clinic, oldest first (an install has a handful: for the admin CLI). */
  list(): Promise<Clinic[]>;
  /** How many clinics exist (a fresh install has none: see the demo bootstrap in src/auth). */
  count(): Promise<number>;
  /**
   * Sets the clinic's liveness challenges (a normalised comma list such as `light,blink`; null = the service's
   * LIVENESS_CHALLENGES). Returns the value it replaced, or null when there is no such clinic.
   */
  setLivenessChallenges(id: string, challenges: string | null): Promise<{ previous: string | null } | null>;
  /** Whether the clinic's workstations may enroll patients; null when there is no such clinic. */
  deskEnrollment(id: string): Promise<boolean | null>;
  /** Allows or forbids desk enrollment. Returns the value it replaced, or null when there is no such clinic. */
  setDeskEnrollment(id: string, allowed: boolean): Promise<{ previous: boolean } | null>;
  /** Sets the languages of the clinic's SMS texts. Returns the value it replaced, or null when there is no such clinic. */
  setSmsLanguages(id: string, languages: SmsLanguages): Promise<{ previous: SmsLanguages } | null>;
}

export interface WorkstationRepository {
  /** apiKeyHash: sha256 hex of the key; the key itself is never stored. */
  create(clinicId: string, name: string, apiKeyHash: string): Promise<Workstation>;
  /** Matches the current key, or a previous one while its grace lasts. Revoked workstations are returned too. */
  findByKeyHash(apiKeyHash: string): Promise<Workstation | null>;
  /** By id alone (not clinic-scoped): for the admin CLI, which names a workstation by its id. */
  findById(id: string): Promise<Workstation | null>;
  /**
   * Sets the workstation's liveness challenges (a normalised comma list; null = the clinic's setting). Returns the
   * value it replaced, or null when the clinic has no such workstation.
   */
  setLivenessChallenges(
    clinicId: string,
    id: string,
    challenges: string | null,
  ): Promise<{ previous: string | null } | null>;
  /** The workstation's and its clinic's settings, in one read; null when the clinic has no such workstation. */
  livenessChallenges(clinicId: string, id: string): Promise<LivenessChallengeSettings | null>;
  /**
   * Remembers the camera the workstation reported (label <= 200 characters; only sha256 of the client's deviceIdHash
   * is stored). In one transaction: the row is updated and, when a different camera replaces a known one, a
   * `workstation.camera_changed` event (the clinic's next seq) and an audit entry are written. Concurrent reports of
   * the same change write one event. Throws StorageError reference_not_found for an unknown workstation.
   */
  recordCamera(clinicId: string, workstationId: string, camera: ReportedCamera): Promise<CameraReportResult>;
}

export interface PatientRepository {
  /** Finds or creates the patient of this clinic with this IIN. */
  upsert(clinicId: string, iin: string): Promise<Patient>;
  find(clinicId: string, iin: string): Promise<Patient | null>;
  /** By id (e.g. a session's patient, to address the code SMS by IIN). */
  get(clinicId: string, id: string): Promise<Patient | null>;
}

/** Who stores a new template, and how (for its MIS event and audit entry). */
export interface TemplateChange {
  actor: TemplateActor;
  /** Photos that went into the template. */
  images: number;
  confirmation: 'patient_code' | null;
  /**
   * Only if the patient never had a template in this clinic (not even a revoked one): otherwise StorageError
   * `template_exists`, and nothing is written. A workstation's enrollment without the patient's code.
   */
  firstOnly?: boolean;
}

/** A stored template, the one it replaced, and the MIS event written with it. */
export interface TemplateChangeResult {
  template: TemplateRecord;
  previousTemplateId: string | null;
  event: StoredEvent;
}

export interface TemplateRepository {
  /**
   * Revokes any active template of the patient and stores this one, in one transaction with its MIS event
   * (`template.enrolled`, or `template.replaced` when one was active) and its audit entry.
   */
  replace(
    clinicId: string,
    patientId: string,
    template: EncryptedTemplate,
    change: TemplateChange,
  ): Promise<TemplateChangeResult>;
  active(clinicId: string, patientId: string): Promise<TemplateRecord | null>;
  /**
   * Revokes the active template, with its `template.revoked` event and audit entry in the same transaction. Returns
   * how many were revoked (0 or 1; no event for 0).
   */
  revoke(clinicId: string, patientId: string, by: TemplateActor): Promise<number>;
}

export interface EnrollmentKeyRepository {
  /** apiKeyHash: sha256 hex of the key. Throws StorageError reference_not_found for an unknown clinic. */
  create(clinicId: string, name: string, apiKeyHash: string): Promise<EnrollmentKey>;
  /** Revoked keys are returned too. */
  findByKeyHash(apiKeyHash: string): Promise<EnrollmentKey | null>;
  list(clinicId: string): Promise<EnrollmentKey[]>;
  /** True when an active key was revoked. */
  revoke(clinicId: string, id: string): Promise<boolean>;
}

/** open: waiting for the code; the others are final, and the pending reference is gone. */
export type PendingEnrollmentState = 'open' | 'confirmed' | 'expired' | 'locked_out' | 'superseded' | 'send_failed';

/** A workstation's replacement of a patient's template, waiting for the code sent to the patient. */
export interface PendingEnrollment {
  id: string;
  clinicId: string;
  patientId: string;
  workstationId: string;
  codeHash: string;
  expiresAt: Date;
  attempts: number;
  sends: number;
  images: number;
  state: PendingEnrollmentState;
  /** The new reference, sealed (bound to this request); null once the request is closed. */
  template: EncryptedTemplate | null;
  createdAt: Date;
  closedAt: Date | null;
}

export interface PendingEnrollmentRepository {
  /**
   * Opens a request for the patient in one transaction: any open request of the patient is closed first (expired
   * when past its expiry, else superseded) and its pending reference wiped.
   */
  open(input: {
    id: string;
    clinicId: string;
    patientId: string;
    workstationId: string;
    codeHash: string;
    expiresAt: Date;
    images: number;
    template: EncryptedTemplate;
  }): Promise<PendingEnrollment>;
  /** The patient's open request (whatever its expiry), or null. */
  current(clinicId: string, patientId: string): Promise<PendingEnrollment | null>;
  get(clinicId: string, id: string): Promise<PendingEnrollment | null>;
  /**
   * A new photo and code for the same open request (the desk sent again): replaces the reference, the hash and the
   * expiry, keeps the wrong attempts, counts the send. Only while open, unexpired, below maxAttempts and maxSends.
   */
  resend(
    id: string,
    input: {
      codeHash: string;
      expiresAt: Date;
      images: number;
      template: EncryptedTemplate;
      maxAttempts: number;
      maxSends: number;
    },
    now: Date,
  ): Promise<PendingEnrollment | null>;
  /**
   * Counts one wrong code, atomically, only while the request is open, unexpired and below maxAttempts. The last
   * allowed attempt closes it `locked_out` and wipes the reference. Returns the attempts, or null.
   */
  recordFailure(id: string, maxAttempts: number, now: Date): Promise<number | null>;
  /**
   * The right code: in one transaction the request is closed `confirmed` (only while open, unexpired and below
   * maxAttempts), its reference wiped, and `template` stored as the patient's template with its event and audit
   * entry (TemplateRepository.replace). Null when the request could no longer be confirmed.
   */
  confirm(
    id: string,
    input: { maxAttempts: number; now: Date; template: EncryptedTemplate; change: TemplateChange },
  ): Promise<TemplateChangeResult | null>;
  /** Closes an open request (expired, send_failed) and wipes its reference. True when this call closed it. */
  close(id: string, state: 'expired' | 'send_failed', now: Date): Promise<boolean>;
  /** Closes open requests past their expiry at `now` as `expired`, wiping their references; at most `limit`. */
  expire(now: Date, limit: number): Promise<PendingEnrollment[]>;
}

/** What admitFace() decided: the session admitted, the token not usable (unknown, used or expired: one answer), or
 * the patient's attempts used up (failed plus in flight). */
export type FaceAdmission =
  | { ok: true; session: IdentificationSession }
  | { ok: false; reason: 'token_invalid' }
  | { ok: false; reason: 'attempts_exceeded'; clinicId: string; sessionId: string; failed: number; inFlight: number };

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
   * Ends the patient's earlier unused, unexpired face tokens (the sweep then expires their sessions), so a patient
   * holds one face token at a time. Returns how many it ended.
   */
  supersedeFaceTokens(clinicId: string, patientId: string, now: Date): Promise<number>;
  /**
   * Marks the token used and the session connected, atomically, only if it is unused and not expired at `now`.
   * Returns the session, or null when the token is unknown, used or expired (the caller cannot tell which).
   */
  consumeToken(tokenHash: string, now: Date): Promise<IdentificationSession | null>;
  /**
   * consumeToken() for a face session, counting the patient's attempts at admission, atomically: refused (and the
   * token left unused) when the patient's failed face sessions since `since` plus those connected right now reach
   * `max`, so tokens opened in advance and used in parallel cannot outrun the attempts limit.
   */
  admitFace(tokenHash: string, now: Date, attempts: { since: Date; max: number }): Promise<FaceAdmission>;
  /** Sessions of the patient finished with a failed face verdict since `since` (for the attempts limit). */
  countFailedFace(clinicId: string, patientId: string, since: Date): Promise<number>;
  /**
   * Starts the code path in one transaction: the session (created or connected, no verdict) becomes code_pending,
   * the code's hash is stored and, for a refusal, an `identification.refused` event is written. Returns the session,
   * or null when it is finished, expired or already on the code path.
   */
  beginCodePath(input: {
    clinicId: string;
    sessionId: string;
    codeHash: string;
    codeExpiresAt: Date;
    /** Present when the patient refused the photo (absent for a remote appointment). */
    refusal?: { reason: string };
  }): Promise<IdentificationSession | null>;
  /** Sessions nobody can finish any more at `now`: unused expired tokens, connections older than `staleBefore`,
   *  codes past their expiry. The sweep finishes them with the verdict `expired`. */
  stale(now: Date, staleBefore: Date, limit: number): Promise<IdentificationSession[]>;
}

export interface CodeRepository {
  forSession(clinicId: string, sessionId: string): Promise<OneTimeCode | null>;
  /**
   * Counts one wrong attempt, atomically and only while the code is unused, unexpired and below maxAttempts.
   * Returns the attempts after the increment, or null when the code could no longer be tried.
   */
  recordFailure(id: string, maxAttempts: number, now: Date): Promise<number | null>;
  /**
   * A new code for the same session (the SMS was lost): replaces the hash and the expiry, keeps the wrong attempts,
   * counts the send. Only while unused, below maxAttempts and below maxSends; returns the code, or null.
   */
  replace(
    id: string,
    input: { codeHash: string; expiresAt: Date; maxAttempts: number; maxSends: number },
  ): Promise<OneTimeCode | null>;
  // Marking a code used: Work.codes.markUsed, in the unit of work that stores the verdict it earns.
  /**
   * Wrong attempts since `since` of a patient's or a workstation's codes (the brute-force caps): identification codes
   * and the codes that confirm a workstation's replacement of a template alike.
   */
  failedAttempts(clinicId: string, by: { patientId: string } | { workstationId: string }, since: Date): Promise<number>;
}

export interface EventRepository {
  /** Events of the clinic with seq > afterSeq, ascending, at most `limit` (only those `filter` lets through). */
  after(clinicId: string, afterSeq: number, limit: number, filter?: EventFilter): Promise<StoredEvent[]>;
  /** The clinic's event with this id (null also when `filter` hides it). */
  get(clinicId: string, id: string, filter?: EventFilter): Promise<StoredEvent | null>;
  /** The newest of the clinic's events with seq <= atOrBefore that `filter` lets through, or null. */
  lastAtOrBefore(clinicId: string, atOrBefore: number, filter?: EventFilter): Promise<StoredEvent | null>;
  /** The clinic's newest seq (0 when it has no event). */
  latestSeq(clinicId: string): Promise<number>;
  /**
   * The clinic's identification events with from <= createdAt < to, counted by type, method, result and reason in
   * the database (a few rows, whatever the window's size).
   */
  outcomeCounts(clinicId: string, from: Date, to: Date): Promise<OutcomeCount[]>;
  /**
   * The times to verdict of the clinic's face and code verdicts with from <= createdAt < to, aggregated in the
   * database: the exact `quantiles` (0..1) where it has a percentile function (PostgreSQL), else a histogram with
   * `histogramBits` significant bits (SQLite; see DurationDistribution). Never the rows themselves.
   */
  verdictDurations(
    clinicId: string,
    from: Date,
    to: Date,
    request: { quantiles: readonly number[]; histogramBits: number },
  ): Promise<VerdictDurations>;
  /**
   * Writes a lock-out refused before any session existed (a face attempts limit), in its own transaction, with
   * `options.audit` appended in the same one (neither is written without the other).
   */
  appendLockout(
    input: {
      clinicId: string;
      patientId: string;
      appointmentId: string;
      channel: Channel;
      /** The workstation that asked for the session (it may read the event). */
      workstationId?: string;
    },
    options?: { audit?: NewAuditEntry },
  ): Promise<StoredEvent>;
  /**
   * Calls `listener(clinicId)` after every commit that wrote events through this storage (this process only:
   * readers poll too, for events other instances wrote). Returns the unsubscribe function.
   */
  onCommitted(listener: (clinicId: string) => void): () => void;
}

export interface MisClientRepository {
  /** apiKeyHash: sha256 hex of the key. */
  create(clinicId: string, name: string, apiKeyHash: string): Promise<MisClient>;
  /** Matches the current key, or a previous one while its grace lasts. Revoked clients are returned too. */
  findByKeyHash(apiKeyHash: string, now: Date): Promise<MisClient | null>;
  list(clinicId: string): Promise<MisClient[]>;
  // Rotation and revocation: KeyRepository (one lifecycle for workstation and MIS keys).
}

/** Whose API key: a workstation's (`fid_ws_...`) or an MIS client's (`fid_mis_...`). */
export type KeyHolderKind = 'workstation' | 'mis_client';

/** A key replaced by a rotation, still working until validUntil. Never its hash. */
export interface PreviousKeyInfo {
  id: string;
  retiredAt: Date;
  validUntil: Date;
}

/** A workstation or an MIS client, with the state of its keys. */
export interface KeyHolder {
  kind: KeyHolderKind;
  id: string;
  clinicId: string;
  name: string;
  createdAt: Date;
  /** The last rotation; null if never. */
  rotatedAt: Date | null;
  revokedAt: Date | null;
  /** Previous keys still in their grace at the time of reading, the first to end first (none once revoked). */
  previousKeys: PreviousKeyInfo[];
}

/** Who changes a key: the audit actor (`cli`, `admin`, `mis:<id>`), and whether the operator or the holder itself. */
export interface KeyActor {
  actor: string;
  by: 'operator' | 'self';
}

/** What a key hash is worth now: the holder's current key, a previous key in its grace, or no longer anything. */
export type KeyState = 'current' | 'previous' | 'revoked' | 'expired';

export type RotateKeyResult =
  | { ok: true; holder: KeyHolder; previousKeyValidUntil: Date | null }
  | { ok: false; reason: 'not_found' | 'too_many_previous_keys' };

/**
 * The lifecycle of workstation and MIS client keys. Every change writes its audit entry and its MIS event
 * (`workstation.key_changed`, `mis_client.key_changed`) in the same transaction.
 */
export interface KeyRepository {
  /** A new holder of the clinic with its first key (apiKeyHash: sha256 hex). StorageError reference_not_found for no such clinic. */
  create(kind: KeyHolderKind, clinicId: string, name: string, apiKeyHash: string, who: KeyActor): Promise<KeyHolder>;
  get(kind: KeyHolderKind, clinicId: string, id: string, now: Date): Promise<KeyHolder | null>;
  /** The clinic's holders of this kind, oldest first, revoked ones too. */
  list(kind: KeyHolderKind, clinicId: string, now: Date): Promise<KeyHolder[]>;
  /**
   * Makes newKeyHash the holder's current key. The replaced key keeps working until graceUntil; with graceUntil null it
   * stops at once, and so does every previous key still in its grace (the operator's answer to a leaked key).
   * Otherwise previous keys keep their own end: a rotation never shortens another key's grace. Refused with
   * too_many_previous_keys when maxPrevious keys are still in their grace; not_found for no such active holder.
   */
  rotate(
    input: {
      kind: KeyHolderKind;
      clinicId: string;
      id: string;
      newKeyHash: string;
      graceUntil: Date | null;
      maxPrevious: number;
      now: Date;
    },
    who: KeyActor,
  ): Promise<RotateKeyResult>;
  /** Revokes the holder: its current and previous keys stop at once. Null when there is no such active holder. */
  revoke(kind: KeyHolderKind, clinicId: string, id: string, who: KeyActor, now: Date): Promise<KeyHolder | null>;
  /** The state of each of these key hashes at `now` (hashes no holder ever had are left out). */
  states(keyHashes: readonly string[], now: Date): Promise<Map<string, KeyState>>;
}

export interface WebhookRepository {
  /** A new active subscription that starts after the clinic's event `cursorSeq`. */
  create(input: {
    clinicId: string;
    url: string;
    secret: EncryptedTemplate;
    cursorSeq: number;
  }): Promise<WebhookSubscription>;
  get(clinicId: string, id: string): Promise<WebhookSubscription | null>;
  list(clinicId: string): Promise<WebhookSubscription[]>;
  remove(clinicId: string, id: string): Promise<boolean>;
  /**
   * Active subscriptions with an event after their cursor, whose next attempt is due at `now` and that no other
   * dispatcher holds, leased to `owner` until `leaseUntil` (several service instances on one PostgreSQL share the
   * work). Idle subscriptions cost nothing.
   */
  claimDue(now: Date, owner: string, leaseUntil: Date, limit: number): Promise<WebhookSubscription[]>;
  /**
   * Records one attempt and moves the subscription on, in one transaction: delivered advances cursorSeq and resets
   * failures; failed counts it and sets nextAttemptAt, or marks the subscription dead. Releases the lease.
   * The subscription moves only if its cursor is still `fromCursorSeq` (and, for a failure, it is still active): a
   * replay, resume or pause made while the attempt was in flight wins, and the attempt is only recorded.
   * Ignored (returns false) when `owner` no longer holds the lease.
   */
  recordAttempt(input: {
    owner: string;
    /** The cursor the subscription had when it was claimed. */
    fromCursorSeq: number;
    delivery: Omit<WebhookDelivery, 'id' | 'createdAt'>;
    nextAttemptAt: Date;
    dead: boolean;
  }): Promise<boolean>;
  /** Releases a lease without an attempt (nothing to deliver). */
  release(id: string, owner: string, nextAttemptAt: Date): Promise<void>;
  /** Active again from where it stopped (or from after `cursorSeq`, to replay), failures reset, due now. */
  resume(clinicId: string, id: string, cursorSeq?: number): Promise<WebhookSubscription | null>;
  pause(clinicId: string, id: string): Promise<WebhookSubscription | null>;
  deliveries(clinicId: string, subscriptionId: string, limit: number): Promise<WebhookDelivery[]>;
}

/**
 * One bin of a calibration histogram to count `count` more times (src/calibration decides the metrics and the bins;
 * storage only adds them up per clinic, the session's workstation and the verdict's UTC day).
 */
export interface CalibrationIncrement {
  metric: string;
  bin: string;
  count: number;
}

/** A bin's count added up over a window of days (and over the workstations asked for). */
export interface CalibrationCount {
  workstationId: string;
  metric: string;
  bin: string;
  count: number;
}

export interface CalibrationRepository {
  /**
   * The clinic's calibration counts of the UTC days fromDay..toDay (YYYY-MM-DD, both included), summed per
   * workstation, metric and bin in the database (one row per bin in use, whatever the number of days).
   */
  totals(clinicId: string, range: { fromDay: string; toDay: string }): Promise<CalibrationCount[]>;
}

/** An audit entry to append (the chain's fields are storage's: seq, time, hashes, key id). */
export type NewAuditEntry = Pick<AuditEntry, 'clinicId' | 'actor' | 'action' | 'subject' | 'detail'>;

/** How a verdict may finish its session (src/identification/session-state.ts decides; storage applies it). */
export interface FinishOptions {
  /**
   * Narrows the states the session may be finished from, e.g. to `connected` (a dropped face connection must not end
   * a session that meanwhile went on to the code path). A verdict finishes only the states its method may finish
   * (finishableStates() of src/identification/session-state.ts), of these.
   */
  from?: readonly SessionState[];
  /** The bins this verdict adds to its workstation's calibration histograms of the day, in the same transaction. */
  calibration?: readonly CalibrationIncrement[];
  /** The verdict's audit entry, appended to the chain in the same transaction (so neither is stored without the other). */
  audit?: NewAuditEntry;
}

export interface VerdictRepository {
  /**
   * Stores the verdict, finishes its session (finalState(): `expired` for the result `expired`, else `finished`) and
   * writes its MIS event (and, given one, its audit entry), in one transaction. Returns null, writing nothing, if the
   * session already has a verdict or is in none of the states the verdict may finish (a face verdict finishes a
   * created or connected session; a code verdict one on the code path; `none`, the sweep's, any of them; narrowed by
   * `options.from`). StorageError reference_not_found for no such session in the clinic.
   */
  finish(input: Omit<Verdict, 'id' | 'createdAt'>, options?: FinishOptions): Promise<Verdict | null>;
  forSession(clinicId: string, sessionId: string): Promise<Verdict | null>;
}

export interface AuditRepository {
  /** Appends an entry whose keyed hash chains to the previous one (serialised, so the chain never forks). */
  append(entry: NewAuditEntry): Promise<AuditEntry>;
  list(clinicId: string | null, limit: number): Promise<AuditEntry[]>;
}

/**
 * The repositories of one transaction (UnitOfWork.run): what is written through them commits together, or not at
 * all. Each method behaves as the repository's own, except that nothing is committed before the unit ends.
 */
export interface Work {
  readonly codes: {
    /**
     * Marks the code used, only if it is unused, unexpired at `now` and below maxAttempts. True when this call won.
     * Only here, so that a code is used together with the verdict it earns: a unit that cannot store the verdict
     * throws, and the code stays unused.
     */
    markUsed(id: string, maxAttempts: number, now: Date): Promise<boolean>;
  };
  readonly verdicts: Pick<VerdictRepository, 'finish'>;
}

/**
 * Groups writes into one transaction: the one way services ask for one (repositories group their own writes the
 * same way). Audit entries are appended last, just before the commit, so the chain's lock is held briefly and
 * always after the other locks (no deadlock between units).
 */
export interface UnitOfWork {
  /**
   * Runs `fn` with repositories bound to one transaction and commits when it resolves. Whatever it throws rolls back
   * every write made through `work` and is rethrown (throw to undo: e.g. a code marked used whose verdict could not
   * be stored). Inside `fn` use only `work`: another storage call would wait for this transaction on SQLite, and no
   * side effect outside storage belongs there (send messages after the commit).
   */
  run<T>(fn: (work: Work) => Promise<T>): Promise<T>;
}

/** DI tokens: `@Inject(CLINICS) clinics: ClinicRepository`, and so on. */
export const CLINICS = Symbol('ClinicRepository');
export const WORKSTATIONS = Symbol('WorkstationRepository');
export const PATIENTS = Symbol('PatientRepository');
export const TEMPLATES = Symbol('TemplateRepository');
export const SESSIONS = Symbol('SessionRepository');
export const VERDICTS = Symbol('VerdictRepository');
export const AUDIT = Symbol('AuditRepository');
export const CODES = Symbol('CodeRepository');
export const EVENTS = Symbol('EventRepository');
export const MIS_CLIENTS = Symbol('MisClientRepository');
export const KEYS = Symbol('KeyRepository');
export const WEBHOOKS = Symbol('WebhookRepository');
export const ENROLLMENT_KEYS = Symbol('EnrollmentKeyRepository');
export const PENDING_ENROLLMENTS = Symbol('PendingEnrollmentRepository');
export const CALIBRATION = Symbol('CalibrationRepository');
export const UNIT_OF_WORK = Symbol('UnitOfWork');

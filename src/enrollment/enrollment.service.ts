import { randomUUID } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { AuditService } from '../audit';
import { CONFIG, type Config } from '../config';
import { EngineService, type Analysis } from '../engine';
import { CodeHasher, newCode } from '../identification/code-hash';
import { KeyRing, type SealContext } from '../keyring';
import { validateIin } from '../patients';
import { SMS_GATEWAY, SmsError, smsText, type SmsGateway } from '../sms';
import { StorageError } from '../storage/errors';
import {
  CLINICS,
  CODES,
  PATIENTS,
  PENDING_ENROLLMENTS,
  TEMPLATES,
  type ClinicRepository,
  type CodeRepository,
  type EncryptedTemplate,
  type Patient,
  type PatientRepository,
  type PendingEnrollment,
  type PendingEnrollmentRepository,
  type TemplateChangeResult,
  type TemplateRepository,
} from '../storage/ports';
import { asEnroller, auditActorOf, templateActorOf, type Enroller } from './enroller';
import { EnrollmentError } from './errors';
import { EMBEDDING_LENGTH, TemplateCipher } from './template-crypto';

export const MAX_IMAGES = 5;

/** The template was stored (a first enrollment, or a replacement the enroller may make at once). */
export interface EnrollResult {
  status: 'enrolled';
  patientIin: string;
  templateId: string;
  /** How many images went into the template. */
  images: number;
  createdAt: Date;
  /** True when it replaced an active template. */
  replaced: boolean;
  /** The MIS event written with it (`template.enrolled` or `template.replaced`). */
  eventId: string;
}

/** A workstation asked to replace a template: nothing is stored until it sends the code the patient received. */
export interface ConfirmationSent {
  status: 'code_sent';
  patientIin: string;
  images: number;
  codeExpiresAt: Date;
  /** How many more times the desk may send a new photo (and so a new code) for this request. */
  resendsLeft: number;
}

export type EnrollOutcome = EnrollResult | ConfirmationSent;

/** What a workstation principal of the API-key guard looks like (a workstation enroller without a `kind`). */
type WorkstationPrincipal = { clinicId: string; workstationId: string };

type DeskEnroller = Extract<Enroller, { kind: 'workstation' }>;

/** Binds a confirmation code's hash to its request (session codes are bound to session ids: never the same input). */
const codeBinding = (pendingId: string) => `enrollment:${pendingId}`;

/** What the pending reference is sealed to: moved to another request, patient or clinic it no longer opens. */
const pendingContext = (p: { clinicId: string; patientId: string; id: string }): SealContext => ({
  purpose: 'pending-template',
  ids: [p.clinicId, p.patientId, p.id],
});

function wipeFaces(analysis: Analysis | undefined): void {
  for (const face of analysis?.faces ?? []) face.embedding?.fill(0);
}

/**
 * Reference templates: enroll (the mean embedding of 1-5 photos, encrypted), replace, revoke, and load for matching.
 *
 * Who may do what (see Enroller): the enrollment role and the administrator enroll, replace and revoke at once; a
 * workstation only where its clinic allows desk enrollment, and then a replacement of an existing template (or a
 * new one after a revocation) waits for the six-digit code sent to the patient: the new reference is held sealed
 * until the desk sends the right code, and wiped when it expires. Every stored or revoked template has its MIS event
 * and audit entry, written in the same transaction.
 *
 * Embeddings live only in memory and are zeroed once used; the audit trail gets counts, never biometrics.
 */
@Injectable()
export class EnrollmentService {
  private readonly hasher: CodeHasher;

  constructor(
    @Inject(CONFIG) private readonly config: Config,
    @Inject(EngineService) private readonly engine: Pick<EngineService, 'get'>,
    private readonly cipher: TemplateCipher,
    private readonly ring: KeyRing,
    private readonly audit: AuditService,
    @Inject(CLINICS) private readonly clinics: ClinicRepository,
    @Inject(PATIENTS) private readonly patients: PatientRepository,
    @Inject(TEMPLATES) private readonly templates: TemplateRepository,
    @Inject(PENDING_ENROLLMENTS) private readonly pendings: PendingEnrollmentRepository,
    @Inject(CODES) private readonly codes: CodeRepository,
    @Inject(SMS_GATEWAY) private readonly sms: SmsGateway,
  ) {
    this.hasher = new CodeHasher(ring);
  }

  /**
   * Enrolls (or re-enrolls) the patient of the enroller's clinic from JPEG photos, each showing exactly one face.
   * A workstation gets `code_sent` instead when the patient has (or had) a template: see confirm().
   * Consumes the images: every buffer is zeroed when this returns or throws.
   * Errors: iin_invalid, invalid_request (image count), desk_enrollment_disabled, enroll_no_face,
   * enroll_multiple_faces, the engine's frame_* codes, busy; for a workstation's replacement also
   * code_attempts_exceeded, code_resend_limit and sms_unavailable.
   */
  async enroll(by: Enroller | WorkstationPrincipal, iin: string, images: Buffer[]): Promise<EnrollOutcome> {
    const enroller = asEnroller(by);
    let embedding: Float32Array | null = null;
    try {
      validateIin(iin);
      if (images.length < 1 || images.length > MAX_IMAGES) {
        throw new EnrollmentError('invalid_request', `Send 1 to ${MAX_IMAGES} images.`);
      }
      if (enroller.kind === 'workstation') await this.requireDeskEnrollment(enroller, 'enroll');
      embedding = await this.embed(images);
      const patient = await this.patients.upsert(enroller.clinicId, iin);
      if (enroller.kind !== 'workstation') return await this.store(enroller, patient, embedding, images.length, false);
      try {
        // A first enrollment proceeds at once (a copy: encryption zeroes what it is given).
        return await this.store(enroller, patient, Float32Array.from(embedding), images.length, true);
      } catch (err) {
        if (!(err instanceof StorageError && err.code === 'template_exists')) throw err;
      }
      return await this.requestConfirmation(enroller, patient, embedding, images.length);
    } finally {
      embedding?.fill(0);
      // The engine wiped the images it analysed; these are the ones it never saw (after a failure).
      for (const image of images) image.fill(0);
    }
  }

  /**
   * A workstation sends the code the patient received for its replacement of the patient's template: right, the
   * pending reference becomes the template (`template.replaced`, confirmation `patient_code`); wrong, `code_invalid`
   * with attemptsLeft, and after CODE_ATTEMPTS_MAX wrong codes the request is locked out and its reference wiped.
   * Errors: iin_invalid, desk_enrollment_disabled, confirmation_not_found, code_invalid, code_expired,
   * code_locked_out, code_attempts_exceeded.
   */
  async confirm(by: Enroller | WorkstationPrincipal, iin: string, code: string): Promise<EnrollResult> {
    const enroller = asEnroller(by);
    validateIin(iin);
    if (enroller.kind !== 'workstation') throw this.noConfirmation(); // only desks wait for a patient's code
    await this.requireDeskEnrollment(enroller, 'confirm');
    const patient = await this.patients.find(enroller.clinicId, iin);
    const pending = patient && (await this.pendings.current(enroller.clinicId, patient.id));
    if (!patient || !pending || pending.workstationId !== enroller.workstationId) throw this.noConfirmation();
    const now = new Date();
    if (pending.expiresAt.getTime() <= now.getTime()) {
      await this.expire(pending, now);
      throw this.expired();
    }
    await this.checkCaps(enroller, patient.id);
    const max = this.config.CODE_ATTEMPTS_MAX;

    if (this.hasher.verify(pending.codeHash, codeBinding(pending.id), code)) {
      if (!pending.template) throw await this.lostRace(enroller, pending);
      const encrypted = this.unsealForStorage(pending, pending.template);
      const result = await this.pendings.confirm(pending.id, {
        maxAttempts: max,
        now,
        template: encrypted,
        change: { actor: templateActorOf(enroller), images: pending.images, confirmation: 'patient_code' },
      });
      if (!result) throw await this.lostRace(enroller, pending);
      return this.enrolled(iin, result, pending.images);
    }

    const attempts = await this.pendings.recordFailure(pending.id, max, now);
    if (attempts === null) throw await this.lostRace(enroller, pending);
    const attemptsLeft = Math.max(0, max - attempts);
    await this.audit.record(auditActorOf(enroller), 'template.confirmation_rejected', {
      clinicId: enroller.clinicId,
      subject: patient.id,
      detail: { request: pending.id, attempts, attemptsLeft },
    });
    if (attemptsLeft > 0) {
      throw new EnrollmentError(
        'code_invalid',
        `Wrong code; ${attemptsLeft} ${attemptsLeft === 1 ? 'attempt' : 'attempts'} left.`,
        { attemptsLeft },
      );
    }
    throw new EnrollmentError(
      'code_locked_out',
      'Wrong code, and the last attempt: the new reference photo was discarded and the patient keeps the template ' +
        'they had. Send the photo again for a new code.',
      { attemptsLeft: 0 },
    );
  }

  /**
   * Revokes the patient's active template (its `template.revoked` event and audit entry in the same transaction).
   * Errors: iin_invalid, template_not_found (also for another clinic's patient), desk_enrollment_disabled (a
   * workstation of a clinic without desk enrollment).
   */
  async revoke(by: Enroller | WorkstationPrincipal, iin: string): Promise<void> {
    const enroller = asEnroller(by);
    validateIin(iin);
    const patient = await this.patients.find(enroller.clinicId, iin);
    const active = patient && (await this.templates.active(enroller.clinicId, patient.id));
    if (!patient || !active) throw this.noTemplate();
    if (enroller.kind === 'workstation') await this.requireDeskEnrollment(enroller, 'revoke');
    const revoked = await this.templates.revoke(enroller.clinicId, patient.id, templateActorOf(enroller));
    if (revoked === 0) throw this.noTemplate();
  }

  /**
   * Closes the replacement requests past their expiry, wiping their pending references (the sweep calls it; also
   * at a confirmation that comes too late). Returns how many it closed.
   */
  async expirePending(now: Date = new Date(), limit = 100): Promise<number> {
    const closed = await this.pendings.expire(now, limit);
    for (const p of closed) {
      await this.audit.record('system', 'template.replacement_expired', {
        clinicId: p.clinicId,
        subject: p.patientId,
        detail: { request: p.id, attempts: p.attempts, sends: p.sends },
      });
    }
    return closed.length;
  }

  /** Whether the patient has an active template (nothing is decrypted): face identification can run. */
  async hasTemplate(clinicId: string, patientId: string): Promise<boolean> {
    return (await this.templates.active(clinicId, patientId)) !== null;
  }

  /**
   * The decrypted template of a patient, or null when none is active. The caller owns the array and must
   * `fill(0)` it when done. Throws template_decrypt_failed / template_key_unknown if it cannot be decrypted.
   */
  async loadTemplate(clinicId: string, patientId: string): Promise<Float32Array | null> {
    const record = await this.templates.active(clinicId, patientId);
    if (!record) return null;
    // The owner asked for, not the row's own columns: a row moved to another patient fails to decrypt.
    return this.cipher.decrypt(record, { clinicId, patientId });
  }

  /** The normalised mean embedding of the photos; each must show exactly one face. The caller zeroes the result. */
  private async embed(images: Buffer[]): Promise<Float32Array> {
    const sum = new Float32Array(EMBEDDING_LENGTH);
    try {
      const engine = this.engine.get();
      // One at a time: enrollment is rare, and identification sessions share the engine's queue.
      for (const [i, image] of images.entries()) {
        if (image.length === 0) throw new EnrollmentError('invalid_request', `Image ${i + 1} is empty.`);
        let analysis: Analysis | undefined;
        try {
          analysis = await engine.full(image, { maxFaces: 2 });
          const where = images.length > 1 ? `Image ${i + 1} of ${images.length}` : 'The image';
          if (analysis.faces.length === 0) throw new EnrollmentError('enroll_no_face', `${where} shows no face.`);
          if (analysis.faces.length > 1) {
            throw new EnrollmentError(
              'enroll_multiple_faces',
              `${where} shows more than one face; crop it to the patient.`,
            );
          }
          const embedding = analysis.faces[0].embedding;
          if (!embedding || embedding.length !== EMBEDDING_LENGTH) throw new Error('The engine returned no embedding.');
          for (let k = 0; k < EMBEDDING_LENGTH; k++) sum[k] += embedding[k];
        } finally {
          wipeFaces(analysis);
        }
      }
      let norm = 0;
      for (let k = 0; k < EMBEDDING_LENGTH; k++) norm += sum[k] * sum[k];
      norm = Math.sqrt(norm);
      if (!(norm > 0)) throw new Error('The mean embedding is zero.');
      for (let k = 0; k < EMBEDDING_LENGTH; k++) sum[k] /= norm;
      return sum;
    } catch (err) {
      sum.fill(0);
      throw err;
    }
  }

  /** Encrypts and stores the template (ZEROES `embedding`); firstOnly: StorageError template_exists if it is not. */
  private async store(
    enroller: Enroller,
    patient: Patient,
    embedding: Float32Array,
    images: number,
    firstOnly: boolean,
  ): Promise<EnrollResult> {
    const encrypted = this.cipher.encrypt(embedding, { clinicId: enroller.clinicId, patientId: patient.id });
    const result = await this.templates.replace(enroller.clinicId, patient.id, encrypted, {
      actor: templateActorOf(enroller),
      images,
      confirmation: null,
      firstOnly,
    });
    return this.enrolled(patient.iin, result, images);
  }

  private enrolled(iin: string, result: TemplateChangeResult, images: number): EnrollResult {
    return {
      status: 'enrolled',
      patientIin: iin,
      templateId: result.template.id,
      images,
      createdAt: result.template.createdAt,
      replaced: result.previousTemplateId !== null,
      eventId: result.event.id,
    };
  }

  /**
   * A workstation replaces an existing template: the new reference is sealed and held with a code sent to the
   * patient. The same desk sending again within the code's life gets a new code for the same request (the wrong
   * attempts so far still count, CODE_RESENDS_MAX times); anything else starts a new request, closing the old one.
   */
  private async requestConfirmation(
    enroller: DeskEnroller,
    patient: Patient,
    embedding: Float32Array,
    images: number,
  ): Promise<ConfirmationSent> {
    await this.checkCaps(enroller, patient.id);
    const now = new Date();
    const codeExpiresAt = new Date(now.getTime() + this.config.CODE_TTL_S * 1000);
    const maxAttempts = this.config.CODE_ATTEMPTS_MAX;
    const maxSends = this.config.CODE_RESENDS_MAX + 1;
    const code = newCode();
    let pending: PendingEnrollment | null = null;

    const current = await this.pendings.current(enroller.clinicId, patient.id);
    if (
      current &&
      current.workstationId === enroller.workstationId &&
      current.expiresAt.getTime() > now.getTime() &&
      current.attempts < maxAttempts
    ) {
      if (current.sends >= maxSends) {
        throw new EnrollmentError(
          'code_resend_limit',
          `A code was already sent ${maxSends} times for this patient's new reference photo; confirm one of them, ` +
            `or send the photo again after ${current.expiresAt.toISOString()}.`,
          { retryAfterSeconds: Math.max(1, Math.ceil((current.expiresAt.getTime() - now.getTime()) / 1000)) },
        );
      }
      pending = await this.pendings.resend(
        current.id,
        {
          codeHash: this.hasher.hash(codeBinding(current.id), code),
          expiresAt: codeExpiresAt,
          images,
          template: this.seal(embedding, current),
          maxAttempts,
          maxSends,
        },
        now,
      );
    }
    if (!pending) {
      const id = randomUUID();
      const owner = { id, clinicId: enroller.clinicId, patientId: patient.id };
      pending = await this.pendings.open({
        ...owner,
        workstationId: enroller.workstationId,
        codeHash: this.hasher.hash(codeBinding(id), code),
        expiresAt: codeExpiresAt,
        images,
        template: this.seal(embedding, owner),
      });
    }
    await this.audit.record(auditActorOf(enroller), 'template.replacement_requested', {
      clinicId: enroller.clinicId,
      subject: patient.id,
      detail: { request: pending.id, images, sends: pending.sends, ttlSeconds: this.config.CODE_TTL_S },
    });
    await this.deliver(enroller, patient, pending, code);
    return {
      status: 'code_sent',
      patientIin: patient.iin,
      images,
      codeExpiresAt: pending.expiresAt,
      resendsLeft: Math.max(0, maxSends - pending.sends),
    };
  }

  /** Seals a copy of the embedding to its request (does not zero `embedding`; its owner does). */
  private seal(embedding: Float32Array, owner: { clinicId: string; patientId: string; id: string }): EncryptedTemplate {
    const plain = Buffer.alloc(EMBEDDING_LENGTH * 4);
    try {
      for (let i = 0; i < EMBEDDING_LENGTH; i++) plain.writeFloatLE(embedding[i], i * 4);
      return this.ring.seal(plain, pendingContext(owner));
    } finally {
      plain.fill(0);
    }
  }

  /** The pending reference, opened and encrypted as the patient's template (every plaintext copy zeroed). */
  private unsealForStorage(pending: PendingEnrollment, sealed: EncryptedTemplate): EncryptedTemplate {
    const plain = this.ring.open(sealed, pendingContext(pending));
    const embedding = new Float32Array(EMBEDDING_LENGTH);
    try {
      if (plain.length !== EMBEDDING_LENGTH * 4) throw new Error('The pending reference has the wrong length.');
      for (let i = 0; i < EMBEDDING_LENGTH; i++) embedding[i] = plain.readFloatLE(i * 4);
      return this.cipher.encrypt(embedding, { clinicId: pending.clinicId, patientId: pending.patientId });
    } finally {
      plain.fill(0);
      embedding.fill(0);
    }
  }

  /** Sends the code. A failure closes the request (its reference wiped) and is answered typed. */
  private async deliver(enroller: DeskEnroller, patient: Patient, pending: PendingEnrollment, code: string) {
    const clinic = await this.clinics.get(enroller.clinicId);
    const text = smsText('enrollment', { code, clinicName: clinic?.name ?? '', languages: clinic?.smsLanguages });
    try {
      await this.sms.send({ iin: patient.iin, text, reference: pending.id, purpose: 'enrollment' });
    } catch (err) {
      const reason = err instanceof SmsError ? err.message : 'The SMS gateway failed.';
      await this.pendings.close(pending.id, 'send_failed', new Date());
      await this.audit.record('system', 'code.send_failed', {
        clinicId: enroller.clinicId,
        subject: pending.id,
        detail: { adapter: this.config.SMS_ADAPTER, purpose: 'enrollment', reason: reason.slice(0, 200) },
      });
      throw new SmsError(
        `${reason} No code reached the patient and the new reference photo was discarded; send it again.`,
      );
    }
    await this.audit.record('system', 'code.sent', {
      clinicId: enroller.clinicId,
      subject: pending.id,
      detail: { adapter: this.config.SMS_ADAPTER, purpose: 'enrollment', ttlSeconds: this.config.CODE_TTL_S },
    });
  }

  /** 403 unless the enroller's clinic allows desk enrollment (audited: a desk tried). */
  private async requireDeskEnrollment(
    enroller: DeskEnroller,
    operation: 'enroll' | 'confirm' | 'revoke',
  ): Promise<void> {
    if ((await this.clinics.deskEnrollment(enroller.clinicId)) === true) return;
    await this.audit.record(auditActorOf(enroller), 'template.desk_enrollment_refused', {
      clinicId: enroller.clinicId,
      detail: { operation },
    });
    throw new EnrollmentError(
      'desk_enrollment_disabled',
      'This clinic does not allow workstations to enroll patients: reference photos come from the registry (an ' +
        'enrollment key, fid_enr_..., or `faceid enroll` on the service host). An administrator can allow desk ' +
        'enrollment with `faceid clinic desk-enrollment CLINIC_ID on`.',
    );
  }

  /**
   * The code path's caps (CODE_PATIENT_FAILURES_MAX, CODE_WORKSTATION_FAILURES_MAX within CODE_FAILURES_WINDOW_MIN),
   * counted over identification codes and confirmation codes alike.
   */
  private async checkCaps(enroller: DeskEnroller, patientId: string): Promise<void> {
    const windowMin = this.config.CODE_FAILURES_WINDOW_MIN;
    const since = new Date(Date.now() - windowMin * 60_000);
    const capped = async (what: 'patient' | 'workstation') => {
      await this.audit.record(auditActorOf(enroller), 'code.capped', {
        clinicId: enroller.clinicId,
        subject: patientId,
        detail: { by: what, windowMinutes: windowMin, purpose: 'enrollment' },
      });
      return new EnrollmentError(
        'code_attempts_exceeded',
        `Too many wrong codes for this ${what} within ${windowMin} minutes; retry later.`,
        { retryAfterSeconds: windowMin * 60 },
      );
    };
    if (
      (await this.codes.failedAttempts(enroller.clinicId, { patientId }, since)) >=
      this.config.CODE_PATIENT_FAILURES_MAX
    ) {
      throw await capped('patient');
    }
    const byDesk = await this.codes.failedAttempts(enroller.clinicId, { workstationId: enroller.workstationId }, since);
    if (byDesk >= this.config.CODE_WORKSTATION_FAILURES_MAX) throw await capped('workstation');
  }

  /** A request that came too late: closed now (its reference wiped). */
  private async expire(pending: PendingEnrollment, now: Date): Promise<void> {
    if (!(await this.pendings.close(pending.id, 'expired', now))) return;
    await this.audit.record('system', 'template.replacement_expired', {
      clinicId: pending.clinicId,
      subject: pending.patientId,
      detail: { request: pending.id, attempts: pending.attempts, sends: pending.sends },
    });
  }

  /** The request changed under us (a concurrent entry, expiry, the sweep): answer for its state now. */
  private async lostRace(enroller: DeskEnroller, pending: PendingEnrollment): Promise<EnrollmentError> {
    const now = await this.pendings.get(enroller.clinicId, pending.id);
    if (now?.state === 'locked_out' || (now && now.attempts >= this.config.CODE_ATTEMPTS_MAX)) {
      return new EnrollmentError('code_locked_out', 'This code has no attempts left; send the photo again.', {
        attemptsLeft: 0,
      });
    }
    if (now?.state === 'expired' || (now?.state === 'open' && now.expiresAt.getTime() <= Date.now()))
      return this.expired();
    return this.noConfirmation();
  }

  private expired(): EnrollmentError {
    return new EnrollmentError(
      'code_expired',
      'The code has expired and the new reference photo was discarded; send the photo again for a new code.',
    );
  }

  private noConfirmation(): EnrollmentError {
    return new EnrollmentError(
      'confirmation_not_found',
      'No new reference photo of this patient waits for a code from this workstation: send the photo first ' +
        '(POST /patients/{iin}/template).',
    );
  }

  private noTemplate(): EnrollmentError {
    return new EnrollmentError('template_not_found', 'This patient has no active template in this clinic.');
  }
}

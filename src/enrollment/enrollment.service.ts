import { Inject, Injectable } from '@nestjs/common';
import { AuditService } from '../audit';
import type { Principal } from '../auth';
import { EngineService, type Analysis } from '../engine';
import { validateIin } from '../patients';
import { PATIENTS, TEMPLATES, type PatientRepository, type TemplateRepository } from '../storage/ports';
import { EnrollmentError } from './errors';
import { EMBEDDING_LENGTH, TemplateCipher } from './template-crypto';

export const MAX_IMAGES = 5;

export interface EnrollResult {
  patientIin: string;
  templateId: string;
  /** How many images went into the template. */
  images: number;
  createdAt: Date;
}

function wipeFaces(analysis: Analysis | undefined): void {
  for (const face of analysis?.faces ?? []) face.embedding?.fill(0);
}

/**
 * Reference templates: enroll (the mean embedding of 1-5 photos, encrypted), revoke, and load for matching.
 * Embeddings live only in memory and are zeroed once used; the audit trail gets counts, never biometrics.
 */
@Injectable()
export class EnrollmentService {
  constructor(
    private readonly engine: EngineService,
    private readonly cipher: TemplateCipher,
    private readonly audit: AuditService,
    @Inject(PATIENTS) private readonly patients: PatientRepository,
    @Inject(TEMPLATES) private readonly templates: TemplateRepository,
  ) {}

  /**
   * Enrolls (or re-enrolls) the patient of the principal's clinic from JPEG photos, each showing exactly one face.
   * Consumes the images: every buffer is zeroed when this returns or throws.
   * Errors: iin_invalid, invalid_request (image count), enroll_no_face, enroll_multiple_faces, the engine's frame_*
   * codes and busy.
   */
  async enroll(principal: Principal, iin: string, images: Buffer[]): Promise<EnrollResult> {
    const sum = new Float32Array(EMBEDDING_LENGTH);
    try {
      validateIin(iin);
      if (images.length < 1 || images.length > MAX_IMAGES) {
        throw new EnrollmentError('invalid_request', `Send 1 to ${MAX_IMAGES} images.`);
      }
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

      const patient = await this.patients.upsert(principal.clinicId, iin);
      const encrypted = this.cipher.encrypt(sum, { clinicId: principal.clinicId, patientId: patient.id }); // zeroes sum
      const record = await this.templates.replace(principal.clinicId, patient.id, encrypted);
      await this.audit.record(`workstation:${principal.workstationId}`, 'template.enrolled', {
        clinicId: principal.clinicId,
        subject: patient.id,
        detail: { images: images.length, keyId: encrypted.keyId },
      });
      return { patientIin: iin, templateId: record.id, images: images.length, createdAt: record.createdAt };
    } finally {
      sum.fill(0);
      // The engine wiped the images it analysed; these are the ones it never saw (after a failure).
      for (const image of images) image.fill(0);
    }
  }

  /** Revokes the patient's active template. Errors: iin_invalid, template_not_found (also for another clinic's). */
  async revoke(principal: Principal, iin: string): Promise<void> {
    validateIin(iin);
    const patient = await this.patients.find(principal.clinicId, iin);
    const revoked = patient ? await this.templates.revoke(principal.clinicId, patient.id) : 0;
    if (!patient || revoked === 0) {
      throw new EnrollmentError('template_not_found', 'This patient has no active template in this clinic.');
    }
    await this.audit.record(`workstation:${principal.workstationId}`, 'template.revoked', {
      clinicId: principal.clinicId,
      subject: patient.id,
      detail: { revoked },
    });
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
}

import type { INestApplicationContext } from '@nestjs/common';
import { loadConfig } from '../../src/config';
import { EMBEDDING_LENGTH, TemplateCipher } from '../../src/enrollment';
import { PATIENTS, TEMPLATES, type PatientRepository, type TemplateRepository } from '../../src/storage/ports';

/**
 * Gives the patient with this IIN an enrolled template (random numbers, sealed with `templateKeys` as enrollment seals
 * them) without a camera or the engine: POST /sessions opens a face session only for a patient with a template (else
 * 409 no_template). Returns the IIN.
 */
export async function storeTemplate(
  app: INestApplicationContext,
  templateKeys: string,
  clinicId: string,
  iin: string,
): Promise<string> {
  const patient = await app.get<PatientRepository>(PATIENTS).upsert(clinicId, iin);
  const cipher = new TemplateCipher(loadConfig({ TEMPLATE_KEYS: templateKeys }).TEMPLATE_KEYS!);
  const embedding = Float32Array.from({ length: EMBEDDING_LENGTH }, () => Math.random() - 0.5);
  await app
    .get<TemplateRepository>(TEMPLATES)
    .replace(clinicId, patient.id, cipher.encrypt(embedding, { clinicId, patientId: patient.id }), {
      actor: { kind: 'admin', id: null },
      images: 1,
      confirmation: null,
    });
  return iin;
}

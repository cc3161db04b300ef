import { randomUUID } from 'node:crypto';
import type { Db, Tx } from '../db';
import { StorageError } from '../errors';
import type { EncryptedTemplate, TemplateRecord, TemplateRepository } from '../ports';
import { toTemplate } from './map';

export class PrismaTemplateRepository implements TemplateRepository {
  constructor(private readonly db: Db) {}

  /**
   * Locks the patient row (PostgreSQL: FOR UPDATE; SQLite: the transaction already holds the write lock), so two
   * concurrent replacements of one patient's template run one after the other and one active template remains.
   */
  private async lockPatient(tx: Tx, clinicId: string, patientId: string): Promise<void> {
    const rows =
      this.db.provider === 'postgres'
        ? await tx.$queryRaw<unknown[]>`SELECT "id" FROM "Patient" WHERE "id" = ${patientId} AND "clinicId" = ${clinicId} FOR UPDATE`
        : await tx.$queryRaw<unknown[]>`SELECT "id" FROM "Patient" WHERE "id" = ${patientId} AND "clinicId" = ${clinicId}`;
    if (rows.length === 0) throw new StorageError('reference_not_found', 'No such patient in this clinic.');
  }

  replace(clinicId: string, patientId: string, template: EncryptedTemplate): Promise<TemplateRecord> {
    return this.db.tx(async (tx) => {
      await this.lockPatient(tx, clinicId, patientId);
      const now = new Date();
      await tx.template.updateMany({ where: { clinicId, patientId, revokedAt: null }, data: { revokedAt: now } });
      const row = await tx.template.create({
        data: {
          id: randomUUID(),
          clinicId,
          patientId,
          keyId: template.keyId,
          iv: new Uint8Array(template.iv),
          ciphertext: new Uint8Array(template.ciphertext),
          tag: new Uint8Array(template.tag),
          createdAt: now,
        },
      });
      return toTemplate(row);
    });
  }

  active(clinicId: string, patientId: string): Promise<TemplateRecord | null> {
    return this.db.run(async (c) => {
      const row = await c.template.findFirst({
        where: { clinicId, patientId, revokedAt: null },
        orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
      });
      return row && toTemplate(row);
    });
  }

  revoke(clinicId: string, patientId: string): Promise<number> {
    return this.db.run(async (c) => {
      const { count } = await c.template.updateMany({
        where: { clinicId, patientId, revokedAt: null },
        data: { revokedAt: new Date() },
      });
      return count;
    });
  }
}

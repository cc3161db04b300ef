import { randomUUID } from 'node:crypto';
import type { Db, Tx } from '../db';
import { StorageError } from '../errors';
import type {
  EncryptedTemplate,
  TemplateActor,
  TemplateChange,
  TemplateChangeResult,
  TemplateRecord,
  TemplateRepository,
} from '../ports';
import type { StorageProvider } from '../target';
import type { Transactions, TxScope } from '../unit-of-work';
import { appendTemplateEvent } from './events';
import { toTemplate } from './map';

/** The audit actor of a template change: `enrollment_key:<id>`, `workstation:<id>`, or `cli` for an administrator. */
export function auditActorOf(actor: TemplateActor): string {
  return actor.kind === 'admin' ? 'cli' : `${actor.kind}:${actor.id}`;
}

/**
 * Locks the patient row (PostgreSQL: FOR UPDATE; SQLite: the transaction already holds the write lock), so two
 * concurrent changes of one patient's template run one after the other and one active template remains. Returns
 * the patient's IIN (for the MIS event).
 */
export async function lockPatient(
  tx: Tx,
  provider: StorageProvider,
  clinicId: string,
  patientId: string,
): Promise<string> {
  const iin = await lockPatientIfAny(tx, provider, clinicId, patientId);
  if (iin === null) throw new StorageError('reference_not_found', 'No such patient in this clinic.');
  return iin;
}

/** lockPatient(), or null when the clinic has no such patient. */
async function lockPatientIfAny(
  tx: Tx,
  provider: StorageProvider,
  clinicId: string,
  patientId: string,
): Promise<string | null> {
  const rows =
    provider === 'postgres'
      ? await tx.$queryRaw<
          { iin: string }[]
        >`SELECT "iin" FROM "Patient" WHERE "id" = ${patientId} AND "clinicId" = ${clinicId} FOR UPDATE`
      : await tx.$queryRaw<
          { iin: string }[]
        >`SELECT "iin" FROM "Patient" WHERE "id" = ${patientId} AND "clinicId" = ${clinicId}`;
  return rows.length === 0 ? null : rows[0].iin;
}

/**
 * Stores a new template inside the caller's transaction: the active one (if any) is revoked, and the MIS event
 * (`template.enrolled` or `template.replaced`) and the audit entry are written with it.
 */
export async function replaceTemplateInTx(
  scope: TxScope,
  provider: StorageProvider,
  clinicId: string,
  patientId: string,
  template: EncryptedTemplate,
  change: TemplateChange,
): Promise<TemplateChangeResult> {
  const { tx } = scope;
  const iin = await lockPatient(tx, provider, clinicId, patientId);
  if (change.firstOnly && (await tx.template.count({ where: { clinicId, patientId } })) > 0) {
    throw new StorageError('template_exists', 'The patient has (or had) a template in this clinic.');
  }
  const now = new Date();
  const previous = await tx.template.findFirst({
    where: { clinicId, patientId, revokedAt: null },
    orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
    select: { id: true },
  });
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
  const previousTemplateId = previous?.id ?? null;
  const type = previousTemplateId ? 'template.replaced' : 'template.enrolled';
  const common = {
    clinicId,
    iin,
    templateId: row.id,
    actor: change.actor,
    images: change.images,
    confirmation: change.confirmation,
    at: now,
  };
  const event = await appendTemplateEvent(
    scope,
    previousTemplateId
      ? { type: 'template.replaced', ...common, previousTemplateId }
      : { type: 'template.enrolled', ...common, previousTemplateId: null },
  );
  scope.audit({
    clinicId,
    actor: auditActorOf(change.actor),
    action: type,
    subject: patientId,
    detail: {
      images: change.images,
      keyId: template.keyId,
      templateId: row.id,
      previousTemplateId,
      confirmation: change.confirmation,
      eventSeq: event.seq,
    },
  });
  return { template: toTemplate(row), previousTemplateId, event };
}

export class PrismaTemplateRepository implements TemplateRepository {
  constructor(
    private readonly db: Db,
    /** Template changes write their event and audit entry in their own transaction. */
    private readonly transactions: Transactions,
  ) {}

  replace(
    clinicId: string,
    patientId: string,
    template: EncryptedTemplate,
    change: TemplateChange,
  ): Promise<TemplateChangeResult> {
    return this.transactions.transaction((scope) =>
      replaceTemplateInTx(scope, this.db.provider, clinicId, patientId, template, change),
    );
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

  revoke(clinicId: string, patientId: string, by: TemplateActor): Promise<number> {
    return this.transactions.transaction(async (scope) => {
      const { tx } = scope;
      const iin = await lockPatientIfAny(tx, this.db.provider, clinicId, patientId);
      if (iin === null) return 0; // another clinic's patient, or none
      const active = await tx.template.findFirst({
        where: { clinicId, patientId, revokedAt: null },
        orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
        select: { id: true },
      });
      if (!active) return 0; // nothing to revoke: no event
      const now = new Date();
      const { count } = await tx.template.updateMany({
        where: { clinicId, patientId, revokedAt: null },
        data: { revokedAt: now },
      });
      const event = await appendTemplateEvent(scope, {
        type: 'template.revoked',
        clinicId,
        iin,
        templateId: null,
        previousTemplateId: active.id,
        actor: by,
        images: null,
        confirmation: null,
        at: now,
      });
      scope.audit({
        clinicId,
        actor: auditActorOf(by),
        action: 'template.revoked',
        subject: patientId,
        detail: { revoked: count, templateId: active.id, eventSeq: event.seq },
      });
      return count;
    });
  }
}

import { randomUUID } from 'node:crypto';
import type { Db } from '../db';
import { isForeignKeyViolation, StorageError } from '../errors';
import type {
  EncryptedTemplate,
  EnrollmentKey,
  EnrollmentKeyRepository,
  PendingEnrollment,
  PendingEnrollmentRepository,
  TemplateChange,
  TemplateChangeResult,
} from '../ports';
import type { Transactions } from '../unit-of-work';
import { toEnrollmentKey, toPendingEnrollment } from './map';
import { lockPatient, replaceTemplateInTx } from './templates';

export class PrismaEnrollmentKeyRepository implements EnrollmentKeyRepository {
  constructor(private readonly db: Db) {}

  async create(clinicId: string, name: string, apiKeyHash: string): Promise<EnrollmentKey> {
    try {
      return await this.db.run(async (c) =>
        toEnrollmentKey(
          await c.enrollmentKey.create({
            data: { id: randomUUID(), clinicId, name, apiKeyHash, createdAt: new Date() },
          }),
        ),
      );
    } catch (err) {
      if (isForeignKeyViolation(err)) throw new StorageError('reference_not_found', 'No such clinic.', { cause: err });
      throw err;
    }
  }

  /** Not clinic-scoped: the key is how a request's clinic is found. */
  findByKeyHash(apiKeyHash: string): Promise<EnrollmentKey | null> {
    return this.db.run(async (c) => {
      const row = await c.enrollmentKey.findUnique({ where: { apiKeyHash } });
      return row && toEnrollmentKey(row);
    });
  }

  list(clinicId: string): Promise<EnrollmentKey[]> {
    return this.db.run(async (c) =>
      (await c.enrollmentKey.findMany({ where: { clinicId }, orderBy: [{ createdAt: 'asc' }, { id: 'asc' }] })).map(
        toEnrollmentKey,
      ),
    );
  }

  revoke(clinicId: string, id: string): Promise<boolean> {
    return this.db.run(async (c) => {
      const { count } = await c.enrollmentKey.updateMany({
        where: { id, clinicId, revokedAt: null },
        data: { revokedAt: new Date() },
      });
      return count === 1;
    });
  }
}

/** Clears a request's pending reference (the sealed template): set with every change that closes it. */
const WIPED = { templateKeyId: null, templateIv: null, templateCiphertext: null, templateTag: null } as const;

const sealedColumns = (t: EncryptedTemplate) => ({
  templateKeyId: t.keyId,
  templateIv: new Uint8Array(t.iv),
  templateCiphertext: new Uint8Array(t.ciphertext),
  templateTag: new Uint8Array(t.tag),
});

export class PrismaPendingEnrollmentRepository implements PendingEnrollmentRepository {
  constructor(
    private readonly db: Db,
    /** A confirmation stores the template with its event and audit entry, in one transaction. */
    private readonly transactions: Transactions,
  ) {}

  open(input: {
    id: string;
    clinicId: string;
    patientId: string;
    workstationId: string;
    codeHash: string;
    expiresAt: Date;
    images: number;
    template: EncryptedTemplate;
  }): Promise<PendingEnrollment> {
    const { clinicId, patientId } = input;
    return this.db.tx(async (tx) => {
      await lockPatient(tx, this.db.provider, clinicId, patientId);
      const now = new Date();
      // One open request per patient: an earlier one ends here, and its reference with it.
      await tx.pendingEnrollment.updateMany({
        where: { clinicId, patientId, state: 'open', expiresAt: { lte: now } },
        data: { state: 'expired', closedAt: now, ...WIPED },
      });
      await tx.pendingEnrollment.updateMany({
        where: { clinicId, patientId, state: 'open' },
        data: { state: 'superseded', closedAt: now, ...WIPED },
      });
      const row = await tx.pendingEnrollment.create({
        data: {
          id: input.id,
          clinicId,
          patientId,
          workstationId: input.workstationId,
          codeHash: input.codeHash,
          expiresAt: input.expiresAt,
          images: input.images,
          state: 'open',
          ...sealedColumns(input.template),
          createdAt: now,
        },
      });
      return toPendingEnrollment(row);
    });
  }

  current(clinicId: string, patientId: string): Promise<PendingEnrollment | null> {
    return this.db.run(async (c) => {
      const row = await c.pendingEnrollment.findFirst({
        where: { clinicId, patientId, state: 'open' },
        orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
      });
      return row && toPendingEnrollment(row);
    });
  }

  get(clinicId: string, id: string): Promise<PendingEnrollment | null> {
    return this.db.run(async (c) => {
      const row = await c.pendingEnrollment.findFirst({ where: { id, clinicId } });
      return row && toPendingEnrollment(row);
    });
  }

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
  ): Promise<PendingEnrollment | null> {
    return this.db.run(async (c) => {
      const rows = await c.pendingEnrollment.updateManyAndReturn({
        where: {
          id,
          state: 'open',
          expiresAt: { gt: now },
          attempts: { lt: input.maxAttempts },
          sends: { lt: input.maxSends },
        },
        data: {
          codeHash: input.codeHash,
          expiresAt: input.expiresAt,
          images: input.images,
          ...sealedColumns(input.template),
          sends: { increment: 1 },
        },
      });
      return rows.length === 1 ? toPendingEnrollment(rows[0]) : null;
    });
  }

  /** One conditional UPDATE ... RETURNING, so concurrent wrong codes all count and none passes the cap. */
  recordFailure(id: string, maxAttempts: number, now: Date): Promise<number | null> {
    return this.db.tx(async (tx) => {
      const rows = await tx.pendingEnrollment.updateManyAndReturn({
        where: { id, state: 'open', expiresAt: { gt: now }, attempts: { lt: maxAttempts } },
        data: { attempts: { increment: 1 } },
        select: { attempts: true },
      });
      if (rows.length !== 1) return null;
      const attempts = rows[0].attempts;
      if (attempts >= maxAttempts) {
        await tx.pendingEnrollment.updateMany({
          where: { id, state: 'open' },
          data: { state: 'locked_out', closedAt: now, ...WIPED },
        });
      }
      return attempts;
    });
  }

  confirm(
    id: string,
    input: { maxAttempts: number; now: Date; template: EncryptedTemplate; change: TemplateChange },
  ): Promise<TemplateChangeResult | null> {
    const { now } = input;
    return this.transactions.transaction(async (scope) => {
      const { tx } = scope;
      const row = await tx.pendingEnrollment.findUnique({ where: { id }, select: { clinicId: true, patientId: true } });
      if (!row) return null;
      const { count } = await tx.pendingEnrollment.updateMany({
        where: { id, state: 'open', expiresAt: { gt: now }, attempts: { lt: input.maxAttempts } },
        data: { state: 'confirmed', closedAt: now, ...WIPED },
      });
      if (count !== 1) return null;
      return replaceTemplateInTx(scope, this.db.provider, row.clinicId, row.patientId, input.template, input.change);
    });
  }

  close(id: string, state: 'expired' | 'send_failed', now: Date): Promise<boolean> {
    return this.db.run(async (c) => {
      const { count } = await c.pendingEnrollment.updateMany({
        where: { id, state: 'open' },
        data: { state, closedAt: now, ...WIPED },
      });
      return count === 1;
    });
  }

  expire(now: Date, limit: number): Promise<PendingEnrollment[]> {
    return this.db.run(async (c) => {
      const due = await c.pendingEnrollment.findMany({
        where: { state: 'open', expiresAt: { lte: now } },
        orderBy: { expiresAt: 'asc' },
        take: limit,
        select: { id: true },
      });
      if (due.length === 0) return [];
      const rows = await c.pendingEnrollment.updateManyAndReturn({
        where: { id: { in: due.map((d) => d.id) }, state: 'open', expiresAt: { lte: now } },
        data: { state: 'expired', closedAt: now, ...WIPED },
      });
      return rows.map(toPendingEnrollment);
    });
  }
}

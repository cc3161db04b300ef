import { randomUUID } from 'node:crypto';
import type { Db } from '../db';
import { isForeignKeyViolation, StorageError } from '../errors';
import type { MisClient, MisClientRepository } from '../ports';
import { toMisClient } from './map';

export class PrismaMisClientRepository implements MisClientRepository {
  constructor(private readonly db: Db) {}

  async create(clinicId: string, name: string, apiKeyHash: string): Promise<MisClient> {
    // MisClient has no foreign key to Clinic (it is looked up by key alone), so check the clinic here.
    return this.db.tx(async (tx) => {
      if (!(await tx.clinic.findUnique({ where: { id: clinicId }, select: { id: true } }))) {
        throw new StorageError('reference_not_found', 'No such clinic.');
      }
      return toMisClient(
        await tx.misClient.create({ data: { id: randomUUID(), clinicId, name, apiKeyHash, createdAt: new Date() } }),
      );
    });
  }

  findByKeyHash(apiKeyHash: string, now: Date): Promise<MisClient | null> {
    return this.db.run(async (c) => {
      const row =
        (await c.misClient.findUnique({ where: { apiKeyHash } })) ??
        (await c.misClient.findFirst({ where: { previousKeyHash: apiKeyHash, previousExpiresAt: { gt: now } } }));
      return row && toMisClient(row);
    });
  }

  list(clinicId: string): Promise<MisClient[]> {
    return this.db.run(async (c) =>
      (await c.misClient.findMany({ where: { clinicId }, orderBy: { createdAt: 'asc' } })).map(toMisClient),
    );
  }

  async rotate(clinicId: string, id: string, newKeyHash: string, graceUntil: Date): Promise<MisClient | null> {
    try {
      return await this.db.tx(async (tx) => {
        const row = await tx.misClient.findFirst({ where: { id, clinicId, revokedAt: null } });
        if (!row) return null;
        return toMisClient(
          await tx.misClient.update({
            where: { id },
            data: {
              apiKeyHash: newKeyHash,
              previousKeyHash: row.apiKeyHash,
              previousExpiresAt: graceUntil,
              rotatedAt: new Date(),
            },
          }),
        );
      });
    } catch (err) {
      if (isForeignKeyViolation(err)) throw new StorageError('reference_not_found', 'No such clinic.', { cause: err });
      throw err;
    }
  }

  revoke(clinicId: string, id: string): Promise<boolean> {
    return this.db.run(async (c) => {
      const now = new Date();
      const { count } = await c.misClient.updateMany({
        where: { id, clinicId, revokedAt: null },
        data: { revokedAt: now, previousExpiresAt: now },
      });
      return count === 1;
    });
  }
}

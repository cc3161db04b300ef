import { randomUUID } from 'node:crypto';
import type { Db } from '../db';
import { StorageError } from '../errors';
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
      let row = await c.misClient.findUnique({ where: { apiKeyHash } });
      if (!row) {
        const previous = await c.previousKey.findFirst({
          where: { keyHash: apiKeyHash, holderKind: 'mis_client', expiresAt: { gt: now } },
          select: { holderId: true },
        });
        if (previous) row = await c.misClient.findUnique({ where: { id: previous.holderId } });
      }
      return row && toMisClient(row);
    });
  }

  list(clinicId: string): Promise<MisClient[]> {
    return this.db.run(async (c) =>
      (await c.misClient.findMany({ where: { clinicId }, orderBy: { createdAt: 'asc' } })).map(toMisClient),
    );
  }

  // Rotation and revocation: PrismaKeyRepository (repositories/keys.ts).
}

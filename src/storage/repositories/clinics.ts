import { randomUUID } from 'node:crypto';
import type { Db } from '../db';
import { isForeignKeyViolation, isUniqueViolation, StorageError } from '../errors';
import type { ClinicRepository, Patient, PatientRepository, Workstation, WorkstationRepository, Clinic } from '../ports';
import { toClinic, toPatient, toWorkstation } from './map';

export class PrismaClinicRepository implements ClinicRepository {
  constructor(private readonly db: Db) {}

  create(name: string): Promise<Clinic> {
    return this.db.run(async (c) => toClinic(await c.clinic.create({ data: { id: randomUUID(), name, createdAt: new Date() } })));
  }

  get(id: string): Promise<Clinic | null> {
    return this.db.run(async (c) => {
      const row = await c.clinic.findUnique({ where: { id } });
      return row && toClinic(row);
    });
  }

  list(): Promise<Clinic[]> {
    return this.db.run(async (c) => (await c.clinic.findMany({ orderBy: [{ createdAt: 'asc' }, { id: 'asc' }] })).map(toClinic));
  }

  count(): Promise<number> {
    return this.db.run((c) => c.clinic.count());
  }
}

export class PrismaWorkstationRepository implements WorkstationRepository {
  constructor(private readonly db: Db) {}

  async create(clinicId: string, name: string, apiKeyHash: string): Promise<Workstation> {
    try {
      return await this.db.run(async (c) =>
        toWorkstation(
          await c.workstation.create({ data: { id: randomUUID(), clinicId, name, apiKeyHash, createdAt: new Date() } }),
        ),
      );
    } catch (err) {
      if (isForeignKeyViolation(err)) throw new StorageError('reference_not_found', 'No such clinic.', { cause: err });
      throw err;
    }
  }

  /** Not clinic-scoped: the key is how a request's clinic is found. Revoked workstations are returned too. */
  findByKeyHash(apiKeyHash: string): Promise<Workstation | null> {
    return this.db.run(async (c) => {
      const row = await c.workstation.findUnique({ where: { apiKeyHash } });
      return row && toWorkstation(row);
    });
  }
}

export class PrismaPatientRepository implements PatientRepository {
  constructor(private readonly db: Db) {}

  async upsert(clinicId: string, iin: string): Promise<Patient> {
    const existing = await this.find(clinicId, iin);
    if (existing) return existing;
    try {
      return await this.db.run(async (c) =>
        toPatient(await c.patient.create({ data: { id: randomUUID(), clinicId, iin, createdAt: new Date() } })),
      );
    } catch (err) {
      if (isUniqueViolation(err)) {
        // Created meanwhile by a concurrent request: that one is the patient.
        const raced = await this.find(clinicId, iin);
        if (raced) return raced;
      }
      if (isForeignKeyViolation(err)) throw new StorageError('reference_not_found', 'No such clinic.', { cause: err });
      throw err;
    }
  }

  find(clinicId: string, iin: string): Promise<Patient | null> {
    return this.db.run(async (c) => {
      const row = await c.patient.findUnique({ where: { clinicId_iin: { clinicId, iin } } });
      return row && toPatient(row);
    });
  }

  get(clinicId: string, id: string): Promise<Patient | null> {
    return this.db.run(async (c) => {
      const row = await c.patient.findFirst({ where: { id, clinicId } });
      return row && toPatient(row);
    });
  }
}

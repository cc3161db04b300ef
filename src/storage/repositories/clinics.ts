import { createHash, randomUUID } from 'node:crypto';
import type { Db } from '../db';
import { isForeignKeyViolation, isUniqueViolation, StorageError } from '../errors';
import type {
  CameraReportResult,
  ClinicRepository,
  LivenessChallengeSettings,
  Patient,
  PatientRepository,
  ReportedCamera,
  Workstation,
  WorkstationRepository,
  Clinic,
  SmsLanguages,
} from '../ports';
import type { Transactions } from '../unit-of-work';
import { appendCameraChanged } from './events';
import { toClinic, toPatient, toWorkstation } from './map';

/** The longest camera label kept (browsers' labels are short; a longer one is a client bug or an attack). */
export const MAX_CAMERA_LABEL = 200;

/** What is stored of the client's device id hash: its sha256, so not even the client's hash is kept. */
export const cameraHash = (deviceIdHash: string): string =>
  createHash('sha256').update(deviceIdHash.toLowerCase()).digest('hex');

/** The advisory lock key of createFirst() (any constant 64-bit number, unique to it in this database). */
const FIRST_CLINIC_LOCK = 0x66616365696431n; // "faceid1"

export class PrismaClinicRepository implements ClinicRepository {
  constructor(private readonly db: Db) {}

  create(name: string): Promise<Clinic> {
    return this.db.run(async (c) =>
      toClinic(await c.clinic.create({ data: { id: randomUUID(), name, createdAt: new Date() } })),
    );
  }

  createFirst(name: string): Promise<Clinic | null> {
    return this.db.tx(async (tx) => {
      // Gateways starting together on one empty database: one makes the clinic. SQLite's transaction holds the write
      // lock (BEGIN IMMEDIATE); on PostgreSQL a transaction-scoped advisory lock makes the others wait, then see it.
      if (this.db.provider === 'postgres') await tx.$executeRaw`SELECT pg_advisory_xact_lock(${FIRST_CLINIC_LOCK})`;
      if ((await tx.clinic.count()) > 0) return null;
      return toClinic(await tx.clinic.create({ data: { id: randomUUID(), name, createdAt: new Date() } }));
    });
  }

  get(id: string): Promise<Clinic | null> {
    return this.db.run(async (c) => {
      const row = await c.clinic.findUnique({ where: { id } });
      return row && toClinic(row);
    });
  }

  list(): Promise<Clinic[]> {
    return this.db.run(async (c) =>
      (await c.clinic.findMany({ orderBy: [{ createdAt: 'asc' }, { id: 'asc' }] })).map(toClinic),
    );
  }

  count(): Promise<number> {
    return this.db.run((c) => c.clinic.count());
  }

  setLivenessChallenges(id: string, challenges: string | null): Promise<{ previous: string | null } | null> {
    return this.db.tx(async (tx) => {
      const row = await tx.clinic.findUnique({ where: { id }, select: { livenessChallenges: true } });
      if (!row) return null;
      await tx.clinic.update({ where: { id }, data: { livenessChallenges: challenges } });
      return { previous: row.livenessChallenges };
    });
  }

  deskEnrollment(id: string): Promise<boolean | null> {
    return this.db.run(
      async (c) =>
        (await c.clinic.findUnique({ where: { id }, select: { deskEnrollment: true } }))?.deskEnrollment ?? null,
    );
  }

  setDeskEnrollment(id: string, allowed: boolean): Promise<{ previous: boolean } | null> {
    return this.db.tx(async (tx) => {
      const row = await tx.clinic.findUnique({ where: { id }, select: { deskEnrollment: true } });
      if (!row) return null;
      await tx.clinic.update({ where: { id }, data: { deskEnrollment: allowed } });
      return { previous: row.deskEnrollment };
    });
  }

  setSmsLanguages(id: string, languages: SmsLanguages): Promise<{ previous: SmsLanguages } | null> {
    return this.db.tx(async (tx) => {
      const row = await tx.clinic.findUnique({ where: { id } });
      if (!row) return null;
      await tx.clinic.update({ where: { id }, data: { smsLanguages: languages } });
      return { previous: toClinic(row).smsLanguages };
    });
  }
}

export class PrismaWorkstationRepository implements WorkstationRepository {
  constructor(
    private readonly db: Db,
    /** Camera changes write their event and audit entry in their own transaction. */
    private readonly transactions: Transactions,
  ) {}

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

  /**
   * Not clinic-scoped: the key is how a request's clinic is found. The current key, or a previous one while its grace
   * lasts (see KeyRepository.rotate). Revoked workstations are returned too.
   */
  findByKeyHash(apiKeyHash: string): Promise<Workstation | null> {
    return this.db.run(async (c) => {
      let row = await c.workstation.findUnique({ where: { apiKeyHash } });
      if (!row) {
        const previous = await c.previousKey.findFirst({
          where: { keyHash: apiKeyHash, holderKind: 'workstation', expiresAt: { gt: new Date() } },
          select: { holderId: true },
        });
        if (previous) row = await c.workstation.findUnique({ where: { id: previous.holderId } });
      }
      return row && toWorkstation(row);
    });
  }

  findById(id: string): Promise<Workstation | null> {
    return this.db.run(async (c) => {
      const row = await c.workstation.findUnique({ where: { id } });
      return row && toWorkstation(row);
    });
  }

  setLivenessChallenges(
    clinicId: string,
    id: string,
    challenges: string | null,
  ): Promise<{ previous: string | null } | null> {
    return this.db.tx(async (tx) => {
      const row = await tx.workstation.findFirst({ where: { id, clinicId }, select: { livenessChallenges: true } });
      if (!row) return null;
      await tx.workstation.updateMany({ where: { id, clinicId }, data: { livenessChallenges: challenges } });
      return { previous: row.livenessChallenges };
    });
  }

  livenessChallenges(clinicId: string, id: string): Promise<LivenessChallengeSettings | null> {
    return this.db.run(async (c) => {
      const row = await c.workstation.findFirst({
        where: { id, clinicId },
        select: { livenessChallenges: true, clinic: { select: { livenessChallenges: true } } },
      });
      return row && { workstation: row.livenessChallenges, clinic: row.clinic.livenessChallenges };
    });
  }

  async recordCamera(clinicId: string, workstationId: string, camera: ReportedCamera): Promise<CameraReportResult> {
    if (camera.label.length > MAX_CAMERA_LABEL) throw new RangeError(`camera label longer than ${MAX_CAMERA_LABEL}`);
    const hash = cameraHash(camera.deviceIdHash);
    const label = camera.label;
    return this.transactions.transaction(async (scope): Promise<CameraReportResult> => {
      const { tx } = scope;
      // Compare-and-set on the stored hash: of concurrent reports of one change, only the first moves the row. The
      // others match nothing (PostgreSQL re-checks the condition once the first commits), read again and find
      // their camera already there. On SQLite transactions run one at a time anyway.
      for (let attempt = 1; attempt <= 5; attempt++) {
        const row = await tx.workstation.findFirst({
          where: { id: workstationId, clinicId },
          select: { cameraLabel: true, cameraHash: true },
        });
        if (!row) throw new StorageError('reference_not_found', 'No such workstation in this clinic.');
        if (row.cameraHash === hash) {
          // The same camera: a changed label (a driver update, another browser language) is only refreshed.
          if (row.cameraLabel !== label) {
            await tx.workstation.updateMany({
              where: { id: workstationId, clinicId, cameraHash: hash },
              data: { cameraLabel: label },
            });
          }
          return { changed: false, first: false };
        }
        const { count } = await tx.workstation.updateMany({
          where: { id: workstationId, clinicId, cameraHash: row.cameraHash },
          data: { cameraLabel: label, cameraHash: hash },
        });
        if (count !== 1) continue;
        const actor = `workstation:${workstationId}`;
        if (row.cameraHash === null) {
          scope.audit({
            clinicId,
            actor,
            action: 'workstation.camera_registered',
            subject: workstationId,
            detail: { label },
          });
          return { changed: false, first: true };
        }
        const previous = { label: row.cameraLabel ?? '' };
        const event = await appendCameraChanged(scope, {
          clinicId,
          workstationId,
          previous,
          current: { label },
          at: new Date(),
        });
        scope.audit({
          clinicId,
          actor,
          action: 'workstation.camera_changed',
          subject: workstationId,
          detail: { previous, current: { label }, eventSeq: event.seq },
        });
        return { changed: true, first: false };
      }
      // Five other changes of this desk's camera committed while this one read: not a real desk.
      throw new Error('camera reports of this workstation keep changing; giving up');
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

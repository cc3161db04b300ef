import { randomUUID } from 'node:crypto';
import type { Db } from '../db';
import { isForeignKeyViolation, isUniqueViolation, StorageError } from '../errors';
import type {
  IdentificationSession,
  SessionRepository,
  Verdict,
  VerdictRepository,
  VerdictResult,
} from '../ports';
import { jsonInput, toSession, toVerdict } from './map';

/** Face verdicts that count against the attempts limit: the face was compared and refused, or looked like a spoof. */
export const FAILED_FACE_RESULTS: readonly VerdictResult[] = ['no_match', 'spoof_suspected'];

export class PrismaSessionRepository implements SessionRepository {
  constructor(private readonly db: Db) {}

  async create(input: Parameters<SessionRepository['create']>[0]): Promise<IdentificationSession> {
    try {
      return await this.db.run(async (c) =>
        toSession(
          await c.identificationSession.create({
            data: {
              id: randomUUID(),
              clinicId: input.clinicId,
              workstationId: input.workstationId,
              patientId: input.patientId,
              appointmentId: input.appointmentId,
              channel: input.channel,
              state: 'created',
              tokenHash: input.tokenHash,
              tokenExpiresAt: input.tokenExpiresAt,
              createdAt: new Date(),
            },
          }),
        ),
      );
    } catch (err) {
      // The composite keys refuse a workstation or patient of another clinic.
      if (isForeignKeyViolation(err)) {
        throw new StorageError('reference_not_found', 'No such workstation or patient in this clinic.', { cause: err });
      }
      throw err;
    }
  }

  get(clinicId: string, id: string): Promise<IdentificationSession | null> {
    return this.db.run(async (c) => {
      const row = await c.identificationSession.findFirst({ where: { id, clinicId } });
      return row && toSession(row);
    });
  }

  /** One conditional UPDATE decides (so two concurrent uses cannot both win), then the row is read back. */
  consumeToken(tokenHash: string, now: Date): Promise<IdentificationSession | null> {
    return this.db.run(async (c) => {
      const { count } = await c.identificationSession.updateMany({
        where: { tokenHash, tokenUsedAt: null, tokenExpiresAt: { gt: now }, state: 'created' },
        data: { tokenUsedAt: now, state: 'connected' },
      });
      if (count !== 1) return null;
      const row = await c.identificationSession.findUnique({ where: { tokenHash } });
      return row && toSession(row);
    });
  }

  countFailedFace(clinicId: string, patientId: string, since: Date): Promise<number> {
    return this.db.run((c) =>
      c.identificationSession.count({
        where: {
          clinicId,
          patientId,
          finishedAt: { gte: since },
          verdict: { is: { method: 'face', result: { in: [...FAILED_FACE_RESULTS] } } },
        },
      }),
    );
  }
}

export class PrismaVerdictRepository implements VerdictRepository {
  constructor(private readonly db: Db) {}

  async finish(input: Omit<Verdict, 'id' | 'createdAt'>): Promise<Verdict | null> {
    try {
      return await this.db.tx(async (tx) => {
        const now = new Date();
        // The composite key (sessionId, clinicId) refuses another clinic's session; sessionId is unique.
        const row = await tx.verdict.create({
          data: {
            id: randomUUID(),
            clinicId: input.clinicId,
            sessionId: input.sessionId,
            result: input.result,
            method: input.method,
            score: input.score,
            liveness: jsonInput(input.liveness),
            timings: jsonInput(input.timings),
            createdAt: now,
          },
        });
        await tx.identificationSession.updateMany({
          where: { id: input.sessionId, clinicId: input.clinicId },
          data: { state: 'finished', finishedAt: now },
        });
        // The MIS event outbox (a later change) inserts its event here, in this same transaction.
        return toVerdict(row);
      });
    } catch (err) {
      if (isUniqueViolation(err)) return null; // the session already has its verdict
      if (isForeignKeyViolation(err)) {
        throw new StorageError('reference_not_found', 'No such session in this clinic.', { cause: err });
      }
      throw err;
    }
  }

  forSession(clinicId: string, sessionId: string): Promise<Verdict | null> {
    return this.db.run(async (c) => {
      const row = await c.verdict.findFirst({ where: { sessionId, clinicId } });
      return row && toVerdict(row);
    });
  }
}

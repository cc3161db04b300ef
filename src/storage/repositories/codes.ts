import type { Db, Tx } from '../db';
import type { CodeRepository, OneTimeCode } from '../ports';
import { toCode } from './map';

/**
 * Marks the code used, only if it is unused, unexpired at `now` and below maxAttempts: one conditional UPDATE decides,
 * so of two concurrent uses one wins. Only inside a unit of work (Work.codes), where it commits with the verdict.
 */
export async function markCodeUsed(c: Tx, id: string, maxAttempts: number, now: Date): Promise<boolean> {
  const { count } = await c.oneTimeCode.updateMany({
    where: { id, usedAt: null, expiresAt: { gt: now }, attempts: { lt: maxAttempts } },
    data: { usedAt: now },
  });
  return count === 1;
}

export class PrismaCodeRepository implements CodeRepository {
  constructor(private readonly db: Db) {}

  forSession(clinicId: string, sessionId: string): Promise<OneTimeCode | null> {
    return this.db.run(async (c) => {
      const row = await c.oneTimeCode.findFirst({ where: { sessionId, clinicId } });
      return row && toCode(row);
    });
  }

  /**
   * One conditional UPDATE ... RETURNING: two concurrent wrong guesses both count, each learns its own count, and
   * none passes the cap.
   */
  recordFailure(id: string, maxAttempts: number, now: Date): Promise<number | null> {
    return this.db.run(async (c) => {
      const rows = await c.oneTimeCode.updateManyAndReturn({
        where: { id, usedAt: null, expiresAt: { gt: now }, attempts: { lt: maxAttempts } },
        data: { attempts: { increment: 1 } },
        select: { attempts: true },
      });
      return rows.length === 1 ? rows[0].attempts : null;
    });
  }

  replace(
    id: string,
    input: { codeHash: string; expiresAt: Date; maxAttempts: number; maxSends: number },
  ): Promise<OneTimeCode | null> {
    return this.db.run(async (c) => {
      const rows = await c.oneTimeCode.updateManyAndReturn({
        where: { id, usedAt: null, attempts: { lt: input.maxAttempts }, sends: { lt: input.maxSends } },
        data: { codeHash: input.codeHash, expiresAt: input.expiresAt, sends: { increment: 1 } },
      });
      return rows.length === 1 ? toCode(rows[0]) : null;
    });
  }

  /** Identification codes and the codes confirming a workstation's replacement of a template count alike. */
  failedAttempts(
    clinicId: string,
    by: { patientId: string } | { workstationId: string },
    since: Date,
  ): Promise<number> {
    return this.db.run(async (c) => {
      const where = { clinicId, ...by, createdAt: { gte: since } };
      const codes = await c.oneTimeCode.aggregate({ where, _sum: { attempts: true } });
      const confirmations = await c.pendingEnrollment.aggregate({ where, _sum: { attempts: true } });
      return (codes._sum.attempts ?? 0) + (confirmations._sum.attempts ?? 0);
    });
  }
}

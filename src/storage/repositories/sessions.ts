import { randomUUID } from 'node:crypto';
import {
  CODE_PATH_STATES,
  CONNECTABLE_STATES,
  FAILED_FACE_RESULTS,
  finalState,
  finishableStates,
  timeToVerdictMs,
} from '../../identification/session-state';
import { notifyInTx, type Db, type Tx } from '../db';
import { isForeignKeyViolation, isUniqueViolation, StorageError } from '../errors';
import type {
  FaceAdmission,
  FinishOptions,
  IdentificationSession,
  SessionRepository,
  Verdict,
  VerdictRepository,
} from '../ports';
import { SESSIONS_CHANNEL } from '../signals';
import type { Transactions, TxScope } from '../unit-of-work';
import { incrementCalibration, utcDay } from './calibration';
import { appendEvent, sessionFields } from './events';
import { jsonInput, toSession, toVerdict } from './map';

// The session's rules (which states a change may start from, which verdicts are failed face attempts) are
// src/identification/session-state.ts's: these repositories only apply them, in conditional updates.

/** A token that may still open its session: unused, unexpired at `now`, the session not started. */
const usableToken = (tokenHash: string, now: Date) => ({
  tokenHash,
  tokenUsedAt: null,
  tokenExpiresAt: { gt: now },
  state: { in: [...CONNECTABLE_STATES] },
});

/** Marks the token used and the session connected: one conditional UPDATE decides (so two concurrent uses cannot
 * both win), then the row is read back. Null when the token is unknown, used or expired. */
async function useToken(c: Tx, tokenHash: string, now: Date): Promise<IdentificationSession | null> {
  const { count } = await c.identificationSession.updateMany({
    where: usableToken(tokenHash, now),
    data: { tokenUsedAt: now, state: 'connected' },
  });
  if (count !== 1) return null;
  const row = await c.identificationSession.findUnique({ where: { tokenHash } });
  // The gateway that issued the token may be another one: it stops holding the session's place (FaceCapacity).
  if (row) await notifyInTx(c, SESSIONS_CHANNEL, { id: row.id, st: 'connected' });
  return row && toSession(row);
}

/** The patient's sessions finished with a failed face verdict since `since`. */
function failedFaceSince(clinicId: string, patientId: string, since: Date) {
  return {
    clinicId,
    patientId,
    finishedAt: { gte: since },
    verdict: { is: { method: 'face', result: { in: [...FAILED_FACE_RESULTS] } } },
  };
}

export class PrismaSessionRepository implements SessionRepository {
  constructor(
    private readonly db: Db,
    private readonly transactions: Transactions,
  ) {}

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

  consumeToken(tokenHash: string, now: Date): Promise<IdentificationSession | null> {
    return this.db.run((c) => useToken(c, tokenHash, now));
  }

  supersedeFaceTokens(clinicId: string, patientId: string, now: Date): Promise<number> {
    return this.db.run(async (c) => {
      const { count } = await c.identificationSession.updateMany({
        where: {
          clinicId,
          patientId,
          channel: 'in_person',
          state: 'created',
          tokenUsedAt: null,
          tokenExpiresAt: { gt: now },
        },
        data: { tokenExpiresAt: now },
      });
      return count;
    });
  }

  admitFace(tokenHash: string, now: Date, attempts: { since: Date; max: number }): Promise<FaceAdmission> {
    return this.db.tx(async (tx): Promise<FaceAdmission> => {
      const row = await tx.identificationSession.findFirst({
        where: usableToken(tokenHash, now),
        select: { id: true, clinicId: true, patientId: true },
      });
      if (!row) return { ok: false, reason: 'token_invalid' };
      // One admission per patient at a time: SQLite's transaction holds the write lock already (BEGIN IMMEDIATE);
      // on PostgreSQL the patient's row lock makes a parallel admission wait for this one's count and update.
      if (this.db.provider === 'postgres') {
        await tx.$queryRaw`SELECT 1 FROM "Patient" WHERE "id" = ${row.patientId} AND "clinicId" = ${row.clinicId} FOR UPDATE`;
      }
      const [failed, inFlight] = await Promise.all([
        tx.identificationSession.count({ where: failedFaceSince(row.clinicId, row.patientId, attempts.since) }),
        tx.identificationSession.count({
          where: { clinicId: row.clinicId, patientId: row.patientId, state: 'connected' },
        }),
      ]);
      if (failed + inFlight >= attempts.max) {
        return { ok: false, reason: 'attempts_exceeded', clinicId: row.clinicId, sessionId: row.id, failed, inFlight };
      }
      const session = await useToken(tx, tokenHash, now);
      return session ? { ok: true, session } : { ok: false, reason: 'token_invalid' };
    });
  }

  countFailedFace(clinicId: string, patientId: string, since: Date): Promise<number> {
    return this.db.run((c) => c.identificationSession.count({ where: failedFaceSince(clinicId, patientId, since) }));
  }

  beginCodePath(input: Parameters<SessionRepository['beginCodePath']>[0]): Promise<IdentificationSession | null> {
    return this.transactions.transaction(async (scope) => {
      const { tx } = scope;
      const now = new Date();
      const { count } = await tx.identificationSession.updateMany({
        where: { id: input.sessionId, clinicId: input.clinicId, state: { in: [...CODE_PATH_STATES] } },
        data: {
          state: 'code_pending',
          // The face token dies with the face path.
          tokenExpiresAt: now,
          ...(input.refusal ? { refusedAt: now, refusalReason: input.refusal.reason } : {}),
        },
      });
      if (count !== 1) return null;
      const session = await tx.identificationSession.findFirstOrThrow({
        where: { id: input.sessionId, clinicId: input.clinicId },
        include: { patient: { select: { iin: true } } },
      });
      await tx.oneTimeCode.create({
        data: {
          id: randomUUID(),
          clinicId: input.clinicId,
          sessionId: session.id,
          patientId: session.patientId,
          workstationId: session.workstationId,
          codeHash: input.codeHash,
          expiresAt: input.codeExpiresAt,
          createdAt: now,
        },
      });
      if (input.refusal) {
        await appendEvent(scope, {
          ...sessionFields(session),
          result: 'refused',
          reason: input.refusal.reason,
          durationMs: null,
          at: now,
        });
      }
      // A face connection of this session held by another gateway process closes on commit (PostgreSQL NOTIFY).
      await notifyInTx(tx, SESSIONS_CHANNEL, { id: session.id, st: 'code_pending' });
      return toSession(session);
    });
  }

  stale(now: Date, staleBefore: Date, limit: number): Promise<IdentificationSession[]> {
    return this.db.run(async (c) =>
      (
        await c.identificationSession.findMany({
          where: {
            OR: [
              { state: 'created', tokenExpiresAt: { lt: now } },
              { state: 'connected', tokenUsedAt: { lt: staleBefore } },
              { state: 'code_pending', code: { is: { expiresAt: { lt: now } } } },
            ],
          },
          orderBy: { createdAt: 'asc' },
          take: limit,
        })
      ).map(toSession),
    );
  }
}

/**
 * Stores a verdict inside a unit of work (see VerdictRepository.finish): the session finished by a conditional update
 * (of two finishers only one passes it), the verdict, its MIS event, its calibration counts and, given one, its audit
 * entry (appended at the end of the unit). Null, having written nothing, when the session may not be finished.
 */
export async function finishVerdict(
  scope: TxScope,
  input: Omit<Verdict, 'id' | 'createdAt'>,
  options: FinishOptions = {},
): Promise<Verdict | null> {
  const { tx } = scope;
  const from = finishableStates(input.method, options.from);
  const to = finalState(input.result);
  const now = new Date();
  const session = await tx.identificationSession.findFirst({
    where: { id: input.sessionId, clinicId: input.clinicId },
    include: { patient: { select: { iin: true } }, code: { select: { createdAt: true } } },
  });
  if (!session) throw new StorageError('reference_not_found', 'No such session in this clinic.');
  // The conditional update decides (two finishers of one session cannot both pass it).
  const { count } = await tx.identificationSession.updateMany({
    where: { id: input.sessionId, clinicId: input.clinicId, state: { in: from } },
    data: { state: to, finishedAt: now },
  });
  if (count !== 1) return null;
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
  await appendEvent(scope, {
    ...sessionFields(session),
    method: input.method,
    result: input.result,
    score: input.score,
    liveness: input.liveness,
    timings: input.timings,
    durationMs: timeToVerdictMs({
      method: input.method,
      timings: input.timings,
      codeSentAt: session.code?.createdAt ?? null,
      at: now,
    }),
    at: now,
  });
  // After the event: the clinic's row lock (its event seq) already orders this clinic's verdicts.
  if (options.calibration?.length) {
    await incrementCalibration(
      tx,
      { clinicId: input.clinicId, workstationId: session.workstationId, day: utcDay(now) },
      options.calibration,
    );
  }
  if (session.state === 'connected') {
    // Its face connection may be held by another gateway process: it closes on commit (PostgreSQL NOTIFY).
    await notifyInTx(tx, SESSIONS_CHANNEL, { id: session.id, st: to });
  }
  if (options.audit) scope.audit(options.audit);
  return toVerdict(row);
}

export class PrismaVerdictRepository implements VerdictRepository {
  constructor(
    private readonly db: Db,
    private readonly transactions: Transactions,
  ) {}

  async finish(input: Omit<Verdict, 'id' | 'createdAt'>, options: FinishOptions = {}): Promise<Verdict | null> {
    try {
      return await this.transactions.run((work) => work.verdicts.finish(input, options));
    } catch (err) {
      if (isUniqueViolation(err)) return null; // the session already has its verdict
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

import { randomUUID } from 'node:crypto';
import type { Db, Tx } from '../db';
import { StorageError } from '../errors';
import type {
  Channel,
  EventOutcome,
  EventPayload,
  EventRepository,
  EventType,
  StoredEvent,
  VerdictMethod,
} from '../ports';
import { jsonInput, toStoredEvent } from './map';

/** What the transaction that records an outcome knows; appendEvent() adds the id, seq, type and version. */
export type EventDraft = Omit<EventPayload, 'id' | 'type' | 'version' | 'seq' | 'occurredAt'> & {
  /** Time to verdict for the statistics (not part of the payload). */
  durationMs: number | null;
  at: Date;
};

/** The part of a draft that comes from the session (read inside the transaction, with its patient's IIN). */
export function sessionFields(session: {
  id: string;
  clinicId: string;
  appointmentId: string;
  channel: string;
  patient: { iin: string };
}): Pick<EventDraft, 'clinicId' | 'sessionId' | 'appointmentId' | 'iin' | 'channel'> {
  return {
    clinicId: session.clinicId,
    sessionId: session.id,
    appointmentId: session.appointmentId,
    iin: session.patient.iin,
    channel: session.channel as Channel,
  };
}

export function eventTypeOf(result: EventDraft['result']): EventType {
  if (result === 'refused') return 'identification.refused';
  if (result === 'expired') return 'identification.expired';
  if (result === 'locked_out') return 'identification.locked_out';
  return 'identification.verdict';
}

/**
 * Writes one event inside the caller's transaction (the transactional outbox). The seq comes from incrementing the
 * clinic's counter row, which PostgreSQL locks until the commit: one clinic's events therefore commit in seq order,
 * and a reader that has seen seq n can never later find a new event below n.
 */
export async function appendEvent(tx: Tx, draft: EventDraft): Promise<StoredEvent> {
  const clinic = await tx.clinic.update({
    where: { id: draft.clinicId },
    data: { eventSeq: { increment: 1 } },
    select: { eventSeq: true },
  });
  const type = eventTypeOf(draft.result);
  const payload: EventPayload = {
    id: randomUUID(),
    type,
    version: 1,
    clinicId: draft.clinicId,
    seq: clinic.eventSeq,
    sessionId: draft.sessionId,
    appointmentId: draft.appointmentId,
    iin: draft.iin,
    channel: draft.channel,
    method: draft.method,
    result: draft.result,
    reason: draft.reason,
    score: draft.score,
    liveness: draft.liveness,
    timings: draft.timings,
    occurredAt: draft.at.toISOString(),
  };
  const row = await tx.event.create({
    data: {
      id: payload.id,
      clinicId: draft.clinicId,
      seq: payload.seq,
      type,
      version: payload.version,
      sessionId: draft.sessionId,
      method: draft.method,
      result: draft.result,
      reason: draft.reason,
      durationMs: draft.durationMs == null ? null : Math.round(draft.durationMs),
      payload: jsonInput(payload as unknown as Record<string, unknown>)!,
      createdAt: draft.at,
    },
  });
  return toStoredEvent(row);
}

/** Tells this process's readers that a clinic has new events, after the transaction that wrote them committed. */
export class EventSignal {
  private readonly listeners = new Set<(clinicId: string) => void>();

  on(listener: (clinicId: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  emit(clinicId: string): void {
    for (const l of this.listeners) {
      try {
        l(clinicId);
      } catch {
        // A reader's failure is its own; the writer has committed.
      }
    }
  }
}

export class PrismaEventRepository implements EventRepository {
  constructor(
    private readonly db: Db,
    private readonly signal: EventSignal,
  ) {}

  onCommitted(listener: (clinicId: string) => void): () => void {
    return this.signal.on(listener);
  }

  after(clinicId: string, afterSeq: number, limit: number): Promise<StoredEvent[]> {
    return this.db.run(async (c) =>
      (await c.event.findMany({ where: { clinicId, seq: { gt: afterSeq } }, orderBy: { seq: 'asc' }, take: limit })).map(
        toStoredEvent,
      ),
    );
  }

  get(clinicId: string, id: string): Promise<StoredEvent | null> {
    return this.db.run(async (c) => {
      const row = await c.event.findFirst({ where: { id, clinicId } });
      return row && toStoredEvent(row);
    });
  }

  latestSeq(clinicId: string): Promise<number> {
    return this.db.run(async (c) => (await c.clinic.findUnique({ where: { id: clinicId }, select: { eventSeq: true } }))?.eventSeq ?? 0);
  }

  outcomes(clinicId: string, from: Date, to: Date): Promise<EventOutcome[]> {
    return this.db.run(async (c) =>
      (
        await c.event.findMany({
          where: { clinicId, createdAt: { gte: from, lt: to } },
          select: { type: true, method: true, result: true, reason: true, durationMs: true },
          orderBy: { seq: 'asc' },
        })
      ).map((r) => ({
        type: r.type as EventType,
        method: r.method as VerdictMethod,
        result: r.result,
        reason: r.reason,
        durationMs: r.durationMs,
      })),
    );
  }

  async appendLockout(input: {
    clinicId: string;
    patientId: string;
    appointmentId: string;
    channel: Channel;
  }): Promise<StoredEvent> {
    const event = await this.db.tx(async (tx) => {
      const patient = await tx.patient.findFirst({ where: { id: input.patientId, clinicId: input.clinicId } });
      if (!patient) throw new StorageError('reference_not_found', 'No such patient in this clinic.');
      return appendEvent(tx, {
        clinicId: input.clinicId,
        sessionId: null,
        appointmentId: input.appointmentId,
        iin: patient.iin,
        channel: input.channel,
        method: 'face',
        result: 'locked_out',
        reason: null,
        score: null,
        liveness: null,
        timings: null,
        durationMs: null,
        at: new Date(),
      });
    });
    this.signal.emit(input.clinicId);
    return event;
  }
}

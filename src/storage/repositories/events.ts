import { randomUUID } from 'node:crypto';
import type { Db, Tx } from '../db';
import { StorageError } from '../errors';
import type {
  CameraChangedEventPayload,
  Channel,
  EventOutcome,
  EventPayload,
  EventRepository,
  IdentificationEventPayload,
  IdentificationEventType,
  StoredEvent,
  VerdictMethod,
} from '../ports';
import { jsonInput, toStoredEvent } from './map';

/** What the transaction that records an outcome knows; appendEvent() adds the id, seq, type and version. */
export type EventDraft = Omit<IdentificationEventPayload, 'id' | 'type' | 'version' | 'seq' | 'occurredAt'> & {
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

/** The identification event types (statistics read only these). */
export const IDENTIFICATION_EVENT_TYPES: readonly IdentificationEventType[] = [
  'identification.verdict',
  'identification.refused',
  'identification.expired',
  'identification.locked_out',
];

export function eventTypeOf(result: EventDraft['result']): IdentificationEventType {
  if (result === 'refused') return 'identification.refused';
  if (result === 'expired') return 'identification.expired';
  if (result === 'locked_out') return 'identification.locked_out';
  return 'identification.verdict';
}

/** The Event row's columns besides the payload (statistics read them; workstation events fill them as 'none'). */
interface EventColumns {
  sessionId: string | null;
  method: VerdictMethod;
  result: string;
  reason: string | null;
  durationMs: number | null;
}

/**
 * Writes one event inside the caller's transaction (the transactional outbox). The seq comes from incrementing the
 * clinic's counter row, which PostgreSQL locks until the commit: one clinic's events therefore commit in seq order,
 * and a reader that has seen seq n can never later find a new event below n.
 */
async function insertEvent(
  tx: Tx,
  clinicId: string,
  at: Date,
  columns: EventColumns,
  build: (head: { id: string; seq: number }) => EventPayload,
): Promise<StoredEvent> {
  const clinic = await tx.clinic.update({
    where: { id: clinicId },
    data: { eventSeq: { increment: 1 } },
    select: { eventSeq: true },
  });
  const payload = build({ id: randomUUID(), seq: clinic.eventSeq });
  const row = await tx.event.create({
    data: {
      id: payload.id,
      clinicId,
      seq: payload.seq,
      type: payload.type,
      version: payload.version,
      sessionId: columns.sessionId,
      method: columns.method,
      result: columns.result,
      reason: columns.reason,
      durationMs: columns.durationMs == null ? null : Math.round(columns.durationMs),
      payload: jsonInput(payload as unknown as Record<string, unknown>)!,
      createdAt: at,
    },
  });
  return toStoredEvent(row);
}

/** Writes an identification outcome's event inside the caller's transaction. */
export function appendEvent(tx: Tx, draft: EventDraft): Promise<StoredEvent> {
  const type = eventTypeOf(draft.result);
  return insertEvent(tx, draft.clinicId, draft.at, draft, ({ id, seq }) => ({
    id,
    type,
    version: 1,
    clinicId: draft.clinicId,
    seq,
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
  }));
}

/** Writes a `workstation.camera_changed` event inside the caller's transaction (labels only, never a device id). */
export function appendCameraChanged(
  tx: Tx,
  draft: Pick<CameraChangedEventPayload, 'clinicId' | 'workstationId' | 'previous' | 'current'> & { at: Date },
): Promise<StoredEvent> {
  const columns: EventColumns = { sessionId: null, method: 'none', result: 'camera_changed', reason: null, durationMs: null };
  return insertEvent(tx, draft.clinicId, draft.at, columns, ({ id, seq }) => ({
    id,
    type: 'workstation.camera_changed',
    version: 1,
    clinicId: draft.clinicId,
    seq,
    workstationId: draft.workstationId,
    previous: { label: draft.previous.label },
    current: { label: draft.current.label },
    occurredAt: draft.at.toISOString(),
  }));
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
          // Identification outcomes only: workstation events are not identifications.
          where: { clinicId, createdAt: { gte: from, lt: to }, type: { in: [...IDENTIFICATION_EVENT_TYPES] } },
          select: { type: true, method: true, result: true, reason: true, durationMs: true },
          orderBy: { seq: 'asc' },
        })
      ).map((r) => ({
        type: r.type as IdentificationEventType,
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

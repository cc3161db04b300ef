import { randomUUID } from 'node:crypto';
import { notifyInTx, type Db, type Tx } from '../db';
import { StorageError } from '../errors';
import type {
  CameraChangedEventPayload,
  Channel,
  EventOutcome,
  EventFilter,
  EventPayload,
  EventRepository,
  IdentificationEventPayload,
  IdentificationEventType,
  KeyChange,
  KeyHolderKind,
  StoredEvent,
  TemplateEventPayload,
  TemplateEventType,
  VerdictMethod,
} from '../ports';
import { EVENTS_CHANNEL } from '../signals';
import { jsonInput, toStoredEvent } from './map';

/** What the transaction that records an outcome knows; appendEvent() adds the id, seq, type and version. */
export type EventDraft = Omit<IdentificationEventPayload, 'id' | 'type' | 'version' | 'seq' | 'occurredAt'> & {
  /** Time to verdict for the statistics (not part of the payload). */
  durationMs: number | null;
  at: Date;
  /** The workstation whose session (or attempt) it is: that workstation's key may read the event (not in the payload). */
  workstationId: string | null;
};

/** The part of a draft that comes from the session (read inside the transaction, with its patient's IIN). */
export function sessionFields(session: {
  id: string;
  clinicId: string;
  workstationId: string;
  appointmentId: string;
  channel: string;
  patient: { iin: string };
}): Pick<EventDraft, 'clinicId' | 'sessionId' | 'appointmentId' | 'iin' | 'channel' | 'workstationId'> {
  return {
    clinicId: session.clinicId,
    workstationId: session.workstationId,
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
  /** Set on identification events only: the workstation whose key may read it. */
  workstationId?: string | null;
  method: VerdictMethod;
  result: string;
  reason: string | null;
  durationMs: number | null;
}

/**
 * Writes one event inside the caller's transaction (the transactional outbox). The seq comes from incrementing the
 * clinic's counter row, which PostgreSQL locks until the commit: one clinic's events therefore commit in seq order,
 * and a reader that has seen seq n can never later find a new event below n. On PostgreSQL the same transaction
 * queues a notification (faceid_events: clinic id, seq, type) that the other gateways receive on commit.
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
      workstationId: columns.workstationId ?? null,
      method: columns.method,
      result: columns.result,
      reason: columns.reason,
      durationMs: columns.durationMs == null ? null : Math.round(columns.durationMs),
      payload: jsonInput(payload as unknown as Record<string, unknown>)!,
      createdAt: at,
    },
  });
  // Other gateway processes learn of it on commit (PostgreSQL; nothing on SQLite): ids and the type, no payload.
  await notifyInTx(tx, EVENTS_CHANNEL, { c: clinicId, s: payload.seq, t: payload.type });
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

/**
 * Writes a `template.enrolled`, `template.replaced` or `template.revoked` event inside the transaction that changes
 * the template (ids, the IIN and who did it; never template data).
 */
export function appendTemplateEvent(
  tx: Tx,
  draft: Omit<TemplateEventPayload, 'id' | 'version' | 'seq' | 'occurredAt'> & { at: Date },
): Promise<StoredEvent> {
  const result = draft.type.slice('template.'.length);
  const columns: EventColumns = { sessionId: null, method: 'none', result, reason: null, durationMs: null };
  const type: TemplateEventType = draft.type;
  return insertEvent(tx, draft.clinicId, draft.at, columns, ({ id, seq }) => ({
    id,
    type,
    version: 1,
    clinicId: draft.clinicId,
    seq,
    iin: draft.iin,
    templateId: draft.templateId,
    previousTemplateId: draft.previousTemplateId,
    actor: { kind: draft.actor.kind, id: draft.actor.id },
    images: draft.images,
    confirmation: draft.confirmation,
    occurredAt: draft.at.toISOString(),
  }));
}

/** The event type of each key holder kind. */
export const KEY_EVENT_TYPES = { workstation: 'workstation.key_changed', mis_client: 'mis_client.key_changed' } as const;

/**
 * Writes a `workstation.key_changed` or `mis_client.key_changed` event inside the transaction that changes the key
 * (ids and times only: never a key, a hash or a name).
 */
export function appendKeyChanged(
  tx: Tx,
  draft: {
    clinicId: string;
    kind: KeyHolderKind;
    holderId: string;
    change: KeyChange;
    by: 'operator' | 'self';
    previousKeyValidUntil: Date | null;
    at: Date;
  },
): Promise<StoredEvent> {
  const columns: EventColumns = { sessionId: null, method: 'none', result: 'key_changed', reason: null, durationMs: null };
  const common = {
    version: 1 as const,
    clinicId: draft.clinicId,
    change: draft.change,
    by: draft.by,
    previousKeyValidUntil: draft.previousKeyValidUntil?.toISOString() ?? null,
    occurredAt: draft.at.toISOString(),
  };
  return insertEvent(tx, draft.clinicId, draft.at, columns, ({ id, seq }) =>
    draft.kind === 'workstation'
      ? { id, type: KEY_EVENT_TYPES.workstation, ...common, seq, workstationId: draft.holderId }
      : { id, type: KEY_EVENT_TYPES.mis_client, ...common, seq, misClientId: draft.holderId },
  );
}

/** A reader's view of a clinic's events: a workstation sees the identification events of its own sessions only. */
function visible(clinicId: string, filter: EventFilter | undefined) {
  return filter
    ? { clinicId, workstationId: filter.workstationId, type: { in: [...IDENTIFICATION_EVENT_TYPES] } }
    : { clinicId };
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

  after(clinicId: string, afterSeq: number, limit: number, filter?: EventFilter): Promise<StoredEvent[]> {
    return this.db.run(async (c) =>
      (
        await c.event.findMany({
          where: { ...visible(clinicId, filter), seq: { gt: afterSeq } },
          orderBy: { seq: 'asc' },
          take: limit,
        })
      ).map(toStoredEvent),
    );
  }

  get(clinicId: string, id: string, filter?: EventFilter): Promise<StoredEvent | null> {
    return this.db.run(async (c) => {
      const row = await c.event.findFirst({ where: { ...visible(clinicId, filter), id } });
      return row && toStoredEvent(row);
    });
  }

  lastAtOrBefore(clinicId: string, atOrBefore: number, filter?: EventFilter): Promise<StoredEvent | null> {
    return this.db.run(async (c) => {
      const row = await c.event.findFirst({
        where: { ...visible(clinicId, filter), seq: { lte: atOrBefore } },
        orderBy: { seq: 'desc' },
      });
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
    workstationId?: string;
  }): Promise<StoredEvent> {
    const event = await this.db.tx(async (tx) => {
      const patient = await tx.patient.findFirst({ where: { id: input.patientId, clinicId: input.clinicId } });
      if (!patient) throw new StorageError('reference_not_found', 'No such patient in this clinic.');
      return appendEvent(tx, {
        clinicId: input.clinicId,
        workstationId: input.workstationId ?? null,
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

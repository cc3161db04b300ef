import { randomUUID } from 'node:crypto';
import {
  cameraChangedEvent,
  identificationEvent,
  IDENTIFICATION_EVENT_TYPES,
  keyChangedEvent,
  type KeyChangedDraft,
  outcomeColumns,
  templateEvent,
  type EventHead,
  type IdentificationDraft,
  type TemplateEventDraft,
} from '../../events/payloads';
import { notifyInTx, type Client, type Db } from '../db';
import { StorageError } from '../errors';
import type {
  Channel,
  DurationBucket,
  DurationDistribution,
  EventFilter,
  EventPayload,
  EventRepository,
  IdentificationEventType,
  NewAuditEntry,
  OutcomeCount,
  StoredEvent,
  VerdictDurations,
  VerdictMethod,
} from '../ports';
import { EVENTS_CHANNEL } from '../signals';
import type { Transactions, TxScope } from '../unit-of-work';
import { jsonInput, toStoredEvent } from './map';

/**
 * What the transaction that records an identification outcome knows: the event's content (built by
 * identificationEvent() in src/events/payloads.ts, which adds the id, seq, type and version), and its columns.
 */
export type EventDraft = IdentificationDraft & {
  /** Time to verdict for the statistics (not part of the payload). */
  durationMs: number | null;
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
 * queues a notification (faceid_events: clinic id, seq, type) that the other gateways receive on commit; this
 * process's readers are told once it committed (TxScope.eventsWritten).
 */
async function insertEvent(
  scope: TxScope,
  clinicId: string,
  at: Date,
  columns: EventColumns,
  build: (head: EventHead) => EventPayload,
): Promise<StoredEvent> {
  const { tx } = scope;
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
  scope.eventsWritten(clinicId);
  return toStoredEvent(row);
}

/** Writes an identification outcome's event inside the caller's transaction. */
export function appendEvent(scope: TxScope, draft: EventDraft): Promise<StoredEvent> {
  const columns: EventColumns = {
    sessionId: draft.sessionId,
    workstationId: draft.workstationId,
    ...outcomeColumns(draft),
    durationMs: draft.durationMs,
  };
  return insertEvent(scope, draft.clinicId, draft.at, columns, (head) => identificationEvent(head, draft));
}

/** Writes a `workstation.camera_changed` event inside the caller's transaction (labels only, never a device id). */
export function appendCameraChanged(
  scope: TxScope,
  draft: Parameters<typeof cameraChangedEvent>[1],
): Promise<StoredEvent> {
  const columns: EventColumns = {
    sessionId: null,
    method: 'none',
    result: 'camera_changed',
    reason: null,
    durationMs: null,
  };
  return insertEvent(scope, draft.clinicId, draft.at, columns, (head) => cameraChangedEvent(head, draft));
}

/**
 * Writes a `template.enrolled`, `template.replaced` or `template.revoked` event inside the transaction that changes
 * the template (ids, the IIN and who did it; never template data).
 */
export function appendTemplateEvent(scope: TxScope, draft: TemplateEventDraft): Promise<StoredEvent> {
  const result = draft.type.slice('template.'.length);
  const columns: EventColumns = { sessionId: null, method: 'none', result, reason: null, durationMs: null };
  return insertEvent(scope, draft.clinicId, draft.at, columns, (head) => templateEvent(head, draft));
}

/**
 * Writes a `workstation.key_changed` or `mis_client.key_changed` event inside the transaction that changes the key
 * (ids and times only: never a key, a hash or a name).
 */
export function appendKeyChanged(scope: TxScope, draft: KeyChangedDraft): Promise<StoredEvent> {
  const columns: EventColumns = {
    sessionId: null,
    method: 'none',
    result: 'key_changed',
    reason: null,
    durationMs: null,
  };
  return insertEvent(scope, draft.clinicId, draft.at, columns, (head) => keyChangedEvent(head, draft));
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
    private readonly transactions: Transactions,
  ) {}

  onCommitted(listener: (clinicId: string) => void): () => void {
    return this.transactions.onCommitted(listener);
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
    return this.db.run(
      async (c) => (await c.clinic.findUnique({ where: { id: clinicId }, select: { eventSeq: true } }))?.eventSeq ?? 0,
    );
  }

  async outcomeCounts(clinicId: string, from: Date, to: Date): Promise<OutcomeCount[]> {
    const merged = new Map<string, OutcomeCount>();
    for (const [start, end] of this.turns(from, to)) {
      const rows = await this.db.run((c) =>
        c.event.groupBy({
          by: ['type', 'method', 'result', 'reason'],
          // Identification outcomes only: workstation events are not identifications.
          where: { clinicId, createdAt: { gte: start, lt: end }, type: { in: [...IDENTIFICATION_EVENT_TYPES] } },
          _count: { _all: true },
        }),
      );
      for (const r of rows) {
        const key = JSON.stringify([r.type, r.method, r.result, r.reason]);
        const seen = merged.get(key);
        if (seen) seen.count += r._count._all;
        else {
          merged.set(key, {
            type: r.type as IdentificationEventType,
            method: r.method as VerdictMethod,
            result: r.result,
            reason: r.reason,
            count: r._count._all,
          });
        }
      }
    }
    return [...merged.values()];
  }

  async verdictDurations(
    clinicId: string,
    from: Date,
    to: Date,
    request: { quantiles: readonly number[]; histogramBits: number },
  ): Promise<VerdictDurations> {
    const { quantiles, histogramBits } = request;
    if (!quantiles.every((q) => q >= 0 && q <= 1)) throw new RangeError('quantiles must be within [0, 1]');
    if (!Number.isInteger(histogramBits) || histogramBits < 1 || histogramBits > 16) {
      throw new RangeError('histogramBits must be an integer within [1, 16]');
    }
    if (this.db.provider === 'postgres') return this.db.run((c) => exactDurations(c, clinicId, from, to, quantiles));
    const histograms = { face: new Histogram(), code: new Histogram(), all: new Histogram() };
    for (const [start, end] of this.turns(from, to)) {
      const rows = await this.db.run((c) => histogramRows(c, clinicId, start, end, histogramBits));
      for (const r of rows) {
        histograms[r.method as 'face' | 'code']?.add(r.lo, r.hi, r.count);
        histograms.all.add(r.lo, r.hi, r.count);
      }
    }
    return { face: histograms.face.done(), code: histograms.code.done(), all: histograms.all.done() };
  }

  /**
   * The window cut into the slices that statistics read, each in its own storage turn: the whole window on
   * PostgreSQL (a pool: nothing waits behind a query), slices of SQLITE_STATS_SLICE_MS on SQLite, whose one connection
   * runs operations one at a time, so that a verdict queued behind a long window waits for one slice, not the window.
   */
  private turns(from: Date, to: Date): Array<[Date, Date]> {
    if (this.db.provider === 'postgres') return [[from, to]];
    const [start, end] = [from.getTime(), to.getTime()];
    // At most SQLITE_STATS_MAX_TURNS slices, however long the window (a year of /stats is 53 weeks).
    const slice = Math.max(SQLITE_STATS_SLICE_MS, Math.ceil((end - start) / SQLITE_STATS_MAX_TURNS));
    const out: Array<[Date, Date]> = [];
    for (let t = start; t < end; t += slice) out.push([new Date(t), new Date(Math.min(t + slice, end))]);
    return out;
  }

  appendLockout(
    input: {
      clinicId: string;
      patientId: string;
      appointmentId: string;
      channel: Channel;
      workstationId?: string;
    },
    options: { audit?: NewAuditEntry } = {},
  ): Promise<StoredEvent> {
    return this.transactions.transaction(async (scope) => {
      const patient = await scope.tx.patient.findFirst({ where: { id: input.patientId, clinicId: input.clinicId } });
      if (!patient) throw new StorageError('reference_not_found', 'No such patient in this clinic.');
      if (options.audit) scope.audit(options.audit);
      return appendEvent(scope, {
        clinicId: input.clinicId,
        workstationId: input.workstationId ?? null,
        sessionId: null,
        appointmentId: input.appointmentId,
        iin: patient.iin,
        channel: input.channel,
        method: 'face',
        result: 'locked_out',
        score: null,
        liveness: null,
        timings: null,
        durationMs: null,
        at: new Date(),
      });
    });
  }
}

/** The verdicts whose time to verdict statistics read: face and code verdicts with a known duration. */
const TIMED_VERDICTS = `"type" = 'identification.verdict' AND "method" IN ('face', 'code') AND "durationMs" IS NOT NULL`;

/**
 * PostgreSQL: the quantiles of each method and of both, by percentile_cont (linear interpolation between the closest
 * ranks), in one pass (GROUPING SETS: per method, then all).
 */
async function exactDurations(
  c: Client,
  clinicId: string,
  from: Date,
  to: Date,
  quantiles: readonly number[],
): Promise<VerdictDurations> {
  const rows = await c.$queryRawUnsafe<Array<{ method: string | null; n: number; q: Array<number | null> | null }>>(
    `SELECT "method", COUNT(*)::int AS "n",
            percentile_cont($4::float8[]) WITHIN GROUP (ORDER BY "durationMs") AS "q"
       FROM "Event"
      WHERE "clinicId" = $1 AND "createdAt" >= $2 AND "createdAt" < $3 AND ${TIMED_VERDICTS}
      GROUP BY GROUPING SETS (("method"), ())`,
    clinicId,
    from,
    to,
    [...quantiles],
  );
  const of = (method: string | null): DurationDistribution => {
    const row = rows.find((r) => r.method === method);
    const count = Number(row?.n ?? 0);
    return {
      kind: 'exact',
      count,
      quantiles: quantiles.map((q, i) => ({ q, value: count === 0 || row?.q == null ? null : Number(row.q[i]) })),
    };
  };
  return { face: of('face'), code: of('code'), all: of(null) };
}

/** Int columns hold durations below 2^31 ms; the buckets keep their relative width up to there. */
const HISTOGRAM_TOP_BIT = 31;

/** How much of a window one SQLite turn of the statistics reads (see PrismaEventRepository.turns)... */
export const SQLITE_STATS_SLICE_MS = 7 * 24 * 60 * 60 * 1000;
/** ...in at most this many turns (longer slices for a longer window). */
export const SQLITE_STATS_MAX_TURNS = 60;

/**
 * SQLite has no percentile function: a histogram of the durations counted in SQL, with `bits` significant bits. A
 * duration d below 2^bits gets its own bucket (exact); above, d keeps its top `bits` bits: the bucket is
 * [(d >> s) << s, ((d >> s) + 1) << s) with s = bitLength(d) - bits, 2^s wide and at least 2^(bits + s - 1) from 0,
 * so at most 2^(1 - bits) of its lower bound wide. One pass over the rows; at most 2^(bits - 1) buckets per octave
 * of durations come back, whatever the number of rows.
 */
async function histogramRows(
  c: Client,
  clinicId: string,
  from: Date,
  to: Date,
  bits: number,
): Promise<Array<{ method: string } & DurationBucket>> {
  const whens: string[] = [];
  for (let k = 0; bits + k <= HISTOGRAM_TOP_BIT; k++) whens.push(`WHEN "durationMs" < ${2 ** (bits + k)} THEN ${k}`);
  const shift = `CASE ${whens.join(' ')} ELSE ${HISTOGRAM_TOP_BIT - bits + 1} END`;
  const rows = await c.$queryRawUnsafe<
    Array<{ method: string; s: number | bigint; b: number | bigint; n: number | bigint }>
  >(
    `SELECT "method", "s", "durationMs" >> "s" AS "b", COUNT(*) AS "n"
       FROM (SELECT "method", "durationMs", ${shift} AS "s"
               FROM "Event"
              WHERE "clinicId" = ? AND "createdAt" >= ? AND "createdAt" < ? AND ${TIMED_VERDICTS})
      GROUP BY "method", "s", "b"`,
    clinicId,
    from,
    to,
  );
  return rows.map((r) => {
    const width = 2 ** Number(r.s);
    const lo = Number(r.b) * width;
    return { method: r.method, lo, hi: lo + width, count: Number(r.n) };
  });
}

/** Bucket counts added up over the slices of a window and the methods. */
class Histogram {
  private readonly buckets = new Map<number, DurationBucket>();

  add(lo: number, hi: number, count: number): void {
    const b = this.buckets.get(lo);
    if (b) b.count += count;
    else this.buckets.set(lo, { lo, hi, count });
  }

  done(): DurationDistribution {
    const buckets = [...this.buckets.values()].sort((a, b) => a.lo - b.lo);
    return { kind: 'histogram', count: buckets.reduce((t, b) => t + b.count, 0), buckets };
  }
}

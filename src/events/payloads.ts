/**
 * The MIS events as values: their types are inferred from the zod schemas of the contract (schemas.ts), and the
 * builders below make them, so a builder that drifts from the contract does not compile. Storage writes what these
 * build (src/storage/repositories/events.ts), inside the transaction of the change the event reports.
 */
import type { z } from 'zod';
import type { Channel, KeyChange, KeyHolderKind, VerdictMethod, VerdictResult } from '../storage/ports';
import {
  EVENT_TYPES,
  EVENT_VERSION,
  type CameraChangedEventSchema,
  type EventSchema,
  type ExpiredEventSchema,
  type LockedOutEventSchema,
  type MisClientKeyChangedEventSchema,
  type RefusedEventSchema,
  type TemplateEnrolledEventSchema,
  type TemplateReplacedEventSchema,
  type TemplateRevokedEventSchema,
  type VerdictEventSchema,
  type WorkstationKeyChangedEventSchema,
} from './schemas';

/** An `identification.verdict`: a session ended with a verdict (face or code). */
export type VerdictEventPayload = z.output<typeof VerdictEventSchema>;
/** An `identification.refused`: the patient is identified by code rather than by face. */
export type RefusedEventPayload = z.output<typeof RefusedEventSchema>;
/** An `identification.expired`: the session ended without a verdict. */
export type ExpiredEventPayload = z.output<typeof ExpiredEventSchema>;
/** An `identification.locked_out`: too many failed attempts (sessionId null: refused before a session opened). */
export type LockedOutEventPayload = z.output<typeof LockedOutEventSchema>;
/**
 * An identification event as delivered (version 1). No images, embeddings or codes: the IIN and appointment identify
 * the patient to the MIS, which already knows them.
 */
export type IdentificationEventPayload =
  | VerdictEventPayload
  | RefusedEventPayload
  | ExpiredEventPayload
  | LockedOutEventPayload;

/**
 * A workstation's browser reported a different camera than the one it used before: a swapped webcam, or a virtual
 * camera put in front of the real one. Labels only: never a device id, never biometric data.
 */
export type CameraChangedEventPayload = z.output<typeof CameraChangedEventSchema>;

/** A patient's template was enrolled, replaced or revoked: ids, the IIN and who did it, never template data. */
export type TemplateEventPayload = z.output<
  typeof TemplateEnrolledEventSchema | typeof TemplateReplacedEventSchema | typeof TemplateRevokedEventSchema
>;

/** A workstation's API key was created, rotated or revoked. Ids and times only: never a key, a hash or a name. */
export type WorkstationKeyChangedEventPayload = z.output<typeof WorkstationKeyChangedEventSchema>;
/** An MIS client's API key was created, rotated or revoked (by the operator, or by the holder itself). */
export type MisClientKeyChangedEventPayload = z.output<typeof MisClientKeyChangedEventSchema>;
export type KeyChangedEventPayload = WorkstationKeyChangedEventPayload | MisClientKeyChangedEventPayload;

/** An MIS event as delivered: narrow on `type`. */
export type EventPayload = z.output<typeof EventSchema>;

export type { EventType } from './schemas';
export type IdentificationEventType = IdentificationEventPayload['type'];
export type TemplateEventType = TemplateEventPayload['type'];
export type KeyEventType = KeyChangedEventPayload['type'];

/** The identification event types (statistics read only these; a workstation key reads only these). */
export const IDENTIFICATION_EVENT_TYPES = EVENT_TYPES.filter((t): t is IdentificationEventType =>
  t.startsWith('identification.'),
);

/** The version every event of this build carries (non-widening, for the builders' object literals). */
const VERSION: typeof EVENT_VERSION = EVENT_VERSION;

/** What every event starts with, given by storage: its id and its position in the clinic's stream. */
export interface EventHead {
  id: string;
  seq: number;
}

/** The event type of an identification outcome. */
export function eventTypeOf(result: VerdictResult | 'refused'): IdentificationEventType {
  if (result === 'refused') return 'identification.refused';
  if (result === 'expired') return 'identification.expired';
  if (result === 'locked_out') return 'identification.locked_out';
  return 'identification.verdict';
}

/** The patient and session an identification event is about. */
interface IdentificationSubject {
  clinicId: string;
  /** null only for a face lock-out refused before any session was opened. */
  sessionId: string | null;
  appointmentId: string;
  iin: string;
  channel: Channel;
  at: Date;
}

/** An identification outcome: a refusal (the code path starts), or a verdict (expired and locked_out included). */
export type IdentificationOutcome =
  | { result: 'refused'; reason: string }
  | {
      method: VerdictMethod;
      result: VerdictResult;
      score: number | null;
      /** The verdict's measurements (numbers, booleans and nulls by construction; the events tests check them). */
      liveness: Record<string, unknown> | null;
      timings: Record<string, unknown> | null;
    };

export type IdentificationDraft = IdentificationSubject & IdentificationOutcome;

/** The statistics columns of an identification outcome (method, result, reason), as its event carries them. */
export function outcomeColumns(outcome: IdentificationOutcome): {
  method: VerdictMethod;
  result: string;
  reason: string | null;
} {
  return outcome.result === 'refused'
    ? { method: 'none', result: 'refused', reason: outcome.reason }
    : { method: outcome.method, result: outcome.result, reason: null };
}

type Measurements = VerdictEventPayload['liveness'];

/** What follows the head (id, type, version, clinicId, seq) in an event of type P. */
type EventBody<P> = Omit<P, 'id' | 'type' | 'version' | 'clinicId' | 'seq'>;

/**
 * An event of type P: the head first, then its body, in that key order (stored events keep it). The body is checked
 * against P's own schema type; the head's fields are P's by construction.
 */
function withHead<P extends EventPayload>(head: EventHead, type: P['type'], clinicId: string, body: EventBody<P>): P {
  return { id: head.id, type, version: VERSION, clinicId, seq: head.seq, ...body } as P;
}

/** The event of an identification outcome (its type follows from the result: see eventTypeOf). */
export function identificationEvent(head: EventHead, draft: IdentificationDraft): IdentificationEventPayload {
  const { clinicId, sessionId, appointmentId, iin, channel } = draft;
  const occurredAt = draft.at.toISOString();
  if (draft.result === 'refused') {
    if (sessionId === null) throw new Error('A refusal belongs to a session.');
    return withHead<RefusedEventPayload>(head, 'identification.refused', clinicId, {
      sessionId,
      appointmentId,
      iin,
      channel,
      method: 'none',
      result: 'refused',
      reason: draft.reason,
      score: null,
      liveness: null,
      timings: null,
      occurredAt,
    });
  }
  const { method, result, score } = draft;
  // The verdict's objects go into the event as they are (Verdict types them loosely; the contract holds numbers).
  const liveness = draft.liveness as Measurements;
  const timings = draft.timings as Measurements;
  const body = <S extends string | null, R>(sid: S, r: R) => ({
    sessionId: sid,
    appointmentId,
    iin,
    channel,
    method,
    result: r,
    reason: null,
    score,
    liveness,
    timings,
    occurredAt,
  });
  if (result === 'locked_out') {
    return withHead<LockedOutEventPayload>(head, 'identification.locked_out', clinicId, body(sessionId, result));
  }
  if (sessionId === null) throw new Error(`A ${result} verdict belongs to a session.`);
  if (result === 'expired') {
    return withHead<ExpiredEventPayload>(head, 'identification.expired', clinicId, body(sessionId, result));
  }
  return withHead<VerdictEventPayload>(head, 'identification.verdict', clinicId, body(sessionId, result));
}

/** A `workstation.camera_changed` event (labels only, never a device id). */
export function cameraChangedEvent(
  head: EventHead,
  draft: { clinicId: string; workstationId: string; previous: { label: string }; current: { label: string }; at: Date },
): CameraChangedEventPayload {
  return {
    id: head.id,
    type: 'workstation.camera_changed',
    version: VERSION,
    clinicId: draft.clinicId,
    seq: head.seq,
    workstationId: draft.workstationId,
    previous: { label: draft.previous.label },
    current: { label: draft.current.label },
    occurredAt: draft.at.toISOString(),
  };
}

/** What a template change's event reports. */
export type TemplateEventDraft = { clinicId: string; iin: string; actor: TemplateEventPayload['actor']; at: Date } & (
  | {
      type: 'template.enrolled';
      templateId: string;
      previousTemplateId: null;
      images: number;
      confirmation: 'patient_code' | null;
    }
  | {
      type: 'template.replaced';
      templateId: string;
      previousTemplateId: string;
      images: number;
      confirmation: 'patient_code' | null;
    }
  | { type: 'template.revoked'; templateId: null; previousTemplateId: string; images: null; confirmation: null }
);

/** A `template.enrolled`, `template.replaced` or `template.revoked` event (ids, the IIN and who did it). */
export function templateEvent(head: EventHead, draft: TemplateEventDraft): TemplateEventPayload {
  const { type, clinicId, iin, templateId, previousTemplateId, images, confirmation } = draft;
  const body = {
    iin,
    templateId,
    previousTemplateId,
    actor: { kind: draft.actor.kind, id: draft.actor.id },
    images,
    confirmation,
    occurredAt: draft.at.toISOString(),
  };
  // Each draft variant's fields are its event's (checked by payloads.spec against the schemas).
  return withHead<TemplateEventPayload>(head, type, clinicId, body as EventBody<TemplateEventPayload>);
}

/** The event type of each key holder kind. */
export const KEY_EVENT_TYPES = {
  workstation: 'workstation.key_changed',
  mis_client: 'mis_client.key_changed',
} as const satisfies Record<KeyHolderKind, KeyChangedEventPayload['type']>;

/** What a key change's event is made of (ids and times only: never a key, a hash or a name). */
export interface KeyChangedDraft {
  clinicId: string;
  kind: KeyHolderKind;
  holderId: string;
  change: KeyChange;
  by: 'operator' | 'self';
  previousKeyValidUntil: Date | null;
  at: Date;
}

/** A `workstation.key_changed` or `mis_client.key_changed` event (ids and times only). */
export function keyChangedEvent(head: EventHead, draft: KeyChangedDraft): KeyChangedEventPayload {
  const common = {
    version: VERSION,
    clinicId: draft.clinicId,
    change: draft.change,
    by: draft.by,
    previousKeyValidUntil: draft.previousKeyValidUntil?.toISOString() ?? null,
    occurredAt: draft.at.toISOString(),
  };
  return draft.kind === 'workstation'
    ? { id: head.id, type: KEY_EVENT_TYPES.workstation, ...common, seq: head.seq, workstationId: draft.holderId }
    : { id: head.id, type: KEY_EVENT_TYPES.mis_client, ...common, seq: head.seq, misClientId: draft.holderId };
}

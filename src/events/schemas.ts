/**
 * The MIS events, version 1, as zod schemas: one per event type. The payload types are inferred from them
 * (payloads.ts, re-exported by src/storage/ports.ts), and so are the results of the builders storage writes with. They
 * document the events (docs/events/*.schema.json are generated from them, a test checks the committed files) and the
 * tests check every event they see against them. Objects are strict: an event carries exactly these keys, and the
 * small objects (liveness, timings) hold only numbers, booleans and nulls, so no image, embedding or code fits.
 */
import { z } from 'zod';

export const EVENT_VERSION = 1;

export const EVENT_TYPES = [
  'identification.verdict',
  'identification.refused',
  'identification.expired',
  'identification.locked_out',
  'workstation.camera_changed',
  'template.enrolled',
  'template.replaced',
  'template.revoked',
  'workstation.key_changed',
  'mis_client.key_changed',
] as const;

/** The MIS event types: identification outcomes, what happened to a workstation, a patient's template, or a key. */
export type EventType = (typeof EVENT_TYPES)[number];

/** The results an `identification.verdict` can carry (the others have event types of their own). */
export const VERDICT_RESULTS = ['match', 'no_match', 'spoof_suspected', 'no_template', 'timeout', 'error'] as const;

const Uuid = z.uuid();
const Method = z.enum(['face', 'code', 'none']).meta({
  description: 'How the patient was identified: `face`, `code` (the six-digit SMS code), or `none`.',
});
/** Numbers, booleans and nulls only: measurements, never data. */
const SmallNumbers = z.record(z.string().max(64), z.union([z.number(), z.boolean(), z.null()]));

const SessionId = Uuid.meta({ description: 'The identification session.' });
const NoReason = z.null().meta({ description: 'Only refusals carry a reason.' });
const Score = z
  .number()
  .nullable()
  .meta({ description: 'Cosine similarity to the template; null without a comparison.' });
const Liveness = SmallNumbers.nullable().meta({
  description: 'Liveness measurements, e.g. {"passive": 0.93, "blink": true}; null when none were taken.',
});
const Timings = SmallNumbers.nullable().meta({
  description: 'Durations (ms) and frame counts of the session, e.g. {"firstFrameToVerdictMs": 2100}.',
});

/** The first fields of every event (the order is EventPayload's, and the JSON Schemas' properties'). */
function head<T extends EventType>(type: T) {
  return {
    id: Uuid.meta({ description: 'Unique id of the event: the cursor to resume after it, and the webhook-id header.' }),
    type: z.literal(type),
    version: z.literal(EVENT_VERSION),
    clinicId: Uuid.meta({ description: 'The clinic the event belongs to (an MIS key reads only its own clinic).' }),
    seq: z
      .number()
      .int()
      .positive()
      .meta({ description: 'Position in the clinic’s stream (1, 2, 3...): events are delivered in this order.' }),
  };
}

const Iin = z
  .string()
  .regex(/^\d{12}$/)
  .meta({ description: 'The patient’s IIN (12 digits).' });

/** After sessionId. */
const patient = {
  appointmentId: z.string().min(1).max(64).meta({ description: 'The appointment the workstation gave.' }),
  iin: Iin,
  channel: z.enum(['in_person', 'remote']),
};

const OccurredAt = z.iso.datetime().meta({ description: 'When it happened (ISO 8601, UTC).' });

/** What the verdict, expiry and lock-out events end with (a refusal has a reason and no scores). */
const outcomeTail = {
  reason: NoReason,
  score: Score,
  liveness: Liveness,
  timings: Timings,
  occurredAt: OccurredAt,
};

export const VerdictEventSchema = z
  .strictObject({
    ...head('identification.verdict'),
    sessionId: SessionId,
    ...patient,
    method: Method,
    result: z.enum(VERDICT_RESULTS),
    ...outcomeTail,
  })
  .meta({
    title: 'identification.verdict (v1)',
    description: 'A session ended with a verdict: face or code, match or not (or no template, timeout, error).',
  });

export const RefusedEventSchema = z
  .strictObject({
    ...head('identification.refused'),
    sessionId: SessionId,
    ...patient,
    method: z.literal('none'),
    result: z.literal('refused'),
    reason: z
      .string()
      .regex(/^[a-z_]{1,64}$/)
      .meta({
        description:
          'Why the patient is identified by code rather than by face, a short code: `patient_refused_photo`, ' +
          '`face_failed` (face identification did not succeed) or `camera_unavailable` (a desk that starts the ' +
          'session by code), or another short code given with POST /sessions/{id}/refusal.',
      }),
    score: z.null(),
    liveness: z.null(),
    timings: z.null(),
    occurredAt: OccurredAt,
  })
  .meta({
    title: 'identification.refused (v1)',
    description:
      'A patient at the desk is identified by the six-digit code rather than by face (they refused the photo, face ' +
      'identification did not succeed, or the camera does not work: `reason`); the session went on to the code, ' +
      'which was sent (a later identification.verdict with method `code` ends it).',
  });

export const ExpiredEventSchema = z
  .strictObject({
    ...head('identification.expired'),
    sessionId: SessionId,
    ...patient,
    method: Method,
    result: z.literal('expired'),
    ...outcomeTail,
  })
  .meta({
    title: 'identification.expired (v1)',
    description:
      'The session ended without a verdict: its token or code expired, or the face connection dropped before a decision.',
  });

export const LockedOutEventSchema = z
  .strictObject({
    ...head('identification.locked_out'),
    sessionId: SessionId.nullable().meta({
      description: 'The session, or null when the face attempts limit refused a new session before it was opened.',
    }),
    ...patient,
    method: Method,
    result: z.literal('locked_out'),
    ...outcomeTail,
  })
  .meta({
    title: 'identification.locked_out (v1)',
    description: 'Too many failed attempts (face, or wrong codes): the patient is locked out for now.',
  });

const CameraLabel = z
  .string()
  .max(200)
  .meta({ description: 'The camera’s label as the desk’s browser reported it (empty when the browser gave none).' });

export const CameraChangedEventSchema = z
  .strictObject({
    ...head('workstation.camera_changed'),
    workstationId: Uuid.meta({ description: 'The workstation (doctor’s desk) whose camera changed.' }),
    previous: z.strictObject({ label: CameraLabel }).meta({ description: 'The camera the workstation used before.' }),
    current: z.strictObject({ label: CameraLabel }).meta({ description: 'The camera it reported now.' }),
    occurredAt: OccurredAt,
  })
  .meta({
    title: 'workstation.camera_changed (v1)',
    description:
      'A workstation started an identification with a different camera than the one it used before (another ' +
      'device id, whatever the labels say). Expected after a webcam was replaced; otherwise worth a look: a ' +
      'virtual camera can feed recorded video to the page. Labels only: no device id, no biometric data.',
  });

const TemplateId = Uuid.meta({ description: 'The new template (its id only: the template itself never leaves).' });
const PreviousTemplateId = Uuid.meta({ description: 'The template that stopped being active.' });
const TemplateActor = z
  .strictObject({
    kind: z.enum(['enrollment_key', 'workstation', 'admin']).meta({
      description:
        'Who changed the template: `enrollment_key` (the registry role), `workstation` (a desk, where the clinic ' +
        'allows desk enrollment) or `admin` (`faceid enroll` on the service host).',
    }),
    id: Uuid.nullable().meta({ description: 'The enrollment key’s or the workstation’s id; null for `admin`.' }),
  })
  .meta({ description: 'Who changed the template.' });
const Images = z.number().int().min(1).max(16).meta({ description: 'Photos that went into the new template.' });

export const TemplateEnrolledEventSchema = z
  .strictObject({
    ...head('template.enrolled'),
    iin: Iin,
    templateId: TemplateId,
    previousTemplateId: z.null().meta({ description: 'No template was active before.' }),
    actor: TemplateActor,
    images: Images,
    confirmation: z
      .enum(['patient_code'])
      .nullable()
      .meta({
        description:
          '`patient_code` when a workstation enrolled a patient who had a template before (revoked since) and the ' +
          'patient confirmed with the six-digit code sent to their phone; null otherwise.',
      }),
    occurredAt: OccurredAt,
  })
  .meta({
    title: 'template.enrolled (v1)',
    description:
      'A patient who had no active template in the clinic got one. Ids and who did it only: no image, no embedding.',
  });

export const TemplateReplacedEventSchema = z
  .strictObject({
    ...head('template.replaced'),
    iin: Iin,
    templateId: TemplateId,
    previousTemplateId: PreviousTemplateId,
    actor: TemplateActor,
    images: Images,
    confirmation: z
      .enum(['patient_code'])
      .nullable()
      .meta({
        description:
          '`patient_code` when a workstation replaced it and the patient confirmed with the six-digit code sent to ' +
          'their phone (a workstation cannot replace a template otherwise); null for the enrollment role and `admin`.',
      }),
    occurredAt: OccurredAt,
  })
  .meta({
    title: 'template.replaced (v1)',
    description:
      'A patient’s active template was replaced by a new one: from now on the face is compared with the new one. ' +
      'Worth a look when unexpected (a new face for a known patient).',
  });

export const TemplateRevokedEventSchema = z
  .strictObject({
    ...head('template.revoked'),
    iin: Iin,
    templateId: z.null().meta({ description: 'No template is active any more.' }),
    previousTemplateId: PreviousTemplateId,
    actor: TemplateActor,
    images: z.null(),
    confirmation: z.null(),
    occurredAt: OccurredAt,
  })
  .meta({
    title: 'template.revoked (v1)',
    description: 'A patient’s template was revoked: face identification answers `no_template` until a new enrollment.',
  });

const KeyChange = z.enum(['created', 'rotated', 'revoked']).meta({
  description:
    '`created`: a new holder with its first key; `rotated`: a new key (the replaced one may still work, see ' +
    'previousKeyValidUntil); `revoked`: every key of the holder stopped working at once.',
});
const KeyChangedBy = z.enum(['operator', 'self']).meta({
  description:
    'Who did it: `operator` (the admin CLI or the admin HTTP routes) or `self` (the key’s holder, e.g. an MIS rotating ' +
    'its own key with POST /mis/keys/rotate: unexpected when your MIS did not, since whoever holds the key can).',
});
const PreviousKeyValidUntil = z.iso
  .datetime()
  .nullable()
  .meta({
    description:
      'A rotation: until when the replaced key still works (its grace; an earlier key keeps its own); null when it ' +
      'stopped at once, and for `created` and `revoked`.',
  });

/** What both key-change events end with, after the holder's id. */
const keyChangeTail = {
  change: KeyChange,
  by: KeyChangedBy,
  previousKeyValidUntil: PreviousKeyValidUntil,
  occurredAt: OccurredAt,
};

export const WorkstationKeyChangedEventSchema = z
  .strictObject({
    ...head('workstation.key_changed'),
    workstationId: Uuid.meta({ description: 'The workstation (doctor’s desk) whose API key changed.' }),
    ...keyChangeTail,
  })
  .meta({
    title: 'workstation.key_changed (v1)',
    description:
      'A workstation was created, its API key rotated, or it was revoked (its sessions stop at once). Ids and times ' +
      'only: never a key.',
  });

export const MisClientKeyChangedEventSchema = z
  .strictObject({
    ...head('mis_client.key_changed'),
    misClientId: Uuid.meta({ description: 'The MIS client whose API key changed (yours: GET /mis/me).' }),
    ...keyChangeTail,
  })
  .meta({
    title: 'mis_client.key_changed (v1)',
    description:
      'An MIS client of the clinic was created, its API key rotated, or it was revoked. A rotation by `self` that ' +
      'your MIS did not make means someone else holds its key: ask the operator to rotate it without grace. Ids and ' +
      'times only: never a key.',
  });

export const EVENT_SCHEMAS = {
  'identification.verdict': VerdictEventSchema,
  'identification.refused': RefusedEventSchema,
  'identification.expired': ExpiredEventSchema,
  'identification.locked_out': LockedOutEventSchema,
  'workstation.camera_changed': CameraChangedEventSchema,
  'template.enrolled': TemplateEnrolledEventSchema,
  'template.replaced': TemplateReplacedEventSchema,
  'template.revoked': TemplateRevokedEventSchema,
  'workstation.key_changed': WorkstationKeyChangedEventSchema,
  'mis_client.key_changed': MisClientKeyChangedEventSchema,
} as const satisfies Record<EventType, z.ZodType>;

/** Any event of version 1. */
export const EventSchema = z.discriminatedUnion('type', [
  VerdictEventSchema,
  RefusedEventSchema,
  ExpiredEventSchema,
  LockedOutEventSchema,
  CameraChangedEventSchema,
  TemplateEnrolledEventSchema,
  TemplateReplacedEventSchema,
  TemplateRevokedEventSchema,
  WorkstationKeyChangedEventSchema,
  MisClientKeyChangedEventSchema,
]);

/** The schema under its OpenAPI component name, keeping its title and description. */
function named<T extends z.ZodType>(schema: T, id: string): T {
  return schema.meta({ id, ...schema.meta() });
}

/** The same, with names, for the OpenAPI document (components.schemas). */
export const ApiEventSchema = z.discriminatedUnion('type', [
  named(VerdictEventSchema, 'IdentificationVerdictEventV1'),
  named(RefusedEventSchema, 'IdentificationRefusedEventV1'),
  named(ExpiredEventSchema, 'IdentificationExpiredEventV1'),
  named(LockedOutEventSchema, 'IdentificationLockedOutEventV1'),
  named(CameraChangedEventSchema, 'WorkstationCameraChangedEventV1'),
  named(TemplateEnrolledEventSchema, 'TemplateEnrolledEventV1'),
  named(TemplateReplacedEventSchema, 'TemplateReplacedEventV1'),
  named(TemplateRevokedEventSchema, 'TemplateRevokedEventV1'),
  named(WorkstationKeyChangedEventSchema, 'WorkstationKeyChangedEventV1'),
  named(MisClientKeyChangedEventSchema, 'MisClientKeyChangedEventV1'),
]);

export type JsonObject = Record<string, unknown>;

/** The JSON Schema (draft 2020-12) of one event type, as published in docs/events and at GET /events/schemas. */
export function eventJsonSchema(type: EventType): JsonObject {
  return z.toJSONSchema(EVENT_SCHEMAS[type], { target: 'draft-2020-12', io: 'output' }) as JsonObject;
}

/** File name of a type's schema in docs/events. */
export function schemaFileName(type: EventType): string {
  return `${type}.v${EVENT_VERSION}.schema.json`;
}

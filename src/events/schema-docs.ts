/**
 * The files of docs/events: one JSON Schema per event type and one example each, generated from the zod schemas so
 * they cannot drift (`npx ts-node --transpile-only scripts/event-schemas.ts`; a test checks the committed files).
 */
import type { EventPayload, EventType } from '../storage/ports';
import { EVENT_SCHEMAS, EVENT_TYPES, EVENT_VERSION, eventJsonSchema, schemaFileName } from './schemas';

const CLINIC = '5b8e2f4c-1d3a-4e6b-9c7d-2a1f0e9d8c7b';
const base = { version: EVENT_VERSION, clinicId: CLINIC, iin: '900101300027' } as const;

/** One realistic event of each type (made-up ids and IIN). */
export const EVENT_EXAMPLES: Record<EventType, EventPayload> = {
  'identification.verdict': {
    ...base,
    id: '0f6b3c5e-8a4d-4f2b-9e1c-7d5a3b2c1e0f',
    type: 'identification.verdict',
    seq: 41,
    sessionId: 'c3d2e1f0-a9b8-4c7d-8e6f-5a4b3c2d1e0f',
    appointmentId: 'apt-2024-000123',
    channel: 'in_person',
    method: 'face',
    result: 'match',
    reason: null,
    score: 0.712,
    liveness: { passive: 0.934, blink: true },
    timings: { firstFrameToVerdictMs: 2140, framesReceived: 23, framesAnalysed: 6, framesDropped: 0 },
    occurredAt: '2025-03-14T09:26:53.512Z',
  },
  'identification.refused': {
    ...base,
    id: '7a1e9c3b-5d2f-4a8e-b6c4-0e9f8d7c6b5a',
    type: 'identification.refused',
    seq: 42,
    sessionId: 'e5f4a3b2-c1d0-4e9f-8a7b-6c5d4e3f2a1b',
    appointmentId: 'apt-2024-000124',
    channel: 'in_person',
    method: 'none',
    result: 'refused',
    reason: 'patient_refused_photo',
    score: null,
    liveness: null,
    timings: null,
    occurredAt: '2025-03-14T09:31:02.004Z',
  },
  'identification.expired': {
    ...base,
    id: '2c4e6a8b-0d1f-4b3a-8c5e-7f9a1b3d5e7f',
    type: 'identification.expired',
    seq: 43,
    sessionId: 'a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d',
    appointmentId: 'apt-2024-000125',
    channel: 'remote',
    method: 'none',
    result: 'expired',
    reason: null,
    score: null,
    liveness: null,
    timings: null,
    occurredAt: '2025-03-14T09:40:00.250Z',
  },
  'identification.locked_out': {
    ...base,
    id: '9e8d7c6b-5a4f-4e3d-9c2b-1a0f9e8d7c6b',
    type: 'identification.locked_out',
    seq: 44,
    sessionId: null,
    appointmentId: 'apt-2024-000126',
    channel: 'in_person',
    method: 'face',
    result: 'locked_out',
    reason: null,
    score: null,
    liveness: null,
    timings: null,
    occurredAt: '2025-03-14T09:44:17.871Z',
  },
  'workstation.camera_changed': {
    id: '4d3c2b1a-0f9e-4d8c-b7a6-5e4d3c2b1a0f',
    type: 'workstation.camera_changed',
    version: EVENT_VERSION,
    clinicId: CLINIC,
    seq: 45,
    workstationId: '8f7e6d5c-4b3a-4921-8f0e-1d2c3b4a5968',
    previous: { label: 'HD Pro Webcam C920 (046d:082d)' },
    current: { label: 'OBS Virtual Camera' },
    occurredAt: '2025-03-14T09:52:40.118Z',
  },
  'template.enrolled': {
    id: '6b5a4f3e-2d1c-4b0a-9f8e-7d6c5b4a3f2e',
    type: 'template.enrolled',
    version: EVENT_VERSION,
    clinicId: CLINIC,
    seq: 46,
    iin: '900101300027',
    templateId: '1f2e3d4c-5b6a-4798-8a7b-6c5d4e3f2a1b',
    previousTemplateId: null,
    actor: { kind: 'enrollment_key', id: '3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f' },
    images: 1,
    confirmation: null,
    occurredAt: '2025-03-14T10:02:11.407Z',
  },
  'template.replaced': {
    id: '8e9f0a1b-2c3d-4e5f-a6b7-c8d9e0f1a2b3',
    type: 'template.replaced',
    version: EVENT_VERSION,
    clinicId: CLINIC,
    seq: 47,
    iin: '900101300027',
    templateId: '5d6e7f80-9a1b-4c2d-8e3f-4a5b6c7d8e9f',
    previousTemplateId: '1f2e3d4c-5b6a-4798-8a7b-6c5d4e3f2a1b',
    actor: { kind: 'workstation', id: '8f7e6d5c-4b3a-4921-8f0e-1d2c3b4a5968' },
    images: 1,
    confirmation: 'patient_code',
    occurredAt: '2025-03-14T10:15:47.930Z',
  },
  'template.revoked': {
    id: 'a0b1c2d3-e4f5-4a6b-8c7d-9e0f1a2b3c4d',
    type: 'template.revoked',
    version: EVENT_VERSION,
    clinicId: CLINIC,
    seq: 48,
    iin: '900101300027',
    templateId: null,
    previousTemplateId: '5d6e7f80-9a1b-4c2d-8e3f-4a5b6c7d8e9f',
    actor: { kind: 'enrollment_key', id: '3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f' },
    images: null,
    confirmation: null,
    occurredAt: '2025-03-14T11:40:05.216Z',
  },
  'workstation.key_changed': {
    id: 'b6c7d8e9-f0a1-4b2c-9d3e-4f5a6b7c8d9e',
    type: 'workstation.key_changed',
    version: EVENT_VERSION,
    clinicId: CLINIC,
    seq: 49,
    workstationId: '8f7e6d5c-4b3a-4921-8f0e-1d2c3b4a5968',
    change: 'revoked',
    by: 'operator',
    previousKeyValidUntil: null,
    occurredAt: '2025-03-14T12:05:31.644Z',
  },
  'mis_client.key_changed': {
    id: 'c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e5f',
    type: 'mis_client.key_changed',
    version: EVENT_VERSION,
    clinicId: CLINIC,
    seq: 50,
    misClientId: '6a5b4c3d-2e1f-4a0b-9c8d-7e6f5a4b3c2d',
    change: 'rotated',
    by: 'self',
    previousKeyValidUntil: '2025-03-15T12:20:09.102Z',
    occurredAt: '2025-03-14T12:20:09.102Z',
  },
};

/** Relative path (under docs/events) -> content, for every generated file. */
export function renderEventDocs(): Map<string, string> {
  const files = new Map<string, string>();
  for (const type of EVENT_TYPES) {
    const example = EVENT_SCHEMAS[type].parse(EVENT_EXAMPLES[type]); // an example that fails its schema is a bug here
    files.set(schemaFileName(type), JSON.stringify(eventJsonSchema(type), null, 2) + '\n');
    files.set(`examples/${type}.v${EVENT_VERSION}.json`, JSON.stringify(example, null, 2) + '\n');
  }
  return files;
}

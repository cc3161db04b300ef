import type { z } from 'zod';
import type { VerdictMethod, VerdictResult } from '../storage/ports';
import {
  cameraChangedEvent,
  eventTypeOf,
  identificationEvent,
  IDENTIFICATION_EVENT_TYPES,
  keyChangedEvent,
  outcomeColumns,
  templateEvent,
  type EventPayload,
} from './payloads';
import { EVENT_SCHEMAS, EVENT_TYPES } from './schemas';

const head = { id: '0f6b3c5e-8a4d-4f2b-9e1c-7d5a3b2c1e0f', seq: 7 };
const at = new Date(Date.UTC(2026, 0, 15, 9, 26, 53, 512));
const subject = {
  clinicId: '5b8e2f4c-1d3a-4e6b-9c7d-2a1f0e9d8c7b',
  sessionId: 'c3d2e1f0-a9b8-4c7d-8e6f-5a4b3c2d1e0f',
  appointmentId: 'apt-1',
  iin: '900101300027',
  channel: 'in_person' as const,
  at,
};
const WORKSTATION = 'e5f4a3b2-c1d0-4e9f-8a7b-6c5d4e3f2a1b';
const TEMPLATE = '7a1e9c3b-5d2f-4a8e-b6c4-0e9f8d7c6b5a';

/** The event is exactly what its type's schema accepts: every key, no other, each value valid. */
function expectContract(event: EventPayload): void {
  const schema = EVENT_SCHEMAS[event.type] as unknown as z.ZodObject;
  expect(schema.parse(event)).toEqual(event);
  expect(Object.keys(event).sort()).toEqual(Object.keys(schema.shape).sort());
}

const verdict = (result: VerdictResult) => ({
  ...subject,
  method: 'face' as VerdictMethod,
  result,
  score: 0.71 as number | null,
  liveness: { passive: 0.9, blink: true },
  timings: { firstFrameToVerdictMs: 1234, framesReceived: 20 },
});

describe('event builders', () => {
  it('build identification events of the type the outcome has, as the contract says', () => {
    const results: VerdictResult[] = ['match', 'no_match', 'spoof_suspected', 'no_template', 'timeout', 'error'];
    for (const result of results) {
      const event = identificationEvent(head, verdict(result));
      expect(event.type).toBe('identification.verdict');
      expectContract(event);
    }
    const expired = identificationEvent(head, { ...verdict('expired'), method: 'none', score: null });
    expect(expired.type).toBe('identification.expired');
    expectContract(expired);
    const locked = identificationEvent(head, { ...verdict('locked_out'), method: 'code', sessionId: null });
    expect(locked).toMatchObject({ type: 'identification.locked_out', sessionId: null });
    expectContract(locked);
  });

  it('build a refusal: method none, its reason, no measurements', () => {
    const event = identificationEvent(head, { ...subject, result: 'refused', reason: 'patient_refused_photo' });
    expectContract(event);
    // The JSON as stored and delivered: the same keys in the same order as before the builder moved here.
    expect(JSON.stringify(event)).toBe(
      JSON.stringify({
        id: head.id,
        type: 'identification.refused',
        version: 1,
        clinicId: subject.clinicId,
        seq: 7,
        sessionId: subject.sessionId,
        appointmentId: 'apt-1',
        iin: '900101300027',
        channel: 'in_person',
        method: 'none',
        result: 'refused',
        reason: 'patient_refused_photo',
        score: null,
        liveness: null,
        timings: null,
        occurredAt: '2026-01-15T09:26:53.512Z',
      }),
    );
  });

  it('refuse an outcome that belongs to a session without one (only a face lock-out may have none)', () => {
    expect(() => identificationEvent(head, { ...verdict('match'), sessionId: null })).toThrow();
    expect(() => identificationEvent(head, { ...subject, sessionId: null, result: 'refused', reason: 'x' })).toThrow();
  });

  it('give the statistics columns of an outcome', () => {
    expect(outcomeColumns({ result: 'refused', reason: 'face_failed' })).toEqual({
      method: 'none',
      result: 'refused',
      reason: 'face_failed',
    });
    expect(outcomeColumns(verdict('no_match'))).toEqual({ method: 'face', result: 'no_match', reason: null });
  });

  it('pick the identification event type from the result', () => {
    expect(eventTypeOf('refused')).toBe('identification.refused');
    expect(eventTypeOf('expired')).toBe('identification.expired');
    expect(eventTypeOf('locked_out')).toBe('identification.locked_out');
    expect(eventTypeOf('spoof_suspected')).toBe('identification.verdict');
    expect(IDENTIFICATION_EVENT_TYPES).toEqual(EVENT_TYPES.filter((t) => t.startsWith('identification.')));
  });

  it('build workstation, template and key events as the contract says', () => {
    expectContract(
      cameraChangedEvent(head, {
        clinicId: subject.clinicId,
        workstationId: WORKSTATION,
        previous: { label: 'USB Camera' },
        current: { label: 'OBS Virtual Camera' },
        at,
      }),
    );
    const template = { clinicId: subject.clinicId, iin: subject.iin, at };
    const actor = { kind: 'workstation' as const, id: WORKSTATION };
    const events = [
      templateEvent(head, {
        ...template,
        type: 'template.enrolled',
        templateId: TEMPLATE,
        previousTemplateId: null,
        actor: { kind: 'admin', id: null },
        images: 3,
        confirmation: null,
      }),
      templateEvent(head, {
        ...template,
        type: 'template.replaced',
        templateId: TEMPLATE,
        previousTemplateId: subject.sessionId,
        actor,
        images: 1,
        confirmation: 'patient_code',
      }),
      templateEvent(head, {
        ...template,
        type: 'template.revoked',
        templateId: null,
        previousTemplateId: TEMPLATE,
        actor,
        images: null,
        confirmation: null,
      }),
      ...(['workstation', 'mis_client'] as const).map((kind) =>
        keyChangedEvent(head, {
          clinicId: subject.clinicId,
          kind,
          holderId: WORKSTATION,
          change: 'rotated',
          by: 'operator',
          previousKeyValidUntil: at,
          at,
        }),
      ),
    ];
    for (const event of events) expectContract(event);
    expect(events.map((e) => e.type)).toEqual([
      'template.enrolled',
      'template.replaced',
      'template.revoked',
      'workstation.key_changed',
      'mis_client.key_changed',
    ]);
  });
});

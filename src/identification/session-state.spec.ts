import type { SessionState, VerdictMethod, VerdictResult } from '../storage/ports';
import {
  canTransition,
  CODE_PATH_STATES,
  CONNECTABLE_STATES,
  FAILED_FACE_RESULTS,
  finalState,
  finishableStates,
  isFailedFaceAttempt,
  isFinal,
  SESSION_STATES,
  statesBefore,
  timeToVerdictMs,
} from './session-state';

const METHODS: VerdictMethod[] = ['face', 'code', 'none'];
const RESULTS: VerdictResult[] = [
  'match',
  'no_match',
  'spoof_suspected',
  'no_template',
  'timeout',
  'error',
  'expired',
  'locked_out',
];

describe('session state machine', () => {
  it('knows every state, and only finished and expired are final', () => {
    expect([...SESSION_STATES].sort()).toEqual(['code_pending', 'connected', 'created', 'expired', 'finished']);
    expect(SESSION_STATES.filter(isFinal).sort()).toEqual(['expired', 'finished']);
  });

  it('allows exactly these transitions', () => {
    const allowed = SESSION_STATES.flatMap((from) =>
      SESSION_STATES.filter((to) => canTransition(from, to)).map((to) => `${from}->${to}`),
    );
    expect(allowed.sort()).toEqual(
      [
        'created->connected',
        'created->code_pending',
        'created->finished',
        'created->expired',
        'connected->code_pending',
        'connected->finished',
        'connected->expired',
        'code_pending->finished',
        'code_pending->expired',
      ].sort(),
    );
    // Never back, never in place.
    for (const s of SESSION_STATES) expect(canTransition(s, s)).toBe(false);
    expect(canTransition('code_pending', 'connected')).toBe(false);
    expect(canTransition('connected', 'created')).toBe(false);
  });

  it('connects a token from created only, and starts the code path from the face path only', () => {
    expect(CONNECTABLE_STATES).toEqual(['created']);
    expect(CODE_PATH_STATES).toEqual(['created', 'connected']);
    expect(statesBefore('code_pending')).toEqual(['created', 'connected']);
    expect(statesBefore('created')).toEqual([]);
  });

  it('lets each method finish only its own path: face the face path, code the code path, none (the sweep) any', () => {
    expect(finishableStates('face')).toEqual(['created', 'connected']);
    expect(finishableStates('code')).toEqual(['code_pending']);
    expect(finishableStates('none')).toEqual(['created', 'connected', 'code_pending']);
    // Narrowed, never widened.
    expect(finishableStates('none', ['connected'])).toEqual(['connected']);
    expect(finishableStates('face', ['code_pending'])).toEqual([]);
    expect(finishableStates('code', ['created', 'code_pending', 'finished'])).toEqual(['code_pending']);
  });

  it('ends a session `expired` for the verdict expired, `finished` for every other, through allowed transitions', () => {
    for (const result of RESULTS) expect(finalState(result)).toBe(result === 'expired' ? 'expired' : 'finished');
    for (const method of METHODS) {
      for (const from of finishableStates(method)) {
        for (const result of RESULTS) expect(canTransition(from, finalState(result))).toBe(true);
      }
    }
    // A finished session is never finished again.
    for (const method of METHODS) {
      expect(finishableStates(method).some((s: SessionState) => isFinal(s))).toBe(false);
    }
  });
});

describe('failure rules', () => {
  it('counts a face verdict that compared and refused, or saw a spoof, against the face attempts limit', () => {
    expect(FAILED_FACE_RESULTS).toEqual(['no_match', 'spoof_suspected']);
    const failed = RESULTS.filter((result) => isFailedFaceAttempt({ method: 'face', result }));
    expect(failed).toEqual(['no_match', 'spoof_suspected']);
  });

  it('never counts a code or sweep verdict, nor a face verdict that could not compare', () => {
    for (const result of RESULTS) {
      expect(isFailedFaceAttempt({ method: 'code', result })).toBe(false);
      expect(isFailedFaceAttempt({ method: 'none', result })).toBe(false);
    }
    for (const result of ['match', 'no_template', 'timeout', 'error', 'expired', 'locked_out'] as const) {
      expect(isFailedFaceAttempt({ method: 'face', result })).toBe(false);
    }
  });
});

describe('time to verdict', () => {
  const at = new Date(Date.UTC(2026, 0, 15, 9, 0, 42));
  const sent = new Date(Date.UTC(2026, 0, 15, 9, 0, 0));

  it('a face verdict: from the first frame, as its timings say', () => {
    const timings = { firstFrameToVerdictMs: 2100, framesReceived: 20 };
    expect(timeToVerdictMs({ method: 'face', timings, codeSentAt: null, at })).toBe(2100);
    expect(timeToVerdictMs({ method: 'face', timings: { framesReceived: 3 }, codeSentAt: null, at })).toBeNull();
    expect(timeToVerdictMs({ method: 'face', timings: null, codeSentAt: sent, at })).toBeNull();
  });

  it('a code verdict: from the code being sent; none for the sweep', () => {
    expect(timeToVerdictMs({ method: 'code', timings: { codeAgeMs: 1 }, codeSentAt: sent, at })).toBe(42_000);
    expect(timeToVerdictMs({ method: 'code', timings: null, codeSentAt: null, at })).toBeNull();
    expect(timeToVerdictMs({ method: 'none', timings: null, codeSentAt: sent, at })).toBeNull();
  });
});

/**
 * The rules of an identification session, as pure functions: which state changes are allowed, which states a verdict
 * of each method may end, the state it ends in, which verdicts count against the face attempts limit, and the time to
 * verdict the statistics read. Storage applies them in its conditional updates (src/storage/repositories/sessions.ts)
 * and the services pass them along; neither defines them.
 *
 *   created ──token used──▶ connected ──┐
 *      │ └──────────────────────────────┼──▶ code_pending (refusal, remote, code from the start)
 *      └─────────── verdict ────────────┴──▶ finished | expired (a verdict; `expired` for the sweep's)
 */
import type { SessionState, VerdictMethod, VerdictResult } from '../storage/ports';

/** Where each state may go. finished and expired are final. */
export const SESSION_TRANSITIONS = {
  created: ['connected', 'code_pending', 'finished', 'expired'],
  connected: ['code_pending', 'finished', 'expired'],
  code_pending: ['finished', 'expired'],
  finished: [],
  expired: [],
} as const satisfies Record<SessionState, readonly SessionState[]>;

export const SESSION_STATES = Object.keys(SESSION_TRANSITIONS) as SessionState[];

/** Whether a session in state `from` may move to `to`. */
export function canTransition(from: SessionState, to: SessionState): boolean {
  return (SESSION_TRANSITIONS[from] as readonly SessionState[]).includes(to);
}

/** The states from which a session may move to `to`. */
export function statesBefore(to: SessionState): SessionState[] {
  return SESSION_STATES.filter((from) => canTransition(from, to));
}

/** A session nothing can change any more. */
export function isFinal(state: SessionState): boolean {
  return SESSION_TRANSITIONS[state].length === 0;
}

/** The states a single-use face token connects from (it opens its session once). */
export const CONNECTABLE_STATES: readonly SessionState[] = ['created'];

/** The states the code path may start from: a refusal or a code session moves the session off the face path. */
export const CODE_PATH_STATES: readonly SessionState[] = statesBefore('code_pending');

/**
 * Which sessions a verdict of each method may finish: a face verdict cannot end a session that went on to the code
 * path, a code verdict only ends one that is on it; `none` (the sweep's expiry) ends any unfinished one.
 */
const FINISHABLE: Record<VerdictMethod, readonly SessionState[]> = {
  face: ['created', 'connected'],
  code: ['code_pending'],
  none: SESSION_STATES.filter((s) => !isFinal(s)),
};

/**
 * The states a verdict of `method` may finish, narrowed to `only` when given (e.g. `connected` only: a dropped face
 * connection must not end a session that meanwhile went on to the code path).
 */
export function finishableStates(method: VerdictMethod, only?: readonly SessionState[]): SessionState[] {
  return FINISHABLE[method].filter((s) => !only || only.includes(s));
}

/** The state a verdict leaves its session in: `expired` for the verdict `expired`, else `finished`. */
export function finalState(result: VerdictResult): 'finished' | 'expired' {
  return result === 'expired' ? 'expired' : 'finished';
}

/** Face verdicts that count against the attempts limit: the face was compared and refused, or looked like a spoof. */
export const FAILED_FACE_RESULTS: readonly VerdictResult[] = ['no_match', 'spoof_suspected'];

/** Whether a verdict counts as a failed face attempt (FACE_ATTEMPTS_MAX). */
export function isFailedFaceAttempt(verdict: { method: VerdictMethod; result: VerdictResult }): boolean {
  return verdict.method === 'face' && FAILED_FACE_RESULTS.includes(verdict.result);
}

/**
 * The time to verdict (ms) the statistics count: from the first frame for a face verdict (its timings say), from the
 * code's sending for a code verdict; null otherwise, or when it is not known.
 */
export function timeToVerdictMs(verdict: {
  method: VerdictMethod;
  timings: Record<string, unknown> | null;
  /** When the session's code was sent (null when it has none). */
  codeSentAt: Date | null;
  at: Date;
}): number | null {
  if (verdict.method === 'face') {
    const firstFrame = verdict.timings?.firstFrameToVerdictMs;
    return typeof firstFrame === 'number' ? firstFrame : null;
  }
  if (verdict.method === 'code' && verdict.codeSentAt) return verdict.at.getTime() - verdict.codeSentAt.getTime();
  return null;
}

import { AppError } from '../http';

/** Typed failures of the identification flow; `code` is stable and shared with HTTP, WS and the docs. */
export type IdentificationErrorCode =
  | 'attempts_exceeded'
  | 'no_template'
  | 'session_not_found'
  | 'session_finished'
  | 'token_invalid'
  | 'code_not_requested'
  | 'code_already_sent'
  | 'code_invalid'
  | 'code_expired'
  | 'code_used'
  | 'code_locked_out'
  | 'code_attempts_exceeded'
  | 'code_resend_limit'
  | 'capacity_exceeded';

/** HTTP statuses of the codes above that the shared table (src/http/errors.ts) does not have: IdentificationError's. */
export const IDENTIFICATION_ERROR_STATUS: Readonly<Record<string, number>> = {
  attempts_exceeded: 429,
  // In person, face: the patient has no enrolled template (POST /sessions checks before issuing a token).
  no_template: 409,
  session_finished: 409,
  code_not_requested: 409,
  code_already_sent: 409,
  code_used: 409,
  code_invalid: 422,
  code_expired: 410,
  // The code's own attempts ran out: the session ended `locked_out` (a new session is needed).
  code_locked_out: 429,
  // The per-patient or per-workstation cap of wrong codes: Retry-After.
  code_attempts_exceeded: 429,
  // The session's code went out CODE_RESENDS_MAX + 1 times: a new session is needed.
  code_resend_limit: 429,
  // POST /sessions by face while every face session this gateway serves at once is in use (FACE_SESSIONS_MAX):
  // Retry-After and retryAfterMs.
  capacity_exceeded: 503,
};

export class IdentificationError extends AppError {
  static override readonly status = IDENTIFICATION_ERROR_STATUS;

  /** Sent as Retry-After by the error filter. */
  readonly retryAfterSeconds?: number;

  constructor(
    override readonly code: IdentificationErrorCode,
    message: string,
    /**
     * Sent in the error body: attemptsLeft, the wrong entries the code still allows (code_invalid, code_locked_out);
     * codeAvailable, true when the desk can identify the patient by the six-digit code at once instead
     * (POST /sessions with method `code`: attempts_exceeded, no_template); retryAfterMs, when to ask again, in ms
     * (capacity_exceeded; the Retry-After header says it in whole seconds).
     */
    extra: { attemptsLeft?: number; codeAvailable?: true; retryAfterSeconds?: number; retryAfterMs?: number } = {},
  ) {
    const details = {
      ...(extra.attemptsLeft === undefined ? {} : { attemptsLeft: extra.attemptsLeft }),
      ...(extra.codeAvailable === undefined ? {} : { codeAvailable: extra.codeAvailable }),
      ...(extra.retryAfterMs === undefined ? {} : { retryAfterMs: extra.retryAfterMs }),
    };
    super(code, message, Object.keys(details).length > 0 ? details : undefined);
    this.name = 'IdentificationError';
    if (extra.retryAfterSeconds !== undefined) this.retryAfterSeconds = extra.retryAfterSeconds;
  }
}

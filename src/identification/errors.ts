import { AppError } from '../http';

/** Typed failures of the identification flow; `code` is stable and shared with HTTP, WS and the docs. */
export type IdentificationErrorCode =
  | 'attempts_exceeded'
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
  | 'code_resend_limit';

/** HTTP statuses of the codes above that the shared table (src/http/errors.ts) does not have yet. */
export const IDENTIFICATION_ERROR_STATUS: Readonly<Record<string, number>> = {
  attempts_exceeded: 429,
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
};

export class IdentificationError extends AppError {
  /** Sent as Retry-After by the error filter. */
  readonly retryAfterSeconds?: number;

  constructor(
    override readonly code: IdentificationErrorCode,
    message: string,
    /** attemptsLeft: wrong entries the code still allows (code_invalid, code_locked_out), sent in the error body. */
    extra: { attemptsLeft?: number; retryAfterSeconds?: number } = {},
  ) {
    super(code, message, extra.attemptsLeft === undefined ? undefined : { attemptsLeft: extra.attemptsLeft });
    this.name = 'IdentificationError';
    if (extra.retryAfterSeconds !== undefined) this.retryAfterSeconds = extra.retryAfterSeconds;
  }
}

import { z } from 'zod';

/**
 * The HTTP status of every error code. One table, so the docs, the OpenAPI document and the exception filter
 * agree. Modules with codes of their own add them with `registerErrorStatus()` at import time.
 *
 * Rules of thumb:
 * - 400: the request itself is malformed (schema, IIN); fix the request.
 * - 401/403/404: who you are, what you may do, what exists (in your clinic: another clinic's data is "not found").
 * - 409: the request is well-formed but the state of the patient or session rules it out.
 * - 413/415: size and content type of the body.
 * - 422: the body parsed, but its content cannot be used (an unreadable frame, no face, several faces).
 * - 429: too many requests; retry after the Retry-After header.
 * - 500: a bug or a broken installation (the message is generic; the log has the detail).
 * - 503: temporary: the engine is busy, starting, closing or missing its models.
 */
const STATUS = new Map<string, number>(
  Object.entries({
    invalid_request: 400,
    invalid_argument: 400,
    iin_invalid: 400,
    unauthorized: 401,
    token_invalid: 401,
    token_expired: 401,
    forbidden: 403,
    not_found: 404,
    patient_not_found: 404,
    template_not_found: 404,
    session_not_found: 404,
    method_not_allowed: 405,
    conflict: 409,
    payload_too_large: 413,
    unsupported_media_type: 415,
    // Every engine frame_* code is 422 as well (see statusForCode).
    enroll_no_face: 422,
    enroll_multiple_faces: 422,
    rate_limited: 429,
    internal: 500,
    audit_detail_rejected: 500,
    template_decrypt_failed: 500,
    template_key_unknown: 500,
    busy: 503,
    unavailable: 503,
    database_unavailable: 503,
    engine_closed: 503,
    model_missing: 503,
    model_invalid: 503,
  }),
);

/** Adds or overrides codes, e.g. `registerErrorStatus({ session_finished: 409 })`. */
export function registerErrorStatus(table: Readonly<Record<string, number>>): void {
  for (const [code, status] of Object.entries(table)) {
    if (!/^[a-z][a-z0-9_]*$/.test(code)) throw new Error(`Error code "${code}" must be snake_case.`);
    if (!Number.isInteger(status) || status < 400 || status > 599) {
      throw new Error(`Error code "${code}": status ${status} is not a 4xx/5xx status.`);
    }
    STATUS.set(code, status);
  }
}

/** The status of a code, or undefined for a code nobody registered (answered as 500 `internal`). */
export function statusForCode(code: string): number | undefined {
  return STATUS.get(code) ?? (code.startsWith('frame_') ? 422 : undefined);
}

/** A copy of the table, for docs and tests. */
export function errorStatusTable(): Record<string, number> {
  return Object.fromEntries([...STATUS.entries()].sort(([a], [b]) => a.localeCompare(b)));
}

/**
 * A typed error with a stable code, for modules that need no class of their own. Messages are for people and must
 * never hold request data (bodies, frames, IINs, keys).
 */
/** Small facts a client can act on (e.g. `attemptsLeft`), sent beside the code and message. Never request data. */
export type ErrorDetails = Readonly<Record<string, number | string | boolean>>;

export class AppError extends Error {
  constructor(
    readonly code: string,
    message: string,
    /** Merged into the error body; the keys `code`, `message` and `issues` are reserved. */
    readonly details?: ErrorDetails,
  ) {
    super(message);
    this.name = 'AppError';
  }
}

/** 429 with the number of seconds after which a retry may succeed (sent as Retry-After). */
export class RateLimitedError extends AppError {
  constructor(readonly retryAfterSeconds: number) {
    super('rate_limited', 'Too many requests; retry later.');
    this.name = 'RateLimitedError';
  }
}

export interface ValidationIssue {
  /** Where: the part of the request (params, query, body) then the keys, e.g. "body.appointmentId". */
  path: string;
  message: string;
}

/** A request that fails its route's schema: 400 with one issue per problem. */
export class ValidationError extends AppError {
  constructor(
    code: string,
    message: string,
    readonly issues: readonly ValidationIssue[],
  ) {
    super(code, message);
    this.name = 'ValidationError';
  }
}

/** The body of every error response (and the schema the OpenAPI document references). */
export const ErrorBodySchema = z
  .object({
    error: z
      .object({
        code: z.string().meta({ description: 'Stable, snake_case; see the error table.' }),
        message: z.string().meta({ description: 'For people; never holds request data.' }),
        issues: z
          .array(z.object({ path: z.string(), message: z.string() }))
          .optional()
          .meta({ description: 'Validation errors only: one entry per problem.' }),
      })
      // Some errors add facts a client can act on, e.g. `attemptsLeft` for `code_invalid`.
      .catchall(z.union([z.number(), z.string(), z.boolean()])),
  })
  .meta({ description: 'An error.' });

export type ErrorBody = z.infer<typeof ErrorBodySchema>;

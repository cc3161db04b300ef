import { z } from 'zod';

/** HTTP statuses by error code: 4xx or 5xx, codes in snake_case. */
export type ErrorStatusTable = Readonly<Record<string, number>>;

/**
 * The HTTP status of the codes every module may use, and of the codes of errors that are no AppError (the engine's
 * EngineError, the IIN's IinError, the audit's AuditDetailError: modules that do not depend on this one). A module
 * with codes of its own declares their statuses on its error class: `static override readonly status = {...}`.
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
const SHARED_ERROR_STATUS: ErrorStatusTable = {
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
  // Every engine frame_* code is 422 as well (see sharedStatus).
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
};

/** The shared status of a code (every `frame_*` code is 422), or undefined. */
function sharedStatus(code: string): number | undefined {
  return Object.hasOwn(SHARED_ERROR_STATUS, code)
    ? SHARED_ERROR_STATUS[code]
    : code.startsWith('frame_')
      ? 422
      : undefined;
}

/** Small facts a client can act on (e.g. `attemptsLeft`), sent beside the code and message. Never request data. */
export type ErrorDetails = Readonly<Record<string, number | string | boolean>>;

/**
 * A typed error with a stable code, for modules that need no class of their own. Messages are for people and must
 * never hold request data (bodies, frames, IINs, keys).
 *
 * Its HTTP status comes from its class: the `status` table of the class that threw it, then of its parents, down to
 * AppError's, the shared codes. A module with codes of its own subclasses AppError and declares them:
 *
 *   export class WidgetError extends AppError {
 *     static override readonly status = { widget_conflict: 409 };
 *   }
 */
export class AppError extends Error {
  /** The shared codes (above); subclasses declare their own. */
  static readonly status: ErrorStatusTable = SHARED_ERROR_STATUS;

  constructor(
    readonly code: string,
    message: string,
    /** Merged into the error body; the keys `code`, `message` and `issues` are reserved. */
    readonly details?: ErrorDetails,
  ) {
    super(message);
    this.name = 'AppError';
  }

  /** The HTTP status of this error's code, or undefined for a code its class does not declare (answered as 500). */
  get status(): number | undefined {
    for (const { table } of classTables(this.constructor)) {
      if (Object.hasOwn(table, this.code)) return table[this.code];
    }
    return sharedStatus(this.code);
  }
}

/** The `status` tables a class and its parents declare, nearest first, AppError's (the shared one) left out. */
function classTables(cls: unknown): { name: string; table: ErrorStatusTable }[] {
  const out: { name: string; table: ErrorStatusTable }[] = [];
  for (let c = cls; typeof c === 'function' && c !== AppError; c = Object.getPrototypeOf(c) as unknown) {
    const table: unknown = Object.getOwnPropertyDescriptor(c, 'status')?.value;
    if (typeof table === 'object' && table !== null) out.push({ name: c.name, table: table as ErrorStatusTable });
  }
  return out;
}

/**
 * The HTTP status of a thrown error with a string `code`: an AppError's own (its class's table), for any other the
 * shared table's; undefined for a code nobody declared (answered as 500 `internal`).
 */
export function errorStatus(err: { code: string }): number | undefined {
  return err instanceof AppError ? err.status : sharedStatus(err.code);
}

/** An error class as far as its statuses go: AppError or a subclass. */
export type ErrorClass = { readonly name: string; readonly status: ErrorStatusTable; readonly prototype: AppError };

/**
 * Every code and status of these error classes (their own tables and their parents'), and the shared ones, sorted:
 * for the OpenAPI document and the tests. Throws for a code that is not snake_case, a status that is not 4xx/5xx,
 * or a code two classes give different statuses.
 */
export function errorStatusTable(classes: Iterable<ErrorClass> = []): Record<string, number> {
  const out = new Map<string, { status: number; from: string }>();
  const add = (table: ErrorStatusTable, from: string) => {
    for (const [code, status] of Object.entries(table)) {
      if (!/^[a-z][a-z0-9_]*$/.test(code)) throw new Error(`${from}: error code "${code}" must be snake_case.`);
      if (!Number.isInteger(status) || status < 400 || status > 599) {
        throw new Error(`${from}: error code "${code}": status ${status} is not a 4xx/5xx status.`);
      }
      const seen = out.get(code);
      if (seen && seen.status !== status) {
        throw new Error(`Error code "${code}" is ${seen.status} in ${seen.from} but ${status} in ${from}.`);
      }
      out.set(code, { status, from });
    }
  };
  add(SHARED_ERROR_STATUS, 'AppError');
  for (const cls of classes) for (const { name, table } of classTables(cls)) add(table, name);
  const codes = [...out.keys()].sort((a, b) => a.localeCompare(b));
  return Object.fromEntries(codes.map((code) => [code, out.get(code)!.status]));
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

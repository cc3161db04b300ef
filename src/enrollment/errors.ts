import { AppError } from '../http';

export type EnrollmentErrorCode =
  | 'enroll_no_face'
  | 'enroll_multiple_faces'
  | 'template_not_found'
  | 'invalid_request'
  | 'unsupported_media_type'
  | 'payload_too_large'
  | 'desk_enrollment_disabled'
  | 'confirmation_not_found'
  | 'code_invalid'
  | 'code_expired'
  | 'code_locked_out'
  | 'code_attempts_exceeded'
  | 'code_resend_limit';

/** HTTP statuses of the codes above that the shared table (src/http/errors.ts) does not have: EnrollmentError's. */
export const ENROLLMENT_ERROR_STATUS: Readonly<Record<string, number>> = {
  // A workstation of a clinic that does not allow desk enrollment: the enrollment role does it.
  desk_enrollment_disabled: 403,
  // No replacement of this patient's template waits for a code from this workstation.
  confirmation_not_found: 404,
  // The same statuses as the identification code path (src/identification/errors.ts).
  code_invalid: 422,
  code_expired: 410,
  code_locked_out: 429,
  code_attempts_exceeded: 429,
  code_resend_limit: 429,
};

/** Enrollment failures. Messages name image positions, never image data, IINs or codes. */
export class EnrollmentError extends AppError {
  static override readonly status = ENROLLMENT_ERROR_STATUS;

  /** Sent as Retry-After by the error filter. */
  readonly retryAfterSeconds?: number;

  constructor(
    code: EnrollmentErrorCode,
    message: string,
    /** attemptsLeft: wrong codes the confirmation still allows, sent in the error body. */
    extra: { attemptsLeft?: number; retryAfterSeconds?: number } = {},
  ) {
    super(code, message, extra.attemptsLeft === undefined ? undefined : { attemptsLeft: extra.attemptsLeft });
    this.name = 'EnrollmentError';
    if (extra.retryAfterSeconds !== undefined) this.retryAfterSeconds = extra.retryAfterSeconds;
  }
}

/** A template that cannot be decrypted (tampered, moved to another patient, or its key is gone): HTTP 500. */
export class TemplateCryptoError extends AppError {
  constructor(code: 'template_decrypt_failed' | 'template_key_unknown', message: string) {
    super(code, message);
    this.name = 'TemplateCryptoError';
  }
}

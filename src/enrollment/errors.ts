import { AppError } from '../http';

export type EnrollmentErrorCode =
  | 'enroll_no_face'
  | 'enroll_multiple_faces'
  | 'template_not_found'
  | 'invalid_request'
  | 'unsupported_media_type';

/** Enrollment failures (statuses in src/http/errors.ts). Messages name image positions, never image data. */
export class EnrollmentError extends AppError {
  constructor(code: EnrollmentErrorCode, message: string) {
    super(code, message);
    this.name = 'EnrollmentError';
  }
}

/** A template that cannot be decrypted (tampered, moved to another patient, or its key is gone): HTTP 500. */
export class TemplateCryptoError extends AppError {
  constructor(code: 'template_decrypt_failed' | 'template_key_unknown', message: string) {
    super(code, message);
    this.name = 'TemplateCryptoError';
  }
}

import { AppError } from '../http';

export type KeyRingErrorCode = 'key_unknown' | 'unseal_failed';

/** A sealed value that cannot be opened. Messages name key ids only, never key or plaintext material. */
export class KeyRingError extends AppError {
  static override readonly status: Readonly<Record<KeyRingErrorCode, number>> = {
    // A broken installation (a key removed from TEMPLATE_KEYS too early) or altered data: never the caller's fault.
    key_unknown: 500,
    unseal_failed: 500,
  };

  constructor(code: KeyRingErrorCode, message: string) {
    super(code, message);
    this.name = 'KeyRingError';
  }
}

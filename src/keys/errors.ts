import { AppError } from '../http';

export type KeysErrorCode =
  | 'workstation_not_found'
  | 'mis_client_not_found'
  | 'key_rotation_limit'
  | 'clinic_not_found'
  | 'admin_disabled';

/** Failures of the key lifecycle and the operator's /admin routes. Messages name no key. */
export class KeysError extends AppError {
  static override readonly status: Readonly<Record<KeysErrorCode, number>> = {
    // No active holder with this id in this clinic (another clinic's too: ids of other clinics are never confirmed).
    workstation_not_found: 404,
    mis_client_not_found: 404,
    // MAX_PREVIOUS_KEYS earlier keys are still in their grace.
    key_rotation_limit: 409,
    clinic_not_found: 404,
    // ADMIN_TOKEN is not set: the admin routes do not exist.
    admin_disabled: 404,
  };

  constructor(code: KeysErrorCode, message: string) {
    super(code, message);
    this.name = 'KeysError';
  }
}

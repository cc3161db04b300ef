// Workstation and MIS client keys: create, list, rotate with a grace, revoke; the operator's /admin routes.
export {
  holderNotFound,
  KEY_ROTATION_GRACE_MS,
  KeysService,
  MAX_KEY_ROTATION_GRACE_MS,
  MAX_PREVIOUS_KEYS,
  type IssuedKey,
  type KeyChangeNotice,
  type RotatedKey,
} from './keys.service';
export { ADMIN_ACTOR, ADMIN_SECURITY, AdminAuth, AdminGuard, AdminUnauthorizedError } from './admin-auth';
export { HolderSchema, holderView } from './holder-view';
export { ClinicsService } from './clinics.service';
export { KeysError, type KeysErrorCode } from './errors';
export { KeysModule } from './keys.module';

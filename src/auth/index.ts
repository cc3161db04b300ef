export {
  API_KEY_PATTERN,
  API_KEY_PREFIX,
  createWorkstation,
  generateApiKey,
  hashApiKey,
  type CreatedWorkstation,
} from './api-key';
export {
  authenticateEnrollmentKey,
  createEnrollmentKey,
  ENROLLMENT_KEY_PATTERN,
  ENROLLMENT_KEY_PREFIX,
  generateEnrollmentKey,
  type EnrollmentKeyPrincipal,
  type IssuedEnrollmentKey,
} from './enrollment-key';
export {
  ApiKeyGuard,
  authenticateWorkstationKey,
  UnauthorizedError,
  WORKSTATION_SECURITY,
  WorkstationAuth,
} from './api-key.guard';
export {
  createMisClient,
  generateMisKey,
  MIS_KEY_PATTERN,
  MIS_KEY_PREFIX,
  MIS_KEY_ROTATION_GRACE_MS,
  type IssuedMisKey,
} from './mis-key';
export {
  bearerToken,
  clientIp,
  defineKeyAuth,
  keyedRequest,
  type KeyAuthenticator,
  type KeyAuthKit,
  type KeyedRequest,
} from './key-guard';
export {
  MIS_SECURITY,
  MisAuth,
  MisCaller,
  MisKeyAuth,
  MisKeyGuard,
  MisUnauthorizedError,
  type MisPrincipal,
} from './mis-key.guard';
export { AuthBootstrap, DEMO_CLINIC, DEMO_MIS, DEMO_WORKSTATION } from './bootstrap';
export { CurrentPrincipal, Principal, principalOf } from './principal';
export { failureBucket, limitKeyCheck, RateLimiter } from './rate-limiter';
export { WorkstationsService } from './workstations.service';
export { AuthModule } from './auth.module';

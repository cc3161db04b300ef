export {
  API_KEY_PATTERN,
  API_KEY_PREFIX,
  createWorkstation,
  generateApiKey,
  hashApiKey,
  type CreatedWorkstation,
} from './api-key';
export { ApiKeyGuard, UnauthorizedError, WORKSTATION_SECURITY, WorkstationAuth } from './api-key.guard';
export { AuthBootstrap, DEMO_CLINIC, DEMO_WORKSTATION } from './bootstrap';
export { CurrentPrincipal, Principal, principalOf } from './principal';
export { RateLimiter } from './rate-limiter';
export { WorkstationsService } from './workstations.service';
export { AuthModule } from './auth.module';

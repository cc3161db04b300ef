import {
  applyDecorators,
  Inject,
  Injectable,
  UseGuards,
  type CanActivate,
  type ExecutionContext,
} from '@nestjs/common';
import { ApiSecurity, AppError, type RouteSecurity } from '../http';
import { WORKSTATIONS, type WorkstationRepository } from '../storage/ports';
import { API_KEY_PATTERN, hashApiKey } from './api-key';
import { PRINCIPAL, type Principal, type RequestWithPrincipal } from './principal';
import { keyedRequest, type KeyedRequest } from './key-guard';
import { limitKeyCheck, RateLimiter } from './rate-limiter';

/** One answer for a missing, malformed, unknown or revoked key, so a caller cannot tell them apart. */
export class UnauthorizedError extends AppError {
  constructor() {
    super('unauthorized', 'A valid workstation API key is required: Authorization: Bearer fid_ws_...');
    this.name = 'UnauthorizedError';
  }
}

/** The OpenAPI security scheme of workstation keys (used by `@WorkstationAuth()`). */
export const WORKSTATION_SECURITY: RouteSecurity = {
  name: 'workstationKey',
  scheme: {
    type: 'http',
    scheme: 'bearer',
    description: 'Workstation API key: `Authorization: Bearer fid_ws_...` (43 base64url characters after the prefix).',
  },
  errors: ['unauthorized', 'rate_limited'],
};

/**
 * Checks `Authorization: Bearer <key>` against the stored hashes and attaches the principal. Rate limits first per
 * client IP (every request, so guessing keys is slow too), then per workstation. 401 `unauthorized`, 429
 * `rate_limited` with Retry-After.
 */
@Injectable()
export class ApiKeyGuard implements CanActivate {
  constructor(
    @Inject(WORKSTATIONS) private readonly workstations: WorkstationRepository,
    private readonly limiter: RateLimiter,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const { req, key, ip } = keyedRequest<KeyedRequest & RequestWithPrincipal>(context);
    req[PRINCIPAL] = await authenticateWorkstationKey(this.workstations, this.limiter, key, ip);
    return true;
  }
}

/**
 * The principal of a workstation key, or throws `unauthorized` / `rate_limited`: the guard's check, also used where
 * no guard runs (the events WebSocket). A key that checks out spends its workstation's rate budget only; failed
 * checks spend the client address's (limitKeyCheck), which refuses the address once spent.
 */
export async function authenticateWorkstationKey(
  workstations: WorkstationRepository,
  limiter: RateLimiter,
  key: string | undefined,
  ip: string,
): Promise<Principal> {
  const workstation = await limitKeyCheck(
    limiter,
    ip,
    async () => {
      if (!key || !API_KEY_PATTERN.test(key)) return null;
      const found = await workstations.findByKeyHash(hashApiKey(key));
      return found && !found.revokedAt ? found : null;
    },
    (found) => `ws:${found.id}`,
    () => new UnauthorizedError(),
  );
  return { clinicId: workstation.clinicId, workstationId: workstation.id };
}

/** API-key guard plus its OpenAPI security, on a controller or a route. Read the caller with `@Principal()`. */
export function WorkstationAuth(): ClassDecorator & MethodDecorator {
  return applyDecorators(UseGuards(ApiKeyGuard), ApiSecurity(WORKSTATION_SECURITY));
}

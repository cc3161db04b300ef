import { createHash, timingSafeEqual } from 'node:crypto';
import {
  applyDecorators,
  Inject,
  Injectable,
  UseGuards,
  type CanActivate,
  type ExecutionContext,
} from '@nestjs/common';
import { keyedRequest } from '../auth/key-guard';
import { limitKeyCheck, RateLimiter } from '../auth/rate-limiter';
import { CONFIG, type Config } from '../config';
import { ApiSecurity, AppError, type RouteSecurity } from '../http';
import { KeysError } from './errors';

/** The audit actor of the admin HTTP routes. */
export const ADMIN_ACTOR = 'admin';

export class AdminUnauthorizedError extends AppError {
  constructor() {
    super('unauthorized', 'The operator token is required: Authorization: Bearer <ADMIN_TOKEN>.');
    this.name = 'AdminUnauthorizedError';
  }
}

export const ADMIN_SECURITY: RouteSecurity = {
  name: 'adminToken',
  scheme: {
    type: 'http',
    scheme: 'bearer',
    description:
      'The operator’s token, the service’s ADMIN_TOKEN setting: `Authorization: Bearer <token>`. Where ADMIN_TOKEN ' +
      'is not set the admin routes answer 404 `admin_disabled`.',
  },
  errors: ['unauthorized', 'rate_limited', 'admin_disabled'],
};

const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest();

/**
 * The operator's routes (`/admin/...`): `Authorization: Bearer <ADMIN_TOKEN>`, compared in constant time (both sides
 * hashed first, so neither the length nor a prefix shows in the timing). Unset ADMIN_TOKEN: 404 `admin_disabled`.
 * Wrong tokens spend the client address's failed-check budget, like wrong API keys.
 */
@Injectable()
export class AdminGuard implements CanActivate {
  private readonly digest: Buffer | null;

  constructor(
    @Inject(CONFIG) config: Config,
    private readonly limiter: RateLimiter,
  ) {
    this.digest = config.ADMIN_TOKEN ? sha256(config.ADMIN_TOKEN) : null;
  }

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const digest = this.digest;
    if (!digest) {
      throw new KeysError(
        'admin_disabled',
        'The admin HTTP routes are off: the operator sets ADMIN_TOKEN to turn them on.',
      );
    }
    const { key: given, ip } = keyedRequest(context);
    await limitKeyCheck(
      this.limiter,
      ip,
      async () => (given !== undefined && timingSafeEqual(sha256(given), digest) ? true : null),
      () => 'admin',
      () => new AdminUnauthorizedError(),
    );
    return true;
  }
}

/** The admin guard plus its OpenAPI security, on a controller or a route. */
export function AdminAuth(): ClassDecorator & MethodDecorator {
  return applyDecorators(UseGuards(AdminGuard), ApiSecurity(ADMIN_SECURITY));
}

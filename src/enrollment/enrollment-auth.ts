import {
  applyDecorators,
  createParamDecorator,
  Inject,
  Injectable,
  UseGuards,
  type CanActivate,
  type ExecutionContext,
} from '@nestjs/common';
import {
  authenticateEnrollmentKey,
  authenticateWorkstationKey,
  ENROLLMENT_KEY_PREFIX,
  keyedRequest,
  RateLimiter,
  type KeyedRequest,
} from '../auth';
import { ApiSecurity, AppError, type RouteSecurity } from '../http';
import {
  ENROLLMENT_KEYS,
  WORKSTATIONS,
  type EnrollmentKeyRepository,
  type WorkstationRepository,
} from '../storage/ports';
import type { Enroller } from './enroller';

/** One answer for a missing, malformed, unknown or revoked key of either kind. */
export class EnrollmentUnauthorizedError extends AppError {
  constructor() {
    super(
      'unauthorized',
      'A valid enrollment key (Authorization: Bearer fid_enr_...) or workstation API key (fid_ws_...) is required.',
    );
    this.name = 'EnrollmentUnauthorizedError';
  }
}

/** The OpenAPI security scheme of the enrollment routes: either key kind. */
export const ENROLLMENT_SECURITY: RouteSecurity = {
  name: 'enrollmentOrWorkstationKey',
  scheme: {
    type: 'http',
    scheme: 'bearer',
    description:
      'An enrollment key, `Bearer fid_enr_...` (the clinic’s registry role: enrolls, replaces and revokes at once), ' +
      'or a workstation key, `Bearer fid_ws_...` (only where the clinic allows desk enrollment; replacing a ' +
      'template then needs the patient’s six-digit code).',
  },
  errors: ['unauthorized', 'rate_limited'],
};

const ENROLLER = Symbol('faceid:enroller');

interface EnrollerRequest extends KeyedRequest {
  [ENROLLER]?: Enroller;
}

/**
 * Accepts an enrollment key (`fid_enr_...`) or a workstation key (`fid_ws_...`) and keeps the Enroller on the
 * request. Rate limited per client IP and per key, like the other key guards.
 */
@Injectable()
export class EnrollmentAuthGuard implements CanActivate {
  constructor(
    @Inject(WORKSTATIONS) private readonly workstations: WorkstationRepository,
    @Inject(ENROLLMENT_KEYS) private readonly keys: EnrollmentKeyRepository,
    private readonly limiter: RateLimiter,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const { req, key, ip } = keyedRequest<EnrollerRequest>(context);
    if (key?.startsWith(ENROLLMENT_KEY_PREFIX)) {
      const p = await authenticateEnrollmentKey(
        this.keys,
        this.limiter,
        key,
        ip,
        () => new EnrollmentUnauthorizedError(),
      );
      req[ENROLLER] = { kind: 'enrollment_key', clinicId: p.clinicId, enrollmentKeyId: p.enrollmentKeyId };
      return true;
    }
    try {
      const p = await authenticateWorkstationKey(this.workstations, this.limiter, key, ip);
      req[ENROLLER] = { kind: 'workstation', clinicId: p.clinicId, workstationId: p.workstationId };
    } catch (err) {
      if ((err as { code?: string }).code === 'unauthorized') throw new EnrollmentUnauthorizedError();
      throw err;
    }
    return true;
  }
}

/** The guard plus its OpenAPI security, on a controller or a route. Read the caller with `@EnrollerOf()`. */
export function EnrollmentAuth(): ClassDecorator & MethodDecorator {
  return applyDecorators(UseGuards(EnrollmentAuthGuard), ApiSecurity(ENROLLMENT_SECURITY));
}

/** `@EnrollerOf() who: Enroller` in a handler behind `@EnrollmentAuth()`. */
export const EnrollerOf = createParamDecorator((_data: unknown, ctx: ExecutionContext): Enroller => {
  const who = ctx.switchToHttp().getRequest<EnrollerRequest>()[ENROLLER];
  if (!who) throw new Error('No enroller on the request: is the route behind @EnrollmentAuth()?');
  return who;
});

import {
  applyDecorators,
  createParamDecorator,
  Inject,
  Injectable,
  UseGuards,
  type CanActivate,
  type ExecutionContext,
} from '@nestjs/common';
import { ApiSecurity, AppError, RateLimitedError, type RouteSecurity } from '../http';
import { MIS_CLIENTS, type MisClientRepository } from '../storage/ports';
import { hashApiKey } from './api-key';
import { MIS_KEY_PATTERN } from './mis-key';
import { RateLimiter } from './rate-limiter';

/** Who is calling: a hospital information system and the one clinic its key is scoped to. */
export interface MisPrincipal {
  clinicId: string;
  misClientId: string;
}

const MIS_PRINCIPAL = Symbol('faceid:mis-principal');

interface GuardedRequest {
  [MIS_PRINCIPAL]?: MisPrincipal;
  headers: Record<string, string | string[] | undefined>;
  ip?: string;
  socket?: { remoteAddress?: string };
}

export class MisUnauthorizedError extends AppError {
  constructor() {
    super('unauthorized', 'A valid MIS API key is required: Authorization: Bearer fid_mis_...');
    this.name = 'MisUnauthorizedError';
  }
}

export const MIS_SECURITY: RouteSecurity = {
  name: 'misKey',
  scheme: {
    type: 'http',
    scheme: 'bearer',
    description: 'MIS API key, scoped to one clinic: `Authorization: Bearer fid_mis_...`.',
  },
  errors: ['unauthorized', 'rate_limited'],
};

/** Checks an MIS key (HTTP guard and the events WebSocket alike). Rate limits per IP first, then per client. */
@Injectable()
export class MisAuth {
  constructor(
    @Inject(MIS_CLIENTS) private readonly clients: MisClientRepository,
    private readonly limiter: RateLimiter,
  ) {}

  /** The principal of a key, or throws `unauthorized` / `rate_limited`. */
  async authenticate(key: string | undefined, ip: string): Promise<MisPrincipal> {
    const ipWait = this.limiter.take(`ip:${ip}`);
    if (ipWait > 0) throw new RateLimitedError(ipWait);
    if (!key || !MIS_KEY_PATTERN.test(key)) throw new MisUnauthorizedError();
    const client = await this.clients.findByKeyHash(hashApiKey(key), new Date());
    if (!client || client.revokedAt) throw new MisUnauthorizedError();
    const keyWait = this.limiter.take(`mis:${client.id}`);
    if (keyWait > 0) throw new RateLimitedError(keyWait);
    return { clinicId: client.clinicId, misClientId: client.id };
  }
}

/** `Authorization: Bearer <key>` of a request, or undefined. */
export function bearerToken(headers: Record<string, string | string[] | undefined>): string | undefined {
  const header = headers.authorization;
  return (typeof header === 'string' ? /^Bearer +(\S+) *$/i.exec(header) : null)?.[1];
}

@Injectable()
export class MisKeyGuard implements CanActivate {
  constructor(private readonly auth: MisAuth) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const req = context.switchToHttp().getRequest<GuardedRequest>();
    const ip = req.ip ?? req.socket?.remoteAddress ?? 'unknown';
    req[MIS_PRINCIPAL] = await this.auth.authenticate(bearerToken(req.headers), ip);
    return true;
  }
}

/** MIS-key guard plus its OpenAPI security, on a controller or a route. Read the caller with `@MisCaller()`. */
export function MisKeyAuth(): ClassDecorator & MethodDecorator {
  return applyDecorators(UseGuards(MisKeyGuard), ApiSecurity(MIS_SECURITY));
}

export const MisCaller = createParamDecorator((_data: unknown, ctx: ExecutionContext): MisPrincipal => {
  const p = ctx.switchToHttp().getRequest<GuardedRequest>()[MIS_PRINCIPAL];
  if (!p) throw new Error('No MIS principal on the request: is the route behind MisKeyAuth()?');
  return p;
});

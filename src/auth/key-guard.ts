import {
  applyDecorators,
  createParamDecorator,
  Inject,
  Injectable,
  UseGuards,
  type CanActivate,
  type ExecutionContext,
  type Type,
} from '@nestjs/common';
import { ApiSecurity, type RouteSecurity } from '../http';

/** Checks one kind of API key: the principal, or throws `unauthorized` / `rate_limited` (typed AppErrors). */
export interface KeyAuthenticator<P> {
  authenticate(key: string | undefined, ip: string): Promise<P>;
}

/** What a key guard reads of a request. */
export interface KeyedRequest {
  headers: Record<string, string | string[] | undefined>;
  ip?: string;
  socket?: { remoteAddress?: string };
}

/** `Authorization: Bearer <key>` of a request, or undefined. */
export function bearerToken(headers: Record<string, string | string[] | undefined>): string | undefined {
  const header = headers.authorization;
  return (typeof header === 'string' ? /^Bearer +(\S+) *$/i.exec(header) : null)?.[1];
}

export function clientIp(req: { ip?: string; socket?: { remoteAddress?: string } }): string {
  return req.ip ?? req.socket?.remoteAddress ?? 'unknown';
}

/** A guard's request with its bearer key (undefined: none, or not `Bearer <key>`) and client address. */
export function keyedRequest<R extends KeyedRequest = KeyedRequest>(
  context: ExecutionContext,
): { req: R; key: string | undefined; ip: string } {
  const req = context.switchToHttp().getRequest<R>();
  return { req, key: bearerToken(req.headers), ip: clientIp(req) };
}

export interface KeyAuthKit {
  /** The guard: authenticates the bearer key and keeps the principal on the request. */
  Guard: Type<CanActivate>;
  /** The guard plus its OpenAPI security, on a controller or a route. */
  Auth(): ClassDecorator & MethodDecorator;
  /** A handler parameter decorator that reads the principal the guard kept. */
  Caller: () => ParameterDecorator;
}

/**
 * A guard, its decorator and its parameter decorator for one kind of key, from the injectable that checks it (the MIS
 * keys, the event readers; each kind keeps its principal under its own symbol, so they cannot be confused).
 */
export function defineKeyAuth<P>(
  label: string,
  security: RouteSecurity,
  authenticator: Type<KeyAuthenticator<P>>,
): KeyAuthKit {
  const slot = Symbol(`faceid:${label}`);
  type Holder = KeyedRequest & { [slot]?: P };

  @Injectable()
  class KeyGuard implements CanActivate {
    constructor(@Inject(authenticator) private readonly auth: KeyAuthenticator<P>) {}

    async canActivate(context: ExecutionContext): Promise<boolean> {
      const { req, key, ip } = keyedRequest<Holder>(context);
      req[slot] = await this.auth.authenticate(key, ip);
      return true;
    }
  }
  Object.defineProperty(KeyGuard, 'name', { value: `${authenticator.name}Guard` });

  return {
    Guard: KeyGuard,
    Auth: () => applyDecorators(UseGuards(KeyGuard), ApiSecurity(security)),
    Caller: createParamDecorator((_data: unknown, ctx: ExecutionContext): P => {
      const p = ctx.switchToHttp().getRequest<Holder>()[slot];
      if (p === undefined) throw new Error(`No ${label} on the request: is the route behind its guard?`);
      return p;
    }),
  };
}

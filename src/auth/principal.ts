import { createParamDecorator, type ExecutionContext } from '@nestjs/common';

/** Who is calling: the workstation of an API key, and its clinic (every query is scoped to it). */
export interface Principal {
  clinicId: string;
  workstationId: string;
}

export const PRINCIPAL = Symbol('faceid:principal');

export interface RequestWithPrincipal {
  [PRINCIPAL]?: Principal;
}

/** Reads the principal the API-key guard attached. A route without the guard is a bug: 500. */
export function principalOf(req: RequestWithPrincipal): Principal {
  const p = req[PRINCIPAL];
  if (!p) throw new Error('No principal on the request: is the route behind the API-key guard?');
  return p;
}

/** `@Principal() who: Principal` in a handler behind `@WorkstationAuth()` (or `@UseGuards(ApiKeyGuard)`). */
export const Principal = createParamDecorator(
  (_data: unknown, ctx: ExecutionContext): Principal =>
    principalOf(ctx.switchToHttp().getRequest<RequestWithPrincipal>()),
);

/** The same decorator under another name. */
export const CurrentPrincipal = Principal;

import { Injectable, type CanActivate, type ExecutionContext } from '@nestjs/common';
import type { Request } from 'express';
import { DrainService, DrainingError } from './drain.service';

/** The routes that admit new work: refused while draining. Everything else (a running session's code, events) goes on. */
export const ADMISSION_ROUTES: ReadonlyArray<{ method: string; path: string }> = [
  { method: 'POST', path: '/sessions' },
];

/**
 * Global guard (before the API-key guards, so a draining gateway spends no key lookup): while the gateway drains,
 * POST /sessions answers 503 `draining` with Retry-After. It runs before any write, so a balancer may retry the
 * request on another gateway (deploy/haproxy.cfg does).
 */
@Injectable()
export class DrainGuard implements CanActivate {
  constructor(private readonly drain: DrainService) {}

  canActivate(context: ExecutionContext): boolean {
    if (!this.drain.draining || context.getType() !== 'http') return true;
    const req = context.switchToHttp().getRequest<Request>();
    const path = ((req.route as { path?: unknown } | undefined)?.path as string | undefined) ?? req.path;
    const normalised = path.replace(/\/+$/, '') || '/';
    if (ADMISSION_ROUTES.some((r) => r.method === req.method && r.path === normalised)) {
      throw new DrainingError(this.drain.retryAfterSeconds);
    }
    return true;
  }
}

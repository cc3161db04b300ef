import { Inject, Injectable } from '@nestjs/common';
import { AppError, type RouteSecurity } from '../http';
import { MIS_CLIENTS, type MisClientRepository } from '../storage/ports';
import { hashApiKey } from './api-key';
import { defineKeyAuth, type KeyAuthenticator } from './key-guard';
import { MIS_KEY_PATTERN } from './mis-key';
import { limitKeyCheck, RateLimiter } from './rate-limiter';

/** Who is calling: a hospital information system and the one clinic its key is scoped to. */
export interface MisPrincipal {
  clinicId: string;
  misClientId: string;
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

/**
 * Checks an MIS key (HTTP guard and the events WebSocket alike). A key that checks out spends its client's rate
 * budget only; failed checks spend the client address's (limitKeyCheck).
 */
@Injectable()
export class MisAuth implements KeyAuthenticator<MisPrincipal> {
  constructor(
    @Inject(MIS_CLIENTS) private readonly clients: MisClientRepository,
    private readonly limiter: RateLimiter,
  ) {}

  /** The principal of a key, or throws `unauthorized` / `rate_limited`. */
  async authenticate(key: string | undefined, ip: string): Promise<MisPrincipal> {
    const client = await limitKeyCheck(
      this.limiter,
      ip,
      async () => {
        if (!key || !MIS_KEY_PATTERN.test(key)) return null;
        const found = await this.clients.findByKeyHash(hashApiKey(key), new Date());
        return found && !found.revokedAt ? found : null;
      },
      (found) => `mis:${found.id}`,
      () => new MisUnauthorizedError(),
    );
    return { clinicId: client.clinicId, misClientId: client.id };
  }
}

const misKeyAuth = defineKeyAuth<MisPrincipal>('MIS principal', MIS_SECURITY, MisAuth);

export const MisKeyGuard = misKeyAuth.Guard;

/** MIS-key guard plus its OpenAPI security, on a controller or a route. Read the caller with `@MisCaller()`. */
export const MisKeyAuth = misKeyAuth.Auth;

export const MisCaller = misKeyAuth.Caller;

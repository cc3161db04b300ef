import { Controller, Get, Header, Post } from '@nestjs/common';
import { z } from 'zod';
import { MIS_KEY_ROTATION_GRACE_MS, MisCaller, MisKeyAuth, type MisPrincipal } from '../auth';
import { ApiRoute, defineRoute } from '../http';
import { MAX_PREVIOUS_KEYS } from '../keys/keys.service';
import { MisClientsService } from './mis-clients.service';

const meSpec = defineRoute({
  summary: 'The calling MIS client',
  description: 'The client of the key, and the one clinic it is scoped to.',
  tags: ['mis'],
  response: z.object({
    id: z.string(),
    name: z.string(),
    clinic: z.object({ id: z.string(), name: z.string() }),
    createdAt: z.string(),
    rotatedAt: z.string().nullable().meta({ description: 'The last key rotation; null if never.' }),
  }),
  errors: ['mis_client_not_found'],
});

const rotateSpec = defineRoute({
  summary: 'Rotate the calling client’s API key',
  description:
    'Issues a new key, shown only in this answer (only its hash is stored). The key that was current until now ' +
    `keeps working for ${MIS_KEY_ROTATION_GRACE_MS / 3_600_000} hours (previousKeyValidUntil), so the MIS can ` +
    'deploy the new one; a key replaced by an earlier rotation keeps its own grace (a new key cannot cut its ' +
    `predecessors off). With ${MAX_PREVIOUS_KEYS} earlier keys still in their grace the answer is 409 ` +
    '`key_rotation_limit`. Recorded in the audit trail, and as a `mis_client.key_changed` event (`by: self`) that ' +
    'every MIS client of the clinic receives.',
  tags: ['mis'],
  response: z.object({
    id: z.string(),
    apiKey: z.string().meta({ description: '`fid_mis_...`; shown only this once.' }),
    previousKeyValidUntil: z.string(),
  }),
  status: 200,
  errors: ['mis_client_not_found', 'key_rotation_limit'],
});

/** The MIS client's own account: who am I, and key rotation. Creation and revocation are the operator's (src/keys). */
@Controller('mis')
@MisKeyAuth()
export class MisController {
  constructor(private readonly clients: MisClientsService) {}

  @Get('me')
  @ApiRoute(meSpec)
  async me(@MisCaller() caller: MisPrincipal) {
    const { client, clinic } = await this.clients.me(caller.clinicId, caller.misClientId);
    return {
      id: client.id,
      name: client.name,
      clinic: { id: clinic.id, name: clinic.name },
      createdAt: client.createdAt.toISOString(),
      rotatedAt: client.rotatedAt?.toISOString() ?? null,
    };
  }

  @Post('keys/rotate')
  @ApiRoute(rotateSpec)
  @Header('Cache-Control', 'no-store')
  async rotate(@MisCaller() caller: MisPrincipal) {
    const rotated = await this.clients.rotate(`mis:${caller.misClientId}`, caller.clinicId, caller.misClientId);
    return {
      id: rotated.client.id,
      apiKey: rotated.apiKey,
      previousKeyValidUntil: rotated.previousKeyValidUntil.toISOString(),
    };
  }
}

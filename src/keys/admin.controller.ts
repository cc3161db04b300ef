import { Controller, Get, Header, Post, type Type } from '@nestjs/common';
import { z } from 'zod';
import { AuditService } from '../audit';
import { ApiRoute, defineRoute, Input, type RouteInput } from '../http';
import type { KeyHolderKind } from '../storage/ports';
import { ADMIN_ACTOR, AdminAuth } from './admin-auth';
import { ClinicsService } from './clinics.service';
import { HolderSchema, holderView } from './holder-view';
import { KEY_ROTATION_GRACE_MS, KeysService, MAX_KEY_ROTATION_GRACE_MS, MAX_PREVIOUS_KEYS } from './keys.service';

const HOUR_MS = 3_600_000;
const Id = z.uuid();
const Name = z
  .string()
  .trim()
  .min(1)
  .max(200)
  .regex(/^[^\p{Cc}]*$/u, 'must not contain control characters');

const clinicsSpec = defineRoute({
  summary: 'Clinics (admin)',
  description: 'Every clinic with its id, oldest first: the ids the key routes take. Operator token only.',
  tags: ['admin'],
  response: z.object({
    clinics: z.array(
      z.object({
        id: z.string(),
        name: z.string(),
        createdAt: z.string(),
        smsLanguages: z
          .string()
          .meta({ description: "The SMS texts' languages: kk+ru, kk or ru (`faceid clinic sms-languages`)." }),
      }),
    ),
  }),
});

@Controller('admin/clinics')
@AdminAuth()
export class AdminClinicsController {
  constructor(private readonly clinics: ClinicsService) {}

  @Get()
  @ApiRoute(clinicsSpec)
  async list() {
    const clinics = await this.clinics.list();
    return {
      clinics: clinics.map((c) => ({
        id: c.id,
        name: c.name,
        createdAt: c.createdAt.toISOString(),
        smsLanguages: c.smsLanguages,
      })),
    };
  }
}

interface KindText {
  /** Path segment and list key. */
  segment: string;
  listKey: string;
  one: string;
  prefix: string;
  usedFor: string;
}

const TEXT: Record<KeyHolderKind, KindText> = {
  workstation: {
    segment: 'workstations',
    listKey: 'workstations',
    one: 'workstation',
    prefix: 'fid_ws_',
    usedFor: 'the desk sends it as `Authorization: Bearer <key>`',
  },
  mis_client: {
    segment: 'mis-clients',
    listKey: 'misClients',
    one: 'MIS client',
    prefix: 'fid_mis_',
    usedFor: 'the MIS reads the clinic’s events, manages webhooks and reads statistics with it',
  },
};

/** The admin key routes of one kind of holder: list, create, rotate, revoke, under /admin/clinics/{clinicId}/... */
function keyAdminController(kind: KeyHolderKind): Type<unknown> {
  const t = TEXT[kind];
  const ClinicParams = z.object({ clinicId: Id.meta({ description: 'The clinic (GET /admin/clinics).' }) });
  const HolderParams = ClinicParams.extend({ id: Id.meta({ description: `The ${t.one}.` }) });
  const notFound = `${kind}_not_found`;

  const listSpec = defineRoute({
    summary: `${t.one[0].toUpperCase()}${t.one.slice(1)}s of a clinic and their keys (admin)`,
    description:
      `The clinic’s ${t.one}s, oldest first, revoked ones too, with the state of their keys: when the key was last ` +
      'rotated and which replaced keys still work (their grace). Keys are never shown: only their hashes are stored.',
    tags: ['admin'],
    params: ClinicParams,
    response: z.object({ [t.listKey]: z.array(HolderSchema) }),
    errors: ['clinic_not_found'],
  });
  const createSpec = defineRoute({
    summary: `Create a ${t.one} and its API key (admin)`,
    description:
      `A new ${t.one} of the clinic with its first key (\`${t.prefix}...\`), shown only in this answer; ${t.usedFor}. ` +
      `Audited, and a \`${kind}.key_changed\` event (\`created\`).`,
    tags: ['admin'],
    params: ClinicParams,
    body: z.object({ name: Name.meta({ description: 'A name for people, 1-200 characters, e.g. "Room 12".' }) }),
    response: HolderSchema.pick({ id: true, clinicId: true, name: true, createdAt: true }).extend({
      apiKey: z.string().meta({ description: `\`${t.prefix}...\`; shown only this once.` }),
    }),
    status: 201,
    errors: ['clinic_not_found'],
  });
  const rotateSpec = defineRoute({
    summary: `Rotate a ${t.one}’s API key (admin)`,
    description:
      'Issues a new key, shown only in this answer. The key it replaces keeps working for `graceHours` (default ' +
      `${KEY_ROTATION_GRACE_MS / HOUR_MS}), so the holder can deploy the new one; keys replaced by earlier rotations ` +
      'keep their own grace. `graceHours: 0` ends the replaced key and every earlier one at once: the answer to a ' +
      `leaked key. With ${MAX_PREVIOUS_KEYS} earlier keys still in their grace a rotation with grace is refused (409 ` +
      `\`key_rotation_limit\`). Audited, and a \`${kind}.key_changed\` event (\`rotated\`).`,
    tags: ['admin'],
    params: HolderParams,
    body: z
      .object({
        graceHours: z
          .number()
          .min(0)
          .max(MAX_KEY_ROTATION_GRACE_MS / HOUR_MS)
          .optional()
          .meta({
            description: `How long the replaced key keeps working, in hours (0 = not at all). Default ${KEY_ROTATION_GRACE_MS / HOUR_MS}.`,
          }),
      })
      .optional(),
    response: z.object({
      id: z.string(),
      clinicId: z.string(),
      apiKey: z.string().meta({ description: `\`${t.prefix}...\`; shown only this once.` }),
      previousKeyValidUntil: z
        .string()
        .nullable()
        .meta({ description: 'Until when the replaced key works; null: no more.' }),
    }),
    status: 200,
    errors: [notFound, 'key_rotation_limit'],
  });
  const revokeSpec = defineRoute({
    summary: `Revoke a ${t.one} (admin)`,
    description:
      `Every key of the ${t.one}, current and previous, stops working at once: requests are refused from now on and ` +
      'its open event WebSockets are closed (4003 `key_revoked`). Audited, and a ' +
      `\`${kind}.key_changed\` event (\`revoked\`). There is no undo: create a new one.`,
    tags: ['admin'],
    params: HolderParams,
    response: HolderSchema,
    status: 200,
    errors: [notFound],
  });

  @Controller(`admin/clinics/:clinicId/${t.segment}`)
  @AdminAuth()
  class KeyAdminController {
    constructor(
      readonly keys: KeysService,
      readonly clinics: ClinicsService,
      readonly audit: AuditService,
    ) {}

    @Get()
    @ApiRoute(listSpec)
    @Header('Cache-Control', 'no-store')
    async list(@Input() input: RouteInput<typeof listSpec>) {
      const { clinicId } = input.params;
      await this.clinics.require(clinicId);
      const holders = await this.keys.list(kind, clinicId);
      await this.audit.record(ADMIN_ACTOR, `${kind}.listed`, { clinicId, detail: { count: holders.length } });
      return { [t.listKey]: holders.map(holderView) };
    }

    @Post()
    @ApiRoute(createSpec)
    @Header('Cache-Control', 'no-store')
    async create(@Input() input: RouteInput<typeof createSpec>) {
      const { clinicId } = input.params;
      await this.clinics.require(clinicId);
      const { holder, apiKey } = await this.keys.create(
        kind,
        { actor: ADMIN_ACTOR, by: 'operator' },
        clinicId,
        input.body.name,
      );
      return {
        id: holder.id,
        clinicId: holder.clinicId,
        name: holder.name,
        createdAt: holder.createdAt.toISOString(),
        apiKey,
      };
    }

    @Post(':id/rotate')
    @ApiRoute(rotateSpec)
    @Header('Cache-Control', 'no-store')
    async rotate(@Input() input: RouteInput<typeof rotateSpec>) {
      const { clinicId, id } = input.params;
      const hours = input.body?.graceHours ?? KEY_ROTATION_GRACE_MS / HOUR_MS;
      const r = await this.keys.rotate(
        kind,
        { actor: ADMIN_ACTOR, by: 'operator' },
        clinicId,
        id,
        Math.round(hours * HOUR_MS),
      );
      return {
        id: r.holder.id,
        clinicId: r.holder.clinicId,
        apiKey: r.apiKey,
        previousKeyValidUntil: r.previousKeyValidUntil?.toISOString() ?? null,
      };
    }

    @Post(':id/revoke')
    @ApiRoute(revokeSpec)
    async revoke(@Input() input: RouteInput<typeof revokeSpec>) {
      const { clinicId, id } = input.params;
      return holderView(await this.keys.revoke(kind, { actor: ADMIN_ACTOR, by: 'operator' }, clinicId, id));
    }
  }
  const name = kind === 'workstation' ? 'AdminWorkstationsController' : 'AdminMisClientsController';
  Object.defineProperty(KeyAdminController, 'name', { value: name });
  return KeyAdminController;
}

export const AdminWorkstationsController = keyAdminController('workstation');
export const AdminMisClientsController = keyAdminController('mis_client');

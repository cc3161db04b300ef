import { z } from 'zod';
import { holderView } from '../keys/holder-view';
import { KEY_ROTATION_GRACE_MS, KeysService, MAX_KEY_ROTATION_GRACE_MS, MAX_PREVIOUS_KEYS } from '../keys/keys.service';
import { StorageError } from '../storage/errors';
import type { KeyActor, KeyHolderKind } from '../storage/ports';
import {
  CLI_ACTOR,
  DATABASE_NOTE,
  IdOption,
  JsonFlag,
  NameOption,
  parseOptions,
  printList,
  printWithNewKey,
  requireClinic,
  withAdminStorage,
  type AdminContext,
} from './admin';
import type { Command, CommandIo, OptionValues } from './main';

/**
 * The key commands of workstations and MIS clients (`faceid workstation list|rotate|revoke`, `faceid mis
 * create|list|rotate|revoke`): one lifecycle for both kinds (src/keys), on the service's database. Each change writes
 * its audit entry (actor "cli") and its MIS event (`workstation.key_changed`, `mis_client.key_changed`).
 */

const OPERATOR: KeyActor = { actor: CLI_ACTOR, by: 'operator' };
const HOUR_MS = 3_600_000;
const DEFAULT_GRACE_HOURS = KEY_ROTATION_GRACE_MS / HOUR_MS;
const MAX_GRACE_HOURS = MAX_KEY_ROTATION_GRACE_MS / HOUR_MS;

export const keysService = ({ storage }: AdminContext) => new KeysService(storage.repos.keys);

interface Words {
  /** The command group: workstation, mis. */
  group: string;
  /** In sentences: workstation, MIS client. */
  one: string;
  /** The id placeholder: WORKSTATION_ID, CLIENT_ID. */
  idName: string;
  /** The list command's name, for "see ...". */
  listCommand: string;
  /** The clinic of a holder named by its id alone (null: no such holder); absent where the clinic must be given. */
  clinicOf?: (ctx: AdminContext, id: string) => Promise<string | null>;
}

const WORDS: Record<KeyHolderKind, Words> = {
  workstation: {
    group: 'workstation',
    one: 'workstation',
    idName: 'WORKSTATION_ID',
    listCommand: 'faceid workstation list',
    clinicOf: async ({ storage }, id) => (await storage.repos.workstations.findById(id))?.clinicId ?? null,
  },
  mis_client: { group: 'mis', one: 'MIS client', idName: 'CLIENT_ID', listCommand: 'faceid mis list' },
};

const GraceOption = z.coerce
  .number()
  .min(0, 'must be 0 or more')
  .max(MAX_GRACE_HOURS, `must be at most ${MAX_GRACE_HOURS}`)
  .optional();

/** `faceid <group> list [--clinic ID] [--json]`: one clinic's holders, or every clinic's. */
export function listCommand(kind: KeyHolderKind, name: string, usageIntro: string): Command {
  const w = WORDS[kind];
  return {
    name,
    summary: `List the ${w.one}s (of a clinic, or of every clinic) and the state of their keys.`,
    usage: `faceid ${w.group} ${name} [--clinic CLINIC_ID] [--json]

${usageIntro}
Without --clinic, those of every clinic (oldest clinic first), with a CLINIC column.
${DATABASE_NOTE}

Options:
  --clinic ID   Only this clinic's (see \`faceid clinic list\`).
  --json        One JSON object {id, clinicId, name, state, createdAt, rotatedAt, revokedAt, previousKeys} a line
                (previousKeys: [{id, retiredAt, validUntil}], the replaced keys still in their grace).
  -h, --help    Show this help.
`,
    options: { clinic: { type: 'string' }, json: { type: 'boolean' } },
    allowPositionals: false,
    run: async (values: OptionValues, _positionals: string[], io: CommandIo) => {
      const opts = parseOptions(z.object({ clinic: IdOption.optional(), json: JsonFlag }), values, io);
      if (typeof opts === 'number') return opts;
      return withAdminStorage(io, async (ctx) => {
        let clinicIds: string[];
        if (opts.clinic !== undefined) {
          await requireClinic(ctx, opts.clinic);
          clinicIds = [opts.clinic];
        } else {
          clinicIds = (await ctx.storage.repos.clinics.list()).map((c) => c.id);
        }
        const holders: ReturnType<typeof holderView>[] = [];
        for (const clinicId of clinicIds)
          holders.push(...(await keysService(ctx).list(kind, clinicId)).map(holderView));
        await ctx.audit.record(CLI_ACTOR, `${kind}.listed`, {
          clinicId: opts.clinic ?? null,
          detail: opts.clinic ? { count: holders.length } : { count: holders.length, clinics: clinicIds.length },
        });
        const previous = (h: (typeof holders)[number]) =>
          h.previousKeys.length === 0
            ? '-'
            : `${h.previousKeys.length} until ${h.previousKeys[h.previousKeys.length - 1].validUntil}`;
        const all = opts.clinic === undefined;
        printList(
          io,
          opts.json,
          holders,
          `no ${w.one} ${opts.clinic ? 'in this clinic' : 'yet'}: create one with \`faceid ${w.group} create\`.`,
          ['ID', ...(all ? ['CLINIC'] : []), 'STATE', 'CREATED', 'ROTATED', 'PREVIOUS KEYS', 'NAME'],
          (h) => [h.id, ...(all ? [h.clinicId] : []), h.state, h.createdAt, h.rotatedAt ?? '-', previous(h), h.name],
        );
        return 0;
      });
    },
  };
}

/** `faceid <group> create --clinic ID --name N [--json]`. */
export function createCommand(kind: KeyHolderKind, usageIntro: string): Command {
  const w = WORDS[kind];
  return {
    name: 'create',
    summary: `Create a ${w.one} of a clinic and print its API key once.`,
    usage: `faceid ${w.group} create --clinic CLINIC_ID --name NAME [--json]

${usageIntro}
${DATABASE_NOTE}

Options:
  --clinic ID   The clinic (see \`faceid clinic list\`).
  --name NAME   The ${w.one}'s name (1-200 characters).
  --json        Print {id, clinicId, name, createdAt, apiKey} as JSON.
  -h, --help    Show this help.
`,
    options: { clinic: { type: 'string' }, name: { type: 'string' }, json: { type: 'boolean' } },
    allowPositionals: false,
    run: async (values: OptionValues, _positionals: string[], io: CommandIo) => {
      const opts = parseOptions(z.object({ clinic: IdOption, name: NameOption, json: JsonFlag }), values, io);
      if (typeof opts === 'number') return opts;
      return withAdminStorage(io, async (ctx) => {
        const { holder, apiKey } = await keysService(ctx).create(kind, OPERATOR, opts.clinic, opts.name);
        const what = kind === 'workstation' ? 'workstation' : 'MIS client';
        printWithNewKey(io, opts.json, `${what} ${holder.id} "${holder.name}" of clinic ${holder.clinicId} created`, {
          id: holder.id,
          clinicId: holder.clinicId,
          name: holder.name,
          createdAt: holder.createdAt.toISOString(),
          apiKey,
        });
        return 0;
      });
    },
  };
}

/** `faceid <group> rotate --clinic ID --id ID [--grace-hours H] [--json]`. */
export function rotateCommand(kind: KeyHolderKind): Command {
  const w = WORDS[kind];
  return {
    name: 'rotate',
    summary: `Give a ${w.one} a new API key (the old one works ${DEFAULT_GRACE_HOURS} h more, or --grace-hours).`,
    usage: `faceid ${w.group} rotate --clinic CLINIC_ID --id ${w.idName} [--grace-hours H] [--json]

Issues a new API key and prints it this once. The key that was current keeps working for --grace-hours (default
${DEFAULT_GRACE_HOURS}), so the ${w.one} can deploy the new one; keys replaced by earlier rotations keep their own
grace. --grace-hours 0 stops the replaced key and every earlier one at once: use it when a key leaked. With
${MAX_PREVIOUS_KEYS} earlier keys still in their grace a rotation with grace is refused ([key_rotation_limit]).
${DATABASE_NOTE}

Options:
  --clinic ID        The clinic of the ${w.one}.
  --id ID            The ${w.one} (see \`${w.listCommand}\`).
  --grace-hours H    How long the replaced key keeps working, 0 to ${MAX_GRACE_HOURS} hours (default ${DEFAULT_GRACE_HOURS}).
  --json             Print {id, clinicId, apiKey, previousKeyValidUntil} as JSON (null: it stopped at once).
  -h, --help         Show this help.
`,
    options: {
      clinic: { type: 'string' },
      id: { type: 'string' },
      'grace-hours': { type: 'string' },
      json: { type: 'boolean' },
    },
    allowPositionals: false,
    run: async (values: OptionValues, _positionals: string[], io: CommandIo) => {
      const opts = parseOptions(
        z.object({ clinic: IdOption, id: IdOption, 'grace-hours': GraceOption, json: JsonFlag }),
        values,
        io,
      );
      if (typeof opts === 'number') return opts;
      const graceMs = Math.round((opts['grace-hours'] ?? DEFAULT_GRACE_HOURS) * HOUR_MS);
      return withAdminStorage(io, async (ctx) => {
        const r = await keysService(ctx).rotate(kind, OPERATOR, opts.clinic, opts.id, graceMs);
        const until = r.previousKeyValidUntil?.toISOString() ?? null;
        const what = kind === 'workstation' ? 'workstation' : 'MIS client';
        const text =
          until === null
            ? `${what} ${r.holder.id}: new key; the previous keys stopped working`
            : `${what} ${r.holder.id}: new key; the previous one works until ${until}`;
        printWithNewKey(io, opts.json, text, {
          id: r.holder.id,
          clinicId: r.holder.clinicId,
          apiKey: r.apiKey,
          previousKeyValidUntil: until,
        });
        return 0;
      });
    },
  };
}

/**
 * `faceid <group> revoke ID [--clinic ID] [--json]` (`--id ID` too, as before). The clinic may be left out where the
 * holder's id finds it (workstations). The same KeysService call as the admin route, so the same audit entry and
 * `*.key_changed` event, in the revocation's transaction.
 */
export function revokeCommand(kind: KeyHolderKind, note: string): Command {
  const w = WORDS[kind];
  const clinicOptional = w.clinicOf !== undefined;
  const clinicArg = clinicOptional ? '[--clinic CLINIC_ID]' : '--clinic CLINIC_ID';
  return {
    name: 'revoke',
    summary: `Revoke a ${w.one}: its keys stop working at once.`,
    usage: `faceid ${w.group} revoke ${w.idName}|--id ${w.idName} ${clinicArg} [--json]

Revokes the ${w.one}: its current key and any previous one in its grace stop working at once (a running service
refuses them at once and closes their event WebSockets within EVENTS_POLL_MS).
${note}
The clinic's MIS gets a \`${kind}.key_changed\` event (change revoked, by operator), and the audit trail its entry,
as when the operator revokes it over HTTP (POST /admin/clinics/{clinicId}/${kind === 'workstation' ? 'workstations' : 'mis-clients'}/{id}/revoke).
${DATABASE_NOTE}

Arguments:
  ${w.idName.padEnd(16)}The ${w.one} (see \`${w.listCommand}\`); or give it as --id.

Options:
  --clinic ID       The clinic of the ${w.one}${clinicOptional ? ` (optional: found from the ${w.one}; given, it must match)` : ''}.
  --id ID           The ${w.one}, instead of the argument.
  --json            Print the revoked ${w.one} as JSON {id, clinicId, name, state, createdAt, rotatedAt, revokedAt,
                    previousKeys}.
  -h, --help        Show this help.
`,
    options: { clinic: { type: 'string' }, id: { type: 'string' }, json: { type: 'boolean' } },
    allowPositionals: true,
    run: async (values: OptionValues, positionals: string[], io: CommandIo) => {
      const clinicSchema = clinicOptional ? IdOption.optional() : IdOption;
      const opts = parseOptions(
        z.object({ clinic: clinicSchema, id: IdOption.optional(), json: JsonFlag }),
        values,
        io,
      );
      if (typeof opts === 'number') return opts;
      if (positionals.length > 1)
        return io.usageError(`expected one ${w.idName}, got ${positionals.length} arguments.`);
      if (positionals.length === 1 && opts.id !== undefined)
        return io.usageError(`give ${w.idName} once: as the argument or as --id.`);
      const rawId = positionals[0] ?? opts.id;
      if (rawId === undefined) return io.usageError(`${w.idName} is required.`);
      const id = IdOption.safeParse(rawId);
      if (!id.success) return io.usageError(`${w.idName} must be an id (a UUID).`);
      return withAdminStorage(io, async (ctx) => {
        let clinicId = opts.clinic;
        if (clinicId === undefined) {
          clinicId = (await w.clinicOf!(ctx, id.data)) ?? undefined;
          if (clinicId === undefined) throw new StorageError('reference_not_found', `No such ${w.one}.`);
        }
        const holder = await keysService(ctx).revoke(kind, OPERATOR, clinicId, id.data);
        io.out(opts.json ? JSON.stringify(holderView(holder)) : `${w.one} ${holder.id} revoked`);
        return 0;
      });
    },
  };
}

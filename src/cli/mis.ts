import { z } from 'zod';
import { MisClientsService } from '../mis/mis-clients.service';
import { StorageError } from '../storage/errors';
import type { MisClient } from '../storage/ports';
import {
  CLI_ACTOR,
  IdOption,
  JsonFlag,
  NameOption,
  parseOptions,
  printWithNewKey,
  table,
  withAdminStorage,
  type AdminContext,
} from './admin';
import type { Command, CommandGroup, CommandIo, OptionValues } from './main';

const DATABASE_NOTE = `Works on the service's database: the same FACEID_DATA_DIR / DATABASE_URL as the service.
Recorded in the audit trail (actor "cli").`;

const misService = ({ storage, audit }: AdminContext) => new MisClientsService(storage.repos.misClients, audit);

const clientRecord = (c: MisClient) => ({
  id: c.id,
  clinicId: c.clinicId,
  name: c.name,
  state: c.revokedAt ? 'revoked' : 'active',
  createdAt: c.createdAt.toISOString(),
  rotatedAt: c.rotatedAt?.toISOString() ?? null,
  revokedAt: c.revokedAt?.toISOString() ?? null,
});

/** The clinic must exist (a typo in --clinic would otherwise look like an empty list). */
async function requireClinic({ storage }: AdminContext, clinicId: string): Promise<void> {
  if (!(await storage.repos.clinics.get(clinicId))) {
    throw new StorageError('reference_not_found', 'No such clinic.');
  }
}

const create: Command = {
  name: 'create',
  summary: 'Create an MIS client of a clinic and print its API key once.',
  usage: `faceid mis create --clinic CLINIC_ID --name NAME [--json]

Creates a hospital information system client of the clinic and prints its API key, fid_mis_..., this once: only
its hash is stored. With it the MIS reads the clinic's events (WebSocket, GET /events), manages webhooks and reads
GET /stats.
${DATABASE_NOTE}

Options:
  --clinic ID   The clinic (see \`faceid clinic list\`).
  --name NAME   The client's name (1-200 characters).
  --json        Print {id, clinicId, name, createdAt, apiKey} as JSON.
  -h, --help    Show this help.
`,
  options: { clinic: { type: 'string' }, name: { type: 'string' }, json: { type: 'boolean' } },
  allowPositionals: false,
  run: async (values: OptionValues, _positionals: string[], io: CommandIo) => {
    const opts = parseOptions(z.object({ clinic: IdOption, name: NameOption, json: JsonFlag }), values, io);
    if (typeof opts === 'number') return opts;
    return withAdminStorage(io, async (ctx) => {
      const { client, apiKey } = await misService(ctx).create(CLI_ACTOR, opts.clinic, opts.name);
      printWithNewKey(io, opts.json, `MIS client ${client.id} "${client.name}" of clinic ${client.clinicId} created`, {
        id: client.id,
        clinicId: client.clinicId,
        name: client.name,
        createdAt: client.createdAt.toISOString(),
        apiKey,
      });
      return 0;
    });
  },
};

const rotate: Command = {
  name: 'rotate',
  summary: 'Give an MIS client a new API key (the old one works 24 h more).',
  usage: `faceid mis rotate --clinic CLINIC_ID --id CLIENT_ID [--json]

Issues a new API key and prints it this once. The key that was current keeps working for 24 hours, so the MIS can
deploy the new one; a key still in its grace from an earlier rotation stops working at once.
${DATABASE_NOTE}

Options:
  --clinic ID   The clinic of the client.
  --id ID       The MIS client (see \`faceid mis list\`).
  --json        Print {id, clinicId, apiKey, previousKeyValidUntil} as JSON.
  -h, --help    Show this help.
`,
  options: { clinic: { type: 'string' }, id: { type: 'string' }, json: { type: 'boolean' } },
  allowPositionals: false,
  run: async (values: OptionValues, _positionals: string[], io: CommandIo) => {
    const opts = parseOptions(z.object({ clinic: IdOption, id: IdOption, json: JsonFlag }), values, io);
    if (typeof opts === 'number') return opts;
    return withAdminStorage(io, async (ctx) => {
      const r = await misService(ctx).rotate(CLI_ACTOR, opts.clinic, opts.id);
      const until = r.previousKeyValidUntil.toISOString();
      printWithNewKey(io, opts.json, `MIS client ${r.client.id}: new key; the previous one works until ${until}`, {
        id: r.client.id,
        clinicId: r.client.clinicId,
        apiKey: r.apiKey,
        previousKeyValidUntil: until,
      });
      return 0;
    });
  },
};

const revoke: Command = {
  name: 'revoke',
  summary: 'Revoke an MIS client: its keys stop working at once.',
  usage: `faceid mis revoke --clinic CLINIC_ID --id CLIENT_ID

Revokes the client: its current key and any previous one in its grace stop working at once. Webhook
subscriptions belong to the clinic and are not affected.
${DATABASE_NOTE}

Options:
  --clinic ID   The clinic of the client.
  --id ID       The MIS client (see \`faceid mis list\`).
  -h, --help    Show this help.
`,
  options: { clinic: { type: 'string' }, id: { type: 'string' } },
  allowPositionals: false,
  run: async (values: OptionValues, _positionals: string[], io: CommandIo) => {
    const opts = parseOptions(z.object({ clinic: IdOption, id: IdOption }), values, io);
    if (typeof opts === 'number') return opts;
    return withAdminStorage(io, async (ctx) => {
      await misService(ctx).revoke(CLI_ACTOR, opts.clinic, opts.id);
      io.out(`MIS client ${opts.id} revoked`);
      return 0;
    });
  },
};

const list: Command = {
  name: 'list',
  summary: 'List the MIS clients of a clinic.',
  usage: `faceid mis list --clinic CLINIC_ID [--json]

Lists the clinic's MIS clients, oldest first: id, state (active or revoked), created, last rotation, name. Keys are
never shown (only their hashes are stored).
${DATABASE_NOTE}

Options:
  --clinic ID   The clinic (see \`faceid clinic list\`).
  --json        One JSON object {id, clinicId, name, state, createdAt, rotatedAt, revokedAt} a line.
  -h, --help    Show this help.
`,
  options: { clinic: { type: 'string' }, json: { type: 'boolean' } },
  allowPositionals: false,
  run: async (values: OptionValues, _positionals: string[], io: CommandIo) => {
    const opts = parseOptions(z.object({ clinic: IdOption, json: JsonFlag }), values, io);
    if (typeof opts === 'number') return opts;
    return withAdminStorage(io, async (ctx) => {
      await requireClinic(ctx, opts.clinic);
      const clients = (await misService(ctx).list(opts.clinic)).map(clientRecord);
      await ctx.audit.record(CLI_ACTOR, 'mis_client.listed', {
        clinicId: opts.clinic,
        detail: { count: clients.length },
      });
      if (opts.json) for (const c of clients) io.out(JSON.stringify(c));
      else if (clients.length === 0) io.err('no MIS client in this clinic: create one with `faceid mis create`.\n');
      else {
        const rows = clients.map((c) => [c.id, c.state, c.createdAt, c.rotatedAt ?? '-', c.name]);
        for (const line of table(['ID', 'STATE', 'CREATED', 'ROTATED', 'NAME'], rows)) io.out(line);
      }
      return 0;
    });
  },
};

export const misGroup: CommandGroup = {
  name: 'mis',
  summary: 'Create, rotate, revoke and list MIS client keys (admin, on the service database).',
  subcommands: [create, rotate, revoke, list],
};

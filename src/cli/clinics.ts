import { z } from 'zod';
import { createWorkstation } from '../auth/api-key';
import type { Clinic } from '../storage/ports';
import {
  CLI_ACTOR,
  IdOption,
  JsonFlag,
  NameOption,
  parseOptions,
  printWithNewKey,
  table,
  withAdminStorage,
} from './admin';
import type { Command, CommandGroup, CommandIo, OptionValues } from './main';

const DATABASE_NOTE = `Works on the service's database: the same FACEID_DATA_DIR / DATABASE_URL as the service.
Recorded in the audit trail (actor "cli").`;

const clinicRecord = (c: Clinic) => ({ id: c.id, name: c.name, createdAt: c.createdAt.toISOString() });

const clinicCreate: Command = {
  name: 'create',
  summary: 'Create a clinic and print its id.',
  usage: `faceid clinic create --name NAME [--json]

Creates a clinic and prints its id (needed by the workstation and mis commands).
${DATABASE_NOTE}

Options:
  --name NAME   The clinic's name (1-200 characters).
  --json        Print {id, name, createdAt} as JSON.
  -h, --help    Show this help.
`,
  options: { name: { type: 'string' }, json: { type: 'boolean' } },
  allowPositionals: false,
  run: async (values: OptionValues, _positionals: string[], io: CommandIo) => {
    const opts = parseOptions(z.object({ name: NameOption, json: JsonFlag }), values, io);
    if (typeof opts === 'number') return opts;
    return withAdminStorage(io, async ({ storage, audit }) => {
      const clinic = await storage.repos.clinics.create(opts.name);
      await audit.record(CLI_ACTOR, 'clinic.created', {
        clinicId: clinic.id,
        subject: clinic.id,
        detail: { name: clinic.name },
      });
      io.out(opts.json ? JSON.stringify(clinicRecord(clinic)) : `clinic ${clinic.id} "${clinic.name}" created`);
      return 0;
    });
  },
};

const clinicList: Command = {
  name: 'list',
  summary: 'List the clinics with their ids.',
  usage: `faceid clinic list [--json]

Lists every clinic, oldest first: id, creation time, name.
${DATABASE_NOTE}

Options:
  --json        One JSON object {id, name, createdAt} a line.
  -h, --help    Show this help.
`,
  options: { json: { type: 'boolean' } },
  allowPositionals: false,
  run: async (values: OptionValues, _positionals: string[], io: CommandIo) => {
    const opts = parseOptions(z.object({ json: JsonFlag }), values, io);
    if (typeof opts === 'number') return opts;
    return withAdminStorage(io, async ({ storage, audit }) => {
      const clinics = await storage.repos.clinics.list();
      await audit.record(CLI_ACTOR, 'clinic.listed', { clinicId: null, detail: { count: clinics.length } });
      if (opts.json) for (const c of clinics) io.out(JSON.stringify(clinicRecord(c)));
      else if (clinics.length === 0) io.err('no clinic yet: create one with `faceid clinic create --name NAME`.\n');
      else {
        const rows = clinics.map((c) => [c.id, c.createdAt.toISOString(), c.name]);
        for (const line of table(['ID', 'CREATED', 'NAME'], rows)) io.out(line);
      }
      return 0;
    });
  },
};

const workstationCreate: Command = {
  name: 'create',
  summary: 'Create a workstation of a clinic and print its API key once.',
  usage: `faceid workstation create --clinic CLINIC_ID --name NAME [--json]

Creates a workstation (a doctor's desk) of the clinic and prints its API key, fid_ws_..., this once: only its hash
is stored. The desk sends it as "Authorization: Bearer <key>".
${DATABASE_NOTE}

Options:
  --clinic ID   The clinic (see \`faceid clinic list\`).
  --name NAME   The workstation's name (1-200 characters), e.g. "Room 12".
  --json        Print {id, clinicId, name, createdAt, apiKey} as JSON.
  -h, --help    Show this help.
`,
  options: { clinic: { type: 'string' }, name: { type: 'string' }, json: { type: 'boolean' } },
  allowPositionals: false,
  run: async (values: OptionValues, _positionals: string[], io: CommandIo) => {
    const opts = parseOptions(z.object({ clinic: IdOption, name: NameOption, json: JsonFlag }), values, io);
    if (typeof opts === 'number') return opts;
    return withAdminStorage(io, async ({ storage, audit }) => {
      const { workstation, apiKey } = await createWorkstation(storage.repos.workstations, opts.clinic, opts.name);
      await audit.record(CLI_ACTOR, 'workstation.created', {
        clinicId: workstation.clinicId,
        subject: workstation.id,
        detail: { name: workstation.name },
      });
      const text = `workstation ${workstation.id} "${workstation.name}" of clinic ${workstation.clinicId} created`;
      printWithNewKey(io, opts.json, text, {
        id: workstation.id,
        clinicId: workstation.clinicId,
        name: workstation.name,
        createdAt: workstation.createdAt.toISOString(),
        apiKey,
      });
      return 0;
    });
  },
};

export const clinicGroup: CommandGroup = {
  name: 'clinic',
  summary: 'Create and list clinics (admin, on the service database).',
  subcommands: [clinicCreate, clinicList],
};

export const workstationGroup: CommandGroup = {
  name: 'workstation',
  summary: 'Create a workstation and its API key (admin, on the service database).',
  subcommands: [workstationCreate],
};

import { z } from 'zod';
import { loadConfig } from '../config';
import { parseChallenges, type ChallengeKind } from '../liveness/policy';
import {
  normaliseChallenges,
  resolveChallenges,
  type ResolvedChallenges,
} from '../identification/challenge-policy.service';
import { StorageError } from '../storage/errors';
import { SMS_LANGUAGES, type ClinicRepository, type Clinic, type SmsLanguages } from '../storage/ports';
import {
  CLI_ACTOR,
  DATABASE_NOTE,
  IdOption,
  JsonFlag,
  NameOption,
  parseOptions,
  printList,
  withAdminStorage,
  type AdminContext,
} from './admin';
import { createCommand, listCommand, revokeCommand, rotateCommand } from './keys';
import type { Command, CommandGroup, CommandIo, OptionValues } from './main';

const clinicRecord = (c: Clinic) => ({
  id: c.id,
  name: c.name,
  createdAt: c.createdAt.toISOString(),
  smsLanguages: c.smsLanguages,
});

const clinicCreate: Command = {
  name: 'create',
  summary: 'Create a clinic and print its id.',
  usage: `faceid clinic create --name NAME [--json]

Creates a clinic and prints its id (needed by the workstation and mis commands).
${DATABASE_NOTE}

Options:
  --name NAME   The clinic's name (1-200 characters).
  --json        Print {id, name, createdAt, smsLanguages} as JSON.
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

Lists every clinic, oldest first: id, creation time, the languages of its SMS texts (\`faceid clinic
sms-languages\`), name.
${DATABASE_NOTE}

Options:
  --json        One JSON object {id, name, createdAt, smsLanguages} a line.
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
      printList(
        io,
        opts.json,
        clinics.map(clinicRecord),
        'no clinic yet: create one with `faceid clinic create --name NAME`.',
        ['ID', 'CREATED', 'SMS', 'NAME'],
        (c) => [c.id, c.createdAt, c.smsLanguages, c.name],
      );
      return 0;
    });
  },
};

const workstationCreate = createCommand(
  'workstation',
  `Creates a workstation (a doctor's desk) of the clinic and prints its API key, fid_ws_..., this once: only its hash
is stored. The desk sends it as "Authorization: Bearer <key>".`,
);

const workstationList: Command = {
  ...listCommand(
    'workstation',
    'list',
    `Lists the clinic's workstations, oldest first: id, state (active or revoked), created, last key rotation, previous
keys still in their grace, name. Keys are never shown (only their hashes are stored). Also \`faceid workstation keys\`.`,
  ),
  aliases: ['keys'],
};

const workstationRotate = rotateCommand('workstation');

const workstationRevoke = revokeCommand(
  'workstation',
  'Its sessions and enrollments are kept; the desk needs a new workstation (`faceid workstation create`).',
);

const CHALLENGES_NOTE = `LIST is one of light,blink, turn,blink or light,turn,blink (blink always stays). The light challenge
colours the screen in front of the patient, so it needs a screen facing the patient: a desk whose monitor faces the
doctor needs turn,blink (the patient turns the head when asked).`;

/**
 * The --json flag and the two positionals of a `faceid <group> <setting> ID VALUE` command: the id (checked) and the
 * value as given. `expected` names the value in the message for a wrong count. Returns the exit code of a usage
 * error instead when they are wrong.
 */
function parseSettingArgs(
  values: OptionValues,
  positionals: string[],
  idName: string,
  expected: string,
  io: CommandIo,
): { json: boolean | undefined; id: string; value: string } | number {
  const opts = parseOptions(z.object({ json: JsonFlag }), values, io);
  if (typeof opts === 'number') return opts;
  if (positionals.length !== 2)
    return io.usageError(`expected ${idName} and ${expected}, got ${positionals.length} argument(s).`);
  const id = IdOption.safeParse(positionals[0]);
  if (!id.success) return io.usageError(`${idName} must be an id (a UUID).`);
  return { json: opts.json, id: id.data, value: positionals[1] };
}

/**
 * The input of a challenges command: --json, an id, a challenge list or `default` (null), and the service default
 * that applies without a setting. Returns the exit code of a usage error instead when they are wrong.
 */
function parseChallengeArgs(
  values: OptionValues,
  positionals: string[],
  what: string,
  io: CommandIo,
): { json: boolean | undefined; id: string; challenges: string | null; fallback: ChallengeKind[] } | number {
  const args = parseSettingArgs(values, positionals, what, 'LIST or default', io);
  if (typeof args === 'number') return args;
  let challenges: string | null = null;
  if (args.value.trim().toLowerCase() !== 'default') {
    try {
      challenges = normaliseChallenges(args.value);
    } catch (err) {
      if (err instanceof RangeError) return io.usageError(`LIST: ${err.message}`);
      throw err;
    }
  }
  const fallback = parseChallenges(loadConfig(io.env).LIVENESS_CHALLENGES);
  return { json: args.json, id: args.id, challenges, fallback };
}

const SOURCE_TEXT: Record<ResolvedChallenges['source'], string> = {
  workstation: 'its own setting',
  clinic: "the clinic's setting",
  config: 'the service default, LIVENESS_CHALLENGES',
};

const workstationChallenges: Command = {
  name: 'challenges',
  summary: "Set a workstation's liveness challenges, or return it to its clinic's.",
  usage: `faceid workstation challenges WORKSTATION_ID LIST|default [--json]

Sets the liveness challenges of the workstation's identification sessions. \`default\` removes the workstation's own
setting: its clinic's applies again (\`faceid clinic challenges\`), or LIVENESS_CHALLENGES when the clinic has none.

${CHALLENGES_NOTE}

Prints the challenges that now apply and where they come from.
${DATABASE_NOTE}

Arguments:
  WORKSTATION_ID  The workstation (printed by \`faceid workstation create\`).
  LIST|default    The challenges, e.g. turn,blink; or default.

Options:
  --json        Print {id, clinicId, challenges, effective, source} as JSON (challenges: the workstation's own
                setting or null; source: workstation, clinic or config).
  -h, --help    Show this help.
`,
  options: { json: { type: 'boolean' } },
  allowPositionals: true,
  run: async (values: OptionValues, positionals: string[], io: CommandIo) => {
    const args = parseChallengeArgs(values, positionals, 'WORKSTATION_ID', io);
    if (typeof args === 'number') return args;
    return withAdminStorage(io, async ({ storage, audit }) => {
      const workstations = storage.repos.workstations;
      const workstation = await workstations.findById(args.id);
      if (!workstation) throw new StorageError('reference_not_found', 'No such workstation.');
      const set = await workstations.setLivenessChallenges(workstation.clinicId, workstation.id, args.challenges);
      if (!set) throw new StorageError('reference_not_found', 'No such workstation.');
      await audit.record(CLI_ACTOR, 'workstation.liveness_challenges_set', {
        clinicId: workstation.clinicId,
        subject: workstation.id,
        detail: { challenges: args.challenges, previous: set.previous },
      });
      const now = resolveChallenges(
        await workstations.livenessChallenges(workstation.clinicId, workstation.id),
        args.fallback,
      );
      const effective = now.challenges.join(',');
      const record = { id: workstation.id, clinicId: workstation.clinicId, challenges: args.challenges, effective };
      io.out(
        args.json
          ? JSON.stringify({ ...record, source: now.source })
          : `workstation ${workstation.id}: liveness challenges ${effective} (${SOURCE_TEXT[now.source]})`,
      );
      return 0;
    });
  },
};

const clinicChallenges: Command = {
  name: 'challenges',
  summary: "Set a clinic's liveness challenges, or return it to the service default.",
  usage: `faceid clinic challenges CLINIC_ID LIST|default [--json]

Sets the liveness challenges of the clinic's identification sessions; a workstation with its own setting
(\`faceid workstation challenges\`) keeps it. \`default\` removes the clinic's setting: LIVENESS_CHALLENGES applies.

${CHALLENGES_NOTE}

Prints the challenges that now apply to the clinic's workstations without a setting of their own.
${DATABASE_NOTE}

Arguments:
  CLINIC_ID     The clinic (see \`faceid clinic list\`).
  LIST|default  The challenges, e.g. light,turn,blink; or default.

Options:
  --json        Print {id, challenges, effective, source} as JSON (challenges: the clinic's setting or null; source:
                clinic or config).
  -h, --help    Show this help.
`,
  options: { json: { type: 'boolean' } },
  allowPositionals: true,
  run: async (values: OptionValues, positionals: string[], io: CommandIo) => {
    const args = parseChallengeArgs(values, positionals, 'CLINIC_ID', io);
    if (typeof args === 'number') return args;
    return withAdminStorage(io, async (ctx) => {
      await setClinicSetting(ctx, args.id, args.challenges, CLINIC_CHALLENGES);
      const now = resolveChallenges({ workstation: null, clinic: args.challenges }, args.fallback);
      const effective = now.challenges.join(',');
      io.out(
        args.json
          ? JSON.stringify({ id: args.id, challenges: args.challenges, effective, source: now.source })
          : `clinic ${args.id}: liveness challenges ${effective} (${SOURCE_TEXT[now.source]})`,
      );
      return 0;
    });
  },
};

/** A clinic setting as stored and audited: its name in the audit detail and the JSON, its setter, its action. */
interface ClinicSetting<T> {
  field: string;
  set: (clinics: ClinicRepository, id: string, value: T) => Promise<{ previous: T } | null>;
  action: string;
}

const CLINIC_CHALLENGES: ClinicSetting<string | null> = {
  field: 'challenges',
  set: (clinics, id, challenges) => clinics.setLivenessChallenges(id, challenges),
  action: 'clinic.liveness_challenges_set',
};

/**
 * Sets a clinic's setting (reference_not_found if there is no such clinic) and writes its audit entry with the
 * previous value, which it returns.
 */
async function setClinicSetting<T>(
  { storage, audit }: AdminContext,
  id: string,
  value: T,
  setting: ClinicSetting<T>,
): Promise<T> {
  const set = await setting.set(storage.repos.clinics, id, value);
  if (!set) throw new StorageError('reference_not_found', 'No such clinic.');
  await audit.record(CLI_ACTOR, setting.action, {
    clinicId: id,
    subject: id,
    detail: { [setting.field]: value, previous: set.previous },
  });
  return set.previous;
}

const ON_OFF: Record<string, boolean> = { on: true, off: false, true: true, false: false, yes: true, no: false };

/**
 * The run of a `faceid clinic <setting> CLINIC_ID VALUE` command: checks both arguments, sets the value through the
 * repository, writes the audit entry `action` with the previous value, prints the change.
 */
function clinicSettingRun<T>(
  setting: ClinicSetting<T> & {
    /** The second argument, as the usage errors name it: for a missing one, and for a wrong one. */
    expected: string;
    allowed: string;
    parse: (raw: string) => T | undefined;
    describe: (value: T) => string;
  },
): Command['run'] {
  return async (values: OptionValues, positionals: string[], io: CommandIo) => {
    const args = parseSettingArgs(values, positionals, 'CLINIC_ID', setting.expected, io);
    if (typeof args === 'number') return args;
    const value = setting.parse(args.value.trim().toLowerCase());
    if (value === undefined) return io.usageError(`the second argument must be ${setting.allowed}.`);
    return withAdminStorage(io, async (ctx) => {
      const previous = await setClinicSetting(ctx, args.id, value, setting);
      io.out(
        args.json
          ? JSON.stringify({ id: args.id, [setting.field]: value, previous })
          : `clinic ${args.id}: ${setting.describe(value)}`,
      );
      return 0;
    });
  };
}

const clinicDeskEnrollment: Command = {
  name: 'desk-enrollment',
  summary: "Allow or forbid enrollment from a clinic's workstations.",
  usage: `faceid clinic desk-enrollment CLINIC_ID on|off [--json]

Whether the clinic's workstations (fid_ws_ keys) may enroll patients. Off by default: reference photos come from the
registry, through the clinic's enrollment keys (\`faceid enrollment-key create\`) or \`faceid enroll\`. On: a desk
enrolls a patient who never had a template at once; replacing an existing template (or enrolling after a
revocation) waits for the six-digit code sent to the patient by SMS. Every change is an MIS event either way.
Off again: workstations get 403 desk_enrollment_disabled, and their open replacements cannot be confirmed.
The demo clinic of a first start (FACEID_BOOTSTRAP) has it on.
${DATABASE_NOTE}

Arguments:
  CLINIC_ID     The clinic (see \`faceid clinic list\`).
  on|off        Allow, or forbid.

Options:
  --json        Print {id, deskEnrollment, previous} as JSON.
  -h, --help    Show this help.
`,
  options: { json: { type: 'boolean' } },
  allowPositionals: true,
  run: clinicSettingRun<boolean>({
    field: 'deskEnrollment',
    expected: 'on or off',
    allowed: 'on or off',
    parse: (raw) => ON_OFF[raw],
    set: (clinics, id, allowed) => clinics.setDeskEnrollment(id, allowed),
    action: 'clinic.desk_enrollment_set',
    describe: (allowed) => `desk enrollment ${allowed ? 'on (replacements need the patient’s code)' : 'off'}`,
  }),
};

const SMS_LANGUAGE_TEXT: Record<SmsLanguages, string> = {
  'kk+ru': 'Kazakh and Russian (Kazakh first)',
  kk: 'Kazakh only',
  ru: 'Russian only',
};

const clinicSmsLanguages: Command = {
  name: 'sms-languages',
  summary: "Set the languages of a clinic's SMS texts to patients: kk+ru, kk or ru.",
  usage: `faceid clinic sms-languages CLINIC_ID kk+ru|kk|ru [--json]

Sets the languages of every text message the clinic's patients get (the identification code, the code confirming
a new reference photo): kk+ru, both in one message, Kazakh first (the default); kk, Kazakh only; ru, Russian only.
Each text names the clinic, says what the code is for and that nobody may be told it but the doctor or the
receptionist at the appointment (for a new reference photo: nobody at all, if the patient does not agree). One
language keeps the message to 2 SMS parts, both to 4. Applies to the next message sent.
${DATABASE_NOTE}

Arguments:
  CLINIC_ID     The clinic (see \`faceid clinic list\`, which shows each clinic's setting).
  kk+ru|kk|ru   The languages.

Options:
  --json        Print {id, smsLanguages, previous} as JSON.
  -h, --help    Show this help.
`,
  options: { json: { type: 'boolean' } },
  allowPositionals: true,
  run: clinicSettingRun<SmsLanguages>({
    field: 'smsLanguages',
    expected: 'kk+ru, kk or ru',
    allowed: `one of ${SMS_LANGUAGES.join(', ')}`,
    parse: (raw) => ((SMS_LANGUAGES as readonly string[]).includes(raw) ? (raw as SmsLanguages) : undefined),
    set: (clinics, id, languages) => clinics.setSmsLanguages(id, languages),
    action: 'clinic.sms_languages_set',
    describe: (languages) => `SMS texts in ${SMS_LANGUAGE_TEXT[languages]}`,
  }),
};

export const clinicGroup: CommandGroup = {
  name: 'clinic',
  summary:
    'Create and list clinics, set their liveness challenges, desk enrollment and SMS languages (admin, on the service ' +
    'database).',
  subcommands: [clinicCreate, clinicList, clinicChallenges, clinicDeskEnrollment, clinicSmsLanguages],
};

export const workstationGroup: CommandGroup = {
  name: 'workstation',
  summary:
    'Create workstations, list, rotate and revoke their API keys, set their liveness challenges (admin, on the service database).',
  subcommands: [workstationCreate, workstationList, workstationRotate, workstationRevoke, workstationChallenges],
};

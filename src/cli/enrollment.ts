import * as fs from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import { createEnrollmentKey } from '../auth/enrollment-key';
import { loadConfig } from '../config';
import { FaceEngine } from '../engine';
import { EnrollmentService } from '../enrollment/enrollment.service';
import { TemplateCipher } from '../enrollment/template-crypto';
import { keyRingFromConfig } from '../keyring';
import { validateIin } from '../patients';
import { maskIin, SmsError, type SmsGateway } from '../sms';
import { StorageError } from '../storage/errors';
import type { EnrollmentKey } from '../storage/ports';
import { MAX_IMAGE_BYTES } from '../enrollment/upload';
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
} from './admin';
import type { Command, CommandGroup, CommandIo, OptionValues } from './main';

const keyRecord = (k: EnrollmentKey) => ({
  id: k.id,
  clinicId: k.clinicId,
  name: k.name,
  state: k.revokedAt ? 'revoked' : 'active',
  createdAt: k.createdAt.toISOString(),
  revokedAt: k.revokedAt?.toISOString() ?? null,
});

const keyCreate: Command = {
  name: 'create',
  summary: 'Create an enrollment key of a clinic and print it once.',
  usage: `faceid enrollment-key create --clinic CLINIC_ID --name NAME [--json]

Creates a key of the clinic's enrollment role and prints it, fid_enr_..., this once: only its hash is stored. Its
holder (the registry import, e.g. from the state database of individuals) enrolls, replaces and revokes the
clinic's templates at once: POST and DELETE /patients/{iin}/template with "Authorization: Bearer <key>". Give it to
the system that holds the reference photos, never to a desk.
${DATABASE_NOTE}

Options:
  --clinic ID   The clinic (see \`faceid clinic list\`).
  --name NAME   The key's name (1-200 characters), e.g. "Registry import".
  --json        Print {id, clinicId, name, createdAt, apiKey} as JSON.
  -h, --help    Show this help.
`,
  options: { clinic: { type: 'string' }, name: { type: 'string' }, json: { type: 'boolean' } },
  allowPositionals: false,
  run: async (values: OptionValues, _positionals: string[], io: CommandIo) => {
    const opts = parseOptions(z.object({ clinic: IdOption, name: NameOption, json: JsonFlag }), values, io);
    if (typeof opts === 'number') return opts;
    return withAdminStorage(io, async ({ storage, audit }) => {
      const { key, apiKey } = await createEnrollmentKey(storage.repos.enrollmentKeys, opts.clinic, opts.name);
      await audit.record(CLI_ACTOR, 'enrollment_key.created', {
        clinicId: key.clinicId,
        subject: key.id,
        detail: { name: key.name },
      });
      printWithNewKey(io, opts.json, `enrollment key ${key.id} "${key.name}" of clinic ${key.clinicId} created`, {
        id: key.id,
        clinicId: key.clinicId,
        name: key.name,
        createdAt: key.createdAt.toISOString(),
        apiKey,
      });
      return 0;
    });
  },
};

const keyList: Command = {
  name: 'list',
  summary: 'List the enrollment keys of a clinic.',
  usage: `faceid enrollment-key list --clinic CLINIC_ID [--json]

Lists the clinic's enrollment keys, oldest first: id, state (active or revoked), created, name. Keys are never
shown (only their hashes are stored).
${DATABASE_NOTE}

Options:
  --clinic ID   The clinic (see \`faceid clinic list\`).
  --json        One JSON object {id, clinicId, name, state, createdAt, revokedAt} a line.
  -h, --help    Show this help.
`,
  options: { clinic: { type: 'string' }, json: { type: 'boolean' } },
  allowPositionals: false,
  run: async (values: OptionValues, _positionals: string[], io: CommandIo) => {
    const opts = parseOptions(z.object({ clinic: IdOption, json: JsonFlag }), values, io);
    if (typeof opts === 'number') return opts;
    return withAdminStorage(io, async (ctx) => {
      await requireClinic(ctx, opts.clinic);
      const keys = (await ctx.storage.repos.enrollmentKeys.list(opts.clinic)).map(keyRecord);
      await ctx.audit.record(CLI_ACTOR, 'enrollment_key.listed', {
        clinicId: opts.clinic,
        detail: { count: keys.length },
      });
      printList(
        io,
        opts.json,
        keys,
        'no enrollment key in this clinic: create one with `faceid enrollment-key create`.',
        ['ID', 'STATE', 'CREATED', 'NAME'],
        (k) => [k.id, k.state, k.createdAt, k.name],
      );
      return 0;
    });
  },
};

const keyRevoke: Command = {
  name: 'revoke',
  summary: 'Revoke an enrollment key: it stops working at once.',
  usage: `faceid enrollment-key revoke --clinic CLINIC_ID --id KEY_ID

Revokes the enrollment key: requests with it are refused (401) at once. The templates it enrolled stay.
${DATABASE_NOTE}

Options:
  --clinic ID   The clinic of the key.
  --id ID       The enrollment key (see \`faceid enrollment-key list\`).
  -h, --help    Show this help.
`,
  options: { clinic: { type: 'string' }, id: { type: 'string' } },
  allowPositionals: false,
  run: async (values: OptionValues, _positionals: string[], io: CommandIo) => {
    const opts = parseOptions(z.object({ clinic: IdOption, id: IdOption }), values, io);
    if (typeof opts === 'number') return opts;
    return withAdminStorage(io, async ({ storage, audit }) => {
      if (!(await storage.repos.enrollmentKeys.revoke(opts.clinic, opts.id))) {
        throw new StorageError('reference_not_found', 'No such active enrollment key in this clinic.');
      }
      await audit.record(CLI_ACTOR, 'enrollment_key.revoked', { clinicId: opts.clinic, subject: opts.id });
      io.out(`enrollment key ${opts.id} revoked`);
      return 0;
    });
  },
};

export const enrollmentKeyGroup: CommandGroup = {
  name: 'enrollment-key',
  summary: 'Create, list and revoke enrollment keys, the registry role (admin, on the service database).',
  subcommands: [keyCreate, keyList, keyRevoke],
};

// ---- faceid enroll: the bulk import ----

/** One row of a manifest: its line number (for messages), the IIN and the photo's path as written. */
export interface ManifestRow {
  line: number;
  iin: string;
  photo: string;
}

/**
 * Parses a manifest: CSV with two columns, iin and photo (a JPEG path, relative to the manifest's folder). A first
 * row `iin,photo` is a header; blank lines and lines starting with # are skipped; fields may be double-quoted ("" is
 * a quote). A line with another number of fields is returned with an error instead.
 */
export function parseManifest(text: string): (ManifestRow | { line: number; error: string })[] {
  const out: (ManifestRow | { line: number; error: string })[] = [];
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  for (const [i, raw] of lines.entries()) {
    const line = i + 1;
    if (raw.trim() === '' || raw.trimStart().startsWith('#')) continue;
    const fields = splitCsvLine(raw);
    if (fields === null) {
      out.push({ line, error: 'an unterminated quoted field' });
      continue;
    }
    if (
      out.length === 0 &&
      fields.length === 2 &&
      fields[0].trim().toLowerCase() === 'iin' &&
      fields[1].trim().toLowerCase() === 'photo'
    ) {
      continue; // the header
    }
    if (fields.length !== 2) {
      out.push({ line, error: `${fields.length} fields where iin,photo has 2` });
      continue;
    }
    out.push({ line, iin: fields[0].trim(), photo: fields[1].trim() });
  }
  return out;
}

function splitCsvLine(line: string): string[] | null {
  const fields: string[] = [];
  let i = 0;
  for (;;) {
    let field = '';
    if (line[i] === '"') {
      i++;
      for (;;) {
        if (i >= line.length) return null;
        if (line[i] === '"') {
          if (line[i + 1] === '"') {
            field += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        field += line[i++];
      }
      while (i < line.length && line[i] !== ',') field += line[i++]; // text after the closing quote, kept
    } else {
      while (i < line.length && line[i] !== ',') field += line[i++];
    }
    fields.push(field);
    if (i >= line.length) return fields;
    i++; // the comma
  }
}

/**
 * Reads a photo into one buffer of its own (never a pooled or shared one), so the caller can wipe it: the
 * enrollment zeroes it once analysed. Refuses what is not a file or is larger than an upload may be.
 */
function readPhoto(file: string): Buffer {
  const fd = fs.openSync(file, 'r');
  try {
    const stat = fs.fstatSync(fd);
    if (!stat.isFile()) throw new CliRowError('photo_unreadable', 'not a file');
    if (stat.size === 0) throw new CliRowError('photo_unreadable', 'the file is empty');
    if (stat.size > MAX_IMAGE_BYTES) {
      throw new CliRowError('payload_too_large', `larger than ${MAX_IMAGE_BYTES / 1024 / 1024} MB`);
    }
    const buffer = Buffer.alloc(stat.size);
    let read = 0;
    try {
      while (read < buffer.length) {
        const n = fs.readSync(fd, buffer, read, buffer.length - read, read);
        if (n === 0) break;
        read += n;
      }
    } catch (err) {
      buffer.fill(0);
      throw err;
    }
    if (read !== buffer.length) {
      buffer.fill(0);
      throw new CliRowError('photo_unreadable', 'the file changed while it was read');
    }
    return buffer;
  } finally {
    fs.closeSync(fd);
  }
}

class CliRowError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** The import never sends a code: an administrator's enrollment needs no patient confirmation. */
const NO_SMS: SmsGateway = {
  send: () => Promise.reject(new SmsError('The bulk import sends no SMS.')),
};

/** Progress on stderr: one line rewritten in place on a terminal, else a line every PLAIN_PROGRESS_EVERY rows. */
const PLAIN_PROGRESS_EVERY = 100;

interface ImportCounts {
  rows: number;
  enrolled: number;
  replaced: number;
  skipped: number;
  failed: number;
}

const enrollCommand: Command = {
  name: 'enroll',
  summary: 'Bulk import: enroll a clinic’s patients from a manifest of photos (iin,photo).',
  usage: `faceid enroll --clinic CLINIC_ID --manifest FILE.csv [--skip-enrolled] [--json]

Enrolls the clinic's patients from reference photos, as the clinic's enrollment role does (the registry import):
each row's template is stored at once, replacing an earlier one, and each is an MIS event (template.enrolled or
template.replaced, actor "admin") and an audit entry (actor "cli"). The manifest is CSV, one patient a row:

  iin,photo
  900101300027,photos/900101300027.jpg

(the header is optional; photo paths are relative to the manifest's folder; # starts a comment). Each photo must
be a JPEG of one face, at most ${MAX_IMAGE_BYTES / 1024 / 1024} MB. It is read into memory only, and wiped once analysed; the photos themselves
are never stored. A row that fails (bad IIN, missing photo, no face, several faces...) is reported on stderr with
its line number and the import goes on; the exit code is then 1. Progress goes to stderr.
${DATABASE_NOTE} The face models are those of the service (FACEID_MODEL_DIR), and templates are sealed with its key
ring (TEMPLATE_KEYS, else the key file in FACEID_DATA_DIR): run it with the service's environment.

Options:
  --clinic ID        The clinic (see \`faceid clinic list\`).
  --manifest FILE    The CSV manifest.
  --skip-enrolled    Leave patients who already have an active template as they are.
  --json             Print the summary as JSON: {rows, enrolled, replaced, skipped, failed, errors: [{line, code,
                     message}]} (errors: at most 100).
  -h, --help         Show this help.
`,
  options: {
    clinic: { type: 'string' },
    manifest: { type: 'string' },
    'skip-enrolled': { type: 'boolean' },
    json: { type: 'boolean' },
  },
  allowPositionals: false,
  run: async (values: OptionValues, _positionals: string[], io: CommandIo) => {
    const opts = parseOptions(
      z.object({
        clinic: IdOption,
        manifest: z.string().min(1, 'must name a file'),
        'skip-enrolled': z.boolean().optional(),
        json: JsonFlag,
      }),
      values,
      io,
    );
    if (typeof opts === 'number') return opts;
    let text: string;
    try {
      text = fs.readFileSync(opts.manifest, 'utf8');
    } catch (err) {
      throw new CliRowError(
        'manifest_unreadable',
        `Cannot read the manifest: ${(err as NodeJS.ErrnoException).code ?? 'error'}.`,
      );
    }
    const rows = parseManifest(text);
    if (rows.length === 0) return io.usageError('--manifest holds no rows (expected iin,photo lines).');
    const folder = path.dirname(path.resolve(opts.manifest));
    const config = loadConfig(io.env);

    return withAdminStorage(io, async (ctx) => {
      await requireClinic(ctx, opts.clinic);
      const { repos } = ctx.storage;
      const ring = keyRingFromConfig(config, { log: () => undefined, warn: (m) => io.err(`${m}\n`) });
      const engine = await FaceEngine.open({
        modelDir: config.FACEID_MODEL_DIR,
        workers: 1,
        detectThreshold: config.ENGINE_DETECT_THRESHOLD,
        threadsPerJob: config.ENGINE_THREADS_PER_JOB,
      });
      const counts: ImportCounts = { rows: rows.length, enrolled: 0, replaced: 0, skipped: 0, failed: 0 };
      const errors: { line: number; code: string; message: string }[] = [];
      let shownProgress = false;
      const progress = (done: number) => {
        const line =
          `enroll: ${done}/${rows.length} rows: ${counts.enrolled} enrolled, ${counts.replaced} replaced, ` +
          `${counts.skipped} skipped, ${counts.failed} failed`;
        if (io.errIsTTY) {
          io.err(`\r${line}\x1b[K`);
          shownProgress = true;
        } else if (done % PLAIN_PROGRESS_EVERY === 0 || done === rows.length) {
          io.err(`${line}\n`);
        }
      };
      const fail = (line: number, code: string, message: string) => {
        counts.failed++;
        if (errors.length < 100) errors.push({ line, code, message });
        if (shownProgress) io.err('\n');
        shownProgress = false;
        io.err(`line ${line}: [${code}] ${message}\n`);
      };
      try {
        const service = new EnrollmentService(
          config,
          { get: () => engine },
          new TemplateCipher(ring),
          ring,
          ctx.audit,
          repos.clinics,
          repos.patients,
          repos.templates,
          repos.pendingEnrollments,
          repos.codes,
          NO_SMS,
        );
        const enroller = { kind: 'admin', clinicId: opts.clinic } as const;
        for (const [i, row] of rows.entries()) {
          try {
            if ('error' in row) throw new CliRowError('invalid_row', `Not iin,photo: ${row.error}.`);
            validateIin(row.iin);
            if (opts['skip-enrolled']) {
              const patient = await repos.patients.find(opts.clinic, row.iin);
              if (patient && (await repos.templates.active(opts.clinic, patient.id))) {
                counts.skipped++;
                continue;
              }
            }
            let photo: Buffer;
            try {
              photo = readPhoto(path.resolve(folder, row.photo));
            } catch (err) {
              if (err instanceof CliRowError) throw err;
              throw new CliRowError(
                'photo_unreadable',
                `Cannot read the photo (${(err as NodeJS.ErrnoException).code ?? 'error'}).`,
              );
            }
            const r = await service.enroll(enroller, row.iin, [photo]); // wipes the photo
            if (r.status !== 'enrolled') throw new Error('An administrator’s enrollment waited for a code.');
            if (r.replaced) counts.replaced++;
            else counts.enrolled++;
          } catch (err) {
            const e = err as { code?: unknown; message?: string };
            const code = typeof e.code === 'string' ? e.code : 'internal';
            // The IIN masked (the messages may be kept in logs of the import), and only one that looks like an IIN.
            const who = 'iin' in row && /^\d{12}$/.test(row.iin) ? ` (IIN ${maskIin(row.iin)})` : '';
            fail(row.line, code, `${e.message ?? String(err)}${who}`);
          } finally {
            progress(i + 1);
          }
        }
      } finally {
        if (shownProgress) io.err('\n');
        await engine.close();
      }
      await ctx.audit.record(CLI_ACTOR, 'enrollment.imported', {
        clinicId: opts.clinic,
        detail: { ...counts },
      });
      if (opts.json) io.out(JSON.stringify({ ...counts, errors }));
      else {
        io.out(
          `enroll: ${counts.rows} rows: ${counts.enrolled} enrolled, ${counts.replaced} replaced, ` +
            `${counts.skipped} skipped, ${counts.failed} failed`,
        );
      }
      return counts.failed > 0 ? 1 : 0;
    });
  },
};

export { enrollCommand };

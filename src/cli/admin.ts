import { z } from 'zod';
import { AuditService } from '../audit';
import { loadConfig } from '../config';
import { openStorage, type Storage } from '../storage';
import { StorageError } from '../storage/errors';
import type { CommandIo, OptionValues } from './main';

/** The audit actor of every admin command. */
export const CLI_ACTOR = 'cli';

/** The line of every admin command's --help that says where it works. */
export const DATABASE_NOTE = `Works on the service's database: the same FACEID_DATA_DIR / DATABASE_URL as the service.
Recorded in the audit trail (actor "cli").`;

/** What an admin command works with: the service's own database, and the audit trail in it. */
export interface AdminContext {
  storage: Storage;
  audit: AuditService;
}

/**
 * Opens the database the service uses (the same environment: FACEID_DATA_DIR, DATABASE_URL), applying pending
 * migrations like the service does, runs `fn` and closes it.
 */
export async function withAdminStorage<T>(io: CommandIo, fn: (ctx: AdminContext) => Promise<T>): Promise<T> {
  const storage = await openStorage(loadConfig(io.env), {
    poolSize: 2,
    onConnectionError: (err) => io.err(`database connection error: ${err.message}\n`),
  });
  try {
    if (storage.migration.applied.length > 0) {
      io.err(`${storage.description}: applied ${storage.migration.applied.join(', ')}\n`);
    }
    return await fn({ storage, audit: new AuditService(storage.repos.audit) });
  } finally {
    await storage.close();
  }
}

/** The clinic must exist (a typo in --clinic would otherwise look like an empty list). */
export async function requireClinic({ storage }: AdminContext, clinicId: string): Promise<void> {
  if (!(await storage.repos.clinics.get(clinicId))) {
    throw new StorageError('reference_not_found', 'No such clinic.');
  }
}

/** A clinic, workstation or client name: printable, 1-200 characters. */
export const NameOption = z
  .string()
  .trim()
  .min(1, 'must not be empty')
  .max(200, 'must be at most 200 characters')
  .regex(/^[^\p{Cc}]*$/u, 'must not contain control characters');
export const IdOption = z.uuid('must be an id (a UUID)');
export const JsonFlag = z.boolean().optional();

/**
 * Checks a command's option values with a zod object whose keys are the option names. Returns the parsed values,
 * or the exit code of a usage error naming every bad option (never echoing values).
 */
export function parseOptions<S extends z.ZodObject>(
  schema: S,
  values: OptionValues,
  io: CommandIo,
): z.output<S> | number {
  const result = schema.safeParse(values);
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => {
    const option = issue.path.map(String).join('.');
    const missing = issue.code === 'invalid_type' && (values as Record<string, unknown>)[option] === undefined;
    return `--${option} ${missing ? 'is required' : issue.message}`;
  });
  return io.usageError(`${problems.join('; ')}.`);
}

/** Left-aligned columns with a header row. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)];
}

/**
 * Prints a list command's records: with --json one object a line, else a table. No record: `empty` on stderr, so
 * stdout holds rows only.
 */
export function printList<T>(
  io: CommandIo,
  json: boolean | undefined,
  records: readonly T[],
  empty: string,
  header: readonly string[],
  row: (record: T) => string[],
): void {
  if (json) for (const r of records) io.out(JSON.stringify(r));
  else if (records.length === 0) io.err(`${empty}\n`);
  else for (const line of table(header, records.map(row))) io.out(line);
}

/**
 * Prints what was created with its new key: the only time the key exists outside its owner. stdout only (a text
 * line and the key, or one JSON object); the notice goes to stderr.
 */
export function printWithNewKey(
  io: CommandIo,
  json: boolean | undefined,
  text: string,
  record: Record<string, unknown> & { apiKey: string },
): void {
  if (json) io.out(JSON.stringify(record));
  else {
    io.out(text);
    io.out(`API key (shown only this once): ${record.apiKey}`);
  }
  io.err('Store the key now: only its hash is kept, so it cannot be shown again.\n');
}

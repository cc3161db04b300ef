/** Stable codes of storage failures (the same strings appear in logs and, where relevant, HTTP bodies). */
export type StorageErrorCode =
  /** An applied migration's migration.sql differs from the one in this build. */
  | 'migration_checksum_mismatch'
  /** The database records a migration this build does not have (a newer version ran against it?). */
  | 'migration_unknown'
  /** A migration failed now, or an earlier attempt left one unfinished. */
  | 'migration_failed'
  /** The migrations folder is missing, empty or for another provider. */
  | 'migrations_invalid'
  /** A referenced clinic, workstation, patient or session does not exist in the given clinic. */
  | 'reference_not_found'
  /** A first enrollment only (TemplateChange.firstOnly), but the patient has or had a template. */
  | 'template_exists'
  /** The driver adapter is not what this module was written against (checked at connect). */
  | 'adapter_unsupported'
  /** Used after close() (during shutdown). */
  | 'storage_closed';

export class StorageError extends Error {
  constructor(
    readonly code: StorageErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'StorageError';
  }
}

/** Prisma's known request errors carry a `code` such as P2002 (unique violation) or P2003 (foreign key). */
function prismaCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

export const isUniqueViolation = (err: unknown): boolean => prismaCode(err) === 'P2002';
export const isForeignKeyViolation = (err: unknown): boolean => prismaCode(err) === 'P2003';

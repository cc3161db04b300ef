import { createHash, randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { Client as PgClient } from 'pg';
import { StorageError } from './errors';
import type { StorageProvider, StorageTarget } from './target';

/**
 * Applies prisma/<provider>/migrations at start, the way `prisma migrate deploy` would (the CLI's schema engine cannot
 * be downloaded here), keeping Prisma's own bookkeeping table `_prisma_migrations` so the standard CLI can take over:
 * checksum = sha256 hex of migration.sql, one row per applied migration.
 *
 * - Pending migrations are applied in name order, each with its bookkeeping row in the same transaction (SQLite and
 *   PostgreSQL both have transactional DDL), so a failure leaves nothing half-applied and the next start retries.
 * - An applied migration whose file changed, or one this build does not know, stops the start with a clear error.
 * - Two processes starting together do not both migrate: SQLite takes the write lock first (BEGIN IMMEDIATE);
 *   PostgreSQL takes the session advisory lock that `prisma migrate` itself uses.
 */

export interface Migration {
  /** The folder name, e.g. 20261128200000_init. */
  readonly name: string;
  readonly sql: string;
  /** sha256 hex of migration.sql, as Prisma records it. */
  readonly checksum: string;
}

export interface MigrateResult {
  /** Names of the migrations applied now, in order (empty when the database was up to date). */
  readonly applied: string[];
  /** How many migrations the build has. */
  readonly total: number;
}

export interface MigrateOptions {
  /** Default: prisma/<provider>/migrations of this package. */
  migrationsDir?: string;
}

/** The advisory lock key of `prisma migrate`, so our migrator and the CLI exclude each other too. */
export const PG_MIGRATION_LOCK = 72707369;

/** How long a SQLite connection waits for another process's write lock before failing (ms). */
export const SQLITE_BUSY_TIMEOUT_MS = 15_000;

/** prisma/ of this package, from src/storage (ts-node, jest) and dist/storage (the build) alike. */
export function defaultMigrationsDir(provider: StorageProvider): string {
  return path.resolve(__dirname, '..', '..', 'prisma', provider, 'migrations');
}

const sha256 = (text: string | Buffer) => createHash('sha256').update(text).digest('hex');

/** Reads and orders the migrations of one folder; checks migration_lock.toml names the same provider. */
export function readMigrations(provider: StorageProvider, dir = defaultMigrationsDir(provider)): Migration[] {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch (err) {
    throw new StorageError('migrations_invalid', `The migrations folder ${dir} cannot be read.`, { cause: err });
  }
  const lock = path.join(dir, 'migration_lock.toml');
  if (fs.existsSync(lock)) {
    const m = /^\s*provider\s*=\s*"([^"]+)"/m.exec(fs.readFileSync(lock, 'utf8'));
    const expected = provider === 'postgres' ? 'postgresql' : 'sqlite';
    if (m && m[1] !== expected) {
      throw new StorageError('migrations_invalid', `${lock} is for ${m[1]}, not ${expected}.`);
    }
  }
  const migrations = entries
    .filter((e) => e.isDirectory() && fs.existsSync(path.join(dir, e.name, 'migration.sql')))
    .map((e) => e.name)
    .sort()
    .map((name) => {
      const raw = fs.readFileSync(path.join(dir, name, 'migration.sql'));
      return { name, sql: raw.toString('utf8'), checksum: sha256(raw) };
    });
  if (migrations.length === 0) throw new StorageError('migrations_invalid', `No migrations found in ${dir}.`);
  return migrations;
}

/** Prisma accepts a checksum of the file with either line ending (a checkout on Windows must not look tampered). */
function checksumMatches(recorded: string, m: Migration): boolean {
  if (recorded === m.checksum) return true;
  const lf = m.sql.replace(/\r\n/g, '\n');
  return recorded === sha256(lf) || recorded === sha256(lf.replace(/\n/g, '\r\n'));
}

interface AppliedRow {
  migration_name: string;
  checksum: string;
  finished_at: unknown;
  rolled_back_at: unknown;
}

/** Checks the recorded history against the build's migrations; returns the ones still to apply. */
export function pendingMigrations(rows: AppliedRow[], migrations: Migration[]): Migration[] {
  const byName = new Map(migrations.map((m) => [m.name, m]));
  const applied = new Set<string>();
  for (const row of rows) {
    if (row.rolled_back_at != null) continue; // `prisma migrate resolve --rolled-back`: to be applied again
    if (row.finished_at == null) {
      throw new StorageError(
        'migration_failed',
        `Migration ${row.migration_name} was started but never finished. Repair the database, then mark it with ` +
          '`prisma migrate resolve --applied` or `--rolled-back` before starting again.',
      );
    }
    const local = byName.get(row.migration_name);
    if (!local) {
      throw new StorageError(
        'migration_unknown',
        `The database has migration ${row.migration_name}, which this build does not have. It was probably ` +
          'migrated by a newer version; run that version, or restore a matching backup.',
      );
    }
    if (!checksumMatches(row.checksum, local)) {
      throw new StorageError(
        'migration_checksum_mismatch',
        `Migration ${row.migration_name} was modified after it was applied: the database recorded checksum ` +
          `${row.checksum}, the file now has ${local.checksum}. Restore the original migration.sql; to change the ` +
          'schema, add a new migration instead.',
      );
    }
    applied.add(row.migration_name);
  }
  return migrations.filter((m) => !applied.has(m.name));
}

/** Creates (if needed) and migrates the database of the target. Safe to call from several processes at once. */
export async function migrate(target: StorageTarget, options: MigrateOptions = {}): Promise<MigrateResult> {
  const migrations = readMigrations(target.provider, options.migrationsDir);
  const applied =
    target.provider === 'sqlite'
      ? migrateSqlite(target.file, migrations)
      : await migratePostgres(target.url, migrations);
  return { applied, total: migrations.length };
}

// Prisma's own definitions of its bookkeeping table.
const SQLITE_MIGRATIONS_TABLE = `CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
    "id"                    TEXT PRIMARY KEY NOT NULL,
    "checksum"              TEXT NOT NULL,
    "finished_at"           DATETIME,
    "migration_name"        TEXT NOT NULL,
    "logs"                  TEXT,
    "rolled_back_at"        DATETIME,
    "started_at"            DATETIME NOT NULL DEFAULT current_timestamp,
    "applied_steps_count"   INTEGER UNSIGNED NOT NULL DEFAULT 0
)`;

const PG_MIGRATIONS_TABLE = `CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
    "id"                    VARCHAR(36) PRIMARY KEY NOT NULL,
    "checksum"              VARCHAR(64) NOT NULL,
    "finished_at"           TIMESTAMPTZ,
    "migration_name"        VARCHAR(255) NOT NULL,
    "logs"                  TEXT,
    "rolled_back_at"        TIMESTAMPTZ,
    "started_at"            TIMESTAMPTZ NOT NULL DEFAULT now(),
    "applied_steps_count"   INTEGER NOT NULL DEFAULT 0
)`;

const SELECT_APPLIED = `SELECT "migration_name", "checksum", "finished_at", "rolled_back_at"
  FROM "_prisma_migrations" ORDER BY "started_at", "migration_name"`;

/** Creates the folder (0700) and the file (0600: it holds patients' IINs) if missing. */
export function ensureSqliteFile(file: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  fs.closeSync(fs.openSync(file, 'a', 0o600));
}

const sleepSync = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/**
 * WAL is persistent in the file: every later connection (the Prisma adapter's included) uses it. Switching needs a
 * moment alone with the file, and SQLite answers SQLITE_BUSY at once (no busy handler) while another process opens
 * or switches it too, so retry until the busy timeout.
 */
function enableWal(db: Database.Database): void {
  const deadline = Date.now() + SQLITE_BUSY_TIMEOUT_MS;
  for (;;) {
    try {
      const mode = db.pragma('journal_mode = WAL', { simple: true });
      if (String(mode).toLowerCase() !== 'wal') throw new Error(`SQLite refused WAL mode (journal_mode is ${mode})`);
      return;
    } catch (err) {
      if ((err as { code?: string }).code !== 'SQLITE_BUSY' || Date.now() > deadline) throw err;
      sleepSync(10 + Math.random() * 40);
    }
  }
}

function migrateSqlite(file: string, migrations: Migration[]): string[] {
  ensureSqliteFile(file);
  const db = new Database(file, { timeout: SQLITE_BUSY_TIMEOUT_MS });
  try {
    enableWal(db);
    // The write lock at once: a second process waits here (busy timeout), then finds everything applied.
    db.exec('BEGIN IMMEDIATE');
    try {
      db.exec(SQLITE_MIGRATIONS_TABLE);
      const pending = pendingMigrations(db.prepare(SELECT_APPLIED).all() as AppliedRow[], migrations);
      const record = db.prepare(
        `INSERT INTO "_prisma_migrations" ("id", "checksum", "finished_at", "migration_name", "logs", "rolled_back_at",
           "started_at", "applied_steps_count") VALUES (?, ?, ?, ?, NULL, NULL, ?, 1)`,
      );
      for (const m of pending) {
        const started = Date.now(); // Prisma's engine stores SQLite timestamps as unix milliseconds
        try {
          db.exec(m.sql);
        } catch (err) {
          throw new StorageError('migration_failed', `Migration ${m.name} failed: ${(err as Error).message}`, {
            cause: err,
          });
        }
        record.run(randomUUID(), m.checksum, Date.now(), m.name, started);
      }
      db.exec('COMMIT');
      return pending.map((m) => m.name);
    } catch (err) {
      if (db.inTransaction) db.exec('ROLLBACK');
      throw err;
    }
  } finally {
    db.close();
  }
}

async function migratePostgres(url: string, migrations: Migration[]): Promise<string[]> {
  const client = new PgClient({ connectionString: url });
  client.on('error', () => undefined); // a dropped connection surfaces as the failing query's error
  await client.connect();
  try {
    // Waits while another process migrates; released below or when the connection ends.
    await client.query('SELECT pg_advisory_lock($1)', [PG_MIGRATION_LOCK]);
    await client.query(PG_MIGRATIONS_TABLE);
    const pending = pendingMigrations((await client.query<AppliedRow>(SELECT_APPLIED)).rows, migrations);
    for (const m of pending) {
      const started = new Date();
      await client.query('BEGIN');
      try {
        // One simple-protocol query: several statements, $$ bodies intact.
        await client.query(m.sql);
      } catch (err) {
        await client.query('ROLLBACK');
        throw new StorageError('migration_failed', `Migration ${m.name} failed: ${(err as Error).message}`, {
          cause: err,
        });
      }
      await client.query(
        `INSERT INTO "_prisma_migrations" ("id", "checksum", "finished_at", "migration_name", "logs", "rolled_back_at",
           "started_at", "applied_steps_count") VALUES ($1, $2, now(), $3, NULL, NULL, $4, 1)`,
        [randomUUID(), m.checksum, m.name, started],
      );
      await client.query('COMMIT');
    }
    await client.query('SELECT pg_advisory_unlock($1)', [PG_MIGRATION_LOCK]);
    return pending.map((m) => m.name);
  } finally {
    await client.end();
  }
}

import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** Where the PostgreSQL tests create their throwaway databases (trust auth on the local server). */
export const PG_ADMIN = process.env.FACEID_TEST_PG_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';

export type TestDatabaseKind = 'sqlite' | 'postgres';

/** SQLite always; PostgreSQL too unless FACEID_TEST_PG=0. */
export const TEST_DATABASES: readonly TestDatabaseKind[] =
  process.env.FACEID_TEST_PG === '0' ? ['sqlite'] : ['sqlite', 'postgres'];

export interface TestDatabase {
  kind: TestDatabaseKind;
  /** A fresh data folder (SQLite's file lives in it; also used by PostgreSQL runs for the key file). */
  dataDir: string;
  /** The environment that points the service (or the CLI) at this database. */
  env: Record<string, string>;
  /** PostgreSQL: the database's URL; SQLite: its file. */
  location: string;
  drop(): Promise<void>;
}

/**
 * A throwaway database: SQLite in a temporary folder, or CREATE DATABASE faceid_t_<random> on the local server (or on
 * the server of `pgAdmin`, a test's own instance).
 */
export async function createTestDatabase(
  kind: TestDatabaseKind,
  prefix: string,
  pgAdmin = PG_ADMIN,
): Promise<TestDatabase> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), `faceid-${prefix}-`));
  const env: Record<string, string> = { ...(process.env as Record<string, string>), FACEID_DATA_DIR: dataDir };
  if (kind === 'sqlite') {
    env.DATABASE_URL = '';
    return {
      kind,
      dataDir,
      env,
      location: path.join(dataDir, 'faceid.db'),
      drop: async () => fs.rmSync(dataDir, { recursive: true, force: true }),
    };
  }
  const name = `faceid_t_${randomBytes(4).toString('hex')}`;
  const { Client } = await import('pg');
  const admin = new Client({ connectionString: pgAdmin });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  env.DATABASE_URL = pgAdmin.replace(/\/[^/]*$/, `/${name}`);
  return {
    kind,
    dataDir,
    env,
    location: env.DATABASE_URL,
    drop: async () => {
      fs.rmSync(dataDir, { recursive: true, force: true });
      const c = new Client({ connectionString: pgAdmin });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

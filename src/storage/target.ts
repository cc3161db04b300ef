import * as path from 'node:path';
import type { Config } from '../config';

export type StorageProvider = 'sqlite' | 'postgres';

export type StorageTarget =
  | { readonly provider: 'sqlite'; readonly file: string }
  | { readonly provider: 'postgres'; readonly url: string };

export type StorageConfig = Pick<Config, 'DATABASE_URL' | 'FACEID_DATA_DIR'>;

/** The file name of the embedded database inside FACEID_DATA_DIR. */
export const SQLITE_FILE = 'faceid.db';

/** DATABASE_URL unset: SQLite at FACEID_DATA_DIR/faceid.db; postgres(ql)://: PostgreSQL; file:PATH: SQLite at PATH. */
export function resolveTarget(config: StorageConfig): StorageTarget {
  const url = config.DATABASE_URL?.trim();
  if (!url) return { provider: 'sqlite', file: path.join(config.FACEID_DATA_DIR, SQLITE_FILE) };
  if (/^postgres(ql)?:\/\//i.test(url)) return { provider: 'postgres', url };
  if (/^file:./i.test(url)) return { provider: 'sqlite', file: path.resolve(url.slice('file:'.length)) };
  // loadConfig already refuses anything else; never echo the value, it may hold a password.
  throw new Error('DATABASE_URL must be a postgres:// or postgresql:// URL, or file:PATH');
}

/** For logs: the SQLite path, or the PostgreSQL host and database without user or password. */
export function describeTarget(target: StorageTarget): string {
  if (target.provider === 'sqlite') return `sqlite ${target.file}`;
  try {
    const url = new URL(target.url);
    const host = url.hostname || url.searchParams.get('host') || 'localhost';
    return `postgresql ${host}${url.port ? `:${url.port}` : ''}${url.pathname || '/'}`;
  } catch {
    return 'postgresql';
  }
}

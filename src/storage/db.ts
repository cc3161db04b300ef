import { randomBytes } from 'node:crypto';
import type BetterSqlite3 from 'better-sqlite3';
import { PrismaBetterSqlite3 } from '@prisma/adapter-better-sqlite3';
import { PrismaPg } from '@prisma/adapter-pg';
import { PrismaClient as PostgresClient } from './generated/postgres/client';
import { Prisma, PrismaClient as SqliteClient } from './generated/sqlite/client';
import { StorageError } from './errors';
import { ensureSqliteFile, SQLITE_BUSY_TIMEOUT_MS } from './migrate';
import type { StorageProvider, StorageTarget } from './target';

/**
 * The repositories are written once, against the SQLite client's types: both clients are generated from the same
 * models (test/storage.schema.test.ts keeps the two schema files in step), so their model APIs are the same.
 */
export type Client = SqliteClient;
export type Tx = Prisma.TransactionClient;

export interface Db {
  readonly provider: StorageProvider;
  /**
   * Runs one storage operation. On SQLite, operations run one at a time: the adapter has a single connection, and
   * a query issued while another operation's transaction is open would run inside that transaction (and be rolled
   * back with it). better-sqlite3 is synchronous anyway, so nothing is lost. On PostgreSQL it runs at once.
   */
  run<T>(fn: (client: Client) => Promise<T>): Promise<T>;
  /**
   * run() + an interactive transaction. SQLite transactions take the write lock at BEGIN (BEGIN IMMEDIATE).
   * Inside the callback use only `tx`: calling run() or tx() there would wait for itself on SQLite.
   */
  tx<T>(fn: (tx: Tx) => Promise<T>): Promise<T>;
  /** Random per Db: tags the notifications its transactions send, so this process's listener can tell its own. */
  readonly origin: string;
  close(): Promise<void>;
}

/** PostgreSQL clients and the transactions open now, with the origin of their Db (see notifyInTx). */
const pgTransactions = new WeakMap<Tx | Client, string>();

/**
 * Queues a notification (PostgreSQL NOTIFY) inside the transaction `tx`: PostgreSQL delivers it to the listeners of
 * `channel` only if and when the transaction commits, after the rows it wrote are visible. Given the Db's client
 * outside a transaction (run()), it is sent at once, after the statements before it committed. The payload gets the
 * origin of the Db (`o`). No-op on SQLite (one process: the in-process signals tell the readers). Never put biometric
 * data, IINs or codes in a payload: ids and states only.
 */
export async function notifyInTx(
  tx: Tx | Client,
  channel: string,
  payload: Record<string, string | number>,
): Promise<void> {
  const origin = pgTransactions.get(tx);
  if (origin === undefined) return;
  await tx.$executeRaw`SELECT pg_notify(${channel}, ${JSON.stringify({ ...payload, o: origin })})`;
}

export interface OpenDbOptions {
  /** PostgreSQL pool size (default 10). */
  poolSize?: number;
  /** Errors of idle PostgreSQL connections (the server restarted, ...); never carries the URL. */
  onConnectionError?: (err: Error) => void;
}

/** Interactive transactions: how long to wait for a connection, and the longest a transaction may run (ms). */
const TX_OPTIONS = { maxWait: 10_000, timeout: 15_000 } as const;

type AdapterFactory = NonNullable<ConstructorParameters<typeof SqliteClient>[0]['adapter']>;

/**
 * The better-sqlite3 adapter opens deferred transactions (`BEGIN`): one that reads before it writes can fail with
 * SQLITE_BUSY when another process wrote in between. We open every transaction with `BEGIN IMMEDIATE` instead, so
 * it holds the write lock from its start and other writers wait (busy timeout). The adapter exposes no option for
 * this; it keeps its better-sqlite3 handle as `client`, and test/storage.test.ts checks the lock is really taken.
 */
function sqliteAdapter(file: string): AdapterFactory {
  const inner = new PrismaBetterSqlite3({ url: file, timeout: SQLITE_BUSY_TIMEOUT_MS });
  return {
    provider: inner.provider,
    adapterName: inner.adapterName,
    async connect() {
      const adapter = await inner.connect();
      const db = (adapter as unknown as { client?: BetterSqlite3.Database }).client;
      if (!db || typeof db.prepare !== 'function' || typeof db.pragma !== 'function') {
        await adapter.dispose();
        throw new StorageError(
          'adapter_unsupported',
          `${inner.adapterName} no longer exposes its better-sqlite3 handle.`,
        );
      }
      db.pragma('foreign_keys = ON'); // better-sqlite3's default too; the composite keys depend on it
      const prepare = db.prepare.bind(db);
      db.prepare = ((sql: string) => prepare(sql === 'BEGIN' ? 'BEGIN IMMEDIATE' : sql)) as typeof db.prepare;
      return adapter;
    },
    connectToShadowDb: () => inner.connectToShadowDb(),
  } as AdapterFactory;
}

/** A FIFO lock: run() calls on SQLite queue behind each other. */
class Mutex {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.tail.then(() => fn());
    this.tail = result.catch(() => undefined);
    return result;
  }
}

/** Connects a Prisma client to an already migrated database. */
export async function openDb(target: StorageTarget, options: OpenDbOptions = {}): Promise<Db> {
  let client: Client;
  let serial: Mutex | undefined;
  if (target.provider === 'sqlite') {
    ensureSqliteFile(target.file);
    client = new SqliteClient({ adapter: sqliteAdapter(target.file) });
    serial = new Mutex();
  } else {
    const adapter = new PrismaPg(
      { connectionString: target.url, max: options.poolSize ?? 10 },
      { onPoolError: options.onConnectionError, onConnectionError: options.onConnectionError },
    );
    client = new PostgresClient({ adapter }) as unknown as Client;
  }
  await client.$connect();
  let closed: Promise<void> | undefined;
  const run = <T>(fn: (c: Client) => Promise<T>): Promise<T> => {
    if (closed) return Promise.reject(new StorageError('storage_closed', 'Storage is closed.'));
    return serial ? serial.run(() => fn(client)) : fn(client);
  };
  const origin = randomBytes(6).toString('hex');
  const postgres = target.provider === 'postgres';
  if (postgres) pgTransactions.set(client, origin);
  return {
    provider: target.provider,
    origin,
    run,
    tx: (fn) =>
      run((c) =>
        c.$transaction((tx) => {
          if (postgres) pgTransactions.set(tx, origin);
          return fn(tx);
        }, TX_OPTIONS),
      ),
    // Prisma would reconnect on the next query after $disconnect(); a closed Db refuses instead. On SQLite the close
    // waits for the operations already queued.
    close: () =>
      (closed ??= (async () => {
        if (serial) await serial.run(async () => undefined);
        await client.$disconnect();
      })()),
  };
}

import { openDb, type Db } from './db';
import { migrate, type MigrateResult } from './migrate';
import type {
  AuditRepository,
  ClinicRepository,
  CodeRepository,
  EventRepository,
  MisClientRepository,
  WebhookRepository,
  PatientRepository,
  SessionRepository,
  TemplateRepository,
  VerdictRepository,
  WorkstationRepository,
} from './ports';
import type { AuditChainReader } from './audit-chain';
import { PrismaAuditRepository } from './repositories/audit';
import { PrismaClinicRepository, PrismaPatientRepository, PrismaWorkstationRepository } from './repositories/clinics';
import { PrismaSessionRepository, PrismaVerdictRepository } from './repositories/sessions';
import { PrismaTemplateRepository } from './repositories/templates';
import { PrismaCodeRepository } from './repositories/codes';
import { EventSignal, PrismaEventRepository } from './repositories/events';
import { PrismaMisClientRepository } from './repositories/mis';
import { PrismaWebhookRepository } from './repositories/webhooks';
import { describeTarget, resolveTarget, type StorageConfig, type StorageProvider, type StorageTarget } from './target';

export interface Repositories {
  readonly clinics: ClinicRepository;
  readonly workstations: WorkstationRepository;
  readonly patients: PatientRepository;
  readonly templates: TemplateRepository;
  readonly sessions: SessionRepository;
  readonly verdicts: VerdictRepository;
  /** Also reads the whole chain, for verifyAuditChain(). */
  readonly audit: AuditRepository & AuditChainReader;
  readonly codes: CodeRepository;
  readonly events: EventRepository;
  readonly misClients: MisClientRepository;
  readonly webhooks: WebhookRepository;
}

export interface Storage {
  readonly provider: StorageProvider;
  /** For logs: the SQLite file, or the PostgreSQL host and database (never the password). */
  readonly description: string;
  /** What the start-up migration did. */
  readonly migration: MigrateResult;
  readonly repos: Repositories;
  close(): Promise<void>;
}

export interface OpenStorageOptions {
  /** Default: prisma/<provider>/migrations of this package. */
  migrationsDir?: string;
  /** Errors of idle PostgreSQL connections; never carries the URL. */
  onConnectionError?: (err: Error) => void;
  /** PostgreSQL pool size (default 10). */
  poolSize?: number;
}

/** Builds the repositories over a connected database. */
export function createRepositories(db: Db): Repositories {
  const signal = new EventSignal();
  return {
    clinics: new PrismaClinicRepository(db),
    workstations: new PrismaWorkstationRepository(db, signal),
    patients: new PrismaPatientRepository(db),
    templates: new PrismaTemplateRepository(db),
    sessions: new PrismaSessionRepository(db, signal),
    verdicts: new PrismaVerdictRepository(db, signal),
    audit: new PrismaAuditRepository(db),
    codes: new PrismaCodeRepository(db),
    events: new PrismaEventRepository(db, signal),
    misClients: new PrismaMisClientRepository(db),
    webhooks: new PrismaWebhookRepository(db),
  };
}

/**
 * Opens the configured database: SQLite at FACEID_DATA_DIR/faceid.db unless DATABASE_URL names PostgreSQL (or a
 * file:PATH). Creates it if needed, applies pending migrations first, then connects. For the Nest module, the CLI
 * and tests alike; close() when done.
 */
export async function openStorage(config: StorageConfig | StorageTarget, options: OpenStorageOptions = {}): Promise<Storage> {
  const target = 'provider' in config ? config : resolveTarget(config);
  const migration = await migrate(target, { migrationsDir: options.migrationsDir });
  const db = await openDb(target, { poolSize: options.poolSize, onConnectionError: options.onConnectionError });
  return {
    provider: target.provider,
    description: describeTarget(target),
    migration,
    repos: createRepositories(db),
    close: () => db.close(),
  };
}

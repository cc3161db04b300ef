import { openDb, type Db } from './db';
import { migrate, type MigrateResult } from './migrate';
import type {
  AuditRepository,
  CalibrationRepository,
  ClinicRepository,
  CodeRepository,
  EventRepository,
  KeyRepository,
  MisClientRepository,
  WebhookRepository,
  EnrollmentKeyRepository,
  PendingEnrollmentRepository,
  PatientRepository,
  SessionRepository,
  TemplateRepository,
  UnitOfWork,
  VerdictRepository,
  WorkstationRepository,
} from './ports';
import { keyRingFromConfig } from '../keyring/key-file';
import { auditChainKeys, type AuditChainKeys, type AuditChainReader } from './audit-chain';
import { PrismaAuditRepository } from './repositories/audit';
import { PrismaCalibrationRepository } from './repositories/calibration';
import { PrismaClinicRepository, PrismaPatientRepository, PrismaWorkstationRepository } from './repositories/clinics';
import { PrismaSessionRepository, PrismaVerdictRepository } from './repositories/sessions';
import { PrismaTemplateRepository } from './repositories/templates';
import { PrismaCodeRepository } from './repositories/codes';
import { EventSignal, PrismaEventRepository } from './repositories/events';
import { PrismaMisClientRepository } from './repositories/mis';
import { PrismaKeyRepository } from './repositories/keys';
import { PrismaWebhookRepository } from './repositories/webhooks';
import { PrismaEnrollmentKeyRepository, PrismaPendingEnrollmentRepository } from './repositories/enrollment';
import { Signals, type PgListenerOptions, type StorageSignals } from './signals';
import { Transactions } from './unit-of-work';
import { describeTarget, resolveTarget, type StorageConfig, type StorageProvider, type StorageTarget } from './target';
import type { Config } from '../config';

export interface Repositories {
  readonly clinics: ClinicRepository;
  readonly workstations: WorkstationRepository;
  readonly patients: PatientRepository;
  readonly templates: TemplateRepository;
  readonly sessions: SessionRepository;
  readonly verdicts: VerdictRepository;
  /** Also reads the whole chain and holds its keys, for verifyAuditChain(). */
  readonly audit: AuditRepository & AuditChainReader;
  readonly codes: CodeRepository;
  readonly events: EventRepository;
  readonly misClients: MisClientRepository;
  /** Creation, rotation and revocation of workstation and MIS client keys. */
  readonly keys: KeyRepository;
  readonly webhooks: WebhookRepository;
  readonly enrollmentKeys: EnrollmentKeyRepository;
  readonly pendingEnrollments: PendingEnrollmentRepository;
  /** Field calibration histograms (counted by VerdictRepository.finish; read here). */
  readonly calibration: CalibrationRepository;
  /** Writes of several repositories in one transaction (a code marked used with its verdict). */
  readonly work: UnitOfWork;
}

export interface Storage {
  readonly provider: StorageProvider;
  /** For logs: the SQLite file, or the PostgreSQL host and database (never the password). */
  readonly description: string;
  /** What the start-up migration did. */
  readonly migration: MigrateResult;
  readonly repos: Repositories;
  /**
   * Signals between gateway processes (signals.ts): in-process on SQLite; with PostgreSQL also LISTEN/NOTIFY, whose
   * one listening connection opens on `signals.start()` (the service does; the CLI does not).
   */
  readonly signals: StorageSignals;
  /** Whether the database answers a trivial query within `timeoutMs` (default 2000): for the readiness check. */
  ping(timeoutMs?: number): Promise<boolean>;
  close(): Promise<void>;
}

export interface OpenStorageOptions {
  /** Default: prisma/<provider>/migrations of this package. */
  migrationsDir?: string;
  /** Errors of idle PostgreSQL connections; never carries the URL. */
  onConnectionError?: (err: Error) => void;
  /** PostgreSQL pool size (default 10). */
  poolSize?: number;
  /**
   * The audit chain's keys (auditChainKeys() of the key ring). Default, for a StorageConfig: those of the key ring
   * of the same configuration (TEMPLATE_KEYS, else the key file in FACEID_DATA_DIR), as the service has. Required
   * with a bare StorageTarget.
   */
  auditKeys?: AuditChainKeys;
  /** The PostgreSQL listener's log and timings (see signals.ts). */
  signals?: Omit<PgListenerOptions, 'url'>;
}

/** Builds the repositories over a connected database; audit entries are keyed with `auditKeys`. */
export function createRepositories(db: Db, auditKeys: AuditChainKeys): Repositories {
  const audit = new PrismaAuditRepository(db, auditKeys);
  // The one way to write events and audit entries in a transaction, for the repositories and the services' units.
  const transactions = new Transactions(db, audit, new EventSignal());
  return {
    clinics: new PrismaClinicRepository(db),
    workstations: new PrismaWorkstationRepository(db, transactions),
    patients: new PrismaPatientRepository(db),
    templates: new PrismaTemplateRepository(db, transactions),
    sessions: new PrismaSessionRepository(db, transactions),
    verdicts: new PrismaVerdictRepository(db, transactions),
    audit,
    codes: new PrismaCodeRepository(db),
    events: new PrismaEventRepository(db, transactions),
    misClients: new PrismaMisClientRepository(db),
    keys: new PrismaKeyRepository(db, transactions),
    webhooks: new PrismaWebhookRepository(db),
    enrollmentKeys: new PrismaEnrollmentKeyRepository(db),
    pendingEnrollments: new PrismaPendingEnrollmentRepository(db, transactions),
    calibration: new PrismaCalibrationRepository(db),
    work: transactions,
  };
}

/**
 * Opens the configured database: SQLite at FACEID_DATA_DIR/faceid.db unless DATABASE_URL names PostgreSQL (or a
 * file:PATH). Creates it if needed, applies pending migrations first, then connects. For the Nest module, the CLI
 * and tests alike; close() when done.
 */
export async function openStorage(
  config: (StorageConfig & Partial<Pick<Config, 'TEMPLATE_KEYS'>>) | StorageTarget,
  options: OpenStorageOptions = {},
): Promise<Storage> {
  const target = 'provider' in config ? config : resolveTarget(config);
  let auditKeys = options.auditKeys;
  if (!auditKeys) {
    if ('provider' in config)
      throw new Error("openStorage(target) needs options.auditKeys (the key ring's chain keys).");
    auditKeys = auditChainKeys(keyRingFromConfig(config));
  }
  const migration = await migrate(target, { migrationsDir: options.migrationsDir });
  const db = await openDb(target, { poolSize: options.poolSize, onConnectionError: options.onConnectionError });
  const repos = createRepositories(db, auditKeys);
  const signals = new Signals(
    { onCommitted: (listener) => repos.events.onCommitted(listener), origin: db.origin },
    target.provider === 'postgres' ? { ...options.signals, url: target.url } : undefined,
  );
  return {
    provider: target.provider,
    description: describeTarget(target),
    migration,
    repos,
    signals,
    ping: (timeoutMs = 2000) => pingDb(db, timeoutMs),
    close: async () => {
      await signals.close();
      await db.close();
    },
  };
}

async function pingDb(db: Db, timeoutMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), timeoutMs);
    timer.unref();
  });
  try {
    return await Promise.race([db.run((c) => c.$queryRaw`SELECT 1`).then(() => true), late]);
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}

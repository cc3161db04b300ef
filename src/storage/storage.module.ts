import {
  Global,
  Inject,
  Injectable,
  Logger,
  Module,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
  type Provider,
} from '@nestjs/common';
import { CONFIG, type Config } from '../config';
import { KeyRing } from '../keyring/keyring';
import { KeyRingModule } from '../keyring/keyring.module';
import { auditChainKeys } from './audit-chain';
import { openStorage, type Repositories, type Storage } from './open';
import { SIGNALS } from './signals';
import {
  AUDIT,
  CALIBRATION,
  CLINICS,
  CODES,
  ENROLLMENT_KEYS,
  EVENTS,
  KEYS,
  MIS_CLIENTS,
  PATIENTS,
  PENDING_ENROLLMENTS,
  SESSIONS,
  TEMPLATES,
  UNIT_OF_WORK,
  VERDICTS,
  WEBHOOKS,
  WORKSTATIONS,
} from './ports';

/** The open storage of the application (its repositories are also provided under the tokens of ports.ts). */
export const STORAGE = Symbol('Storage');

const logger = new Logger('Storage');

/**
 * Opens the PostgreSQL listening connection once every module is up (readers subscribe at bootstrap; they are told
 * to look once it listens). Closes the database after the HTTP and WS servers have stopped, so no request loses its
 * connection mid-way.
 */
@Injectable()
class StorageLifecycle implements OnApplicationBootstrap, OnApplicationShutdown {
  constructor(@Inject(STORAGE) private readonly storage: Storage) {}

  onApplicationBootstrap(): void {
    this.storage.signals.start();
  }

  async onApplicationShutdown(): Promise<void> {
    await this.storage.close();
    logger.log('Storage closed');
  }
}

const repo = (token: symbol, key: keyof Repositories): Provider => ({
  provide: token,
  useFactory: (storage: Storage) => storage.repos[key],
  inject: [STORAGE],
});

/**
 * Global: feature modules inject CLINICS, SESSIONS, ... without importing it. The database is created, migrated and
 * connected while the module initialises (an async provider), so nothing can use it before it is ready and a
 * migration error stops the start.
 */
@Global()
@Module({
  // The audit chain is keyed with keys derived from the key ring.
  imports: [KeyRingModule],
  providers: [
    {
      provide: STORAGE,
      useFactory: async (config: Config, ring: KeyRing): Promise<Storage> => {
        const started = Date.now();
        const storage = await openStorage(config, {
          auditKeys: auditChainKeys(ring),
          onConnectionError: (err) => logger.error(`Database connection error: ${err.message}`),
          signals: { log: { warn: (m) => logger.warn(m), log: (m) => logger.log(m) } },
        });
        const { applied, total } = storage.migration;
        logger.log(
          `Storage ready: ${storage.description}, ` +
            `${applied.length ? `applied ${applied.join(', ')}` : 'schema up to date'} (${total} migrations), ` +
            `${Date.now() - started} ms`,
        );
        return storage;
      },
      inject: [CONFIG, KeyRing],
    },
    StorageLifecycle,
    { provide: SIGNALS, useFactory: (storage: Storage) => storage.signals, inject: [STORAGE] },
    repo(CLINICS, 'clinics'),
    repo(WORKSTATIONS, 'workstations'),
    repo(PATIENTS, 'patients'),
    repo(TEMPLATES, 'templates'),
    repo(SESSIONS, 'sessions'),
    repo(VERDICTS, 'verdicts'),
    repo(AUDIT, 'audit'),
    repo(CODES, 'codes'),
    repo(EVENTS, 'events'),
    repo(MIS_CLIENTS, 'misClients'),
    repo(KEYS, 'keys'),
    repo(WEBHOOKS, 'webhooks'),
    repo(ENROLLMENT_KEYS, 'enrollmentKeys'),
    repo(PENDING_ENROLLMENTS, 'pendingEnrollments'),
    repo(CALIBRATION, 'calibration'),
    repo(UNIT_OF_WORK, 'work'),
  ],
  exports: [
    STORAGE,
    SIGNALS,
    CLINICS,
    WORKSTATIONS,
    PATIENTS,
    TEMPLATES,
    SESSIONS,
    VERDICTS,
    AUDIT,
    CODES,
    EVENTS,
    MIS_CLIENTS,
    KEYS,
    WEBHOOKS,
    ENROLLMENT_KEYS,
    PENDING_ENROLLMENTS,
    CALIBRATION,
    UNIT_OF_WORK,
  ],
})
export class StorageModule {}

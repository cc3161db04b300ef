import { Global, Inject, Injectable, Logger, Module, type OnApplicationShutdown, type Provider } from '@nestjs/common';
import { CONFIG, type Config } from '../config';
import { openStorage, type Repositories, type Storage } from './open';
import {
  AUDIT,
  CLINICS,
  CODES,
  EVENTS,
  MIS_CLIENTS,
  PATIENTS,
  SESSIONS,
  TEMPLATES,
  VERDICTS,
  WEBHOOKS,
  WORKSTATIONS,
} from './ports';

/** The open storage of the application (its repositories are also provided under the tokens of ports.ts). */
export const STORAGE = Symbol('Storage');

const logger = new Logger('Storage');

/** Closes the database after the HTTP and WS servers have stopped, so no request loses its connection mid-way. */
@Injectable()
class StorageLifecycle implements OnApplicationShutdown {
  constructor(@Inject(STORAGE) private readonly storage: Storage) {}

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
  providers: [
    {
      provide: STORAGE,
      useFactory: async (config: Config): Promise<Storage> => {
        const started = Date.now();
        const storage = await openStorage(config, {
          onConnectionError: (err) => logger.error(`Database connection error: ${err.message}`),
        });
        const { applied, total } = storage.migration;
        logger.log(
          `Storage ready: ${storage.description}, ` +
            `${applied.length ? `applied ${applied.join(', ')}` : 'schema up to date'} (${total} migrations), ` +
            `${Date.now() - started} ms`,
        );
        return storage;
      },
      inject: [CONFIG],
    },
    StorageLifecycle,
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
    repo(WEBHOOKS, 'webhooks'),
  ],
  exports: [STORAGE, CLINICS, WORKSTATIONS, PATIENTS, TEMPLATES, SESSIONS, VERDICTS, AUDIT, CODES, EVENTS, MIS_CLIENTS, WEBHOOKS],
})
export class StorageModule {}

// The storage module's public surface. Feature modules need only ./ports (types and DI tokens).
export * from './ports';
export { StorageModule, STORAGE } from './storage.module';
export {
  SIGNALS,
  EVENTS_CHANNEL,
  SESSIONS_CHANNEL,
  type EventsNotice,
  type SessionNotice,
  type SignalsState,
  type StorageSignals,
} from './signals';
export { openStorage, createRepositories, type Storage, type Repositories, type OpenStorageOptions } from './open';
export {
  verifyAuditChain,
  walkAuditChain,
  auditHash,
  auditMac,
  auditChainKeys,
  canonicalJson,
  AUDIT_GENESIS,
  AUDIT_HKDF_INFO,
  type AuditChainReader,
  type AuditChainKeys,
  type AuditChainReport,
  type AuditBreak,
} from './audit-chain';
export { migrate, readMigrations, type Migration, type MigrateResult } from './migrate';
export { resolveTarget, describeTarget, type StorageTarget, type StorageProvider, type StorageConfig } from './target';
export { StorageError, type StorageErrorCode } from './errors';

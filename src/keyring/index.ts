// The key ring: sealing with key ids for rotation, and keys derived per purpose.
export { KeyRing, type KeyRingEntry, type Sealed, type SealContext, type DerivedKeys } from './keyring';
export { KeyRingError, type KeyRingErrorCode } from './errors';
export { KEY_FILE_NAME, keyRingFromConfig, loadOrCreateKeyFile, type KeyFileResult, type KeyRingLog } from './key-file';
export { KeyRingModule } from './keyring.module';

import { Logger, Module } from '@nestjs/common';
import { CONFIG, type Config } from '../config';
import { keyRingFromConfig } from './key-file';
import { KeyRing } from './keyring';

/**
 * The key ring of TEMPLATE_KEYS (or the key file), loaded once (a module is a singleton, whoever imports it).
 * Enrollment seals templates with it, the events module webhook secrets, identification derives its code-hash keys
 * and storage its audit-chain keys: each imports this module.
 */
@Module({
  providers: [
    {
      provide: KeyRing,
      useFactory: (config: Config) => keyRingFromConfig(config, new Logger('KeyRing')),
      inject: [CONFIG],
    },
  ],
  exports: [KeyRing],
})
export class KeyRingModule {}

import { Global, Logger, Module } from '@nestjs/common';
import { CONFIG, type Config } from '../config';
import { EngineModule } from '../engine';
import { EnrollmentController } from './enrollment.controller';
import { EnrollmentService } from './enrollment.service';
import { loadOrCreateKeyFile, TemplateCipher } from './template-crypto';

/** TEMPLATE_KEYS when set, else the key file in FACEID_DATA_DIR (created on first start). Logs key ids only. */
export function templateCipherFromConfig(config: Config, logger = new Logger('Enrollment')): TemplateCipher {
  if (config.TEMPLATE_KEYS) {
    const cipher = new TemplateCipher(config.TEMPLATE_KEYS);
    logger.log(`Template keys from TEMPLATE_KEYS: ${cipher.keyIds.join(', ')} (new templates: ${cipher.currentKeyId})`);
    return cipher;
  }
  const result = loadOrCreateKeyFile(config.FACEID_DATA_DIR);
  if (result.warning) logger.warn(result.warning);
  if (config.DATABASE_URL && /^postgres/i.test(config.DATABASE_URL)) {
    // Several gateways share the database, but each would generate its own key file.
    logger.warn(
      'A shared database with a generated template key: set the same TEMPLATE_KEYS on every gateway, or templates ' +
        'enrolled through one cannot be decrypted by the others.',
    );
  }
  const cipher = new TemplateCipher(result.keys);
  logger.log(
    `${result.created ? 'Created the template key file' : 'Template keys from'} ${result.file}: ` +
      `${cipher.keyIds.join(', ')} (new templates: ${cipher.currentKeyId}). Back it up with the database.`,
  );
  return cipher;
}

/** Global, so the identification module can load templates without importing it. */
@Global()
@Module({
  imports: [EngineModule],
  controllers: [EnrollmentController],
  providers: [
    EnrollmentService,
    { provide: TemplateCipher, useFactory: (config: Config) => templateCipherFromConfig(config), inject: [CONFIG] },
  ],
  // The cipher also seals webhook secrets (src/events).
  exports: [EnrollmentService, TemplateCipher],
})
export class EnrollmentModule {}

import { Global, Module, type DynamicModule } from '@nestjs/common';
import { loadConfig, type Config } from './config';

/** Injection token for the validated config: `@Inject(CONFIG) config: Config`. */
export const CONFIG = Symbol('CONFIG');

/** Global, so feature modules inject CONFIG without importing this module. */
@Global()
@Module({})
export class ConfigModule {
  /** Pass a config to override the environment (tests); otherwise it is read from process.env. */
  static forRoot(config: Config = loadConfig(process.env)): DynamicModule {
    return {
      module: ConfigModule,
      providers: [{ provide: CONFIG, useValue: config }],
      exports: [CONFIG],
    };
  }
}

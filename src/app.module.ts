import { Module, type DynamicModule } from '@nestjs/common';
import { ConfigModule, type Config } from './config';
import { EngineModule } from './engine';
import { HealthModule } from './health/health.module';

@Module({})
export class AppModule {
  /** The config is passed in (not read here) so tests can boot the real app with their own values. */
  static forRoot(config: Config): DynamicModule {
    return {
      module: AppModule,
      imports: [ConfigModule.forRoot(config), EngineModule, HealthModule],
    };
  }
}

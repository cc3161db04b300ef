import { Module, type DynamicModule } from '@nestjs/common';
import { AuditModule } from './audit';
import { AuthModule } from './auth';
import { CalibrationModule } from './calibration';
import { ConfigModule, type Config } from './config';
import { DemoModule } from './demo';
import { EnrollmentModule } from './enrollment';
import { EventsModule } from './events';
import { EngineModule } from './engine';
import { FleetModule } from './fleet';
import { HealthModule } from './health/health.module';
import { HttpModule } from './http';
import { IdentificationModule } from './identification';
import { KeysModule } from './keys';
import { MetricsModule } from './metrics';
import { MisModule } from './mis';
import { StatsModule } from './stats';
import { StorageModule } from './storage';

@Module({})
export class AppModule {
  /** The config is passed in (not read here) so tests can boot the real app with their own values. */
  static forRoot(config: Config): DynamicModule {
    return {
      module: AppModule,
      imports: [
        ConfigModule.forRoot(config),
        StorageModule,
        FleetModule,
        EngineModule,
        HealthModule,
        MetricsModule,
        HttpModule,
        AuditModule,
        AuthModule,
        KeysModule,
        EnrollmentModule,
        IdentificationModule,
        EventsModule,
        DemoModule,
        MisModule,
        StatsModule,
        CalibrationModule,
      ],
    };
  }
}

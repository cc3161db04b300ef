import { Module, type DynamicModule } from '@nestjs/common';
import { AuditModule } from './audit';
import { AuthModule } from './auth';
import { CalibrationError, CalibrationModule } from './calibration';
import { ConfigModule, type Config } from './config';
import { DemoModule } from './demo';
import { EnrollmentError, EnrollmentModule } from './enrollment';
import { EventsError, EventsModule } from './events';
import { EngineModule } from './engine';
import { DrainingError, FleetModule } from './fleet';
import { HealthModule } from './health/health.module';
import { HttpModule, type ErrorClass } from './http';
import { IdentificationError, IdentificationModule } from './identification';
import { KeyRingError } from './keyring';
import { KeysError, KeysModule } from './keys';
import { MetricsModule } from './metrics';
import { MisModule } from './mis';
import { SmsError } from './sms';
import { StatsError, StatsModule } from './stats';
import { StorageModule } from './storage';

/**
 * The error classes with codes of their own (a `status` table each) that the API answers with: the OpenAPI document
 * gives each route's codes their statuses from them. The error filter needs no list: it asks the thrown error.
 */
export const API_ERROR_CLASSES: readonly ErrorClass[] = [
  CalibrationError,
  DrainingError,
  EnrollmentError,
  EventsError,
  IdentificationError,
  KeyRingError,
  KeysError,
  SmsError,
  StatsError,
];

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
        HttpModule.forRoot({ errors: API_ERROR_CLASSES }),
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

import { Module } from '@nestjs/common';
import { AuthModule } from '../auth/auth.module';
import { CalibrationController } from './calibration.controller';
import { CalibrationService } from './calibration.service';

/**
 * `GET /calibration`: the field calibration histograms (storage and config are global modules; auth checks the MIS
 * key).
 */
@Module({
  imports: [AuthModule],
  controllers: [CalibrationController],
  providers: [CalibrationService],
  exports: [CalibrationService],
})
export class CalibrationModule {}

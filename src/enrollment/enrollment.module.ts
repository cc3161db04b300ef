import { Global, Module } from '@nestjs/common';
import { EngineModule } from '../engine';
import { registerErrorStatus } from '../http';
import { KeyRing, KeyRingModule } from '../keyring';
import { SmsModule } from '../sms';
import { EnrollmentAuthGuard } from './enrollment-auth';
import { EnrollmentController } from './enrollment.controller';
import { EnrollmentService } from './enrollment.service';
import { ENROLLMENT_ERROR_STATUS } from './errors';
import { PendingEnrollmentSweep } from './pending-sweep';
import { TemplateCipher } from './template-crypto';

registerErrorStatus(ENROLLMENT_ERROR_STATUS);

/** Global, so the identification module can load templates without importing it. */
@Global()
@Module({
  // SMS: a workstation's replacement of a template waits for a code sent to the patient.
  imports: [EngineModule, KeyRingModule, SmsModule],
  controllers: [EnrollmentController],
  providers: [
    EnrollmentService,
    EnrollmentAuthGuard,
    PendingEnrollmentSweep,
    // Templates are sealed by the key ring (TEMPLATE_KEYS, else the key file): src/keyring.
    { provide: TemplateCipher, useFactory: (ring: KeyRing) => new TemplateCipher(ring), inject: [KeyRing] },
  ],
  exports: [EnrollmentService, TemplateCipher, PendingEnrollmentSweep],
})
export class EnrollmentModule {}

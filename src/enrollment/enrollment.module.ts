import { Module } from '@nestjs/common';
import { AuditModule } from '../audit/audit.module';
import { AuthModule } from '../auth/auth.module';
import { EngineModule } from '../engine';
import { KeyRing, KeyRingModule } from '../keyring';
import { SmsModule } from '../sms';
import { EnrollmentAuthGuard } from './enrollment-auth';
import { EnrollmentController } from './enrollment.controller';
import { EnrollmentService } from './enrollment.service';
import { PendingEnrollmentSweep } from './pending-sweep';
import { TemplateCipher } from './template-crypto';

/** Reference templates; the identification module imports it to load them. */
@Module({
  // SMS: a workstation's replacement of a template waits for a code sent to the patient. Auth: the enrollment guard
  // counts failed checks with the shared rate limiter.
  imports: [EngineModule, KeyRingModule, SmsModule, AuditModule, AuthModule],
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

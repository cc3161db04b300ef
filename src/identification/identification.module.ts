import { Module } from '@nestjs/common';
import { AuditModule } from '../audit/audit.module';
import { AuthModule } from '../auth/auth.module';
import { EngineModule } from '../engine';
import { EnrollmentModule } from '../enrollment/enrollment.module';
import { KeyRing } from '../keyring';
import { KeyRingModule } from '../keyring/keyring.module';
import { SmsModule } from '../sms';
import { TransportModule } from '../transport/transport.module';
import { CameraRegistryService } from './camera-registry.service';
import { ChallengePolicyService } from './challenge-policy.service';
import { CodeHasher } from './code-hash';
import { CodePathController } from './code-path.controller';
import { CodePathService } from './code-path.service';
import { FaceCapacity } from './face-capacity';
import { FleetSessions } from './fleet-sessions';
import { IdentificationGateway } from './identification.gateway';
import { SessionSweep } from './session-sweep';
import { SessionsController } from './sessions.controller';
import { SessionsService } from './sessions.service';

/**
 * Sessions: HTTP creation, the WebSocket frame loop (through whichever transport is configured), verdicts, the
 * six-digit code path for patients who refuse the photo or are remote, and the sweep that expires stale sessions.
 */
@Module({
  // Config, metrics and storage are global modules.
  imports: [EngineModule, TransportModule, SmsModule, EnrollmentModule, KeyRingModule, AuditModule, AuthModule],
  controllers: [SessionsController, CodePathController],
  providers: [
    SessionsService,
    FaceCapacity,
    IdentificationGateway,
    CodePathService,
    SessionSweep,
    FleetSessions,
    ChallengePolicyService,
    CameraRegistryService,
    // Code hashes are keyed by keys derived from the key ring (TEMPLATE_KEYS, else the key file).
    { provide: CodeHasher, useFactory: (ring: KeyRing) => new CodeHasher(ring), inject: [KeyRing] },
  ],
  exports: [
    SessionsService,
    CodePathService,
    SessionSweep,
    ChallengePolicyService,
    CameraRegistryService,
    FaceCapacity,
  ],
})
export class IdentificationModule {}
